# Sourced by the CLI tests: the script runs in a scratch directory removed on exit, and
#   expect STATUS SUBSTRING -- command...
# counts a check that passes when the command exits with STATUS and its stderr holds SUBSTRING
# (with one_line_errors=1, status 1 also requires exactly one line on stderr).
# `finish NAME` prints the counts; its status is the script's.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
passed=0 failed=0 one_line_errors=0

expect() {
  local want_status="$1" want_text="$2"; shift 3
  local out status lines
  out=$("$@" 2>&1 >/dev/null); status=$?
  lines=$(printf '%s\n' "$out" | wc -l)
  if [ "$status" = "$want_status" ] && grep -qF -- "$want_text" <<<"$out" &&
     { [ "$one_line_errors" = 0 ] || [ "$status" != 1 ] || [ "$lines" = 1 ]; }; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: $* -> status $status (want $want_status), stderr: $out (want '$want_text')"
  fi
}

finish() {
  echo "$1: $passed passed, $failed failed"
  [ "$failed" = 0 ]
}
