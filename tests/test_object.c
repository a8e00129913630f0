/* test_object.c - reference-counted objects (tally/object.h).
 *
 * Covers tally_new / tally_new_var for plain and container types of many sizes
 * (zero-filled even over recycled memory, count 1, tally_type_of, the documented
 * layout: the block starts 8 bytes before the object, or 16 for types that may
 * hold references - then the object is 16-byte aligned, else 8 - and is big
 * enough), nitems * item_size overflows and sums that
 * overflow only once the header is added (NULL, an error, nothing allocated, the
 * collector's count untouched), failures (injected, max_bytes, bad types) giving
 * NULL and tally_last_error; incref / decref / xincref / xdecref and refcount;
 * tally_setref (NULL, the same object with a count of 1, replacing); TALLY_AUTO and
 * tally_steal; the order of death (finalize once, then clear or the release of what
 * traverse reports, then destroy; a finalizer taking and dropping a reference to
 * itself; resurrection by count, after which the object is tracked again and dies
 * normally without a second finalization); chains of 10^7 nodes released from the
 * head, and 10^6 on a thread with a 64 KiB stack (release is not recursive);
 * immortal objects (count fixed, never freed, incref/decref write no byte of the
 * header, untracked, what they reference stays alive); tally_type_overhead (also
 * for a plain type with traverse and clear: 16, untracked);
 * tally_is_object against raw blocks, interior, foreign and freed pointers; a type
 * registered while the type table's growth is re-entered (its allocation fails on
 * a full fixed heap, the collection that runs then registers another type from a
 * finalizer): each keeps its own type.
 * Misuse, with debug mode on and off: decref and incref of a freed object, decref
 * below zero from destroy and from a finalizer, tally_free on an object - each one
 * report through the callback naming the object, TALLY_EDEAD (TALLY_EFOREIGN for
 * tally_free), no crash, the heap intact and nothing destroyed twice.
 */
#define _GNU_SOURCE
#include "test_objects.h"

#include <stdint.h>

static const size_t OBJ_SIZES[] = {1, 8, 13, 24, 40, 100, 500, 512, 1000, 4000, 20000, 100000};
#define NSIZES (sizeof OBJ_SIZES / sizeof OBJ_SIZES[0])

static void noop_traverse(void *self, tally_visit_fn visit, void *arg)
{
    (void)self;
    (void)visit;
    (void)arg;
}

static tally_type g_plain_types[NSIZES];
static tally_type g_cont_types[NSIZES];

static void init_sized_types(void)
{
    for (size_t i = 0; i < NSIZES; i++) {
        tally_type p = {"sized_plain", OBJ_SIZES[i], 0, 0, NULL, NULL, NULL, NULL, NULL};
        tally_type c = {"sized_container", OBJ_SIZES[i], 0, TALLY_TYPE_CONTAINER,
                        noop_traverse, NULL, NULL, NULL, NULL};
        g_plain_types[i] = p;
        g_cont_types[i] = c;
    }
}

/* Checks the documented layout of a fresh object o of type t with `payload` bytes. */
static void check_fresh(tally_rt *rt, void *o, const tally_type *t, size_t payload)
{
    assert_non_null(o);
    assert_true(all_bytes_are(o, payload, 0));
    assert_int_equal(tally_refcount(o), 1);
    assert_ptr_equal(tally_type_of(o), t);
    assert_true(tally_is_object(rt, o));
    assert_false(tally_is_immortal(o));
    size_t ov = tally_type_overhead(t);
    /* 16-byte aligned if it may hold references, else 8. */
    assert_int_equal((uintptr_t)o % (ov == 16 ? 16 : 8), 0);
    unsigned char *block = (unsigned char *)o - ov;
    assert_true(is_aligned16(block));
    assert_ptr_equal(tally_runtime_of(block), rt);
    assert_true(tally_usable_size(block) >= ov + payload);
    /* The whole payload is writable (ASan would catch an undersized block). */
    fill_pattern(o, payload, (uint32_t)payload);
    assert_int_equal(check_pattern(o, payload, (uint32_t)payload), payload);
    memset(o, 0, payload); /* no stray pointers for clear / traverse */
    assert_int_equal(tally_refcount(o), 1);
    assert_ptr_equal(tally_type_of(o), t);
}

/* Leaves blocks of n bytes dirty in the heap, so that a new object of that size
 * likely lands on memory that held something. */
static void dirty_blocks(tally_rt *rt, size_t n)
{
    void *p[4];
    for (int i = 0; i < 4; i++) {
        p[i] = tally_malloc(rt, n);
        assert_non_null(p[i]);
        memset(p[i], 0xA7, n);
    }
    for (int i = 0; i < 4; i++)
        tally_free(rt, p[i]);
}

static void test_new_zero_filled_count_one(void **state)
{
    (void)state;
    init_sized_types();
    for (int debug = 0; debug <= 1; debug++) {
        recorder rec;
        tally_rt *rt = open_hosted(&rec, debug);
        for (size_t i = 0; i < NSIZES; i++) {
            to_register(rt, &g_plain_types[i]);
            to_register(rt, &g_cont_types[i]);
        }
        size_t base = settled_blocks(rt);
        for (size_t i = 0; i < NSIZES; i++) {
            for (int c = 0; c < 2; c++) {
                const tally_type *t = c ? &g_cont_types[i] : &g_plain_types[i];
                size_t ov = tally_type_overhead(t);
                dirty_blocks(rt, ov + OBJ_SIZES[i]);
                size_t b0 = blocks_in_use(rt);
                size_t u0 = bytes_in_use(rt);
                void *o = tally_new(rt, t);
                check_fresh(rt, o, t, OBJ_SIZES[i]);
                if (debug) { /* no object caches in debug mode: one block more */
                    assert_int_equal(blocks_in_use(rt), b0 + 1);
                    assert_true(bytes_in_use(rt) >= u0 + ov + OBJ_SIZES[i]);
                }
                assert_int_equal(tally_gc_is_tracked(o), c);
                tally_decref(o);
                if (debug)
                    assert_int_equal(blocks_in_use(rt), b0);
            }
        }
        assert_settled(rt, base);
        assert_int_equal(rec.count, 0);
        assert_int_equal(tally_heap_check(rt), 0);
        tally_close(rt);
    }
}

static const tally_type VAR_PLAIN = {"var_plain", 16, 12, 0, NULL, NULL, NULL, NULL, NULL};
static const tally_type VAR_CONT = {"var_cont", 24, 8, TALLY_TYPE_CONTAINER, noop_traverse,
                                    NULL, NULL, NULL, NULL};

static void test_new_var(void **state)
{
    (void)state;
    for (int debug = 0; debug <= 1; debug++) {
    tally_rt *rt = open_hosted(NULL, debug);
    to_register(rt, &VAR_PLAIN);
    to_register(rt, &VAR_CONT);
    size_t base = settled_blocks(rt);
    static const size_t counts[] = {0, 1, 7, 40, 1000, 5000, 40000};
    const tally_type *types[] = {&VAR_PLAIN, &VAR_CONT};
    for (int k = 0; k < 2; k++) {
        const tally_type *t = types[k];
        for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
            size_t payload = t->size + counts[i] * t->item_size;
            dirty_blocks(rt, payload + tally_type_overhead(t));
            void *o = tally_new_var(rt, t, counts[i]);
            check_fresh(rt, o, t, payload);
            tally_decref(o);
        }
    }
    /* tally_new is tally_new_var with no items. */
    void *o = tally_new(rt, &VAR_PLAIN);
    check_fresh(rt, o, &VAR_PLAIN, VAR_PLAIN.size);
    tally_decref(o);
    assert_settled(rt, base);
    tally_close(rt);
    }
}

static const tally_type HUGE_ITEM = {"huge_item", 16, SIZE_MAX / 4 + 1, 0, NULL, NULL, NULL, NULL, NULL};
static const tally_type HUGE_ITEM_C = {"huge_item_c", 16, SIZE_MAX / 4 + 1, TALLY_TYPE_CONTAINER,
                                       noop_traverse, NULL, NULL, NULL, NULL};
static const tally_type BYTE_ITEM = {"byte_item", 16, 1, 0, NULL, NULL, NULL, NULL, NULL};
static const tally_type BYTE_ITEM_C = {"byte_item_c", 16, 1, TALLY_TYPE_CONTAINER, noop_traverse,
                                       NULL, NULL, NULL, NULL};

static void expect_new_var_fails(tally_rt *rt, const tally_type *t, size_t n, int overflow_only)
{
    struct tally_heap_stats before = get_stats(rt);
    long c0[TALLY_GC_GENERATIONS];
    tally_gc_get_count(rt, c0);
    tally_clear_error(rt);
    void *o = tally_new_var(rt, t, n);
    assert_null(o);
    tally_error e = tally_last_error(rt);
    if (overflow_only)
        assert_true(e == TALLY_EOVERFLOW || e == TALLY_EINVAL);
    else
        assert_true(e != TALLY_OK);
    assert_true(strlen(tally_last_error_message(rt)) > 0);
    struct tally_heap_stats after = get_stats(rt);
    assert_int_equal(after.blocks_in_use, before.blocks_in_use);
    assert_int_equal(after.bytes_in_use, before.bytes_in_use);
    long c1[TALLY_GC_GENERATIONS];
    tally_gc_get_count(rt, c1);
    assert_int_equal(c1[0], c0[0]);
}

static void test_new_var_overflow(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    to_register(rt, &HUGE_ITEM);
    to_register(rt, &HUGE_ITEM_C);
    to_register(rt, &BYTE_ITEM);
    to_register(rt, &BYTE_ITEM_C);
    /* nitems * item_size overflows. */
    expect_new_var_fails(rt, &HUGE_ITEM, 4, 1);
    expect_new_var_fails(rt, &HUGE_ITEM_C, 4, 1);
    expect_new_var_fails(rt, &HUGE_ITEM, SIZE_MAX, 1);
    /* size + nitems * item_size overflows. */
    expect_new_var_fails(rt, &BYTE_ITEM, SIZE_MAX - 7, 1);
    expect_new_var_fails(rt, &BYTE_ITEM_C, SIZE_MAX - 7, 1);
    /* Only adding the header (8 or 16 bytes) or rounding overflows. */
    for (size_t d = 17; d <= 48; d++) {
        expect_new_var_fails(rt, &BYTE_ITEM, SIZE_MAX - d, 0);
        expect_new_var_fails(rt, &BYTE_ITEM_C, SIZE_MAX - d, 0);
    }
    /* No overflow, just absurd. */
    expect_new_var_fails(rt, &BYTE_ITEM, SIZE_MAX / 2, 0);
    expect_new_var_fails(rt, &HUGE_ITEM, 1, 0);
    /* The runtime is fine afterwards. */
    void *o = tally_new_var(rt, &BYTE_ITEM, 100);
    check_fresh(rt, o, &BYTE_ITEM, 116);
    tally_decref(o);
    tally_close(rt);
}

static const tally_type CONT_NO_TRAVERSE = {"no_traverse", 16, 0, TALLY_TYPE_CONTAINER, NULL, NULL,
                                            NULL, NULL, NULL};

static void test_new_failure_sets_error(void **state)
{
    (void)state;
    recorder rec;
    tally_rt *rt = open_hosted(&rec, 0);
    /* Injected failures, persisting so that no retry can succeed. */
    tally_fault_inject(rt, TALLY_FAULT_ALLOC, 1, TALLY_FAULT_PERSIST);
    const tally_type *types[] = {&LEAF_NOFIN, &NODE, &VAR_PLAIN};
    for (int k = 0; k < 3; k++) {
        struct tally_heap_stats before = get_stats(rt);
        tally_clear_error(rt);
        void *o = k == 2 ? tally_new_var(rt, types[k], 5) : tally_new(rt, types[k]);
        assert_null(o);
        assert_int_equal(tally_last_error(rt), TALLY_EFAULT);
        assert_true(strlen(tally_last_error_message(rt)) > 0);
        assert_int_equal(get_stats(rt).blocks_in_use, before.blocks_in_use);
    }
    assert_true(tally_fault_failures(rt, TALLY_FAULT_ALLOC) >= 3);
    tally_fault_inject(rt, TALLY_FAULT_ALLOC, 0, 0);
    node *n = mk(rt, &NODE_NOFIN, -1);
    tally_decref(n);
    assert_int_equal(rec.count, 0); /* failing is not misuse */
    tally_close(rt);

    /* A hosted memory limit. */
    tally_config cfg;
    tally_config_init(&cfg);
    cfg.max_bytes = test_hosted_overhead() + 4 * MiB;
    rt = open_with(&cfg, NULL, 0);
    tally_clear_error(rt);
    assert_null(tally_new_var(rt, &VAR_PLAIN, (64 * MiB) / 12));
    assert_int_equal(tally_last_error(rt), TALLY_ELIMIT);
    assert_null(tally_new_var(rt, &VAR_CONT, (64 * MiB) / 8));
    assert_int_equal(tally_last_error(rt), TALLY_ELIMIT);
    void *small = tally_new_var(rt, &VAR_PLAIN, 10);
    check_fresh(rt, small, &VAR_PLAIN, 16 + 120);
    tally_decref(small);
    tally_close(rt);
}

/* Bad type descriptors are refused with TALLY_EINVAL. */
static void test_new_bad_type(void **state)
{
    (void)state;
    recorder rec;
    tally_rt *rt = open_hosted(&rec, 0);
    tally_clear_error(rt);
    assert_null(tally_new(rt, &CONT_NO_TRAVERSE));
    assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
    tally_clear_error(rt);
    assert_null(tally_new_var(rt, &CONT_NO_TRAVERSE, 3));
    assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
    /* A fresh runtime's first call, and one that has seen types already. */
    tally_clear_error(rt);
    assert_null(tally_new(rt, NULL));
    assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
    node *o = mk(rt, &LEAF_NOFIN, -1);
    tally_decref(o);
    tally_clear_error(rt);
    assert_null(tally_new(rt, NULL));
    assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
    tally_clear_error(rt);
    assert_null(tally_new_var(rt, NULL, 2));
    assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
    assert_int_equal(rec.count, 0);
    tally_close(rt);
}

static void test_incref_decref(void **state)
{
    (void)state;
    to_reset();
    tally_rt *rt = open_hosted(NULL, 0);
    size_t base = to_baseline(rt);
    const tally_type *types[] = {&LEAF, &NODE};
    for (int k = 0; k < 2; k++) {
        node *o = mk(rt, types[k], k);
        assert_int_equal(tally_refcount(o), 1);
        for (int i = 0; i < 1000; i++)
            tally_incref(o);
        assert_int_equal(tally_refcount(o), 1001);
        for (int i = 0; i < 999; i++)
            tally_decref(o);
        assert_int_equal(tally_refcount(o), 2);
        tally_xincref(NULL);
        tally_xdecref(NULL);
        tally_xincref(o);
        assert_int_equal(tally_refcount(o), 3);
        tally_xdecref(o);
        tally_decref(o);
        assert_int_equal(tally_refcount(o), 1);
        assert_int_equal(g_to.des[k], 0);
        assert_int_equal(g_to.fin[k], 0);
        tally_xdecref(o);
        assert_int_equal(g_to.fin[k], 1);
        assert_int_equal(g_to.des[k], 1);
    }
    assert_int_equal(g_to.anomalies, 0);
    assert_settled(rt, base);
    tally_close(rt);
}

static void test_refcount_and_type_of(void **state)
{
    (void)state;
    to_reset();
    tally_rt *rt = open_hosted(NULL, 0);
    size_t base = to_baseline(rt);
    node *a = mk(rt, &NODE, 1);
    node *b = mk(rt, &NODE_NOCLEAR, 2);
    node *c = mk(rt, &LEAF, 3);
    assert_ptr_equal(tally_type_of(a), &NODE);
    assert_ptr_equal(tally_type_of(b), &NODE_NOCLEAR);
    assert_ptr_equal(tally_type_of(c), &LEAF);
    link_to(&a->next, b);
    link_to(&a->other, b);
    link_to(&b->extra, c);
    assert_int_equal(tally_refcount(a), 1);
    assert_int_equal(tally_refcount(b), 3);
    assert_int_equal(tally_refcount(c), 2);
    tally_decref(b);
    tally_decref(c);
    assert_int_equal(tally_refcount(b), 2);
    assert_int_equal(tally_refcount(c), 1);
    assert_int_equal(g_to.des_total, 0);
    tally_decref(a); /* a, then b (two references from a), then c */
    assert_int_equal(g_to.des[1], 1);
    assert_int_equal(g_to.des[2], 1);
    assert_int_equal(g_to.des[3], 1);
    assert_int_equal(g_to.anomalies, 0);
    assert_settled(rt, base);
    tally_close(rt);
}

static void test_setref(void **state)
{
    (void)state;
    to_reset();
    tally_rt *rt = open_hosted(NULL, 0);
    size_t base = to_baseline(rt);
    node *a = mk(rt, &LEAF, 1);
    node *b = mk(rt, &NODE, 2);
    node *slot = NULL;
    tally_setref(&slot, a);
    assert_ptr_equal(slot, a);
    assert_int_equal(tally_refcount(a), 2);
    tally_setref(&slot, a); /* same object, count 2 */
    assert_ptr_equal(slot, a);
    assert_int_equal(tally_refcount(a), 2);
    tally_decref(a);
    assert_int_equal(tally_refcount(a), 1); /* slot is the only owner */
    tally_setref(&slot, a);                 /* same object, count 1: must survive */
    assert_ptr_equal(slot, a);
    assert_int_equal(tally_refcount(a), 1);
    assert_int_equal(g_to.des[1], 0);
    tally_setref(&slot, b); /* replaces: a dies */
    assert_ptr_equal(slot, b);
    assert_int_equal(g_to.des[1], 1);
    assert_int_equal(tally_refcount(b), 2);
    tally_setref(&slot, NULL);
    assert_null(slot);
    assert_int_equal(tally_refcount(b), 1);
    tally_setref(&slot, NULL); /* NULL over NULL */
    assert_null(slot);
    /* A slot inside an object, pointing at the object itself (count 1 from
     * outside + 1 from itself). */
    link_to(&b->next, b);
    assert_int_equal(tally_refcount(b), 2);
    tally_setref(&b->next, b);
    assert_int_equal(tally_refcount(b), 2);
    tally_setref(&b->next, NULL);
    assert_int_equal(tally_refcount(b), 1);
    tally_decref(b);
    assert_int_equal(g_to.des[2], 1);
    assert_int_equal(g_to.anomalies, 0);
    assert_settled(rt, base);
    tally_close(rt);
}

static node *make_stolen(tally_rt *rt, int id)
{
    TALLY_AUTO node *n = mk(rt, &LEAF, id);
    n->payload = 42;
    return tally_steal(&n);
}

static void test_auto_and_steal(void **state)
{
    (void)state;
    to_reset();
    tally_rt *rt = open_hosted(NULL, 0);
    size_t base = to_baseline(rt);
    {
        TALLY_AUTO node *n = mk(rt, &LEAF, 1);
        TALLY_AUTO node *m = mk(rt, &NODE, 2);
        TALLY_AUTO node *none = NULL;
        link_to(&m->next, n);
        assert_null(none);
        assert_int_equal(g_to.des_total, 0);
    }
    assert_int_equal(g_to.des[1], 1);
    assert_int_equal(g_to.des[2], 1);
    node *kept = make_stolen(rt, 3);
    assert_int_equal(g_to.des[3], 0);
    assert_int_equal(tally_refcount(kept), 1);
    assert_int_equal(kept->payload, 42);
    {
        TALLY_AUTO node *n = kept;
        node *again = tally_steal(&n);
        assert_null(n);
        assert_ptr_equal(again, kept);
    }
    assert_int_equal(g_to.des[3], 0);
    tally_decref(kept);
    assert_int_equal(g_to.des[3], 1);
    assert_int_equal(g_to.anomalies, 0);
    assert_settled(rt, base);
    tally_close(rt);
}

/* ---- the order of death ----------------------------------------------------------- */

static node *g_child;
static long g_child_rc_in_destroy;
static int g_parent_slot_nulled;

static void record_child_in_destroy(node *self)
{
    if (self->id == 1) {
        g_child_rc_in_destroy = (long)tally_refcount(g_child);
        g_parent_slot_nulled = self->next == NULL;
    }
}

static void death_order(const tally_type *parent_type)
{
    to_reset();
    g_to.des_hook = record_child_in_destroy;
    g_child_rc_in_destroy = -1;
    tally_rt *rt = open_hosted(NULL, 0);
    size_t base = to_baseline(rt);
    node *parent = mk(rt, parent_type, 1);
    g_child = mk(rt, &NODE_NOFIN, 2); /* the test keeps a reference */
    link_to(&parent->next, g_child);
    parent->other = mk(rt, &LEAF, 3); /* only the parent's */
    assert_int_equal(tally_refcount(g_child), 2);
    tally_decref(parent);
    /* Once each, in order: finalize, then clear (if any), then destroy. */
    assert_int_equal(g_to.fin[1], 1);
    assert_int_equal(g_to.des[1], 1);
    int f = to_find('F', 1), c = to_find('C', 1), d = to_find('D', 1);
    assert_true(f >= 0 && d > f);
    if (parent_type->clear) {
        assert_int_equal(g_to.clr[1], 1);
        assert_true(c > f && c < d);
        assert_true(g_parent_slot_nulled);
    } else {
        assert_int_equal(g_to.clr[1], 0);
        assert_int_equal(c, -1);
    }
    /* The references were released before destroy ran. */
    assert_int_equal(g_child_rc_in_destroy, 1);
    assert_int_equal(tally_refcount(g_child), 1);
    assert_int_equal(g_to.des[3], 1);
    assert_int_equal(g_to.fin[3], 1);
    assert_int_equal(g_to.des[2], 0);
    tally_decref(g_child);
    assert_int_equal(g_to.des[2], 1);
    assert_int_equal(g_to.fin[2], 0); /* NODE_NOFIN has none */
    assert_int_equal(g_to.anomalies, 0);
    assert_settled(rt, base);
    tally_close(rt);
}

static void test_death_order_clear(void **state)
{
    (void)state;
    death_order(&NODE);
}

static void test_death_order_traverse_release(void **state)
{
    (void)state;
    death_order(&NODE_NOCLEAR);
}

/* A finalizer that takes and drops a reference to its object (passes it to code
 * that does so): the object still dies exactly once. */
static void fin_touch_self(node *self)
{
    tally_incref(self);
    tally_decref(self);
    tally_xincref(self);
    tally_xdecref(self);
}

static void test_finalizer_takes_temporary_reference(void **state)
{
    (void)state;
    const tally_type *types[] = {&LEAF, &NODE, &NODE_NOCLEAR};
    for (int debug = 0; debug <= 1; debug++) {
        for (int k = 0; k < 3; k++) {
            to_reset();
            g_to.fin_hook = fin_touch_self;
            recorder rec;
            tally_rt *rt = open_hosted(&rec, debug);
            size_t base = to_baseline(rt);
            node *o = mk(rt, types[k], 5);
            tally_decref(o);
            assert_int_equal(g_to.fin[5], 1);
            assert_int_equal(g_to.des[5], 1);
            assert_int_equal(g_to.anomalies, 0);
            assert_int_equal(rec.count, 0);
            assert_settled(rt, base);
            assert_int_equal(tally_heap_check(rt), 0);
            tally_close(rt);
        }
    }
}

static node *g_root;

static void fin_resurrect_once(node *self)
{
    if (g_root == NULL) {
        tally_incref(self);
        g_root = self;
    }
}

static void test_resurrection_by_count(void **state)
{
    (void)state;
    const tally_type *types[] = {&LEAF, &NODE, &NODE_NOCLEAR};
    for (int k = 0; k < 3; k++) {
        to_reset();
        g_to.fin_hook = fin_resurrect_once;
        g_root = NULL;
        recorder rec;
        tally_rt *rt = open_hosted(&rec, 0);
        size_t base = to_baseline(rt);
        node *o = mk(rt, types[k], 4);
        node *child = mk(rt, &LEAF_NOFIN, 5);
        if (types[k]->flags & TALLY_TYPE_CONTAINER)
            link_to(&o->next, child);
        tally_decref(child);
        assert_int_equal(tally_gc_is_finalized(o), 0);
        tally_decref(o);
        /* Resurrected: alive, finalized, nothing released. */
        assert_ptr_equal(g_root, o);
        assert_int_equal(tally_refcount(o), 1);
        assert_int_equal(g_to.fin[4], 1);
        assert_int_equal(g_to.clr[4], 0);
        assert_int_equal(g_to.des[4], 0);
        assert_int_equal(o->magic, TO_LIVE);
        assert_int_equal(tally_gc_is_finalized(o), 1);
        assert_true(tally_is_object(rt, o));
        if (types[k]->flags & TALLY_TYPE_CONTAINER) {
            assert_int_equal(g_to.des[5], 0);
            assert_ptr_equal(o->next, child);
            assert_int_equal(tally_gc_is_tracked(o), 1);
            /* It takes part in cycles again: a self-cycle is collected. */
            link_to(&o->other, o);
            g_root = NULL;
            tally_decref(o);
            assert_int_equal(g_to.des[4], 0);
            assert_int_equal(tally_gc_collect(rt, 2), 1);
        } else {
            g_root = NULL;
            tally_decref(o);
        }
        assert_int_equal(g_to.fin[4], 1); /* not again */
        assert_int_equal(g_to.des[4], 1);
        assert_int_equal(g_to.des[5], 1);
        assert_int_equal(g_to.anomalies, 0);
        assert_int_equal(rec.count, 0);
        assert_settled(rt, base);
        tally_close(rt);
    }
}

/* A finalizer that releases other objects and creates new ones. */
static tally_rt *g_rt;

static void fin_release_and_create(node *self)
{
    if (self->id == 1) {
        tally_setref(&self->extra, NULL); /* the leaf dies here */
        node *fresh = tally_new(g_rt, &LEAF);
        if (fresh) {
            fresh->id = 9;
            fresh->magic = TO_LIVE;
            tally_decref(fresh);
        }
    }
}

static void test_finalizer_releases_and_allocates(void **state)
{
    (void)state;
    to_reset();
    g_to.fin_hook = fin_release_and_create;
    tally_rt *rt = g_rt = open_hosted(NULL, 0);
    size_t base = to_baseline(rt);
    node *o = mk(rt, &NODE, 1);
    o->extra = mk(rt, &LEAF, 2);
    tally_decref(o);
    assert_int_equal(g_to.fin[1], 1);
    assert_int_equal(g_to.des[1], 1);
    assert_int_equal(g_to.des[2], 1);
    assert_int_equal(g_to.fin[9], 1);
    assert_int_equal(g_to.des[9], 1);
    assert_int_equal(g_to.anomalies, 0);
    assert_settled(rt, base);
    tally_close(rt);
}

/* tally_heap_stats can be used to look for leaks: once every object is released
 * and a full collection has run (which hands back the object free stacks), the
 * heap's figures are back where they were, in release mode as in debug mode. */
static void test_released_objects_give_blocks_back(void **state)
{
    (void)state;
    for (int debug = 0; debug <= 1; debug++) {
        to_reset();
        tally_rt *rt = open_hosted(NULL, debug);
        size_t base = to_baseline(rt);
        size_t base_bytes = bytes_in_use(rt);
        node *keep[200];
        for (int i = 0; i < 200; i++)
            keep[i] = mk(rt, i % 2 ? &NODE_NOFIN : &LEAF_NOFIN, -1);
        for (int i = 0; i < 200; i++)
            tally_decref(keep[i]);
        assert_int_equal(g_to.des_total, 200);
        assert_int_equal(settled_blocks(rt), base);
        assert_int_equal(bytes_in_use(rt), base_bytes);
        tally_close(rt);
    }
}

/* ---- long chains ------------------------------------------------------------------ */

typedef struct lnk {
    struct lnk *next;
} lnk;

static unsigned long g_lnk_destroyed;

static void lnk_traverse(void *self, tally_visit_fn visit, void *arg)
{
    lnk *l = self;
    if (l->next)
        visit(l->next, arg);
}

static void lnk_clear(void *self)
{
    lnk *l = self;
    tally_setref(&l->next, NULL);
}

static void lnk_destroy(void *self)
{
    (void)self;
    g_lnk_destroyed++;
}

/* One with clear, one releasing through traverse. */
static const tally_type LNK = {"lnk", sizeof(lnk), 0, TALLY_TYPE_CONTAINER, lnk_traverse,
                               lnk_clear, NULL, lnk_destroy, NULL};
static const tally_type LNK_T = {"lnk_t", sizeof(lnk), 0, TALLY_TYPE_CONTAINER, lnk_traverse,
                                 NULL, NULL, lnk_destroy, NULL};
/* Not a container (never tracked), yet holding a reference it releases. */
static const tally_type LNK_P = {"lnk_p", sizeof(lnk), 0, 0, lnk_traverse, lnk_clear, NULL,
                                 lnk_destroy, NULL};

typedef struct chain_job {
    tally_rt *rt;
    const tally_type *type;
    size_t n;
    int collect_first;
    /* results */
    int alloc_failed;
    long collected;
    unsigned long destroyed;
    size_t tracked_after; /* containers still tracked after the release */
} chain_job;

static void count_visit(void *o, void *arg)
{
    (void)o;
    ++*(size_t *)arg;
}

/* No cmocka asserts in here: it may run on another thread. */
static void chain_job_run(void *arg)
{
    chain_job *j = arg;
    g_lnk_destroyed = 0;
    lnk *head = NULL;
    for (size_t i = 0; i < j->n; i++) {
        lnk *l = tally_new(j->rt, j->type);
        if (l == NULL) {
            j->alloc_failed = 1;
            break;
        }
        l->next = head; /* the reference to the old head moves in */
        head = l;
    }
    j->collected = j->collect_first ? tally_gc_collect(j->rt, 2) : 0;
    tally_xdecref(head);
    j->destroyed = g_lnk_destroyed;
    size_t visited = 0;
    j->tracked_after = tally_gc_get_objects(j->rt, -1, count_visit, &visited);
    if (visited != j->tracked_after)
        j->tracked_after = (size_t)-1;
}

static void check_chain_job(const chain_job *j)
{
    assert_false(j->alloc_failed);
    assert_int_equal(j->collected, 0);
    assert_int_equal(j->destroyed, j->n);
    assert_int_equal(j->tracked_after, 0);
}

static void test_long_chain_release(void **state)
{
    (void)state;
    /* 10^7 nodes: a recursive release would need hundreds of MiB of stack.  (Scaled
     * down under Valgrind / TALLY_TEST_QUICK.) */
    tally_rt *rt = open_hosted(NULL, 0);
    tally_gc_disable(rt); /* this test is about release, not collection */
    chain_job j = {rt, &LNK, test_scale(10000000, 20), 0, 0, 0, 0, 0};
    chain_job_run(&j);
    check_chain_job(&j);
    tally_close(rt);
}

static void test_long_chain_small_stack(void **state)
{
    (void)state;
    /* 10^6 nodes on a 64 KiB stack, with the collector enabled (automatic
     * collections while building, one full collection over the whole chain); then
     * 3 * 10^5 of a container type releasing through traverse, and of a plain type
     * with clear. */
    const tally_type *types[] = {&LNK, &LNK_T, &LNK_P};
    for (int k = 0; k < 3; k++) {
        tally_rt *rt = open_hosted(NULL, 0);
        size_t n = k == 0 ? 1000000 : 300000;
        chain_job j = {rt, types[k], test_scale(n, 20), 1, 0, 0, 0, 0};
        run_on_small_stack(chain_job_run, &j, 64 * KiB);
        check_chain_job(&j);
        tally_close(rt);
    }
}

/* A chain of nodes with finalizers and clear, linked through `next`, released on
 * a small stack. */
typedef struct node_chain_job {
    tally_rt *rt;
    size_t n;
    int alloc_failed;
} node_chain_job;

static void node_chain_run(void *arg)
{
    node_chain_job *j = arg;
    node *head = NULL;
    for (size_t i = 0; i < j->n; i++) {
        node *x = tally_new(j->rt, i % 2 ? &NODE : &NODE_NOCLEAR);
        if (x == NULL) {
            j->alloc_failed = 1;
            break;
        }
        x->id = -1;
        x->magic = TO_LIVE;
        x->next = head;
        head = x;
    }
    tally_xdecref(head);
}

static void test_long_chain_with_finalizers_small_stack(void **state)
{
    (void)state;
    to_reset();
    tally_rt *rt = open_hosted(NULL, 0);
    node_chain_job j = {rt, test_scale(200000, 20), 0};
    run_on_small_stack(node_chain_run, &j, 64 * KiB);
    assert_false(j.alloc_failed);
    assert_int_equal(g_to.des_total, j.n);
    assert_int_equal(g_to.fin_total, j.n);
    assert_int_equal(g_to.anomalies, 0);
    assert_int_equal(tally_gc_get_objects(rt, -1, count_visit, &(size_t){0}), 0);
    tally_close(rt);
}

/* ---- immortal objects -------------------------------------------------------------- */

static void test_immortal(void **state)
{
    (void)state;
    to_reset();
    recorder rec;
    tally_rt *rt = open_hosted(&rec, 0);
    const tally_type *types[] = {&LEAF, &NODE};
    for (int k = 0; k < 2; k++) {
        node *o = mk(rt, types[k], k);
        tally_incref(o);
        tally_incref(o); /* count 3 before */
        assert_false(tally_is_immortal(o));
        tally_immortalize(o);
        assert_true(tally_is_immortal(o));
        assert_int_equal(tally_refcount(o), TALLY_RC_IMMORTAL);
        assert_int_equal(tally_gc_is_tracked(o), 0);
        size_t ov = tally_type_overhead(types[k]);
        unsigned char before[32], after[32];
        memcpy(before, (unsigned char *)o - ov, ov);
        size_t blocks = blocks_in_use(rt);
        for (int i = 0; i < 1000; i++)
            tally_incref(o);
        for (int i = 0; i < 2000; i++)
            tally_decref(o);
        tally_xincref(o);
        tally_xdecref(o);
        tally_xdecref(o);
        node *slot = NULL;
        tally_setref(&slot, o);
        tally_setref(&slot, NULL);
        {
            TALLY_AUTO node *a = o;
            (void)a;
        }
        memcpy(after, (unsigned char *)o - ov, ov);
        assert_memory_equal(before, after, ov);
        assert_int_equal(tally_refcount(o), TALLY_RC_IMMORTAL);
        assert_int_equal(blocks_in_use(rt), blocks);
        assert_int_equal(g_to.fin[k], 0);
        assert_int_equal(g_to.des[k], 0);
        assert_int_equal(o->magic, TO_LIVE);
        assert_ptr_equal(tally_type_of(o), types[k]);
        assert_true(tally_is_object(rt, o));
        /* Collections leave it alone. */
        assert_int_equal(tally_gc_collect(rt, 2), 0);
        memcpy(after, (unsigned char *)o - ov, ov);
        assert_memory_equal(before, after, ov);
    }
    assert_int_equal(rec.count, 0);
    tally_close(rt);
}

static void test_immortal_keeps_referents(void **state)
{
    (void)state;
    to_reset();
    tally_rt *rt = open_hosted(NULL, 0);
    node *im = mk(rt, &NODE, 1);
    node *x = mk(rt, &NODE, 2);
    node *m = mk(rt, &NODE, 3);
    link_to(&im->next, x);
    tally_decref(x);
    /* m <-> im: a cycle through an immortal object is not garbage. */
    link_to(&m->next, im);
    link_to(&im->other, m);
    tally_decref(m);
    tally_immortalize(im);
    assert_int_equal(tally_gc_collect(rt, 2), 0);
    assert_int_equal(tally_gc_collect(rt, 2), 0);
    assert_int_equal(g_to.des_total, 0);
    assert_int_equal(g_to.fin_total, 0);
    assert_int_equal(x->magic, TO_LIVE);
    assert_int_equal(m->magic, TO_LIVE);
    assert_int_equal(tally_refcount(x), 1);
    assert_int_equal(tally_refcount(m), 1);
    tally_close(rt); /* releases everything */
}

static void test_type_overhead(void **state)
{
    (void)state;
    /* 8 bytes of header; 8 more (two 32-bit links) for types that may hold
     * references: containers and any type with traverse or clear. */
    assert_int_equal(tally_type_overhead(&LEAF), 8);
    assert_int_equal(tally_type_overhead(&LEAF_NOFIN), 8);
    assert_int_equal(tally_type_overhead(&VAR_PLAIN), 8);
    assert_int_equal(tally_type_overhead(&NODE), 16);
    assert_int_equal(tally_type_overhead(&NODE_NOCLEAR), 16);
    assert_int_equal(tally_type_overhead(&VAR_CONT), 16);
    assert_int_equal(sizeof(tally_head), 8);
    assert_int_equal(tally_type_overhead(&LNK), 16);
    assert_int_equal(tally_type_overhead(&LNK_T), 16);
    /* The header really is there: the count is the word before the object. */
    tally_rt *rt = open_hosted(NULL, 0);
    node *o = mk(rt, &NODE, -1);
    assert_int_equal(TALLY_HEAD(o)->rc, 1);
    tally_incref(o);
    assert_int_equal(TALLY_HEAD(o)->rc, 2);
    assert_int_equal(tally_refcount(o), 2);
    tally_decref(o);
    tally_decref(o);
    tally_close(rt);
}

/* A type that is not a container but has traverse / clear holds references too:
 * 16 bytes of header, never tracked. */
static void test_type_overhead_plain_type_with_callbacks(void **state)
{
    (void)state;
    assert_int_equal(tally_type_overhead(&LNK_P), 16);
    tally_rt *rt = open_hosted(NULL, 0);
    lnk *o = tally_new(rt, &LNK_P);
    assert_non_null(o);
    assert_int_equal(tally_gc_is_tracked(o), 0);
    check_fresh(rt, o, &LNK_P, sizeof(lnk));
    tally_decref(o);
    tally_close(rt);
}

static int g_static_word[8];

static void test_is_object(void **state)
{
    (void)state;
    for (int debug = 0; debug <= 1; debug++) {
        recorder rec;
        tally_rt *rt = open_hosted(&rec, debug);
        node *p = mk(rt, &LEAF, -1);
        node *c = mk(rt, &NODE, -1);
        void *v = tally_new_var(rt, &VAR_PLAIN, 3000);
        assert_non_null(v);
        unsigned char *raw = tally_malloc(rt, 64);
        assert_non_null(raw);
        memset(raw, 0, 64);
        int local = 0;
        assert_true(tally_is_object(rt, p));
        assert_true(tally_is_object(rt, c));
        assert_true(tally_is_object(rt, v));
        assert_false(tally_is_object(rt, NULL));
        assert_false(tally_is_object(rt, raw));
        assert_false(tally_is_object(rt, raw + 8));
        assert_false(tally_is_object(rt, raw + 24));
        assert_false(tally_is_object(rt, (char *)p + 8));
        assert_false(tally_is_object(rt, (char *)p - 8));
        assert_false(tally_is_object(rt, (char *)c + 8));
        assert_false(tally_is_object(rt, (char *)c - 8));
        assert_false(tally_is_object(rt, (char *)c - 24));
        assert_false(tally_is_object(rt, (char *)v + 1000));
        assert_false(tally_is_object(rt, &local));
        assert_false(tally_is_object(rt, g_static_word));
        assert_false(tally_is_object(rt, (void *)(uintptr_t)0x1000));
        assert_false(tally_is_object(rt, (void *)(uintptr_t)-8));
        /* Another runtime's object is not one of rt's. */
        tally_rt *other = open_hosted(NULL, debug);
        node *foreign = mk(other, &LEAF_NOFIN, -1);
        assert_true(tally_is_object(other, foreign));
        assert_false(tally_is_object(rt, foreign));
        assert_false(tally_is_object(other, p));
        tally_decref(foreign);
        tally_close(other);
        /* A dead object is no longer one. */
        node *d = mk(rt, &LEAF_NOFIN, -1);
        tally_decref(d);
        assert_false(tally_is_object(rt, d));
        node *dc = mk(rt, &NODE_NOFIN, -1);
        tally_decref(dc);
        assert_false(tally_is_object(rt, dc));
        /* The block just after a small raw block: the 8 bytes before it are that
         * block's unwritten tail, never read as a header (Valgrind would say). */
        void *first = tally_malloc(rt, 8);
        void *next = tally_malloc(rt, 8);
        assert_non_null(first);
        assert_non_null(next);
        assert_false(tally_is_object(rt, next));
        assert_false(tally_is_object(rt, (char *)first + 16));
        tally_free(rt, first);
        tally_free(rt, next);
        assert_int_equal(rec.count, 0); /* asking is not misuse */
        tally_free(rt, raw);
        tally_decref(p);
        tally_decref(c);
        tally_decref(v);
        tally_close(rt);
    }
}


/* ---- the type table growing while it grows ---------------------------------------- */

static _Alignas(65536) unsigned char g_fixbuf[1024 * 1024];
static tally_rt *g_frt;
static void *g_big;
static void *g_inner;
static tally_type g_many[64];
static const tally_type INNER = {"inner", 16, 0, 0, NULL, NULL, NULL, NULL, NULL};
static const tally_type OUTER = {"outer", 24, 0, 0, NULL, NULL, NULL, NULL, NULL};

/* A finalizer that frees a big block (making room) and creates an object of a
 * type the runtime has not seen yet. */
static void fin_free_and_new_type(node *self)
{
    (void)self;
    if (g_big != NULL) {
        tally_free(g_frt, g_big);
        g_big = NULL;
    }
    if (g_inner == NULL)
        g_inner = tally_new(g_frt, &INNER);
}

/* Exit codes: 0 fine; 100 + k: with k types known before, the object of the new
 * type was not of its type (or the finalizer's was not of its own). */
static int type_table_reentered(int debug)
{
    for (int i = 0; i < 64; i++) {
        tally_type t = {"many", 16, 0, 0, NULL, NULL, NULL, NULL, NULL};
        g_many[i] = t;
    }
    /* For each number of known types: at one of them the table is full, and
     * registering OUTER must grow it. */
    for (int k = 8; k <= 60; k++) {
        to_reset();
        tally_config cfg;
        tally_config_init(&cfg);
        cfg.memory = g_fixbuf;
        cfg.memory_size = sizeof g_fixbuf;
        cfg.debug = debug;
        cfg.report = tally_report_discard;
        tally_rt *rt = g_frt = tally_open(&cfg);
        if (rt == NULL)
            return 2;
        g_inner = NULL;
        for (int i = 0; i < k; i++) {
            void *o = tally_new(rt, &g_many[i]);
            if (o == NULL)
                return 3;
            tally_decref(o);
        }
        g_big = tally_malloc(rt, 64 * KiB);
        node *a = tally_new(rt, &NODE_NOFIN), *b = tally_new(rt, &NODE);
        if (g_big == NULL || a == NULL || b == NULL)
            return 3;
        a->id = b->id = -1;
        a->magic = b->magic = TO_LIVE;
        tally_setref(&a->next, b);
        tally_setref(&b->next, a);
        tally_decref(a);
        tally_decref(b);
        g_to.fin_hook = fin_free_and_new_type;
        /* Full to the last byte, with the collector off meanwhile. */
        tally_gc_set_threshold(rt, 0, 10, 10);
        tally_gc_disable(rt);
        for (size_t n = 4096; n >= 16; n /= 2)
            while (tally_malloc(rt, n) != NULL)
                ;
        tally_gc_enable(rt);
        void *o = tally_new(rt, &OUTER);
        if (o == NULL)
            return 4;
        if (g_inner == NULL)
            return 5; /* the collection did not run: no situation */
        if (tally_type_of(o) != &OUTER || tally_type_of(g_inner) != &INNER)
            return 100 + k;
        void *o2 = tally_new(rt, &OUTER);
        if (o2 == NULL || tally_type_of(o2) != &OUTER)
            return 100 + k;
        tally_decref(o);
        tally_decref(o2);
        tally_decref(g_inner);
        tally_close(rt);
    }
    return 0;
}

/* Registering a type needs the type table to grow, its allocation fails on a full
 * heap and runs a collection, and a finalizer of that collection makes room and
 * registers another type first: each type keeps its own index.  (In a child
 * process: a wrong type index can crash.) */
static void test_type_table_growth_reentered_from_collection(void **state)
{
    (void)state;
    int release = run_isolated(type_table_reentered, 0, 10);
    int debug = run_isolated(type_table_reentered, 1, 10);
    assert_int_equal(release, 0);
    assert_int_equal(debug, 0);
}

/* ---- misuse ------------------------------------------------------------------------ */

static int names_object(const char *msg, const void *o, size_t ov)
{
    return str_has_ptr(msg, o) || str_has_ptr(msg, (const char *)o - ov);
}

static void misuse_use_after_death(int debug, const tally_type *t)
{
    to_reset();
    recorder rec;
    tally_rt *rt = open_hosted(&rec, debug);
    size_t base = to_baseline(rt);
    node *keep = mk(rt, &LEAF_NOFIN, 100);
    keep->payload = 777;
    node *o = mk(rt, t, 1);
    size_t ov = tally_type_overhead(t);
    tally_decref(o);
    assert_int_equal(g_to.des[1], 1);
    struct tally_heap_stats before = get_stats(rt);
    /* The dead object's memory is marked inaccessible for ASan: lift that, the
     * misuse below is deliberate. */
    test_make_accessible((unsigned char *)o - ov, ov + sizeof(node));

    tally_clear_error(rt);
    tally_decref(o);
    assert_int_equal(rec.count, 1);
    assert_int_equal(tally_last_error(rt), TALLY_EDEAD);
    assert_true(names_object(rec.last, o, ov));

    tally_clear_error(rt);
    tally_incref(o);
    assert_int_equal(rec.count, 2);
    assert_int_equal(tally_last_error(rt), TALLY_EDEAD);
    assert_true(names_object(rec.last, o, ov));

    tally_clear_error(rt);
    tally_xdecref(o);
    assert_int_equal(rec.count, 3);
    assert_int_equal(tally_last_error(rt), TALLY_EDEAD);

    /* Nothing changed: no second death, the heap as it was. */
    assert_int_equal(g_to.des[1], 1);
    assert_int_equal(g_to.fin[1], t->finalize ? 1 : 0);
    assert_int_equal(g_to.anomalies, 0);
    struct tally_heap_stats after = get_stats(rt);
    assert_int_equal(after.blocks_in_use, before.blocks_in_use);
    assert_int_equal(after.bytes_in_use, before.bytes_in_use);
    assert_int_equal(after.frees, before.frees);
    assert_int_equal(after.allocs, before.allocs);
    assert_int_equal(tally_heap_check(rt), 0);
    assert_int_equal(rec.count, 3);
    /* And the runtime works. */
    node *n = mk(rt, t, 2);
    tally_decref(n);
    assert_int_equal(g_to.des[2], 1);
    assert_int_equal(keep->payload, 777);
    assert_int_equal(tally_refcount(keep), 1);
    tally_decref(keep);
    assert_settled(rt, base);
    assert_int_equal(rec.count, 3);
    tally_close(rt);
}

static void test_misuse_after_death_debug(void **state)
{
    (void)state;
    misuse_use_after_death(TALLY_DEBUG_GUARDS, &LEAF);
    misuse_use_after_death(TALLY_DEBUG_GUARDS, &NODE);
    misuse_use_after_death(TALLY_DEBUG_GUARDS, &NODE_NOCLEAR);
}

static void test_misuse_after_death_release(void **state)
{
    (void)state;
    /* Detectable without debug mode too: the block has not been reused. */
    misuse_use_after_death(TALLY_DEBUG_OFF, &LEAF);
    misuse_use_after_death(TALLY_DEBUG_OFF, &NODE);
    misuse_use_after_death(TALLY_DEBUG_OFF, &NODE_NOCLEAR);
}

static void decref_self(node *self)
{
    if (self->id == 7)
        tally_decref(self); /* the dying object's count is not ours to drop */
}

static void misuse_decref_below_zero(int debug, int in_finalizer, const tally_type *t)
{
    to_reset();
    if (in_finalizer)
        g_to.fin_hook = decref_self;
    else
        g_to.des_hook = decref_self;
    recorder rec;
    tally_rt *rt = open_hosted(&rec, debug);
    size_t base = to_baseline(rt);
    node *o = mk(rt, t, 7);
    node *child = mk(rt, &LEAF, 8);
    if (t->flags & TALLY_TYPE_CONTAINER)
        o->next = child;
    else
        tally_decref(child);
    tally_clear_error(rt);
    tally_decref(o);
    assert_int_equal(rec.count, 1);
    assert_int_equal(tally_last_error(rt), TALLY_EDEAD);
    assert_true(names_object(rec.last, o, tally_type_overhead(t)));
    assert_int_equal(g_to.des[7], 1);
    assert_int_equal(g_to.fin[7], t->finalize ? 1 : 0);
    assert_int_equal(g_to.des[8], 1);
    assert_int_equal(g_to.fin[8], 1);
    assert_int_equal(g_to.anomalies, 0);
    assert_settled(rt, base);
    assert_int_equal(tally_heap_check(rt), 0);
    node *n = mk(rt, t, 9);
    tally_decref(n);
    assert_int_equal(g_to.des[9], 1);
    assert_int_equal(rec.count, 1);
    tally_close(rt);
}

static void test_misuse_decref_below_zero_in_destroy(void **state)
{
    (void)state;
    for (int debug = 0; debug <= 1; debug++) {
        misuse_decref_below_zero(debug, 0, &LEAF);
        misuse_decref_below_zero(debug, 0, &NODE);
        misuse_decref_below_zero(debug, 0, &NODE_NOCLEAR);
    }
}

static void test_misuse_decref_below_zero_in_finalizer(void **state)
{
    (void)state;
    for (int debug = 0; debug <= 1; debug++) {
        misuse_decref_below_zero(debug, 1, &LEAF);
        misuse_decref_below_zero(debug, 1, &NODE);
    }
}

static void test_misuse_free_object(void **state)
{
    (void)state;
    for (int debug = 0; debug <= 1; debug++) {
        to_reset();
        recorder rec;
        tally_rt *rt = open_hosted(&rec, debug);
        size_t base = to_baseline(rt);
        const tally_type *types[] = {&LEAF, &NODE};
        for (int k = 0; k < 2; k++) {
            node *o = mk(rt, types[k], k);
            o->payload = 99;
            struct tally_heap_stats before = get_stats(rt);
            unsigned long r0 = rec.count;
            tally_clear_error(rt);
            tally_free(rt, o); /* an object is not a raw block */
            assert_int_equal(rec.count, r0 + 1);
            assert_int_equal(tally_last_error(rt), TALLY_EFOREIGN);
            assert_int_equal(get_stats(rt).blocks_in_use, before.blocks_in_use);
            assert_int_equal(tally_refcount(o), 1);
            assert_int_equal(o->payload, 99);
            assert_int_equal(g_to.des[k], 0);
            tally_decref(o);
            assert_int_equal(g_to.des[k], 1);
        }
        assert_settled(rt, base);
        assert_int_equal(tally_heap_check(rt), 0);
        tally_close(rt);
    }
}

int main(void)
{
    unsetenv("TALLY_DEBUG");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_zero_filled_count_one),
        cmocka_unit_test(test_new_var),
        cmocka_unit_test(test_new_var_overflow),
        cmocka_unit_test(test_new_failure_sets_error),
        cmocka_unit_test(test_new_bad_type),
        cmocka_unit_test(test_incref_decref),
        cmocka_unit_test(test_refcount_and_type_of),
        cmocka_unit_test(test_setref),
        cmocka_unit_test(test_auto_and_steal),
        cmocka_unit_test(test_death_order_clear),
        cmocka_unit_test(test_death_order_traverse_release),
        cmocka_unit_test(test_finalizer_takes_temporary_reference),
        cmocka_unit_test(test_resurrection_by_count),
        cmocka_unit_test(test_finalizer_releases_and_allocates),
        cmocka_unit_test(test_released_objects_give_blocks_back),
        cmocka_unit_test(test_long_chain_release),
        cmocka_unit_test(test_long_chain_small_stack),
        cmocka_unit_test(test_long_chain_with_finalizers_small_stack),
        cmocka_unit_test(test_immortal),
        cmocka_unit_test(test_immortal_keeps_referents),
        cmocka_unit_test(test_type_overhead),
        cmocka_unit_test(test_type_overhead_plain_type_with_callbacks),
        cmocka_unit_test(test_is_object),
        cmocka_unit_test(test_type_table_growth_reentered_from_collection),
        cmocka_unit_test(test_misuse_after_death_debug),
        cmocka_unit_test(test_misuse_after_death_release),
        cmocka_unit_test(test_misuse_decref_below_zero_in_destroy),
        cmocka_unit_test(test_misuse_decref_below_zero_in_finalizer),
        cmocka_unit_test(test_misuse_free_object),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
