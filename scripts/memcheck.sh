#!/usr/bin/env bash
# scripts/memcheck.sh [BUILD_DIR] - run every test of a configured, built build
# directory (default build-valgrind/, a Debug build without sanitizers) under
# valgrind memcheck, through `ctest -T memcheck`.  Fails if any test fails, or
# valgrind reports any error: invalid reads/writes, uses of undefined values, bad
# frees, and definitely lost memory.  The valgrind log of every failing test is
# printed.
#
# Environment: JOBS (parallel tests, default 2), TEST_TIMEOUT (seconds per test
# without its own TIMEOUT property, default 1800), MEMCHECK_EXTRA (more valgrind
# options).  Tests labelled `no_memcheck` are skipped; suppressions are read from
# tests/*.supp if any exist.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$root/build-valgrind}
build=$(cd "$build" && pwd)

if [ ! -f "$build/CTestTestfile.cmake" ]; then
    echo "memcheck: $build is not a configured CMake build with tests" >&2
    exit 2
fi
valgrind=$(command -v valgrind) || {
    echo "memcheck: valgrind not found (scripts/deps.sh installs it)" >&2
    exit 2
}

opts=(--tool=memcheck --error-exitcode=1 --leak-check=full
      --errors-for-leak-kinds=definite --show-leak-kinds=definite
      --num-callers=40 --track-fds=no)
shopt -s nullglob
for supp in "$root"/tests/*.supp; do
    opts+=("--suppressions=$supp")
done
shopt -u nullglob
# shellcheck disable=SC2206
opts+=(${MEMCHECK_EXTRA:-})

cd "$build"
ntests=$(ctest -N -LE no_memcheck | sed -n 's/^Total Tests: *//p')
if [ "${ntests:-0}" -eq 0 ]; then
    echo "memcheck: no tests found in $build" >&2
    exit 1
fi

rm -f Testing/Temporary/MemoryChecker.*.log Testing/Temporary/LastTestsFailed*.log
echo "memcheck: $ntests tests under $valgrind ${opts[*]}"
set +e
ctest -T memcheck \
    --overwrite "MemoryCheckCommand=$valgrind" \
    --overwrite "MemoryCheckCommandOptions=${opts[*]}" \
    -LE no_memcheck --output-on-failure \
    -j"${JOBS:-2}" --timeout "${TEST_TIMEOUT:-1800}" 2>&1 |
    grep -v 'DartConfiguration.tcl'
rc=${PIPESTATUS[0]}
set -e

# Tests that failed per ctest, plus any log with a nonzero error summary (in case a
# test masked valgrind's exit code).
declare -A bad=()
for f in Testing/Temporary/LastTestsFailed*.log; do
    [ -f "$f" ] || continue
    while IFS=: read -r num _; do
        [ -n "$num" ] && bad[$num]=1
    done <"$f"
done
for log in Testing/Temporary/MemoryChecker.*.log; do
    [ -f "$log" ] || continue
    if grep -Eq 'ERROR SUMMARY: [1-9]' "$log"; then
        num=${log#Testing/Temporary/MemoryChecker.}
        bad[${num%.log}]=1
    fi
done

if [ "${#bad[@]}" -ne 0 ]; then
    for num in $(printf '%s\n' "${!bad[@]}" | sort -n); do
        log=Testing/Temporary/MemoryChecker.$num.log
        echo
        echo "---- valgrind log of test #$num ($build/$log) ----"
        if [ ! -s "$log" ]; then
            echo "(no log: the test failed before or outside valgrind, e.g. a timeout)"
        elif grep -Eq 'ERROR SUMMARY: 0 errors' "$log" && ! grep -q "impossible' happened" "$log"; then
            echo "(valgrind reported no error: the test itself failed; its output is above)"
        else
            cat "$log"
        fi
    done
    echo
    echo "memcheck: FAILED (${#bad[@]} test(s))" >&2
    exit 1
fi
if [ "$rc" -ne 0 ]; then
    echo "memcheck: ctest exited with status $rc" >&2
    exit "$rc"
fi
echo "memcheck: all $ntests tests clean under valgrind"
