/* test_types_seq.c - the built-in tuple and list (tally/types.h, "tuple", "list").
 *
 * Tuples: construction (array and varargs, NULL items refused), access and
 * bounds, the empty tuple as one immortal object per runtime, hashing (equal
 * tuples hash equal; an unhashable item makes the tuple unhashable), equality,
 * repr ("()", "(x,)", nested), iteration.
 * Lists: get/set/insert/delete/pop with negative and out-of-range indexes (each
 * failure: -1 or NULL, TALLY_EINVAL, the list unchanged), append, extend from a
 * list, a tuple, an iterator, itself, a failing iterator (rolled back), slices
 * against Python's results (a table made with python3) including negative steps
 * and omitted bounds (PTRDIFF_MIN / PTRDIFF_MAX), clear, reverse, equality, the
 * list being unhashable, repr of nested and self-containing lists, iteration
 * while the list grows or shrinks, tally_sizeof growing with the item array.
 * Sort: default order of ints and strs against qsort, stability with a user
 * comparison (records by key keep their order), failures (mixed types, other
 * types, a comparison that changes the list) leaving the list as it was.
 * Re-entrancy: finalizers that append to the very list being cleared or set.
 * Cycles: a list containing itself, a list and a tuple holding each other, freed
 * by tally_gc_collect with the right counts.  Fault injection at every
 * allocation of a scenario of appends, inserts, slices, extends, sorts and
 * tuples: each failure gives -1/NULL with an error and an unchanged list, and the
 * heap returns to its baseline.
 */
#define _GNU_SOURCE
#include <limits.h>
#include "test_objects.h"

#include <stdint.h>

/* ---- helpers ----------------------------------------------------------------------- */

#define LO PTRDIFF_MIN /* an omitted bound: the start (step > 0) or the stop (step < 0) */
#define HI PTRDIFF_MAX

static void *mkint(tally_rt *rt, int64_t v)
{
    void *o = tally_int(rt, v);
    assert_non_null(o);
    return o;
}

static void *mkstr(tally_rt *rt, const char *s)
{
    void *o = tally_str(rt, s);
    assert_non_null(o);
    return o;
}

/* Appends a new int v to l (the list keeps the only reference). */
static void push_int(void *l, int64_t v)
{
    void *o = mkint(tally_runtime_of(l), v);
    assert_int_equal(tally_list_append(l, o), 0);
    tally_decref(o);
}

/* A new list of the n ints of v. */
static void *list_of_ints(tally_rt *rt, const int64_t *v, size_t n)
{
    void *l = tally_list(rt, 0);
    assert_non_null(l);
    for (size_t i = 0; i < n; i++)
        push_int(l, v[i]);
    return l;
}

/* Asserts that the repr of o is exactly want. */
static void check_repr(void *o, const char *want)
{
    void *s = tally_repr(o);
    assert_non_null(s);
    assert_string_equal(tally_str_data(s), want);
    tally_decref(s);
}

static void check_ints(void *l, const int64_t *want, size_t n)
{
    assert_int_equal(tally_list_size(l), n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(tally_int_value(tally_list_get(l, (ptrdiff_t)i)), want[i]);
}

static void check_error(tally_rt *rt, tally_error code)
{
    assert_int_equal(tally_last_error(rt), code);
    tally_clear_error(rt);
}

/* The items of a list, as pointers, to see that a failed call changed nothing. */
#define SNAP_MAX 512
typedef struct snap {
    size_t n;
    void *p[SNAP_MAX];
} snap;

static void take_snap(snap *s, void *l)
{
    s->n = tally_list_size(l);
    assert_true(s->n <= SNAP_MAX);
    for (size_t i = 0; i < s->n; i++)
        s->p[i] = tally_list_get(l, (ptrdiff_t)i);
}

static void check_snap(const snap *s, void *l)
{
    assert_int_equal(tally_list_size(l), s->n);
    for (size_t i = 0; i < s->n; i++)
        assert_ptr_equal(tally_list_get(l, (ptrdiff_t)i), s->p[i]);
}

/* A record for sorting with a user comparison: plain object, key and sequence. */
typedef struct rec {
    long key;
    long seq;
} rec;
static const tally_type REC = {"rec", sizeof(rec), 0, 0, NULL, NULL, NULL, NULL, NULL};

static void *mkrec(tally_rt *rt, long key, long seq)
{
    rec *r = tally_new(rt, &REC);
    assert_non_null(r);
    r->key = key;
    r->seq = seq;
    return r;
}

static int rec_cmp(void *a, void *b, void *arg)
{
    long *calls = arg;
    if (calls)
        ++*calls;
    long x = ((rec *)a)->key, y = ((rec *)b)->key;
    return (x > y) - (x < y);
}

/* Registers the types and makes the per-runtime singletons a scenario uses (the
 * empty tuple, small ints, iterator types), then returns the settled block count. */
static size_t seq_baseline(tally_rt *rt)
{
    void *t = tally_tuple(rt, 0, NULL);
    assert_non_null(t);
    void *l = tally_list(rt, 4);
    assert_non_null(l);
    for (int64_t v = -5; v <= 256; v++) /* the small ints, made once */
        push_int(l, v);
    void *big = mkint(rt, 1000);
    void *s = mkstr(rt, "x");
    void *t2 = tally_tuple_of(rt, 3, big, s, l);
    assert_non_null(t2);
    void *it = tally_iter(l);
    void *it2 = tally_iter(t2);
    assert_non_null(it);
    assert_non_null(it2);
    void *r = tally_repr(t2);
    assert_non_null(r);
    void *rc = mkrec(rt, 0, 0);
    const void *objs[] = {r, it2, it, t2, s, big, l, rc};
    for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++)
        tally_decref((void *)objs[i]);
    return settled_blocks(rt);
}

/* ---- tuples -------------------------------------------------------------------------- */

static void test_tuple_basic(void **state)
{
    tally_rt *rt = *state;
    size_t base = seq_baseline(rt);
    void *a = mkint(rt, 1000), *b = mkstr(rt, "b");
    void *items[] = {a, b, a};
    void *t = tally_tuple(rt, 3, items);
    assert_non_null(t);
    assert_true(tally_is_tuple(t));
    assert_false(tally_is_list(t));
    assert_false(tally_is_tuple(a));
    assert_int_equal(tally_tuple_size(t), 3);
    assert_ptr_equal(tally_tuple_get(t, 0), a);
    assert_ptr_equal(tally_tuple_get(t, 1), b);
    assert_ptr_equal(tally_tuple_get(t, 2), a);
    assert_int_equal(tally_refcount(a), 3); /* ours and two slots */
    assert_int_equal(tally_refcount(b), 2);
    assert_true(tally_gc_is_tracked(t));
    /* out of range: NULL and EINVAL */
    tally_clear_error(rt);
    assert_null(tally_tuple_get(t, 3));
    check_error(rt, TALLY_EINVAL);
    assert_null(tally_tuple_get(t, SIZE_MAX));
    check_error(rt, TALLY_EINVAL);
    /* not a tuple */
    assert_int_equal(tally_tuple_size(a), 0);
    check_error(rt, TALLY_EINVAL);
    assert_null(tally_tuple_get(a, 0));
    check_error(rt, TALLY_EINVAL);
    /* varargs */
    void *t2 = tally_tuple_of(rt, 3, a, b, a);
    assert_non_null(t2);
    assert_int_equal(tally_tuple_size(t2), 3);
    assert_ptr_equal(tally_tuple_get(t2, 1), b);
    assert_int_equal(tally_eq(t, t2), 1);
    assert_int_equal(tally_refcount(a), 5);
    /* NULL items are refused, nothing allocated */
    size_t blocks = blocks_in_use(rt);
    void *bad[] = {a, NULL};
    assert_null(tally_tuple(rt, 2, bad));
    check_error(rt, TALLY_EINVAL);
    assert_null(tally_tuple_of(rt, 2, b, NULL));
    check_error(rt, TALLY_EINVAL);
    assert_int_equal(blocks_in_use(rt), blocks);
    assert_int_equal(tally_refcount(a), 5);
    assert_int_equal(tally_refcount(b), 3);
    tally_decref(t);
    tally_decref(t2);
    assert_int_equal(tally_refcount(a), 1);
    assert_int_equal(tally_refcount(b), 1);
    tally_decref(a);
    tally_decref(b);
    assert_settled(rt, base);
}

static void test_tuple_empty_singleton(void **state)
{
    tally_rt *rt = *state;
    void *e1 = tally_tuple(rt, 0, NULL);
    void *e2 = tally_tuple_of(rt, 0);
    assert_non_null(e1);
    assert_ptr_equal(e1, e2);
    assert_true(tally_is_immortal(e1));
    assert_false(tally_gc_is_tracked(e1));
    assert_int_equal(tally_tuple_size(e1), 0);
    tally_decref(e1);
    tally_decref(e2);
    size_t blocks = blocks_in_use(rt);
    for (int i = 0; i < 100; i++) {
        void *e = tally_tuple(rt, 0, NULL);
        assert_ptr_equal(e, e1);
        tally_decref(e);
    }
    assert_int_equal(blocks_in_use(rt), blocks); /* never allocated again */
    assert_true(tally_is_tuple(e1));
    check_repr(e1, "()");
    /* another runtime has its own */
    tally_rt *rt2 = open_hosted(NULL, 0);
    void *f = tally_tuple(rt2, 0, NULL);
    assert_non_null(f);
    assert_ptr_not_equal(f, e1);
    assert_ptr_equal(tally_runtime_of(f), rt2);
    tally_close(rt2);
    /* an empty tuple from the collector's view and from iteration */
    void *it = tally_iter(e1);
    assert_non_null(it);
    assert_null(tally_next(it));
    assert_int_equal(tally_last_error(rt), TALLY_OK);
    tally_decref(it);
}

static void test_tuple_hash_eq(void **state)
{
    tally_rt *rt = *state;
    size_t base = seq_baseline(rt);
    void *x1 = mkint(rt, 123456), *x2 = mkint(rt, 123456);
    void *s1 = mkstr(rt, "spam"), *s2 = mkstr(rt, "spam");
    void *t1 = tally_tuple_of(rt, 2, x1, s1), *t2 = tally_tuple_of(rt, 2, x2, s2);
    void *t3 = tally_tuple_of(rt, 2, s1, x1); /* same items, other order */
    void *t4 = tally_tuple_of(rt, 1, x1);
    void *n1 = tally_tuple_of(rt, 2, t1, t4), *n2 = tally_tuple_of(rt, 2, t2, t4);
    assert_ptr_not_equal(t1, t2);
    uint64_t h1, h2, h3, h4, hn1, hn2;
    assert_int_equal(tally_hash(t1, &h1), 0);
    assert_int_equal(tally_hash(t2, &h2), 0);
    assert_int_equal(tally_hash(t3, &h3), 0);
    assert_int_equal(tally_hash(t4, &h4), 0);
    assert_int_equal(tally_hash(n1, &hn1), 0);
    assert_int_equal(tally_hash(n2, &hn2), 0);
    assert_true(h1 == h2);
    assert_true(hn1 == hn2);
    assert_true(h1 != h3); /* order matters */
    assert_true(h1 != h4);
    assert_int_equal(tally_eq(t1, t2), 1);
    assert_int_equal(tally_eq(n1, n2), 1);
    assert_int_equal(tally_eq(t1, t3), 0);
    assert_int_equal(tally_eq(t1, t4), 0);
    assert_int_equal(tally_eq(t1, x1), 0);
    /* the empty tuple hashes too, unlike (0,) */
    void *e = tally_tuple(rt, 0, NULL);
    void *z = mkint(rt, 0);
    void *tz = tally_tuple_of(rt, 1, z);
    uint64_t he, hz;
    assert_int_equal(tally_hash(e, &he), 0);
    assert_int_equal(tally_hash(tz, &hz), 0);
    assert_true(he != hz);
    /* a list inside makes it unhashable */
    void *l = tally_list(rt, 0);
    void *tl = tally_tuple_of(rt, 2, x1, l);
    assert_non_null(tl);
    tally_clear_error(rt);
    assert_int_equal(tally_hash(tl, &h1), -1);
    check_error(rt, TALLY_EINVAL);
    /* a tuple is not equal to a list with the same items */
    void *lt = tally_list_from(rt, t1);
    assert_non_null(lt);
    assert_int_equal(tally_eq(t1, lt), 0);
    assert_int_equal(tally_eq(lt, t1), 0);
    const void *objs[] = {lt, tl, l, tz, z, e, n1, n2, t1, t2, t3, t4, x1, x2, s1, s2};
    for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++)
        tally_decref((void *)objs[i]);
    assert_settled(rt, base);
}

static void test_tuple_repr_iter(void **state)
{
    tally_rt *rt = *state;
    size_t base = seq_baseline(rt);
    void *one = mkint(rt, 1), *a = mkstr(rt, "a");
    void *t1 = tally_tuple_of(rt, 1, one);
    void *t2 = tally_tuple_of(rt, 2, one, a);
    void *t3 = tally_tuple_of(rt, 3, t1, t2, tally_tuple(rt, 0, NULL));
    check_repr(t1, "(1,)");
    check_repr(t2, "(1, 'a')");
    check_repr(t3, "((1,), (1, 'a'), ())");
    void *it = tally_iter(t2);
    assert_non_null(it);
    assert_ptr_equal(tally_iter(it), it); /* an iterator is its own */
    tally_decref(it);
    assert_int_equal(tally_refcount(t2), 3); /* ours, t3's, the iterator's */
    void *o = tally_next(it);
    assert_ptr_equal(o, one);
    tally_decref(o);
    o = tally_next(it);
    assert_ptr_equal(o, a);
    assert_int_equal(tally_refcount(a), 3);
    tally_decref(o);
    assert_null(tally_next(it));
    assert_int_equal(tally_last_error(rt), TALLY_OK);
    assert_int_equal(tally_refcount(t2), 2); /* the exhausted iterator let go */
    assert_null(tally_next(it));
    tally_decref(it);
    const void *objs[] = {t3, t2, t1, a, one};
    for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++)
        tally_decref((void *)objs[i]);
    assert_settled(rt, base);
}

/* ---- lists: access ------------------------------------------------------------------- */

static void test_list_get_set(void **state)
{
    tally_rt *rt = *state;
    size_t base = seq_baseline(rt);
    const int64_t v[] = {1010, 1011, 1012, 1013, 1014}; /* not small: real counts */
    void *l = list_of_ints(rt, v, 5);
    assert_true(tally_is_list(l));
    assert_true(tally_gc_is_tracked(l));
    assert_int_equal(tally_int_value(tally_list_get(l, 0)), 1010);
    assert_int_equal(tally_int_value(tally_list_get(l, 4)), 1014);
    assert_int_equal(tally_int_value(tally_list_get(l, -1)), 1014);
    assert_int_equal(tally_int_value(tally_list_get(l, -5)), 1010);
    tally_clear_error(rt);
    const ptrdiff_t bad[] = {5, 6, -6, PTRDIFF_MAX, PTRDIFF_MIN};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_null(tally_list_get(l, bad[i]));
        check_error(rt, TALLY_EINVAL);
        void *x = mkint(rt, 9999); /* not a small int: its count is real */
        assert_int_equal(tally_list_set(l, bad[i], x), -1);
        check_error(rt, TALLY_EINVAL);
        assert_int_equal(tally_list_delete(l, bad[i]), -1);
        check_error(rt, TALLY_EINVAL);
        assert_null(tally_list_pop(l, bad[i]));
        check_error(rt, TALLY_EINVAL);
        assert_int_equal(tally_refcount(x), 1); /* x was never stored */
        tally_decref(x);
        check_ints(l, v, 5);
    }
    /* set stores a new reference and releases the old item */
    void *big = mkint(rt, 5000), *old = tally_list_get(l, -2);
    tally_incref(old);
    assert_int_equal(tally_refcount(old), 2);
    assert_int_equal(tally_list_set(l, -2, big), 0);
    assert_int_equal(tally_refcount(old), 1);
    assert_int_equal(tally_refcount(big), 2);
    assert_ptr_equal(tally_list_get(l, 3), big);
    /* set of the same object in place */
    assert_int_equal(tally_list_set(l, 3, big), 0);
    assert_int_equal(tally_refcount(big), 2);
    assert_int_equal(tally_list_set(l, 0, NULL), -1);
    check_error(rt, TALLY_EINVAL);
    assert_int_equal(tally_list_append(l, NULL), -1);
    check_error(rt, TALLY_EINVAL);
    assert_int_equal(tally_list_insert(l, 0, NULL), -1);
    check_error(rt, TALLY_EINVAL);
    /* not a list */
    assert_int_equal(tally_list_append(big, big), -1);
    check_error(rt, TALLY_EINVAL);
    assert_int_equal(tally_list_size(big), 0);
    check_error(rt, TALLY_EINVAL);
    assert_int_equal(tally_list_sort(big, NULL, NULL), -1);
    check_error(rt, TALLY_EINVAL);
    tally_decref(old);
    tally_decref(big);
    tally_decref(l);
    assert_settled(rt, base);
}

static void test_list_insert_delete_pop(void **state)
{
    tally_rt *rt = *state;
    size_t base = seq_baseline(rt);
    void *l = tally_list(rt, 0);
    assert_non_null(l);
    tally_clear_error(rt);
    assert_null(tally_list_pop(l, -1)); /* pop from empty */
    check_error(rt, TALLY_EINVAL);
    assert_null(tally_list_pop(l, 0));
    check_error(rt, TALLY_EINVAL);
    assert_int_equal(tally_list_delete(l, 0), -1);
    check_error(rt, TALLY_EINVAL);
    void *o[6];
    for (int i = 0; i < 6; i++)
        o[i] = mkint(rt, 1100 + i);
    /* clamped as list.insert: [] -> insert(5, o0) -> [o0]; (-100, o1) -> [o1, o0] */
    assert_int_equal(tally_list_insert(l, 5, o[0]), 0);
    assert_int_equal(tally_list_insert(l, -100, o[1]), 0);
    assert_int_equal(tally_list_insert(l, -1, o[2]), 0); /* before the last */
    assert_int_equal(tally_list_insert(l, 1, o[3]), 0);
    assert_int_equal(tally_list_insert(l, PTRDIFF_MAX, o[4]), 0);
    assert_int_equal(tally_list_insert(l, PTRDIFF_MIN, o[5]), 0);
    const int64_t want[] = {1105, 1101, 1103, 1102, 1100, 1104};
    check_ints(l, want, 6);
    assert_int_equal(tally_refcount(o[0]), 2);
    /* delete releases; pop hands the list's reference over */
    assert_int_equal(tally_list_delete(l, -3), 0); /* 102 */
    assert_int_equal(tally_refcount(o[2]), 1);
    const int64_t want2[] = {1105, 1101, 1103, 1100, 1104};
    check_ints(l, want2, 5);
    void *p = tally_list_pop(l, -1);
    assert_ptr_equal(p, o[4]);
    assert_int_equal(tally_refcount(p), 2);
    tally_decref(p);
    p = tally_list_pop(l, 0);
    assert_ptr_equal(p, o[5]);
    tally_decref(p);
    p = tally_list_pop(l, 1);
    assert_ptr_equal(p, o[3]);
    tally_decref(p);
    const int64_t want3[] = {1101, 1100};
    check_ints(l, want3, 2);
    for (int i = 0; i < 6; i++)
        tally_decref(o[i]);
    tally_decref(l);
    assert_settled(rt, base);
}

static void test_list_growth_and_sizeof(void **state)
{
    tally_rt *rt = *state;
    size_t base = seq_baseline(rt);
    void *l = tally_list(rt, 0);
    size_t empty = tally_sizeof(l);
    void *x = mkint(rt, 7007);
    size_t last = empty, grows = 0;
    for (int i = 0; i < 10000; i++) {
        assert_int_equal(tally_list_append(l, x), 0);
        size_t s = tally_sizeof(l);
        assert_true(s >= empty + (size_t)(i + 1) * sizeof(void *));
        grows += s != last;
        last = s;
    }
    assert_true(grows < 100); /* amortised: about 1.125x per growth */
    assert_int_equal(tally_list_size(l), 10000);
    /* a list made with a capacity appends without growing */
    void *m = tally_list(rt, 100);
    size_t s0 = tally_sizeof(m);
    assert_true(s0 >= empty + 100 * sizeof(void *));
    for (int i = 0; i < 100; i++)
        assert_int_equal(tally_list_append(m, x), 0);
    assert_int_equal(tally_sizeof(m), s0);
    /* absurd capacities fail cleanly (the list object made first goes back) */
    size_t blocks = settled_blocks(rt);
    tally_clear_error(rt);
    assert_null(tally_list(rt, SIZE_MAX / 2));
    check_error(rt, TALLY_EOVERFLOW);
    assert_null(tally_list(rt, (size_t)1 << 44));
    assert_int_not_equal(tally_last_error(rt), TALLY_OK);
    tally_clear_error(rt);
    assert_int_equal(settled_blocks(rt), blocks);
    tally_list_clear(l);
    assert_int_equal(tally_list_size(l), 0);
    assert_int_equal(tally_sizeof(l), empty);
    assert_int_equal(tally_refcount(x), 101);
    tally_decref(m);
    tally_decref(l);
    tally_decref(x);
    assert_settled(rt, base);
}

/* ---- lists: slices, extend, reverse, equality, repr ---------------------------------- */

static const struct {
    ptrdiff_t start, stop, step;
    const char *want;
} SLICES[] = {
    {LO, HI, 1, "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]"},
    {LO, -12, 1, "[]"},
    {LO, 12, 1, "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]"},
    {-12, 0, 1, "[]"},
    {-12, 2, 1, "[0, 1]"},
    {-3, 2, 1, "[]"},
    {0, HI, 1, "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]"},
    {0, -3, 1, "[0, 1, 2, 3, 4, 5, 6]"},
    {0, 0, 1, "[]"},
    {5, HI, 1, "[5, 6, 7, 8, 9]"},
    {5, -3, 1, "[5, 6]"},
    {5, 9, 1, "[5, 6, 7, 8]"},
    {9, HI, 1, "[9]"},
    {9, -3, 1, "[]"},
    {9, 9, 1, "[]"},
    {12, -12, 1, "[]"},
    {12, 12, 1, "[]"},
    {LO, HI, 2, "[0, 2, 4, 6, 8]"},
    {LO, -12, 2, "[]"},
    {LO, 12, 2, "[0, 2, 4, 6, 8]"},
    {-12, -12, 2, "[]"},
    {-12, 2, 2, "[0]"},
    {-3, HI, 2, "[7, 9]"},
    {-3, -12, 2, "[]"},
    {-3, 2, 2, "[]"},
    {0, -12, 2, "[]"},
    {0, 12, 2, "[0, 2, 4, 6, 8]"},
    {5, 9, 2, "[5, 7]"},
    {9, -3, 2, "[]"},
    {9, 9, 2, "[]"},
    {12, -12, 2, "[]"},
    {12, 9, 2, "[]"},
    {12, 12, 2, "[]"},
    {LO, HI, 3, "[0, 3, 6, 9]"},
    {LO, 0, 3, "[]"},
    {LO, 2, 3, "[0]"},
    {LO, 9, 3, "[0, 3, 6]"},
    {-12, -12, 3, "[]"},
    {-12, 9, 3, "[0, 3, 6]"},
    {-12, 12, 3, "[0, 3, 6, 9]"},
    {-3, HI, 3, "[7]"},
    {-3, -12, 3, "[]"},
    {-3, 12, 3, "[7]"},
    {0, -12, 3, "[]"},
    {0, 2, 3, "[0]"},
    {0, 9, 3, "[0, 3, 6]"},
    {0, 12, 3, "[0, 3, 6, 9]"},
    {5, HI, 3, "[5, 8]"},
    {9, HI, 3, "[9]"},
    {9, 2, 3, "[]"},
    {12, 0, 3, "[]"},
    {12, 2, 3, "[]"},
    {HI, LO, -1, "[9, 8, 7, 6, 5, 4, 3, 2, 1, 0]"},
    {HI, -12, -1, "[9, 8, 7, 6, 5, 4, 3, 2, 1, 0]"},
    {HI, 2, -1, "[9, 8, 7, 6, 5, 4, 3]"},
    {HI, 12, -1, "[]"},
    {-12, LO, -1, "[]"},
    {-12, 2, -1, "[]"},
    {-3, -12, -1, "[7, 6, 5, 4, 3, 2, 1, 0]"},
    {-3, 2, -1, "[7, 6, 5, 4, 3]"},
    {0, LO, -1, "[0]"},
    {0, -3, -1, "[]"},
    {0, 12, -1, "[]"},
    {5, 9, -1, "[]"},
    {9, -3, -1, "[9, 8]"},
    {9, 0, -1, "[9, 8, 7, 6, 5, 4, 3, 2, 1]"},
    {9, 9, -1, "[]"},
    {12, -12, -1, "[9, 8, 7, 6, 5, 4, 3, 2, 1, 0]"},
    {12, 9, -1, "[]"},
    {HI, LO, -2, "[9, 7, 5, 3, 1]"},
    {HI, -12, -2, "[9, 7, 5, 3, 1]"},
    {HI, 2, -2, "[9, 7, 5, 3]"},
    {HI, 12, -2, "[]"},
    {-12, LO, -2, "[]"},
    {-12, 2, -2, "[]"},
    {-3, -12, -2, "[7, 5, 3, 1]"},
    {-3, 2, -2, "[7, 5, 3]"},
    {0, LO, -2, "[0]"},
    {0, -3, -2, "[]"},
    {0, 12, -2, "[]"},
    {5, 9, -2, "[]"},
    {9, -3, -2, "[9]"},
    {9, 0, -2, "[9, 7, 5, 3, 1]"},
    {9, 9, -2, "[]"},
    {12, -12, -2, "[9, 7, 5, 3, 1]"},
    {12, 9, -2, "[]"},
    {HI, LO, -4, "[9, 5, 1]"},
    {HI, 0, -4, "[9, 5, 1]"},
    {HI, 2, -4, "[9, 5]"},
    {-12, -12, -4, "[]"},
    {-12, 9, -4, "[]"},
    {-12, 12, -4, "[]"},
    {-3, 0, -4, "[7, 3]"},
    {-3, 12, -4, "[]"},
    {0, 2, -4, "[]"},
    {0, 9, -4, "[]"},
    {5, LO, -4, "[5, 1]"},
    {5, -3, -4, "[]"},
    {9, LO, -4, "[9, 5, 1]"},
    {9, 12, -4, "[]"},
    {12, LO, -4, "[9, 5, 1]"},
    {12, -3, -4, "[9]"},
    {12, 0, -4, "[9, 5, 1]"},
    {12, 2, -4, "[9, 5]"},
    {LO, HI, 20, "[0]"},
    {LO, -3, 20, "[0]"},
    {-12, 2, 20, "[0]"},
    {-3, -3, 20, "[]"},
    {-3, 0, 20, "[]"},
    {5, -12, 20, "[]"},
    {5, 12, 20, "[5]"},
    {9, -12, 20, "[]"},
    {9, 9, 20, "[]"},
    {9, 12, 20, "[9]"},
    {12, HI, 20, "[]"},
    {12, -12, 20, "[]"},
    {12, -3, 20, "[]"},
    {HI, LO, -20, "[9]"},
    {HI, -3, -20, "[9]"},
    {HI, 9, -20, "[]"},
    {-12, -3, -20, "[]"},
    {-12, 9, -20, "[]"},
    {-12, 12, -20, "[]"},
    {-3, -12, -20, "[7]"},
    {-3, 9, -20, "[]"},
    {-3, 12, -20, "[]"},
    {0, 9, -20, "[]"},
    {5, 0, -20, "[5]"},
    {5, 12, -20, "[]"},
    {9, 0, -20, "[9]"},
    {9, 2, -20, "[9]"},
    {12, 2, -20, "[9]"},
    {12, 9, -20, "[]"},
};

/* Past an arena, a list's array and a typed array grow without a copy on the OS
 * backend: no new block is allocated (the heap resizes or moves the pages), and
 * every item is where it was.  Under Valgrind the heap copies instead. */
static void test_big_growth_without_copies(void **state)
{
    tally_rt *rt = *state;
    enum { N = 600000 }; /* 4.8 MB of list items, 2.4 MB of int32 */
    void *l = tally_list(rt, 0), *a = tally_array(rt, TALLY_INT32, 0);
    assert_non_null(l);
    assert_non_null(a);
    struct tally_heap_stats st;
    unsigned long long allocs = 0;
    for (int i = 0; i < N; i++) {
        if (i == N / 2) { /* 2.4 and 1.2 MB: both huge blocks from here */
            assert_int_equal(tally_heap_stats(rt, &st), 0);
            allocs = st.allocs;
        }
        assert_int_equal(tally_list_append(l, tally_int(rt, i & 255)), 0); /* immortal */
        assert_int_equal(tally_array_append_i64(a, i), 0);
    }
    assert_int_equal(tally_heap_stats(rt, &st), 0);
    if (!test_on_valgrind())
        assert_true(st.allocs == allocs);
    for (int i = 0; i < N; i += 997) {
        int64_t v;
        assert_int_equal(tally_int_value(tally_list_get(l, i)), i & 255);
        assert_int_equal(tally_array_get_i64(a, i, &v), 0);
        assert_true(v == i);
    }
    /* Slack: at most 1/8 of the list's array, 1/64 of the array's (plus a page);
     * copying (Valgrind) grows the list's by half instead. */
    if (!test_on_valgrind()) {
        assert_true(tally_sizeof(l) <= N * 8 + N + 8192);
        assert_true(tally_sizeof(a) <= N * 4 + N * 4 / 64 + 8192);
    }
    tally_decref(l);
    tally_decref(a);
}

/* The inline paths of append and of tally_next over a list leave the counts they
 * cannot simply add one to (a count at its limit, an immortal count other than the
 * usual one) to tally_incref: a saturated item becomes immortal, as everywhere. */
static void test_list_append_iter_count_limits(void **state)
{
    tally_rt *rt = *state;
    void *l = tally_list(rt, 4), *sat = tally_int(rt, 123456789), *odd = tally_int(rt, 987654321);
    assert_non_null(l);
    assert_non_null(sat);
    assert_non_null(odd);
    TALLY_HEAD(sat)->rc = TALLY_RC_IMMORTAL_MIN - 1;  /* the largest mortal count */
    TALLY_HEAD(odd)->rc = TALLY_RC_IMMORTAL_MIN + 5u; /* immortal, not the usual count */
    assert_int_equal(tally_list_append(l, sat), 0);
    assert_true(tally_is_immortal(sat));
    assert_int_equal(tally_list_append(l, odd), 0);
    assert_int_equal(TALLY_HEAD(odd)->rc, TALLY_RC_IMMORTAL_MIN + 5u); /* nothing written */
    void *mortal = tally_int(rt, 555555555);
    assert_non_null(mortal);
    TALLY_HEAD(mortal)->rc = TALLY_RC_IMMORTAL_MIN - 2; /* one below the limit */
    assert_int_equal(tally_list_append(l, mortal), 0);  /* now at the limit */
    assert_false(tally_is_immortal(mortal));
    void *it = tally_iter(l);
    assert_non_null(it);
    assert_ptr_equal(tally_next(it), sat);
    assert_ptr_equal(tally_next(it), odd);
    assert_ptr_equal(tally_next(it), mortal); /* the limit: tally_incref saturates it */
    assert_true(tally_is_immortal(mortal));
    assert_null(tally_next(it));
    assert_int_equal(tally_last_error(rt), TALLY_OK);
    tally_decref(it);
    tally_decref(l);
}

/* A list's array takes the slack of its growth and the heap's rounding, no more,
 * whatever its size: past a quarter arena too, where an array that jumped to a
 * whole arena's worth of slots would cost up to four times its items.  Distinct
 * ints made between the appends take the pools after the array, so that it must
 * move by a copy now and then, as in bench/sizes.py. */
static void test_list_slack_past_quarter_arena(void **state)
{
    tally_rt *rt = *state;
    const size_t arena = test_pool_size() * 64, n = arena / 8; /* 8 bytes a slot: 1 arena */
    void *l = tally_list(rt, 0);
    assert_non_null(l);
    for (size_t i = 0; i < n; i++) {
        void *x = tally_int(rt, 1000 + (int64_t)i);
        assert_non_null(x);
        assert_int_equal(tally_list_append(l, x), 0);
        tally_decref(x);
        size_t size = i + 1, items = size * sizeof(void *);
        if (size % 4096 == 0 && items >= arena / 4)
            assert_true(tally_sizeof(l) <= items + items / 8 + 64 + 2 * test_pool_size());
    }
    assert_int_equal(tally_list_size(l), n);
    tally_decref(l);
}

static void test_list_slice(void **state)
{
    tally_rt *rt = *state;
    size_t base = seq_baseline(rt);
    const int64_t v[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    void *l = list_of_ints(rt, v, 10);
    for (size_t i = 0; i < sizeof SLICES / sizeof SLICES[0]; i++) {
        void *s = tally_list_slice(l, SLICES[i].start, SLICES[i].stop, SLICES[i].step);
        assert_non_null(s);
        void *r = tally_repr(s);
        if (strcmp(tally_str_data(r), SLICES[i].want) != 0)
            fail_msg("l[%td:%td:%td] = %s, want %s", SLICES[i].start, SLICES[i].stop,
                     SLICES[i].step, tally_str_data(r), SLICES[i].want);
        tally_decref(r);
        tally_decref(s);
    }
    /* extreme steps, a zero step, an empty source */
    void *s = tally_list_slice(l, LO, HI, PTRDIFF_MAX);
    check_repr(s, "[0]");
    tally_decref(s);
    s = tally_list_slice(l, HI, LO, PTRDIFF_MIN);
    check_repr(s, "[9]");
    tally_decref(s);
    tally_clear_error(rt);
    assert_null(tally_list_slice(l, 0, 5, 0));
    check_error(rt, TALLY_EINVAL);
    void *e = tally_list(rt, 0);
    s = tally_list_slice(e, HI, LO, -1);
    check_repr(s, "[]");
    tally_decref(s);
    tally_decref(e);
    /* the slice holds its own references */
    s = tally_list_slice(l, 2, 4, 1);
    tally_decref(l);
    check_repr(s, "[2, 3]");
    tally_decref(s);
    assert_settled(rt, base);
}

/* An iterator of ints 1..n that fails (TALLY_EINVAL) after n items if asked to. */
typedef struct counter_it {
    long next, n;
    int fail;
} counter_it;

static int counter_next(void *self, void **out)
{
    counter_it *c = self;
    tally_rt *rt = tally_runtime_of(self);
    if (c->next > c->n) {
        if (!c->fail)
            return 0;
        *out = NULL;
        void *l = tally_list(rt, 0); /* provokes an error the way types do */
        assert_int_equal(tally_hash(l, &(uint64_t){0}), -1);
        tally_decref(l);
        return -1;
    }
    *out = tally_int(rt, 1000 + c->next++);
    return *out != NULL ? 1 : -1;
}
static const tally_type_ops COUNTER_OPS = {.next = counter_next};
static const tally_type COUNTER = {"counter", sizeof(counter_it), 0, 0, NULL, NULL, NULL, NULL,
                                   &COUNTER_OPS};

static void *mkcounter(tally_rt *rt, long n, int fail)
{
    counter_it *c = tally_new(rt, &COUNTER);
    assert_non_null(c);
    c->next = 1;
    c->n = n;
    c->fail = fail;
    return c;
}

static void test_list_extend(void **state)
{
    tally_rt *rt = *state;
    size_t base = seq_baseline(rt);
    const int64_t v[] = {1, 2, 3};
    void *l = list_of_ints(rt, v, 3);
    /* from itself: doubles */
    assert_int_equal(tally_list_extend(l, l), 0);
    const int64_t w[] = {1, 2, 3, 1, 2, 3};
    check_ints(l, w, 6);
    assert_int_equal(tally_list_extend(l, l), 0);
    assert_int_equal(tally_list_size(l), 12);
    assert_int_equal(tally_int_value(tally_list_get(l, 11)), 3);
    /* from a tuple and from a list */
    void *a = mkint(rt, 1001), *b = mkint(rt, 1002);
    void *t = tally_tuple_of(rt, 2, a, b);
    void *m = tally_list(rt, 0);
    assert_int_equal(tally_list_extend(m, t), 0);
    assert_int_equal(tally_list_extend(m, tally_tuple(rt, 0, NULL)), 0);
    assert_int_equal(tally_list_extend(m, m), 0);
    check_repr(m, "[1001, 1002, 1001, 1002]");
    assert_int_equal(tally_refcount(a), 4);
    /* from an iterator (generic path), and from a user iterator */
    void *it = tally_iter(t);
    assert_int_equal(tally_list_extend(m, it), 0);
    tally_decref(it);
    void *c = mkcounter(rt, 3, 0);
    assert_int_equal(tally_list_extend(m, c), 0);
    tally_decref(c);
    check_repr(m, "[1001, 1002, 1001, 1002, 1001, 1002, 1001, 1002, 1003]");
    /* a failing iterator: the list comes back as it was, nothing held */
    snap sn;
    take_snap(&sn, m);
    c = mkcounter(rt, 50, 1);
    tally_clear_error(rt);
    assert_int_equal(tally_list_extend(m, c), -1);
    check_error(rt, TALLY_EINVAL);
    check_snap(&sn, m);
    tally_decref(c);
    /* not iterable */
    assert_int_equal(tally_list_extend(m, a), -1);
    check_error(rt, TALLY_EINVAL);
    assert_int_equal(tally_list_extend(m, NULL), -1);
    check_error(rt, TALLY_EINVAL);
    check_snap(&sn, m);
    /* tally_list_from */
    void *f = tally_list_from(rt, t);
    check_repr(f, "[1001, 1002]");
    tally_decref(f);
    c = mkcounter(rt, 2, 0);
    f = tally_list_from(rt, c);
    check_repr(f, "[1001, 1002]");
    tally_decref(f);
    tally_decref(c);
    c = mkcounter(rt, 2, 1);
    assert_null(tally_list_from(rt, c));
    check_error(rt, TALLY_EINVAL);
    tally_decref(c);
    assert_null(tally_list_from(rt, a));
    check_error(rt, TALLY_EINVAL);
    const void *objs[] = {m, t, a, b, l};
    for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++)
        tally_decref((void *)objs[i]);
    assert_settled(rt, base);
}

static void test_list_reverse_eq_hash(void **state)
{
    tally_rt *rt = *state;
    size_t base = seq_baseline(rt);
    const int64_t v[] = {1, 2, 3, 4, 5}, r[] = {5, 4, 3, 2, 1};
    void *l = list_of_ints(rt, v, 5), *k = list_of_ints(rt, v, 5), *s = list_of_ints(rt, v, 4);
    assert_int_equal(tally_eq(l, k), 1);
    assert_int_equal(tally_eq(l, s), 0);
    assert_int_equal(tally_eq(s, l), 0);
    tally_list_reverse(l);
    check_ints(l, r, 5);
    assert_int_equal(tally_eq(l, k), 0);
    tally_list_reverse(l);
    check_ints(l, v, 5);
    tally_list_reverse(s); /* even size */
    const int64_t rs[] = {4, 3, 2, 1};
    check_ints(s, rs, 4);
    void *e = tally_list(rt, 0);
    tally_list_reverse(e);
    assert_int_equal(tally_list_size(e), 0);
    /* nested lists compare by value */
    void *n1 = tally_list(rt, 0), *n2 = tally_list(rt, 0);
    assert_int_equal(tally_list_append(n1, l), 0);
    assert_int_equal(tally_list_append(n2, k), 0);
    assert_int_equal(tally_eq(n1, n2), 1);
    push_int(k, 6);
    assert_int_equal(tally_eq(n1, n2), 0);
    /* unhashable */
    uint64_t h = 0;
    tally_clear_error(rt);
    assert_int_equal(tally_hash(l, &h), -1);
    check_error(rt, TALLY_EINVAL);
    assert_int_equal(tally_hash(e, &h), -1);
    check_error(rt, TALLY_EINVAL);
    const void *objs[] = {l, k, s, e, n1, n2};
    for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++)
        tally_decref((void *)objs[i]);
    assert_settled(rt, base);
}

static void test_list_repr(void **state)
{
    tally_rt *rt = *state;
    size_t base = seq_baseline(rt);
    void *l = tally_list(rt, 0);
    check_repr(l, "[]");
    push_int(l, 1);
    check_repr(l, "[1]");
    void *x = mkstr(rt, "x"), *two = mkint(rt, 2);
    void *t = tally_tuple_of(rt, 2, two, x);
    assert_int_equal(tally_list_append(l, t), 0);
    void *inner = tally_list(rt, 0);
    push_int(inner, 3);
    void *empty = tally_list(rt, 0);
    assert_int_equal(tally_list_append(inner, empty), 0);
    assert_int_equal(tally_list_append(l, inner), 0);
    check_repr(l, "[1, (2, 'x'), [3, []]]");
    /* a list inside itself, directly and through a tuple */
    assert_int_equal(tally_list_append(inner, inner), 0);
    check_repr(inner, "[3, [], [...]]");
    void *t2 = tally_tuple_of(rt, 1, l);
    assert_int_equal(tally_list_append(l, t2), 0);
    check_repr(l, "[1, (2, 'x'), [3, [], [...]], ([...],)]");
    /* Only lists guard against cycles (a cycle through tuples alone cannot be
     * built), so the tuple shows once more before its list repeats: CPython
     * would print "(...)" for the inner tuple. */
    check_repr(t2, "([1, (2, 'x'), [3, [], [...]], ([...],)],)");
    /* a user object without repr */
    void *r = mkrec(rt, 1, 2);
    void *t3 = tally_tuple_of(rt, 1, r);
    void *s = tally_repr(t3);
    assert_non_null(s);
    assert_true(strncmp(tally_str_data(s), "(<rec object at ", 16) == 0);
    assert_true(str_has_ptr(tally_str_data(s), r));
    tally_decref(s);
    const void *objs[] = {t3, r, t2, empty, inner, t, two, x, l};
    for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++)
        tally_decref((void *)objs[i]);
    /* l, t2 and inner were in cycles; t and empty were reachable only from them */
    assert_int_equal(tally_gc_collect(rt, 2), 5);
    assert_settled(rt, base);
}

/* ---- lists: iteration ------------------------------------------------------------------ */

static void test_list_iter_mutation(void **state)
{
    tally_rt *rt = *state;
    size_t base = seq_baseline(rt);
    const int64_t v[] = {1, 2, 3};
    void *l = list_of_ints(rt, v, 3);
    void *it = tally_iter(l);
    assert_non_null(it);
    assert_int_equal(tally_refcount(l), 2);
    /* appending while iterating: the new items are seen, up to the size of the moment */
    int64_t seen[16];
    size_t n = 0;
    void *o;
    while ((o = tally_next(it)) != NULL) {
        assert_true(n < 16);
        seen[n] = tally_int_value(o);
        if (seen[n] < 6)
            push_int(l, seen[n] + 3);
        n++;
        tally_decref(o);
    }
    assert_int_equal(tally_last_error(rt), TALLY_OK);
    const int64_t want[] = {1, 2, 3, 4, 5, 6, 7, 8};
    assert_int_equal(n, 8);
    assert_memory_equal(seen, want, sizeof want);
    assert_int_equal(tally_refcount(l), 1); /* exhausted: let go */
    push_int(l, 100);
    assert_null(tally_next(it)); /* stays exhausted */
    tally_decref(it);
    /* shrinking while iterating stops early, no stale reads */
    it = tally_iter(l);
    o = tally_next(it);
    assert_int_equal(tally_int_value(o), 1);
    tally_decref(o);
    tally_list_clear(l);
    assert_null(tally_next(it));
    tally_decref(it);
    /* an iterator keeps its list alive */
    push_int(l, 42);
    it = tally_iter(l);
    tally_decref(l);
    o = tally_next(it);
    assert_int_equal(tally_int_value(o), 42);
    tally_decref(o);
    tally_decref(it);
    assert_settled(rt, base);
}

/* ---- lists: sort --------------------------------------------------------------------- */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void test_sort_default_ints(void **state)
{
    tally_rt *rt = *state;
    size_t base = seq_baseline(rt);
    test_rng rng = {42};
    enum { N = 3000 };
    static int64_t want[N];
    static void *orig[N];
    void *l = tally_list(rt, 0);
    for (size_t i = 0; i < N; i++) {
        want[i] = (int64_t)rng_below(&rng, 400) + 300; /* duplicates, not cached */
        push_int(l, want[i]);
        orig[i] = tally_list_get(l, (ptrdiff_t)i);
    }
    push_int(l, INT64_MIN); /* extremes compare without overflow */
    push_int(l, INT64_MAX);
    assert_int_equal(tally_list_sort(l, NULL, NULL), 0);
    qsort(want, N, sizeof want[0], cmp_i64);
    assert_int_equal(tally_list_size(l), N + 2);
    assert_int_equal(tally_int_value(tally_list_get(l, 0)), INT64_MIN);
    assert_int_equal(tally_int_value(tally_list_get(l, -1)), INT64_MAX);
    for (size_t i = 0; i < N; i++)
        assert_int_equal(tally_int_value(tally_list_get(l, (ptrdiff_t)i + 1)), want[i]);
    /* stable: equal values keep their original order (distinct objects) */
    for (size_t i = 1; i + 1 < N; i++) {
        void *a = tally_list_get(l, (ptrdiff_t)i), *b = tally_list_get(l, (ptrdiff_t)i + 1);
        if (tally_int_value(a) != tally_int_value(b))
            continue;
        size_t pa = 0, pb = 0;
        for (size_t k = 0; k < N; k++) {
            pa = orig[k] == a ? k : pa;
            pb = orig[k] == b ? k : pb;
        }
        assert_true(pa < pb);
    }
    /* sorting a sorted list is a no-op; a one-item or empty list sorts trivially */
    snap *sn = malloc(sizeof *sn);
    void *small = tally_list_slice(l, 0, 400, 1);
    take_snap(sn, small);
    assert_int_equal(tally_list_sort(small, NULL, NULL), 0);
    check_snap(sn, small);
    tally_decref(small);
    free(sn);
    void *one = tally_list(rt, 0);
    void *r = mkrec(rt, 1, 1);
    assert_int_equal(tally_list_append(one, r), 0);
    assert_int_equal(tally_list_sort(one, NULL, NULL), 0); /* no comparison needed */
    tally_list_clear(one);
    assert_int_equal(tally_list_sort(one, NULL, NULL), 0);
    tally_decref(one);
    tally_decref(r);
    tally_decref(l);
    assert_settled(rt, base);
}

static void test_sort_default_strs(void **state)
{
    tally_rt *rt = *state;
    size_t base = seq_baseline(rt);
    const char *in[] = {"b", "ab", "abc", "a", "", "\xc3\xa9", "Z", "abc", "aa"};
    void *l = tally_list(rt, 0);
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
        void *s = mkstr(rt, in[i]);
        assert_int_equal(tally_list_append(l, s), 0);
        tally_decref(s);
    }
    void *first_abc = tally_list_get(l, 2);
    assert_int_equal(tally_list_sort(l, NULL, NULL), 0);
    check_repr(l, "['', 'Z', 'a', 'aa', 'ab', 'abc', 'abc', 'b', '\xc3\xa9']");
    assert_ptr_equal(tally_list_get(l, 5), first_abc); /* stable */
    tally_decref(l);
    assert_settled(rt, base);
}

static void test_sort_failures(void **state)
{
    tally_rt *rt = *state;
    size_t base = seq_baseline(rt);
    snap sn;
    /* mixed ints and strs: nothing moves */
    const int64_t v[] = {5, 3, 1, 4};
    void *l = list_of_ints(rt, v, 4);
    void *s = mkstr(rt, "s");
    assert_int_equal(tally_list_insert(l, 2, s), 0);
    take_snap(&sn, l);
    size_t blocks = blocks_in_use(rt);
    tally_clear_error(rt);
    assert_int_equal(tally_list_sort(l, NULL, NULL), -1);
    check_error(rt, TALLY_EINVAL);
    check_snap(&sn, l);
    assert_int_equal(blocks_in_use(rt), blocks);
    tally_decref(s);
    tally_decref(l);
    /* other types have no default order */
    l = tally_list(rt, 0);
    for (int i = 0; i < 3; i++) {
        void *r = mkrec(rt, 3 - i, i);
        assert_int_equal(tally_list_append(l, r), 0);
        tally_decref(r);
    }
    take_snap(&sn, l);
    assert_int_equal(tally_list_sort(l, NULL, NULL), -1);
    check_error(rt, TALLY_EINVAL);
    check_snap(&sn, l);
    /* the temporary buffer cannot be had: -1, unchanged */
    tally_fault_inject(rt, TALLY_FAULT_ALLOC, 1, 0);
    assert_int_equal(tally_list_sort(l, rec_cmp, NULL), -1);
    assert_int_not_equal(tally_last_error(rt), TALLY_OK);
    tally_clear_error(rt);
    tally_fault_inject(rt, TALLY_FAULT_ALLOC, 0, 0);
    check_snap(&sn, l);
    assert_int_equal(tally_list_sort(l, rec_cmp, NULL), 0);
    assert_int_equal(((rec *)tally_list_get(l, 0))->key, 1);
    tally_decref(l);
    assert_settled(rt, base);
}

static void test_sort_stable_user_cmp(void **state)
{
    tally_rt *rt = *state;
    size_t base = seq_baseline(rt);
    test_rng rng = {7};
    const size_t sizes[] = {2, 5, 31, 32, 33, 100, 1000, 5000};
    for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++) {
        size_t n = sizes[z];
        void *l = tally_list(rt, 0);
        for (size_t i = 0; i < n; i++) {
            void *r = mkrec(rt, (long)rng_below(&rng, 10), (long)i);
            assert_int_equal(tally_list_append(l, r), 0);
            tally_decref(r);
        }
        long calls = 0;
        assert_int_equal(tally_list_sort(l, rec_cmp, &calls), 0);
        assert_int_equal(tally_list_size(l), n);
        for (size_t i = 1; i < n; i++) {
            rec *a = tally_list_get(l, (ptrdiff_t)i - 1), *b = tally_list_get(l, (ptrdiff_t)i);
            assert_true(a->key <= b->key);
            if (a->key == b->key)
                assert_true(a->seq < b->seq); /* equal keys keep their order */
        }
        /* sorted input again: about one comparison per item */
        calls = 0;
        assert_int_equal(tally_list_sort(l, rec_cmp, &calls), 0);
        assert_true(calls < (long)(2 * n));
        tally_decref(l);
    }
    assert_settled(rt, base);
}

/* A comparison that appends to the list being sorted (which it must not do). */
static int meddling_cmp(void *a, void *b, void *arg)
{
    void *l = arg;
    if (tally_list_size(l) < 3) {
        void *r = mkrec(tally_runtime_of(l), -1, -1);
        assert_int_equal(tally_list_append(l, r), 0);
        tally_decref(r);
    }
    return rec_cmp(a, b, NULL);
}

static void test_sort_modified_during_sort(void **state)
{
    tally_rt *rt = *state;
    size_t base = seq_baseline(rt);
    void *l = tally_list(rt, 0);
    for (int i = 0; i < 50; i++) {
        void *r = mkrec(rt, 50 - i, i);
        assert_int_equal(tally_list_append(l, r), 0);
        tally_decref(r);
    }
    tally_clear_error(rt);
    assert_int_equal(tally_list_sort(l, meddling_cmp, l), -1);
    check_error(rt, TALLY_EINVAL);
    assert_int_equal(tally_list_size(l), 50); /* the intruders are dropped */
    for (int i = 0; i < 50; i++)
        assert_true(((rec *)tally_list_get(l, i))->seq >= 0);
    tally_decref(l);
    assert_settled(rt, base);
}

/* ---- re-entrancy and cycles ------------------------------------------------------------ */

/* A plain object whose finalizer appends an int to a list (a borrowed pointer). */
typedef struct appender {
    void *target;
    int64_t value;
} appender;

static void appender_finalize(void *self)
{
    appender *a = self;
    if (a->target != NULL)
        push_int(a->target, a->value);
}
static const tally_type APPENDER = {"appender", sizeof(appender), 0, 0, NULL, NULL,
                                    appender_finalize, NULL, NULL};

static void *mkappender(tally_rt *rt, void *target, int64_t value)
{
    appender *a = tally_new(rt, &APPENDER);
    assert_non_null(a);
    a->target = target;
    a->value = value;
    return a;
}

static void test_list_reentrant_release(void **state)
{
    tally_rt *rt = *state;
    size_t base = seq_baseline(rt);
    void *l = tally_list(rt, 0);
    /* clear: the finalizer finds an empty list and fills it again */
    void *a = mkappender(rt, l, 77);
    assert_int_equal(tally_list_append(l, a), 0);
    tally_decref(a);
    push_int(l, 1);
    tally_list_clear(l);
    const int64_t w1[] = {77};
    check_ints(l, w1, 1);
    /* set: the new item is in place before the old one dies */
    a = mkappender(rt, l, 88);
    assert_int_equal(tally_list_set(l, 0, a), 0);
    tally_decref(a);
    void *x = mkint(rt, 5);
    assert_int_equal(tally_list_set(l, 0, x), 0);
    tally_decref(x);
    const int64_t w2[] = {5, 88};
    check_ints(l, w2, 2);
    /* delete: the list is closed up before the item dies */
    a = mkappender(rt, l, 99);
    assert_int_equal(tally_list_insert(l, 1, a), 0);
    tally_decref(a);
    assert_int_equal(tally_list_delete(l, 1), 0);
    const int64_t w3[] = {5, 88, 99};
    check_ints(l, w3, 3);
    /* the list's own death: its items' finalizers may still append to it */
    a = mkappender(rt, l, 11);
    assert_int_equal(tally_list_append(l, a), 0);
    tally_decref(a);
    tally_decref(l);
    assert_settled(rt, base);
}

static void test_cycles_collected(void **state)
{
    tally_rt *rt = *state;
    size_t base = seq_baseline(rt);
    /* a list containing itself */
    void *l = tally_list(rt, 0);
    assert_int_equal(tally_list_append(l, l), 0);
    assert_int_equal(tally_refcount(l), 2);
    tally_decref(l);
    assert_int_equal(tally_gc_collect(rt, 2), 1);
    assert_settled(rt, base);
    /* a list and a tuple holding each other, with an int and a str inside */
    l = tally_list(rt, 0);
    void *s = mkstr(rt, "payload");
    void *t = tally_tuple_of(rt, 2, l, s);
    assert_int_equal(tally_list_append(l, t), 0);
    tally_decref(t);
    tally_decref(s);
    tally_decref(l);
    assert_int_equal(tally_gc_collect(rt, 2), 2);
    assert_settled(rt, base);
    /* a list holding its own iterator, and a node with a finalizer */
    l = tally_list(rt, 0);
    void *it = tally_iter(l);
    assert_int_equal(tally_list_append(l, it), 0);
    tally_decref(it);
    to_reset();
    node *n = mk(rt, &NODE, 1);
    link_to(&n->next, l);
    assert_int_equal(tally_list_append(l, n), 0);
    tally_decref(n);
    tally_decref(l);
    assert_int_equal(tally_gc_collect(rt, 2), 3);
    assert_int_equal(g_to.fin[1], 1);
    assert_int_equal(g_to.des[1], 1);
    assert_int_equal(g_to.anomalies, 0);
    /* reachable ones are kept */
    l = tally_list(rt, 0);
    assert_int_equal(tally_list_append(l, l), 0);
    assert_int_equal(tally_gc_collect(rt, 2), 0);
    assert_int_equal(tally_list_size(l), 1);
    tally_list_clear(l);
    tally_decref(l);
    assert_settled(rt, base);
}

/* ---- fault injection --------------------------------------------------------------- */

/* A call's failure: it must say why; counted. */
static void failed(tally_rt *rt, unsigned *fails)
{
    assert_int_not_equal(tally_last_error(rt), TALLY_OK);
    tally_clear_error(rt);
    ++*fails;
}

static int cmp_desc(void *a, void *b, void *arg)
{
    (void)arg;
    int64_t x = tally_int_value(a), y = tally_int_value(b);
    return (x < y) - (x > y);
}

/* Runs call, which changes list `of`: it must succeed, or fail with the error set
 * and `of` as it was. */
#define STEP(of, call)                                                                     \
    do {                                                                                   \
        take_snap(&sn, (of));                                                              \
        if ((call) != 0) {                                                                 \
            failed(rt, fails);                                                             \
            check_snap(&sn, (of));                                                         \
        }                                                                                  \
    } while (0)

/* A new-object call: a NULL result must leave list `of` as it was. */
static void *made(tally_rt *rt, unsigned *fails, void *o, const snap *sn, void *of)
{
    if (o == NULL) {
        failed(rt, fails);
        check_snap(sn, of);
    }
    return o;
}
#define MADE(call, of) (take_snap(&sn, (of)), made(rt, fails, (call), &sn, (of)))

static void fault_scenario(tally_rt *rt, unsigned *fails)
{
    static snap sn;
    void *l = tally_list(rt, 0);
    if (l == NULL) {
        failed(rt, fails);
        return;
    }
    for (int i = 0; i < 40; i++) {
        void *o = tally_int(rt, 1000 + (i * 7) % 13);
        if (o == NULL) {
            failed(rt, fails);
            continue;
        }
        STEP(l, tally_list_append(l, o));
        STEP(l, tally_list_insert(l, i % 2 ? 0 : -3, o));
        tally_decref(o);
    }
    void *a = MADE(tally_list_slice(l, 1, -1, 2), l);
    void *b = MADE(tally_list_slice(l, HI, LO, -3), l);
    void *x = MADE(tally_int(rt, 5000), l);
    void *t = NULL;
    if (a != NULL && b != NULL && x != NULL)
        t = MADE(tally_tuple_of(rt, 3, a, x, b), l);
    if (t != NULL) {
        STEP(l, tally_list_extend(l, t));
        void *it = MADE(tally_iter(t), l);
        if (it != NULL) {
            STEP(l, tally_list_extend(l, it));
            tally_decref(it);
        }
        STEP(a, tally_list_append(a, t)); /* a cycle: a -> t -> a */
    }
    void *c = b != NULL ? MADE(tally_list_from(rt, b), b) : NULL;
    if (c != NULL) {
        STEP(c, tally_list_extend(c, c));
        STEP(c, tally_list_sort(c, NULL, NULL));
        STEP(c, tally_list_sort(c, cmp_desc, NULL));
    }
    void *sl = MADE(tally_list_slice(l, 0, 60, 1), l);
    if (sl != NULL) {
        STEP(sl, tally_list_sort(sl, NULL, NULL));
        STEP(sl, tally_list_sort(sl, cmp_desc, NULL));
    }
    void *r = MADE(tally_repr(l), l);
    const void *objs[] = {r, sl, c, t, x, b, a, l};
    for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++)
        tally_xdecref((void *)objs[i]);
}

static void test_fault_injection(void **state)
{
    tally_rt *rt = *state;
    seq_baseline(rt);
    unsigned fails = 0;
    fault_scenario(rt, &fails); /* warm-up: every type registered */
    assert_int_equal(fails, 0);
    size_t base = settled_blocks(rt);
    assert_true(fail_each_allocation(rt, fault_scenario, base) > 50);
    tally_clear_error(rt);
}

/* repr and eq of containers nested deeper than the runtime allows fail with
 * TALLY_EOVERFLOW instead of overflowing the C stack; the nest is released by
 * count without recursion all the same. */
static void test_deep_nesting_limited(void **state)
{
    tally_rt *rt = *state;
    size_t base = seq_baseline(rt);
    enum { DEPTH = 100000 };
    void *a = tally_list(rt, 0), *b = tally_list(rt, 0);
    assert_non_null(a);
    assert_non_null(b);
    for (int i = 0; i < DEPTH; i++) { /* a = [[[...]]], and b the same shape */
        void *na = tally_list(rt, 1), *nb = tally_list(rt, 1);
        assert_non_null(na);
        assert_non_null(nb);
        assert_int_equal(tally_list_append(na, a), 0);
        assert_int_equal(tally_list_append(nb, b), 0);
        tally_decref(a);
        tally_decref(b);
        a = na;
        b = nb;
    }
    tally_clear_error(rt);
    assert_null(tally_repr(a));
    assert_int_equal(tally_last_error(rt), TALLY_EOVERFLOW);
    tally_clear_error(rt);
    assert_int_equal(tally_eq(a, b), -1);
    assert_int_equal(tally_last_error(rt), TALLY_EOVERFLOW);
    /* A shallow one still works afterwards: the depth came back to 0. */
    void *leaf = tally_list(rt, 0);
    void *r = tally_repr(leaf);
    assert_non_null(r);
    assert_string_equal(tally_str_data(r), "[]");
    tally_decref(r);
    tally_decref(leaf);
    tally_decref(a);
    tally_decref(b);
    assert_settled(rt, base);
    tally_clear_error(rt);
}

int main(void)
{
    unsetenv("TALLY_DEBUG");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tuple_basic, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_tuple_empty_singleton, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_tuple_hash_eq, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_tuple_repr_iter, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_list_get_set, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_list_insert_delete_pop, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_list_growth_and_sizeof, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_big_growth_without_copies, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_list_append_iter_count_limits, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_list_slack_past_quarter_arena, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_list_slice, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_list_extend, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_list_reverse_eq_hash, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_list_repr, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_list_iter_mutation, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_sort_default_ints, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_sort_default_strs, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_sort_failures, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_sort_stable_user_cmp, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_sort_modified_during_sort, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_list_reentrant_release, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_cycles_collected, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_fault_injection, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_deep_nesting_limited, setup_rt, teardown_rt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
