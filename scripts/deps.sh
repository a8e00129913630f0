#!/usr/bin/env bash
# scripts/deps.sh - make sure the tools and libraries Tally's build and tests need
# are installed; install the missing ones with apt-get when running as root.
#
#   scripts/deps.sh           build + test dependencies (make check, make memcheck)
#   scripts/deps.sh --bench   also the allocators the benchmarks compare against
#   scripts/deps.sh --dry-run only report what is missing (exit 1 if anything is)
#
# Nothing is downloaded when everything is present.  `apt-get update` runs only when
# something is missing.  Not root: prints the exact command to run and fails.
set -euo pipefail

bench=0
dry=0
for arg in "$@"; do
    case "$arg" in
        --bench) bench=1 ;;
        --dry-run) dry=1 ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "deps.sh: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

missing=()
add() { # add PACKAGE unless already listed
    local p
    for p in "${missing[@]+"${missing[@]}"}"; do [ "$p" = "$1" ] && return 0; done
    missing+=("$1")
}
have() { command -v "$1" >/dev/null 2>&1; }
# True when a C translation unit including <$1> preprocesses.
have_header() { have cc && printf '#include <%s>\n' "$1" | cc -E -x c - >/dev/null 2>&1; }
have_pc() { have pkg-config && pkg-config --exists "$1"; }

probe() {
    missing=()
    have cmake      || add cmake
    have make       || add make
    have gcc        || add gcc
    have cc         || add gcc
    have_header stdio.h || add libc6-dev
    have nm         || add binutils
    have pkg-config || add pkg-config
    have valgrind   || add valgrind
    have_header valgrind/memcheck.h || add valgrind
    have python3    || add python3       # never reinstalled when python3 exists
    have_pc cmocka  || add libcmocka-dev
    # The profiler (src/tools): libunwind for stacks, libdw (elfutils) to symbolise
    # them, g++ for the C++ test program of operator new/delete.
    have_pc libunwind || add libunwind-dev
    have_header elfutils/libdwfl.h || add libdw-dev
    have g++        || add g++
    if [ "$bench" = 1 ]; then
        have_pc jemalloc      || add libjemalloc-dev
        have_pc libtcmalloc   || add libgoogle-perftools-dev
        have_header mimalloc.h || add libmimalloc-dev
        have heaptrack        || add heaptrack   # bench/preload compares against it
    fi
}

probe
if [ "${#missing[@]}" -eq 0 ]; then
    echo "deps: all build and test dependencies present"
    exit 0
fi

cmd="apt-get install -y ${missing[*]}"
echo "deps: missing: ${missing[*]}"
if [ "$dry" = 1 ]; then
    echo "deps: to install them: apt-get update && $cmd" >&2
    exit 1
fi
if ! have apt-get; then
    echo "deps: no apt-get on this machine; install the equivalents of: ${missing[*]}" >&2
    exit 1
fi
if [ "$(id -u)" != 0 ]; then
    echo "deps: not root; run:" >&2
    echo "    sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive $cmd" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt_opts=(-q -o Dpkg::Use-Pty=0 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
echo "deps: apt-get update"
apt-get "${apt_opts[@]}" update </dev/null
echo "deps: $cmd"
apt-get "${apt_opts[@]}" install -y "${missing[@]}" </dev/null

probe
if [ "${#missing[@]}" -ne 0 ]; then
    echo "deps: still missing after apt-get install: ${missing[*]}" >&2
    exit 1
fi
echo "deps: all build and test dependencies present"
