#!/usr/bin/env bash
# find_libraries.sh on a program linked to a library the loader cannot find: the library sits in
# a fake Python environment's nvidia wheel folder, as cuDNN and NCCL may on a GPU host; another
# sits nowhere. Needs cc. Usage: test_find_libraries.sh SCRATCH_DIR
set -u
here=$(cd "$(dirname "$0")" && pwd)
work=$1
rm -rf "$work" && mkdir -p "$work/site/nvidia/fakednn/lib" "$work/elsewhere" || exit 1
failed=0
fail() {
    echo "FAIL: $*"
    failed=1
}

echo 'int fake_dnn(void) { return 7; }' >"$work/dnn.c"
echo 'int fake_other(void) { return 8; }' >"$work/other.c"
echo 'int fake_dnn(void); int main(void) { return fake_dnn() == 7 ? 0 : 1; }' >"$work/uses_dnn.c"
echo 'int fake_dnn(void); int fake_other(void); int main(void) { return fake_dnn() + fake_other(); }' \
    >"$work/uses_both.c"
cc -shared -fPIC -o "$work/site/nvidia/fakednn/lib/libfakednn.so.9" -Wl,-soname,libfakednn.so.9 \
    "$work/dnn.c" &&
    cc -shared -fPIC -o "$work/elsewhere/libfakeother.so.2" -Wl,-soname,libfakeother.so.2 \
        "$work/other.c" &&
    cc -o "$work/uses_dnn" "$work/uses_dnn.c" "$work/site/nvidia/fakednn/lib/libfakednn.so.9" &&
    cc -o "$work/uses_both" "$work/uses_both.c" "$work/site/nvidia/fakednn/lib/libfakednn.so.9" \
        "$work/elsewhere/libfakeother.so.2" || exit 1

# a Python whose site-packages is $work/site
cat >"$work/python" <<EOF
#!/bin/sh
echo "$work/site"
EOF
chmod +x "$work/python"

"$work/uses_dnn" 2>/dev/null && fail "the loader found libfakednn by itself; the test proves nothing"

dirs=$(PYTHON=$work/python "$here/find_libraries.sh" "$work/uses_dnn" 2>"$work/err") ||
    fail "exit $? for a library the fake environment holds: $(cat "$work/err")"
[ "$dirs" = "$work/site/nvidia/fakednn/lib" ] || fail "folders: '$dirs'"
grep -q "library libfakednn.so.9: $work/site/nvidia/fakednn/lib" "$work/err" || fail "stderr: $(cat "$work/err")"
LD_LIBRARY_PATH=$dirs "$work/uses_dnn" || fail "uses_dnn did not run with the folder found"

# one found, one nowhere: exit 1, the found folder still printed, the missing one named
dirs=$(PYTHON=$work/python "$here/find_libraries.sh" "$work/uses_both" 2>"$work/err") &&
    fail "exit 0 with libfakeother.so.2 nowhere"
[ "$dirs" = "$work/site/nvidia/fakednn/lib" ] || fail "folders with one missing: '$dirs'"
grep -q "library libfakeother.so.2: not found" "$work/err" || fail "stderr: $(cat "$work/err")"

# CUDA_LIBRARY_DIRS finds the other
dirs=$(PYTHON=$work/python CUDA_LIBRARY_DIRS=/nonexistent:$work/elsewhere \
    "$here/find_libraries.sh" "$work/uses_both" 2>"$work/err") || fail "exit $?: $(cat "$work/err")"
[ "$(echo "$dirs" | wc -l)" = 2 ] || fail "two folders expected: '$dirs'"
LD_LIBRARY_PATH=$(echo "$dirs" | paste -sd:) "$work/uses_both"
[ $? = 15 ] || fail "uses_both did not run with the folders found"

# nothing missing: nothing printed, exit 0
dirs=$("$here/find_libraries.sh" /bin/sh 2>"$work/err") || fail "exit $? for /bin/sh"
[ -z "$dirs" ] || fail "folders for /bin/sh: '$dirs'"

[ $failed = 0 ] && echo "test_find_libraries: passed"
exit $failed
