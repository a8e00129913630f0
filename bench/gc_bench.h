/* gc_bench.h - what the two sides of the objects-and-collector benchmark share.
 *
 * The benchmark compares Tally's objects and cycle collector with CPython's,
 * embedded through its C API.  Each side is its own executable (gc_bench_tally,
 * gc_bench_cpython), so each starts from a fresh heap and neither pays for the
 * other's libraries; bench/run_gc.py runs them interleaved and tabulates the
 * medians.  Both drivers build the same graph shapes, in the same order, with
 * the same random sequence, and print one line of key=value pairs per run:
 *
 *   side=tally test=2 scale=1 n=1000000 ns_per_op=41.2 ... collected=1000000
 *
 * The test identifiers and what they measure (N = 10^6 * scale, ITER = 10^7 * scale):
 *
 *   1   one full collection of N reachable one-element containers held by one
 *       container (all in the oldest generation after a first, untimed,
 *       collection); ns per object.  Also the first collection and the release.
 *   2   the full collection that frees N/2 unreachable 2-cycles (a <-> b); ns per object
 *   3   the full collection that frees one unreachable cycle of N objects; ns per object
 *   4   ITER times: replace a random slot of a ring of 10^4 one-element containers
 *       by a new one that refers to itself, so the one replaced becomes cyclic
 *       garbage; automatic collection on, thresholds (700, 10, 10); ns per iteration,
 *       collections per generation, longest pause
 *   4a  as 4, but the new container refers to a shared leaf: the replaced one dies
 *       by its count (no garbage, so almost no collections: allocations and
 *       deallocations cancel in generation 0's count, on both sides)
 *   5   ITER times create and release a one-slot container; ns per pair
 *   5n  ITER times create and release a small non-container object; ns per pair
 *   6   per-object memory: header bytes, and heap bytes and resident bytes per
 *       object for N non-containers and N containers with a 16-byte payload
 *
 * The helpers below are timing, the shared random generator, resident-set
 * readings, argument parsing and a profiling hook (gc_bench_common.c).
 */
#ifndef GC_BENCH_H
#define GC_BENCH_H

#include <stddef.h>
#include <stdint.h>

/* Items of test 4's ring, fixed whatever the scale. */
#define GC_BENCH_RING 10000u

/* The shared helpers: bench_launder, bench_rng, bench_now_ns, bench_status_kb. */
#include "bench_util.h"

/* Both sides draw the same sequence from this seed. */
#define GCB_SEED 0x7A11C011EC7ull

/* A uniform index in [0, n) from the high 32 bits of one draw (multiply-shift). */
static inline size_t gcb_below(uint64_t draw, size_t n)
{
    return (size_t)(((draw >> 32) * (uint64_t)n) >> 32);
}

/* The parsed command line: `gc_bench_<side> TEST [SCALE]`. */
typedef struct gcb_args {
    const char *test; /* one of gcb_tests[] */
    double scale;     /* multiplies N and ITER; default 1 */
    size_t n;         /* 10^6 * scale: objects of tests 1, 2, 3 and 6 */
    size_t iters;     /* 10^7 * scale: iterations of tests 4, 4a, 5 and 5n */
} gcb_args;

/* Prints "gc_bench(side): what" on stderr and exits with status 2. */
_Noreturn void gcb_die(const char *side, const char *what);
/* An anonymous private mapping of n pointers, already resident (outside both
 * heaps under test, and not counted in test 6's resident-set deltas). */
void **gcb_ptr_array(const char *side, size_t n);
void gcb_ptr_array_free(void **a, size_t n);
/* Profiling hook around each timed region: gcb_profile(1) before the clock
 * starts, gcb_profile(0) after it stops.  When GC_BENCH_PERF_CTL (and optionally
 * GC_BENCH_PERF_ACK) name the control (and acknowledgement) fifos of
 * `perf record -D -1 --control fifo:CTL,ACK`, they send perf "enable" and
 * "disable", so that a profile covers the timed regions only (bench/profile_gc.sh
 * sets this up).  Otherwise they do nothing. */
void gcb_profile(int on);
/* Parses argv or prints the usage and exits. */
gcb_args gcb_parse(const char *side, int argc, char **argv);
/* Is the test id t the same as want? */
int gcb_is(const gcb_args *a, const char *want);

#endif /* GC_BENCH_H */
