#!/usr/bin/env bash
# Prints the folders that hold the shared libraries the given programs need and the loader does
# not find, one per line, and names each library found or missing on stderr:
#   tests/gpu/find_libraries.sh PROGRAM...
# On a GPU host, cuDNN, NCCL and cuBLAS may come only with a Python environment's nvidia-* wheels
# (site-packages/nvidia/<name>/lib), which the loader does not search. The search goes through
# the nvidia folders of each Python (PYTHON, else python3 and /opt/*/.venv's), then
# CUDA_LIBRARY_DIRS (colon-separated) and the usual CUDA folders, and repeats with the folders
# found until nothing more is missing (a found library can need another). NVRTC, which cuDNN
# opens at run time (ldd cannot see it), is added the same way when the loader lacks the one of
# the programs' CUDA version. Exit 1 when a library stays missing.
set -u

roots=()
for python in ${PYTHON:-python3 /opt/*/.venv/bin/python3}; do
    while IFS= read -r dir; do
        [ -n "$dir" ] && [ -d "$dir" ] && roots+=("$dir")
    done < <("$python" -c '
import sysconfig
try:
    import nvidia
    print(*nvidia.__path__, sep="\n")
except ImportError:
    pass
for kind in ("purelib", "platlib"):
    print(sysconfig.get_paths()[kind] + "/nvidia")
' 2>/dev/null | sort -u)
done
IFS=: read -r -a extra <<<"${CUDA_LIBRARY_DIRS:-}"
for dir in "${extra[@]}" /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/nvidia/lib64; do
    [ -d "$dir" ] && roots+=("$dir")
done

found=()
search_path() {
    local IFS=:
    echo "${found[*]}${found[*]:+:}${LD_LIBRARY_PATH:-}"
}

# locate NAME: prints the folder of the first NAME under the roots
locate() {
    local path=""
    [ ${#roots[@]} -gt 0 ] && path=$(find "${roots[@]}" -maxdepth 3 -name "$1" -print -quit 2>/dev/null)
    [ -n "$path" ] && dirname "$path"
}

add() {
    local dir
    for dir in "${found[@]}"; do [ "$dir" = "$1" ] && return; done
    found+=("$1")
}

status=0
reported=" "
while :; do
    missing=$(for program in "$@"; do LD_LIBRARY_PATH=$(search_path) ldd "$program" 2>/dev/null; done |
        awk '/=> not found/ {print $1}' | sort -u)
    progress=0
    for name in $missing; do
        case $reported in *" $name "*) continue ;; esac
        reported="$reported$name "
        if dir=$(locate "$name"); then
            echo "library $name: $dir" >&2
            add "$dir"
            progress=1
        else
            echo "library $name: not found (searched: ${roots[*]:-nothing})" >&2
            status=1
        fi
    done
    [ $progress = 1 ] || break
done

# NVRTC of the CUDA major version the programs run on (libcudart.so.<major>)
major=$(for program in "$@"; do LD_LIBRARY_PATH=$(search_path) ldd "$program" 2>/dev/null; done |
    sed -n 's/^[[:space:]]*libcudart\.so\.\([0-9][0-9]*\) .*/\1/p' | head -1)
if [ -n "$major" ]; then
    nvrtc=libnvrtc.so.$major
    known=0
    ldconfig -p 2>/dev/null | grep -q "[[:space:]]$nvrtc " && known=1
    IFS=: read -r -a search <<<"$(search_path)"
    for dir in "${search[@]}"; do [ -n "$dir" ] && [ -e "$dir/$nvrtc" ] && known=1; done
    if [ $known = 0 ] && dir=$(locate "$nvrtc"); then
        echo "library $nvrtc (opened by cuDNN at run time): $dir" >&2
        add "$dir"
    fi
fi

[ ${#found[@]} -gt 0 ] && printf '%s\n' "${found[@]}"
exit $status
