#!/usr/bin/env bash
# find_libraries.sh on programs linked to libraries the loader cannot find, laid out as a GPU
# host's Python wheels may hold cuDNN, NCCL and the CUDA runtime: a fake environment's
# site-packages/nvidia/<name>/lib folders, one library needing another from a second wheel, a
# fake CUDA runtime whose NVRTC (opened at run time, invisible to ldd) sits in a third; and one
# library that is nowhere. Needs a C compiler (CC, default cc).
# Usage: test_find_libraries.sh SCRATCH_DIR
set -u
here=$(cd "$(dirname "$0")" && pwd)
work=$1
cc=${CC:-cc}
wheels=$work/site/nvidia
rm -rf "$work" && mkdir -p "$wheels/fakednn/lib" "$wheels/fakeblas/lib" "$wheels/fakert/lib" \
    "$wheels/fakertc/lib" "$work/elsewhere" || exit 1
failed=0
fail() {
    echo "FAIL: $*"
    failed=1
}

# library NAME FOLDER SOURCE [LINKED LIBRARIES...]
library() {
    local name=$1 dir=$2 source=$3
    shift 3
    echo "$source" >"$work/$name.c"
    "$cc" -shared -fPIC -o "$dir/$name" -Wl,-soname,"$name" "$work/$name.c" "$@"
}
library libfakeblas.so.13 "$wheels/fakeblas/lib" 'int fake_blas(void) { return 3; }' || exit 1
# cuDNN's stand-in needs the cuBLAS one, from another wheel
library libfakednn.so.9 "$wheels/fakednn/lib" \
    'int fake_blas(void); int fake_dnn(void) { return 4 + fake_blas(); }' \
    "$wheels/fakeblas/lib/libfakeblas.so.13" || exit 1
library libcudart.so.99 "$wheels/fakert/lib" 'int fake_runtime(void) { return 1; }' || exit 1
library libnvrtc.so.99 "$wheels/fakertc/lib" 'int fake_compile(void) { return 2; }' || exit 1
library libfakeother.so.2 "$work/elsewhere" 'int fake_other(void) { return 8; }' || exit 1
echo 'int fake_dnn(void); int main(void) { return fake_dnn() == 7 ? 0 : 1; }' >"$work/uses_dnn.c"
echo 'int fake_dnn(void); int fake_other(void); int main(void) { return fake_dnn() + fake_other(); }' \
    >"$work/uses_both.c"
echo 'int fake_runtime(void); int main(void) { return fake_runtime() == 1 ? 0 : 1; }' \
    >"$work/uses_runtime.c"
"$cc" -o "$work/uses_dnn" "$work/uses_dnn.c" "$wheels/fakednn/lib/libfakednn.so.9" \
    -Wl,-rpath-link,"$wheels/fakeblas/lib" &&
    "$cc" -o "$work/uses_both" "$work/uses_both.c" "$wheels/fakednn/lib/libfakednn.so.9" \
        "$work/elsewhere/libfakeother.so.2" -Wl,-rpath-link,"$wheels/fakeblas/lib" &&
    "$cc" -o "$work/uses_runtime" "$work/uses_runtime.c" "$wheels/fakert/lib/libcudart.so.99" ||
    exit 1

# a Python whose nvidia wheels are under $work/site (what nvidia.__path__ lists)
printf '#!/bin/sh\necho "%s"\n' "$wheels" >"$work/python"
chmod +x "$work/python"
find_libraries() { PYTHON=$work/python "$here/find_libraries.sh" "$@"; }

"$work/uses_dnn" 2>/dev/null && fail "the loader found libfakednn by itself; the test proves nothing"

# cuDNN's stand-in and, found only once it is, the cuBLAS one it needs
dirs=$(find_libraries "$work/uses_dnn" 2>"$work/err") ||
    fail "exit $? for libraries the fake environment holds: $(cat "$work/err")"
[ "$dirs" = "$(printf '%s\n' "$wheels/fakednn/lib" "$wheels/fakeblas/lib")" ] || fail "folders: '$dirs'"
grep -q "library libfakednn.so.9: $wheels/fakednn/lib" "$work/err" || fail "stderr: $(cat "$work/err")"
LD_LIBRARY_PATH=$(echo "$dirs" | paste -sd:) "$work/uses_dnn" || fail "uses_dnn did not run"

# one found, one nowhere: exit 1, the found folders still printed, the missing one named
dirs=$(find_libraries "$work/uses_both" 2>"$work/err") && fail "exit 0 with libfakeother.so.2 nowhere"
[ "$(echo "$dirs" | wc -l)" = 2 ] || fail "folders with one missing: '$dirs'"
grep -q "library libfakeother.so.2: not found" "$work/err" || fail "stderr: $(cat "$work/err")"

# CUDA_LIBRARY_DIRS finds the other
dirs=$(CUDA_LIBRARY_DIRS=/nonexistent:$work/elsewhere find_libraries "$work/uses_both" 2>"$work/err") ||
    fail "exit $?: $(cat "$work/err")"
[ "$(echo "$dirs" | wc -l)" = 3 ] || fail "three folders expected: '$dirs'"
LD_LIBRARY_PATH=$(echo "$dirs" | paste -sd:) "$work/uses_both"
[ $? = 15 ] || fail "uses_both did not run with the folders found"

# a CUDA runtime from a wheel: its NVRTC comes along though no program links it
dirs=$(find_libraries "$work/uses_runtime" 2>"$work/err") || fail "exit $?: $(cat "$work/err")"
[ "$dirs" = "$(printf '%s\n' "$wheels/fakert/lib" "$wheels/fakertc/lib")" ] ||
    fail "folders with NVRTC: '$dirs' ($(cat "$work/err"))"

# nothing missing: nothing printed, exit 0
dirs=$("$here/find_libraries.sh" /bin/sh 2>"$work/err") || fail "exit $? for /bin/sh"
[ -z "$dirs" ] || fail "folders for /bin/sh: '$dirs'"

[ $failed = 0 ] && echo "test_find_libraries: passed"
exit $failed
