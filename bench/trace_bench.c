/* trace_bench.c - the cost of allocation tracing (tally/trace.h) on a mixed
 * workload: the same work untraced, traced with one frame (file and line),
 * traced with 16 frames (native stacks) and sampled (one frame, one allocation
 * in every 512 KiB on average, tally_trace_start_sampled), in fresh runtimes,
 * interleaved.
 *
 * One round builds 2000 records and throws them away: each record is a dict of
 * three str keys (interned on first use) holding a str made by
 * tally_str_format, an int outside the small-int cache and a list of two such
 * ints, plus a user container object (a node linking to the previous one) and
 * two raw blocks of 16..512 bytes, one of which is realloc'ed.  Records live in
 * a list until the round ends; the ring of nodes is left to the cycle collector.
 * That is about 10 allocations per record, of every kind the library makes.
 *
 * Usage: trace_bench [rounds] [reps] [only]   (defaults 40 and 7; `only` 0..3
 * runs that mode alone, for a profiler).  Prints, per mode, the
 * median time of the reps, ns per allocation, the ratio to the untraced median,
 * the peak traced bytes (estimated when sampled) and the tracer's overhead; the
 * sampled mode uses a fixed seed, so its peak is the same in every run; the modes
 * run in rotated order
 * within each repetition, so drift hits all alike.  Exit status 1 if a run failed.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "tally/tally.h"

typedef struct node {
    struct node *next;
    long value;
} node;

static void node_traverse(void *self, tally_visit_fn visit, void *arg)
{
    node *n = self;
    if (n->next)
        visit(n->next, arg);
}

static void node_clear(void *self)
{
    tally_setref(&((node *)self)->next, NULL);
}

static const tally_type node_type = {
    .name = "node", .size = sizeof(node), .flags = TALLY_TYPE_CONTAINER,
    .traverse = node_traverse, .clear = node_clear,
};

#define RECORDS 2000

static uint64_t rng_state = 1;

static uint64_t rng(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int fail(const char *what)
{
    fprintf(stderr, "trace_bench: %s failed\n", what);
    return -1;
}

/* One round; returns -1 on failure.  *sink gets a checksum. */
static int round_once(tally_rt *rt, unsigned long long *sink)
{
    void *records = tally_list(rt, 0);
    void *raw[RECORDS];
    node *first = NULL, *prev = NULL;
    if (records == NULL)
        return fail("tally_list");
    for (long i = 0; i < RECORDS; i++) {
        void *d = tally_dict(rt);
        void *name = tally_str_format(rt, "record-%ld", i);
        void *id = tally_int(rt, 1000 + i);
        void *pair = tally_list(rt, 2);
        void *a = tally_int(rt, 100000 + i), *b = tally_int(rt, 200000 + i);
        node *n = tally_new(rt, &node_type);
        if (!d || !name || !id || !pair || !a || !b || !n)
            return fail("an allocation");
        if (tally_list_append(pair, a) || tally_list_append(pair, b) ||
            tally_dict_set_c(d, "name", name) || tally_dict_set_c(d, "id", id) ||
            tally_dict_set_c(d, "pair", pair) || tally_list_append(records, d))
            return fail("an insertion");
        tally_decref(a);
        tally_decref(b);
        tally_decref(pair);
        tally_decref(id);
        tally_decref(name);
        tally_decref(d);
        n->value = i;
        if (prev) { /* prev is held by its predecessor now (first: by us) */
            tally_setref(&prev->next, n);
            if (prev != first)
                tally_decref(prev);
        } else {
            first = n;
        }
        prev = n;
        size_t sz = 16 + (size_t)(rng() % 497);
        char *p = tally_malloc(rt, sz);
        char *q = tally_malloc(rt, 16 + (size_t)(rng() % 497));
        if (!p || !q)
            return fail("tally_malloc");
        p[0] = (char)i;
        p = tally_realloc(rt, p, sz * 2);
        if (!p)
            return fail("tally_realloc");
        *sink += (unsigned char)p[0];
        tally_free(rt, q);
        raw[i] = p;
    }
    tally_setref(&prev->next, first); /* a ring: only the collector frees it */
    if (prev != first)
        tally_decref(prev);
    tally_decref(first);
    *sink += tally_list_size(records);
    tally_decref(records);
    for (long i = 0; i < RECORDS; i++)
        tally_free(rt, raw[i]);
    return 0;
}

#define NMODES 4

typedef struct mode {
    const char *name;
    int nframes; /* 0: not traced */
    size_t sample; /* sampling mean in bytes, 0: every allocation */
    double ms[64];
    size_t peak, overhead;
    unsigned long long allocs;
} mode;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *v, int n)
{
    double s[64];
    for (int i = 0; i < n; i++)
        s[i] = v[i];
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static int run(mode *m, int rep, int rounds, unsigned long long *sink)
{
    tally_rt *rt = tally_open(NULL);
    if (rt == NULL)
        return fail("tally_open");
    tally_trace_seed(rt, 42);
    if (m->nframes && tally_trace_start_sampled(rt, m->nframes, m->sample) != 0)
        return fail("tally_trace_start_sampled");
    struct tally_heap_stats before, after;
    tally_heap_stats(rt, &before);
    double t0 = now_ms();
    for (int r = 0; r < rounds; r++) {
        if (round_once(rt, sink) != 0)
            return -1;
        tally_gc_collect(rt, 0);
    }
    m->ms[rep] = now_ms() - t0;
    tally_heap_stats(rt, &after);
    m->allocs = after.allocs - before.allocs;
    if (m->nframes) {
        tally_trace_get_traced_memory(rt, NULL, &m->peak);
        m->overhead = tally_trace_get_overhead(rt);
    }
    tally_close(rt);
    return 0;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 40;
    int reps = argc > 2 ? atoi(argv[2]) : 7;
    int only = argc > 3 ? atoi(argv[3]) : -1;
    if (rounds < 1 || reps < 1 || reps > 64 || only < -1 || only >= NMODES) {
        fprintf(stderr, "usage: trace_bench [rounds >= 1] [reps 1..64] [only 0..%d]\n", NMODES - 1);
        return 2;
    }
    mode modes[NMODES] = {{"untraced", 0, 0, {0}, 0, 0, 0},
                          {"traced, 1 frame", 1, 0, {0}, 0, 0, 0},
                          {"traced, 16 frames", 16, 0, {0}, 0, 0, 0},
                          {"sampled, 512 KiB", 1, 512 * 1024, {0}, 0, 0, 0}};
    unsigned long long sink = 0;
    for (int rep = 0; rep < reps; rep++)
        for (int k = 0; k < NMODES; k++)
            if ((only < 0 || only == (rep + k) % NMODES) &&
                run(&modes[(rep + k) % NMODES], rep, rounds, &sink) != 0)
                return 1;
    if (only >= 0)
        return 0;
    double base = median(modes[0].ms, reps);
    printf("trace_bench: %d rounds of %d records, %llu allocations per run, median of %d runs\n",
           rounds, RECORDS, modes[0].allocs, reps);
    printf("%-18s %10s %12s %8s %14s %14s\n", "mode", "ms", "ns/alloc", "ratio", "peak traced",
           "tracer bytes");
    for (int k = 0; k < NMODES; k++) {
        double ms = median(modes[k].ms, reps);
        printf("%-18s %10.1f %12.1f %7.2fx %14zu %14zu\n", modes[k].name, ms,
               ms * 1e6 / (double)modes[k].allocs, ms / base, modes[k].peak, modes[k].overhead);
    }
    printf("(checksum %llu)\n", sink);
    return 0;
}
