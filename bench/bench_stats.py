"""bench_stats.py - what the benchmark runners (run_alloc.py, run_gc.py,
run_types.py) share: the machine's CPU model and the spread of repeated runs."""
import platform
import statistics


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def iqr_percent(xs):
    """Interquartile range of xs as a percentage of the median (robust to the odd
    outlier a shared VM produces); the full range when there are under 4 runs."""
    med = statistics.median(xs)
    if not med or len(xs) < 2:
        return 0.0
    if len(xs) < 4:
        return (max(xs) - min(xs)) / med * 100
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return (q[2] - q[0]) / med * 100
