#!/usr/bin/env python3
"""bench/preload/run.py - the cost of profiling an allocation-heavy program.

Builds bench/preload/alloc_heavy.c (cc -O2 -g) and runs it, in interleaved
repetitions, plain and under each profiler:

    plain                        the program alone
    tally --frames 32            tally run, full stacks (32 frames)
    tally --frames 1             tally run, the immediate caller only
    tally --sample 524288        tally run, Poisson sampling, one per 512 KiB
    heaptrack                    heaptrack (if installed)
    massif                       valgrind --tool=massif (if installed)

and prints the median wall time of each, its ratio to plain, the interquartile
spread and the capture size.  Not a test (make bench-preload runs it):

    run.py BUILD_DIR [--reps 5] [--n 5000000] [--skip heaptrack,massif]

BUILD_DIR holds src/tools/tally (a Release build: make bench-preload).
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
try:
    from bench_stats import cpu_model  # shared with the other runners
except Exception:  # pragma: no cover - the runner works without it
    def cpu_model():
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("model name"):
                        return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return "unknown CPU"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("build")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--n", type=int, default=5000000, help="mallocs (default 5e6)")
    ap.add_argument("--skip", default="", help="comma-separated modes to leave out")
    args = ap.parse_args()

    tally = os.path.join(args.build, "src", "tools", "tally")
    if not os.access(tally, os.X_OK):
        sys.exit(f"run.py: {tally} not found (build it: make bench-preload)")
    tmp = tempfile.mkdtemp(prefix="tally-bench-")
    prog = os.path.join(tmp, "alloc_heavy")
    subprocess.run([os.environ.get("CC", "cc"), "-O2", "-g", "-o", prog,
                    os.path.join(HERE, "alloc_heavy.c")], check=True)
    cap = os.path.join(tmp, "cap.tly")
    n = str(args.n)
    modes = [
        ("plain", [prog, n], None),
        ("tally --frames 32", [tally, "run", "--frames", "32", "-o", cap, "--", prog, n], cap),
        ("tally --frames 1", [tally, "run", "--frames", "1", "-o", cap, "--", prog, n], cap),
        ("tally --sample 524288", [tally, "run", "--sample", "524288", "-o", cap, "--", prog, n],
         cap),
    ]
    ht = shutil.which("heaptrack")
    if ht:
        hto = os.path.join(tmp, "ht")
        modes.append(("heaptrack", [ht, "-o", hto, prog, n], None))
    else:
        print("heaptrack not installed (scripts/deps.sh --bench): left out")
    vg = shutil.which("valgrind")
    if vg:
        modes.append(("massif", [vg, "--tool=massif", f"--massif-out-file={tmp}/massif.out",
                                 prog, n], None))
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    modes = [m for m in modes if m[0].split()[0] not in skip and m[0] not in skip]

    times = {m[0]: [] for m in modes}
    sizes = {}
    expected = None
    for rep in range(args.reps):
        for name, cmd, out in modes:
            for f in os.listdir(tmp):
                if f.startswith(("cap.tly", "ht", "massif.out")):
                    os.unlink(os.path.join(tmp, f))
            t0 = time.perf_counter()
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            dt = time.perf_counter() - t0
            if p.returncode != 0:
                sys.exit(f"run.py: {name} failed (exit {p.returncode})")
            # The program prints one line (heaptrack adds lines of its own).
            lines = p.stdout.splitlines()
            if expected is None:
                expected = lines[-1]
            elif expected not in lines:
                sys.exit(f"run.py: {name} printed {lines!r}, plain printed {expected!r}")
            times[name].append(dt)
            if out:
                sizes[name] = os.path.getsize(out)
        print(f"rep {rep + 1}/{args.reps}: " +
              ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()), flush=True)

    # tally report on the last full-stack capture: how long the analysis takes.
    report_s = None
    if "tally --frames 32" in times:
        subprocess.run(modes[1][1], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=True)
        t0 = time.perf_counter()
        subprocess.run([tally, "report", cap], stdout=subprocess.DEVNULL, check=True)
        report_s = time.perf_counter() - t0

    base = statistics.median(times["plain"])
    print()
    print(f"{args.n} mallocs of 16-256 B, ring of 10^5 live blocks; {args.reps} interleaved "
          f"reps, median wall time; {cpu_model()}, {os.cpu_count()} cores")
    print()
    print("| run | median s | IQR s | ratio to plain | capture |")
    print("|---|---:|---:|---:|---:|")
    for name, _, _ in modes:
        v = sorted(times[name])
        med = statistics.median(v)
        q = statistics.quantiles(v, n=4) if len(v) >= 2 else [v[0], v[0], v[0]]
        size = f"{sizes[name] / 1e6:.1f} MB" if name in sizes else ""
        print(f"| {name} | {med:.3f} | {q[2] - q[0]:.3f} | {med / base:.2f}x | {size} |")
    if report_s is not None:
        print(f"\ntally report of the full-stack capture: {report_s:.2f} s")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
