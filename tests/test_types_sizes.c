/* test_types_sizes.c - tally_sizeof and tally_deep_sizeof (tally/types.h).
 *
 * tally_sizeof: for ints (small and large), strs, tuples, lists, bytes, bytearrays
 * and int32 arrays, the figure is the object's block as the heap sizes it
 * (tally_usable_size of the block start: header and class rounding included) plus
 * the owned item block, and it equals the growth of the heap's bytes in use when
 * the object is made and as it grows.  (Dicts and sets: once they link.)
 * tally_deep_sizeof: a plain object is its tally_sizeof; a list of 1000 distinct
 * big ints is the list, its array and the 1000 ints (and what building it added
 * to the heap); items held elsewhere too, and everything reached only through
 * them, are left out; immortal small ints are left out; a list containing itself,
 * two lists holding each other (one also held outside), a cycle owned by the
 * root, an item held twice by one tuple; a 10^6-deep nest of lists measured on a
 * small thread stack; the walk writes to no object header and leaves the
 * collector's switch as it found it; fault injection at every scratch allocation
 * gives 0 with the error set, and no block is left behind.
 */
#define _GNU_SOURCE
#include "test_objects.h"

#include <stdint.h>

#include "tally/types.h"

/* ---- helpers ----------------------------------------------------------------------- */

static void *mkint(tally_rt *rt, int64_t v)
{
    void *o = tally_int(rt, v);
    assert_non_null(o);
    return o;
}

/* Appends o to l and drops the caller's reference (the list keeps the only one). */
static void give(void *l, void *o)
{
    assert_int_equal(tally_list_append(l, o), 0);
    tally_decref(o);
}

/* A new list of n new ints first, first + 1, ... */
static void *list_of_ints(tally_rt *rt, size_t n, int64_t first)
{
    void *l = tally_list(rt, 0);
    assert_non_null(l);
    for (size_t i = 0; i < n; i++)
        give(l, mkint(rt, first + (int64_t)i));
    return l;
}

/* The block an object lives in: its header, and the link words of containers. */
static const void *block_of(const void *o)
{
    size_t pre = tally_type_overhead(tally_type_of(o));
    return (const uint8_t *)o - pre;
}

/* The heap's size class for a request of n bytes up to TALLY_SMALL_MAX: 16-byte
 * steps, as the heap documents. */
static size_t class16(size_t n)
{
    assert_true(n <= TALLY_SMALL_MAX);
    return n <= 16 ? 16 : (n + 15) & ~(size_t)15;
}

/* Makes the per-runtime singletons (small ints, the empty tuple) and registers
 * the types, then settles the heap: the baseline for assert_settled. */
static size_t sizes_baseline(tally_rt *rt)
{
    void *l = tally_list(rt, 0);
    assert_non_null(l);
    for (int64_t v = -5; v <= 256; v++)
        give(l, mkint(rt, v));
    give(l, mkint(rt, 1000));
    give(l, tally_str(rt, "x"));
    give(l, tally_tuple(rt, 0, NULL));
    void *t = tally_tuple_of(rt, 1, l);
    assert_non_null(t);
    assert_true(tally_deep_sizeof(t) > 0);
    tally_decref(t);
    tally_decref(l);
    return settled_blocks(rt);
}

/* Bytes in use after the heap settles (free stacks handed back, see gc.h). */
static size_t settled_bytes(tally_rt *rt)
{
    settled_blocks(rt);
    return bytes_in_use(rt);
}

/* ---- tally_sizeof ------------------------------------------------------------------ */

/* sizeof(o) is its block's usable size plus `owned`, and the block is the class
 * of `request` bytes (header included). */
static void check_sizeof(const void *o, size_t request, size_t owned)
{
    size_t block = tally_usable_size(block_of(o));
    assert_int_equal(block, class16(request));
    assert_int_equal(tally_sizeof(o), block + owned);
}

/* Making o (by make) adds exactly tally_sizeof(o) to the heap's bytes in use. */
static void *made_adds_sizeof(tally_rt *rt, void *(*make)(tally_rt *rt))
{
    size_t before = settled_bytes(rt);
    void *o = make(rt);
    assert_non_null(o);
    assert_int_equal(bytes_in_use(rt) - before, tally_sizeof(o));
    return o;
}

static void *make_big_int(tally_rt *rt) { return tally_int(rt, 123456789); }
static void *make_str(tally_rt *rt) { return tally_str(rt, "forty-two characters of text, give or tak"); }
static void *make_list10(tally_rt *rt) { return tally_list(rt, 10); }
static void *make_tuple5(tally_rt *rt)
{
    void *x = tally_int(rt, 7); /* small: no new block */
    void *items[5] = {x, x, x, x, x};
    void *t = tally_tuple(rt, 5, items);
    tally_decref(x);
    return t;
}

static void test_sizeof_builtin(void **state)
{
    tally_rt *rt = *state;
    size_t base = sizes_baseline(rt);
    const size_t head = sizeof(tally_head), linked = head + 8;

    void *big = made_adds_sizeof(rt, make_big_int);
    check_sizeof(big, head + sizeof(int64_t), 0);
    void *small = mkint(rt, 3); /* immortal, but it has a block all the same */
    check_sizeof(small, head + sizeof(int64_t), 0);

    void *s = made_adds_sizeof(rt, make_str);
    check_sizeof(s, head + 8 + 2 * sizeof(size_t) + 41 + 1, 0); /* hash, sizes, text, NUL */
    void *empty = tally_str(rt, "");
    assert_non_null(empty);
    check_sizeof(empty, head + 8 + 2 * sizeof(size_t) + 1, 0);

    void *t = made_adds_sizeof(rt, make_tuple5);
    check_sizeof(t, linked + sizeof(size_t) + 5 * sizeof(void *), 0);
    void *t0 = tally_tuple(rt, 0, NULL); /* the immortal empty tuple */
    assert_non_null(t0);
    check_sizeof(t0, linked + sizeof(size_t), 0);

    /* A list's item array is its own block: owned bytes, its class's size.  A
     * capacity asked for gets the growth pattern's slack too: n + n/8 + 6 items. */
    void *l = made_adds_sizeof(rt, make_list10);
    size_t fixed = tally_usable_size(block_of(l));
    assert_int_equal(fixed, class16(linked + 3 * sizeof(size_t) + sizeof(int)));
    assert_int_equal(tally_sizeof(l) - fixed, class16((10 + 1 + 6) * sizeof(void *)));
    void *l0 = tally_list(rt, 0);
    assert_non_null(l0);
    size_t fixed0 = tally_usable_size(block_of(l0));
    assert_int_equal(fixed0, fixed);
    assert_int_equal(tally_sizeof(l0), fixed0); /* no array yet */
    for (int i = 0; i < 100; i++) {
        size_t before = bytes_in_use(rt), sz = tally_sizeof(l0);
        assert_int_equal(tally_list_append(l0, small), 0);
        /* growth: the heap's change is exactly the change of sizeof */
        assert_int_equal(bytes_in_use(rt) - before, tally_sizeof(l0) - sz);
    }

    const void *objs[] = {big, small, s, empty, t, t0, l, l0};
    for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++)
        tally_decref((void *)objs[i]);
    assert_settled(rt, base);
}

static void *make_bytes(tally_rt *rt) { return tally_bytes(rt, "0123456789", 10); }
static void *make_bytearray(tally_rt *rt) { return tally_bytearray(rt, "0123456789", 10); }
static void *make_array(tally_rt *rt) { return tally_array(rt, TALLY_INT32, 0); }

/* bytes are inline (one block); a bytearray's and an array's items are a block of
 * their own, counted as owned bytes as they grow. */
static void test_sizeof_bytes_array(void **state)
{
    tally_rt *rt = *state;
    size_t base = sizes_baseline(rt);
    void *b = made_adds_sizeof(rt, make_bytes);
    assert_int_equal(tally_sizeof(b), tally_usable_size(block_of(b)));
    assert_int_equal(tally_deep_sizeof(b), tally_sizeof(b));
    void *ba = made_adds_sizeof(rt, make_bytearray);
    void *a = made_adds_sizeof(rt, make_array);
    assert_int_equal(tally_sizeof(a), tally_usable_size(block_of(a))); /* no items yet */
    for (int i = 0; i < 1000; i++) {
        size_t before = bytes_in_use(rt), sa = tally_sizeof(a), sb = tally_sizeof(ba);
        assert_int_equal(tally_array_append_i64(a, i), 0);
        assert_int_equal(tally_bytearray_append(ba, "x", 1), 0);
        assert_int_equal(bytes_in_use(rt) - before,
                         tally_sizeof(a) - sa + tally_sizeof(ba) - sb);
    }
    assert_true(tally_sizeof(a) >= tally_usable_size(block_of(a)) + 4000);
    /* In a list: owned, counted once each. */
    void *l = tally_list(rt, 0);
    assert_non_null(l);
    give(l, a);
    give(l, ba);
    give(l, b);
    assert_int_equal(tally_deep_sizeof(l), tally_sizeof(l) + tally_sizeof(a) +
                                               tally_sizeof(ba) + tally_sizeof(b));
    tally_decref(l);
    assert_settled(rt, base);
}

/* ---- tally_deep_sizeof: what counts ------------------------------------------------ */

static void test_deep_plain(void **state)
{
    tally_rt *rt = *state;
    size_t base = sizes_baseline(rt);
    void *big = mkint(rt, 1 << 20);
    assert_int_equal(tally_deep_sizeof(big), tally_sizeof(big));
    void *s = tally_str(rt, "text");
    assert_non_null(s);
    assert_int_equal(tally_deep_sizeof(s), tally_sizeof(s));
    void *small = mkint(rt, 5); /* the root counts, even immortal */
    assert_int_equal(tally_deep_sizeof(small), tally_sizeof(small));
    void *extra = mkint(rt, 1 << 21); /* held twice by us: the root still counts */
    tally_incref(extra);
    assert_int_equal(tally_deep_sizeof(extra), tally_sizeof(extra));
    tally_decref(extra);
    tally_decref(extra);
    tally_decref(small);
    tally_decref(s);
    tally_decref(big);
    assert_settled(rt, base);
}

static void test_deep_list_of_ints(void **state)
{
    tally_rt *rt = *state;
    size_t base = sizes_baseline(rt);
    size_t before = settled_bytes(rt);
    void *l = list_of_ints(rt, 1000, 1000);
    size_t built = bytes_in_use(rt) - before;
    size_t want = tally_sizeof(l);
    for (size_t i = 0; i < 1000; i++)
        want += tally_sizeof(tally_list_get(l, (ptrdiff_t)i));
    assert_int_equal(tally_sizeof(tally_list_get(l, 0)), 16);
    assert_int_equal(tally_deep_sizeof(l), want);
    assert_int_equal(tally_deep_sizeof(l), built); /* everything building it made */
    /* The same ints in a tuple. */
    void *items[1000];
    for (size_t i = 0; i < 1000; i++)
        items[i] = tally_list_get(l, (ptrdiff_t)i);
    void *t = tally_tuple(rt, 1000, items);
    assert_non_null(t);
    tally_list_clear(l); /* now the tuple holds the only references */
    assert_int_equal(tally_deep_sizeof(t), tally_sizeof(t) + 1000 * 16);
    tally_decref(t);
    tally_decref(l);
    assert_settled(rt, base);
}

static void test_deep_shared_excluded(void **state)
{
    tally_rt *rt = *state;
    size_t base = sizes_baseline(rt);
    void *l = list_of_ints(rt, 10, 5000);
    size_t one = tally_sizeof(tally_list_get(l, 0));
    void *held[3];
    for (int i = 0; i < 3; i++) { /* a second root holds three of them */
        held[i] = tally_list_get(l, i * 3);
        tally_incref(held[i]);
    }
    assert_int_equal(tally_deep_sizeof(l), tally_sizeof(l) + 7 * one);
    for (int i = 0; i < 3; i++)
        tally_decref(held[i]);
    assert_int_equal(tally_deep_sizeof(l), tally_sizeof(l) + 10 * one);

    /* An inner list held outside too: it, and all it alone holds (even a cycle
     * behind it), are left out. */
    void *inner = list_of_ints(rt, 20, 9000);
    void *c1 = tally_list(rt, 0), *c2 = tally_list(rt, 0);
    assert_non_null(c1);
    assert_non_null(c2);
    assert_int_equal(tally_list_append(c1, c2), 0);
    assert_int_equal(tally_list_append(c2, c1), 0);
    give(inner, c1);
    tally_decref(c2);
    assert_int_equal(tally_list_append(l, inner), 0);
    size_t outer = tally_sizeof(l) + 10 * one;
    assert_int_equal(tally_deep_sizeof(l), outer);
    size_t own = tally_sizeof(inner) + 20 * one + tally_sizeof(c1) + tally_sizeof(c2);
    tally_decref(inner); /* now l owns it */
    assert_int_equal(tally_deep_sizeof(l), outer + own);
    tally_decref(l);
    assert_settled(rt, base);
}

static void test_deep_small_ints_excluded(void **state)
{
    tally_rt *rt = *state;
    size_t base = sizes_baseline(rt);
    void *l = list_of_ints(rt, 100, 0); /* 0..99: the immortal cache */
    assert_int_equal(tally_deep_sizeof(l), tally_sizeof(l));
    give(l, mkint(rt, 257)); /* the first int past the cache counts */
    assert_int_equal(tally_deep_sizeof(l), tally_sizeof(l) + 16);
    /* A tuple holding a big int twice: both references come from it. */
    void *x = mkint(rt, 4242);
    void *t = tally_tuple_of(rt, 3, x, x, tally_list_get(l, 0));
    assert_non_null(t);
    tally_decref(x);
    assert_int_equal(tally_deep_sizeof(t), tally_sizeof(t) + 16);
    tally_decref(t);
    tally_decref(l);
    assert_settled(rt, base);
}

static void test_deep_cycles(void **state)
{
    tally_rt *rt = *state;
    size_t base = sizes_baseline(rt);
    /* A list containing itself. */
    void *self = list_of_ints(rt, 3, 70000);
    assert_int_equal(tally_list_append(self, self), 0);
    assert_int_equal(tally_deep_sizeof(self), tally_sizeof(self) + 3 * 16);
    tally_decref(self);

    /* a <-> b, both also held by us. */
    void *a = list_of_ints(rt, 2, 80000), *b = list_of_ints(rt, 5, 90000);
    assert_int_equal(tally_list_append(a, b), 0);
    assert_int_equal(tally_list_append(b, a), 0);
    size_t sa = tally_sizeof(a) + 2 * 16, sb = tally_sizeof(b) + 5 * 16;
    assert_int_equal(tally_deep_sizeof(a), sa); /* b is held outside */
    assert_int_equal(tally_deep_sizeof(b), sb); /* and so is a */
    tally_decref(b); /* now a owns b, whose only other referrer is... a */
    assert_int_equal(tally_deep_sizeof(a), sa + sb);
    tally_decref(a);
    assert_int_equal(tally_gc_collect(rt, 2), 3); /* self, and a and b */
    assert_settled(rt, base);

    /* A ring of three lists owned by a root tuple. */
    void *r1 = tally_list(rt, 0), *r2 = tally_list(rt, 0), *r3 = tally_list(rt, 0);
    assert_int_equal(tally_list_append(r1, r2), 0);
    assert_int_equal(tally_list_append(r2, r3), 0);
    assert_int_equal(tally_list_append(r3, r1), 0);
    void *root = tally_tuple_of(rt, 1, r1);
    assert_non_null(root);
    size_t ring = tally_sizeof(r1) + tally_sizeof(r2) + tally_sizeof(r3);
    assert_int_equal(tally_deep_sizeof(root), tally_sizeof(root)); /* we hold all three */
    tally_decref(r2);
    tally_decref(r3);
    assert_int_equal(tally_deep_sizeof(root), tally_sizeof(root)); /* r1 still held */
    tally_decref(r1);
    assert_int_equal(tally_deep_sizeof(root), tally_sizeof(root) + ring);
    tally_decref(root);
    assert_settled(rt, base);
}

/* The walk writes nothing into any header, and leaves the collector's switch as
 * it found it. */
static void test_deep_changes_nothing(void **state)
{
    tally_rt *rt = *state;
    size_t base = sizes_baseline(rt);
    void *l = list_of_ints(rt, 50, 100000);
    void *t = tally_tuple_of(rt, 2, l, l);
    assert_non_null(t);
    assert_int_equal(tally_list_append(l, t), 0);
    tally_gc_collect(rt, 0); /* some in an older generation */
    void *fresh = mkint(rt, 77777);
    give(l, fresh);
    enum { N = 52 }; /* 50 ints, t, fresh */
    tally_head before[N + 1];
    for (size_t i = 0; i < N; i++)
        before[i] = *TALLY_HEAD(tally_list_get(l, (ptrdiff_t)i));
    before[N] = *TALLY_HEAD(l);
    tally_head tb = *TALLY_HEAD(t);
    for (int enabled = 1; enabled >= 0; enabled--) {
        if (!enabled)
            tally_gc_disable(rt);
        assert_true(tally_deep_sizeof(t) > 0);
        assert_int_equal(tally_gc_is_enabled(rt), enabled);
    }
    tally_gc_enable(rt);
    for (size_t i = 0; i < N; i++) {
        tally_head now = *TALLY_HEAD(tally_list_get(l, (ptrdiff_t)i));
        assert_int_equal(now.rc, before[i].rc);
        assert_int_equal(now.info, before[i].info);
    }
    assert_int_equal(TALLY_HEAD(l)->rc, before[N].rc);
    assert_int_equal(TALLY_HEAD(l)->info, before[N].info);
    assert_int_equal(TALLY_HEAD(t)->rc, tb.rc);
    assert_int_equal(TALLY_HEAD(t)->info, tb.info);
    tally_decref(t);
    tally_decref(l);
    assert_settled(rt, base);
}

/* ---- depth and failure ------------------------------------------------------------- */

typedef struct deep_job {
    void *top;
    size_t result;
} deep_job;

static void deep_measure(void *arg)
{
    deep_job *j = arg;
    j->result = tally_deep_sizeof(j->top);
}

static void test_deep_nesting(void **state)
{
    tally_rt *rt = *state;
    size_t base = sizes_baseline(rt);
    size_t depth = test_scale(1000000, 20);
    size_t before = settled_bytes(rt);
    void *top = tally_list(rt, 0);
    assert_non_null(top);
    for (size_t i = 0; i < depth; i++) { /* top = [[[...]]] */
        void *outer = tally_list(rt, 1);
        assert_non_null(outer);
        give(outer, top);
        top = outer;
    }
    size_t built = settled_bytes(rt) - before;
    deep_job job = {top, 0};
    run_on_small_stack(deep_measure, &job, 256 * KiB);
    assert_int_equal(job.result, built);
    tally_decref(top);
    assert_settled(rt, base);
}

/* A structure of a few thousand objects, so that the set and the stack grow many
 * times: a list of 3000 big ints, an inner list held twice by a tuple, and one
 * item held by the caller too.  Returns the list; *shared is the caller's item. */
static void *fault_subject(tally_rt *rt, void **shared)
{
    void *l = list_of_ints(rt, 3000, 200000);
    void *inner = list_of_ints(rt, 100, 300000);
    give(l, tally_tuple_of(rt, 2, inner, inner));
    give(l, inner);
    *shared = tally_list_get(l, 5);
    tally_incref(*shared);
    return l;
}

/* Each scratch allocation of the walk fails in turn: 0 with the error set, every
 * scratch block given back, the collector's switch restored; with no failure left
 * to inject, the right figure. */
static void test_deep_fault_injection(void **state)
{
    tally_rt *rt = *state;
    size_t base = sizes_baseline(rt);
    void *shared;
    void *l = fault_subject(rt, &shared);
    size_t want = tally_deep_sizeof(l);
    assert_true(want > tally_sizeof(l) + 3000 * 16);
    size_t blocks = blocks_in_use(rt);
    unsigned long req0 = tally_fault_requests(rt, TALLY_FAULT_ALLOC);
    assert_int_equal(tally_deep_sizeof(l), want);
    unsigned long allocs = tally_fault_requests(rt, TALLY_FAULT_ALLOC) - req0;
    unsigned long runs = 0;
    for (unsigned long n = 1;; n++) {
        unsigned long before = tally_fault_failures(rt, TALLY_FAULT_ALLOC);
        tally_clear_error(rt);
        tally_fault_inject(rt, TALLY_FAULT_ALLOC, n, 0);
        size_t got = tally_deep_sizeof(l);
        tally_fault_inject(rt, TALLY_FAULT_ALLOC, 0, 0);
        unsigned long fired = tally_fault_failures(rt, TALLY_FAULT_ALLOC) - before;
        assert_int_equal(blocks_in_use(rt), blocks);
        assert_true(tally_gc_is_enabled(rt));
        if (fired == 0) {
            assert_int_equal(got, want);
            assert_int_equal(tally_last_error(rt), TALLY_OK);
            break;
        }
        assert_int_equal(fired, 1);
        assert_int_equal(got, 0);
        assert_int_not_equal(tally_last_error(rt), TALLY_OK);
        runs++;
    }
    assert_int_equal(runs, allocs); /* each scratch allocation failed once */
    assert_true(runs >= 10);
    tally_clear_error(rt);
    tally_decref(shared);
    tally_decref(l);
    assert_settled(rt, base);
}

int main(void)
{
    unsetenv("TALLY_DEBUG");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sizeof_builtin, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_sizeof_bytes_array, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_deep_plain, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_deep_list_of_ints, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_deep_shared_excluded, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_deep_small_ints_excluded, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_deep_cycles, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_deep_changes_nothing, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_deep_nesting, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_deep_fault_injection, setup_rt, teardown_rt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
