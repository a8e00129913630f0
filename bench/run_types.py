#!/usr/bin/env python3
"""run_types.py - Tally's built-in types against CPython's C API, side by side.

    cmake -S . -B build-bench -DTALLY_BUILD_BENCH=ON -DCMAKE_BUILD_TYPE=Release
    cmake --build build-bench --target types_bench
    python3 bench/run_types.py build-bench/bench [--reps 7] [--n 1000000] [--markdown]
                               [--tests dictget,intern]

Each (test, side) pair runs in its own process (types_bench.h lists the tests),
the two sides of a test back to back, the one going first alternating between
repetitions, pinned to one CPU.  It prints the median ns per operation of each
side, their spread (interquartile range as a percentage of the median) and the
speedup with the verdict against the issue's target of 2x, and checks that both
sides computed the same value.

The speedup is paired: each repetition's two runs are back to back, so the
ratio of their times (CPython's / Tally's) compares the two sides under the
same conditions, and the speedup is the median of those ratios, printed with
their lowest and highest.  On a shared VM whose memory latency drifts over
seconds, this is steadier than the ratio of the two sides' medians, which can
pair a slow stretch of one side with a fast stretch of the other.

--other NAME compares Tally with types_bench_NAME instead of CPython: with
tally_exported (the same driver built with TALLY_NO_INLINE) it measures what the
inline fast paths of tally/types.h are worth.
"""
import argparse
import os
import statistics
import subprocess
import sys

from bench_stats import iqr_percent

TESTS = [
    ("append", "list append of small ints", "PyList_Append"),
    ("dictset", "dict insert, distinct str keys", "PyDict_SetItem"),
    ("dictget", "dict lookup, str keys, hits", "PyDict_GetItem"),
    ("intern", "intern a C string", "PyUnicode_InternFromString"),
    ("iterate", "iterate a list", "PyObject_GetIter + PyIter_Next"),
]
TARGET = 2.0


def run(binary, test, n, cpu):
    cmd = [binary, test, str(n)]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu)] + cmd
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    fields = dict(kv.split("=", 1) for kv in out.split())
    return float(fields["ns_per_op"]), fields["check"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bindir")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--n", type=int, default=1000000)
    ap.add_argument("--cpu", type=int, default=max(os.sched_getaffinity(0)))
    ap.add_argument("--no-pin", action="store_true")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--tests", help="comma-separated subset of the tests (default: all)")
    ap.add_argument("--other", default="cpython",
                    help="the side to compare with: types_bench_OTHER (default: cpython)")
    args = ap.parse_args()
    tests = TESTS
    if args.tests:
        wanted = args.tests.split(",")
        unknown = set(wanted) - {t for t, _, _ in TESTS}
        if unknown:
            sys.exit(f"run_types: unknown tests {sorted(unknown)}")
        tests = [t for t in TESTS if t[0] in wanted]
    cpu = None if args.no_pin else args.cpu
    other = args.other
    sides = {s: os.path.join(args.bindir, "types_bench_" + s) for s in ("tally", other)}
    results = {}
    for test, _, _ in tests:
        times = {"tally": [], other: []}
        checks = set()
        for rep in range(args.reps):
            order = ("tally", other) if rep % 2 == 0 else (other, "tally")
            for side in order:
                ns, check = run(sides[side], test, args.n, cpu)
                times[side].append(ns)
                checks.add(check)
        if len(checks) != 1:
            sys.exit(f"run_types: the sides disagree on {test}: {sorted(checks)}")
        results[test] = times
    sep = " | " if args.markdown else "  "
    header = ["test", "CPython call", "tally ns/op", f"{other} ns/op", "speedup", "pairs min-max",
              "IQR % t/c", "target"]
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
    else:
        print(sep.join(header))
    for test, what, call in tests:
        t, c = (statistics.median(results[test][s]) for s in ("tally", other))
        pairs = [cn / tn for tn, cn in zip(results[test]["tally"], results[test][other])]
        ratio = statistics.median(pairs)
        row = [f"{test}: {what}", call, f"{t:.1f}", f"{c:.1f}", f"{ratio:.2f}",
               f"{min(pairs):.2f}-{max(pairs):.2f}",
               f"{iqr_percent(results[test]['tally']):.0f}/{iqr_percent(results[test][other]):.0f}",
               ("met" if ratio >= TARGET else "MISSED") if other == "cpython" else "-"]
        print(("| " + " | ".join(row) + " |") if args.markdown else sep.join(row))


if __name__ == "__main__":
    main()
