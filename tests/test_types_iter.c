/* test_types_iter.c - generators and lazy pipelines (tally/types.h).
 *
 * Covers range (steps up and down, empty ranges, step 0, the int64 extremes, where
 * a naive stop test would overflow); map, filter, zip, enumerate and take alone and
 * composed, over ranges, generators and lists (a list is not consumed); the end of
 * an iteration told apart from an error (NULL with TALLY_OK, even after an earlier
 * error, against NULL with the error of a failing map function, predicate or step);
 * exhaustion (an iterator that ended or failed stays ended and lets its sources
 * go); generators calling step only on demand, releasing their state when they end
 * or die, refusing a nested call from their own step; a pipeline over 10^7 items
 * whose heap peak stays within a few KiB; cycles through generators, map and zip
 * collected; and fault injection at every allocation of a pipeline scenario, each
 * failure giving NULL with an error and the heap back to its baseline afterwards.
 *
 * Callbacks never call cmocka asserts (they run inside library code): they count
 * what they see in the structs passed to them and the tests assert afterwards.
 */
#define _GNU_SOURCE
#include "test_util.h"

#include "tally/gc.h"
#include "tally/types.h"

/* ---- helpers ------------------------------------------------------------------- */

/* A runtime whose small ints and empty tuple exist already: they are immortal and
 * made on first use, so made here they never count as a test's allocations. */
static tally_rt *open_warm(void)
{
    tally_rt *rt = open_hosted(NULL, 0);
    for (int64_t v = -5; v <= 256; v++)
        tally_decref(tally_int(rt, v));
    tally_decref(tally_tuple(rt, 0, NULL));
    return rt;
}

/* Blocks and bytes in use once the collector and the object free stacks have
 * handed everything back. */
static struct tally_heap_stats settled(tally_rt *rt)
{
    assert_true(tally_gc_collect(rt, 2) >= 0);
    return get_stats(rt);
}

/* Drains iterator it (releasing it) into out[0..max): the number of ints read.
 * The iteration must end without an error. */
static size_t drain_ints(tally_rt *rt, void *src, int64_t *out, size_t max)
{
    assert_non_null(src);
    void *it = tally_iter(src); /* src itself for an iterator; a range is a sequence */
    assert_non_null(it);
    tally_decref(src);
    size_t n = 0;
    void *item;
    while ((item = tally_next(it)) != NULL) {
        assert_true(tally_is_int(item));
        assert_true(n < max);
        out[n++] = tally_int_value(item);
        tally_decref(item);
    }
    assert_int_equal(tally_last_error(rt), TALLY_OK);
    assert_null(tally_next(it)); /* and it stays ended */
    tally_decref(it);
    return n;
}

/* An iterator over range(start, stop, step) (a range itself is a sequence). */
static void *range_it(tally_rt *rt, int64_t start, int64_t stop, int64_t step)
{
    void *r = tally_range(rt, start, stop, step);
    assert_non_null(r);
    void *it = tally_iter(r);
    assert_non_null(it);
    tally_decref(r);
    return it;
}

static void expect_ints(tally_rt *rt, void *it, const int64_t *want, size_t nwant)
{
    int64_t got[64];
    size_t n = drain_ints(rt, it, got, 64);
    assert_int_equal(n, nwant);
    for (size_t i = 0; i < n; i++)
        assert_true(got[i] == want[i]);
}

/* Checks that item is the tuple (a, b) of two ints, and releases it. */
static void expect_pair(void *item, int64_t a, int64_t b)
{
    assert_non_null(item);
    assert_true(tally_is_tuple(item));
    assert_int_equal(tally_tuple_size(item), 2);
    assert_true(tally_int_value(tally_tuple_get(item, 0)) == a);
    assert_true(tally_int_value(tally_tuple_get(item, 1)) == b);
    tally_decref(item);
}

/* The helpers keep the caller's reference to the source (tally/types.h); these
 * variants release it, so that pipelines can be written as nested calls. */
static void *map_c(tally_rt *rt, tally_map_fn fn, void *arg, void *src)
{
    assert_non_null(src);
    void *it = tally_map(rt, fn, arg, src);
    tally_decref(src);
    return it;
}

static void *filter_c(tally_rt *rt, tally_pred_fn pred, void *arg, void *src)
{
    assert_non_null(src);
    void *it = tally_filter(rt, pred, arg, src);
    tally_decref(src);
    return it;
}

static void *take_c(tally_rt *rt, void *src, size_t n)
{
    assert_non_null(src);
    void *it = tally_take(rt, src, n);
    tally_decref(src);
    return it;
}

static void *enum_c(tally_rt *rt, void *src, int64_t start)
{
    assert_non_null(src);
    void *it = tally_enumerate(rt, src, start);
    tally_decref(src);
    return it;
}

static void *square(void *item, void *arg)
{
    int64_t v = tally_int_value(item);
    if (arg != NULL)
        ++*(long *)arg;
    return tally_int(tally_runtime_of(item), v * v);
}

static int is_odd(void *item, void *arg)
{
    if (arg != NULL)
        ++*(long *)arg;
    return tally_int_value(item) % 2 != 0;
}

/* Fails (NULL, no error of its own) on the item equal to *(int64_t *)arg. */
static void *fail_at(void *item, void *arg)
{
    if (tally_int_value(item) == *(int64_t *)arg)
        return NULL;
    tally_incref(item);
    return item;
}

/* Fails on the item equal to *(int64_t *)arg, through a failing library call. */
static int pred_fail_at(void *item, void *arg)
{
    if (tally_int_value(item) != *(int64_t *)arg)
        return 1;
    void *bad = tally_range(tally_runtime_of(item), 0, 1, 0); /* sets TALLY_EINVAL */
    return bad == NULL ? -1 : 1;
}

/* A broken step: says 1 and gives no item. */
static int empty_handed_step(void *state, void **item)
{
    (void)state;
    *item = NULL;
    return 1;
}

/* ---- a counting generator state -------------------------------------------------- */

typedef struct counts {
    long steps;      /* step calls */
    long destroyed;  /* state deaths */
    long nested;     /* results of nested next calls from step: -1 each */
} counts;

/* The state of a generator of the ints from..to-1 (then -1 instead of the end
 * when fail is set).  It may hold one object (ref), to build cycles, and may know
 * its own generator (self_gen, borrowed) to call it from step. */
typedef struct counter {
    void *ref;
    int64_t next, stop;
    int fail;
    counts *c;
    void *self_gen;
} counter;

static void counter_traverse(void *self, tally_visit_fn visit, void *arg)
{
    counter *s = self;
    if (s->ref != NULL)
        visit(s->ref, arg);
}

static void counter_clear(void *self)
{
    tally_setref(&((counter *)self)->ref, NULL);
}

static void counter_destroy(void *self)
{
    ((counter *)self)->c->destroyed++;
}

static const tally_type counter_type = {
    .name = "counter",
    .size = sizeof(counter),
    .flags = TALLY_TYPE_CONTAINER,
    .traverse = counter_traverse,
    .clear = counter_clear,
    .destroy = counter_destroy,
};

static int counter_step(void *state, void **item)
{
    counter *s = state;
    s->c->steps++;
    if (s->self_gen != NULL) {
        void *inner;
        s->c->nested += tally_iter_next(s->self_gen, &inner);
        tally_xdecref(inner);
    }
    if (s->next >= s->stop) {
        if (!s->fail)
            return 0;
        tally_range(tally_runtime_of(s), 0, 0, 0); /* an error to report */
        return -1;
    }
    *item = tally_int(tally_runtime_of(s), s->next++);
    return *item != NULL ? 1 : -1;
}

static counter *counter_new(tally_rt *rt, int64_t from, int64_t to, counts *c)
{
    counter *s = tally_new(rt, &counter_type);
    assert_non_null(s);
    s->next = from;
    s->stop = to;
    s->c = c;
    return s;
}

/* A generator over a new counter (the generator holds the only reference). */
static void *counting_gen(tally_rt *rt, int64_t from, int64_t to, counts *c)
{
    counter *s = counter_new(rt, from, to, c);
    void *g = tally_gen_new(rt, counter_step, s);
    assert_non_null(g);
    tally_decref(s);
    return g;
}

/* ---- range ----------------------------------------------------------------------- */

static void test_range_steps(void **state)
{
    (void)state;
    tally_rt *rt = open_warm();
    expect_ints(rt, tally_range(rt, 0, 5, 1), (int64_t[]){0, 1, 2, 3, 4}, 5);
    expect_ints(rt, tally_range(rt, 0, 10, 3), (int64_t[]){0, 3, 6, 9}, 4);
    expect_ints(rt, tally_range(rt, 1000, 1003, 1), (int64_t[]){1000, 1001, 1002}, 3);
    expect_ints(rt, tally_range(rt, -3, 4, 2), (int64_t[]){-3, -1, 1, 3}, 4);
    expect_ints(rt, tally_range(rt, 10, 0, -3), (int64_t[]){10, 7, 4, 1}, 4);
    expect_ints(rt, tally_range(rt, 3, -3, -2), (int64_t[]){3, 1, -1}, 3);
    expect_ints(rt, tally_range(rt, 0, 1, 100), (int64_t[]){0}, 1);
    tally_close(rt);
}

static void test_range_empty_and_step_zero(void **state)
{
    (void)state;
    tally_rt *rt = open_warm();
    int64_t none[1];
    assert_int_equal(drain_ints(rt, tally_range(rt, 5, 5, 1), none, 0), 0);
    assert_int_equal(drain_ints(rt, tally_range(rt, 5, 0, 1), none, 0), 0);
    assert_int_equal(drain_ints(rt, tally_range(rt, 0, 5, -1), none, 0), 0);
    assert_int_equal(drain_ints(rt, tally_range(rt, 5, 5, -1), none, 0), 0);
    size_t blocks = get_stats(rt).blocks_in_use;
    assert_null(tally_range(rt, 0, 10, 0));
    assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
    assert_non_null(strstr(tally_last_error_message(rt), "step"));
    assert_int_equal(get_stats(rt).blocks_in_use, blocks); /* nothing allocated */
    tally_close(rt);
}

/* A range is a sequence: walked again and again, indexed, compared, hashed. */
static void test_range_sequence(void **state)
{
    (void)state;
    tally_rt *rt = open_warm();
    void *r = tally_range(rt, 10, 0, -3);
    assert_true(tally_is_range(r));
    assert_null(tally_next(r)); /* not an iterator */
    assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
    tally_clear_error(rt);
    for (int pass = 0; pass < 3; pass++) {
        tally_incref(r);
        expect_ints(rt, r, (int64_t[]){10, 7, 4, 1}, 4);
    }
    void *it1 = tally_iter(r), *it2 = tally_iter(r);
    assert_ptr_not_equal(it1, it2); /* independent iterators */
    void *a = tally_next(it1), *b = tally_next(it1), *c = tally_next(it2);
    assert_int_equal(tally_int_value(b), 7);
    assert_int_equal(tally_int_value(c), 10);
    tally_decref(a);
    tally_decref(b);
    tally_decref(c);
    tally_decref(it1);
    tally_decref(it2);

    assert_int_equal(tally_range_size(r), 4);
    int64_t v = 0;
    assert_int_equal(tally_range_get(r, 0, &v), 0);
    assert_int_equal(v, 10);
    assert_int_equal(tally_range_get(r, 3, &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(tally_range_get(r, -1, &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(tally_range_get(r, -4, &v), 0);
    assert_int_equal(v, 10);
    assert_int_equal(tally_range_get(r, 4, &v), -1);
    assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
    assert_int_equal(tally_range_get(r, -5, &v), -1);
    assert_int_equal(tally_range_get(r, INT64_MIN, &v), -1);
    tally_clear_error(rt);
    void *wide = tally_range(rt, INT64_MIN, INT64_MAX, 1);
    assert_true(tally_range_size(wide) == UINT64_MAX);
    assert_int_equal(tally_range_get(wide, INT64_MAX, &v), 0);
    assert_true(v == -1); /* MIN + MAX */
    assert_int_equal(tally_range_get(wide, -1, &v), 0);
    assert_true(v == INT64_MAX - 1);

    /* Equal when they produce the same ints; equal ones hash alike. */
    void *same = tally_range(rt, 10, -1, -3); /* 10 7 4 1 */
    void *other = tally_range(rt, 10, 0, -2);
    void *e1 = tally_range(rt, 5, 5, 1), *e2 = tally_range(rt, 9, 0, 4);
    void *one1 = tally_range(rt, 3, 4, 1), *one2 = tally_range(rt, 3, 0, -7);
    assert_int_equal(tally_eq(r, same), 1);
    assert_int_equal(tally_eq(r, other), 0);
    assert_int_equal(tally_eq(e1, e2), 1);
    assert_int_equal(tally_eq(one1, one2), 1);
    void *pairs[][2] = {{r, same}, {e1, e2}, {one1, one2}};
    for (int i = 0; i < 3; i++) {
        uint64_t h1, h2;
        assert_int_equal(tally_hash(pairs[i][0], &h1), 0);
        assert_int_equal(tally_hash(pairs[i][1], &h2), 0);
        assert_true(h1 == h2);
    }
    void *l = tally_list(rt, 0);
    assert_int_equal(tally_eq(r, l), 0);
    void *rs = tally_repr(r), *rs1 = tally_repr(one1);
    assert_string_equal(tally_str_data(rs), "range(10, 0, -3)");
    assert_string_equal(tally_str_data(rs1), "range(3, 4)");
    void *objs[] = {r, wide, same, other, e1, e2, one1, one2, l, rs, rs1};
    for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++)
        tally_decref(objs[i]);
    tally_close(rt);
}

static void test_range_int64_extremes(void **state)
{
    (void)state;
    tally_rt *rt = open_warm();
    const int64_t MX = INT64_MAX, MN = INT64_MIN;
    expect_ints(rt, tally_range(rt, MX - 2, MX, 1), (int64_t[]){MX - 2, MX - 1}, 2);
    expect_ints(rt, tally_range(rt, MN, MN + 2, 1), (int64_t[]){MN, MN + 1}, 2);
    expect_ints(rt, tally_range(rt, MN + 1, MN, -1), (int64_t[]){MN + 1}, 1);
    /* Steps whose next addition would overflow after the last item. */
    expect_ints(rt, tally_range(rt, MN, MX, MX), (int64_t[]){MN, -1, MX - 1}, 3);
    expect_ints(rt, tally_range(rt, MX, MN, MN), (int64_t[]){MX, -1}, 2);
    expect_ints(rt, tally_range(rt, MX - 1, MX, MX), (int64_t[]){MX - 1}, 1);
    expect_ints(rt, tally_range(rt, MX, MN, -MX), (int64_t[]){MX, 0, -MX}, 3);
    /* The widest ranges (2^64 - 1 items): correct first items, lazily. */
    expect_ints(rt, take_c(rt, tally_range(rt, MN, MX, 1), 3), (int64_t[]){MN, MN + 1, MN + 2},
                3);
    expect_ints(rt, take_c(rt, tally_range(rt, MX, MN, -1), 2), (int64_t[]){MX, MX - 1}, 2);
    tally_close(rt);
}

/* ---- map, filter, take, zip, enumerate ------------------------------------------------ */

static void test_map_filter_take(void **state)
{
    (void)state;
    tally_rt *rt = open_warm();
    long calls = 0;
    expect_ints(rt, map_c(rt, square, &calls, tally_range(rt, 0, 5, 1)),
                (int64_t[]){0, 1, 4, 9, 16}, 5);
    assert_int_equal(calls, 5);
    expect_ints(rt, filter_c(rt, is_odd, NULL, tally_range(rt, 0, 10, 1)),
                (int64_t[]){1, 3, 5, 7, 9}, 5);
    expect_ints(rt, take_c(rt, tally_range(rt, 7, 100, 1), 3), (int64_t[]){7, 8, 9}, 3);
    expect_ints(rt, take_c(rt, tally_range(rt, 0, 2, 1), 10), (int64_t[]){0, 1}, 2);
    expect_ints(rt, take_c(rt, tally_range(rt, 0, 2, 1), 0), (int64_t[]){0}, 0);
    /* squares of the odd numbers, the first four only: map is called four times. */
    calls = 0;
    void *odd = filter_c(rt, is_odd, NULL, tally_range(rt, 0, 1000, 1));
    void *sq = tally_map(rt, square, &calls, odd);
    expect_ints(rt, tally_take(rt, sq, 4), (int64_t[]){1, 9, 25, 49}, 4);
    assert_int_equal(calls, 4);
    tally_decref(sq);
    tally_decref(odd);
    tally_close(rt);
}

/* The helpers take their own reference through tally_iter: the caller keeps its
 * iterator, and an iterator passed to tally_iter is itself. */
static void test_sources_are_referenced(void **state)
{
    (void)state;
    tally_rt *rt = open_warm();
    void *r = range_it(rt, 0, 3, 1);
    void *same = tally_iter(r);
    assert_ptr_equal(same, r);
    assert_int_equal(tally_refcount(r), 2);
    tally_decref(same);
    void *m = tally_map(rt, square, NULL, r);
    assert_int_equal(tally_refcount(r), 2);
    tally_decref(r); /* m keeps it alive */
    expect_ints(rt, m, (int64_t[]){0, 1, 4}, 3);
    /* NULL arguments are refused with an error, the source left to the caller. */
    r = range_it(rt, 0, 1, 1);
    assert_null(tally_map(rt, NULL, NULL, r));
    assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
    assert_int_equal(tally_refcount(r), 1);
    tally_decref(r);
    assert_null(tally_filter(rt, is_odd, NULL, NULL));
    assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
    assert_null(tally_gen_new(rt, NULL, NULL));
    assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
    tally_close(rt);
}

static void test_zip(void **state)
{
    (void)state;
    tally_rt *rt = open_warm();
    void *srcs[3] = {range_it(rt, 0, 3, 1), range_it(rt, 10, 20, 1),
                     range_it(rt, 100, 50, -10)};
    void *z = tally_zip(rt, 2, srcs);
    assert_non_null(z);
    expect_pair(tally_next(z), 0, 10);
    expect_pair(tally_next(z), 1, 11);
    expect_pair(tally_next(z), 2, 12);
    assert_null(tally_next(z)); /* the shortest source ended */
    assert_int_equal(tally_last_error(rt), TALLY_OK);
    assert_null(tally_next(z));
    tally_decref(z);
    /* The first source ended before the second was asked: 13 is next there.  The
     * three sources again (the first one empty now), then the last two. */
    z = tally_zip(rt, 3, srcs);
    assert_null(tally_next(z));
    assert_int_equal(tally_last_error(rt), TALLY_OK);
    tally_decref(z);
    z = tally_zip(rt, 2, srcs + 1);
    void *t = tally_next(z);
    assert_int_equal(tally_tuple_size(t), 2);
    assert_true(tally_int_value(tally_tuple_get(t, 0)) == 13);
    assert_true(tally_int_value(tally_tuple_get(t, 1)) == 100);
    tally_decref(t);
    int64_t seen = 1;
    while ((t = tally_next(z)) != NULL) {
        seen++;
        tally_decref(t);
    }
    assert_int_equal(seen, 5); /* the last source has 5 items: 100, 90 .. 60 */
    tally_decref(z);
    /* zip of nothing is empty. */
    z = tally_zip(rt, 0, NULL);
    assert_non_null(z);
    assert_null(tally_next(z));
    assert_int_equal(tally_last_error(rt), TALLY_OK);
    tally_decref(z);
    for (int i = 0; i < 3; i++)
        tally_decref(srcs[i]);
    tally_close(rt);
}

static void test_enumerate(void **state)
{
    (void)state;
    tally_rt *rt = open_warm();
    void *e = enum_c(rt, range_it(rt, 10, 13, 1), 5);
    expect_pair(tally_next(e), 5, 10);
    expect_pair(tally_next(e), 6, 11);
    expect_pair(tally_next(e), 7, 12);
    assert_null(tally_next(e));
    assert_int_equal(tally_last_error(rt), TALLY_OK);
    tally_decref(e);
    /* The index cannot pass INT64_MAX: an error, not a wrapped index. */
    e = enum_c(rt, range_it(rt, 0, 3, 1), INT64_MAX);
    expect_pair(tally_next(e), INT64_MAX, 0);
    assert_null(tally_next(e));
    assert_int_equal(tally_last_error(rt), TALLY_EOVERFLOW);
    tally_decref(e);
    /* enumerate(zip(...)) and zip(enumerate(...), map(...)) compose. */
    void *srcs[2] = {enum_c(rt, range_it(rt, 0, 4, 1), 0),
                     map_c(rt, square, NULL, range_it(rt, 0, 3, 1))};
    void *z = tally_zip(rt, 2, srcs);
    for (int64_t i = 0; i < 3; i++) {
        void *t = tally_next(z);
        assert_non_null(t);
        void *inner = tally_tuple_get(t, 0); /* (index, item) from enumerate */
        tally_incref(inner);
        expect_pair(inner, i, i);
        assert_true(tally_int_value(tally_tuple_get(t, 1)) == i * i);
        tally_decref(t);
    }
    assert_null(tally_next(z));
    tally_decref(z);
    tally_decref(srcs[0]);
    tally_decref(srcs[1]);
    tally_close(rt);
}

static void test_list_sources(void **state)
{
    (void)state;
    tally_rt *rt = open_warm();
    void *l = tally_list(rt, 0);
    for (int64_t v = 1; v <= 4; v++) {
        void *o = tally_int(rt, v);
        assert_int_equal(tally_list_append(l, o), 0);
        tally_decref(o);
    }
    expect_ints(rt, tally_map(rt, square, NULL, l), (int64_t[]){1, 4, 9, 16}, 4);
    assert_int_equal(tally_list_size(l), 4); /* iterated, not consumed */
    expect_ints(rt, tally_filter(rt, is_odd, NULL, l), (int64_t[]){1, 3}, 2);
    void *srcs[2] = {l, range_it(rt, 7, 100, 1)};
    void *z = tally_zip(rt, 2, srcs);
    tally_decref(srcs[1]);
    expect_pair(tally_next(z), 1, 7);
    tally_decref(z);
    /* A pipeline materialised by the list type, through the same protocol. */
    void *first3 = take_c(rt, tally_map(rt, square, NULL, l), 3);
    void *squares = tally_list_from(rt, first3);
    tally_decref(first3);
    assert_non_null(squares);
    assert_int_equal(tally_list_size(squares), 3);
    assert_true(tally_int_value(tally_list_get(squares, 2)) == 9);
    tally_decref(squares);
    tally_decref(l);
    tally_close(rt);
}

/* ---- the end against an error ------------------------------------------------------ */

static void test_end_is_not_an_error(void **state)
{
    (void)state;
    tally_rt *rt = open_warm();
    assert_null(tally_range(rt, 0, 1, 0)); /* an earlier error, still recorded */
    assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
    void *r = range_it(rt, 0, 1, 1);
    void *item;
    assert_int_equal(tally_iter_next(r, &item), 1);
    tally_decref(item);
    assert_int_equal(tally_iter_next(r, &item), 0);
    assert_null(item);
    assert_null(tally_next(r));
    assert_int_equal(tally_last_error(rt), TALLY_OK); /* the end clears it */
    tally_decref(r);
    tally_close(rt);
}

/* Reads items 0..n-1 of it, then expects an error with code and a message
 * containing `says`, then the end (the iterator is exhausted by the error). */
static void expect_failure_after(tally_rt *rt, void *it, int64_t n, tally_error code,
                                 const char *says)
{
    assert_non_null(it);
    tally_clear_error(rt);
    for (int64_t i = 0; i < n; i++) {
        void *item = tally_next(it);
        assert_non_null(item);
        assert_true(tally_int_value(item) == i);
        tally_decref(item);
    }
    assert_null(tally_next(it));
    assert_int_equal(tally_last_error(rt), code);
    assert_non_null(strstr(tally_last_error_message(rt), says));
    void *item;
    assert_int_equal(tally_iter_next(it, &item), 0);
    assert_null(item);
    tally_decref(it);
}

static void test_errors_propagate(void **state)
{
    (void)state;
    tally_rt *rt = open_warm();
    /* A map function failing without an error of its own: one is recorded. */
    int64_t at = 3;
    expect_failure_after(rt, map_c(rt, fail_at, &at, tally_range(rt, 0, 10, 1)), 3, TALLY_EINVAL,
                         "map function");
    /* A predicate failing through a library call: that call's error stands. */
    at = 4;
    expect_failure_after(rt, filter_c(rt, pred_fail_at, &at, tally_range(rt, 0, 10, 1)), 4,
                         TALLY_EINVAL, "step must not be zero");
    /* A failing generator step, seen through map and take. */
    counts c = {0};
    counter *s = counter_new(rt, 0, 2, &c);
    s->fail = 1;
    void *g = tally_gen_new(rt, counter_step, s);
    tally_decref(s);
    at = -1;
    expect_failure_after(rt, take_c(rt, map_c(rt, fail_at, &at, g), 10), 2, TALLY_EINVAL,
                         "step");
    assert_int_equal(c.steps, 3);     /* never called again after the failure */
    assert_int_equal(c.destroyed, 1); /* the state went with the failure */
    /* A step claiming an item it did not give is an error, not a NULL item. */
    g = tally_gen_new(rt, empty_handed_step, NULL);
    assert_null(tally_next(g));
    assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
    assert_null(tally_next(g));
    assert_int_equal(tally_last_error(rt), TALLY_OK);
    tally_decref(g);
    tally_close(rt);
}

/* ---- generators -------------------------------------------------------------------- */

static void test_generator_is_lazy(void **state)
{
    (void)state;
    tally_rt *rt = open_warm();
    counts c = {0};
    void *g = counting_gen(rt, 0, 3, &c);
    assert_int_equal(c.steps, 0); /* nothing runs before the first next */
    assert_ptr_equal(tally_iter(g), g);
    tally_decref(g);
    for (int64_t i = 0; i < 3; i++) {
        void *item = tally_next(g);
        assert_int_equal(c.steps, i + 1);
        assert_true(tally_int_value(item) == i);
        tally_decref(item);
    }
    assert_int_equal(c.destroyed, 0);
    assert_null(tally_next(g));
    assert_int_equal(tally_last_error(rt), TALLY_OK);
    assert_int_equal(c.steps, 4);
    assert_int_equal(c.destroyed, 1); /* released at the end, the generator alive */
    assert_null(tally_next(g));
    assert_int_equal(c.steps, 4);     /* exhausted: step is not called again */
    tally_decref(g);
    assert_int_equal(c.destroyed, 1);

    /* take(n) pulls exactly n items and then lets its generator go. */
    c = (counts){0};
    void *t = take_c(rt, counting_gen(rt, 0, 1000, &c), 2);
    tally_decref(tally_next(t));
    tally_decref(tally_next(t));
    assert_int_equal(c.steps, 2);
    assert_int_equal(c.destroyed, 1);
    assert_null(tally_next(t));
    assert_int_equal(c.steps, 2);
    tally_decref(t);
    tally_close(rt);
}

static void test_generator_state_released_on_death(void **state)
{
    (void)state;
    tally_rt *rt = open_warm();
    size_t base = settled(rt).blocks_in_use;
    counts c = {0};
    void *g = counting_gen(rt, 0, 100, &c);
    tally_decref(tally_next(g));
    assert_int_equal(c.destroyed, 0);
    tally_decref(g); /* dies half way: the state goes with it */
    assert_int_equal(c.destroyed, 1);
    assert_int_equal(c.steps, 1);
    /* A NULL state is allowed. */
    g = tally_gen_new(rt, counter_step, NULL);
    assert_non_null(g);
    tally_decref(g);
    assert_int_equal(settled(rt).blocks_in_use, base);
    tally_close(rt);
}

/* A step that asks its own generator for an item is refused, not recursed into. */
static void test_generator_nested_call_refused(void **state)
{
    (void)state;
    tally_rt *rt = open_warm();
    counts c = {0};
    counter *s = counter_new(rt, 0, 2, &c);
    void *g = tally_gen_new(rt, counter_step, s);
    s->self_gen = g; /* borrowed */
    tally_decref(s);
    void *item = tally_next(g);
    assert_non_null(item);
    assert_true(tally_int_value(item) == 0);
    tally_decref(item);
    assert_int_equal(c.nested, -1); /* the inner call returned -1 */
    assert_int_equal(c.steps, 1);
    assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
    assert_non_null(strstr(tally_last_error_message(rt), "already running"));
    tally_decref(g);
    assert_int_equal(c.destroyed, 1);
    tally_close(rt);
}

/* ---- constant memory --------------------------------------------------------------------- */

static void test_pipeline_constant_memory(void **state)
{
    (void)state;
    tally_rt *rt = open_warm();
    /* Every type of the pipeline once, so that the type table is grown already. */
    void *warm = map_c(rt, square, NULL, filter_c(rt, is_odd, NULL, tally_range(rt, 0, 2, 1)));
    assert_int_equal(drain_ints(rt, warm, (int64_t[1]){0}, 1), 1);
    struct tally_heap_stats s0 = settled(rt);
    const int64_t n = (int64_t)test_scale(10000000, 100);

    void *it = map_c(rt, square, NULL, filter_c(rt, is_odd, NULL, tally_range(rt, 0, n, 1)));
    assert_non_null(it);
    __extension__ unsigned __int128 sum = 0;
    void *item;
    while ((item = tally_next(it)) != NULL) {
        sum += (unsigned __int128)tally_int_value(item);
        tally_decref(item);
    }
    assert_int_equal(tally_last_error(rt), TALLY_OK);
    tally_decref(it);

    /* The sum of the squares of the first k odd numbers: k (2k - 1) (2k + 1) / 3. */
    __extension__ unsigned __int128 k = (unsigned __int128)(n / 2);
    assert_true(sum == k * (2 * k - 1) * (2 * k + 1) / 3);
    struct tally_heap_stats s1 = settled(rt);
    /* A list of the items would take n * 16 bytes and more; the pipeline holds
     * three iterators and a couple of ints at a time. */
    assert_true(s1.bytes_in_use_peak - s0.bytes_in_use < 4 * KiB);
    assert_int_equal(s1.blocks_in_use, s0.blocks_in_use);
    tally_close(rt);
}

/* ---- cycles ------------------------------------------------------------------------ */

/* An iterator of kind `kind` (0..5: generator, map, filter, enumerate, take, zip)
 * over a generator whose state refers back to the iterator: a cycle. */
static void *make_cycle(tally_rt *rt, int kind, counts *c)
{
    counter *s = counter_new(rt, 0, 10, c);
    void *g = tally_gen_new(rt, counter_step, s);
    void *it = g;
    switch (kind) {
    case 1: it = tally_map(rt, square, NULL, g); break;
    case 2: it = tally_filter(rt, is_odd, NULL, g); break;
    case 3: it = tally_enumerate(rt, g, 0); break;
    case 4: it = tally_take(rt, g, 5); break;
    case 5: {
        void *srcs[2] = {tally_range(rt, 0, 5, 1), g};
        it = tally_zip(rt, 2, srcs);
        tally_decref(srcs[0]);
        break;
    }
    default: tally_incref(g); break;
    }
    assert_non_null(it);
    tally_decref(g);
    tally_setref(&s->ref, it); /* the state holds the iterator: a cycle */
    tally_decref(s);
    return it;
}

static void test_cycles_collected(void **state)
{
    (void)state;
    tally_rt *rt = open_warm();
    for (int kind = 0; kind < 6; kind++) {
        counts c = {0};
        /* Warm the types first: the type table is a block of its own. */
        tally_decref(make_cycle(rt, kind, &c));
        assert_true(tally_gc_collect(rt, 2) >= 2);
        size_t base = settled(rt).blocks_in_use;
        c = (counts){0};
        void *it = make_cycle(rt, kind, &c);
        assert_true(tally_gc_is_tracked(it));
        tally_decref(tally_next(it)); /* part way through */
        tally_decref(it);
        assert_int_equal(c.destroyed, 0); /* counting alone cannot free the cycle */
        long found = tally_gc_collect(rt, 2);
        assert_int_equal(found, kind == 0 ? 2 : 3);
        assert_int_equal(c.destroyed, 1);
        assert_int_equal(settled(rt).blocks_in_use, base);
    }
    tally_close(rt);
}

/* ---- fault injection --------------------------------------------------------------- */

/* take(zip(enumerate(map(filter(range))), generator), 40), summed: every helper
 * and both kinds of items.  Returns 0 with *sum set, or -1 after the first
 * failure (creation or iteration), with *err the error recorded then.  Whatever
 * happens, everything made is released. */
static int scenario(tally_rt *rt, counts *c, int64_t *sum, tally_error *err)
{
    void *obj[8] = {NULL};
    int k = 0, rc = -1;
    *sum = 0;
    if (!(obj[k++] = tally_range(rt, 0, 600, 1)) ||
        !(obj[k++] = tally_filter(rt, is_odd, NULL, obj[0])) ||
        !(obj[k++] = tally_map(rt, square, NULL, obj[1])) ||
        !(obj[k++] = tally_enumerate(rt, obj[2], 1000)) ||
        !(obj[k++] = tally_new(rt, &counter_type)))
        goto out;
    counter *s = obj[4];
    *s = (counter){.next = 300, .stop = 1000, .c = c};
    if (!(obj[k++] = tally_gen_new(rt, counter_step, s)) ||
        !(obj[k++] = tally_zip(rt, 2, (void *[]){obj[3], obj[5]})) ||
        !(obj[k++] = tally_take(rt, obj[6], 40)))
        goto out;
    void *t;
    while ((t = tally_next(obj[7])) != NULL) {
        void *pair = tally_tuple_get(t, 0);
        *sum += tally_int_value(tally_tuple_get(pair, 0)) +
                tally_int_value(tally_tuple_get(pair, 1)) + tally_int_value(tally_tuple_get(t, 1));
        tally_decref(t);
    }
    rc = tally_last_error(rt) == TALLY_OK ? 0 : -1;
out:
    *err = tally_last_error(rt);
    while (k > 0)
        tally_xdecref(obj[--k]);
    return rc;
}

static void test_fault_injection_every_allocation(void **state)
{
    (void)state;
    tally_rt *rt = open_warm();
    counts c = {0};
    int64_t want, sum;
    tally_error err;
    assert_int_equal(scenario(rt, &c, &want, &err), 0); /* the types are known now */
    /* sum over i < 40 of (1000 + i) + (2i + 1)^2 + (300 + i) */
    int64_t expect = 0;
    for (int64_t i = 0; i < 40; i++)
        expect += 1000 + i + (2 * i + 1) * (2 * i + 1) + 300 + i;
    assert_true(want == expect);
    struct tally_heap_stats base = settled(rt);
    unsigned long failed_runs = 0;
    for (unsigned long n = 1;; n++) {
        unsigned long f0 = tally_fault_failures(rt, TALLY_FAULT_ALLOC);
        tally_clear_error(rt);
        tally_fault_inject(rt, TALLY_FAULT_ALLOC, n, 0);
        int rc = scenario(rt, &c, &sum, &err);
        int injected = tally_fault_failures(rt, TALLY_FAULT_ALLOC) > f0;
        tally_fault_inject(rt, TALLY_FAULT_ALLOC, 0, 0);
        struct tally_heap_stats now = settled(rt);
        assert_int_equal(now.blocks_in_use, base.blocks_in_use); /* nothing leaked */
        assert_int_equal(now.bytes_in_use, base.bytes_in_use);
        if (!injected) {
            assert_int_equal(rc, 0);
            assert_true(sum == want);
            break;
        }
        failed_runs++;
        assert_int_equal(rc, -1); /* the failure surfaced as an error, not an end */
        assert_int_not_equal(err, TALLY_OK);
    }
    /* Two ints per item (the square, the generator's) and more: many points. */
    assert_true(failed_runs >= 80);
    tally_close(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_range_steps),
        cmocka_unit_test(test_range_empty_and_step_zero),
        cmocka_unit_test(test_range_sequence),
        cmocka_unit_test(test_range_int64_extremes),
        cmocka_unit_test(test_map_filter_take),
        cmocka_unit_test(test_sources_are_referenced),
        cmocka_unit_test(test_zip),
        cmocka_unit_test(test_enumerate),
        cmocka_unit_test(test_list_sources),
        cmocka_unit_test(test_end_is_not_an_error),
        cmocka_unit_test(test_errors_propagate),
        cmocka_unit_test(test_generator_is_lazy),
        cmocka_unit_test(test_generator_state_released_on_death),
        cmocka_unit_test(test_generator_nested_call_refused),
        cmocka_unit_test(test_pipeline_constant_memory),
        cmocka_unit_test(test_cycles_collected),
        cmocka_unit_test(test_fault_injection_every_allocation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
