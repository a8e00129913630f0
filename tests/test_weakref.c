/* test_weakref.c - weak references (tally/gc.h).
 *
 * Covers tally_weakref_new / get / arg / is_weakref / weakref_count on plain and
 * container targets (a weak reference is an object of its own, does not keep its
 * target alive, get returns a new strong reference, NULL once the target is gone);
 * death by count: the finalizer first (a weak reference still leads to the object
 * inside it, and the reference it hands out is released without a second death),
 * then every weak reference cleared, then the callbacks, newest first, once each,
 * then clear and destroy; a callback whose weak reference died first is not
 * called; a callback may drop the last reference to its own weak reference (the
 * WeakValueDictionary pattern), create weak references to other objects (the
 * table grows meanwhile) or try to create one to the dead target (refused);
 * resurrection by count keeps weak references working and their callbacks for the
 * real death; the shared weak reference when callback and argument are NULL (one
 * object, counted once, reused without allocating); weak references to immortal
 * objects (never cleared, no callback); weak references to weak references; a
 * dead target's address reused at once by a new object, which inherits none of
 * its weak references; and allocation failures injected at every
 * allocation of tally_weakref_new, one-shot and persisting, while the table of
 * weak references grows: NULL with TALLY_EFAULT, counts unchanged, nothing leaked;
 * and the table's growth re-entered: on a full fixed heap its allocation fails and
 * runs a collection whose finalizer frees memory and grows the table first (in a
 * child process, as a broken table may crash or loop).
 */
#define _GNU_SOURCE
#include "test_objects.h"


typedef struct wcb {
    int id;
    int calls;
    void *last_wr;
    int got_target;
    void **drop_slot; /* release the reference stored here (the weak reference) */
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
    if (r->drop_slot) {
        void *mine = *r->drop_slot;
        *r->drop_slot = NULL;
        tally_xdecref(mine);
    }
}

static tally_rt *open_wr(recorder *rec, int debug, size_t *base)
{
    to_reset();
    tally_rt *rt = open_hosted(rec, debug);
    *base = to_baseline(rt);
    return rt;
}

static void test_new_get_arg(void **state)
{
    (void)state;
    size_t base;
    recorder rec;
    tally_rt *rt = open_wr(&rec, 0, &base);
    const tally_type *types[] = {&LEAF, &NODE};
    for (int k = 0; k < 2; k++) {
        node *t = mk(rt, types[k], k);
        wcb r1, r2;
        memset(&r1, 0, sizeof r1);
        memset(&r2, 0, sizeof r2);
        assert_int_equal(tally_weakref_count(t), 0);
        void *w1 = tally_weakref_new(rt, t, wcb_fn, &r1);
        assert_non_null(w1);
        assert_true(tally_is_weakref(w1));
        assert_false(tally_is_weakref(t));
        assert_true(tally_is_object(rt, w1));
        assert_non_null(tally_type_of(w1));
        assert_ptr_equal(tally_weakref_arg(w1), &r1);
        assert_int_equal(tally_refcount(w1), 1);
        assert_int_equal(tally_refcount(t), 1); /* not kept alive by it */
        assert_int_equal(tally_weakref_count(t), 1);
        assert_int_equal(tally_weakref_count(w1), 0);
        node *g = tally_weakref_get(w1);
        assert_ptr_equal(g, t);
        assert_int_equal(tally_refcount(t), 2); /* a new strong reference */
        tally_decref(g);
        void *w2 = tally_weakref_new(rt, t, wcb_fn, &r2);
        assert_non_null(w2);
        assert_ptr_not_equal(w1, w2);
        assert_int_equal(tally_weakref_count(t), 2);
        assert_ptr_equal(tally_weakref_arg(w2), &r2);
        tally_decref(t);
        assert_int_equal(g_to.des[k], 1);
        assert_null(tally_weakref_get(w1));
        assert_null(tally_weakref_get(w2));
        assert_int_equal(r1.calls, 1);
        assert_int_equal(r2.calls, 1);
        assert_ptr_equal(r1.last_wr, w1);
        assert_ptr_equal(r2.last_wr, w2);
        assert_int_equal(r1.got_target + r2.got_target, 0);
        assert_ptr_equal(tally_weakref_arg(w1), &r1); /* still there */
        assert_true(tally_is_weakref(w1));
        tally_decref(w1);
        tally_decref(w2);
        assert_int_equal(r1.calls + r2.calls, 2);
    }
    assert_int_equal(rec.count, 0);
    assert_int_equal(g_to.anomalies, 0);
    assert_settled(rt, base);
    tally_close(rt);
}

static void *g_shared;
static int g_shared_seen_target;

static void fin_look(node *self)
{
    (void)self;
    void *t = tally_weakref_get(g_shared);
    if (t) {
        g_shared_seen_target++;
        tally_decref(t); /* a temporary reference to the dying object, dropped */
    }
}

static void wcb_check_shared(void *wr, void *arg)
{
    wcb_fn(wr, arg);
    if (tally_weakref_get(g_shared) != NULL)
        ((wcb *)arg)->got_target += 100;
}

static void test_death_order_by_count(void **state)
{
    (void)state;
    for (int debug = 0; debug <= 1; debug++) {
        size_t base;
        recorder rec;
        tally_rt *rt = open_wr(&rec, debug, &base);
        g_to.fin_hook = fin_look;
        g_shared_seen_target = 0;
        node *t = mk(rt, &NODE, 1);
        t->extra = mk(rt, &LEAF, 2);
        g_shared = tally_weakref_new(rt, t, NULL, NULL);
        assert_non_null(g_shared);
        wcb r[3];
        void *w[3];
        memset(r, 0, sizeof r);
        for (int i = 0; i < 3; i++) {
            r[i].id = 11 + i;
            w[i] = tally_weakref_new(rt, t, wcb_check_shared, &r[i]);
            assert_non_null(w[i]);
        }
        assert_int_equal(tally_weakref_count(t), 4);
        tally_decref(t);
        /* Inside the finalizer the object was still reachable through them. */
        assert_int_equal(g_shared_seen_target, 1);
        assert_int_equal(g_to.fin[1], 1);
        assert_int_equal(g_to.des[1], 1);
        /* F, then W13 W12 W11 (newest first, all cleared before the first), then
         * the references released (C) and destroy (D). */
        int f = to_find('F', 1), w13 = to_find('W', 13), w12 = to_find('W', 12),
            w11 = to_find('W', 11), c = to_find('C', 1), d = to_find('D', 1);
        assert_true(f >= 0);
        assert_true(f < w13);
        assert_true(w13 < w12);
        assert_true(w12 < w11);
        assert_true(w11 < c);
        assert_true(c < d);
        for (int i = 0; i < 3; i++) {
            assert_int_equal(r[i].calls, 1);
            assert_ptr_equal(r[i].last_wr, w[i]);
            assert_int_equal(r[i].got_target, 0);
            tally_decref(w[i]);
        }
        assert_null(tally_weakref_get(g_shared));
        tally_decref(g_shared);
        assert_int_equal(g_to.des[2], 1);
        assert_int_equal(rec.count, 0);
        assert_int_equal(g_to.anomalies, 0);
        assert_settled(rt, base);
        tally_close(rt);
    }
}

static void test_no_callback_when_weakref_died_first(void **state)
{
    (void)state;
    size_t base;
    tally_rt *rt = open_wr(NULL, 0, &base);
    node *t = mk(rt, &LEAF, 1);
    wcb a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    void *wa = tally_weakref_new(rt, t, wcb_fn, &a);
    void *wb = tally_weakref_new(rt, t, wcb_fn, &b);
    assert_non_null(wa);
    assert_non_null(wb);
    tally_incref(wa);
    tally_decref(wa); /* still alive */
    assert_int_equal(tally_weakref_count(t), 2);
    tally_decref(wa); /* gone */
    assert_int_equal(tally_weakref_count(t), 1);
    tally_decref(t);
    assert_int_equal(a.calls, 0);
    assert_int_equal(b.calls, 1);
    tally_decref(wb);
    /* The same when the target dies in the collector. */
    node *x = mk(rt, &NODE, 2), *y = mk(rt, &NODE, 3);
    link_to(&x->next, y);
    link_to(&y->next, x);
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    wa = tally_weakref_new(rt, x, wcb_fn, &a);
    wb = tally_weakref_new(rt, x, wcb_fn, &b);
    tally_decref(wb);
    tally_decref(x);
    tally_decref(y);
    assert_true(tally_gc_collect(rt, 2) >= 2);
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 0);
    assert_null(tally_weakref_get(wa));
    tally_decref(wa);
    assert_int_equal(g_to.des_total, 3);
    assert_settled(rt, base);
    tally_close(rt);
}

/* WeakValueDictionary's pattern: the callback removes the entry, dropping the last
 * reference to the weak reference being called. */
static void test_callback_drops_its_weakref(void **state)
{
    (void)state;
    for (int debug = 0; debug <= 1; debug++) {
        size_t base;
        recorder rec;
        tally_rt *rt = open_wr(&rec, debug, &base);
        for (int via_gc = 0; via_gc <= 1; via_gc++) {
            node *t = mk(rt, &NODE, 1);
            if (via_gc)
                link_to(&t->next, t);
            void *slots[4];
            wcb r[4];
            memset(r, 0, sizeof r);
            for (int i = 0; i < 4; i++) {
                r[i].id = 20 + i;
                r[i].drop_slot = &slots[i];
                slots[i] = tally_weakref_new(rt, t, wcb_fn, &r[i]);
                assert_non_null(slots[i]);
            }
            tally_decref(t);
            if (via_gc)
                assert_true(tally_gc_collect(rt, 2) >= 1);
            for (int i = 0; i < 4; i++) {
                assert_int_equal(r[i].calls, 1);
                assert_null(slots[i]);
            }
            g_to.des[1] = 0;
        }
        assert_int_equal(rec.count, 0);
        assert_int_equal(tally_heap_check(rt), 0);
        assert_int_equal(g_to.anomalies, 0);
        assert_settled(rt, base);
        tally_close(rt);
    }
}

/* Callbacks that create weak references to other objects (growing the table while
 * a death or a collection walks it) and one that tries the dead target. */
static tally_rt *g_rt;
static node *g_pool[600];
static void *g_pool_wr[600];
static int g_npool;
static void *g_dead_target;
static int g_dead_target_refused;

static void wcb_grow(void *wr, void *arg)
{
    wcb_fn(wr, arg);
    for (int i = 0; i < 50 && g_npool < 600; i++) {
        node *o = tally_new(g_rt, &LEAF_NOFIN);
        if (o == NULL)
            return;
        o->id = -1;
        o->magic = TO_LIVE;
        g_pool[g_npool] = o;
        g_pool_wr[g_npool] = tally_weakref_new(g_rt, o, NULL, NULL);
        g_npool++;
    }
    if (g_dead_target) {
        void *w = tally_weakref_new(g_rt, g_dead_target, NULL, NULL);
        if (w == NULL)
            g_dead_target_refused++;
        else
            tally_decref(w);
    }
}

static void test_callbacks_that_create_weakrefs(void **state)
{
    (void)state;
    for (int via_gc = 0; via_gc <= 1; via_gc++) {
        size_t base;
        recorder rec;
        tally_rt *rt = g_rt = open_wr(&rec, 0, &base);
        g_npool = 0;
        g_dead_target_refused = 0;
        /* Many targets, each with weak references whose callbacks grow the table. */
        enum { T = 8, W = 3 };
        node *t[T];
        void *w[T][W];
        wcb r[T][W];
        memset(r, 0, sizeof r);
        for (int i = 0; i < T; i++) {
            t[i] = mk(rt, &NODE, i);
            for (int j = 0; j < W; j++) {
                r[i][j].id = 100 + i * W + j;
                w[i][j] = tally_weakref_new(rt, t[i], wcb_grow, &r[i][j]);
                assert_non_null(w[i][j]);
            }
        }
        if (via_gc) {
            for (int i = 0; i < T; i++)
                link_to(&t[i]->next, t[(i + 1) % T]);
            for (int i = 0; i < T; i++)
                tally_decref(t[i]);
            assert_true(tally_gc_collect(rt, 2) >= T);
        } else {
            g_dead_target = t[0];
            tally_decref(t[0]);
            g_dead_target = NULL;
            for (int i = 1; i < T; i++)
                tally_decref(t[i]);
        }
        for (int i = 0; i < T; i++)
            for (int j = 0; j < W; j++) {
                assert_int_equal(r[i][j].calls, 1);
                assert_int_equal(r[i][j].got_target, 0);
                assert_null(tally_weakref_get(w[i][j]));
                tally_decref(w[i][j]);
            }
        assert_int_equal(g_to.des_total, T);
        if (!via_gc) {
            assert_int_equal(g_dead_target_refused, W); /* a dead object gets none */
        }
        assert_true(g_npool > 100);
        /* The weak references made in callbacks work. */
        for (int i = 0; i < g_npool; i++) {
            assert_non_null(g_pool_wr[i]);
            node *o = tally_weakref_get(g_pool_wr[i]);
            assert_ptr_equal(o, g_pool[i]);
            tally_decref(o);
            assert_int_equal(tally_weakref_count(g_pool[i]), 1);
            tally_decref(g_pool[i]);
            assert_null(tally_weakref_get(g_pool_wr[i]));
            tally_decref(g_pool_wr[i]);
        }
        assert_int_equal(g_to.anomalies, 0);
        assert_settled(rt, base);
        tally_close(rt);
    }
}

static node *g_root;

static void fin_resurrect(node *self)
{
    if (g_root == NULL && self->id == 1) {
        tally_incref(self);
        g_root = self;
    }
}

static void test_resurrection_by_count_keeps_weakrefs(void **state)
{
    (void)state;
    size_t base;
    tally_rt *rt = open_wr(NULL, 0, &base);
    g_to.fin_hook = fin_resurrect;
    g_root = NULL;
    node *t = mk(rt, &LEAF, 1);
    wcb r;
    memset(&r, 0, sizeof r);
    void *w = tally_weakref_new(rt, t, wcb_fn, &r);
    assert_non_null(w);
    tally_decref(t);
    assert_ptr_equal(g_root, t);
    assert_int_equal(r.calls, 0);
    node *g = tally_weakref_get(w);
    assert_ptr_equal(g, t);
    tally_decref(g);
    assert_int_equal(tally_weakref_count(t), 1);
    node *root = g_root;
    g_root = (node *)1; /* no second resurrection (nor finalization) */
    tally_decref(root);
    assert_int_equal(g_to.fin[1], 1);
    assert_int_equal(g_to.des[1], 1);
    assert_int_equal(r.calls, 1);
    assert_null(tally_weakref_get(w));
    tally_decref(w);
    g_root = NULL;
    assert_settled(rt, base);
    tally_close(rt);
}

static void test_shared_weakref(void **state)
{
    (void)state;
    size_t base;
    tally_rt *rt = open_wr(NULL, 0, &base);
    node *t = mk(rt, &NODE, 1), *u = mk(rt, &LEAF, 2);
    void *s1 = tally_weakref_new(rt, t, NULL, NULL);
    void *s2 = tally_weakref_new(rt, t, NULL, NULL);
    assert_non_null(s1);
    assert_ptr_equal(s1, s2);
    assert_int_equal(tally_refcount(s1), 2);
    assert_int_equal(tally_weakref_count(t), 1);
    assert_null(tally_weakref_arg(s1));
    /* Not shared: with a callback, or with an argument, or for another target. */
    wcb r;
    memset(&r, 0, sizeof r);
    int x;
    void *c = tally_weakref_new(rt, t, wcb_fn, &r);
    void *a = tally_weakref_new(rt, t, NULL, &x);
    void *o = tally_weakref_new(rt, u, NULL, NULL);
    assert_non_null(c);
    assert_non_null(a);
    assert_non_null(o);
    assert_ptr_not_equal(c, s1);
    assert_ptr_not_equal(a, s1);
    assert_ptr_not_equal(a, c);
    assert_ptr_not_equal(o, s1);
    assert_ptr_equal(tally_weakref_arg(a), &x);
    assert_int_equal(tally_weakref_count(t), 3);
    assert_int_equal(tally_weakref_count(u), 1);
    /* Reusing it allocates nothing: it works with every allocation failing. */
    tally_fault_inject(rt, TALLY_FAULT_ALLOC, 1, TALLY_FAULT_PERSIST);
    void *s3 = tally_weakref_new(rt, t, NULL, NULL);
    tally_fault_inject(rt, TALLY_FAULT_ALLOC, 0, 0);
    assert_ptr_equal(s3, s1);
    assert_int_equal(tally_refcount(s1), 3);
    tally_decref(s1);
    tally_decref(s2);
    assert_int_equal(tally_weakref_count(t), 3);
    node *g = tally_weakref_get(s3);
    assert_ptr_equal(g, t);
    tally_decref(g);
    tally_decref(s3); /* the shared one is gone */
    assert_int_equal(tally_weakref_count(t), 2);
    void *s4 = tally_weakref_new(rt, t, NULL, NULL); /* a new shared one */
    assert_non_null(s4);
    assert_int_equal(tally_refcount(s4), 1);
    assert_int_equal(tally_weakref_count(t), 3);
    assert_ptr_equal(tally_weakref_new(rt, t, NULL, NULL), s4);
    tally_decref(s4);
    tally_decref(t);
    tally_decref(u);
    assert_null(tally_weakref_get(s4));
    assert_int_equal(r.calls, 1);
    assert_null(tally_weakref_get(c));
    assert_null(tally_weakref_get(a));
    assert_null(tally_weakref_get(o));
    tally_decref(s4);
    tally_decref(c);
    tally_decref(a);
    tally_decref(o);
    assert_settled(rt, base);
    tally_close(rt);
}

static void test_weakref_to_immortal(void **state)
{
    (void)state;
    size_t base;
    recorder rec;
    tally_rt *rt = open_wr(&rec, 0, &base);
    node *t = mk(rt, &NODE, 1);
    tally_immortalize(t);
    wcb r;
    memset(&r, 0, sizeof r);
    void *w = tally_weakref_new(rt, t, wcb_fn, &r);
    void *s = tally_weakref_new(rt, t, NULL, NULL);
    assert_non_null(w);
    assert_non_null(s);
    assert_int_equal(tally_weakref_count(t), 2);
    for (int i = 0; i < 10; i++)
        tally_decref(t);
    assert_int_equal(tally_gc_collect(rt, 2), 0);
    node *g = tally_weakref_get(w);
    assert_ptr_equal(g, t);
    assert_int_equal(tally_refcount(g), TALLY_RC_IMMORTAL);
    tally_decref(g);
    assert_ptr_equal(tally_weakref_get(s), t);
    assert_int_equal(r.calls, 0);
    assert_int_equal(g_to.fin[1] + g_to.des[1], 0);
    tally_decref(w);
    tally_decref(s);
    assert_int_equal(tally_weakref_count(t), 0);
    assert_int_equal(r.calls, 0);
    assert_int_equal(rec.count, 0);
    tally_close(rt);
}

/* ---- failure injection ------------------------------------------------------------- */

static void test_weakref_new_fault_injection(void **state)
{
    (void)state;
    for (int debug = 0; debug <= 1; debug++) {
        size_t base;
        recorder rec;
        tally_rt *rt = open_wr(&rec, debug, &base);
        enum { N = 300 };
        static node *t[N];
        static void *w[N];
        static wcb r[N];
        memset(r, 0, sizeof r);
        unsigned long failures = 0, max_n = 0;
        for (int i = 0; i < N; i++) {
            t[i] = mk(rt, i % 2 ? &NODE : &LEAF_NOFIN, -1);
            for (unsigned long n = 1;; n++) {
                struct tally_heap_stats before = get_stats(rt);
                size_t wc = tally_weakref_count(t[i]);
                tally_fault_inject(rt, TALLY_FAULT_ALLOC, n, 0);
                tally_clear_error(rt);
                w[i] = tally_weakref_new(rt, t[i], wcb_fn, &r[i]);
                tally_fault_inject(rt, TALLY_FAULT_ALLOC, 0, 0);
                if (w[i] != NULL) {
                    if (n > max_n)
                        max_n = n;
                    break;
                }
                failures++;
                assert_int_equal(tally_last_error(rt), TALLY_EFAULT);
                assert_true(strlen(tally_last_error_message(rt)) > 0);
                assert_int_equal(tally_weakref_count(t[i]), wc);
                struct tally_heap_stats after = get_stats(rt);
                assert_int_equal(after.blocks_in_use, before.blocks_in_use);
                assert_true(n < 10);
            }
            assert_int_equal(tally_weakref_count(t[i]), 1);
            if (i % 3 == 0) {
                tally_fault_inject(rt, TALLY_FAULT_ALLOC, 1, TALLY_FAULT_PERSIST);
                tally_clear_error(rt);
                assert_null(tally_weakref_new(rt, t[i], wcb_fn, &r[i]));
                assert_int_equal(tally_last_error(rt), TALLY_EFAULT);
                assert_null(tally_weakref_new(rt, t[i], NULL, &r[i]));
                tally_fault_inject(rt, TALLY_FAULT_ALLOC, 0, 0);
                assert_int_equal(tally_weakref_count(t[i]), 1);
            }
        }
        assert_true(failures >= N);
        assert_true(max_n >= 2); /* some needed the table to grow */
        /* Every weak reference that was made works; the failed ones left nothing. */
        for (int i = 0; i < N; i++) {
            node *g = tally_weakref_get(w[i]);
            assert_ptr_equal(g, t[i]);
            tally_decref(g);
            tally_decref(t[i]);
            assert_int_equal(r[i].calls, 1);
            assert_null(tally_weakref_get(w[i]));
            tally_decref(w[i]);
        }
        assert_int_equal(g_to.des_total, N);
        assert_int_equal(rec.count, 0);
        assert_int_equal(tally_heap_check(rt), 0);
        assert_settled(rt, base);
        tally_close(rt);
    }
}


/* A dead target's memory is reused by the next object of its size (the object free
 * stacks make that immediate): the new object inherits none of the old one's weak
 * references, by count or by the collector. */
static void test_reused_address_has_no_weakrefs(void **state)
{
    (void)state;
    for (int debug = 0; debug <= 1; debug++) {
        for (int via_gc = 0; via_gc <= 1; via_gc++) {
            size_t base;
            tally_rt *rt = open_wr(NULL, debug, &base);
            int found_same_address = 0;
            for (int round = 0; round < 8; round++) {
                node *t = mk(rt, &NODE, 1);
                if (via_gc)
                    link_to(&t->next, t);
                wcb r;
                memset(&r, 0, sizeof r);
                void *w = tally_weakref_new(rt, t, wcb_fn, &r);
                void *sh = tally_weakref_new(rt, t, NULL, NULL);
                assert_non_null(w);
                assert_non_null(sh);
                void *old = t;
                tally_decref(t);
                if (via_gc)
                    assert_true(tally_gc_collect(rt, 0) >= 1);
                assert_int_equal(r.calls, 1);
                node *n = mk(rt, &NODE, 2);
                found_same_address += (void *)n == old;
                assert_int_equal(tally_weakref_count(n), 0);
                assert_null(tally_weakref_get(w));
                assert_null(tally_weakref_get(sh));
                void *sh2 = tally_weakref_new(rt, n, NULL, NULL);
                assert_non_null(sh2);
                assert_ptr_not_equal(sh2, sh);
                node *g = tally_weakref_get(sh2);
                assert_ptr_equal(g, n);
                tally_decref(g);
                tally_decref(n);
                assert_int_equal(r.calls, 1);
                assert_null(tally_weakref_get(sh2));
                tally_decref(sh2);
                tally_decref(w);
                tally_decref(sh);
            }
            if (!debug && !via_gc)
                assert_true(found_same_address > 0); /* the case this test is about */
            assert_int_equal(g_to.anomalies, 0);
            assert_settled(rt, base);
            tally_close(rt);
        }
    }
}

/* A weak reference is an object: it can be the target of another. */
static void test_weakref_to_weakref(void **state)
{
    (void)state;
    size_t base;
    tally_rt *rt = open_wr(NULL, 0, &base);
    node *t = mk(rt, &LEAF, 1);
    wcb r1, r2;
    memset(&r1, 0, sizeof r1);
    memset(&r2, 0, sizeof r2);
    void *w1 = tally_weakref_new(rt, t, wcb_fn, &r1);
    assert_non_null(w1);
    void *w2 = tally_weakref_new(rt, w1, wcb_fn, &r2);
    assert_non_null(w2);
    assert_int_equal(tally_weakref_count(w1), 1);
    void *g = tally_weakref_get(w2);
    assert_ptr_equal(g, w1);
    tally_decref(g);
    tally_decref(w1); /* w1 dies: w2's callback runs, t is untouched */
    assert_int_equal(r2.calls, 1);
    assert_null(tally_weakref_get(w2));
    assert_int_equal(tally_weakref_count(t), 0);
    tally_decref(t);
    assert_int_equal(r1.calls, 0); /* w1 died first */
    tally_decref(w2);
    assert_settled(rt, base);
    tally_close(rt);
}


/* ---- the table growing while it grows ---------------------------------------------- */

static _Alignas(65536) unsigned char g_fixbuf[1024 * 1024];
static tally_rt *g_frt;
static void *g_big;
static node *g_t2;
static void *g_w2;

/* Finalizer of the garbage: frees a big block (so there is room again) and makes
 * a weak reference to a new object, which needs the table to grow. */
static void fin_free_and_weakref(node *self)
{
    (void)self;
    if (g_big != NULL) {
        tally_free(g_frt, g_big);
        g_big = NULL;
    }
    if (g_t2 == NULL) {
        g_t2 = tally_new(g_frt, &LEAF_NOFIN);
        if (g_t2 != NULL) {
            g_t2->id = -1;
            g_t2->magic = TO_LIVE;
            g_w2 = tally_weakref_new(g_frt, g_t2, NULL, NULL);
        }
    }
}

/* Exit codes: 0 fine, 2.. a failed check (99: the situation was not reached). */
static int reentrant_growth(int debug)
{
    to_reset();
    recorder rec;
    rec_reset(&rec);
    tally_config cfg;
    tally_config_init(&cfg);
    cfg.memory = g_fixbuf;
    cfg.memory_size = sizeof g_fixbuf;
    cfg.debug = debug;
    cfg.report = rec_report;
    cfg.report_arg = &rec;
    tally_rt *rt = g_frt = tally_open(&cfg);
    if (rt == NULL)
        return 2;
    (void)to_baseline(rt); /* the table exists, with 64 slots */
    /* 32 targets with a weak reference each: the next new target needs the table
     * to grow. */
    node *t[32];
    void *w[32];
    for (int i = 0; i < 32; i++) {
        t[i] = tally_new(rt, &LEAF_NOFIN);
        if (t[i] == NULL)
            return 3;
        t[i]->id = -1;
        t[i]->magic = TO_LIVE;
        w[i] = tally_weakref_new(rt, t[i], NULL, NULL);
        if (w[i] == NULL)
            return 3;
    }
    node *t1 = tally_new(rt, &LEAF_NOFIN);
    g_big = tally_malloc(rt, 64 * KiB);
    node *a = tally_new(rt, &NODE), *b = tally_new(rt, &NODE);
    if (t1 == NULL || g_big == NULL || a == NULL || b == NULL)
        return 3;
    t1->id = a->id = b->id = -1;
    t1->magic = a->magic = b->magic = TO_LIVE;
    tally_setref(&a->next, b);
    tally_setref(&b->next, a);
    tally_decref(a);
    tally_decref(b); /* garbage whose finalizer frees g_big */
    g_t2 = NULL;
    g_w2 = NULL;
    g_to.fin_hook = fin_free_and_weakref;
    /* Fill the heap to the last byte with raw blocks (gc off: nothing collected). */
    tally_gc_set_threshold(rt, 0, 10, 10);
    tally_gc_disable(rt);
    void *fill = NULL;
    for (size_t n = 4096; n >= 16; n /= 2)
        for (void *p; (p = tally_malloc(rt, n)) != NULL;) {
            memcpy(p, &fill, sizeof fill);
            fill = p;
        }
    tally_gc_enable(rt);
    rec_reset(&rec);
    /* The table must grow; its allocation fails; the collection that runs then
     * makes room and grows the table itself (the finalizer). */
    void *w1 = tally_weakref_new(rt, t1, NULL, NULL);
    if (g_w2 == NULL)
        return 99;
    if (w1 == NULL)
        return 4;
    if (rec.count != 0)
        return 5;
    node *g = tally_weakref_get(w1);
    if (g != t1)
        return 6;
    tally_decref(g);
    g = tally_weakref_get(g_w2);
    if (g != g_t2)
        return 7;
    tally_decref(g);
    if (tally_weakref_count(t1) != 1 || tally_weakref_count(g_t2) != 1)
        return 8;
    for (int i = 0; i < 32; i++) {
        g = tally_weakref_get(w[i]);
        if (g != t[i] || tally_weakref_count(t[i]) != 1)
            return 9;
        tally_decref(g);
    }
    if (tally_heap_check(rt) != 0)
        return 10;
    /* Everything goes. */
    while (fill != NULL) {
        void *next;
        memcpy(&next, fill, sizeof next);
        tally_free(rt, fill);
        fill = next;
    }
    tally_decref(t1);
    tally_decref(g_t2);
    for (int i = 0; i < 32; i++)
        tally_decref(t[i]);
    if (tally_weakref_get(w1) != NULL || tally_weakref_get(g_w2) != NULL)
        return 11;
    tally_decref(w1);
    tally_decref(g_w2);
    for (int i = 0; i < 32; i++) {
        if (tally_weakref_get(w[i]) != NULL)
            return 11;
        tally_decref(w[i]);
    }
    if (rec.count != 0 || tally_heap_check(rt) != 0 || g_to.anomalies != 0)
        return 12;
    tally_close(rt);
    return 0;
}

/* tally_weakref_new needs the table to grow, the table's allocation fails on a
 * full heap and runs a collection, and a finalizer of that collection frees memory
 * and makes a weak reference that grows the table first.  (Run in a child process:
 * a broken table can crash or loop.) */
static void test_table_growth_reentered_from_collection(void **state)
{
    (void)state;
    int release = run_isolated(reentrant_growth, 0, 5);
    int debug = run_isolated(reentrant_growth, 1, 5);
    assert_int_equal(release, 0);
    assert_int_equal(debug, 0);
}

int main(void)
{
    unsetenv("TALLY_DEBUG");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_get_arg),
        cmocka_unit_test(test_death_order_by_count),
        cmocka_unit_test(test_no_callback_when_weakref_died_first),
        cmocka_unit_test(test_callback_drops_its_weakref),
        cmocka_unit_test(test_callbacks_that_create_weakrefs),
        cmocka_unit_test(test_resurrection_by_count_keeps_weakrefs),
        cmocka_unit_test(test_shared_weakref),
        cmocka_unit_test(test_weakref_to_immortal),
        cmocka_unit_test(test_weakref_new_fault_injection),
        cmocka_unit_test(test_reused_address_has_no_weakrefs),
        cmocka_unit_test(test_weakref_to_weakref),
        cmocka_unit_test(test_table_growth_reentered_from_collection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
