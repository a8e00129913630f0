#!/bin/sh
# profile_gc.sh - a perf profile of one gc benchmark test, its timed region only.
#
#   bench/profile_gc.sh [-s tally|cpython] [-o FILE.data] [-F HZ] [-g] TEST [SCALE]
#
# Runs $BUILD_DIR/bench/gc_bench_<side> TEST SCALE (BUILD_DIR defaults to
# build-bench at the top of the tree; side defaults to tally) under
# `perf record -D -1 --control fifo:...`: recording starts disabled, and the
# driver switches it on and off around the timed region (gcb_profile in
# gc_bench_common.c), so building the graph is left out of the profile.  Then
# prints the hottest symbols (perf report --no-children).  Samples are taken at
# -F HZ (default 20000: a collection lasts only tens of ms; virtual machines have
# no hardware counters, so this is the cpu-clock timer).  -g records call graphs
# (DWARF unwinding: no frame pointers in Release builds).  Inspect further with
# `perf annotate -i FILE.data SYMBOL`; for readable annotations configure a
# separate build with -DCMAKE_C_FLAGS=-g and point BUILD_DIR at it.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${BUILD_DIR:-$(dirname "$here")/build-bench}
side=tally
out=
graph=
freq=20000
while getopts "s:o:F:g" opt; do
    case $opt in
        s) side=$OPTARG ;;
        o) out=$OPTARG ;;
        F) freq=$OPTARG ;;
        g) graph="--call-graph dwarf,16384" ;;
        *) sed -n '2,17p' "$0"; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || { sed -n '2,17p' "$0"; exit 2; }
test=$1
scale=${2:-1}
bin=$build/bench/gc_bench_$side
[ -x "$bin" ] || { echo "profile_gc: $bin not found (build the gc_bench target)" >&2; exit 2; }
[ -n "$out" ] || out=perf-gc-$side-$test.data

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkfifo "$dir/ctl" "$dir/ack"
# shellcheck disable=SC2086  # $graph is empty or two words
GC_BENCH_PERF_CTL=$dir/ctl GC_BENCH_PERF_ACK=$dir/ack \
    perf record -q -F "$freq" -D -1 --control "fifo:$dir/ctl,$dir/ack" $graph -o "$out" -- "$bin" "$test" "$scale"
perf report -i "$out" --no-children --stdio --percent-limit 1 2>/dev/null | grep -v '^#' | grep -v '^$' | head -40
echo "profile: $out"
