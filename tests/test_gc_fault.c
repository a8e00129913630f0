/* test_gc_fault.c - objects, the collector and weak references under allocation
 * failure.
 *
 * A fixed scenario creates plain objects, containers, var-sized objects (one a
 * container too big for an arena), cycles (some reachable, some garbage), weak
 * references with callbacks (some held by garbage), collects generations 0, 1 and
 * 2 along the way and at the end, with finalizers that allocate during
 * collections; then it releases everything.  It runs with tally_fault_inject(rt,
 * TALLY_FAULT_ALLOC, n, 0) for n = 1, 2, ... until a run sees no failure, in
 * release and in debug mode, and with TALLY_FAULT_PERSIST from several points on.
 * Every call that fails returns NULL with TALLY_EFAULT and a message; exactly the
 * injected failures are seen by the scenario (none is swallowed); collections
 * never fail nor allocate; each object is finalized at most once and destroyed
 * exactly once; every weak reference callback whose weak reference outlived its
 * target ran exactly once; no misuse is reported; and once everything is released
 * and collected, tally_heap_stats shows the blocks in use back at the baseline and
 * tally_heap_check finds nothing.  The same with TALLY_FAULT_BACKEND failing each
 * request for memory in turn (arenas, the huge container's mapping), where a
 * failure may be absorbed by the collect-and-retry on exhaustion but never lost.
 *
 * Real exhaustion during a collection's finalizers: on a fixed buffer, garbage
 * whose finalizers allocate (a big raw block and an object) is collected while
 * the heap is full - explicitly, and from inside an allocation that failed and
 * asked for a collection (threshold 0, so that only exhaustion collects): the
 * finalizers' allocations fail cleanly (NULL, TALLY_ENOMEM, no nested
 * collection), the collection completes and the outer allocation then succeeds.
 */
#define _GNU_SOURCE
#include "test_objects.h"

/* ---- the scenario -------------------------------------------------------------------- */

typedef struct wcb {
    int calls;
} wcb;

static void wcb_fn(void *wr, void *arg)
{
    (void)wr;
    ((wcb *)arg)->calls++;
}

#define SLOTS 50
#define NWR 24

typedef struct scenario {
    tally_rt *rt;
    node *slot[SLOTS];   /* references the scenario holds */
    void *wr[NWR];       /* weak references it holds */
    node *wr_target[NWR];
    wcb cb[NWR];
    int wr_alive_at_death[NWR]; /* the target died while the weak reference lived */
    unsigned long fails;     /* calls that returned NULL */
    unsigned long fin_fails; /* of which allocations in finalizers */
    unsigned long created;   /* objects of the node types created */
    unsigned long bad_errors;
    long collected;
} scenario;

static scenario *g_sc;

static const tally_type VARN = {"varn", sizeof(node), 8, 0, NULL, NULL, NULL, node_destroy, NULL};
/* A container with items: 2.5 MiB of them need a mapping of their own. */
static const tally_type VARC = {"varc", sizeof(node), 8, TALLY_TYPE_CONTAINER, node_traverse,
                                node_clear, node_finalize, node_destroy, NULL};

static void note_failure(scenario *sc)
{
    sc->fails++;
    tally_error e = tally_last_error(sc->rt);
    if (e != TALLY_EFAULT && e != TALLY_ENOMEM)
        sc->bad_errors++;
    if (tally_last_error_message(sc->rt)[0] == '\0')
        sc->bad_errors++;
}

static node *s_new(scenario *sc, const tally_type *t)
{
    tally_clear_error(sc->rt);
    node *o = tally_new(sc->rt, t);
    if (o == NULL) {
        note_failure(sc);
        return NULL;
    }
    o->id = -1;
    o->magic = TO_LIVE;
    sc->created++;
    return o;
}

static node *s_new_var(scenario *sc, const tally_type *t, size_t n)
{
    tally_clear_error(sc->rt);
    node *o = tally_new_var(sc->rt, t, n);
    if (o == NULL) {
        note_failure(sc);
        return NULL;
    }
    o->id = -1;
    o->magic = TO_LIVE;
    sc->created++;
    return o;
}

static void s_weakref(scenario *sc, int i, node *target, int held_by_target_neighbour)
{
    if (target == NULL)
        return;
    size_t wc = tally_weakref_count(target);
    tally_clear_error(sc->rt);
    void *w = tally_weakref_new(sc->rt, target, wcb_fn, &sc->cb[i]);
    if (w == NULL) {
        note_failure(sc);
        if (tally_weakref_count(target) != wc)
            sc->bad_errors++;
        return;
    }
    if (held_by_target_neighbour && target->next) {
        tally_setref(&target->next->extra, w); /* garbage when the cycle is */
        tally_decref(w);
    } else {
        sc->wr[i] = w;
        sc->wr_target[i] = target;
    }
}

/* A finalizer that allocates: an object stored in the dying object (released with
 * it) and, for some, a raw block freed at once. */
static void fin_alloc(node *self)
{
    scenario *sc = g_sc;
    if (sc == NULL)
        return;
    tally_clear_error(sc->rt);
    node *o = tally_new(sc->rt, &LEAF_NOFIN);
    if (o == NULL) {
        note_failure(sc);
        sc->fin_fails++;
    } else {
        o->id = -1;
        o->magic = TO_LIVE;
        sc->created++;
        if (tally_type_of(self)->flags & TALLY_TYPE_CONTAINER) /* it may hold it */
            tally_setref(&self->extra, o);
        tally_decref(o);
    }
    if ((self->payload & 1) == 0) {
        tally_clear_error(sc->rt);
        void *p = tally_malloc(sc->rt, 3000);
        if (p == NULL) {
            note_failure(sc);
            sc->fin_fails++;
        } else {
            tally_free(sc->rt, p);
        }
    }
}

static void s_collect(scenario *sc, int gen)
{
    long r = tally_gc_collect(sc->rt, gen);
    if (r < 0)
        sc->bad_errors++;
    else
        sc->collected += r;
}

static void s_link(node *a, node *b, int which)
{
    if (a == NULL || b == NULL)
        return;
    if (which == 0)
        tally_setref(&a->next, b);
    else
        tally_setref(&a->other, b);
}

static void s_drop(scenario *sc, int i)
{
    node *o = sc->slot[i];
    sc->slot[i] = NULL;
    tally_xdecref(o);
}

static void run_scenario(scenario *sc)
{
    const tally_type *types[] = {&NODE, &NODE_NOCLEAR, &NODE_NOFIN};
    /* Containers and plain objects. */
    for (int i = 0; i < 24; i++) {
        sc->slot[i] = s_new(sc, types[i % 3]);
        if (sc->slot[i])
            sc->slot[i]->payload = i;
    }
    for (int i = 24; i < 30; i++)
        sc->slot[i] = s_new(sc, &LEAF);
    for (int i = 30; i < 34; i++)
        sc->slot[i] = s_new_var(sc, &VARN, (size_t)(i - 30) * 100);
    /* Cycles of three (0-1-2, 3-4-5, ...), plain objects hung on them. */
    for (int i = 0; i < 24; i += 3) {
        s_link(sc->slot[i], sc->slot[i + 1], 0);
        s_link(sc->slot[i + 1], sc->slot[i + 2], 0);
        s_link(sc->slot[i + 2], sc->slot[i], 0);
        if (sc->slot[i] && sc->slot[24 + i / 3 % 6])
            tally_setref(&sc->slot[i]->extra, sc->slot[24 + i / 3 % 6]);
    }
    s_link(sc->slot[0], sc->slot[3], 1); /* cycle 1 reachable from cycle 0 */
    /* A huge container (a mapping of its own) in a cycle with a small one. */
    sc->slot[48] = s_new_var(sc, &VARC, 2 * MiB / 8 + 40000);
    sc->slot[49] = s_new(sc, &NODE);
    s_link(sc->slot[48], sc->slot[49], 0);
    s_link(sc->slot[49], sc->slot[48], 0);
    s_link(sc->slot[48], sc->slot[31], 1);
    /* Weak references, some held by garbage-to-be. */
    for (int i = 0; i < 12; i++)
        s_weakref(sc, i, sc->slot[i * 2], i % 4 == 3);
    s_weakref(sc, 12, sc->slot[25], 0);
    s_weakref(sc, 13, sc->slot[31], 0);
    s_collect(sc, 0);
    /* A young generation of garbage. */
    for (int i = 34; i < 40; i++)
        sc->slot[i] = s_new(sc, types[i % 3]);
    for (int i = 34; i < 40; i += 2) {
        s_link(sc->slot[i], sc->slot[i + 1], 0);
        s_link(sc->slot[i + 1], sc->slot[i], 0);
        s_weakref(sc, 14 + (i - 34) / 2, sc->slot[i], 0);
    }
    for (int i = 34; i < 40; i++)
        s_drop(sc, i);
    s_collect(sc, 0);
    /* Drop cycles 2 and 3, and the plain objects' own references. */
    for (int i = 6; i < 12; i++)
        s_drop(sc, i);
    for (int i = 24; i < 30; i++)
        s_drop(sc, i);
    s_drop(sc, 48);
    s_drop(sc, 49);
    s_collect(sc, 1);
    /* More objects while garbage waits in older generations. */
    for (int i = 40; i < 48; i++) {
        sc->slot[i] = s_new(sc, types[i % 3]);
        s_link(sc->slot[i], sc->slot[i - 1 >= 40 ? i - 1 : 0], 0);
    }
    s_weakref(sc, 20, sc->slot[44], 0);
    s_weakref(sc, 21, sc->slot[45], 1);
    s_collect(sc, 2);
    /* Everything goes. */
    for (int i = 0; i < SLOTS; i++)
        s_drop(sc, i);
    s_collect(sc, 2);
    s_collect(sc, 2);
}

/* After the scenario: the invariants every run must keep. */
static void check_scenario(scenario *sc, size_t base, recorder *rec)
{
    assert_int_equal(sc->bad_errors, 0);
    assert_int_equal(g_to.anomalies, 0);
    /* Every object was destroyed exactly once, finalized at most once. */
    assert_int_equal(g_to.des_total, sc->created);
    assert_true(g_to.fin_total <= sc->created);
    /* Every weak reference the scenario still holds points at a dead target and
     * its callback ran exactly once. */
    for (int i = 0; i < NWR; i++) {
        if (sc->wr[i] == NULL)
            continue;
        assert_null(tally_weakref_get(sc->wr[i]));
        assert_int_equal(sc->cb[i].calls, 1);
        tally_decref(sc->wr[i]);
        sc->wr[i] = NULL;
    }
    for (int i = 0; i < NWR; i++)
        assert_true(sc->cb[i].calls <= 1);
    assert_int_equal(rec->count, 0);
    assert_int_equal(tally_heap_check(sc->rt), 0);
    assert_settled(sc->rt, base);
    long c[TALLY_GC_GENERATIONS];
    tally_gc_get_count(sc->rt, c);
    assert_int_equal(c[0], 0);
    assert_int_equal(tally_gc_get_objects(sc->rt, -1, seen_visit, &(seen_set){0}), 0);
}

typedef struct run_result {
    unsigned long requests;  /* allocation calls the scenario made */
    unsigned long injected;  /* failures injected */
    unsigned long fails;     /* failures the scenario saw */
} run_result;

static run_result run_once_kind(int debug, tally_fault_kind kind, unsigned long nth,
                                 unsigned flags)
{
    to_reset();
    g_to.fin_hook = fin_alloc;
    recorder rec;
    tally_rt *rt = open_hosted(&rec, debug);
    size_t base = to_baseline(rt);
    static scenario sc;
    memset(&sc, 0, sizeof sc);
    sc.rt = rt;
    g_sc = &sc;
    unsigned long r0 = tally_fault_requests(rt, kind);
    unsigned long f0 = tally_fault_failures(rt, kind);
    if (nth)
        tally_fault_inject(rt, kind, nth, flags);
    run_scenario(&sc);
    tally_fault_inject(rt, kind, 0, 0);
    run_result res;
    res.requests = tally_fault_requests(rt, kind) - r0;
    res.injected = tally_fault_failures(rt, kind) - f0;
    res.fails = sc.fails;
    g_sc = NULL;
    check_scenario(&sc, base, &rec);
    tally_close(rt);
    return res;
}

static run_result run_once(int debug, unsigned long nth, unsigned flags)
{
    return run_once_kind(debug, TALLY_FAULT_ALLOC, nth, flags);
}

static void fault_every_allocation(int debug)
{
    run_result clean = run_once(debug, 0, 0);
    assert_int_equal(clean.fails, 0);
    assert_int_equal(clean.injected, 0);
    assert_true(clean.requests > 60);
    /* (An armed injection bypasses the object free stacks, so a run may make more
     * allocation calls than the clean one: go on until a run sees none.) */
    unsigned long n, runs_with_failure = 0, limit = 4 * clean.requests + 100;
    for (n = 1; n <= limit; n++) {
        run_result r = run_once(debug, n, 0);
        assert_true(r.injected <= 1);
        /* None swallowed: the scenario saw exactly the injected failure. */
        assert_int_equal(r.fails, r.injected);
        if (r.injected == 0)
            break;
        assert_true(r.requests >= n);
        runs_with_failure++;
    }
    assert_true(n <= limit); /* a run completed without failure */
    assert_true(runs_with_failure >= clean.requests / 2);
}

static void test_fault_every_allocation_release(void **state)
{
    (void)state;
    fault_every_allocation(TALLY_DEBUG_OFF);
}

static void test_fault_every_allocation_debug(void **state)
{
    (void)state;
    fault_every_allocation(TALLY_DEBUG_GUARDS);
}

static void test_fault_persist(void **state)
{
    (void)state;
    run_result clean = run_once(0, 0, 0);
    const unsigned long ns[] = {1, 2, 3, 5, 8, 13, 21, 34, clean.requests / 2,
                                clean.requests - 1, clean.requests};
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
        for (int debug = 0; debug <= 1; debug++) {
            run_result r = run_once(debug, ns[k], TALLY_FAULT_PERSIST);
            assert_true(r.injected >= 1);
            assert_int_equal(r.fails, r.injected);
        }
    }
}

/* Backend requests (arenas, the huge container's mapping) failing one at a time:
 * a failure may be absorbed (the heap collects and retries), never lost. */
static void test_fault_every_backend_request(void **state)
{
    (void)state;
    for (int debug = 0; debug <= 1; debug++) {
        run_result clean = run_once_kind(debug, TALLY_FAULT_BACKEND, 0, 0);
        assert_true(clean.requests >= 1);
        unsigned long n, limit = 4 * clean.requests + 20, with_failure = 0;
        for (n = 1; n <= limit; n++) {
            run_result r = run_once_kind(debug, TALLY_FAULT_BACKEND, n, 0);
            assert_true(r.injected <= 1);
            assert_true(r.fails <= r.injected);
            if (r.injected == 0)
                break;
            with_failure += r.fails;
        }
        assert_true(n <= limit);
        assert_true(with_failure >= 1);
        run_result p = run_once_kind(debug, TALLY_FAULT_BACKEND, 1, TALLY_FAULT_PERSIST);
        assert_true(p.fails >= 1);
    }
}

/* ---- real exhaustion while finalizers run --------------------------------------------- */

static _Alignas(65536) unsigned char g_fixbuf[2 * 1024 * 1024];

typedef struct exh {
    tally_rt *rt;
    unsigned long made;       /* NODE objects made by make_garbage */
    unsigned long fin_leaves; /* objects the finalizers made */
    unsigned long fin_runs;
    unsigned long fin_alloc_ok, fin_alloc_fail, fin_bad_error;
    long nested_collect;
} exh;

static exh g_exh;

static void fin_alloc_big(node *self)
{
    exh *e = &g_exh;
    e->fin_runs++;
    tally_clear_error(e->rt);
    void *p = tally_malloc(e->rt, 64 * KiB); /* cannot fit while the heap is full */
    if (p == NULL) {
        e->fin_alloc_fail++;
        if (tally_last_error(e->rt) != TALLY_ENOMEM)
            e->fin_bad_error++;
    } else {
        e->fin_alloc_ok++;
        tally_free(e->rt, p);
    }
    node *o = tally_new(e->rt, &LEAF_NOFIN);
    if (o != NULL) {
        e->fin_leaves++;
        o->id = -1;
        o->magic = TO_LIVE;
        tally_setref(&self->extra, o);
        tally_decref(o);
    }
    tally_clear_error(e->rt);
    e->nested_collect = tally_gc_collect(e->rt, 2); /* refused: one is running */
}

/* Makes up to max_cycles garbage 2-cycles of NODE (whose finalizer allocates),
 * fewer if an allocation fails; returns how many. */
static size_t make_garbage(tally_rt *rt, size_t max_cycles)
{
    size_t cycles = 0;
    while (cycles < max_cycles) {
        node *a = tally_new(rt, &NODE);
        if (a == NULL)
            break;
        a->id = -1;
        a->magic = TO_LIVE;
        g_exh.made++;
        node *b = tally_new(rt, &NODE);
        if (b == NULL) {
            tally_decref(a);
            break;
        }
        b->id = -1;
        b->magic = TO_LIVE;
        g_exh.made++;
        tally_setref(&a->next, b);
        tally_setref(&b->next, a);
        tally_decref(a);
        tally_decref(b);
        cycles++;
    }
    return cycles;
}

/* Fills what is left of rt with a live chain of NODE_NOFIN; returns its head. */
static node *fill_live(tally_rt *rt, size_t *n)
{
    node *head = NULL;
    *n = 0;
    for (;;) {
        node *x = tally_new(rt, &NODE_NOFIN);
        if (x == NULL)
            break;
        x->id = -1;
        x->magic = TO_LIVE;
        x->next = head;
        head = x;
        ++*n;
    }
    return head;
}

static void test_exhausted_during_finalizers_explicit(void **state)
{
    (void)state;
    for (int debug = 0; debug <= 1; debug++) {
        to_reset();
        recorder rec;
        tally_rt *rt = open_fixed(g_fixbuf + 1, 1 * MiB, &rec, debug);
        size_t base = to_baseline(rt);
        memset(&g_exh, 0, sizeof g_exh);
        g_exh.rt = rt;
        g_to.fin_hook = fin_alloc_big;
        tally_gc_disable(rt); /* garbage piles up */
        size_t cycles = make_garbage(rt, 1000);
        assert_true(cycles >= 100);
        size_t nlive;
        node *live = fill_live(rt, &nlive);
        tally_clear_error(rt);
        assert_null(tally_malloc(rt, 64 * KiB)); /* full */
        assert_int_equal(g_exh.made, 2 * cycles);
        long found = tally_gc_collect(rt, 2);
        assert_int_equal(found, (long)(2 * cycles));
        assert_int_equal(g_exh.fin_runs, 2 * cycles);
        assert_true(g_exh.fin_alloc_fail >= 1); /* the first ones found no room */
        assert_int_equal(g_exh.fin_bad_error, 0);
        assert_int_equal(g_exh.nested_collect, -1);
        assert_int_equal(g_to.des_total, 2 * cycles + g_exh.fin_leaves);
        assert_int_equal(g_to.anomalies, 0);
        /* The garbage is gone: a big block fits now. */
        void *p = tally_malloc(rt, 64 * KiB);
        assert_non_null(p);
        tally_free(rt, p);
        tally_xdecref(live);
        tally_gc_enable(rt);
        assert_int_equal(rec.count, 0);
        assert_int_equal(tally_heap_check(rt), 0);
        assert_settled(rt, base);
        tally_close(rt);
    }
}

static void test_exhausted_during_finalizers_from_allocation(void **state)
{
    (void)state;
    for (int debug = 0; debug <= 1; debug++) {
        to_reset();
        recorder rec;
        tally_rt *rt = open_fixed(g_fixbuf + 7, 1 * MiB, &rec, debug);
        size_t base = to_baseline(rt);
        memset(&g_exh, 0, sizeof g_exh);
        g_exh.rt = rt;
        g_to.fin_hook = fin_alloc_big;
        tally_gc_set_threshold(rt, 0, 10, 10); /* only exhaustion collects */
        tally_gc_stats s0[3], s1[3];
        tally_gc_get_stats(rt, s0);
        /* Keep making garbage: when the heap is full, the allocation that fails
         * runs a full collection (whose finalizers find the heap full) and then
         * succeeds. */
        size_t cycles = make_garbage(rt, 60000);
        assert_int_equal(cycles, 60000);
        tally_gc_get_stats(rt, s1);
        assert_true(s1[2].collections > s0[2].collections);
        assert_true(g_exh.fin_runs >= 1000);
        assert_true(g_exh.fin_alloc_fail >= 1);
        assert_int_equal(g_exh.fin_bad_error, 0);
        assert_int_equal(g_exh.nested_collect, -1);
        assert_int_equal(g_to.anomalies, 0);
        tally_gc_set_threshold(rt, 700, 10, 10);
        assert_true(tally_gc_collect(rt, 2) >= 0);
        assert_int_equal(g_exh.made, 2 * cycles);
        assert_int_equal(g_exh.fin_runs, 2 * cycles);
        assert_int_equal(g_to.fin_total, 2 * cycles);
        assert_int_equal(g_to.des_total, 2 * cycles + g_exh.fin_leaves);
        assert_int_equal(rec.count, 0);
        assert_int_equal(tally_heap_check(rt), 0);
        assert_settled(rt, base);
        tally_close(rt);
    }
}

int main(void)
{
    unsetenv("TALLY_DEBUG");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fault_every_allocation_release),
        cmocka_unit_test(test_fault_every_allocation_debug),
        cmocka_unit_test(test_fault_persist),
        cmocka_unit_test(test_fault_every_backend_request),
        cmocka_unit_test(test_exhausted_during_finalizers_explicit),
        cmocka_unit_test(test_exhausted_during_finalizers_from_allocation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
