#!/usr/bin/env python3
"""run_alloc.py - runs the allocator benchmark side by side and tabulates it.

It builds nothing: point it at the directory holding the alloc_bench_<allocator>
executables (bench/CMakeLists.txt makes them), e.g.

    cmake -S . -B build-bench -DTALLY_BUILD_BENCH=ON -DTALLY_BUILD_TESTS=OFF \
          -DCMAKE_BUILD_TYPE=Release
    cmake --build build-bench -j2
    python3 bench/run_alloc.py build-bench/bench

(bench/run.sh does all three.)  Every (test, allocator) pair runs in its own
process.  Within one repetition all allocators run back to back for a test, in an
order rotated from one repetition to the next, so slow drift and noise from the
machine hit every allocator alike; the figure kept is the median of --reps runs
(time and peak RSS separately).  Allocators whose binary is missing are skipped
(e.g. alloc_bench_tally while the library is unfinished).

Per test it prints: allocator, median ns/op, the spread of the runs (interquartile
range as a percentage of the median), time ratio against mimalloc, peak RSS in MB
(1 MB = 2^20 bytes), RSS ratio against mimalloc and against glibc; then a verdict
line on tally's targets: ns/op at or below mimalloc's on a, b and c, and peak RSS
below glibc's on b.  It also checks that
every allocator computed the same checksum (same work done) and that the jemalloc
and tcmalloc binaries really resolve malloc to those libraries.

Allocator tuning variables (MALLOC_CONF, MIMALLOC_*, TCMALLOC_*, GLIBC_TUNABLES,
LD_PRELOAD, ...) are removed from the children's environment, so every allocator
runs with its defaults.  Python standard library only.

Exit status: 0; 1 if a run failed or a consistency check failed; with --strict
also 1 when tally was measured and missed a target.
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

ALLOCATORS = ["glibc", "mimalloc", "jemalloc", "tcmalloc", "tally"]
TESTS = {
    "a": "malloc+free pairs of 32 bytes (ns per pair)",
    "b": "random replacement in a live set of 16..512-byte blocks (ns per free+malloc)",
    "c": "binary tree of 24-byte nodes, build + free (ns per node)",
}
# Fields of the output line worth showing in a test's title.
TITLE_FIELDS = {"a": ("ops",), "b": ("live", "ops"), "c": ("depth", "ops")}
# Where the global malloc must come from in each binary ("" = not checked).
MALLOC_FROM = {"glibc": "libc.so", "jemalloc": "jemalloc", "tcmalloc": "tcmalloc"}
ENV_DROP_PREFIXES = ("MALLOC_", "MIMALLOC_", "TCMALLOC_", "JE_MALLOC", "JEMALLOC_",
                     "TALLY_", "HEAPPROFILE", "HEAPCHECK")
ENV_DROP = {"LD_PRELOAD", "GLIBC_TUNABLES", "MALLOC_CONF"}


def clean_env():
    env = {}
    for k, v in os.environ.items():
        if k in ENV_DROP or k.startswith(ENV_DROP_PREFIXES):
            continue
        env[k] = v
    return env


def parse_line(text):
    """Returns the key=value dict of the last line starting with alloc=."""
    for line in reversed(text.strip().splitlines()):
        if line.startswith("alloc="):
            return dict(f.split("=", 1) for f in line.split() if "=" in f)
    return None


def run_one(binary, test, scale, env, timeout):
    cmd = [binary, test, repr(scale)]
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, "timed out after %ds" % timeout
    rec = parse_line(p.stdout) if p.returncode == 0 else None
    if rec is None:
        return None, "exit %d: %s" % (p.returncode, (p.stderr or p.stdout).strip()[:500])
    try:
        rec["ns_per_op"] = float(rec["ns_per_op"])
        rec["peak_rss_kb"] = int(rec["peak_rss_kb"])
    except (KeyError, ValueError):
        return None, "unparsable output: " + p.stdout.strip()[:500]
    return rec, None


def fmt_ratio(x, y):
    return "%.2f" % (x / y) if y else "-"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bindir", nargs="?", default="build-bench/bench",
                    help="directory with the alloc_bench_* binaries (default: %(default)s)")
    ap.add_argument("--reps", type=int, default=5, help="runs per pair; median kept (default 5)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: scale 0.1 (10^6 pairs, 10^5 live, depth 16) and 3 reps "
                         "unless --reps is given")
    ap.add_argument("--scale", type=float, default=None, help="explicit scale (default 1)")
    ap.add_argument("--tests", default="abc", help="subset of tests to run (default abc)")
    ap.add_argument("--alloc", default=",".join(ALLOCATORS),
                    help="comma-separated allocators (default: all five)")
    ap.add_argument("--cpu", type=int, default=None,
                    help="pin the benchmark processes to this CPU (sched_setaffinity)")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per run (default 900)")
    ap.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    ap.add_argument("--json", metavar="FILE", help="also write every raw run to FILE")
    ap.add_argument("--strict", action="store_true",
                    help="exit 1 if tally was measured and missed a target")
    args = ap.parse_args()

    reps_given = any(a == "--reps" or a.startswith("--reps=") for a in sys.argv[1:])
    reps = args.reps if (reps_given or not args.quick) else 3
    scale = args.scale if args.scale is not None else (0.1 if args.quick else 1.0)
    tests = [t for t in args.tests if t in TESTS]
    wanted = [a.strip() for a in args.alloc.split(",") if a.strip()]
    if reps < 1 or not tests or not wanted:
        ap.error("need --reps >= 1, at least one test and one allocator")
    for a in wanted:
        if a not in ALLOCATORS:
            ap.error("unknown allocator %r (known: %s)" % (a, ", ".join(ALLOCATORS)))

    bindir = os.path.abspath(args.bindir)
    present, missing = [], []
    for a in wanted:
        b = os.path.join(bindir, "alloc_bench_" + a)
        (present if os.access(b, os.X_OK) else missing).append(a)
    if not present:
        sys.exit("run_alloc: no alloc_bench_* binary in %s (build with "
                 "-DTALLY_BUILD_BENCH=ON first)" % bindir)
    for a in missing:
        print("note: %s skipped: %s/alloc_bench_%s not found" % (a, bindir, a))

    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})  # inherited by the children
    env = clean_env()

    print("alloc bench: %s; %s; %d CPUs; python %s" % (
        platform.platform(), cpu_model(), os.cpu_count() or 0, platform.python_version()))
    print("binaries: %s; scale %g; %d rep(s) per pair, median kept%s" % (
        bindir, scale, reps, "; pinned to CPU %d" % args.cpu if args.cpu is not None else ""))
    sys.stdout.flush()

    runs = {(t, a): [] for t in tests for a in present}
    errors = []
    t_start = time.time()
    for rep in range(reps):
        for t in tests:
            k = rep % len(present)
            order = present[k:] + present[:k]
            for a in order:
                rec, err = run_one(os.path.join(bindir, "alloc_bench_" + a), t, scale,
                                   env, args.timeout)
                if err:
                    errors.append("%s/%s rep %d: %s" % (t, a, rep + 1, err))
                    print("ERROR %s/%s rep %d: %s" % (t, a, rep + 1, err), file=sys.stderr)
                else:
                    runs[(t, a)].append(rec)
        print("  repetition %d/%d done (%.0fs)" % (rep + 1, reps, time.time() - t_start))
        sys.stdout.flush()

    # Consistency: same checksum everywhere, malloc really replaced.
    bad_tests = set()
    for t in tests:
        sums = {}
        for a in present:
            for r in runs[(t, a)]:
                sums.setdefault(r.get("checksum"), set()).add(a)
                want = MALLOC_FROM.get(a, "")
                if want and want not in r.get("malloc_from", ""):
                    errors.append("%s/%s: malloc resolves to %s, expected %s" % (
                        t, a, r.get("malloc_from"), want))
        if len(sums) > 1:
            bad_tests.add(t)
            errors.append("test %s: checksums differ between allocators: %s" % (
                t, {k: sorted(v) for k, v in sums.items()}))

    results = {}
    verdicts = []
    missed = False
    md = args.markdown
    for t in tests:
        rows = {}
        for a in present:
            rs = runs[(t, a)]
            if not rs:
                continue
            ns = [r["ns_per_op"] for r in rs]
            kb = [r["peak_rss_kb"] for r in rs]
            med = statistics.median(ns)
            rows[a] = {"ns": med, "rss_kb": statistics.median(kb),
                       "spread": iqr_percent(ns),
                       "n": len(rs)}
        results[t] = rows
        mi, gl = rows.get("mimalloc"), rows.get("glibc")
        print()
        first = next((runs[(t, a)][0] for a in present if runs[(t, a)]), {})
        title = "test %s: %s; %s" % (t, TESTS[t], " ".join(
            "%s=%s" % (f, first.get(f, "?")) for f in TITLE_FIELDS[t]))
        head = ["allocator", "ns/op", "IQR %", "time x mimalloc", "peak RSS MB",
                "RSS x mimalloc", "RSS x glibc"]
        if md:
            print("**" + title + "**\n")
            print("| " + " | ".join(head) + " |")
            print("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
        else:
            print(title)
            print("  %-9s %9s %9s %16s %12s %15s %12s" % tuple(head))
        for a in ALLOCATORS:
            if a not in rows:
                continue
            r = rows[a]
            cells = [a, "%.2f" % r["ns"], "%.0f" % r["spread"],
                     fmt_ratio(r["ns"], mi["ns"]) if mi else "-",
                     "%.1f" % (r["rss_kb"] / 1024.0),
                     fmt_ratio(r["rss_kb"], mi["rss_kb"]) if mi else "-",
                     fmt_ratio(r["rss_kb"], gl["rss_kb"]) if gl else "-"]
            if md:
                print("| " + " | ".join(cells) + " |")
            else:
                print("  %-9s %9s %9s %16s %12s %15s %12s" % tuple(cells))

        ta = rows.get("tally")
        if t in bad_tests:
            v = "test %s verdict: INVALID - allocators computed different checksums" % t
            missed = missed or ta is not None
        elif ta is None:
            v = "test %s verdict: tally not measured (no alloc_bench_tally) - targets not evaluated" % t
        elif mi is None:
            v = "test %s verdict: mimalloc not measured - time target not evaluated" % t
        else:
            ok_time = ta["ns"] <= mi["ns"]
            parts = ["time %.2f vs mimalloc %.2f ns/op (x%.2f): %s" % (
                ta["ns"], mi["ns"], ta["ns"] / mi["ns"], "MET" if ok_time else "MISSED")]
            ok = ok_time
            if t == "b":
                if gl is None:
                    parts.append("glibc not measured - RSS target not evaluated")
                    ok = False
                else:
                    ok_rss = ta["rss_kb"] < gl["rss_kb"]
                    parts.append("peak RSS %.1f vs glibc %.1f MB (x%.2f): %s" % (
                        ta["rss_kb"] / 1024.0, gl["rss_kb"] / 1024.0,
                        ta["rss_kb"] / gl["rss_kb"], "MET" if ok_rss else "MISSED"))
                    ok = ok and ok_rss
            missed = missed or not ok
            v = "test %s verdict: %s -> %s" % (t, "; ".join(parts),
                                               "targets MET" if ok else "targets MISSED")
        verdicts.append(v)
        print()
        print(v)

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
            json.dump({"scale": scale, "reps": reps, "bindir": bindir,
                       "runs": {"%s/%s" % k: v for k, v in runs.items()},
                       "medians": results, "errors": errors}, f, indent=1)
    if errors:
        return 1
    if args.strict and missed:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
