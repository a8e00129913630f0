/* test_types_str.c - the built-in int and str (tally/types.h).
 *
 * Ints: the small-int cache (one immortal object per value per runtime, at both
 * ends of the range; values just outside are new mortal objects each time), hash,
 * equality (with ints only) and repr across the whole int64_t range.
 * Strs: creation and lengths in bytes and code points for 1- to 4-byte sequences
 * and every boundary code point; strict UTF-8 validation (overlongs, surrogates,
 * code points above U+10FFFF, stray and missing continuation bytes), each
 * rejected with TALLY_EINVAL, the byte offset in the message and nothing
 * allocated; hashing and equality; repr escaping (Python's rules); format
 * (including output that is not UTF-8); concat; join with and without a
 * separator, of no items, with a non-str item or separator; join over an
 * iterator of this file's own type (many items, an item that is not a str, an
 * iterator that fails) and over a list; interning (one object per value, surviving the
 * original's release, growth of the table keeping every entry, a finalizer that
 * interns the same text while tally_str_intern_c allocates in a full heap); a size of
 * SIZE_MAX refused without a crash.
 * Failures: an allocation failure injected at every allocation of a scenario that
 * uses all of the above, in release and debug mode: each failure gives NULL with
 * the error set, a failed intern leaves its str mortal, and once everything is
 * released the heap holds exactly what a failure-free run keeps (the small ints
 * and interned strs, which are immortal).
 */
#define _GNU_SOURCE
#include "test_util.h"

#include <inttypes.h>

#include "tally/gc.h"
#include "tally/types.h"

static tally_rt *open_rt(void)
{
    return open_hosted(NULL, 0);
}

static size_t blocks_now(tally_rt *rt)
{
    return get_stats(rt).blocks_in_use;
}

/* Blocks in use once the collector has emptied the object free stacks. */
static size_t settled(tally_rt *rt)
{
    assert_true(tally_gc_collect(rt, 2) >= 0);
    return blocks_now(rt);
}

/* The repr of o as a C string in buf. */
static const char *repr_of(void *o, char *buf, size_t n)
{
    void *r = tally_repr(o);
    assert_non_null(r);
    snprintf(buf, n, "%s", tally_str_data(r));
    tally_decref(r);
    return buf;
}

static uint64_t hash_of(void *o)
{
    uint64_t h = 0;
    assert_int_equal(tally_hash(o, &h), 0);
    return h;
}

/* ---- an iterator over a C array of objects (borrowed), for join_iter -------------- */

typedef struct arr_iter {
    void **items;
    size_t n, i;
    size_t fail_at; /* next() fails when it reaches this index (SIZE_MAX: never) */
} arr_iter;

static int arr_iter_next(void *self, void **out)
{
    arr_iter *a = self;
    if (a->i == a->fail_at) {
        /* A user type cannot set the error directly: make a call that sets it. */
        (void)tally_str_n(tally_runtime_of(self), "\xff", 1);
        return -1;
    }
    if (a->i >= a->n)
        return 0;
    *out = a->items[a->i++];
    tally_incref(*out);
    return 1;
}

static const tally_type_ops arr_iter_ops = {.next = arr_iter_next};
static const tally_type arr_iter_type = {.name = "arr_iter", .size = sizeof(arr_iter),
                                         .ops = &arr_iter_ops};

static arr_iter *arr_iter_new(tally_rt *rt, void **items, size_t n, size_t fail_at)
{
    arr_iter *a = tally_new(rt, &arr_iter_type);
    if (a != NULL)
        *a = (arr_iter){items, n, 0, fail_at};
    return a;
}

/* ---- int ----------------------------------------------------------------------------- */

static void test_int_small_cache(void **state)
{
    (void)state;
    tally_rt *rt = open_rt();
    void *a = tally_int(rt, 7), *b = tally_int(rt, 7);
    assert_non_null(a);
    assert_ptr_equal(a, b);
    assert_true(tally_is_immortal(a));
    assert_int_equal(tally_int_value(a), 7);
    /* Both ends of the range are cached; made once, then never allocated again. */
    void *lo = tally_int(rt, -5), *hi = tally_int(rt, 256);
    assert_true(tally_is_immortal(lo) && tally_is_immortal(hi));
    size_t before = blocks_now(rt);
    for (int i = 0; i < 100; i++) {
        assert_ptr_equal(tally_int(rt, -5), lo);
        assert_ptr_equal(tally_int(rt, 256), hi);
        assert_ptr_equal(tally_int(rt, 7), a);
    }
    assert_int_equal(blocks_now(rt), before);
    tally_decref(a);
    tally_decref(b);
    assert_int_equal(tally_refcount(a), TALLY_RC_IMMORTAL);
    assert_int_equal(tally_int_value(tally_int(rt, 7)), 7);
    /* Another runtime has its own. */
    tally_rt *rt2 = open_rt();
    void *c = tally_int(rt2, 7);
    assert_ptr_not_equal(c, a);
    assert_ptr_equal(tally_runtime_of(c), rt2);
    tally_close(rt2);
    tally_close(rt);
}

static void test_int_large_distinct(void **state)
{
    (void)state;
    tally_rt *rt = open_rt();
    void *warm = tally_int(rt, 1000);
    tally_decref(warm);
    size_t base = settled(rt);
    const int64_t vals[] = {-6, 257, 1000, INT64_MIN, INT64_MAX};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        void *a = tally_int(rt, vals[i]), *b = tally_int(rt, vals[i]);
        assert_non_null(a);
        assert_non_null(b);
        assert_ptr_not_equal(a, b);
        assert_false(tally_is_immortal(a));
        assert_int_equal(tally_refcount(a), 1);
        assert_true(tally_int_value(a) == vals[i]);
        assert_int_equal(tally_eq(a, b), 1);
        assert_true(hash_of(a) == hash_of(b));
        tally_decref(a);
        tally_decref(b);
    }
    assert_int_equal(settled(rt), base); /* every one freed */
    tally_close(rt);
}

static void test_int_hash_eq_repr(void **state)
{
    (void)state;
    tally_rt *rt = open_rt();
    char buf[64];
    void *mn = tally_int(rt, INT64_MIN), *mx = tally_int(rt, INT64_MAX);
    void *zero = tally_int(rt, 0), *m1 = tally_int(rt, -1), *one = tally_int(rt, 1);
    assert_string_equal(repr_of(mn, buf, sizeof buf), "-9223372036854775808");
    assert_string_equal(repr_of(mx, buf, sizeof buf), "9223372036854775807");
    assert_string_equal(repr_of(zero, buf, sizeof buf), "0");
    assert_string_equal(repr_of(m1, buf, sizeof buf), "-1");
    assert_true(tally_is_int(mn) && tally_is_int(zero));
    assert_int_equal(tally_eq(mn, mx), 0);
    assert_int_equal(tally_eq(zero, one), 0);
    assert_int_equal(tally_eq(mn, mn), 1);
    /* Distinct values spread; equal values hash equal whichever object. */
    assert_true(hash_of(mn) != hash_of(mx));
    assert_true(hash_of(zero) != hash_of(one));
    assert_true(hash_of(m1) != hash_of(one));
    void *mn2 = tally_int(rt, INT64_MIN);
    assert_true(hash_of(mn2) == hash_of(mn));
    /* Equal hashes in another runtime too. */
    tally_rt *rt2 = open_rt();
    void *mn3 = tally_int(rt2, INT64_MIN);
    assert_true(hash_of(mn3) == hash_of(mn));
    tally_close(rt2);
    /* Ints equal only ints. */
    void *s = tally_str(rt, "0");
    assert_int_equal(tally_eq(zero, s), 0);
    assert_int_equal(tally_eq(s, zero), 0);
    assert_false(tally_is_int(s));
    assert_false(tally_is_int(NULL));
    assert_true(tally_int_value(s) == 0);
    tally_decref(s);
    tally_decref(mn);
    tally_decref(mn2);
    tally_decref(mx);
    tally_close(rt);
}

/* ---- str creation and validation ------------------------------------------------------ */

static void check_str(tally_rt *rt, const char *text, size_t bytes, size_t chars)
{
    void *s = tally_str(rt, text);
    assert_non_null(s);
    assert_true(tally_is_str(s));
    assert_int_equal(tally_str_bytes(s), bytes);
    assert_int_equal(tally_str_len(s), chars);
    assert_string_equal(tally_str_data(s), text);
    assert_ptr_not_equal(tally_str_data(s), text); /* a copy */
    tally_decref(s);
}

static void test_str_lengths(void **state)
{
    (void)state;
    tally_rt *rt = open_rt();
    check_str(rt, "", 0, 0);
    check_str(rt, "hello", 5, 5);
    check_str(rt, "caf\xc3\xa9", 5, 4);                      /* 2-byte */
    check_str(rt, "\xe2\x82\xac", 3, 1);                     /* euro, 3-byte */
    check_str(rt, "\xf0\x9f\x98\x80", 4, 1);                 /* emoji, 4-byte */
    check_str(rt, "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z", 11, 5);
    /* Long enough for the eight-bytes-at-a-time path, multi-byte sequences
     * straddling its words. */
    check_str(rt, "abcdefg\xc3\xa9hijklmn\xe2\x82\xacopqrstuvwxyz", 31, 28);
    /* Every boundary code point. */
    const char *edges[] = {"\x7f", "\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80", "\xed\x9f\xbf",
                           "\xee\x80\x80", "\xef\xbf\xbf", "\xf0\x90\x80\x80",
                           "\xf4\x8f\xbf\xbf"};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
        check_str(rt, edges[i], strlen(edges[i]), 1);
    /* str_n takes a prefix and NUL-terminates it; an embedded NUL is a character. */
    void *s = tally_str_n(rt, "abcdef", 3);
    assert_string_equal(tally_str_data(s), "abc");
    assert_int_equal(tally_str_len(s), 3);
    tally_decref(s);
    s = tally_str_n(rt, "a\0b", 3);
    assert_int_equal(tally_str_bytes(s), 3);
    assert_int_equal(tally_str_len(s), 3);
    assert_memory_equal(tally_str_data(s), "a\0b", 4);
    tally_decref(s);
    s = tally_str_n(rt, NULL, 0);
    assert_non_null(s);
    assert_string_equal(tally_str_data(s), "");
    tally_decref(s);
    tally_close(rt);
}

typedef struct bad_utf8 {
    const char *bytes;
    size_t offset;
} bad_utf8;

static void test_str_invalid_utf8(void **state)
{
    (void)state;
    static const bad_utf8 cases[] = {
        {"\x80", 0},                 /* continuation byte without a lead */
        {"ab\xbf", 2},
        {"ab\xc0\x80", 2},           /* overlong NUL */
        {"\xc1\xbf", 0},             /* overlong U+007F */
        {"\xe0\x80\x80", 0},         /* overlong 3-byte */
        {"x\xe0\x9f\xbf", 1},        /* overlong U+07FF */
        {"\xf0\x8f\xbf\xbf", 0},     /* overlong U+FFFF */
        {"\xed\xa0\x80", 0},         /* U+D800 */
        {"abc\xed\xbf\xbf", 3},      /* U+DFFF */
        {"\xf4\x90\x80\x80", 0},     /* U+110000 */
        {"\xf5\x80\x80\x80", 0},
        {"\xfe", 0},
        {"\xff", 0},
        {"abc\xc3", 3},              /* truncated at the end */
        {"\xe2\x82", 0},
        {"\xf0\x9f\x98", 0},
        {"\xe2\x28\xa1", 0},         /* a non-continuation byte inside */
        {"\xf0\x9f\x98z", 0},
        {"\xc3\xa9\xc3", 2},
        {"abcdefgh\xc3(", 8},        /* after the fast path's first word */
        {"abcdefghijklmnop\xf4\x90\x80\x80qrstuvwx", 16},
    };
    tally_rt *rt = open_rt();
    void *warm = tally_str(rt, "warm"); /* the type is registered */
    tally_decref(warm);
    size_t base = settled(rt);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tally_clear_error(rt);
        void *s = tally_str(rt, cases[i].bytes);
        if (s != NULL)
            fail_msg("case %zu accepted", i);
        assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
        char want[64];
        snprintf(want, sizeof want, "offset %zu", cases[i].offset);
        if (strstr(tally_last_error_message(rt), want) == NULL)
            fail_msg("case %zu: '%s' lacks '%s'", i, tally_last_error_message(rt), want);
        /* The same through str_n and through format. */
        tally_clear_error(rt);
        assert_null(tally_str_n(rt, cases[i].bytes, strlen(cases[i].bytes)));
        assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
        tally_clear_error(rt);
        assert_null(tally_str_format(rt, "%s", cases[i].bytes));
        assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
    }
    /* A valid prefix of an invalid buffer is fine. */
    void *s = tally_str_n(rt, "ab\xc3\xa9\xc3", 4);
    assert_non_null(s);
    assert_int_equal(tally_str_len(s), 3);
    tally_decref(s);
    tally_clear_error(rt);
    assert_null(tally_str(rt, NULL));
    assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
    assert_int_equal(settled(rt), base);
    tally_close(rt);
}

static void test_str_huge(void **state)
{
    (void)state;
    tally_rt *rt = open_rt();
    size_t base = blocks_now(rt);
    const size_t sizes[] = {SIZE_MAX, SIZE_MAX - 1, SIZE_MAX / 2 + 1};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        tally_clear_error(rt);
        assert_null(tally_str_n(rt, "x", sizes[i]));
        assert_int_equal(tally_last_error(rt), TALLY_EOVERFLOW);
    }
    assert_int_equal(blocks_now(rt), base);
    tally_close(rt);
}

/* ---- hashing, equality, repr ----------------------------------------------------------- */

static void test_str_hash_eq(void **state)
{
    (void)state;
    tally_rt *rt = open_rt();
    void *a = tally_str(rt, "hello, world");
    void *b = tally_str_format(rt, "hello, %s", "world");
    void *c = tally_str(rt, "hello, worle");
    void *d = tally_str(rt, "hello, world!");
    void *e = tally_str_n(rt, "hello, world\0", 13);
    void *e1 = tally_str(rt, ""), *e2 = tally_str_n(rt, "x", 0);
    assert_ptr_not_equal(a, b);
    assert_true(hash_of(a) == hash_of(b));
    assert_int_equal(tally_eq(a, b), 1);
    assert_int_equal(tally_eq(b, a), 1);
    assert_int_equal(tally_eq(a, a), 1);
    assert_int_equal(tally_eq(a, c), 0);
    assert_int_equal(tally_eq(a, d), 0);
    assert_int_equal(tally_eq(d, a), 0);
    assert_int_equal(tally_eq(a, e), 0); /* a trailing NUL is a character */
    assert_true(hash_of(a) != hash_of(c));
    assert_true(hash_of(a) != hash_of(d));
    assert_true(hash_of(a) != hash_of(e));
    assert_int_equal(tally_eq(e1, e2), 1);
    assert_true(hash_of(e1) == hash_of(e2));
    void *i = tally_int(rt, 5);
    assert_int_equal(tally_eq(a, i), 0);
    /* Short strings differing in one bit anywhere hash differently. */
    char t[20] = "abcdefghijklmnopq";
    void *base = tally_str(rt, t);
    for (size_t k = 0; k < 17; k++) {
        t[k] ^= 1;
        void *m = tally_str(rt, t);
        assert_true(hash_of(m) != hash_of(base));
        assert_int_equal(tally_eq(m, base), 0);
        tally_decref(m);
        t[k] ^= 1;
    }
    void *objs[] = {a, b, c, d, e, e1, e2, base};
    for (size_t k = 0; k < sizeof objs / sizeof objs[0]; k++)
        tally_decref(objs[k]);
    tally_close(rt);
}

static void check_repr(tally_rt *rt, const char *text, size_t n, const char *want)
{
    char buf[256];
    void *s = tally_str_n(rt, text, n);
    assert_non_null(s);
    assert_string_equal(repr_of(s, buf, sizeof buf), want);
    tally_decref(s);
}

static void test_str_repr(void **state)
{
    (void)state;
    tally_rt *rt = open_rt();
    check_repr(rt, "", 0, "''");
    check_repr(rt, "abc", 3, "'abc'");
    check_repr(rt, "it's", 4, "'it\\'s'");
    check_repr(rt, "a\\b", 3, "'a\\\\b'");
    check_repr(rt, "\n\r\t", 3, "'\\n\\r\\t'");
    check_repr(rt, "\x01x\x1f\x7f", 4, "'\\x01x\\x1f\\x7f'");
    check_repr(rt, "a\0b", 3, "'a\\x00b'");
    check_repr(rt, "caf\xc3\xa9 \xe2\x82\xac\xf0\x9f\x98\x80", 13,
               "'caf\xc3\xa9 \xe2\x82\xac\xf0\x9f\x98\x80'");
    check_repr(rt, "\xc2\x85\xc2\xa0", 4, "'\\x85\xc2\xa0'"); /* C1 control; NBSP kept */
    check_repr(rt, "\"", 1, "'\"'");
    tally_close(rt);
}

/* ---- building strs ---------------------------------------------------------------------- */

static void test_str_format(void **state)
{
    (void)state;
    tally_rt *rt = open_rt();
    void *s = tally_str_format(rt, "%d-%s-%.2f-%" PRId64, 42, "caf\xc3\xa9", 1.5, INT64_MIN);
    assert_string_equal(tally_str_data(s), "42-caf\xc3\xa9-1.50--9223372036854775808");
    assert_int_equal(tally_str_len(s), tally_str_bytes(s) - 1);
    void *t = tally_str(rt, tally_str_data(s));
    assert_int_equal(tally_eq(s, t), 1);
    assert_true(hash_of(s) == hash_of(t));
    tally_decref(s);
    tally_decref(t);
    /* Empty output; long output. */
    s = tally_str_format(rt, "%s", "");
    assert_int_equal(tally_str_bytes(s), 0);
    tally_decref(s);
    s = tally_str_format(rt, "%5000d", 7);
    assert_int_equal(tally_str_bytes(s), 5000);
    assert_int_equal(tally_str_data(s)[4999], '7');
    tally_decref(s);
    /* Output that is not UTF-8 is refused and leaves nothing behind. */
    size_t base = settled(rt);
    tally_clear_error(rt);
    assert_null(tally_str_format(rt, "ok %c", 0xff));
    assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
    assert_non_null(strstr(tally_last_error_message(rt), "offset 3"));
    assert_int_equal(settled(rt), base);
    tally_close(rt);
}

static void test_str_concat(void **state)
{
    (void)state;
    tally_rt *rt = open_rt();
    void *a = tally_str(rt, "ab"), *b = tally_str(rt, "c\xc3\xa9"), *e = tally_str(rt, "");
    void *ab = tally_str_concat(rt, a, b);
    assert_string_equal(tally_str_data(ab), "abc\xc3\xa9");
    assert_int_equal(tally_str_bytes(ab), 5);
    assert_int_equal(tally_str_len(ab), 4);
    void *ref = tally_str(rt, "abc\xc3\xa9");
    assert_int_equal(tally_eq(ab, ref), 1);
    assert_true(hash_of(ab) == hash_of(ref));
    void *ae = tally_str_concat(rt, a, e), *ea = tally_str_concat(rt, e, a);
    void *ee = tally_str_concat(rt, e, e);
    assert_int_equal(tally_eq(ae, a), 1);
    assert_int_equal(tally_eq(ea, a), 1);
    assert_int_equal(tally_str_bytes(ee), 0);
    size_t base = settled(rt);
    void *i = tally_int(rt, 1000);
    tally_clear_error(rt);
    assert_null(tally_str_concat(rt, a, i));
    assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
    tally_clear_error(rt);
    assert_null(tally_str_concat(rt, i, a));
    assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
    tally_decref(i);
    assert_int_equal(settled(rt), base);
    void *objs[] = {a, b, e, ab, ref, ae, ea, ee};
    for (size_t k = 0; k < sizeof objs / sizeof objs[0]; k++)
        tally_decref(objs[k]);
    tally_close(rt);
}

static void test_str_join(void **state)
{
    (void)state;
    tally_rt *rt = open_rt();
    void *sep = tally_str(rt, ", ");
    void *items[] = {tally_str(rt, "a"), tally_str(rt, "\xc3\xa9t\xc3\xa9"), tally_str(rt, ""),
                     tally_str(rt, "z")};
    void *j = tally_str_join(rt, sep, 4, items);
    assert_string_equal(tally_str_data(j), "a, \xc3\xa9t\xc3\xa9, , z");
    assert_int_equal(tally_str_len(j), 11);
    void *ref = tally_str(rt, "a, \xc3\xa9t\xc3\xa9, , z");
    assert_true(hash_of(j) == hash_of(ref));
    tally_decref(j);
    tally_decref(ref);
    j = tally_str_join(rt, NULL, 4, items);
    assert_string_equal(tally_str_data(j), "a\xc3\xa9t\xc3\xa9z");
    assert_int_equal(tally_str_len(j), 5);
    tally_decref(j);
    j = tally_str_join(rt, sep, 1, items);
    assert_string_equal(tally_str_data(j), "a");
    tally_decref(j);
    j = tally_str_join(rt, sep, 0, NULL);
    assert_non_null(j);
    assert_int_equal(tally_str_bytes(j), 0);
    assert_string_equal(tally_str_data(j), "");
    tally_decref(j);
    /* A non-str item or separator: TALLY_EINVAL, the index named, nothing allocated. */
    void *i = tally_int(rt, 1000);
    void *mixed[] = {items[0], items[1], i};
    size_t base = settled(rt);
    tally_clear_error(rt);
    assert_null(tally_str_join(rt, sep, 3, mixed));
    assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
    assert_non_null(strstr(tally_last_error_message(rt), "item 2"));
    tally_clear_error(rt);
    assert_null(tally_str_join(rt, i, 2, items));
    assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
    void *with_null[] = {items[0], NULL};
    tally_clear_error(rt);
    assert_null(tally_str_join(rt, sep, 2, with_null));
    assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
    assert_int_equal(settled(rt), base);
    tally_decref(i);
    for (size_t k = 0; k < 4; k++)
        tally_decref(items[k]);
    tally_decref(sep);
    tally_close(rt);
}

static void test_str_join_iter(void **state)
{
    (void)state;
    tally_rt *rt = open_rt();
    enum { N = 100 }; /* beyond the first growths of the collection array */
    void *items[N];
    for (size_t k = 0; k < N; k++)
        items[k] = tally_str_format(rt, "%zu", k);
    void *sep = tally_str(rt, "-");
    size_t base = settled(rt);

    arr_iter *it = arr_iter_new(rt, items, 3, SIZE_MAX);
    void *j = tally_str_join_iter(rt, sep, it);
    assert_string_equal(tally_str_data(j), "0-1-2");
    assert_int_equal(it->i, 3); /* consumed */
    tally_decref(j);
    tally_decref(it);

    it = arr_iter_new(rt, items, N, SIZE_MAX);
    j = tally_str_join_iter(rt, NULL, it);
    void *whole = tally_str_join(rt, NULL, N, items);
    assert_int_equal(tally_eq(j, whole), 1);
    assert_int_equal(tally_str_bytes(j), 10 + 90 * 2);
    tally_decref(whole);
    tally_decref(j);
    tally_decref(it);

    it = arr_iter_new(rt, items, 0, SIZE_MAX);
    j = tally_str_join_iter(rt, sep, it);
    assert_int_equal(tally_str_bytes(j), 0);
    tally_decref(j);
    tally_decref(it);
    assert_int_equal(settled(rt), base);

    /* A non-str item, an iterator that fails, a non-iterable: NULL, the error,
     * every collected item released. */
    void *i = tally_int(rt, 1000);
    void *mixed[40];
    for (size_t k = 0; k < 40; k++)
        mixed[k] = k == 30 ? i : items[k];
    size_t base2 = settled(rt);
    it = arr_iter_new(rt, mixed, 40, SIZE_MAX);
    tally_clear_error(rt);
    assert_null(tally_str_join_iter(rt, sep, it));
    assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
    assert_non_null(strstr(tally_last_error_message(rt), "item 30"));
    tally_decref(it);
    it = arr_iter_new(rt, items, N, 50);
    tally_clear_error(rt);
    assert_null(tally_str_join_iter(rt, sep, it));
    assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
    tally_decref(it);
    tally_clear_error(rt);
    assert_null(tally_str_join_iter(rt, sep, i));
    assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
    assert_int_equal(settled(rt), base2);
    for (size_t k = 0; k < N; k++)
        assert_int_equal(tally_refcount(items[k]), 1);
    tally_decref(i);
    for (size_t k = 0; k < N; k++)
        tally_decref(items[k]);
    tally_decref(sep);
    tally_close(rt);
}

static void test_str_join_list(void **state)
{
    (void)state;
    tally_rt *rt = open_rt();
    void *l = tally_list(rt, 0);
    const char *words[] = {"x", "y\xc3\xa9", "z"};
    for (size_t k = 0; k < 3; k++) {
        void *s = tally_str(rt, words[k]);
        assert_int_equal(tally_list_append(l, s), 0);
        tally_decref(s);
    }
    void *sep = tally_str(rt, "/");
    void *j = tally_str_join_iter(rt, sep, l);
    assert_string_equal(tally_str_data(j), "x/y\xc3\xa9/z");
    assert_int_equal(tally_str_len(j), 6);
    tally_decref(j);
    tally_decref(sep);
    tally_decref(l);
    tally_close(rt);
}

/* ---- interning -------------------------------------------------------------------------- */

static void test_str_intern(void **state)
{
    (void)state;
    tally_rt *rt = open_rt();
    void *a = tally_str(rt, "hello"), *b = tally_str(rt, "hello");
    assert_ptr_not_equal(a, b);
    void *ia = tally_str_intern(a);
    assert_ptr_equal(ia, a); /* the first becomes the interned one */
    assert_true(tally_is_immortal(a));
    void *ib = tally_str_intern(b);
    assert_ptr_equal(ib, a);
    assert_false(tally_is_immortal(b));
    assert_int_equal(tally_refcount(b), 1);
    tally_decref(b); /* freed: it was not interned */
    assert_ptr_equal(tally_str_intern_c(rt, "hello"), a);
    assert_ptr_equal(tally_str_intern(a), a); /* already interned */
    void *w = tally_str_intern_c(rt, "world");
    assert_ptr_not_equal(w, a);
    assert_string_equal(tally_str_data(w), "world");
    assert_true(tally_is_immortal(w));
    /* Survives the release of the original and of every reference handed out. */
    void *x = tally_str_format(rt, "tmp-%d", 1);
    void *ix = tally_str_intern(x);
    tally_decref(x);
    tally_decref(ix);
    tally_decref(ia);
    tally_decref(a);
    void *y = tally_str(rt, "tmp-1");
    assert_ptr_equal(tally_str_intern(y), ix);
    assert_string_equal(tally_str_data(ix), "tmp-1");
    tally_decref(y);
    /* Known text is found without allocating. */
    size_t before = blocks_now(rt);
    assert_ptr_equal(tally_str_intern_c(rt, "tmp-1"), ix);
    assert_int_equal(blocks_now(rt), before);
    /* The table grows many times and keeps every entry. */
    enum { M = 2000 };
    static void *kept[M];
    for (size_t k = 0; k < M; k++) {
        char t[32];
        snprintf(t, sizeof t, "key-%zu", k);
        kept[k] = tally_str_intern_c(rt, t);
        assert_non_null(kept[k]);
    }
    for (size_t k = 0; k < M; k++) {
        char t[32];
        snprintf(t, sizeof t, "key-%zu", k);
        void *s = tally_str(rt, t);
        assert_ptr_equal(tally_str_intern(s), kept[k]);
        tally_decref(s);
    }
    assert_ptr_equal(tally_str_intern_c(rt, "hello"), a);
    assert_ptr_equal(tally_str_intern_c(rt, "world"), w);
    /* Strs in large blocks (several pools) and huge ones (their own mapping) are
     * found by their handle too. */
    static const size_t big[] = {100000, 3u << 20};
    for (size_t k = 0; k < 2; k++) {
        char *text = malloc(big[k] + 1);
        assert_non_null(text);
        memset(text, 'a' + (int)k, big[k]);
        text[big[k]] = '\0';
        void *s1 = tally_str_intern_c(rt, text);
        assert_non_null(s1);
        void *s2 = tally_str(rt, text);
        assert_ptr_equal(tally_str_intern(s2), s1);
        tally_decref(s2);
        assert_ptr_equal(tally_str_intern_c(rt, text), s1);
        free(text);
    }
    /* A str made by intern_c is whole: lengths, text and hash as tally_str's. */
    void *ic = tally_str_intern_c(rt, "h\xc3\xa9llo, interned");
    void *plain = tally_str(rt, "h\xc3\xa9llo, interned");
    assert_non_null(ic);
    assert_non_null(plain);
    assert_ptr_not_equal(ic, plain);
    assert_int_equal(tally_str_bytes(ic), tally_str_bytes(plain));
    assert_int_equal(tally_str_len(ic), 15);
    assert_string_equal(tally_str_data(ic), tally_str_data(plain));
    uint64_t h1, h2;
    assert_int_equal(tally_hash(ic, &h1), 0);
    assert_int_equal(tally_hash(plain, &h2), 0);
    assert_true(h1 == h2);
    assert_true(tally_eq(ic, plain) == 1);
    assert_ptr_equal(tally_str_intern(plain), ic);
    tally_decref(plain);

    /* Errors. */
    void *i = tally_int(rt, 1000);
    tally_clear_error(rt);
    assert_null(tally_str_intern(i));
    assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
    tally_clear_error(rt);
    assert_null(tally_str_intern_c(rt, "bad \xff"));
    assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
    tally_decref(i);
    tally_close(rt);
}

/* A str interned in one runtime is not visible from another. */
static void test_str_intern_per_runtime(void **state)
{
    (void)state;
    tally_rt *r1 = open_rt(), *r2 = open_rt();
    void *a = tally_str_intern_c(r1, "shared"), *b = tally_str_intern_c(r2, "shared");
    assert_ptr_not_equal(a, b);
    assert_ptr_equal(tally_runtime_of(a), r1);
    assert_ptr_equal(tally_runtime_of(b), r2);
    tally_close(r1);
    tally_close(r2);
}

/* ---- failures at every allocation --------------------------------------------------------- */

#define SC_HELD 64
#define SC_KEYS 40 /* interned in the scenario: the table grows twice */

typedef struct scen {
    tally_rt *rt;
    void *held[SC_HELD];
    size_t n;
    int failed;
    int bad;        /* a failure without the error set, or a result that is wrong */
} scen;

/* Keeps o (the result of the step just run); a NULL result must carry an error. */
static void *sc_keep(scen *sc, void *o)
{
    if (o == NULL) {
        sc->failed = 1;
        if (tally_last_error(sc->rt) == TALLY_OK)
            sc->bad = 1;
    } else if (sc->n < SC_HELD) {
        sc->held[sc->n++] = o;
    } else {
        sc->bad = 1;
    }
    return o;
}

/* Runs expr unless an earlier step failed, its result kept in sc. */
#define STEP(sc, expr) \
    ((sc)->failed ? NULL : (tally_clear_error((sc)->rt), sc_keep((sc), (expr))))

static void scenario_strs(scen *sc)
{
    tally_rt *rt = sc->rt;
    void *s1 = STEP(sc, tally_str(rt, "h\xc3\xa9llo"));
    void *s2 = STEP(sc, tally_str_format(rt, "%s-%d", "x", 42));
    void *sep = STEP(sc, tally_str_n(rt, ", ", 2));
    STEP(sc, s1 && s2 ? tally_str_concat(rt, s1, s2) : NULL);
    void *items[] = {s1, s2, sep};
    STEP(sc, tally_str_join(rt, sep, 3, items));
    arr_iter *it = STEP(sc, arr_iter_new(rt, items, 3, SIZE_MAX));
    STEP(sc, tally_str_join_iter(rt, sep, it));
    STEP(sc, s1 ? tally_repr(s1) : NULL);
    if (!sc->failed) {
        tally_clear_error(rt);
        void *i1 = tally_str_intern(s1);
        if (i1 == NULL) {
            sc->failed = 1;
            /* A failed intern leaves s1 as it was. */
            if (tally_last_error(rt) == TALLY_OK || tally_is_immortal(s1))
                sc->bad = 1;
        } else if (i1 != s1) {
            sc->bad = 1;
        }
    }
}

static void scenario(scen *sc)
{
    tally_rt *rt = sc->rt;
    void *small = STEP(sc, tally_int(rt, 5));
    void *big = STEP(sc, tally_int(rt, (int64_t)1 << 40));
    STEP(sc, big ? tally_repr(big) : NULL);
    if (small != NULL && tally_int_value(small) != 5)
        sc->bad = 1;
    scenario_strs(sc);
    for (int k = 0; k < SC_KEYS && !sc->failed; k++) {
        char t[32];
        snprintf(t, sizeof t, "key-%d", k);
        tally_clear_error(rt);
        if (tally_str_intern_c(rt, t) == NULL) {
            sc->failed = 1;
            sc->bad |= tally_last_error(rt) == TALLY_OK;
        }
    }
}

static void scenario_release(scen *sc)
{
    while (sc->n > 0)
        tally_decref(sc->held[--sc->n]);
}

/* What a failure-free run keeps for good: the small int, the interned strs, and
 * the types registered.  Done after each run, so every run ends the same. */
static void scenario_complete(tally_rt *rt)
{
    assert_non_null(tally_int(rt, 5));
    assert_non_null(tally_str_intern_c(rt, "h\xc3\xa9llo"));
    for (int k = 0; k < SC_KEYS; k++) {
        char t[32];
        snprintf(t, sizeof t, "key-%d", k);
        assert_non_null(tally_str_intern_c(rt, t));
    }
    arr_iter *it = arr_iter_new(rt, NULL, 0, SIZE_MAX);
    assert_non_null(it);
    tally_decref(it);
}

static void fault_every_allocation(int debug)
{
    /* The reference: the blocks a run without failures leaves behind. */
    tally_rt *rt = open_hosted(NULL, debug);
    scen sc = {.rt = rt};
    scenario(&sc);
    assert_false(sc.failed);
    assert_false(sc.bad);
    scenario_release(&sc);
    scenario_complete(rt);
    size_t want = settled(rt);
    size_t want_bytes = get_stats(rt).bytes_in_use;
    tally_close(rt);

    unsigned long n;
    for (n = 1;; n++) {
        rt = open_hosted(NULL, debug);
        sc = (scen){.rt = rt};
        tally_fault_inject(rt, TALLY_FAULT_ALLOC, n, 0);
        scenario(&sc);
        unsigned long failures = tally_fault_failures(rt, TALLY_FAULT_ALLOC);
        tally_fault_inject(rt, TALLY_FAULT_ALLOC, 0, 0);
        if (sc.bad)
            fail_msg("failure %lu: wrong result or no error", n);
        /* The injected failure was reported, and only it. */
        assert_int_equal(sc.failed, failures > 0);
        scenario_release(&sc);
        scenario_complete(rt);
        if (settled(rt) != want || get_stats(rt).bytes_in_use != want_bytes)
            fail_msg("failure %lu: %zu blocks in use, want %zu", n, settled(rt), want);
        assert_int_equal(tally_heap_check(rt), 0);
        tally_close(rt);
        if (!sc.failed)
            break;
    }
    assert_true(n > SC_KEYS); /* every allocation of the scenario was tried */
}

static void test_fault_every_allocation_release(void **state)
{
    (void)state;
    fault_every_allocation(0);
}

static void test_fault_every_allocation_debug(void **state)
{
    (void)state;
    fault_every_allocation(1);
}

/* The intern table cannot grow: NULL with the error, the str stays usable and
 * mortal, and a later attempt succeeds. */
static void test_intern_growth_failure(void **state)
{
    (void)state;
    tally_rt *rt = open_rt();
    void *s = tally_str(rt, "lonely");
    tally_fault_inject(rt, TALLY_FAULT_ALLOC, 1, 0);
    tally_clear_error(rt);
    assert_null(tally_str_intern(s));
    assert_int_not_equal(tally_last_error(rt), TALLY_OK);
    assert_false(tally_is_immortal(s));
    assert_int_equal(tally_refcount(s), 1);
    assert_string_equal(tally_str_data(s), "lonely");
    assert_ptr_equal(tally_str_intern(s), s);
    assert_true(tally_is_immortal(s));
    tally_close(rt);
}

/* ---- interning while a collection's finalizers intern ------------------------------ */

/* A ring node whose finalizer interns g_held: user code that runs inside the
 * allocation of tally_str_intern_c, when the heap is full and collects. */
typedef struct ring {
    struct ring *next;
} ring;

static void *g_held;
static int g_finalized;

static void ring_traverse(void *self, tally_visit_fn visit, void *arg)
{
    ring *r = self;
    if (r->next != NULL)
        visit(r->next, arg);
}

static void ring_clear(void *self)
{
    tally_setref(&((ring *)self)->next, NULL);
}

static void ring_finalize(void *self)
{
    (void)self;
    if (g_finalized++ == 0)
        assert_ptr_equal(tally_str_intern(g_held), g_held);
}

static const tally_type RING = {
    .name = "ring",
    .size = sizeof(ring),
    .flags = TALLY_TYPE_CONTAINER,
    .traverse = ring_traverse,
    .clear = ring_clear,
    .finalize = ring_finalize,
};

static _Alignas(65536) unsigned char g_fullbuf[2 * 1024 * 1024];

/* tally_str_intern_c found no entry, then its allocation ran a collection whose
 * finalizer interned the same text: the result is that str, not a second one
 * written over (or beside) it. */
static void test_intern_c_while_finalizer_interns(void **state)
{
    (void)state;
    const char *text = "the same text, interned by a finalizer meanwhile";
    tally_rt *rt = open_fixed(g_fullbuf, sizeof g_fullbuf, NULL, 0);
    assert_non_null(tally_str_intern_c(rt, "warm")); /* the table exists, with room */
    g_held = tally_str(rt, text);
    g_finalized = 0;
    assert_non_null(g_held);
    /* Fill the heap with a ring (alive), then with strs of the text's size class. */
    ring *first = tally_new(rt, &RING), *prev = first, *x;
    assert_non_null(first);
    while ((x = tally_new(rt, &RING)) != NULL) {
        prev->next = x;
        prev = x;
    }
    prev->next = first;
    tally_incref(first);
    void **fill = malloc(100000 * sizeof *fill);
    size_t nfill = 0;
    while (nfill < 100000 && (fill[nfill] = tally_str(rt, text)) != NULL)
        nfill++;
    assert_true(nfill < 100000);
    assert_int_equal(g_finalized, 0);
    tally_decref(first); /* the ring is garbage, not yet collected */
    tally_clear_error(rt);
    void *r = tally_str_intern_c(rt, text);
    assert_true(g_finalized > 0);
    assert_ptr_equal(r, g_held);
    assert_ptr_equal(tally_str_intern_c(rt, text), g_held);
    for (size_t i = 0; i < nfill; i++)
        tally_decref(fill[i]);
    free(fill);
    assert_int_equal(tally_heap_check(rt), 0);
    tally_close(rt);
}

int main(void)
{
    unsetenv("TALLY_DEBUG");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_int_small_cache),
        cmocka_unit_test(test_int_large_distinct),
        cmocka_unit_test(test_int_hash_eq_repr),
        cmocka_unit_test(test_str_lengths),
        cmocka_unit_test(test_str_invalid_utf8),
        cmocka_unit_test(test_str_huge),
        cmocka_unit_test(test_str_hash_eq),
        cmocka_unit_test(test_str_repr),
        cmocka_unit_test(test_str_format),
        cmocka_unit_test(test_str_concat),
        cmocka_unit_test(test_str_join),
        cmocka_unit_test(test_str_join_iter),
        cmocka_unit_test(test_str_join_list),
        cmocka_unit_test(test_str_intern),
        cmocka_unit_test(test_str_intern_per_runtime),
        cmocka_unit_test(test_fault_every_allocation_release),
        cmocka_unit_test(test_fault_every_allocation_debug),
        cmocka_unit_test(test_intern_growth_failure),
        cmocka_unit_test(test_intern_c_while_finalizer_interns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
