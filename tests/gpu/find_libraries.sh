#!/usr/bin/env bash
# Prints the folders that hold the shared libraries the given programs need and the loader does
# not find, one per line, and names each library found or missing on stderr:
#   tests/gpu/find_libraries.sh PROGRAM...
# On a GPU host, cuDNN, NCCL and cuBLAS may come only with a Python environment's nvidia-* wheels
# (site-packages/nvidia/<name>/lib), which the loader does not search. The search goes through
# the nvidia folder of each Python's site-packages (PYTHON, else python3 and /opt/*/.venv's),
# then CUDA_LIBRARY_DIRS (colon-separated) and the usual CUDA folders. Exit 1 when a library
# stays missing.
set -u
missing=$(for program in "$@"; do ldd "$program" 2>/dev/null; done | awk '/=> not found/ {print $1}' |
    sort -u)
[ -n "$missing" ] || exit 0

roots=()
for python in ${PYTHON:-python3 /opt/*/.venv/bin/python3}; do
    site=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' 2>/dev/null) &&
        [ -d "$site/nvidia" ] && roots+=("$site/nvidia")
done
IFS=: read -r -a extra <<<"${CUDA_LIBRARY_DIRS:-}"
for dir in "${extra[@]}" /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/nvidia/lib64; do
    [ -d "$dir" ] && roots+=("$dir")
done

status=0
found=()
for name in $missing; do
    path=""
    [ ${#roots[@]} -gt 0 ] && path=$(find "${roots[@]}" -maxdepth 3 -name "$name" -print -quit 2>/dev/null)
    if [ -n "$path" ]; then
        echo "library $name: $(dirname "$path")" >&2
        found+=("$(dirname "$path")")
    else
        echo "library $name: not found (searched: ${roots[*]:-nothing})" >&2
        status=1
    fi
done
[ ${#found[@]} -gt 0 ] && printf '%s\n' "${found[@]}" | sort -u
exit $status
