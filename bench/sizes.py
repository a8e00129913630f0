#!/usr/bin/env python3
"""sizes.py - the size table of docs/sizes.md: bytes per element of Tally's
containers against CPython (the installed python3), same structures, same N.

It compiles bench/sizes.c with `cc` against build/libtally.a and include/ (the
types that libtally.a does not define yet are left out: one SIZES_HAVE_<TYPE>
macro per type found with `nm`), runs it, then builds each structure in this
interpreter under tracemalloc and prints a Markdown table.

CPython is measured as Tally is: every block allocated while building, the
containers and every int and str made for them, live at the end.  Two CPython
figures: what tracemalloc records (the bytes requested from the allocator), and
the same blocks rounded as pymalloc serves them (16-byte classes up to 512
bytes; larger blocks as requested, leaving glibc's own overhead out), which is
what Tally's figure includes.  The ratio is Tally / CPython as tracemalloc says,
the figure the issue asks for (it favours CPython).

Usage: python3 bench/sizes.py [--build DIR] [N ...]    (default N: 1e3 1e4 1e5 1e6)
"""
import argparse
import array
import gc
import os
import subprocess
import sys
import tempfile
import tracemalloc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Structure name (as sizes.c prints it), its description, the type it needs
# (None: always there) and how CPython builds it: one element at a time, as the
# C tool does, so that both grow their arrays the same way.
STRUCTURES = [
    ("list_int", "list of distinct ints (1000..)", None,
     lambda n: [i for i in range(1000, 1000 + n)]),
    ("list_range", "list of ints 0..N-1", None,
     lambda n: [i for i in range(n)]),
    ("dict_str_int", 'dict "k%d" -> int', "dict",
     lambda n: {f"k{i}": i for i in range(n)}),
    ("set_int", "set of distinct ints (1000..)", "set",
     lambda n: {i for i in range(1000, 1000 + n)}),
    ("tuple_int", "tuple of distinct ints (1000..)", None,
     lambda n: tuple(range(1000, 1000 + n))),
    ("array_int32", "array('i') of N int32", "array", None),
]


def build_array(n):
    a = array.array("i")
    for i in range(n):
        a.append(i)
    return a


BUILDERS = {name: (build if build else build_array) for name, _, _, build in STRUCTURES}


def available_types(lib):
    """The optional types whose constructor libtally.a defines."""
    out = subprocess.run(["nm", "--defined-only", lib], check=True,
                         capture_output=True, text=True).stdout
    defined = {line.split()[-1] for line in out.splitlines() if line.count(" ") >= 2}
    return [t for t in ("dict", "set", "array") if "tally_" + t in defined]


def run_tally(build_dir, ns):
    lib = os.path.join(build_dir, "libtally.a")
    if not os.path.exists(lib):
        sys.exit(f"sizes.py: {lib} not found: build the library first "
                 "(cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build)")
    types = available_types(lib)
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "sizes")
        cmd = ["cc", "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror",
               "-I" + os.path.join(ROOT, "include")]
        cmd += ["-DSIZES_HAVE_" + t.upper() for t in types]
        cmd += [os.path.join(ROOT, "bench", "sizes.c"), lib, "-o", exe]
        subprocess.run(cmd, check=True)
        out = subprocess.run([exe] + [str(n) for n in ns], check=True,
                             capture_output=True, text=True).stdout
    result = {}
    for line in out.splitlines():
        name, n, used, deep = line.split()
        if used != deep:
            print(f"warning: {name} N={n}: heap growth {used} != deep_sizeof {deep}",
                  file=sys.stderr)
        result[(name, int(n))] = int(used)
    return result


def pymalloc_round(size):
    return (size + 15) & ~15 if size <= 512 else size


def measure_cpython(build, n):
    """(requested, rounded) bytes of the blocks live after build(n)."""
    build(300)  # warm-up, as the C tool does
    gc.collect()
    tracemalloc.start()
    obj = build(n)
    snap = tracemalloc.take_snapshot()
    tracemalloc.stop()
    sizes = [t.size for t in snap.traces]
    del obj, snap
    return sum(sizes), sum(pymalloc_round(s) for s in sizes)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("ns", nargs="*", type=int, default=[10**3, 10**4, 10**5, 10**6])
    args = ap.parse_args()
    tally = run_tally(args.build, args.ns)
    v = sys.version_info
    print(f"| structure | N | Tally B/elem | CPython {v.major}.{v.minor} B/elem "
          "(tracemalloc) | CPython, pymalloc-rounded | Tally / CPython |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, desc, _, _ in STRUCTURES:
        for n in args.ns:
            if (name, n) not in tally:
                continue
            t = tally[(name, n)] / n
            req, rounded = measure_cpython(BUILDERS[name], n)
            print(f"| {desc} | {n:,} | {t:.2f} | {req / n:.2f} | {rounded / n:.2f} "
                  f"| {t / (req / n):.2f} |")


if __name__ == "__main__":
    main()
