/* test_trace_fixed.c - tracing where memory is short: a fixed-buffer runtime (the
 * tracer's tables come from the buffer; the system allocator is never called),
 * a buffer filled up while tracing (user allocations fail only when the heap is
 * full; traces the tables cannot hold are counted as untraced), and fault
 * injection at every allocation request of a traced scenario: a user call fails
 * exactly when the request that failed was its own, never because the tracer's
 * tables could not grow, and the traces stay exact (current is the sum of the
 * traced live blocks; everything freed gives 0).
 *
 * This program is linked with --wrap for malloc, calloc, realloc, posix_memalign,
 * aligned_alloc and mmap (as test_heap_fixed is) and counts the calls made while
 * a fixed runtime traces.  glibc's backtrace() may call malloc the first time it
 * runs in a process (loading libgcc_s); tally_trace_start makes that call, and
 * from inside libc, which the wrappers do not see anyway.
 */
#define _GNU_SOURCE
#include "test_objects.h"
#include "tally/tally.h"
#include "test_trace_util.h"

#include <sys/mman.h>
#include <sys/types.h>

/* ---- libc call counting (linked with -Wl,--wrap=...) ---------------------------- */

#include "libc_wrap.h"

static _Alignas(64) unsigned char g_buf[1024 * 1024];

/* ---- a fixed buffer ---------------------------------------------------------------- */

static void test_fixed_exact_no_libc(void **state)
{
    (void)state;
    for (int nframes = 1; nframes <= 16; nframes += 15) {
        g_libc_calls = 0;
        g_counting = 1;
        tally_rt *rt = open_fixed(g_buf, 512 * KiB, NULL, 0); /* tables and records too */
        assert_int_equal(tally_trace_start(rt, nframes), 0);
        void *p[100];
        size_t expect = 0;
        for (int i = 0; i < 100; i++) {
            p[i] = tally_malloc(rt, 10 + (size_t)i);
            assert_non_null(p[i]);
            expect += 10 + (size_t)i;
        }
        assert_int_equal(cur(rt), expect);
        p[0] = tally_realloc(rt, p[0], 3000);
        expect += 3000 - 10;
        assert_int_equal(cur(rt), expect);
        void *s = tally_str(rt, "in a fixed buffer");
        void *l = tally_list(rt, 0);
        for (int i = 0; i < 200; i++)
            assert_int_equal(tally_list_append(l, s), 0);
        tally_trace_snapshot *snap = tally_trace_take_snapshot(rt);
        assert_non_null(snap);
        size_t n;
        tally_trace_stat *st = tally_trace_statistics(snap, TALLY_TRACE_BY_FILE, &n);
        assert_non_null(st);
        assert_int_equal(n, 3); /* this file, src/types/str.c, src/types/list.c */
        tally_trace_release(st);
        st = tally_trace_statistics(snap, TALLY_TRACE_BY_LINE, &n);
        assert_true(n >= 4);
        tally_trace_release(st);
        tally_trace_snapshot_free(snap);
        assert_true(tally_trace_get_overhead(rt) > 0);
        check_consistent(rt, 1); /* the heap may be full */
        tally_decref(l);
        tally_decref(s);
        for (int i = 0; i < 100; i++)
            tally_free(rt, p[i]);
        assert_int_equal(cur(rt), 0);
        tally_trace_stop(rt);
        tally_gc_collect(rt, -1); /* empties the object free stacks, which kept l and s */
        assert_int_equal(get_stats(rt).bytes_in_use, 0); /* the tables went back */
        tally_close(rt);
        g_counting = 0;
        assert_int_equal(g_libc_calls, 0);
    }
}

/* Fills a small buffer with traced blocks: the tracer's tables compete with the
 * user's blocks; a user allocation fails only when the heap is full; every block
 * that could not be traced is counted. */
static void test_fixed_full(void **state)
{
    (void)state;
    g_libc_calls = 0;
    g_counting = 1;
    static void *blocks[8192];
    tally_rt *rt = open_fixed(g_buf, 160 * KiB, NULL, 0);
    size_t untraced_run = 0;
    while (untraced_run < 8192 && (blocks[untraced_run] = tally_malloc(rt, 48)) != NULL)
        untraced_run++;
    for (size_t i = 0; i < untraced_run; i++)
        tally_free(rt, blocks[i]);
    assert_int_equal(tally_trace_start(rt, 1), 0);
    size_t n = 0;
    while (n < 8192 && (blocks[n] = tally_malloc(rt, 48)) != NULL)
        n++;
    assert_true(n < 8192);
    assert_int_equal(tally_last_error(rt), TALLY_ENOMEM);
    tally_trace_stats st;
    tally_trace_get_stats(rt, &st);
    assert_true(n <= untraced_run);                 /* the tables took some room */
    assert_true(n + 64 > untraced_run / 2);          /* but not most of it */
    assert_int_equal(st.traces + st.untraced, n);   /* each block: traced or counted */
    assert_int_equal(st.current, st.traces * 48);
    for (size_t i = 0; i < n; i += 2) /* release half: the traced ones leave the table */
        tally_free(rt, blocks[i]);
    tally_trace_get_stats(rt, &st);
    assert_int_equal(st.current, st.traces * 48);
    check_consistent(rt, 1); /* the heap may be full */
    for (size_t i = 1; i < n; i += 2)
        tally_free(rt, blocks[i]);
    assert_int_equal(cur(rt), 0);
    tally_trace_get_stats(rt, &st);
    assert_int_equal(st.traces, 0);
    tally_trace_stop(rt);

    /* A full heap with a few 48-byte holes, then tracing: the user's blocks fit
     * in the holes, the tracer's first tables fit nowhere.  Every block is
     * allocated and counted untraced; then the heap is full for the user too. */
    n = 0;
    while (n < 8192 && (blocks[n] = tally_malloc(rt, 48)) != NULL)
        n++;
    assert_true(n < 8192);
    for (size_t i = 0; i < 40; i++)
        tally_free(rt, blocks[i * 7]);
    assert_int_equal(tally_trace_start(rt, 1), 0);
    tally_clear_error(rt); /* the fill's ENOMEM */
    for (size_t i = 0; i < 40; i++) {
        blocks[i * 7] = tally_malloc(rt, 48);
        assert_non_null(blocks[i * 7]);
        assert_int_equal(tally_last_error(rt), TALLY_OK);
    }
    assert_null(tally_malloc(rt, 48));
    tally_trace_get_stats(rt, &st);
    assert_int_equal(st.untraced, 40);
    assert_int_equal(st.traces, 0);
    assert_int_equal(st.current, 0);
    assert_int_equal(st.overhead, 0);
    assert_null(tally_trace_take_snapshot(rt)); /* no room for one either */
    assert_int_equal(tally_last_error(rt), TALLY_ENOMEM);
    for (size_t i = 0; i < n; i++)
        tally_free(rt, blocks[i]);
    assert_int_equal(cur(rt), 0);
    tally_close(rt);
    g_counting = 0;
    assert_int_equal(g_libc_calls, 0);
}

/* ---- fault injection at every request --------------------------------------------- */

enum { OP_MALLOC, OP_CALLOC, OP_REALLOC, OP_NEW_LEAF, OP_NEW_NODE, OP_STR, OP_DEEP, OP_FREE, OP_KINDS };

typedef struct op {
    int kind;
    int slot;
    size_t n;
} op;

#define NSLOTS 96
#define MAXOPS 600

typedef struct scenario {
    op ops[MAXOPS];
    int nops;
    int nframes;
    unsigned long total_req; /* requests of the whole counting run */
    int fixed;
    int debug;
    /* per run */
    void *slot[NSLOTS];
    int is_obj[NSLOTS];
    unsigned long first_req[MAXOPS]; /* requests made before each op (counting run) */
    int failed[MAXOPS];
    unsigned long fired_in[MAXOPS];
} scenario;

static __attribute__((noinline)) void *deep(tally_rt *rt, size_t n, int depth);

/* Allocates at the bottom of a recursion: each depth is another native stack. */
static void *deep(tally_rt *rt, size_t n, int depth)
{
    if (depth == 0)
        return tally_malloc(rt, n);
    void *volatile p = deep(rt, n, depth - 1);
    return p;
}

static void release(tally_rt *rt, scenario *sc, int k)
{
    if (sc->slot[k] == NULL)
        return;
    if (sc->is_obj[k])
        tally_decref(sc->slot[k]);
    else
        tally_free(rt, sc->slot[k]);
    sc->slot[k] = NULL;
}

/* Runs op i; returns 0 if it failed (NULL), 1 otherwise. */
static int run_op(tally_rt *rt, scenario *sc, const op *o)
{
    void *p = NULL;
    int obj = 0;
    switch (o->kind) {
    case OP_MALLOC: p = tally_malloc(rt, o->n); break;
    case OP_CALLOC: p = tally_calloc(rt, o->n, 3); break;
    case OP_REALLOC:
        p = tally_realloc(rt, sc->is_obj[o->slot] ? NULL : sc->slot[o->slot], o->n);
        if (p == NULL)
            return 0; /* the old block stays in its slot */
        if (sc->is_obj[o->slot])
            release(rt, sc, o->slot);
        sc->slot[o->slot] = p;
        sc->is_obj[o->slot] = 0;
        return 1;
    case OP_NEW_LEAF: p = tally_new(rt, &LEAF_NOFIN); obj = 1; break;
    case OP_NEW_NODE: p = tally_new(rt, &NODE_NOFIN); obj = 1; break;
    case OP_STR: p = tally_str(rt, "traced under faults"); obj = 1; break;
    case OP_DEEP: p = deep(rt, o->n, (int)(o->n % 40)); break;
    case OP_FREE: release(rt, sc, o->slot); return 1;
    }
    if (p == NULL)
        return 0;
    release(rt, sc, o->slot);
    sc->slot[o->slot] = p;
    sc->is_obj[o->slot] = obj;
    if (obj && o->kind != OP_STR)
        ((node *)p)->id = -1, ((node *)p)->magic = TO_LIVE;
    return 1;
}

static tally_rt *scenario_open(scenario *sc)
{
    tally_rt *rt = sc->fixed ? open_fixed(g_buf, sizeof g_buf, NULL, sc->debug)
                             : open_hosted(NULL, sc->debug);
    to_register(rt, &LEAF_NOFIN);
    to_register(rt, &NODE_NOFIN);
    void *s = tally_str(rt, "warm");
    tally_decref(s);
    assert_int_equal(tally_trace_start(rt, sc->nframes), 0);
    return rt;
}

/* One run, with the nth request failing (0: none, but injection armed so that the
 * object free stacks are bypassed as in the failing runs). */
static void scenario_run(scenario *sc, unsigned long nth, int counting)
{
    tally_rt *rt = scenario_open(sc);
    memset(sc->slot, 0, sizeof sc->slot);
    memset(sc->is_obj, 0, sizeof sc->is_obj);
    tally_fault_inject(rt, TALLY_FAULT_ALLOC, nth ? nth : ULONG_MAX, 0);
    unsigned long req0 = tally_fault_requests(rt, TALLY_FAULT_ALLOC);
    for (int i = 0; i < sc->nops; i++) {
        unsigned long fails = tally_fault_failures(rt, TALLY_FAULT_ALLOC);
        if (counting)
            sc->first_req[i] = tally_fault_requests(rt, TALLY_FAULT_ALLOC) - req0;
        tally_clear_error(rt);
        sc->failed[i] = !run_op(rt, sc, &sc->ops[i]);
        sc->fired_in[i] = tally_fault_failures(rt, TALLY_FAULT_ALLOC) - fails;
        if (sc->failed[i])
            assert_int_equal(tally_last_error(rt), TALLY_EFAULT);
        else if (sc->ops[i].kind != OP_FREE)
            assert_int_equal(tally_last_error(rt), TALLY_OK); /* a lost trace is no error */
    }
    if (counting)
        sc->total_req = tally_fault_requests(rt, TALLY_FAULT_ALLOC) - req0;
    tally_fault_inject(rt, TALLY_FAULT_ALLOC, 0, 0);
    check_consistent(rt, 1); /* the heap may be full */
    for (int k = 0; k < NSLOTS; k++)
        release(rt, sc, k);
    tally_trace_stats st;
    tally_trace_get_stats(rt, &st);
    assert_int_equal(st.current, 0);
    assert_int_equal(st.traces, 0);
    if (counting)
        assert_int_equal(st.untraced, 0);
    tally_close(rt);
}

static void scenario_make(scenario *sc, int nops, size_t big)
{
    test_rng rng = {7};
    sc->nops = nops;
    for (int i = 0; i < nops; i++) {
        op *o = &sc->ops[i];
        o->kind = (int)rng_below(&rng, OP_KINDS);
        o->slot = (int)rng_below(&rng, NSLOTS);
        o->n = rng_below(&rng, 4) == 0 ? 1 + rng_below(&rng, big) : 1 + rng_below(&rng, 300);
    }
}

/* Fails each request of the scenario in turn: the op where the fault fires fails
 * iff the request was the op's own (its first: every op makes one allocation of
 * its own, then the tracer's); every other op succeeds. */
static void fault_each_request(scenario *sc)
{
    scenario_run(sc, 0, 1);
    for (int i = 0; i < sc->nops; i++)
        assert_int_equal(sc->failed[i], 0);
    static scenario ref;
    ref = *sc;
    unsigned long total = ref.total_req + 2; /* and two past the end: nothing fires */
    unsigned long tracer_faults = 0, user_faults = 0;
    for (unsigned long n = 1; n <= total; n++) {
        scenario_run(sc, n, 0);
        int where = -1;
        for (int i = 0; i < sc->nops; i++) {
            if (sc->fired_in[i]) {
                assert_int_equal(where, -1); /* fired once */
                assert_int_equal(sc->fired_in[i], 1);
                where = i;
            }
        }
        if (where < 0) { /* past the end of the scenario's requests */
            assert_true(n > ref.total_req);
            continue;
        }
        int own = ref.first_req[where] == n - 1 && ref.ops[where].kind != OP_FREE;
        assert_int_equal(sc->failed[where], own);
        for (int i = 0; i < sc->nops; i++)
            if (i != where)
                assert_int_equal(sc->failed[i], 0);
        own ? user_faults++ : tracer_faults++;
    }
    assert_true(user_faults > 0);
    assert_true(tracer_faults > 0); /* the tables grew during the scenario, and failed */
}

static scenario g_sc;

static void test_fault_hosted_1(void **state)
{
    (void)state;
    memset(&g_sc, 0, sizeof g_sc);
    scenario_make(&g_sc, (int)test_scale(400, 4), 20000);
    g_sc.nframes = 1;
    fault_each_request(&g_sc);
}

static void test_fault_hosted_frames(void **state)
{
    (void)state;
    memset(&g_sc, 0, sizeof g_sc);
    scenario_make(&g_sc, (int)test_scale(400, 4), 20000);
    g_sc.nframes = 64; /* deep(): many stacks, so the site tables grow too */
    fault_each_request(&g_sc);
}

static void test_fault_fixed_debug(void **state)
{
    (void)state;
    memset(&g_sc, 0, sizeof g_sc);
    scenario_make(&g_sc, (int)test_scale(300, 4), 3000);
    g_sc.nframes = 4;
    g_sc.fixed = 1;
    g_sc.debug = TALLY_DEBUG_GUARDS;
    g_libc_calls = 0;
    g_counting = 1;
    fault_each_request(&g_sc);
    g_counting = 0;
    assert_int_equal(g_libc_calls, 0);
}

int main(void)
{
    unsetenv("TALLY_DEBUG");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_exact_no_libc),
        cmocka_unit_test(test_fixed_full),
        cmocka_unit_test(test_fault_hosted_1),
        cmocka_unit_test(test_fault_hosted_frames),
        cmocka_unit_test(test_fault_fixed_debug),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
