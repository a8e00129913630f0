/* gc_bench_common.c - helpers shared by gc_bench_tally and gc_bench_cpython.
 *
 * Timing (CLOCK_MONOTONIC), resident-set readings from /proc/self/status, the
 * pointer arrays that hold test 6's objects (mapped directly, so that neither
 * heap under test pays for them), the command line, which both drivers accept
 * in the same form: `gc_bench_<side> TEST [SCALE]`, and the hook that lets perf
 * profile the timed regions alone.  See gc_bench.h for the list of tests.
 */
#define _GNU_SOURCE 1

#include "gc_bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* Every test id, in the order run_gc.py shows them. */
static const char *const tests[] = {"1", "2", "3", "4", "4a", "5", "5n", "6"};

void gcb_die(const char *side, const char *what)
{
    fprintf(stderr, "gc_bench(%s): %s\n", side, what);
    exit(2);
}

void **gcb_ptr_array(const char *side, size_t n)
{
    /* MAP_POPULATE: resident from the start, so that filling it does not show up
     * in the resident-set readings of test 6. */
    void *p = mmap(NULL, n * sizeof(void *), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED)
        gcb_die(side, "mmap of a pointer array failed");
    return p;
}

void gcb_ptr_array_free(void **a, size_t n)
{
    munmap(a, n * sizeof(void *));
}

/* perf's control and acknowledgement fifos, opened by gcb_parse; -1: none. */
static int perf_ctl = -1, perf_ack = -1;

static void profile_init(void)
{
    const char *c = getenv("GC_BENCH_PERF_CTL"), *k = getenv("GC_BENCH_PERF_ACK");
    if (c && *c)
        perf_ctl = open(c, O_WRONLY | O_CLOEXEC);
    if (perf_ctl >= 0 && k && *k)
        perf_ack = open(k, O_RDONLY | O_CLOEXEC);
}

void gcb_profile(int on)
{
    const char *cmd = on ? "enable\n" : "disable\n";
    char reply[16];
    int ctl = perf_ctl, ack = perf_ack;

    if (ctl < 0)
        return;
    if (write(ctl, cmd, strlen(cmd)) != (ssize_t)strlen(cmd))
        return;
    if (ack >= 0) /* perf answers "ack\n" once the events are switched */
        (void)!read(ack, reply, sizeof reply);
}

int gcb_is(const gcb_args *a, const char *want)
{
    return strcmp(a->test, want) == 0;
}

gcb_args gcb_parse(const char *side, int argc, char **argv)
{
    gcb_args a = {NULL, 1.0, 0, 0};
    if (argc == 2 || argc == 3) {
        for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
            if (strcmp(argv[1], tests[i]) == 0)
                a.test = tests[i];
    }
    if (!a.test) {
        fprintf(stderr,
                "usage: %s TEST [SCALE]   (N = 1e6*SCALE objects, ITER = 1e7*SCALE)\n"
                "  1   one full collection of N reachable 1-element containers\n"
                "  2   full collection freeing N/2 unreachable 2-cycles\n"
                "  3   full collection freeing one unreachable cycle of N objects\n"
                "  4   ITER random replacements in a ring of 1e4 self-referring\n"
                "      containers, automatic collection (700, 10, 10)\n"
                "  4a  as 4 without cycles (the replaced container dies by count)\n"
                "  5   ITER create + release of a one-slot container\n"
                "  5n  ITER create + release of a small non-container\n"
                "  6   header, heap and resident bytes per object (16-byte payload)\n",
                argc > 0 ? argv[0] : "gc_bench");
        exit(2);
    }
    if (argc == 3) {
        char *end;
        a.scale = strtod(argv[2], &end);
        if (*end != '\0' || !(a.scale > 0.0) || a.scale > 16.0)
            gcb_die(side, "SCALE must be a number in (0, 16]");
    }
    a.n = (size_t)(1e6 * a.scale);
    a.iters = (size_t)(1e7 * a.scale);
    if (a.n < 2)
        gcb_die(side, "SCALE too small");
    a.n &= ~(size_t)1; /* test 2 builds pairs */
    profile_init();
    return a;
}
