/* test_types_inline.c - the inline fast paths of tally/types.h against the
 * exported functions they stand for.
 *
 * Each inline call (tally_int, tally_int_value, tally_list_size,
 * tally_list_append, tally_next, tally_dict_get) must behave exactly as the
 * exported function, reached here as (tally_int)(...): the same results, errors
 * and counts, on the common path and on every case the inline code hands over (a
 * small int not made yet, a value outside the small range, a full list, a list at
 * the end of its iteration, a dict too small or not keyed by strs only, a key
 * equal to a stored one but not the same object, deleted entries on a probe,
 * objects of other types, NULL).  The views the inline code reads (the runtime's
 * small ints, a dict's table) must say what the library means, and the layout
 * constants must match (checked by the library at build time; here through
 * behaviour).
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

/* ---- dict lookups ------------------------------------------------------------------ */

#define DICT_KEYS 50000 /* enough for an index of 2^17 slots: the inline path's size */

static void **make_str_keys(tally_rt *rt, const char *prefix, size_t n)
{
    void **keys = test_malloc(n * sizeof *keys);
    char buf[48];
    for (size_t i = 0; i < n; i++) {
        snprintf(buf, sizeof buf, "%s%zu", prefix, i);
        keys[i] = tally_str(rt, buf);
        assert_non_null(keys[i]);
    }
    return keys;
}

static void free_keys(void **keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        tally_decref(keys[i]);
    test_free(keys);
}

/* d[keys[i]] = i for every i. */
static void *dict_of(tally_rt *rt, void **keys, size_t n)
{
    void *d = tally_dict(rt);
    assert_non_null(d);
    for (size_t i = 0; i < n; i++) {
        void *v = tally_int(rt, (int64_t)i);
        assert_int_equal(tally_dict_set(d, keys[i], v), 0);
        tally_decref(v);
    }
    return d;
}

/* The inline and exported lookups of key in d: the same answer and error. */
static void *get_both(tally_rt *rt, const void *d, void *key)
{
    tally_clear_error(rt);
    void *a = tally_dict_get(d, key);
    int ea = tally_last_error(rt);
    tally_clear_error(rt);
    void *b = (tally_dict_get)(d, key);
    assert_ptr_equal(a, b);
    assert_int_equal(ea, tally_last_error(rt));
    return a;
}

static void test_dict_view_matches_library(void **state)
{
    (void)state;
    tally_rt *rt = open_rt();
    void **keys = make_str_keys(rt, "key:", DICT_KEYS);
    void *d = dict_of(rt, keys, DICT_KEYS);
    const tally_dict_view *v = (const tally_dict_view *)d;
    /* The library's own layout numbers and sizes, as the header states them. */
    assert_int_equal(v->layout, TALLY_DICT_LAYOUT_STR);
    assert_true(v->log2 >= 16 && v->log2 <= 31);
    assert_true(((size_t)1 << v->log2) * 2 / 3 >= DICT_KEYS);
    assert_non_null(v->index);
    for (size_t i = 0; i < 3; i++) /* entries in insertion order, {key, value} */
        assert_ptr_equal(v->entries[2 * i], keys[i]);
    assert_int_equal(tally_int_value(v->entries[2 * 2 + 1]), 2);
    free_keys(keys, DICT_KEYS);
    tally_decref(d);
    tally_close(rt);
}

static void test_dict_get_inline_and_exported_agree(void **state)
{
    (void)state;
    tally_rt *rt = open_rt();
    void **keys = make_str_keys(rt, "key:", DICT_KEYS);
    void *d = dict_of(rt, keys, DICT_KEYS);
    for (size_t i = 0; i < DICT_KEYS; i++)
        assert_int_equal(tally_int_value(get_both(rt, d, keys[i])), (int64_t)i);
    /* The inline probe itself finds the very objects: it hands over only when
     * another key with the same tag comes first on the probe (rare with 14-bit
     * tags), so a probe sequence or tag read wrongly would show here. */
    const tally_dict_view *v = (const tally_dict_view *)d;
    size_t handed_over = 0;
    for (size_t i = 0; i < DICT_KEYS; i++) {
        void *const *e = tally_dict_find_same_(v, v->log2, keys[i]);
        if (e == NULL)
            handed_over++;
        else
            assert_ptr_equal(e[0], keys[i]);
    }
    assert_true(handed_over < DICT_KEYS / 1000);
    /* Equal text in other objects: the tag matches, the pointer does not, and the
     * exported call compares the text. */
    void **copies = make_str_keys(rt, "key:", DICT_KEYS);
    for (size_t i = 0; i < DICT_KEYS; i += 7)
        assert_int_equal(tally_int_value(get_both(rt, d, copies[i])), (int64_t)i);
    /* Absent keys: NULL and no error, whether the probe ends at an empty slot or at
     * another key's tag (many lookups make both happen). */
    void **absent = make_str_keys(rt, "none:", 4 * DICT_KEYS);
    for (size_t i = 0; i < 4 * DICT_KEYS; i++)
        assert_null(get_both(rt, d, absent[i]));
    free_keys(absent, 4 * DICT_KEYS);
    free_keys(copies, DICT_KEYS);
    free_keys(keys, DICT_KEYS);
    tally_decref(d);
    tally_close(rt);
}

/* Deleted entries leave dummies on probes: the inline loop passes over them and
 * still finds what follows, and does not find what was deleted. */
static void test_dict_get_inline_after_deletions(void **state)
{
    (void)state;
    tally_rt *rt = open_rt();
    void **keys = make_str_keys(rt, "key:", DICT_KEYS);
    void *d = dict_of(rt, keys, DICT_KEYS);
    for (size_t i = 0; i < DICT_KEYS; i += 3)
        assert_int_equal(tally_dict_delete(d, keys[i]), 1);
    assert_true(((const tally_dict_view *)d)->log2 >= 16); /* no rebuild yet */
    for (size_t i = 0; i < DICT_KEYS; i++) {
        void *v = get_both(rt, d, keys[i]);
        if (i % 3 == 0)
            assert_null(v);
        else
            assert_int_equal(tally_int_value(v), (int64_t)i);
    }
    /* Replaced values are read from the entry, not remembered. */
    void *big = tally_int(rt, 1 << 20);
    assert_int_equal(tally_dict_set(d, keys[1], big), 0);
    assert_ptr_equal(get_both(rt, d, keys[1]), big);
    tally_decref(big);
    free_keys(keys, DICT_KEYS);
    tally_decref(d);
    tally_close(rt);
}

/* Everything the inline path does not handle goes to the exported call: a small
 * dict, a dict with a non-str key, non-str keys, other objects, NULL. */
static void test_dict_get_inline_hands_over(void **state)
{
    (void)state;
    tally_rt *rt = open_rt();
    void **keys = make_str_keys(rt, "key:", DICT_KEYS);
    void *small = dict_of(rt, keys, 100);
    assert_true(((const tally_dict_view *)small)->log2 < 16);
    for (size_t i = 0; i < 100; i++)
        assert_int_equal(tally_int_value(get_both(rt, small, keys[i])), (int64_t)i);
    assert_null(get_both(rt, small, keys[100]));

    void *mixed = dict_of(rt, keys, DICT_KEYS);
    void *ikey = tally_int(rt, 123456789), *ival = tally_int(rt, -1);
    assert_int_equal(tally_dict_set(mixed, ikey, ival), 0);
    assert_int_not_equal(((const tally_dict_view *)mixed)->layout, TALLY_DICT_LAYOUT_STR);
    for (size_t i = 0; i < DICT_KEYS; i += 11)
        assert_int_equal(tally_int_value(get_both(rt, mixed, keys[i])), (int64_t)i);
    assert_ptr_equal(get_both(rt, mixed, ikey), ival);

    void *big = dict_of(rt, keys, DICT_KEYS);
    assert_null(get_both(rt, big, ikey)); /* an int key in a str-keyed dict */
    assert_int_equal(tally_last_error(rt), TALLY_OK);
    void *l = tally_list(rt, 0);
    assert_null(get_both(rt, l, keys[0])); /* not a dict */
    assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
    assert_null(get_both(rt, NULL, keys[0]));
    assert_null(get_both(rt, big, NULL));
    assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
    void *empty = tally_dict(rt);
    assert_null(get_both(rt, empty, keys[0]));
    assert_int_equal(tally_last_error(rt), TALLY_OK);
    tally_decref(empty);
    tally_decref(l);
    tally_decref(big);
    tally_decref(ikey);
    tally_decref(ival);
    tally_decref(mixed);
    tally_decref(small);
    free_keys(keys, DICT_KEYS);
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
        cmocka_unit_test(test_dict_view_matches_library),
        cmocka_unit_test(test_dict_get_inline_and_exported_agree),
        cmocka_unit_test(test_dict_get_inline_after_deletions),
        cmocka_unit_test(test_dict_get_inline_hands_over),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
