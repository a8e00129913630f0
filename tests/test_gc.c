/* test_gc.c - the cycle collector (tally/gc.h), with CPython 3.11's gc module as
 * the model where the header is silent.
 *
 * Covers collection of self-cycles, 2-cycles and rings of 10^5 (also on a thread
 * with a 64 KiB stack), for types with clear and types whose references are
 * released through traverse, each object destroyed exactly once; reachable cycles
 * kept; the values collect returns and the generations: collecting 0..g moves the
 * survivors to g+1, older generations are roots for younger collections (a cycle
 * spanning generations waits for the older one, old garbage is invisible to young
 * collections), -1 and large values mean a full collection; get_count (allocations
 * minus deallocations of containers, collections of the younger generation),
 * thresholds and automatic collection (threshold 10: the 11th container triggers,
 * counts reset as CPython's do), CPython's rule that defers full collections while
 * few objects reached generation 2, threshold 0 and disable turn automatic
 * collection off but not explicit calls; get_stats; track / untrack / is_tracked
 * (untracked objects in a cycle are never collected; tracking again makes them
 * collectable; non-containers refused with TALLY_EINVAL); is_finalized;
 * get_objects per generation; get_referents; get_referrers; freeze / unfreeze /
 * get_freeze_count; debug flags (SAVEALL fills the garbage list, counted as
 * uncollectable; garbage_clear and a collection free them; STATS, COLLECTABLE,
 * UNCOLLECTABLE write lines to the stream given to tally_gc_set_debug_stream);
 * start/stop callbacks (generation, counts, order, removal, the limit, collect
 * from a callback or finalizer returning -1 with TALLY_EBUSY); PEP 442 finalizers
 * (once each even in cycles, all before any clear, seeing intact neighbours;
 * resurrection of an object and all it reaches, while the rest of the garbage is
 * freed; not finalized again; freed normally when released); weak references to
 * unreachable objects cleared before finalizers run, callbacks run for live weak
 * references but not for those that are garbage themselves, cycles through weak
 * references; and memory exhaustion: on a fixed buffer full of cyclic garbage an
 * allocation (object or raw block) succeeds because a full collection runs first,
 * and a collection in a full heap with every allocation failing works without
 * asking for memory.
 */
#define _GNU_SOURCE
#include "test_objects.h"

/* ---- helpers ------------------------------------------------------------------------ */

static void counts(tally_rt *rt, long c[TALLY_GC_GENERATIONS])
{
    tally_gc_get_count(rt, c);
}

static void assert_counts(tally_rt *rt, long c0, long c1, long c2)
{
    long c[TALLY_GC_GENERATIONS];
    counts(rt, c);
    assert_int_equal(c[0], c0);
    assert_int_equal(c[1], c1);
    assert_int_equal(c[2], c2);
}

static void stats(tally_rt *rt, tally_gc_stats s[TALLY_GC_GENERATIONS])
{
    memset(s, 0xa5, sizeof(tally_gc_stats) * TALLY_GC_GENERATIONS);
    tally_gc_get_stats(rt, s);
}

static unsigned long long total_collections(tally_rt *rt)
{
    tally_gc_stats s[TALLY_GC_GENERATIONS];
    stats(rt, s);
    return s[0].collections + s[1].collections + s[2].collections;
}

static size_t objects_in(tally_rt *rt, int gen, seen_set *s)
{
    memset(s, 0, sizeof *s);
    size_t n = tally_gc_get_objects(rt, gen, seen_visit, s);
    assert_int_equal(n, s->calls);
    return n;
}

/* Which generation holds o (-1: none of them). */
static int generation_of(tally_rt *rt, const void *o)
{
    static seen_set s;
    for (int g = 0; g < TALLY_GC_GENERATIONS; g++) {
        objects_in(rt, g, &s);
        if (seen_count(&s, o))
            return g;
    }
    return -1;
}

/* A fresh hosted runtime with the shared types known and everything settled. */
static tally_rt *open_gc(recorder *rec, int debug, size_t *base)
{
    to_reset();
    tally_rt *rt = open_hosted(rec, debug);
    *base = to_baseline(rt);
    return rt;
}

/* ---- weak reference callback recorder ----------------------------------------------- */

typedef struct wcb {
    int id;
    int calls;
    void *last_wr;
    int got_target; /* tally_weakref_get in the callback returned the object */
} wcb;

static void wcb_fn(void *wr, void *arg)
{
    wcb *r = arg;
    r->calls++;
    r->last_wr = wr;
    void *t = tally_weakref_get(wr);
    if (t) {
        r->got_target++;
        tally_decref(t);
    }
    to_log('W', r->id);
}

/* ---- basic cycles ------------------------------------------------------------------- */

static void test_self_cycle(void **state)
{
    (void)state;
    size_t base;
    tally_rt *rt = open_gc(NULL, 0, &base);
    const tally_type *types[] = {&NODE, &NODE_NOFIN, &NODE_NOCLEAR};
    for (int k = 0; k < 3; k++) {
        node *a = mk(rt, types[k], k);
        link_to(&a->next, a);
        tally_decref(a);
        assert_int_equal(tally_refcount(a), 1);
        assert_int_equal(tally_gc_collect(rt, 2), 1);
        assert_int_equal(g_to.des[k], 1);
        assert_int_equal(g_to.fin[k], types[k]->finalize ? 1 : 0);
        assert_int_equal(tally_gc_collect(rt, 2), 0);
    }
    assert_int_equal(g_to.anomalies, 0);
    assert_settled(rt, base);
    tally_close(rt);
}

/* The scan puts objects without outside references aside, then brings them back
 * when an object after them in the list reaches them; what those reach must be
 * kept too, however long the chain that leads back.  The list is made in creation
 * order: the chain's objects first, their only holder (a root) last. */
static void test_reached_from_later_in_the_list(void **state)
{
    (void)state;
    size_t base;
    tally_rt *rt = open_gc(NULL, 0, &base);
    enum { CHAIN = 200 };
    node *first = mk(rt, &NODE_NOFIN, 0), *prev = first;
    for (int i = 1; i < CHAIN; i++) { /* first -> 1 -> ... -> CHAIN-1, each held once */
        node *n = mk(rt, &NODE_NOFIN, i);
        prev->next = n;
        prev = n;
    }
    node *root = mk(rt, &NODE_NOFIN, CHAIN);
    root->next = first;
    assert_int_equal(tally_gc_collect(rt, 0), 0);
    assert_int_equal(g_to.des_total, 0);
    assert_int_equal(tally_gc_collect(rt, 2), 0);
    assert_int_equal(g_to.des_total, 0);
    tally_decref(root);
    assert_int_equal(g_to.des_total, CHAIN + 1);
    assert_int_equal(g_to.anomalies, 0);
    assert_settled(rt, base);
    tally_close(rt);
}

static void test_two_cycles(void **state)
{
    (void)state;
    for (int debug = 0; debug <= 1; debug++) {
        size_t base;
        tally_rt *rt = open_gc(NULL, debug, &base);
        const tally_type *types[] = {&NODE, &NODE_NOFIN, &NODE_NOCLEAR};
        for (int i = 0; i < 3; i++) {
            for (int j = 0; j < 3; j++) {
                int ia = 10 * i + j, ib = 100 + 10 * i + j;
                node *a = mk(rt, types[i], ia);
                node *b = mk(rt, types[j], ib);
                link_to(&a->next, b);
                link_to(&b->next, a);
                link_to(&b->other, b);
                a->extra = mk(rt, &LEAF, 500 + ia); /* reachable only from the cycle */
                tally_decref(a);
                tally_decref(b);
                assert_int_equal(tally_gc_collect(rt, 0), 2);
                assert_int_equal(g_to.des[ia], 1);
                assert_int_equal(g_to.des[ib], 1);
                assert_int_equal(g_to.des[500 + ia], 1);
                assert_int_equal(g_to.fin[500 + ia], 1);
            }
        }
        assert_int_equal(g_to.anomalies, 0);
        assert_int_equal(tally_heap_check(rt), 0);
        assert_settled(rt, base);
        tally_close(rt);
    }
}

/* A ring of n nodes of type t linked by next, and by other in the opposite
 * direction when both is set; returns a new reference to one node. */
static node *mk_double_ring(tally_rt *rt, const tally_type *t, size_t n)
{
    node *first = mk_ring(rt, t, n, -1);
    node *x = first;
    for (size_t i = 0; i < n; i++) {
        link_to(&x->next->other, x);
        x = x->next;
    }
    return first;
}

typedef struct ring_job {
    tally_rt *rt;
    size_t n;
    long collected;
    unsigned long destroyed;
} ring_job;

static void ring_job_run(void *arg)
{
    ring_job *j = arg;
    unsigned long d0 = g_to.des_total;
    node *r1 = mk_ring(j->rt, &NODE_NOFIN, j->n / 2, -1);
    node *r2 = mk_double_ring(j->rt, &NODE_NOCLEAR, j->n / 2);
    tally_decref(r1);
    tally_decref(r2);
    j->collected = tally_gc_collect(j->rt, 2);
    j->destroyed = g_to.des_total - d0;
}

static void test_long_cycles(void **state)
{
    (void)state;
    size_t base;
    tally_rt *rt = open_gc(NULL, 0, &base);
    size_t n = test_scale(100000, 10);
    node *r = mk_ring(rt, &NODE, n, -1);
    tally_decref(r);
    assert_int_equal(g_to.des_total, 0);
    assert_int_equal(tally_gc_collect(rt, 2), (long)n);
    assert_int_equal(g_to.des_total, n);
    assert_int_equal(g_to.fin_total, n);
    r = mk_double_ring(rt, &NODE_NOCLEAR, n);
    tally_decref(r);
    assert_int_equal(tally_gc_collect(rt, 2), (long)n);
    assert_int_equal(g_to.des_total, 2 * n);
    /* The same on a small stack: the collector does not recurse. */
    ring_job j = {rt, 2 * n, 0, 0};
    run_on_small_stack(ring_job_run, &j, 64 * KiB);
    assert_int_equal(j.collected, (long)(2 * n));
    assert_int_equal(j.destroyed, 2 * n);
    assert_int_equal(g_to.anomalies, 0);
    assert_settled(rt, base);
    tally_close(rt);
}

static void test_reachable_cycle_kept(void **state)
{
    (void)state;
    size_t base;
    tally_rt *rt = open_gc(NULL, 0, &base);
    node *a = mk(rt, &NODE, 1);
    node *b = mk(rt, &NODE, 2);
    link_to(&a->next, b);
    link_to(&b->next, a);
    tally_decref(b);
    assert_int_equal(tally_gc_collect(rt, 2), 0); /* the test holds a */
    node *h = mk(rt, &NODE, 3);
    link_to(&h->next, a);
    tally_decref(a);
    assert_int_equal(tally_gc_collect(rt, 0), 0); /* h holds a */
    assert_int_equal(tally_gc_collect(rt, 2), 0);
    assert_int_equal(g_to.des_total, 0);
    assert_int_equal(g_to.fin_total, 0);
    assert_int_equal(a->magic, TO_LIVE);
    tally_decref(h); /* h dies by count; the cycle is garbage now */
    assert_int_equal(g_to.des[3], 1);
    assert_int_equal(g_to.des[1], 0);
    assert_int_equal(tally_gc_collect(rt, 2), 2);
    assert_int_equal(g_to.des[1], 1);
    assert_int_equal(g_to.des[2], 1);
    assert_settled(rt, base);
    tally_close(rt);
}

/* ---- generations ------------------------------------------------------------------------ */

static void test_generations_move_and_count(void **state)
{
    (void)state;
    size_t base;
    tally_rt *rt = open_gc(NULL, 0, &base);
    assert_int_equal(tally_gc_collect(rt, 2), 0);
    assert_counts(rt, 0, 0, 0);
    node *x = mk(rt, &NODE_NOFIN, 1);
    node *y = mk(rt, &NODE_NOFIN, 2);
    assert_counts(rt, 2, 0, 0);
    assert_int_equal(generation_of(rt, x), 0);
    assert_int_equal(tally_gc_collect(rt, 0), 0);
    assert_counts(rt, 0, 1, 0);
    assert_int_equal(generation_of(rt, x), 1);
    assert_int_equal(generation_of(rt, y), 1);
    assert_int_equal(tally_gc_collect(rt, 0), 0);
    assert_counts(rt, 0, 2, 0);
    assert_int_equal(generation_of(rt, x), 1);
    node *z = mk(rt, &NODE_NOFIN, 3);
    assert_counts(rt, 1, 2, 0);
    assert_int_equal(tally_gc_collect(rt, 1), 0);
    assert_counts(rt, 0, 0, 1);
    assert_int_equal(generation_of(rt, x), 2);
    assert_int_equal(generation_of(rt, z), 2);
    assert_int_equal(tally_gc_collect(rt, 2), 0);
    assert_counts(rt, 0, 0, 0);
    assert_int_equal(generation_of(rt, x), 2);
    /* -1 and out-of-range values mean a full collection. */
    tally_gc_stats s0[3], s1[3];
    stats(rt, s0);
    assert_int_equal(tally_gc_collect(rt, -1), 0);
    assert_int_equal(tally_gc_collect(rt, 3), 0);
    assert_int_equal(tally_gc_collect(rt, 1000), 0);
    stats(rt, s1);
    assert_int_equal(s1[2].collections, s0[2].collections + 3);
    assert_int_equal(s1[1].collections, s0[1].collections);
    assert_int_equal(s1[0].collections, s0[0].collections);
    tally_decref(x);
    tally_decref(y);
    tally_decref(z);
    assert_settled(rt, base);
    tally_close(rt);
}

static void test_count_allocations_minus_deallocations(void **state)
{
    (void)state;
    size_t base;
    tally_rt *rt = open_gc(NULL, 0, &base);
    assert_int_equal(tally_gc_collect(rt, 2), 0);
    node *c[5];
    for (int i = 0; i < 5; i++)
        c[i] = mk(rt, &NODE_NOFIN, i);
    node *l[3];
    for (int i = 0; i < 3; i++)
        l[i] = mk(rt, &LEAF_NOFIN, 10 + i); /* not containers: not counted */
    assert_counts(rt, 5, 0, 0);
    tally_decref(c[0]);
    tally_decref(c[1]);
    assert_counts(rt, 3, 0, 0);
    for (int i = 0; i < 3; i++)
        tally_decref(l[i]);
    assert_counts(rt, 3, 0, 0);
    /* After a collection the count starts from 0 and does not go below it. */
    assert_int_equal(tally_gc_collect(rt, 0), 0);
    assert_counts(rt, 0, 1, 0);
    for (int i = 2; i < 5; i++)
        tally_decref(c[i]);
    assert_counts(rt, 0, 1, 0);
    assert_settled(rt, base);
    tally_close(rt);
}

/* Objects of older generations are roots for younger collections. */
static void test_older_generations_are_roots(void **state)
{
    (void)state;
    size_t base;
    tally_rt *rt = open_gc(NULL, 0, &base);
    /* An old object holds a young cycle. */
    node *old = mk(rt, &NODE_NOFIN, 1);
    assert_int_equal(tally_gc_collect(rt, 2), 0);
    assert_int_equal(generation_of(rt, old), 2);
    node *y = mk(rt, &NODE_NOFIN, 2);
    node *z = mk(rt, &NODE_NOFIN, 3);
    link_to(&y->next, z);
    link_to(&z->next, y);
    link_to(&old->next, y);
    tally_decref(y);
    tally_decref(z);
    assert_int_equal(tally_gc_collect(rt, 0), 0);
    assert_int_equal(generation_of(rt, y), 1);
    tally_setref(&old->next, NULL); /* now garbage, in generation 1 */
    assert_int_equal(tally_gc_collect(rt, 0), 0);
    assert_int_equal(g_to.des[2], 0);
    assert_int_equal(tally_gc_collect(rt, 1), 2);
    assert_int_equal(g_to.des[2], 1);
    assert_int_equal(g_to.des[3], 1);

    /* A cycle spanning generations 2 and 0, unreferenced: only a full collection
     * sees all of it. */
    node *a = mk(rt, &NODE_NOFIN, 4);
    assert_int_equal(tally_gc_collect(rt, 2), 0);
    node *b = mk(rt, &NODE_NOFIN, 5);
    link_to(&a->next, b);
    link_to(&b->next, a);
    tally_decref(b);
    tally_decref(a);
    assert_int_equal(tally_gc_collect(rt, 0), 0);
    assert_int_equal(generation_of(rt, b), 1);
    assert_int_equal(tally_gc_collect(rt, 1), 0);
    assert_int_equal(generation_of(rt, b), 2);
    assert_int_equal(g_to.des[4] + g_to.des[5], 0);
    assert_int_equal(tally_gc_collect(rt, 2), 2);
    assert_int_equal(g_to.des[4], 1);
    assert_int_equal(g_to.des[5], 1);

    /* Garbage in generation 2 is invisible to collections of 0 and 1. */
    node *p = mk(rt, &NODE_NOFIN, 6);
    node *q = mk(rt, &NODE_NOFIN, 7);
    link_to(&p->next, q);
    link_to(&q->next, p);
    assert_int_equal(tally_gc_collect(rt, 2), 0);
    tally_decref(p);
    tally_decref(q);
    node *young = mk(rt, &NODE_NOFIN, 8); /* young garbage, collected meanwhile */
    link_to(&young->next, young);
    tally_decref(young);
    assert_int_equal(tally_gc_collect(rt, 0), 1);
    assert_int_equal(tally_gc_collect(rt, 1), 0);
    assert_int_equal(g_to.des[6] + g_to.des[7], 0);
    assert_int_equal(tally_gc_collect(rt, 2), 2);
    assert_int_equal(g_to.des[6], 1);
    assert_int_equal(g_to.des[7], 1);
    tally_decref(old);
    assert_int_equal(g_to.anomalies, 0);
    assert_settled(rt, base);
    tally_close(rt);
}

/* ---- thresholds and automatic collection ------------------------------------------------- */

typedef struct gcrec {
    int n;
    tally_gc_phase phase[64];
    tally_gc_info info[64];
    int seq[64];
    int try_collect;
    long inner_ret;
    tally_error inner_err;
} gcrec;

static int g_cb_seq;

static void gcrec_cb(tally_rt *rt, tally_gc_phase phase, const tally_gc_info *info, void *arg)
{
    gcrec *r = arg;
    if (r->n < 64) {
        r->phase[r->n] = phase;
        r->info[r->n] = *info;
        r->seq[r->n] = ++g_cb_seq;
    }
    r->n++;
    if (r->try_collect) {
        tally_clear_error(rt);
        r->inner_ret = tally_gc_collect(rt, 0);
        r->inner_err = tally_last_error(rt);
    }
}

static void test_threshold_triggers_collection(void **state)
{
    (void)state;
    size_t base;
    tally_rt *rt = open_gc(NULL, 0, &base);
    long t[TALLY_GC_GENERATIONS];
    tally_gc_get_threshold(rt, t);
    assert_int_equal(t[0], 700);
    assert_int_equal(t[1], 10);
    assert_int_equal(t[2], 10);
    tally_gc_set_threshold(rt, 10, 10, 10);
    tally_gc_get_threshold(rt, t);
    assert_int_equal(t[0], 10);
    assert_int_equal(t[1], 10);
    assert_int_equal(t[2], 10);
    gcrec r;
    memset(&r, 0, sizeof r);
    assert_int_equal(tally_gc_callback_add(rt, gcrec_cb, &r), 0);
    assert_int_equal(tally_gc_collect(rt, 2), 0);
    r.n = 0;
    unsigned long long c0 = total_collections(rt);
    node *keep[11];
    for (int i = 0; i < 10; i++)
        keep[i] = mk(rt, &NODE_NOFIN, i);
    assert_int_equal(total_collections(rt), c0);
    assert_counts(rt, 10, 0, 0);
    keep[10] = mk(rt, &NODE_NOFIN, 10); /* 11 > 10: a collection of generation 0 */
    assert_int_equal(total_collections(rt), c0 + 1);
    assert_counts(rt, 0, 1, 0);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.phase[0], TALLY_GC_START);
    assert_int_equal(r.phase[1], TALLY_GC_STOP);
    assert_int_equal(r.info[0].generation, 0);
    assert_int_equal(r.info[1].generation, 0);
    assert_int_equal(r.info[1].collected, 0);
    /* Plain objects do not count. */
    node *leaves[50];
    for (int i = 0; i < 50; i++)
        leaves[i] = mk(rt, &LEAF_NOFIN, -1);
    assert_int_equal(total_collections(rt), c0 + 1);
    for (int i = 0; i < 50; i++)
        tally_decref(leaves[i]);
    for (int i = 0; i < 11; i++)
        tally_decref(keep[i]);
    assert_int_equal(g_to.des_total, 61);
    assert_int_equal(tally_gc_callback_remove(rt, gcrec_cb, &r), 0);
    assert_settled(rt, base);
    tally_close(rt);
}

static void test_automatic_collection_frees_garbage(void **state)
{
    (void)state;
    size_t base;
    tally_rt *rt = open_gc(NULL, 0, &base);
    tally_gc_set_threshold(rt, 10, 2, 2);
    tally_gc_stats s0[3], s1[3];
    stats(rt, s0);
    for (int i = 0; i < 500; i++) {
        node *a = mk(rt, &NODE, -1);
        link_to(&a->next, a);
        tally_decref(a);
    }
    /* Collections ran on their own and freed nearly everything. */
    assert_true(g_to.des_total >= 480);
    assert_int_equal(g_to.fin_total, g_to.des_total);
    stats(rt, s1);
    assert_true(s1[0].collections > s0[0].collections);
    assert_true(s1[1].collections > s0[1].collections);
    assert_true(s1[2].collections > s0[2].collections);
    assert_true(s1[0].collected + s1[1].collected + s1[2].collected -
                    (s0[0].collected + s0[1].collected + s0[2].collected) >=
                480);
    tally_gc_collect(rt, 2);
    assert_int_equal(g_to.des_total, 500);
    assert_int_equal(g_to.anomalies, 0);
    assert_settled(rt, base);
    tally_close(rt);
}

/* CPython 3.11: a full collection also waits until the objects that reached the
 * oldest generation since the last full collection are a quarter of those it kept,
 * so that building a big structure is not quadratic. */
static void test_full_collection_waits_for_quarter(void **state)
{
    (void)state;
    size_t base;
    tally_rt *rt = open_gc(NULL, 0, &base);
    size_t n_old = test_scale(300000, 5), n_new = n_old / 5; /* 20% < 25% */
    tally_gc_set_threshold(rt, 70, 10, 10);
    tally_gc_disable(rt);
    node *old = mk_ring(rt, &NODE_NOFIN, n_old, -1);
    tally_gc_enable(rt);
    assert_int_equal(tally_gc_collect(rt, 2), 0); /* n_old objects in generation 2 */
    tally_gc_stats s0[3], s1[3];
    stats(rt, s0);
    node *young = mk_ring(rt, &NODE_NOFIN, n_new, -1);
    stats(rt, s1);
    /* Without the rule there would be n_new / (71 * 11 * 11) >= 1 of them. */
    assert_int_equal(s1[2].collections, s0[2].collections);
    assert_true(s1[1].collections > s0[1].collections + 10);
    tally_decref(old);
    tally_decref(young);
    assert_int_equal(tally_gc_collect(rt, 2), (long)(n_old + n_new));
    assert_settled(rt, base);
    tally_close(rt);
}

static void test_disable_enable(void **state)
{
    (void)state;
    size_t base;
    tally_rt *rt = open_gc(NULL, 0, &base);
    assert_int_equal(tally_gc_is_enabled(rt), 1);
    tally_gc_set_threshold(rt, 10, 10, 10);
    tally_gc_disable(rt);
    assert_int_equal(tally_gc_is_enabled(rt), 0);
    tally_gc_disable(rt);
    assert_int_equal(tally_gc_is_enabled(rt), 0);
    unsigned long long c0 = total_collections(rt);
    for (int i = 0; i < 50; i++) {
        node *a = mk(rt, &NODE_NOFIN, -1);
        link_to(&a->next, a);
        tally_decref(a);
    }
    assert_int_equal(total_collections(rt), c0);
    assert_int_equal(g_to.des_total, 0);
    long c[3];
    counts(rt, c);
    assert_int_equal(c[0], 50);
    /* Explicit collections still run. */
    assert_int_equal(tally_gc_collect(rt, 0), 50);
    assert_int_equal(total_collections(rt), c0 + 1);
    for (int i = 0; i < 20; i++) {
        node *a = mk(rt, &NODE_NOFIN, -1);
        link_to(&a->next, a);
        tally_decref(a);
    }
    assert_int_equal(total_collections(rt), c0 + 1);
    tally_gc_enable(rt);
    assert_int_equal(tally_gc_is_enabled(rt), 1);
    node *a = mk(rt, &NODE_NOFIN, -1); /* 21 > 10 */
    assert_int_equal(total_collections(rt), c0 + 2);
    assert_int_equal(g_to.des_total, 70);
    tally_decref(a);
    /* Threshold 0 also turns automatic collection off. */
    tally_gc_set_threshold(rt, 0, 10, 10);
    for (int i = 0; i < 2000; i++) {
        node *x = mk(rt, &NODE_NOFIN, -1);
        link_to(&x->next, x);
        tally_decref(x);
    }
    assert_int_equal(total_collections(rt), c0 + 2);
    assert_int_equal(tally_gc_collect(rt, 2), 2000);
    assert_settled(rt, base);
    tally_close(rt);
}

static void test_get_stats(void **state)
{
    (void)state;
    size_t base;
    tally_rt *rt = open_gc(NULL, 0, &base);
    tally_gc_stats s0[3], s1[3];
    stats(rt, s0);
    for (int g = 0; g < 3; g++) {
        assert_true(s0[g].uncollectable <= s0[g].collected);
        assert_true(s0[g].max_ns <= s0[g].total_ns);
    }
    node *a = mk(rt, &NODE, 1), *b = mk(rt, &NODE, 2);
    link_to(&a->next, b);
    link_to(&b->next, a);
    tally_decref(a);
    tally_decref(b);
    assert_int_equal(tally_gc_collect(rt, 0), 2);
    stats(rt, s1);
    assert_int_equal(s1[0].collections, s0[0].collections + 1);
    assert_int_equal(s1[0].collected, s0[0].collected + 2);
    assert_int_equal(s1[0].uncollectable, s0[0].uncollectable);
    assert_int_equal(s1[1].collections, s0[1].collections);
    assert_int_equal(s1[2].collections, s0[2].collections);
    node *r = mk_ring(rt, &NODE_NOFIN, 3, 10);
    tally_decref(r);
    assert_int_equal(tally_gc_collect(rt, 1), 3);
    assert_int_equal(tally_gc_collect(rt, 1), 0);
    tally_gc_disable(rt); /* no automatic collections while building it */
    r = mk_ring(rt, &NODE_NOFIN, 10000, -1);
    tally_gc_enable(rt);
    tally_decref(r);
    assert_int_equal(tally_gc_collect(rt, 2), 10000);
    tally_gc_stats s2[3];
    stats(rt, s2);
    assert_int_equal(s2[0].collections, s1[0].collections);
    assert_int_equal(s2[0].collected, s1[0].collected);
    assert_int_equal(s2[1].collections, s1[1].collections + 2);
    assert_int_equal(s2[1].collected, s1[1].collected + 3);
    assert_int_equal(s2[2].collections, s1[2].collections + 1);
    assert_int_equal(s2[2].collected, s1[2].collected + 10000);
    for (int g = 0; g < 3; g++) {
        assert_int_equal(s2[g].uncollectable, s0[g].uncollectable);
        assert_true(s2[g].max_ns <= s2[g].total_ns);
        assert_true(s2[g].total_ns >= s0[g].total_ns);
    }
    assert_true(s2[2].max_ns > 0); /* 10^4 objects take some time */
    assert_true(s2[2].total_ns > s0[2].total_ns);
    assert_settled(rt, base);
    tally_close(rt);
}

/* ---- tracking ------------------------------------------------------------------------- */

static void test_track_untrack(void **state)
{
    (void)state;
    size_t base;
    tally_rt *rt = open_gc(NULL, 0, &base);
    node *c = mk(rt, &NODE, 1);
    node *l = mk(rt, &LEAF, 2);
    assert_int_equal(tally_gc_is_tracked(c), 1);
    assert_int_equal(tally_gc_is_tracked(l), 0);
    tally_clear_error(rt);
    assert_int_equal(tally_gc_track(l), -1);
    assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
    assert_int_equal(tally_gc_is_tracked(l), 0);
    seen_set s;
    objects_in(rt, -1, &s);
    assert_int_equal(seen_count(&s, c), 1);
    assert_int_equal(seen_count(&s, l), 0);
    tally_gc_untrack(c);
    assert_int_equal(tally_gc_is_tracked(c), 0);
    tally_gc_untrack(c); /* twice is fine */
    objects_in(rt, -1, &s);
    assert_int_equal(seen_count(&s, c), 0);
    assert_int_equal(tally_gc_track(c), 0);
    assert_int_equal(tally_gc_is_tracked(c), 1);
    assert_int_equal(tally_gc_track(c), 0); /* already tracked */
    objects_in(rt, -1, &s);
    assert_int_equal(seen_count(&s, c), 1);
    assert_int_equal(generation_of(rt, c), 0);
    tally_decref(c);
    tally_decref(l);

    /* An untracked cycle is never collected... */
    node *a = mk(rt, &NODE, 3), *b = mk(rt, &NODE, 4);
    link_to(&a->next, b);
    link_to(&b->next, a);
    tally_gc_untrack(a);
    tally_gc_untrack(b);
    tally_decref(a);
    tally_decref(b);
    assert_int_equal(tally_gc_collect(rt, 2), 0);
    assert_int_equal(tally_gc_collect(rt, 2), 0);
    assert_int_equal(g_to.des[3] + g_to.des[4] + g_to.fin[3] + g_to.fin[4], 0);
    /* ...until tracked again. */
    assert_int_equal(tally_gc_track(a), 0);
    assert_int_equal(tally_gc_track(b), 0);
    assert_int_equal(tally_gc_collect(rt, 2), 2);
    assert_int_equal(g_to.des[3], 1);
    assert_int_equal(g_to.des[4], 1);

    /* One untracked member keeps the whole cycle. */
    a = mk(rt, &NODE, 5);
    b = mk(rt, &NODE, 6);
    link_to(&a->next, b);
    link_to(&b->next, a);
    tally_gc_untrack(b);
    tally_decref(a);
    tally_decref(b);
    assert_int_equal(tally_gc_collect(rt, 2), 0);
    assert_int_equal(g_to.des[5] + g_to.des[6], 0);
    assert_int_equal(tally_gc_track(b), 0);
    assert_int_equal(tally_gc_collect(rt, 2), 2);
    assert_int_equal(g_to.des[5] + g_to.des[6], 2);
    assert_int_equal(g_to.anomalies, 0);
    assert_settled(rt, base);
    tally_close(rt);
}

static void test_is_finalized(void **state)
{
    (void)state;
    size_t base;
    tally_rt *rt = open_gc(NULL, 0, &base);
    node *a = mk(rt, &NODE, 1);
    node *b = mk(rt, &NODE_NOFIN, 2);
    assert_int_equal(tally_gc_is_finalized(a), 0);
    assert_int_equal(tally_gc_is_finalized(b), 0);
    assert_int_equal(tally_gc_collect(rt, 2), 0);
    assert_int_equal(tally_gc_is_finalized(a), 0); /* reachable: not finalized */
    tally_decref(a);
    tally_decref(b);
    assert_settled(rt, base);
    tally_close(rt);
}

/* ---- walks ----------------------------------------------------------------------------- */

static void test_get_objects(void **state)
{
    (void)state;
    size_t base;
    tally_rt *rt = open_gc(NULL, 0, &base);
    assert_int_equal(tally_gc_collect(rt, 2), 0);
    seen_set s;
    assert_int_equal(objects_in(rt, -1, &s), 0);
    node *a = mk(rt, &NODE, 1), *b = mk(rt, &NODE_NOCLEAR, 2), *c = mk(rt, &NODE_NOFIN, 3);
    node *l = mk(rt, &LEAF, 4);
    node *u = mk(rt, &NODE, 5);
    tally_gc_untrack(u);
    assert_int_equal(objects_in(rt, 0, &s), 3);
    assert_int_equal(seen_count(&s, a) + seen_count(&s, b) + seen_count(&s, c), 3);
    assert_int_equal(seen_count(&s, l) + seen_count(&s, u), 0);
    assert_int_equal(objects_in(rt, 1, &s), 0);
    assert_int_equal(objects_in(rt, 2, &s), 0);
    assert_int_equal(objects_in(rt, -1, &s), 3);
    assert_int_equal(tally_gc_collect(rt, 0), 0);
    assert_int_equal(objects_in(rt, 0, &s), 0);
    assert_int_equal(objects_in(rt, 1, &s), 3);
    node *d = mk(rt, &NODE, 6);
    assert_int_equal(objects_in(rt, 0, &s), 1);
    assert_int_equal(seen_count(&s, d), 1);
    assert_int_equal(objects_in(rt, -1, &s), 4);
    tally_decref(a);
    tally_decref(b);
    tally_decref(c);
    tally_decref(d);
    tally_decref(l);
    tally_decref(u);
    assert_int_equal(objects_in(rt, -1, &s), 0);
    assert_settled(rt, base);
    tally_close(rt);
}

static void test_get_referents(void **state)
{
    (void)state;
    size_t base;
    tally_rt *rt = open_gc(NULL, 0, &base);
    node *a = mk(rt, &NODE, 1), *b = mk(rt, &NODE, 2), *c = mk(rt, &NODE_NOCLEAR, 3);
    node *l = mk(rt, &LEAF, 4);
    link_to(&a->next, b);
    link_to(&a->other, c);
    link_to(&a->extra, l);
    seen_set s;
    memset(&s, 0, sizeof s);
    assert_int_equal(tally_gc_get_referents(a, seen_visit, &s), 3);
    assert_int_equal(s.calls, 3);
    assert_int_equal(seen_count(&s, b), 1);
    assert_int_equal(seen_count(&s, c), 1);
    assert_int_equal(seen_count(&s, l), 1);
    memset(&s, 0, sizeof s);
    assert_int_equal(tally_gc_get_referents(l, seen_visit, &s), 0);
    assert_int_equal(s.calls, 0);
    memset(&s, 0, sizeof s);
    assert_int_equal(tally_gc_get_referents(b, seen_visit, &s), 0);
    /* As traverse reports them: twice if held twice. */
    link_to(&b->next, c);
    link_to(&b->other, c);
    memset(&s, 0, sizeof s);
    assert_int_equal(tally_gc_get_referents(b, seen_visit, &s), 2);
    assert_int_equal(seen_count(&s, c), 2);
    /* Untracked containers still report theirs. */
    tally_gc_untrack(b);
    memset(&s, 0, sizeof s);
    assert_int_equal(tally_gc_get_referents(b, seen_visit, &s), 2);
    tally_decref(a);
    tally_decref(b);
    tally_decref(c);
    tally_decref(l);
    assert_int_equal(g_to.des_total, 4);
    assert_settled(rt, base);
    tally_close(rt);
}

static void test_get_referrers(void **state)
{
    (void)state;
    size_t base;
    tally_rt *rt = open_gc(NULL, 0, &base);
    node *target = mk(rt, &NODE, 1);
    node *a = mk(rt, &NODE, 2), *c = mk(rt, &NODE_NOCLEAR, 3), *u = mk(rt, &NODE, 4);
    node *unrelated = mk(rt, &NODE, 5);
    link_to(&a->next, target);
    link_to(&a->other, target); /* twice from a: visited once */
    link_to(&c->extra, target);
    link_to(&u->next, target);
    tally_gc_untrack(u); /* untracked referrers are not seen */
    link_to(&target->next, target); /* it refers to itself */
    link_to(&unrelated->next, a);
    assert_int_equal(tally_gc_collect(rt, 0), 0); /* some in generation 1 */
    node *young = mk(rt, &NODE, 6);
    link_to(&young->other, target);
    seen_set s;
    memset(&s, 0, sizeof s);
    assert_int_equal(tally_gc_get_referrers(rt, target, seen_visit, &s), 4);
    assert_int_equal(s.calls, 4);
    assert_int_equal(seen_count(&s, a), 1);
    assert_int_equal(seen_count(&s, c), 1);
    assert_int_equal(seen_count(&s, target), 1);
    assert_int_equal(seen_count(&s, young), 1);
    assert_int_equal(seen_count(&s, u), 0);
    assert_int_equal(seen_count(&s, unrelated), 0);
    memset(&s, 0, sizeof s);
    assert_int_equal(tally_gc_get_referrers(rt, unrelated, seen_visit, &s), 0);
    tally_setref(&target->next, NULL);
    tally_decref(target);
    tally_decref(a);
    tally_decref(c);
    tally_decref(u);
    tally_decref(unrelated);
    tally_decref(young);
    assert_int_equal(g_to.des_total, 6);
    assert_settled(rt, base);
    tally_close(rt);
}

/* ---- freeze ------------------------------------------------------------------------------ */

static void test_freeze(void **state)
{
    (void)state;
    size_t base;
    tally_rt *rt = open_gc(NULL, 0, &base);
    assert_int_equal(tally_gc_get_freeze_count(rt), 0);
    node *x = mk(rt, &NODE, 1), *y = mk(rt, &NODE, 2);
    link_to(&x->next, y);
    link_to(&y->next, x);
    tally_decref(x);
    tally_decref(y);
    node *live = mk(rt, &NODE, 3);
    tally_gc_freeze(rt);
    assert_int_equal(tally_gc_get_freeze_count(rt), 3);
    seen_set s;
    assert_int_equal(objects_in(rt, -1, &s), 0);
    assert_int_equal(tally_gc_is_tracked(x), 1);
    assert_int_equal(tally_gc_collect(rt, 2), 0); /* frozen garbage is ignored */
    assert_int_equal(tally_gc_collect(rt, 0), 0);
    assert_int_equal(g_to.des_total + g_to.fin_total, 0);
    /* New objects are collected as usual meanwhile. */
    node *z = mk(rt, &NODE, 4);
    link_to(&z->next, z);
    tally_decref(z);
    assert_int_equal(objects_in(rt, -1, &s), 1);
    assert_int_equal(tally_gc_collect(rt, 2), 1);
    assert_int_equal(g_to.des[4], 1);
    assert_int_equal(tally_gc_get_freeze_count(rt), 3);
    tally_gc_unfreeze(rt);
    assert_int_equal(tally_gc_get_freeze_count(rt), 0);
    assert_int_equal(objects_in(rt, 2, &s), 3);
    assert_int_equal(seen_count(&s, x) + seen_count(&s, y) + seen_count(&s, live), 3);
    assert_int_equal(tally_gc_collect(rt, 1), 0); /* they are in generation 2 */
    assert_int_equal(tally_gc_collect(rt, 2), 2);
    assert_int_equal(g_to.des[1] + g_to.des[2], 2);
    assert_int_equal(g_to.fin[1] + g_to.fin[2], 2);
    tally_decref(live);
    assert_settled(rt, base);
    tally_close(rt);
}

/* ---- debug flags and the garbage list ------------------------------------------------------ */

static void test_debug_saveall(void **state)
{
    (void)state;
    size_t base;
    tally_rt *rt = open_gc(NULL, 0, &base);
    assert_int_equal(tally_gc_get_debug(rt), 0);
    tally_gc_set_debug(rt, TALLY_GC_DEBUG_SAVEALL);
    assert_int_equal(tally_gc_get_debug(rt), TALLY_GC_DEBUG_SAVEALL);
    gcrec r;
    memset(&r, 0, sizeof r);
    assert_int_equal(tally_gc_callback_add(rt, gcrec_cb, &r), 0);
    tally_gc_stats s0[3], s1[3];
    stats(rt, s0);
    node *ring = mk_ring(rt, &NODE, 3, 1);
    wcb w;
    memset(&w, 0, sizeof w);
    void *wr = tally_weakref_new(rt, ring, wcb_fn, &w);
    assert_non_null(wr);
    tally_decref(ring);
    assert_int_equal(tally_gc_collect(rt, 2), 3);
    /* As in CPython, weak references to them are cleared all the same. */
    assert_int_equal(w.calls, 1);
    assert_null(tally_weakref_get(wr));
    stats(rt, s1);
    assert_int_equal(s1[2].collected, s0[2].collected + 3);
    assert_int_equal(s1[2].uncollectable, s0[2].uncollectable + 3);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.info[1].collected, 3);
    assert_int_equal(r.info[1].uncollectable, 3);
    /* Kept alive in the garbage list: finalized, not cleared nor destroyed. */
    seen_set s;
    memset(&s, 0, sizeof s);
    assert_int_equal(tally_gc_garbage(rt, seen_visit, &s), 3);
    assert_int_equal(s.calls, 3);
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(g_to.fin[i], 1);
        assert_int_equal(g_to.clr[i], 0);
        assert_int_equal(g_to.des[i], 0);
    }
    assert_int_equal(seen_count(&s, ring), 1);
    assert_int_equal(seen_count(&s, ring->next), 1);
    assert_int_equal(seen_count(&s, ring->next->next), 1);
    assert_int_equal(ring->magic, TO_LIVE);
    /* The list holds them: a second collection finds nothing new. */
    assert_int_equal(tally_gc_collect(rt, 2), 0);
    assert_int_equal(tally_gc_garbage(rt, seen_visit, &(seen_set){0}), 3);
    /* Cleared, they are plain cyclic garbage again. */
    tally_gc_set_debug(rt, 0);
    tally_gc_garbage_clear(rt);
    assert_int_equal(tally_gc_garbage(rt, seen_visit, &(seen_set){0}), 0);
    assert_int_equal(g_to.des_total, 0);
    assert_int_equal(tally_gc_collect(rt, 2), 3);
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(g_to.fin[i], 1); /* not again */
        assert_int_equal(g_to.des[i], 1);
    }
    assert_int_equal(w.calls, 1);
    tally_decref(wr);
    assert_int_equal(g_to.anomalies, 0);
    assert_int_equal(tally_gc_callback_remove(rt, gcrec_cb, &r), 0);
    assert_settled(rt, base);
    tally_close(rt);
}

/* Reads what was written to f since it was opened, and counts its lines. */
static char *slurp(FILE *f, int *lines)
{
    fflush(f);
    long n = ftell(f);
    assert_true(n >= 0);
    char *buf = calloc(1, (size_t)n + 1);
    assert_non_null(buf);
    rewind(f);
    size_t got = fread(buf, 1, (size_t)n, f);
    assert_int_equal(got, (size_t)n);
    fseek(f, 0, SEEK_END); /* more output may follow */
    *lines = 0;
    for (long i = 0; i < n; i++)
        *lines += buf[i] == '\n';
    return buf;
}

static void test_debug_stream_lines(void **state)
{
    (void)state;
    size_t base;
    tally_rt *rt = open_gc(NULL, 0, &base);
    int lines;
    char *out;

    /* STATS: something about each collection, with the number found. */
    FILE *f = tmpfile();
    assert_non_null(f);
    tally_gc_set_debug_stream(rt, f);
    tally_gc_set_debug(rt, TALLY_GC_DEBUG_STATS);
    node *r = mk_ring(rt, &NODE_NOFIN, 37, -1);
    tally_decref(r);
    assert_int_equal(tally_gc_collect(rt, 2), 37);
    out = slurp(f, &lines);
    assert_true(lines >= 1);
    assert_true(str_has_number(out, 37));
    free(out);
    fclose(f);

    /* COLLECTABLE: one line per unreachable object, naming its type. */
    f = tmpfile();
    assert_non_null(f);
    tally_gc_set_debug_stream(rt, f);
    tally_gc_set_debug(rt, TALLY_GC_DEBUG_COLLECTABLE);
    r = mk_ring(rt, &NODE_NOCLEAR, 3, -1);
    tally_decref(r);
    assert_int_equal(tally_gc_collect(rt, 2), 3);
    out = slurp(f, &lines);
    assert_int_equal(lines, 3);
    assert_non_null(strstr(out, "node_noclear"));
    free(out);
    fclose(f);

    /* LEAK = COLLECTABLE | UNCOLLECTABLE | SAVEALL: a line each for found and
     * kept. */
    f = tmpfile();
    assert_non_null(f);
    tally_gc_set_debug_stream(rt, f);
    tally_gc_set_debug(rt, TALLY_GC_DEBUG_LEAK);
    assert_int_equal(tally_gc_get_debug(rt), 38);
    r = mk_ring(rt, &NODE_NOFIN, 4, -1);
    tally_decref(r);
    assert_int_equal(tally_gc_collect(rt, 2), 4);
    out = slurp(f, &lines);
    assert_int_equal(lines, 8);
    free(out);
    assert_int_equal(tally_gc_garbage(rt, seen_visit, &(seen_set){0}), 4);

    /* No flags, no lines. */
    tally_gc_set_debug(rt, 0);
    tally_gc_garbage_clear(rt);
    long before = ftell(f);
    assert_int_equal(tally_gc_collect(rt, 2), 4);
    r = mk_ring(rt, &NODE_NOFIN, 5, -1);
    tally_decref(r);
    assert_int_equal(tally_gc_collect(rt, 0), 5);
    fflush(f);
    assert_int_equal(ftell(f), before);
    tally_gc_set_debug_stream(rt, NULL); /* back to stderr */
    fclose(f);
    assert_settled(rt, base);
    tally_close(rt);
}

/* ---- callbacks ---------------------------------------------------------------------------- */

static void other_cb(tally_rt *rt, tally_gc_phase phase, const tally_gc_info *info, void *arg)
{
    gcrec_cb(rt, phase, info, arg);
}

static void test_callbacks(void **state)
{
    (void)state;
    size_t base;
    tally_rt *rt = open_gc(NULL, 0, &base);
    gcrec r1, r2;
    memset(&r1, 0, sizeof r1);
    memset(&r2, 0, sizeof r2);
    assert_int_equal(tally_gc_callback_add(rt, gcrec_cb, &r1), 0);
    node *ring = mk_ring(rt, &NODE, 2, -1);
    tally_decref(ring);
    assert_int_equal(tally_gc_collect(rt, 1), 2);
    assert_int_equal(r1.n, 2);
    assert_int_equal(r1.phase[0], TALLY_GC_START);
    assert_int_equal(r1.info[0].generation, 1);
    assert_int_equal(r1.phase[1], TALLY_GC_STOP);
    assert_int_equal(r1.info[1].generation, 1);
    assert_int_equal(r1.info[1].collected, 2);
    assert_int_equal(r1.info[1].uncollectable, 0);
    /* Two callbacks, called in the order they were added. */
    assert_int_equal(tally_gc_callback_add(rt, other_cb, &r2), 0);
    assert_int_equal(tally_gc_collect(rt, 2), 0);
    assert_int_equal(r1.n, 4);
    assert_int_equal(r2.n, 2);
    assert_true(r1.seq[2] < r2.seq[0]);
    assert_true(r1.seq[3] < r2.seq[1]);
    assert_int_equal(r2.info[0].generation, 2);
    assert_int_equal(r2.info[1].collected, 0);
    /* Removal. */
    assert_int_equal(tally_gc_callback_remove(rt, gcrec_cb, &r1), 0);
    tally_clear_error(rt);
    assert_int_equal(tally_gc_callback_remove(rt, gcrec_cb, &r1), -1);
    assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
    tally_clear_error(rt);
    assert_int_equal(tally_gc_callback_remove(rt, gcrec_cb, &r2), -1); /* (cb, arg) pairs */
    assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
    assert_int_equal(tally_gc_collect(rt, 0), 0);
    assert_int_equal(r1.n, 4);
    assert_int_equal(r2.n, 4);
    assert_int_equal(r2.info[2].generation, 0);
    /* The limit: TALLY_GC_MAX_CALLBACKS in all. */
    gcrec many[TALLY_GC_MAX_CALLBACKS];
    memset(many, 0, sizeof many);
    for (int i = 0; i < TALLY_GC_MAX_CALLBACKS - 1; i++)
        assert_int_equal(tally_gc_callback_add(rt, gcrec_cb, &many[i]), 0);
    tally_clear_error(rt);
    assert_int_equal(tally_gc_callback_add(rt, gcrec_cb, &many[TALLY_GC_MAX_CALLBACKS - 1]), -1);
    assert_int_equal(tally_last_error(rt), TALLY_ELIMIT);
    assert_int_equal(tally_gc_collect(rt, 0), 0);
    for (int i = 0; i < TALLY_GC_MAX_CALLBACKS - 1; i++)
        assert_int_equal(many[i].n, 2);
    assert_int_equal(many[TALLY_GC_MAX_CALLBACKS - 1].n, 0);
    for (int i = 0; i < TALLY_GC_MAX_CALLBACKS - 1; i++)
        assert_int_equal(tally_gc_callback_remove(rt, gcrec_cb, &many[i]), 0);
    assert_int_equal(tally_gc_callback_add(rt, gcrec_cb, &many[TALLY_GC_MAX_CALLBACKS - 1]), 0);
    assert_int_equal(tally_gc_callback_remove(rt, gcrec_cb, &many[TALLY_GC_MAX_CALLBACKS - 1]), 0);
    /* A collection from a callback is refused. */
    gcrec inner;
    memset(&inner, 0, sizeof inner);
    inner.try_collect = 1;
    inner.inner_ret = 12345;
    assert_int_equal(tally_gc_callback_add(rt, gcrec_cb, &inner), 0);
    ring = mk_ring(rt, &NODE, 2, -1);
    tally_decref(ring);
    assert_int_equal(tally_gc_collect(rt, 2), 2);
    assert_int_equal(inner.n, 2);
    assert_int_equal(inner.inner_ret, -1);
    assert_int_equal(inner.inner_err, TALLY_EBUSY);
    assert_int_equal(tally_gc_callback_remove(rt, gcrec_cb, &inner), 0);
    assert_int_equal(tally_gc_callback_remove(rt, other_cb, &r2), 0);
    assert_settled(rt, base);
    tally_close(rt);
}

/* ---- finalizers (PEP 442) ------------------------------------------------------------------ */

static void test_finalizers_once_before_any_clear(void **state)
{
    (void)state;
    for (int debug = 0; debug <= 1; debug++) {
        size_t base;
        tally_rt *rt = open_gc(NULL, debug, &base);
        node *ring = mk_ring(rt, &NODE, 5, 1);
        node *b = mk(rt, &NODE_NOCLEAR, 6);
        link_to(&b->next, ring);
        link_to(&ring->other, b);
        tally_decref(b);
        tally_decref(ring);
        assert_int_equal(tally_gc_collect(rt, 2), 6);
        int last_f = -1, first_c = g_to.nlog;
        for (int i = 1; i <= 6; i++) {
            assert_int_equal(g_to.fin[i], 1);
            assert_int_equal(g_to.des[i], 1);
            if (to_find('F', i) > last_f)
                last_f = to_find('F', i);
            if (to_find('C', i) >= 0 && to_find('C', i) < first_c)
                first_c = to_find('C', i);
            assert_true(to_find('D', i) > to_find('F', i));
        }
        assert_true(last_f < first_c); /* every finalizer before the first clear */
        assert_int_equal(g_to.anomalies, 0);
        assert_settled(rt, base);
        tally_close(rt);
    }
}

static unsigned long g_intact_violations;

/* Every neighbour a finalizer can reach is intact: not cleared, not destroyed. */
static void fin_check_neighbours(node *self)
{
    node *n[3] = {self->next, self->other, self->extra};
    for (int i = 0; i < 3; i++) {
        if (n[i] == NULL)
            continue;
        if (n[i]->magic != TO_LIVE)
            g_intact_violations++;
        if (to_valid_id(n[i]->id) && (g_to.des[n[i]->id] || g_to.clr[n[i]->id]))
            g_intact_violations++;
        if (tally_refcount(n[i]) == 0)
            g_intact_violations++;
    }
    if (self->id >= 1 && self->id <= 4 && (self->next == NULL || self->extra == NULL))
        g_intact_violations++; /* own references not cleared yet */
}

static void test_finalizer_sees_intact_objects(void **state)
{
    (void)state;
    size_t base;
    tally_rt *rt = open_gc(NULL, 0, &base);
    g_to.fin_hook = fin_check_neighbours;
    g_intact_violations = 0;
    node *ring = mk_ring(rt, &NODE, 4, 1);
    node *x = ring;
    for (int i = 0; i < 4; i++) {
        x->extra = mk(rt, &LEAF, 10 + i); /* reachable from the garbage only */
        link_to(&x->other, x->next->next);
        x = x->next;
    }
    tally_decref(ring);
    assert_int_equal(tally_gc_collect(rt, 2), 4);
    assert_int_equal(g_intact_violations, 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(g_to.fin[1 + i], 1);
        assert_int_equal(g_to.des[1 + i], 1);
        assert_int_equal(g_to.fin[10 + i], 1); /* died by count during the clear */
        assert_int_equal(g_to.des[10 + i], 1);
    }
    assert_int_equal(g_to.anomalies, 0);
    assert_settled(rt, base);
    tally_close(rt);
}

static node *g_root;
static int g_resurrect_id;
static tally_rt *g_rt;
static long g_inner_collect;
static tally_error g_inner_err;

/* Stores the node with id g_resurrect_id (self, or what self->next is) in g_root. */
static void fin_resurrect(node *self)
{
    if (g_root != NULL)
        return;
    if (self->id == g_resurrect_id) {
        tally_incref(self);
        g_root = self;
    } else if (-self->id == g_resurrect_id && self->next != NULL) {
        tally_incref(self->next);
        g_root = self->next;
    }
}

static void test_resurrection(void **state)
{
    (void)state;
    for (int debug = 0; debug <= 1; debug++) {
        size_t base;
        tally_rt *rt = open_gc(NULL, debug, &base);
        g_to.fin_hook = fin_resurrect;
        g_root = NULL;
        g_resurrect_id = 1;
        node *a = mk(rt, &NODE, 1), *b = mk(rt, &NODE_NOCLEAR, 2);
        link_to(&a->next, b);
        link_to(&b->next, a);
        a->extra = mk(rt, &LEAF, 3);
        node *c = mk(rt, &NODE, 4), *d = mk(rt, &NODE_NOFIN, 5); /* other garbage */
        link_to(&c->next, d);
        link_to(&d->next, c);
        wcb w;
        memset(&w, 0, sizeof w);
        void *wr = tally_weakref_new(rt, a, wcb_fn, &w);
        assert_non_null(wr);
        tally_decref(a);
        tally_decref(b);
        tally_decref(c);
        tally_decref(d);
        /* As gc.collect() in CPython 3.11: the unreachable objects left once the
         * finalizers have run (c and d; a and b were resurrected). */
        assert_int_equal(tally_gc_collect(rt, 2), 2);
        /* a resurrected, with everything it reaches; c and d freed. */
        assert_ptr_equal(g_root, a);
        assert_int_equal(g_to.fin[1], 1);
        assert_int_equal(g_to.fin[2], 1);
        assert_int_equal(g_to.fin[4], 1);
        assert_int_equal(g_to.des[1] + g_to.des[2] + g_to.des[3], 0);
        assert_int_equal(g_to.clr[1] + g_to.clr[2], 0);
        assert_int_equal(g_to.des[4], 1);
        assert_int_equal(g_to.des[5], 1);
        assert_int_equal(a->magic, TO_LIVE);
        assert_int_equal(b->magic, TO_LIVE);
        assert_ptr_equal(a->next, b);
        assert_ptr_equal(b->next, a);
        assert_int_equal(((node *)a->extra)->magic, TO_LIVE);
        assert_int_equal(tally_refcount(a), 2);
        assert_int_equal(tally_refcount(b), 1);
        assert_int_equal(tally_gc_is_finalized(a), 1);
        assert_int_equal(tally_gc_is_finalized(b), 1);
        assert_int_equal(tally_gc_is_tracked(a), 1);
        assert_int_equal(tally_gc_is_tracked(b), 1);
        /* Its weak references were cleared before the finalizers ran. */
        assert_null(tally_weakref_get(wr));
        assert_true(w.calls <= 1);
        assert_int_equal(w.got_target, 0);
        assert_int_equal(tally_gc_collect(rt, 2), 0);
        /* Released: freed normally, no second finalization. */
        node *root = g_root;
        g_root = NULL;
        g_resurrect_id = 0;
        tally_decref(root);
        assert_int_equal(tally_gc_collect(rt, 2), 2);
        for (int i = 1; i <= 3; i++) {
            assert_int_equal(g_to.des[i], 1);
            assert_int_equal(g_to.fin[i], 1);
        }
        assert_true(w.calls <= 1);
        tally_decref(wr);
        assert_int_equal(g_to.anomalies, 0);
        assert_settled(rt, base);
        tally_close(rt);
    }
}

/* A finalizer that resurrects another object of the garbage (and a type without a
 * finalizer, resurrected by a neighbour, is not marked finalized). */
static void test_resurrection_of_neighbour(void **state)
{
    (void)state;
    size_t base;
    tally_rt *rt = open_gc(NULL, 0, &base);
    g_to.fin_hook = fin_resurrect;
    g_root = NULL;
    g_resurrect_id = 2; /* the node with id -2 stores its next */
    node *a = mk(rt, &NODE_NOFIN, 2), *b = mk(rt, &NODE, -2), *c = mk(rt, &NODE_NOFIN, 3);
    link_to(&a->next, c);
    link_to(&c->next, b);
    link_to(&b->next, a);
    tally_decref(a);
    tally_decref(b);
    tally_decref(c);
    assert_int_equal(tally_gc_collect(rt, 2), 0); /* all three resurrected */
    assert_ptr_equal(g_root, a);
    assert_int_equal(g_to.des_total, 0);
    assert_int_equal(g_to.fin_total, 1);
    assert_int_equal(tally_gc_is_finalized(a), 0);
    assert_int_equal(tally_gc_is_finalized(b), 1);
    node *root = g_root;
    g_root = NULL;
    tally_decref(root);
    assert_int_equal(tally_gc_collect(rt, 2), 3);
    assert_int_equal(g_to.des_total, 3);
    assert_int_equal(g_to.fin_total, 1);
    assert_int_equal(g_to.anomalies, 0);
    assert_settled(rt, base);
    tally_close(rt);
}

static void fin_collect(node *self)
{
    (void)self;
    tally_clear_error(g_rt);
    g_inner_collect = tally_gc_collect(g_rt, 2);
    g_inner_err = tally_last_error(g_rt);
}

static void test_collect_from_finalizer_refused(void **state)
{
    (void)state;
    size_t base;
    tally_rt *rt = g_rt = open_gc(NULL, 0, &base);
    g_to.fin_hook = fin_collect;
    g_inner_collect = 12345;
    node *r = mk_ring(rt, &NODE, 2, 1);
    tally_decref(r);
    assert_int_equal(tally_gc_collect(rt, 2), 2);
    assert_int_equal(g_inner_collect, -1);
    assert_int_equal(g_inner_err, TALLY_EBUSY);
    assert_int_equal(g_to.des_total, 2);
    /* A finalizer run by count may collect. */
    g_inner_collect = 12345;
    node *x = mk(rt, &NODE, 3);
    node *garbage = mk_ring(rt, &NODE_NOFIN, 3, 10);
    tally_decref(garbage);
    tally_decref(x);
    assert_int_equal(g_inner_collect, 3);
    assert_int_equal(g_to.des_total, 6);
    assert_settled(rt, base);
    tally_close(rt);
}

/* ---- weak references and the collector ------------------------------------------------------ */

static void *g_wr_a, *g_wr_b;
static int g_fin_saw_target;

static void fin_look_through_weakrefs(node *self)
{
    (void)self;
    void *wrs[2] = {g_wr_a, g_wr_b};
    for (int i = 0; i < 2; i++) {
        void *t = tally_weakref_get(wrs[i]);
        if (t) {
            g_fin_saw_target++;
            tally_decref(t);
        }
    }
}

static void test_weakrefs_cleared_before_finalizers(void **state)
{
    (void)state;
    for (int debug = 0; debug <= 1; debug++) {
        size_t base;
        tally_rt *rt = open_gc(NULL, debug, &base);
        g_to.fin_hook = fin_look_through_weakrefs;
        g_fin_saw_target = 0;
        node *a = mk(rt, &NODE, 1), *b = mk(rt, &NODE, 2);
        link_to(&a->next, b);
        link_to(&b->next, a);
        wcb wa, wb;
        memset(&wa, 0, sizeof wa);
        memset(&wb, 0, sizeof wb);
        wa.id = 100;
        wb.id = 101;
        g_wr_a = tally_weakref_new(rt, a, wcb_fn, &wa);
        g_wr_b = tally_weakref_new(rt, b, NULL, NULL);
        assert_non_null(g_wr_a);
        assert_non_null(g_wr_b);
        void *wr_b2 = tally_weakref_new(rt, b, wcb_fn, &wb);
        assert_non_null(wr_b2);
        assert_int_equal(tally_weakref_count(a), 1);
        assert_int_equal(tally_weakref_count(b), 2);
        tally_decref(a);
        tally_decref(b);
        assert_true(tally_gc_collect(rt, 2) >= 2);
        assert_int_equal(g_to.fin[1], 1);
        assert_int_equal(g_to.fin[2], 1);
        assert_int_equal(g_fin_saw_target, 0);
        /* Live weak references to dead targets: callbacks ran, once each. */
        assert_int_equal(wa.calls, 1);
        assert_ptr_equal(wa.last_wr, g_wr_a);
        assert_int_equal(wa.got_target, 0);
        assert_int_equal(wb.calls, 1);
        assert_ptr_equal(wb.last_wr, wr_b2);
        assert_null(tally_weakref_get(g_wr_a));
        assert_null(tally_weakref_get(g_wr_b));
        assert_int_equal(g_to.des[1] + g_to.des[2], 2);
        assert_int_equal(tally_gc_collect(rt, 2), 0);
        assert_int_equal(wa.calls, 1);
        tally_decref(g_wr_a);
        tally_decref(g_wr_b);
        tally_decref(wr_b2);
        assert_int_equal(wa.calls + wb.calls, 2);
        assert_int_equal(g_to.anomalies, 0);
        assert_settled(rt, base);
        tally_close(rt);
    }
}

static void test_weakref_callbacks_skip_garbage_weakrefs(void **state)
{
    (void)state;
    for (int debug = 0; debug <= 1; debug++) {
        size_t base;
        tally_rt *rt = open_gc(NULL, debug, &base);
        node *a = mk(rt, &NODE, 1), *b = mk(rt, &NODE_NOCLEAR, 2);
        link_to(&a->next, b);
        link_to(&b->next, a);
        wcb live, dead, dead2;
        memset(&live, 0, sizeof live);
        memset(&dead, 0, sizeof dead);
        memset(&dead2, 0, sizeof dead2);
        void *wl = tally_weakref_new(rt, a, wcb_fn, &live);
        b->extra = tally_weakref_new(rt, a, wcb_fn, &dead); /* held by garbage only */
        a->extra = tally_weakref_new(rt, b, wcb_fn, &dead2);
        assert_non_null(wl);
        assert_non_null(b->extra);
        assert_non_null(a->extra);
        tally_decref(a);
        tally_decref(b);
        assert_true(tally_gc_collect(rt, 2) >= 2);
        assert_int_equal(live.calls, 1);
        assert_int_equal(dead.calls, 0);
        assert_int_equal(dead2.calls, 0);
        assert_int_equal(g_to.des[1], 1);
        assert_int_equal(g_to.des[2], 1);
        assert_null(tally_weakref_get(wl));
        tally_decref(wl);
        assert_int_equal(live.calls + dead.calls + dead2.calls, 1);
        assert_int_equal(g_to.anomalies, 0);
        assert_settled(rt, base);
        tally_close(rt);
    }
}

/* Weak references do not make cycles: a -> b strongly, b -> a weakly dies by count,
 * and a weak reference an object holds to itself gets its callback (it is alive
 * when its target dies). */
static void test_cycles_through_weakrefs(void **state)
{
    (void)state;
    size_t base;
    tally_rt *rt = open_gc(NULL, 0, &base);
    node *a = mk(rt, &NODE, 1), *b = mk(rt, &NODE, 2);
    link_to(&a->next, b);
    wcb w1, w2;
    memset(&w1, 0, sizeof w1);
    memset(&w2, 0, sizeof w2);
    w1.id = 50;
    w2.id = 51;
    b->extra = tally_weakref_new(rt, a, wcb_fn, &w1);
    assert_non_null(b->extra);
    tally_decref(b);
    tally_decref(a); /* no collection needed */
    assert_int_equal(g_to.des[1], 1);
    assert_int_equal(g_to.des[2], 1);
    assert_int_equal(w1.calls, 1);
    assert_int_equal(w1.got_target, 0);
    assert_true(to_find('F', 1) < to_find('W', 50));
    assert_true(to_find('W', 50) < to_find('D', 1));
    node *s = mk(rt, &NODE_NOCLEAR, 3);
    s->extra = tally_weakref_new(rt, s, wcb_fn, &w2);
    assert_non_null(s->extra);
    assert_int_equal(tally_refcount(s), 1);
    tally_decref(s);
    assert_int_equal(g_to.des[3], 1);
    assert_int_equal(w2.calls, 1);
    assert_int_equal(tally_gc_collect(rt, 2), 0);
    assert_int_equal(g_to.anomalies, 0);
    assert_settled(rt, base);
    tally_close(rt);
}

/* ---- exhaustion ------------------------------------------------------------------------ */

static _Alignas(65536) unsigned char g_fixbuf[4 * 1024 * 1024];

/* Fills rt with one ring of `t` nodes until allocation fails; returns the ring
 * (a new reference), its length in *n. */
static node *fill_with_ring(tally_rt *rt, const tally_type *t, size_t *n)
{
    node *first = mk(rt, t, -1);
    node *prev = first;
    *n = 1;
    for (;;) {
        tally_clear_error(rt);
        node *x = tally_new(rt, t);
        if (x == NULL) {
            assert_int_equal(tally_last_error(rt), TALLY_ENOMEM);
            break;
        }
        x->id = -1;
        x->magic = TO_LIVE;
        prev->next = x;
        prev = x;
        ++*n;
    }
    link_to(&prev->next, first);
    return first;
}

static const tally_type BYTES = {"bytes", 16, 1, 0, NULL, NULL, NULL, NULL, NULL};

static void test_exhaustion_collects_before_failing(void **state)
{
    (void)state;
    size_t size = max_size(tally_fixed_min() + 512 * KiB, 1 * MiB);
    for (int kind = 0; kind < 3; kind++) {
        to_reset();
        recorder rec;
        tally_rt *rt = open_fixed(g_fixbuf + 3, size, &rec, 0);
        size_t n;
        node *ring = fill_with_ring(rt, &NODE_NOFIN, &n);
        assert_true(n > 1000);
        /* Full of reachable objects: still failing after the collection it tries. */
        tally_clear_error(rt);
        assert_null(tally_new(rt, &NODE_NOFIN));
        assert_int_equal(tally_last_error(rt), TALLY_ENOMEM);
        unsigned long long c0 = total_collections(rt);
        tally_decref(ring); /* the whole buffer is cyclic garbage now */
        assert_int_equal(g_to.des_total, 0);
        tally_clear_error(rt);
        void *p;
        if (kind == 0)
            p = tally_new(rt, &NODE_NOFIN); /* the same kind of object */
        else if (kind == 1)
            p = tally_new_var(rt, &BYTES, 300 * KiB); /* needs many free pools */
        else
            p = tally_malloc(rt, 300 * KiB); /* a raw block */
        assert_non_null(p);
        assert_true(total_collections(rt) > c0);
        assert_int_equal(g_to.des_total, n);
        if (kind == 0)
            ((node *)p)->magic = TO_LIVE;
        if (kind < 2)
            tally_decref(p);
        else
            tally_free(rt, p);
        assert_int_equal(rec.count, 0);
        assert_int_equal(tally_heap_check(rt), 0);
        tally_close(rt);
    }
}

static void test_collect_in_full_heap_allocates_nothing(void **state)
{
    (void)state;
    for (int debug = 0; debug <= 1; debug++) {
        to_reset();
        recorder rec;
        tally_rt *rt = open_fixed(g_fixbuf + 5, max_size(tally_fixed_min() + 512 * KiB, 1 * MiB),
                                  &rec, debug);
        tally_gc_disable(rt); /* let the garbage pile up */
        size_t cycles = 0, made = 0;
        unsigned long wcalls = 0;
        static wcb w[4096];
        memset(w, 0, sizeof w);
        void *live_wrs[64];
        size_t nlive = 0;
        for (;;) {
            node *a = tally_new(rt, &NODE);
            if (a == NULL)
                break;
            a->id = -1;
            a->magic = TO_LIVE;
            made++;
            node *b = tally_new(rt, &NODE_NOCLEAR);
            if (b == NULL) {
                tally_decref(a);
                break;
            }
            b->id = -1;
            b->magic = TO_LIVE;
            made++;
            link_to(&a->next, b);
            link_to(&b->next, a);
            if (nlive < 64 && cycles % 8 == 0) {
                void *wr = tally_weakref_new(rt, a, wcb_fn, &w[nlive]);
                if (wr == NULL) {
                    tally_decref(a);
                    tally_decref(b);
                    break;
                }
                live_wrs[nlive++] = wr;
            }
            tally_decref(a);
            tally_decref(b);
            cycles++;
        }
        assert_true(cycles > 100);
        assert_true(nlive > 0);
        /* Nothing can be allocated now, and nothing may be asked for. */
        tally_fault_inject(rt, TALLY_FAULT_ALLOC, 1, TALLY_FAULT_PERSIST);
        tally_fault_inject(rt, TALLY_FAULT_BACKEND, 1, TALLY_FAULT_PERSIST);
        unsigned long ra = tally_fault_requests(rt, TALLY_FAULT_ALLOC);
        unsigned long rb = tally_fault_requests(rt, TALLY_FAULT_BACKEND);
        unsigned long d0 = g_to.des_total; /* at most one, died by count */
        long found = tally_gc_collect(rt, 2);
        assert_true(found >= (long)(2 * cycles));
        assert_int_equal(tally_fault_requests(rt, TALLY_FAULT_ALLOC), ra);
        assert_int_equal(tally_fault_requests(rt, TALLY_FAULT_BACKEND), rb);
        assert_true(d0 <= 1);
        assert_int_equal(g_to.des_total, made);
        assert_int_equal(g_to.fin_total, made);
        for (size_t i = 0; i < nlive; i++) {
            assert_int_equal(w[i].calls, 1);
            wcalls += (unsigned long)w[i].calls;
        }
        assert_int_equal(wcalls, nlive);
        tally_fault_inject(rt, TALLY_FAULT_ALLOC, 0, 0);
        tally_fault_inject(rt, TALLY_FAULT_BACKEND, 0, 0);
        for (size_t i = 0; i < nlive; i++)
            tally_decref(live_wrs[i]);
        node *x = tally_new(rt, &NODE);
        assert_non_null(x);
        x->id = -1;
        x->magic = TO_LIVE;
        tally_decref(x);
        assert_int_equal(g_to.anomalies, 0);
        assert_int_equal(rec.count, 0);
        assert_int_equal(tally_heap_check(rt), 0);
        tally_close(rt);
    }
}


/* ---- the collector's lists changing under it ------------------------------------------ */

static void fin_untrack_or_immortalize(node *self)
{
    if (self->id == 1)
        tally_gc_untrack(self);
    if (self->id == 3 && self->next)
        tally_gc_untrack(self->next); /* a neighbour, finalized or not yet */
    if (self->id == 5)
        tally_immortalize(self);
}

/* Finalizers that untrack or immortalize objects of the garbage being collected:
 * the collection completes, what they hold survives (CPython's semantics), nothing
 * is destroyed twice, the heap stays valid. */
static void test_finalizer_untracks_garbage(void **state)
{
    (void)state;
    for (int debug = 0; debug <= 1; debug++) {
        size_t base;
        recorder rec;
        tally_rt *rt = open_gc(&rec, debug, &base);
        g_to.fin_hook = fin_untrack_or_immortalize;
        node *r1 = mk_ring(rt, &NODE, 2, 1); /* 1 <-> 2 */
        node *r2 = mk_ring(rt, &NODE, 2, 3); /* 3 <-> 4 */
        tally_decref(r1);
        tally_decref(r2);
        node *one = r1, *four = r2->next;
        /* As in CPython, an object untracked meanwhile counts as a reference from
         * outside: what it holds is resurrected, nothing is freed. */
        assert_int_equal(tally_gc_collect(rt, 2), 0);
        for (int i = 1; i <= 3; i++)
            assert_int_equal(g_to.fin[i], 1);
        assert_int_equal(g_to.fin[4], 0); /* untracked before its turn */
        assert_int_equal(g_to.des[1] + g_to.des[2] + g_to.des[3] + g_to.des[4], 0);
        assert_int_equal(tally_gc_is_tracked(one), 0);
        assert_int_equal(tally_gc_is_tracked(four), 0);
        assert_int_equal(tally_gc_collect(rt, 2), 0);
        /* Tracked again, they are collected, each finalized once in all. */
        assert_int_equal(tally_gc_track(one), 0);
        assert_int_equal(tally_gc_track(four), 0);
        assert_int_equal(tally_gc_collect(rt, 2), 4);
        for (int i = 1; i <= 4; i++) {
            assert_int_equal(g_to.fin[i], 1);
            assert_int_equal(g_to.des[i], 1);
        }
        assert_int_equal(g_to.anomalies, 0);
        assert_int_equal(tally_heap_check(rt), 0);
        /* An object made immortal by its own finalizer, in a cycle. */
        node *r3 = mk_ring(rt, &NODE, 2, 5); /* 5 <-> 6 */
        node *five = r3;
        tally_decref(r3);
        assert_true(tally_gc_collect(rt, 2) >= 0);
        assert_int_equal(g_to.fin[5], 1);
        assert_int_equal(g_to.des[5], 0);
        assert_true(tally_is_immortal(five));
        assert_int_equal(five->magic, TO_LIVE);
        assert_int_equal(g_to.anomalies, 0);
        assert_int_equal(rec.count, 0);
        assert_int_equal(tally_heap_check(rt), 0);
        tally_close(rt);
    }
}

static tally_rt *g_alloc_rt;
static unsigned long g_fin_made;

/* A finalizer that makes new containers (new cyclic garbage among them) while the
 * collector runs, with thresholds that would collect at once. */
static void fin_make_containers(node *self)
{
    if (self->id < 0)
        return;
    for (int i = 0; i < 5; i++) {
        node *x = tally_new(g_alloc_rt, &NODE_NOFIN);
        if (x == NULL)
            return;
        x->id = -1;
        x->magic = TO_LIVE;
        g_fin_made++;
        tally_setref(&x->next, x);
        tally_decref(x);
    }
}

static void test_finalizer_allocates_containers(void **state)
{
    (void)state;
    size_t base;
    tally_rt *rt = g_alloc_rt = open_gc(NULL, 0, &base);
    g_to.fin_hook = fin_make_containers;
    g_fin_made = 0;
    gcrec r;
    memset(&r, 0, sizeof r);
    assert_int_equal(tally_gc_callback_add(rt, gcrec_cb, &r), 0);
    tally_gc_set_threshold(rt, 1, 1, 1);
    node *ring = mk_ring(rt, &NODE, 20, 1);
    tally_decref(ring);
    int before = r.n;
    assert_int_equal(tally_gc_collect(rt, 2), 20);
    assert_int_equal(r.n, before + 2); /* no collection nested in this one */
    assert_int_equal(g_fin_made, 100);
    for (int i = 1; i <= 20; i++)
        assert_int_equal(g_to.des[i], 1);
    /* The garbage the finalizers made is collected later. */
    tally_gc_set_threshold(rt, 700, 10, 10);
    tally_gc_collect(rt, 2);
    assert_int_equal(g_to.des_total, 20 + g_fin_made);
    assert_int_equal(g_to.anomalies, 0);
    for (int i = 0; i < r.n && i < 64; i += 2) {
        assert_int_equal(r.phase[i], TALLY_GC_START);
        assert_int_equal(r.phase[i + 1], TALLY_GC_STOP);
    }
    assert_int_equal(tally_gc_callback_remove(rt, gcrec_cb, &r), 0);
    assert_settled(rt, base);
    tally_close(rt);
}

/* A weak reference callback run by the collector resurrects part of the garbage
 * (its argument): that object and all it reaches survive. */
static node *g_cb_root;

static void wcb_resurrect_arg(void *wr, void *arg)
{
    (void)wr;
    node *o = arg;
    if (g_cb_root == NULL) {
        tally_incref(o);
        g_cb_root = o;
    }
}

static void test_weakref_callback_resurrects(void **state)
{
    (void)state;
    size_t base;
    tally_rt *rt = open_gc(NULL, 0, &base);
    g_cb_root = NULL;
    node *a = mk(rt, &NODE, 1), *b = mk(rt, &NODE, 2);
    link_to(&a->next, b);
    link_to(&b->next, a);
    void *w = tally_weakref_new(rt, a, wcb_resurrect_arg, b);
    assert_non_null(w);
    tally_decref(a);
    tally_decref(b);
    assert_true(tally_gc_collect(rt, 2) >= 0);
    assert_ptr_equal(g_cb_root, b);
    assert_int_equal(g_to.des[1] + g_to.des[2], 0);
    assert_int_equal(a->magic, TO_LIVE);
    assert_int_equal(b->magic, TO_LIVE);
    assert_ptr_equal(b->next, a);
    assert_null(tally_weakref_get(w)); /* cleared all the same */
    node *root = g_cb_root;
    g_cb_root = (node *)1;
    tally_decref(root);
    assert_true(tally_gc_collect(rt, 2) >= 2);
    assert_int_equal(g_to.des[1], 1);
    assert_int_equal(g_to.des[2], 1);
    assert_int_equal(g_to.fin[1], 1);
    assert_int_equal(g_to.fin[2], 1);
    tally_decref(w);
    g_cb_root = NULL;
    assert_int_equal(g_to.anomalies, 0);
    assert_settled(rt, base);
    tally_close(rt);
}

/* Collections started from a weak reference callback and from destroy while an
 * object dies by count (no collection is running then). */
static long g_cb_collect = 12345;

static void wcb_collect(void *wr, void *arg)
{
    (void)wr;
    g_cb_collect = tally_gc_collect((tally_rt *)arg, 2);
}

static void des_collect(node *self)
{
    if (self->id == 7)
        g_inner_collect = tally_gc_collect(g_rt, 2);
}

static void test_collect_during_death_by_count(void **state)
{
    (void)state;
    size_t base;
    tally_rt *rt = g_rt = open_gc(NULL, 0, &base);
    node *t = mk(rt, &NODE, 1);
    node *held = mk(rt, &NODE, 2);
    link_to(&t->next, held); /* still held by t while its callbacks run */
    link_to(&held->next, t);
    tally_setref(&held->next, NULL);
    void *w = tally_weakref_new(rt, t, wcb_collect, rt);
    node *garbage = mk_ring(rt, &NODE_NOFIN, 3, 10);
    tally_decref(garbage);
    tally_decref(held);
    tally_decref(t);
    assert_int_equal(g_cb_collect, 3);
    assert_int_equal(g_to.des[1], 1);
    assert_int_equal(g_to.des[2], 1);
    assert_int_equal(g_to.des[10] + g_to.des[11] + g_to.des[12], 3);
    tally_decref(w);
    g_to.des_hook = des_collect;
    g_inner_collect = 12345;
    node *d = mk(rt, &NODE, 7);
    d->next = mk(rt, &NODE, 8);
    garbage = mk_ring(rt, &NODE_NOFIN, 4, 20);
    tally_decref(garbage);
    tally_decref(d);
    assert_int_equal(g_inner_collect, 4);
    assert_int_equal(g_to.des[7], 1);
    assert_int_equal(g_to.des[8], 1);
    assert_int_equal(g_to.anomalies, 0);
    g_to.des_hook = NULL;
    assert_settled(rt, base);
    tally_close(rt);
}

static void test_freeze_count_follows_deaths(void **state)
{
    (void)state;
    size_t base;
    tally_rt *rt = open_gc(NULL, 0, &base);
    node *a = mk(rt, &NODE, 1), *b = mk(rt, &NODE, 2);
    tally_gc_freeze(rt);
    assert_int_equal(tally_gc_get_freeze_count(rt), 2);
    tally_decref(a); /* frozen objects die by count as usual */
    assert_int_equal(g_to.des[1], 1);
    assert_int_equal(tally_gc_get_freeze_count(rt), 1);
    tally_gc_untrack(b);
    assert_int_equal(tally_gc_get_freeze_count(rt), 0);
    assert_int_equal(tally_gc_track(b), 0);
    assert_int_equal(generation_of(rt, b), 0);
    tally_gc_unfreeze(rt);
    tally_gc_unfreeze(rt);
    assert_int_equal(tally_gc_get_freeze_count(rt), 0);
    tally_decref(b);
    assert_settled(rt, base);
    tally_close(rt);
}

/* A visitor may take references to what it is shown. */
static void visit_keep(void *o, void *arg)
{
    seen_visit(o, arg);
    tally_incref(o);
}

static void test_walk_visitors_take_references(void **state)
{
    (void)state;
    size_t base;
    tally_rt *rt = open_gc(NULL, 0, &base);
    node *r = mk_ring(rt, &NODE, 10, 1);
    tally_decref(r);
    seen_set s;
    memset(&s, 0, sizeof s);
    assert_int_equal(tally_gc_get_objects(rt, -1, visit_keep, &s), 10);
    assert_int_equal(tally_gc_collect(rt, 2), 0); /* kept by the visitor's references */
    memset(&s, 0, sizeof s);
    assert_int_equal(tally_gc_get_objects(rt, -1, seen_visit, &s), 10);
    for (size_t i = 0; i < s.n; i++)
        tally_decref((void *)s.p[i]);
    assert_int_equal(tally_gc_collect(rt, 2), 10);
    assert_int_equal(g_to.des_total, 10);
    assert_settled(rt, base);
    tally_close(rt);
}

/* Closing a runtime releases whatever is left: live cycles, garbage, weak
 * references, immortal and frozen objects, the garbage list. */
static void test_close_with_everything_alive(void **state)
{
    (void)state;
    for (int debug = 0; debug <= 1; debug++) {
        size_t base;
        recorder rec;
        tally_rt *rt = open_gc(&rec, debug, &base);
        node *live = mk_ring(rt, &NODE, 5, 1);
        node *garbage = mk_ring(rt, &NODE_NOCLEAR, 5, 10);
        wcb w;
        memset(&w, 0, sizeof w);
        void *wr = tally_weakref_new(rt, live, wcb_fn, &w);
        void *wr2 = tally_weakref_new(rt, garbage, NULL, NULL);
        assert_non_null(wr);
        assert_non_null(wr2);
        tally_decref(garbage);
        node *im = mk(rt, &NODE, 20);
        link_to(&im->next, live);
        tally_immortalize(im);
        tally_gc_freeze(rt);
        node *saved = mk_ring(rt, &NODE_NOFIN, 3, 30);
        tally_decref(saved);
        tally_gc_set_debug(rt, TALLY_GC_DEBUG_SAVEALL);
        assert_int_equal(tally_gc_collect(rt, 2), 3);
        node *young = mk_ring(rt, &NODE, 4, 40);
        (void)young;
        assert_int_equal(rec.count, 0);
        tally_close(rt); /* leak checkers and ASan watch this */
    }
}


/* Finalizers (and weak reference callbacks) run by the collector that break the
 * garbage apart, so that objects the collector is holding in its lists die by count
 * in the middle of the collection. */
static int g_break_id;

static void fin_break_next(node *self)
{
    if (self->id == g_break_id) {
        tally_setref(&self->next, NULL);
        tally_setref(&self->other, NULL);
    }
}

static void wcb_break_arg(void *wr, void *arg)
{
    (void)wr;
    node *o = arg;
    tally_setref(&o->next, NULL);
}

static void test_garbage_broken_during_collection(void **state)
{
    (void)state;
    for (int debug = 0; debug <= 1; debug++) {
        for (int which = 1; which <= 5; which++) {
            for (int kind = 0; kind < 3; kind++) {
                size_t base;
                recorder rec;
                tally_rt *rt = open_gc(&rec, debug, &base);
                g_to.fin_hook = fin_break_next;
                g_break_id = which;
                const tally_type *t = kind == 0 ? &NODE : kind == 1 ? &NODE_NOCLEAR : &NODE;
                node *ring = mk_ring(rt, t, 5, 1); /* 1 -> 2 -> 3 -> 4 -> 5 -> 1 */
                if (kind == 2) { /* a second, backwards ring through `other` */
                    node *x = ring;
                    for (int i = 0; i < 5; i++) {
                        link_to(&x->next->other, x);
                        x = x->next;
                    }
                }
                tally_decref(ring);
                assert_true(tally_gc_collect(rt, 2) >= 0);
                assert_true(tally_gc_collect(rt, 2) >= 0);
                for (int i = 1; i <= 5; i++) {
                    assert_int_equal(g_to.fin[i], 1);
                    assert_int_equal(g_to.des[i], 1);
                }
                assert_int_equal(g_to.anomalies, 0);
                assert_int_equal(rec.count, 0);
                assert_int_equal(tally_heap_check(rt), 0);
                assert_settled(rt, base);
                tally_close(rt);
            }
        }
        /* The same from a weak reference callback, before any finalizer. */
        size_t base;
        recorder rec;
        tally_rt *rt = open_gc(&rec, debug, &base);
        node *ring = mk_ring(rt, &NODE, 5, 1);
        void *w = tally_weakref_new(rt, ring->next->next, wcb_break_arg, ring->next);
        assert_non_null(w);
        tally_decref(ring);
        assert_true(tally_gc_collect(rt, 2) >= 0);
        assert_true(tally_gc_collect(rt, 2) >= 0);
        for (int i = 1; i <= 5; i++) {
            assert_int_equal(g_to.fin[i], 1);
            assert_int_equal(g_to.des[i], 1);
        }
        tally_decref(w);
        assert_int_equal(g_to.anomalies, 0);
        assert_int_equal(rec.count, 0);
        assert_int_equal(tally_heap_check(rt), 0);
        assert_settled(rt, base);
        tally_close(rt);
    }
}


/* An object of a type without clear (its references released through traverse)
 * that survives the collector's clearing - here another garbage object's clear
 * stores it in a global - keeps pointers to what it released.  The collector must
 * not follow them later: the next collection, and the object's death, touch no
 * freed memory (debug mode poisons freed blocks, ASan watches them). */
static node *g_stash, *g_stash_target;

static void clr_stash(node *self)
{
    if (self->id == 1 && g_stash_target != NULL && g_stash == NULL) {
        tally_incref(g_stash_target);
        g_stash = g_stash_target;
    }
}

static void test_survivor_of_traverse_release_not_followed(void **state)
{
    (void)state;
    for (int debug = 1; debug >= 0; debug--) {
        size_t base;
        recorder rec;
        tally_rt *rt = open_gc(&rec, debug, &base);
        node *a = mk(rt, &NODE, 1), *b = mk(rt, &NODE_NOCLEAR, 2), *c = mk(rt, &NODE_NOFIN, 3);
        link_to(&a->next, b);
        link_to(&b->next, a);
        b->other = c; /* only b's */
        g_stash = NULL;
        g_stash_target = b;
        g_to.clr_hook = clr_stash;
        tally_decref(a);
        tally_decref(b);
        assert_true(tally_gc_collect(rt, 2) >= 2);
        assert_ptr_equal(g_stash, b);
        assert_int_equal(g_to.des[1], 1);
        assert_int_equal(g_to.des[2], 0);
        g_to.clr_hook = NULL;
        /* b is alive; what it pointed to is gone. */
        assert_true(tally_gc_collect(rt, 2) >= 0);
        assert_true(tally_gc_collect(rt, 0) >= 0);
        assert_int_equal(tally_heap_check(rt), 0);
        assert_int_equal(rec.count, 0);
        node *stash = g_stash;
        g_stash = NULL;
        tally_decref(stash); /* dies without releasing anything twice */
        assert_int_equal(g_to.des[2], 1);
        assert_int_equal(g_to.des[3], 1);
        assert_int_equal(g_to.anomalies, 0);
        assert_int_equal(rec.count, 0);
        assert_int_equal(tally_heap_check(rt), 0);
        assert_settled(rt, base);
        tally_close(rt);
    }
}

/* Weak references created by a finalizer to objects of the garbage (whose weak
 * references the collector has cleared already): when the collector frees those
 * objects, the new weak references are cleared too - never left dangling. */
static void *g_late_wr[4];
static wcb g_late_cb[4];
static tally_rt *g_late_rt;

static void fin_late_weakref(node *self)
{
    if (self->id == 1 && self->next != NULL) {
        g_late_wr[0] = tally_weakref_new(g_late_rt, self->next, wcb_fn, &g_late_cb[0]);
        g_late_wr[1] = tally_weakref_new(g_late_rt, self->next, NULL, NULL);
        g_late_wr[2] = tally_weakref_new(g_late_rt, self, wcb_fn, &g_late_cb[2]);
    }
}

static void test_weakref_made_by_finalizer_to_garbage(void **state)
{
    (void)state;
    for (int debug = 0; debug <= 1; debug++) {
        size_t base;
        recorder rec;
        tally_rt *rt = g_late_rt = open_gc(&rec, debug, &base);
        memset(g_late_wr, 0, sizeof g_late_wr);
        memset(g_late_cb, 0, sizeof g_late_cb);
        g_to.fin_hook = fin_late_weakref;
        node *ring = mk_ring(rt, &NODE, 3, 1);
        void *early = tally_weakref_new(rt, ring->next, NULL, NULL); /* cleared first */
        assert_non_null(early);
        tally_decref(ring);
        assert_true(tally_gc_collect(rt, 2) >= 3);
        for (int i = 1; i <= 3; i++)
            assert_int_equal(g_to.des[i], 1);
        for (int i = 0; i < 3; i++) {
            assert_non_null(g_late_wr[i]);
            assert_null(tally_weakref_get(g_late_wr[i]));
        }
        assert_true(g_late_cb[0].calls <= 1);
        assert_true(g_late_cb[2].calls <= 1);
        assert_int_equal(g_late_cb[0].got_target + g_late_cb[2].got_target, 0);
        assert_null(tally_weakref_get(early));
        assert_ptr_not_equal(early, g_late_wr[1]); /* not the cleared shared one */
        for (int i = 0; i < 3; i++)
            tally_decref(g_late_wr[i]);
        tally_decref(early);
        assert_int_equal(g_to.anomalies, 0);
        assert_int_equal(rec.count, 0);
        assert_int_equal(tally_heap_check(rt), 0);
        assert_settled(rt, base);
        tally_close(rt);
    }
}

/* A collection callback that removes another one: the removed one is not called
 * again, not even later in the same round (its argument may be gone). */
typedef struct removing {
    tally_rt *rt;
    int calls;
    int removed;       /* this one was removed */
    int called_after;  /* ...and called after that */
    struct removing *victim;
} removing;

static void removing_cb(tally_rt *rt, tally_gc_phase phase, const tally_gc_info *info, void *arg)
{
    (void)phase;
    (void)info;
    removing *r = arg;
    r->calls++;
    if (r->removed)
        r->called_after++;
    if (r->victim != NULL && !r->victim->removed) {
        if (tally_gc_callback_remove(rt, removing_cb, r->victim) == 0)
            r->victim->removed = 1;
    }
}

static void test_callback_removing_another(void **state)
{
    (void)state;
    size_t base;
    tally_rt *rt = open_gc(NULL, 0, &base);
    removing first, second;
    memset(&first, 0, sizeof first);
    memset(&second, 0, sizeof second);
    first.victim = &second;
    assert_int_equal(tally_gc_callback_add(rt, removing_cb, &first), 0);
    assert_int_equal(tally_gc_callback_add(rt, removing_cb, &second), 0);
    assert_int_equal(tally_gc_collect(rt, 0), 0);
    assert_int_equal(second.removed, 1);
    assert_int_equal(second.called_after, 0);
    assert_int_equal(first.calls, 2);
    /* A callback removing itself is fine too. */
    first.victim = &first;
    assert_int_equal(tally_gc_collect(rt, 0), 0);
    assert_int_equal(first.removed, 1);
    assert_int_equal(first.called_after, 0);
    assert_int_equal(first.calls, 3);
    assert_int_equal(tally_gc_callback_remove(rt, removing_cb, &first), -1);
    assert_settled(rt, base);
    tally_close(rt);
}


/* ---- containers of every size --------------------------------------------------------- */

static const tally_type BIGC = {"bigc", sizeof(node), 8, TALLY_TYPE_CONTAINER, node_traverse,
                                node_clear, NULL, node_destroy, NULL};

static node *mk_big(tally_rt *rt, size_t bytes, int id)
{
    node *o = tally_new_var(rt, &BIGC, bytes / 8);
    assert_non_null(o);
    o->id = id;
    o->magic = TO_LIVE;
    return o;
}

/* Containers in blocks of their own mapping (bigger than an arena), in runs of
 * pools, and in pools, linked into cycles with small ones, many times over (the
 * mappings come and go): collected, listed, counted like the others. */
static void test_huge_containers(void **state)
{
    (void)state;
    for (int fixed = 0; fixed <= 1; fixed++) {
        to_reset();
        recorder rec;
        tally_rt *rt = fixed ? open_fixed(g_fixbuf + 11, sizeof g_fixbuf - 64, &rec, 0)
                             : open_hosted(&rec, 0);
        size_t base = to_baseline(rt);
        const size_t sizes[] = {3 * MiB, 2 * MiB + 4096, 300 * KiB, 40 * KiB, 600};
        node *keep[8];
        int nkeep = 0;
        int id = 1;
        for (int round = 0; round < 30; round++) {
            size_t bytes = sizes[round % 5];
            if (fixed && bytes > 400 * KiB)
                bytes = 300 * KiB; /* a run of pools of the buffer */
            int ib = id++, is = id++;
            node *big = mk_big(rt, bytes, ib);
            node *small = mk(rt, &NODE_NOFIN, is);
            link_to(&big->next, small);
            link_to(&small->next, big);
            if (round % 7 == 3 && nkeep < 8) {
                keep[nkeep] = mk_big(rt, bytes, id++);
                link_to(&keep[nkeep]->other, keep[nkeep]); /* a live self-cycle */
                nkeep++;
            }
            tally_decref(big);
            tally_decref(small);
            assert_int_equal(tally_gc_collect(rt, round % 3), 2);
            assert_int_equal(g_to.des[ib], 1);
            assert_int_equal(g_to.des[is], 1);
        }
        seen_set s;
        assert_int_equal(objects_in(rt, -1, &s), (size_t)nkeep);
        for (int i = 0; i < nkeep; i++) {
            assert_int_equal(seen_count(&s, keep[i]), 1);
            assert_int_equal(keep[i]->magic, TO_LIVE);
        }
        unsigned long d = g_to.des_total;
        for (int i = 0; i < nkeep; i++)
            tally_decref(keep[i]);
        assert_int_equal(tally_gc_collect(rt, 2), nkeep);
        assert_int_equal(g_to.des_total, d + (unsigned long)nkeep);
        assert_int_equal(g_to.des_total, 60 + (unsigned long)nkeep);
        assert_int_equal(g_to.anomalies, 0);
        assert_int_equal(rec.count, 0);
        assert_int_equal(tally_heap_check(rt), 0);
        assert_settled(rt, base);
        tally_close(rt);
    }
}

/* ---- runtimes on threads ---------------------------------------------------------------- */

static _Thread_local unsigned long t_destroyed;

static void tnode_destroy(void *self)
{
    (void)self;
    t_destroyed++;
}

static const tally_type TNODE = {"tnode", sizeof(node), 0, TALLY_TYPE_CONTAINER, node_traverse,
                                 NULL, NULL, tnode_destroy, NULL};

typedef struct thread_job {
    int seed;
    unsigned long made, destroyed;
    long collected;
    int failed;
} thread_job;

static void *thread_main(void *arg)
{
    thread_job *j = arg;
    tally_rt *rt = tally_open(NULL);
    if (rt == NULL) {
        j->failed = 1;
        return NULL;
    }
    tally_gc_set_threshold(rt, 50 + j->seed, 5, 5);
    for (int round = 0; round < 200; round++) {
        node *first = tally_new(rt, &TNODE), *prev = first;
        if (first == NULL) {
            j->failed = 1;
            break;
        }
        j->made++;
        for (int i = 0; i < 20 + (round + j->seed) % 30; i++) {
            node *x = tally_new(rt, &TNODE);
            if (x == NULL) {
                j->failed = 1;
                break;
            }
            j->made++;
            prev->next = x;
            prev = x;
        }
        tally_setref(&prev->next, first);
        void *w = tally_weakref_new(rt, first, NULL, NULL);
        tally_decref(first);
        if (round % 10 == 0)
            j->collected += tally_gc_collect(rt, round % 3);
        tally_xdecref(w);
    }
    j->collected += tally_gc_collect(rt, 2);
    j->destroyed = t_destroyed;
    tally_close(rt);
    return NULL;
}

static void test_runtimes_on_threads(void **state)
{
    (void)state;
    enum { T = 4 };
    pthread_t th[T];
    thread_job jobs[T];
    memset(jobs, 0, sizeof jobs);
    for (int i = 0; i < T; i++) {
        jobs[i].seed = i;
        assert_int_equal(pthread_create(&th[i], NULL, thread_main, &jobs[i]), 0);
    }
    for (int i = 0; i < T; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < T; i++) {
        assert_false(jobs[i].failed);
        assert_true(jobs[i].made > 4000);
        assert_int_equal(jobs[i].destroyed, jobs[i].made);
    }
}

int main(void)
{
    unsetenv("TALLY_DEBUG");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_self_cycle),
        cmocka_unit_test(test_reached_from_later_in_the_list),
        cmocka_unit_test(test_two_cycles),
        cmocka_unit_test(test_long_cycles),
        cmocka_unit_test(test_reachable_cycle_kept),
        cmocka_unit_test(test_generations_move_and_count),
        cmocka_unit_test(test_count_allocations_minus_deallocations),
        cmocka_unit_test(test_older_generations_are_roots),
        cmocka_unit_test(test_threshold_triggers_collection),
        cmocka_unit_test(test_automatic_collection_frees_garbage),
        cmocka_unit_test(test_full_collection_waits_for_quarter),
        cmocka_unit_test(test_disable_enable),
        cmocka_unit_test(test_get_stats),
        cmocka_unit_test(test_track_untrack),
        cmocka_unit_test(test_is_finalized),
        cmocka_unit_test(test_get_objects),
        cmocka_unit_test(test_get_referents),
        cmocka_unit_test(test_get_referrers),
        cmocka_unit_test(test_freeze),
        cmocka_unit_test(test_debug_saveall),
        cmocka_unit_test(test_debug_stream_lines),
        cmocka_unit_test(test_callbacks),
        cmocka_unit_test(test_finalizers_once_before_any_clear),
        cmocka_unit_test(test_finalizer_sees_intact_objects),
        cmocka_unit_test(test_resurrection),
        cmocka_unit_test(test_resurrection_of_neighbour),
        cmocka_unit_test(test_collect_from_finalizer_refused),
        cmocka_unit_test(test_weakrefs_cleared_before_finalizers),
        cmocka_unit_test(test_weakref_callbacks_skip_garbage_weakrefs),
        cmocka_unit_test(test_cycles_through_weakrefs),
        cmocka_unit_test(test_exhaustion_collects_before_failing),
        cmocka_unit_test(test_collect_in_full_heap_allocates_nothing),
        cmocka_unit_test(test_finalizer_untracks_garbage),
        cmocka_unit_test(test_finalizer_allocates_containers),
        cmocka_unit_test(test_weakref_callback_resurrects),
        cmocka_unit_test(test_collect_during_death_by_count),
        cmocka_unit_test(test_freeze_count_follows_deaths),
        cmocka_unit_test(test_walk_visitors_take_references),
        cmocka_unit_test(test_close_with_everything_alive),
        cmocka_unit_test(test_garbage_broken_during_collection),
        cmocka_unit_test(test_weakref_made_by_finalizer_to_garbage),
        cmocka_unit_test(test_callback_removing_another),
        cmocka_unit_test(test_huge_containers),
        cmocka_unit_test(test_runtimes_on_threads),
        /* Last: under ASan a failure here ends the program. */
        cmocka_unit_test(test_survivor_of_traverse_release_not_followed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
