/* gc_bench_tally.c - Tally's side of the objects-and-collector benchmark.
 *
 * Builds the graphs of gc_bench.h out of Tally objects on one runtime from
 * tally_open(NULL) and times the collector (tally_gc_collect) and the object
 * life cycle (tally_new / tally_decref); gc_bench_cpython.c does the same with
 * CPython lists and tuples.  The shapes match CPython's one for one:
 *
 *   Python                     Tally
 *   list of n items            vec: a var-size container (tally_new_var) of n slots
 *   [None]                     vec of 1 slot holding a shared non-container leaf
 *   PyTuple_New(1)             one1: a fixed-size container with one slot
 *   float                      plain8: a non-container with an 8-byte payload
 *   complex (16-byte payload)  leaf16: a non-container with a 16-byte payload
 *   class with __slots__=a,b   pair16: a container with two slots (16-byte payload)
 *
 * Every type has traverse and clear, as CPython's list and tuple have tp_traverse
 * and tp_clear.  The executable links libtally.so, so that every call into the
 * library goes through the PLT, as every call into libpython does on the other side.
 * Usage and output: see gc_bench.h.
 */
#define _GNU_SOURCE 1

#include "gc_bench.h"

#include <stdio.h>
#include <string.h>

#include "tally/gc.h"
#include "tally/heap.h"
#include "tally/object.h"
#include "tally/tally.h"

#define SIDE "tally"

/* ---- the types ------------------------------------------------------------------ */

/* A list-like container: a count, then that many reference slots (NULL allowed). */
typedef struct vec {
    size_t n;     /* slots after the fixed part (set once, after tally_new_var) */
    void *item[]; /* n references */
} vec;

static void vec_traverse(void *self, tally_visit_fn visit, void *arg)
{
    vec *v = self;
    for (size_t i = 0; i < v->n; i++)
        if (v->item[i])
            visit(v->item[i], arg);
}

static void vec_clear(void *self)
{
    vec *v = self;
    for (size_t i = 0; i < v->n; i++) {
        void *o = v->item[i];
        if (o) {
            v->item[i] = NULL;
            tally_decref(o);
        }
    }
}

static const tally_type vec_type = {
    .name = "vec",
    .size = sizeof(vec),
    .item_size = sizeof(void *),
    .flags = TALLY_TYPE_CONTAINER,
    .traverse = vec_traverse,
    .clear = vec_clear,
};

/* A tuple of one: a fixed-size container with a single slot. */
typedef struct one1 {
    void *item; /* a reference or NULL */
} one1;

static void one1_traverse(void *self, tally_visit_fn visit, void *arg)
{
    one1 *t = self;
    if (t->item)
        visit(t->item, arg);
}

static void one1_clear(void *self)
{
    one1 *t = self;
    void *o = t->item;
    if (o) {
        t->item = NULL;
        tally_decref(o);
    }
}

static const tally_type one1_type = {
    .name = "one1",
    .size = sizeof(one1),
    .flags = TALLY_TYPE_CONTAINER,
    .traverse = one1_traverse,
    .clear = one1_clear,
};

/* Test 6's container: two slots, 16 bytes of payload (a Python class with
 * __slots__ = ('a', 'b')). */
typedef struct pair16 {
    void *a, *b; /* references or NULL */
} pair16;

static void pair16_traverse(void *self, tally_visit_fn visit, void *arg)
{
    pair16 *p = self;
    if (p->a)
        visit(p->a, arg);
    if (p->b)
        visit(p->b, arg);
}

static void pair16_clear(void *self)
{
    pair16 *p = self;
    tally_setref(&p->a, NULL);
    tally_setref(&p->b, NULL);
}

static const tally_type pair16_type = {
    .name = "pair16",
    .size = sizeof(pair16),
    .flags = TALLY_TYPE_CONTAINER,
    .traverse = pair16_traverse,
    .clear = pair16_clear,
};

/* Non-containers: 16 bytes of payload (complex; the shared leaf of tests 1 and 4a)
 * and 8 bytes (float, test 5n). */
typedef struct leaf16 {
    double re, im;
} leaf16;
static const tally_type leaf16_type = {.name = "leaf16", .size = sizeof(leaf16)};

typedef struct plain8 {
    double v;
} plain8;
static const tally_type plain8_type = {.name = "plain8", .size = sizeof(plain8)};

/* ---- helpers ---------------------------------------------------------------------- */

static void *new_obj(tally_rt *rt, const tally_type *t)
{
    void *o = tally_new(rt, t);
    if (!o)
        gcb_die(SIDE, tally_last_error_message(rt));
    return o;
}

static vec *new_vec(tally_rt *rt, size_t n)
{
    vec *v = tally_new_var(rt, &vec_type, n);
    if (!v)
        gcb_die(SIDE, tally_last_error_message(rt));
    v->n = n;
    return v;
}

/* A one-element vec holding a new reference to item. */
static vec *new_vec1(tally_rt *rt, void *item)
{
    vec *v = new_vec(rt, 1);
    tally_incref(item);
    v->item[0] = item;
    return v;
}

/* A one-element vec that refers to itself (count 2: the caller's and its own). */
static vec *new_self(tally_rt *rt)
{
    vec *v = new_vec(rt, 1);
    tally_incref(v);
    v->item[0] = v;
    return v;
}

static long full_collect(tally_rt *rt)
{
    long c = tally_gc_collect(rt, 2);
    if (c < 0)
        gcb_die(SIDE, "tally_gc_collect refused to run");
    return c;
}

/* The common part of every output line. */
static void print_head(const gcb_args *a, size_t n)
{
    printf("side=%s test=%s scale=%g n=%zu", SIDE, a->test, a->scale, n);
}

/* ---- tests 1-3: one full collection ------------------------------------------------- */

/* 1: a vec of n one-element vecs, each holding the shared leaf. */
static void test_reachable(tally_rt *rt, const gcb_args *a)
{
    size_t n = a->n;
    void *leaf = new_obj(rt, &leaf16_type);
    vec *outer;
    double t0, t1, t2, t3;
    long c1, c2;

    tally_gc_disable(rt); /* no automatic collection while building */
    outer = new_vec(rt, n);
    for (size_t i = 0; i < n; i++)
        outer->item[i] = new_vec1(rt, leaf);
    tally_gc_enable(rt);

    t0 = bench_now_ns();
    c1 = full_collect(rt); /* moves everything to the oldest generation */
    gcb_profile(1);
    t1 = bench_now_ns();
    c2 = full_collect(rt); /* the one measured */
    t2 = bench_now_ns();
    gcb_profile(0);
    tally_decref(outer);
    t3 = bench_now_ns();
    tally_decref(leaf);

    print_head(a, n);
    printf(" ns_per_op=%.3f total_ms=%.2f first_ns_per_obj=%.3f free_ns_per_obj=%.3f "
           "collected=%ld\n",
           (t2 - t1) / (double)n, (t2 - t1) / 1e6, (t1 - t0) / (double)n,
           (t3 - t2) / (double)n, c1 + c2);
}

/* 2: n/2 unreachable 2-cycles; 3: one unreachable cycle of n. */
static void test_garbage(tally_rt *rt, const gcb_args *a, int one_cycle)
{
    size_t n = a->n;
    struct tally_heap_stats hs;
    double t0, t1;
    long c;

    tally_gc_disable(rt);
    if (one_cycle) {
        vec *first = new_vec(rt, 1), *prev = first;
        for (size_t i = 1; i < n; i++) {
            vec *v = new_vec(rt, 1);
            prev->item[0] = v; /* prev takes our reference to v */
            prev = v;
        }
        prev->item[0] = first; /* closes the cycle with our reference to first */
    } else {
        for (size_t i = 0; i < n / 2; i++) {
            vec *x = new_vec(rt, 1), *y = new_vec(rt, 1);
            x->item[0] = y; /* each takes our reference to the other */
            y->item[0] = x;
        }
    }
    tally_gc_enable(rt);

    gcb_profile(1);
    t0 = bench_now_ns();
    c = full_collect(rt);
    t1 = bench_now_ns();
    gcb_profile(0);

    tally_heap_stats(rt, &hs);
    print_head(a, n);
    printf(" ns_per_op=%.3f total_ms=%.2f collected=%ld blocks_left=%zu\n",
           (t1 - t0) / (double)n, (t1 - t0) / 1e6, c, hs.blocks_in_use);
}

/* ---- test 4, 4a: steady allocation with automatic collection ------------------------ */

static void test_churn(tally_rt *rt, const gcb_args *a, int cyclic)
{
    const size_t ring_n = GC_BENCH_RING, iters = a->iters;
    tally_gc_stats s0[TALLY_GC_GENERATIONS], s1[TALLY_GC_GENERATIONS];
    long th[TALLY_GC_GENERATIONS];
    unsigned long long coll[TALLY_GC_GENERATIONS], collected = 0, gc_ns = 0, max_ns = 0;
    int max_gen = -1;
    bench_rng r = {GCB_SEED};
    void *leaf = new_obj(rt, &leaf16_type);
    vec *ring;
    double t0, t1;

    tally_gc_get_threshold(rt, th);
    ring = new_vec(rt, ring_n);
    for (size_t k = 0; k < ring_n; k++)
        ring->item[k] = cyclic ? (void *)new_self(rt) : (void *)new_vec1(rt, leaf);

    tally_gc_get_stats(rt, s0);
    gcb_profile(1);
    t0 = bench_now_ns();
    for (size_t i = 0; i < iters; i++) {
        size_t k = gcb_below(bench_rng_next(&r), ring_n);
        void *old = ring->item[k];
        ring->item[k] = cyclic ? (void *)new_self(rt) : (void *)new_vec1(rt, leaf);
        tally_decref(old);
    }
    t1 = bench_now_ns();
    gcb_profile(0);
    tally_gc_get_stats(rt, s1);

    for (int g = 0; g < TALLY_GC_GENERATIONS; g++) {
        coll[g] = s1[g].collections - s0[g].collections;
        collected += s1[g].collected - s0[g].collected;
        gc_ns += s1[g].total_ns - s0[g].total_ns;
        if (s1[g].max_ns > max_ns) { /* includes the ring's fill: a few young ones */
            max_ns = s1[g].max_ns;
            max_gen = g;
        }
    }

    tally_decref(ring);
    full_collect(rt);
    tally_decref(leaf);

    print_head(a, iters);
    printf(" ns_per_op=%.3f total_ms=%.2f threshold=%ld,%ld,%ld coll0=%llu coll1=%llu "
           "coll2=%llu collected=%llu gc_ms=%.2f max_pause_us=%.1f max_pause_gen=%d "
           "checksum=%llu\n",
           (t1 - t0) / (double)iters, (t1 - t0) / 1e6, th[0], th[1], th[2], coll[0], coll[1],
           coll[2], collected, (double)gc_ns / 1e6, (double)max_ns / 1e3, max_gen,
           (unsigned long long)r.s);
}

/* ---- test 5, 5n: create + release --------------------------------------------------- */

/* 5: a one-slot container (PyTuple_New(1) on the other side), slot left NULL. */
static void test_new_container(tally_rt *rt, const gcb_args *a)
{
    size_t iters = a->iters;
    double t0, t1;

    gcb_profile(1);
    t0 = bench_now_ns();
    for (size_t i = 0; i < iters; i++) {
        void *o = tally_new(rt, &one1_type);
        if (__builtin_expect(o == NULL, 0))
            gcb_die(SIDE, tally_last_error_message(rt));
        tally_decref(bench_launder(o));
    }
    t1 = bench_now_ns();
    gcb_profile(0);

    print_head(a, iters);
    printf(" ns_per_op=%.3f total_ms=%.2f type=one1 overhead=%zu\n",
           (t1 - t0) / (double)iters, (t1 - t0) / 1e6, tally_type_overhead(&one1_type));
}

/* 5n: a non-container holding a double (PyFloat_FromDouble on the other side). */
static void test_new_plain(tally_rt *rt, const gcb_args *a)
{
    size_t iters = a->iters;
    double t0, t1;

    gcb_profile(1);
    t0 = bench_now_ns();
    for (size_t i = 0; i < iters; i++) {
        plain8 *o = tally_new(rt, &plain8_type);
        if (__builtin_expect(o == NULL, 0))
            gcb_die(SIDE, tally_last_error_message(rt));
        o->v = (double)i;
        tally_decref(bench_launder(o));
    }
    t1 = bench_now_ns();
    gcb_profile(0);

    print_head(a, iters);
    printf(" ns_per_op=%.3f total_ms=%.2f type=plain8 overhead=%zu\n",
           (t1 - t0) / (double)iters, (t1 - t0) / 1e6, tally_type_overhead(&plain8_type));
}

/* ---- test 6: bytes per object ------------------------------------------------------- */

static size_t in_use(tally_rt *rt)
{
    struct tally_heap_stats hs;
    if (tally_heap_stats(rt, &hs) != 0)
        gcb_die(SIDE, "tally_heap_stats failed");
    return hs.bytes_in_use;
}

static void test_overhead(tally_rt *rt, const gcb_args *a)
{
    size_t n = a->n;
    void **plain = gcb_ptr_array(SIDE, n), **cont = gcb_ptr_array(SIDE, n);
    size_t h0, h1, h2;
    long r0, r1, r2;

    tally_gc_disable(rt);
    h0 = in_use(rt);
    r0 = bench_status_kb("VmRSS");
    for (size_t i = 0; i < n; i++)
        plain[i] = new_obj(rt, &leaf16_type);
    h1 = in_use(rt);
    r1 = bench_status_kb("VmRSS");
    for (size_t i = 0; i < n; i++)
        cont[i] = new_obj(rt, &pair16_type);
    h2 = in_use(rt);
    r2 = bench_status_kb("VmRSS");

    for (size_t i = 0; i < n; i++) {
        tally_decref(plain[i]);
        tally_decref(cont[i]);
    }
    gcb_ptr_array_free(plain, n);
    gcb_ptr_array_free(cont, n);

    print_head(a, n);
    printf(" payload=16 header_plain=%zu header_container=%zu heap_plain=%.2f "
           "heap_container=%.2f rss_plain=%.2f rss_container=%.2f\n",
           tally_type_overhead(&leaf16_type), tally_type_overhead(&pair16_type),
           (double)(h1 - h0) / (double)n, (double)(h2 - h1) / (double)n,
           (double)(r1 - r0) * 1024.0 / (double)n, (double)(r2 - r1) * 1024.0 / (double)n);
}

/* ---- main ---------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    gcb_args a = gcb_parse(SIDE, argc, argv);
    tally_rt *rt = tally_open(NULL);
    if (!rt)
        gcb_die(SIDE, "tally_open failed");

    if (gcb_is(&a, "1"))
        test_reachable(rt, &a);
    else if (gcb_is(&a, "2"))
        test_garbage(rt, &a, 0);
    else if (gcb_is(&a, "3"))
        test_garbage(rt, &a, 1);
    else if (gcb_is(&a, "4"))
        test_churn(rt, &a, 1);
    else if (gcb_is(&a, "4a"))
        test_churn(rt, &a, 0);
    else if (gcb_is(&a, "5"))
        test_new_container(rt, &a);
    else if (gcb_is(&a, "5n"))
        test_new_plain(rt, &a);
    else
        test_overhead(rt, &a);

    tally_close(rt);
    return fflush(stdout) == 0 ? 0 : 1;
}
