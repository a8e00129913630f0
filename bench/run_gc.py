#!/usr/bin/env python3
"""run_gc.py - runs Tally's objects and collector against CPython's, side by side.

It builds nothing: point it at the directory holding gc_bench_tally and
gc_bench_cpython (bench/CMakeLists.txt makes them with -DTALLY_BUILD_BENCH=ON), e.g.

    cmake -S . -B build-bench -DTALLY_BUILD_BENCH=ON -DCMAKE_BUILD_TYPE=Release
    cmake --build build-bench --target gc_bench
    python3 bench/run_gc.py build-bench/bench

Every (test, side) pair runs in its own process, so each starts from a fresh heap
(CPython from a fresh interpreter).  Within a repetition the two sides of a test
run back to back, the side that goes first alternating from one repetition to the
next; the figure kept is the median of --reps runs.  The processes are pinned to
one CPU (the last one this process may use, or --cpu N; --no-pin to leave them
free), which is what `taskset -c N` would do.

The tests (gc_bench.h has the details; N = 10^6, ITER = 10^7 at scale 1):
  1   one full collection of N reachable one-element containers       ns/object
  2   the full collection that frees N/2 unreachable 2-cycles           ns/object
  3   the full collection that frees one unreachable cycle of N         ns/object
  4   ITER random replacements in a ring of 10^4 containers that refer
      to themselves (each replaced one is cyclic garbage), automatic
      collection at (700, 10, 10); also collections and longest pause  ns/iteration
  4a  the same without cycles: the replaced container dies by count     ns/iteration
  5   create + release a one-slot container (PyTuple_New(1))            ns/pair
  5n  create + release a small non-container (PyFloat_FromDouble)       ns/pair
  6   bytes per object: header, heap and resident, 16-byte payload      bytes/object

It prints one table: the median for each side, the spread of the runs
(interquartile range as a percentage of the median), and the ratio cpython/tally
(a speedup for times, a saving for bytes), with a verdict on the target, a
speedup of at least 3 on tests 1 to 5.  It checks that both sides did the same
work: the same number of objects collected in tests 1-3 (0, N, N) and the same
random sequence in test 4 (a checksum).

Useful options: --quick (scale 0.1, 3 reps), --tests 1,2,5, --reps 9, --markdown,
--json FILE (every raw run), --strict (exit 1 if a target is missed).
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

from bench_stats import cpu_model, iqr_percent

SIDES = ["tally", "cpython"]
TESTS = ["1", "2", "3", "4", "4a", "5", "5n", "6"]
TARGET = 3.0                               # wanted speedup, cpython time / tally time
TARGET_TESTS = {"1", "2", "3", "4", "5"}   # the brief's (1)..(5); 4a and 5n are extra
ENV_DROP_PREFIXES = ("PYTHON", "TALLY_", "MALLOC_", "MIMALLOC_", "TCMALLOC_", "JEMALLOC_")
ENV_DROP = {"LD_PRELOAD", "GLIBC_TUNABLES", "MALLOC_CONF"}

# One table row: (test, key in the output line, what, unit, is a time, is the headline).
ROWS = [
    ("1", "ns_per_op", "full collection, {n} reachable 1-element containers", "ns/object", True, True),
    ("1", "first_ns_per_obj", "  the first one (objects still young)", "ns/object", True, False),
    ("1", "free_ns_per_obj", "  releasing the structure by count afterwards", "ns/object", True, False),
    ("2", "ns_per_op", "full collection freeing {n} objects in 2-cycles", "ns/object", True, True),
    ("3", "ns_per_op", "full collection freeing one cycle of {n}", "ns/object", True, True),
    ("4", "ns_per_op", "{n} replacements in a 10^4 ring, cyclic garbage, auto GC", "ns/iter", True, True),
    ("4", "coll", "  collections gen0/gen1/gen2", "count", False, False),
    ("4", "max_pause_ms", "  longest collection pause", "ms", True, False),
    ("4", "gc_share", "  share of the time spent collecting", "%", False, False),
    ("4a", "ns_per_op", "{n} replacements in a 10^4 ring, no cycles, auto GC", "ns/iter", True, True),
    ("4a", "coll", "  collections gen0/gen1/gen2", "count", False, False),
    ("5", "ns_per_op", "{n} x create + release one-slot container (tuple)", "ns/pair", True, True),
    ("5n", "ns_per_op", "{n} x create + release 8-byte non-container (float)", "ns/pair", True, True),
    ("6", "header_plain", "header bytes, non-container", "bytes", False, True),
    ("6", "header_container", "header bytes, container", "bytes", False, True),
    ("6", "heap_plain", "heap bytes per object, non-container, 16 B payload", "bytes", False, True),
    ("6", "heap_container", "heap bytes per object, container, 16 B payload", "bytes", False, True),
    ("6", "rss_plain", "resident bytes per object, non-container ({n})", "bytes", False, True),
    ("6", "rss_container", "resident bytes per object, container ({n})", "bytes", False, True),
]


def clean_env():
    return {k: v for k, v in os.environ.items()
            if k not in ENV_DROP and not k.startswith(ENV_DROP_PREFIXES)}


def parse_line(text):
    """The key=value dict of the last output line that starts with side=."""
    for line in reversed(text.strip().splitlines()):
        if line.startswith("side="):
            return dict(f.split("=", 1) for f in line.split() if "=" in f)
    return None


def derive(rec):
    """Adds the computed fields the table shows (numbers become floats)."""
    for k, v in list(rec.items()):
        if k not in ("side", "test", "pyver", "threshold", "type", "pause_pass_coll",
                     "checksum"):
            try:
                rec[k] = float(v)
            except ValueError:
                pass
    if "coll0" in rec:
        rec["coll"] = "%d/%d/%d" % (rec["coll0"], rec["coll1"], rec["coll2"])
        rec["max_pause_ms"] = rec["max_pause_us"] / 1e3
        # Tally's collection time comes from its statistics over the timed pass;
        # CPython's from its second pass, the one with the timing callback.
        total = rec.get("pause_pass_ms", rec["total_ms"])
        rec["gc_share"] = 100.0 * rec["gc_ms"] / total if total else 0.0
    return rec


def run_one(binary, test, scale, env, timeout):
    cmd = [binary, test, repr(scale)]
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, "timed out after %ds" % timeout
    rec = parse_line(p.stdout) if p.returncode == 0 else None
    if rec is None:
        return None, "exit %d: %s" % (p.returncode, (p.stderr or p.stdout).strip()[-500:])
    try:
        return derive(rec), None
    except (KeyError, ValueError) as e:
        return None, "unparsable output (%s): %s" % (e, p.stdout.strip()[:500])


def count_words(n):
    """10^6 for 1000000, else the plain number (titles read like the brief)."""
    n = int(n)
    for e in range(9, 2, -1):
        if n == 10 ** e:
            return "10^%d" % e
    if n % 1000 == 0 and n >= 10 ** 5:
        return "%gk" % (n / 1000)
    return str(n)


def fmt(v):
    if isinstance(v, str):
        return v
    if v >= 100:
        return "%.0f" % v
    if v >= 10:
        return "%.1f" % v
    return "%.2f" % v


def median_cell(recs, key):
    """(median or composite string, IQR %, raw values) of key over the runs."""
    vals = [r[key] for r in recs if key in r]
    if not vals:
        return None, None
    if isinstance(vals[0], str):          # "a/b/c" counts: the median of each part
        parts = list(zip(*[[float(x) for x in v.split("/")] for v in vals]))
        return "/".join("%d" % statistics.median(p) for p in parts), None
    return statistics.median(vals), iqr_percent(vals)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bindir", nargs="?", default="build-bench/bench",
                    help="directory with gc_bench_tally and gc_bench_cpython (default: %(default)s)")
    ap.add_argument("--reps", type=int, default=5, help="runs per (test, side); median kept (default 5)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: scale 0.1 and 3 reps unless --reps is given")
    ap.add_argument("--scale", type=float, default=None, help="multiplies N and ITER (default 1)")
    ap.add_argument("--tests", default=",".join(TESTS),
                    help="comma-separated subset of %s (default: all)" % ",".join(TESTS))
    ap.add_argument("--cpu", type=int, default=None,
                    help="pin the runs to this CPU (default: the last CPU allowed)")
    ap.add_argument("--no-pin", action="store_true", help="do not pin the runs to a CPU")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per run (default 600)")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument("--json", metavar="FILE", help="also write every raw run to FILE")
    ap.add_argument("--strict", action="store_true",
                    help="exit 1 if both sides were measured and a target was missed")
    args = ap.parse_args()

    reps_given = any(a == "--reps" or a.startswith("--reps=") for a in sys.argv[1:])
    reps = args.reps if (reps_given or not args.quick) else 3
    scale = args.scale if args.scale is not None else (0.1 if args.quick else 1.0)
    tests = [t.strip() for t in args.tests.split(",") if t.strip()]
    for t in tests:
        if t not in TESTS:
            ap.error("unknown test %r (known: %s)" % (t, ", ".join(TESTS)))
    if reps < 1 or not tests:
        ap.error("need --reps >= 1 and at least one test")

    bindir = os.path.abspath(args.bindir)
    present = []
    for s in SIDES:
        b = os.path.join(bindir, "gc_bench_" + s)
        if os.access(b, os.X_OK):
            present.append(s)
        else:
            print("note: %s skipped: %s not found" % (s, b))
    if not present:
        sys.exit("run_gc: no gc_bench_* binary in %s (configure with -DTALLY_BUILD_BENCH=ON "
                 "and build the gc_bench target first)" % bindir)

    pinned = None
    if not args.no_pin and hasattr(os, "sched_setaffinity"):
        allowed = sorted(os.sched_getaffinity(0))
        pinned = args.cpu if args.cpu is not None else allowed[-1]
        os.sched_setaffinity(0, {pinned})  # inherited by the children, like taskset
    env = clean_env()

    print("gc bench: %s; %s; %d CPUs; runner python %s" % (
        platform.platform(), cpu_model(), os.cpu_count() or 0, platform.python_version()))
    print("binaries: %s; scale %g; %d rep(s) per side, median kept; %s" % (
        bindir, scale, reps, "pinned to CPU %d" % pinned if pinned is not None else "not pinned"))
    sys.stdout.flush()

    runs = {(t, s): [] for t in tests for s in present}
    errors = []
    t_start = time.time()
    for rep in range(reps):
        for t in tests:
            order = present if rep % 2 == 0 else present[::-1]
            for s in order:
                rec, err = run_one(os.path.join(bindir, "gc_bench_" + s), t, scale, env,
                                   args.timeout)
                if err:
                    errors.append("%s/%s rep %d: %s" % (t, s, rep + 1, err))
                    print("ERROR %s/%s rep %d: %s" % (t, s, rep + 1, err), file=sys.stderr)
                else:
                    runs[(t, s)].append(rec)
        print("  repetition %d/%d done (%.0fs)" % (rep + 1, reps, time.time() - t_start))
        sys.stdout.flush()

    # Same work on both sides: objects collected, random sequence, thresholds.
    bad = set()
    for t in tests:
        for s in present:
            for r in runs[(t, s)]:
                n = int(r["n"])
                want = {"1": 0, "2": n, "3": n}.get(t)
                if want is not None and int(r["collected"]) != want:
                    bad.add(t)
                    errors.append("test %s/%s: collected %d objects, expected %d" % (
                        t, s, int(r["collected"]), want))
                if "threshold" in r and r["threshold"] != "700,10,10":
                    errors.append("test %s/%s: thresholds %s, expected 700,10,10" % (
                        t, s, r["threshold"]))
        sums = {r.get("checksum") for s in present for r in runs[(t, s)]}
        if len(sums) > 1:
            bad.add(t)
            errors.append("test %s: the sides drew different random sequences" % t)

    pyver = next((r["pyver"] for t in tests for r in runs.get((t, "cpython"), [])), "?")
    head = ["test", "measure", "unit", "tally", "cpython", "cpython/tally", "IQR % t/c", "target"]
    table = []
    verdicts = []
    missed = False
    for (t, key, what, unit, is_time, headline) in ROWS:
        if t not in tests:
            continue
        first = next((runs[(t, s)][0] for s in present if runs[(t, s)]), None)
        if first is None:
            continue
        cells = {}
        for s in SIDES:
            cells[s] = median_cell(runs[(t, s)], key) if s in present else (None, None)
        tv, ti = cells["tally"]
        cv, ci = cells["cpython"]
        ratio = "-"
        if isinstance(tv, float) and isinstance(cv, float) and tv > 0 and unit != "%":
            ratio = "%.2f" % (cv / tv)
        target = ""
        if headline and t in TARGET_TESTS and is_time:
            if t in bad:
                target = "INVALID"
            elif ratio == "-":
                target = "not measured"
            else:
                ok = cv / tv >= TARGET
                target = "MET" if ok else "MISSED"
                missed = missed or not ok
                verdicts.append("test %s: cpython/tally = %s (target >= %.0f): %s" % (
                    t, ratio, TARGET, target))
        spread = "/".join("%.0f" % x if x is not None else "-" for x in (ti, ci))
        table.append([t, what.format(n=count_words(first["n"])), unit,
                      fmt(tv) if tv is not None else "-", fmt(cv) if cv is not None else "-",
                      ratio, spread if (ti is not None or ci is not None) else "", target])

    print()
    print("Tally vs CPython %s: medians of %d runs, scale %g%s" % (
        pyver, reps, scale, ", pinned to CPU %d" % pinned if pinned is not None else ""))
    if args.markdown:
        print()
        print("| " + " | ".join(head) + " |")
        print("|" + "|".join(["---", "---", "---"] + ["---:"] * 4 + ["---"]) + "|")
        for row in table:
            print("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(str(x)) for x in col) for col in zip(head, *table)]
        for row in [head] + table:
            print("  ".join(str(c).rjust(w) if 3 <= i <= 6 else str(c).ljust(w)
                            for i, (c, w) in enumerate(zip(row, widths))).rstrip())

    print()
    print("summary:")
    for v in verdicts:
        print("  " + v)
    if errors:
        print("\n%d problem(s):" % len(errors))
        for e in errors:
            print("  " + e)

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"scale": scale, "reps": reps, "bindir": bindir, "cpu": pinned,
                       "runs": {"%s/%s" % k: v for k, v in runs.items()},
                       "table": [dict(zip(head, row)) for row in table],
                       "errors": errors}, f, indent=1)
    if errors:
        return 1
    if args.strict and missed:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
