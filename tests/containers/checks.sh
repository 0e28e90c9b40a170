# shellcheck shell=bash
# What the container and Slurm test scripts share: `fail MESSAGE` (exit 1), and
# `require PACKAGES -- TOOL...` and `require_root REASON`, which skip the test (exit 77, ctest's
# SKIP_RETURN_CODE) when a tool is missing or the test does not run as root.

fail() {
    echo "FAILED: $*" >&2
    exit 1
}

skip() {
    echo "SKIPPED: $*"
    exit 77
}

require() {
    local packages=$1 tool
    shift 2
    for tool in "$@"; do
        command -v "$tool" >/dev/null || skip "$tool is missing (apt-get install $packages)"
    done
}

require_root() {
    [ "$(id -u)" = 0 ] || skip "$1"
}
