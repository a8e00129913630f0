/* test_types_inline.c - the inline fast paths of tally/types.h against the
 * exported functions they stand for.
 *
 * Each inline call (tally_int, tally_int_value, tally_list_size,
 * tally_list_append, tally_next) must behave exactly as the exported function,
 * reached here as (tally_int)(...): the same results, errors and counts, on the
 * common path and on every case the inline code hands over (a small int not made
 * yet, a value outside the small range, a full list, a list at the end of its
 * iteration, objects of other types, NULL).  The view of
 * the runtime the inline code reads must say what the library means (small
 * range, table), and the layout constants must match (checked by the library at
 * build time; here through behaviour).
 */
#define _GNU_SOURCE
#include "test_objects.h"

#include <stdbool.h>
#include <stdint.h>

static tally_rt *open_rt(void)
{
    tally_rt *rt = tally_open(NULL);
    assert_non_null(rt);
    return rt;
}

/* ---- ints --------------------------------------------------------------------------- */

static void test_int_view_matches_library(void **state)
{
    (void)state;
    tally_rt *rt = open_rt();
    const tally_rt_view *v = (const tally_rt_view *)(const void *)rt;
    assert_int_equal(v->small_min, -5);
    assert_int_equal(v->small_count, 262);
    /* Nothing made yet: the inline path hands over, and the library makes it. */
    assert_null(v->small_ints[0 + 5]);
    void *zero = tally_int(rt, 0);
    assert_non_null(zero);
    assert_ptr_equal(v->small_ints[0 + 5], zero);
    assert_ptr_equal(tally_int(rt, 0), zero);
    assert_ptr_equal((tally_int)(rt, 0), zero);
    assert_int_equal(tally_refcount(zero), TALLY_RC_IMMORTAL);
    tally_close(rt);
}

static void test_int_inline_and_exported_agree(void **state)
{
    (void)state;
    tally_rt *rt = open_rt();
    const int64_t values[] = {-7, -6, -5, -1, 0, 1, 255, 256, 257, 1000, INT64_MIN, INT64_MAX};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        int64_t x = values[i];
        void *a = tally_int(rt, x), *b = (tally_int)(rt, x);
        assert_non_null(a);
        assert_non_null(b);
        assert_int_equal(tally_int_value(a), x);
        assert_int_equal((tally_int_value)(b), x);
        bool small = x >= -5 && x <= 256;
        if (small) /* one shared immortal object */
            assert_ptr_equal(a, b);
        else /* a new object each time, with one reference */
            assert_true(a != b && tally_refcount(a) == 1 && tally_refcount(b) == 1);
        tally_decref(a);
        tally_decref(b);
    }
    tally_close(rt);
}

static void test_int_value_of_other_things(void **state)
{
    (void)state;
    tally_rt *rt = open_rt();
    void *s = tally_str(rt, "12");
    void *l = tally_list(rt, 0);
    assert_int_equal(tally_int_value(s), 0);
    assert_int_equal((tally_int_value)(s), 0);
    assert_int_equal(tally_int_value(l), 0);
    assert_int_equal(tally_int_value(NULL), 0);
    assert_int_equal((tally_int_value)(NULL), 0);
    tally_decref(s);
    tally_decref(l);
    tally_close(rt);
}

/* Inline tally_int fails as the exported one does: a value outside the small
 * range with its allocation refused. */
static void test_int_failure_reported(void **state)
{
    (void)state;
    tally_rt *rt = open_rt();
    tally_decref(tally_int(rt, 7)); /* made: no allocation from here on */
    tally_fault_inject(rt, TALLY_FAULT_ALLOC, 1, 0);
    assert_non_null(tally_int(rt, 7));
    assert_null(tally_int(rt, 100000));
    assert_int_equal(tally_last_error(rt), TALLY_EFAULT);
    tally_fault_inject(rt, TALLY_FAULT_ALLOC, 0, 0);
    tally_close(rt);
}

/* ---- lists -------------------------------------------------------------------------- */

static void test_list_append_inline_grows_and_counts(void **state)
{
    (void)state;
    tally_rt *rt = open_rt();
    void *l = tally_list(rt, 0);
    void *big = tally_int(rt, 1 << 20);
    for (int i = 0; i < 5000; i++) { /* many growths: the inline path hands over when full */
        void *x = i % 3 == 0 ? big : tally_int(rt, i & 255);
        assert_int_equal(i % 2 ? tally_list_append(l, x) : (tally_list_append)(l, x), 0);
        if (x != big)
            tally_decref(x);
        assert_int_equal(tally_list_size(l), (size_t)i + 1);
        assert_int_equal((tally_list_size)(l), (size_t)i + 1);
    }
    assert_int_equal(tally_refcount(big), 1 + 1667);
    for (int i = 0; i < 5000; i++)
        assert_ptr_equal(tally_list_get(l, i), i % 3 == 0 ? big : tally_int(rt, i & 255));
    tally_decref(l);
    assert_int_equal(tally_refcount(big), 1);
    tally_decref(big);
    tally_close(rt);
}

static void test_list_inline_refuses_as_exported(void **state)
{
    (void)state;
    tally_rt *rt = open_rt();
    void *l = tally_list(rt, 4);
    void *t = tally_tuple(rt, 0, NULL);
    void *one = tally_int(rt, 1);
    assert_int_equal(tally_list_append(t, one), -1); /* not a list */
    assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
    tally_clear_error(rt);
    assert_int_equal(tally_list_append(l, NULL), -1); /* no item */
    assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
    assert_int_equal(tally_list_append(NULL, one), -1);
    assert_int_equal(tally_list_size(l), 0);
    assert_int_equal(tally_list_size(t), 0); /* as the exported call answers */
    assert_int_equal((tally_list_size)(t), tally_list_size(t));
    tally_decref(l);
    tally_decref(t);
    tally_close(rt);
}

/* A list with room, its allocation refused: the inline path needs none. */
static void test_list_append_inline_allocates_nothing(void **state)
{
    (void)state;
    tally_rt *rt = open_rt();
    void *l = tally_list(rt, 8);
    void *x = tally_int(rt, 3);
    tally_fault_inject(rt, TALLY_FAULT_ALLOC, 1, TALLY_FAULT_PERSIST);
    for (int i = 0; i < 8; i++)
        assert_int_equal(tally_list_append(l, x), 0);
    /* Past the capacity the library must allocate, and reports the refusal with
     * the list unchanged. */
    int rc = 0;
    size_t before = 0;
    for (int i = 0; i < 4096 && rc == 0; i++) {
        before = tally_list_size(l);
        rc = tally_list_append(l, x);
    }
    assert_int_equal(rc, -1);
    assert_int_equal(tally_last_error(rt), TALLY_EFAULT);
    assert_int_equal(tally_list_size(l), before);
    tally_fault_inject(rt, TALLY_FAULT_ALLOC, 0, 0);
    tally_decref(l);
    tally_close(rt);
}

/* ---- iteration ---------------------------------------------------------------------- */

static int64_t sum_inline(void *l, size_t *count)
{
    int64_t sum = 0;
    *count = 0;
    void *it = tally_iter(l);
    assert_non_null(it);
    for (void *x; (x = tally_next(it)) != NULL; tally_decref(x)) {
        sum += tally_int_value(x);
        ++*count;
    }
    assert_int_equal(tally_last_error(tally_runtime_of(l)), TALLY_OK);
    assert_null(tally_next(it)); /* stays at the end */
    tally_decref(it);
    return sum;
}

static int64_t sum_exported(void *l, size_t *count)
{
    int64_t sum = 0;
    *count = 0;
    void *it = tally_iter(l);
    for (void *x; (x = (tally_next)(it)) != NULL; tally_decref(x)) {
        sum += (tally_int_value)(x);
        ++*count;
    }
    tally_decref(it);
    return sum;
}

static void test_next_inline_and_exported_agree(void **state)
{
    (void)state;
    tally_rt *rt = open_rt();
    void *l = tally_list(rt, 0);
    int64_t expect = 0;
    for (int64_t i = 0; i < 3000; i++) {
        void *x = tally_int(rt, i * 7 - 500);
        assert_int_equal(tally_list_append(l, x), 0);
        tally_decref(x);
        expect += i * 7 - 500;
    }
    size_t n1, n2;
    assert_int_equal(sum_inline(l, &n1), expect);
    assert_int_equal(sum_exported(l, &n2), expect);
    assert_int_equal(n1, 3000);
    assert_int_equal(n2, 3000);
    /* Counts: every mortal item back to the list's one reference. */
    for (size_t i = 0; i < 3000; i++) {
        void *x = tally_list_get(l, (ptrdiff_t)i);
        assert_true(tally_refcount(x) == 1 || tally_refcount(x) == TALLY_RC_IMMORTAL);
    }
    tally_decref(l);
    tally_close(rt);
}

/* The list shrinks and grows between calls: the inline path re-reads its size. */
static void test_next_inline_follows_changes(void **state)
{
    (void)state;
    tally_rt *rt = open_rt();
    void *l = tally_list(rt, 0);
    for (int i = 0; i < 10; i++)
        tally_list_append(l, tally_int(rt, i));
    void *it = tally_iter(l);
    void *x = tally_next(it);
    assert_int_equal(tally_int_value(x), 0);
    tally_decref(x);
    while (tally_list_size(l) > 3)
        tally_decref(tally_list_pop(l, -1));
    x = tally_next(it);
    assert_int_equal(tally_int_value(x), 1);
    tally_decref(x);
    x = tally_next(it);
    assert_int_equal(tally_int_value(x), 2);
    tally_decref(x);
    assert_null(tally_next(it)); /* past the new end */
    tally_list_append(l, tally_int(rt, 42));
    assert_null(tally_next(it)); /* ended for good, as Python's list iterator */
    tally_decref(it);
    tally_decref(l);
    tally_close(rt);
}

/* Other iterators go through the exported call: a range and a tuple. */
static void test_next_inline_other_iterators(void **state)
{
    (void)state;
    tally_rt *rt = open_rt();
    void *r = tally_range(rt, 0, 100, 1);
    size_t n;
    assert_non_null(r);
    assert_int_equal(sum_inline(r, &n), 4950);
    assert_int_equal(n, 100);
    void *t = tally_tuple_of(rt, 2, tally_int(rt, 5), tally_int(rt, 6));
    assert_int_equal(sum_inline(t, &n), 11);
    assert_int_equal(n, 2);
    void *one = tally_int(rt, 1);
    assert_null(tally_next(one)); /* not an iterator */
    assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
    tally_decref(r);
    tally_decref(t);
    tally_close(rt);
}

int main(void)
{
    unsetenv("TALLY_DEBUG");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_int_view_matches_library),
        cmocka_unit_test(test_int_inline_and_exported_agree),
        cmocka_unit_test(test_int_value_of_other_things),
        cmocka_unit_test(test_int_failure_reported),
        cmocka_unit_test(test_list_append_inline_grows_and_counts),
        cmocka_unit_test(test_list_inline_refuses_as_exported),
        cmocka_unit_test(test_list_append_inline_allocates_nothing),
        cmocka_unit_test(test_next_inline_and_exported_agree),
        cmocka_unit_test(test_next_inline_follows_changes),
        cmocka_unit_test(test_next_inline_other_iterators),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
