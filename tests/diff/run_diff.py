#!/usr/bin/env python3
"""Differential test: Tally's cycle collector against CPython's, on random programs.

Generates the programs of a range of seeds with gen.py, runs each both as a CPython
program (in this interpreter, which should be CPython 3.11) and as an op script in
gc_diff_driver (Tally), and compares the two outputs line by line.  Programs run
in batches, many per process, one batch per job on each side at once.  For each
program whose outputs differ (up to --shrink of them), the program is shrunk by
delta debugging (ops or runs of ops are deleted while the outputs still differ)
and the minimal program is printed in both forms with both outputs.

Usage: run_diff.py [--seeds A..B] [--ops N] [--jobs J] [--shrink M] DRIVER
Exit status: 0 when every program agrees, 1 on a mismatch, 2 on a harness error.
"""

import argparse
import concurrent.futures
import itertools
import os
import platform
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen  # noqa: E402 - found next to this file

MARK = '==='  # ends each program, in op scripts and in both outputs
PY_SEPARATOR = '\n# ' + MARK + '\n'  # between the Python programs of a batch

# Runs a batch of Python programs read from stdin, each in a fresh namespace,
# printing MARK after each.  What a program leaves behind (its classes and
# functions, objects it froze or resurrected) is collected before the next one
# starts; each program's own prologue collects once more.  The runner's own
# objects are frozen, so that full collections have little to walk (they are
# all reachable: a program's gc.unfreeze() changes no result).
PY_COMMAND = [sys.executable, '-I', '-S', '-c', '''\
import gc
import sys
gc.freeze()
for source in sys.stdin.read().split(%r):
    exec(compile(source, '<program>', 'exec'), {'__name__': '__main__'})
    print(%r)
    gc.unfreeze()
    gc.collect()
    gc.freeze()
''' % (PY_SEPARATOR, MARK)]


class HarnessError(Exception):
    """The Python side failed: a bug in this test, not in Tally."""


def run_side(command, programs):
    """Runs one side on a batch; returns the outputs of the programs it finished,
    the output of the one it was running when it stopped, and the process."""
    proc = subprocess.run(command, input=programs, capture_output=True, text=True)
    *finished, rest = proc.stdout.split(MARK + '\n')
    return finished, rest, proc


def run_chunk(driver, bodies):
    """Runs the programs of one chunk on both sides: a list of (CPython output,
    Tally output).  If the driver dies on a program, that program's Tally output
    is what it printed plus the exit status and stderr, and the rest of the chunk
    runs again in a new driver."""
    py_outputs, _, proc = run_side(PY_COMMAND,
                                   PY_SEPARATOR.join(gen.to_python(b) for b in bodies))
    if proc.returncode != 0 or proc.stderr or len(py_outputs) != len(bodies):
        raise HarnessError('python3 failed (status %d):\n%s' % (proc.returncode, proc.stderr))

    c_outputs = []
    while len(c_outputs) < len(bodies):
        rest = bodies[len(c_outputs):]
        finished, partial, proc = run_side(
            [driver], ''.join(gen.to_script(b) + MARK + '\n' for b in rest))
        c_outputs += finished
        if proc.returncode != 0 or len(finished) < len(rest):
            note = '[driver exited with status %d]\n%s' % (proc.returncode, proc.stderr)
            if len(finished) < len(rest):
                c_outputs.append(partial + note)
            else:  # died after its last program
                c_outputs[-1] += note
    return list(zip(py_outputs, c_outputs))


def run_programs(driver, bodies, jobs):
    """(CPython output, Tally output) of each program, jobs batches at a time."""
    size = -(-len(bodies) // jobs) if bodies else 1
    chunks = [bodies[i:i + size] for i in range(0, len(bodies), size)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        results = pool.map(lambda chunk: run_chunk(driver, chunk), chunks)
        return [pair for chunk_result in results for pair in chunk_result]


def shrink(driver, body, jobs):
    """A minimal sub-program of body whose outputs still differ (ddmin over the
    complements: delete one of n runs of ops; on failure to shrink, double n).
    The candidates of a round run as one batch."""
    n = 2
    while body:
        size = -(-len(body) // n)
        candidates = [body[:i] + body[i + size:] for i in range(0, len(body), size)]
        results = run_programs(driver, candidates, jobs)
        failing = [c for c, (py, c_out) in zip(candidates, results) if py != c_out]
        if failing:
            body = failing[0]
            n = max(n - 1, 2)
        elif size == 1:
            break
        else:
            n = min(2 * n, len(body))
    return body


def describe_outputs(py_output, c_output):
    """Both outputs line by line: agreeing lines once, differing lines twice."""
    rows = []
    for a, b in itertools.zip_longest(py_output.splitlines(), c_output.splitlines()):
        if a == b:
            rows.append('          %s' % a)
            continue
        if a is not None:
            rows.append('- CPython %s' % a)
        if b is not None:
            rows.append('+ Tally   %s' % b)
    return '\n'.join(rows)


def report(driver, seed, nops, body, jobs):
    """Shrinks a failing program and prints it in both forms with both outputs."""
    small = shrink(driver, body, jobs)
    py_output, c_output = run_programs(driver, [small], 1)[0]
    print('=' * 78)
    print('MISMATCH: seed %d (%d ops) shrinks to %d ops (+ %d of epilogue)'
          % (seed, nops, len(small), len(gen.EPILOGUE)))
    print('--- op script (gc_diff_driver) ---')
    print(gen.to_script(small), end='')
    print('--- Python program ---')
    print(gen.to_python(small, 'seed %d, shrunk' % seed), end='')
    print('--- outputs (- CPython, + Tally) ---')
    print(describe_outputs(py_output, c_output))


def parse_seeds(text):
    first, _, last = text.partition('..')
    return range(int(first), int(last or first) + 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('driver', help='path to gc_diff_driver')
    parser.add_argument('--seeds', type=parse_seeds, default=parse_seeds('1..2000'),
                        help='inclusive range A..B (default 1..2000)')
    parser.add_argument('--ops', type=int, default=60, help='ops per program (default 60)')
    parser.add_argument('--jobs', type=int, default=os.cpu_count() or 2,
                        help='batches run at once on each side (default: CPUs)')
    parser.add_argument('--shrink', type=int, default=3,
                        help='failing programs to shrink and report (default 3)')
    args = parser.parse_args()

    if platform.python_implementation() != 'CPython' or sys.version_info[:2] != (3, 11):
        print('gc_diff: warning: the reference is %s %s; the test follows CPython 3.11'
              % (platform.python_implementation(), platform.python_version()), file=sys.stderr)

    start = time.monotonic()
    seeds = list(args.seeds)
    bodies = [gen.generate(seed, args.ops) for seed in seeds]
    try:
        results = run_programs(args.driver, bodies, args.jobs)
        failing = [(seed, body) for seed, body, (py, c) in zip(seeds, bodies, results)
                   if py != c]
        for seed, body in failing[:args.shrink]:
            report(args.driver, seed, args.ops, body, args.jobs)
    except HarnessError as e:
        print('gc_diff: harness error: %s' % e, file=sys.stderr)
        return 2
    print('gc_diff: %d programs (seeds %d..%d, %d ops each), %d mismatches, %.1f s'
          % (len(seeds), seeds[0], seeds[-1], args.ops, len(failing), time.monotonic() - start))
    if failing:
        print('gc_diff: failing seeds: %s' % ' '.join(str(s) for s, _ in failing))
    return 1 if failing else 0


if __name__ == '__main__':
    sys.exit(main())
