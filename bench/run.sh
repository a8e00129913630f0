#!/bin/sh
# run.sh - configure, build and run the allocator benchmark in one go.
#
# Configures the whole project in Release with the benchmarks on (tests and
# examples off) into $BUILD_DIR (default: build-bench at the top of the source
# tree), builds it, then runs bench/run_alloc.py on the result; every argument is
# passed on to run_alloc.py (e.g. --quick, --reps 7, --markdown, --cpu 1).
# Extra CMake arguments go in $BENCH_CMAKE_ARGS, e.g. BENCH_CMAKE_ARGS=-DBENCH_WITH_TALLY=OFF
# to measure only the four peer allocators while the library does not build.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${BUILD_DIR:-$root/build-bench}

# shellcheck disable=SC2086  # BENCH_CMAKE_ARGS is meant to split into words
cmake -S "$root" -B "$build" -DTALLY_BUILD_BENCH=ON -DTALLY_BUILD_TESTS=OFF \
      -DTALLY_BUILD_EXAMPLES=OFF -DCMAKE_BUILD_TYPE=Release ${BENCH_CMAKE_ARGS:-}
cmake --build "$build" -j2
exec python3 "$here/run_alloc.py" "$build/bench" "$@"
