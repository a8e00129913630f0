/* test_types_bytes.c - bytes, bytearray and typed arrays (tally/types.h, "bytes and
 * bytearray", "typed arrays").
 *
 * Bytes: construction (empty, NUL-terminated copy, NULL data refused), hashing
 * (equal bytes hash equal, b'a' and b'a\0' differ), equality with bytes and
 * bytearray, Python's repr (quote choice, escapes), access to a non-bytes failing.
 * Bytearray: append (also of its own bytes, which move), resize (zero-filled
 * growth, shrink, release at 0), unhashable, equality, repr, 10^6 appends, sizeof
 * growing with the capacity.
 * Arrays: every kind at its limits for append_i64 and append_f64 (EOVERFLOW past
 * them, EINVAL for fractions and NaN), float32 overflow, get with negative and
 * out-of-range indexes, extend from raw data and from itself, slices against
 * Python's results, equality across kinds, repr of every kind (floats as Python
 * prints them), iteration (ints; a float array cannot be iterated yet), growth by
 * 10^6 appends, sizeof.  Huge sizes fail with an error and no crash.  Fault
 * injection at every allocation of a scenario: each failure gives -1/NULL with
 * the error set and the object unchanged, and the heap returns to its baseline.
 */
#define _GNU_SOURCE
#include "test_objects.h"

#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "tally/types.h"

#define LO PTRDIFF_MIN
#define HI PTRDIFF_MAX

/* ---- helpers ------------------------------------------------------------------- */

static void check_repr(void *o, const char *want)
{
    void *s = tally_repr(o);
    assert_non_null(s);
    assert_string_equal(tally_str_data(s), want);
    tally_decref(s);
}

/* A macro, so that a failure names the caller's line. */
#define check_error(rt, code)                                                              \
    do {                                                                                   \
        assert_int_equal(tally_last_error(rt), (code));                                    \
        tally_clear_error(rt);                                                             \
    } while (0)

static void *mkbytes(tally_rt *rt, const char *s, size_t n)
{
    void *b = tally_bytes(rt, s, n);
    assert_non_null(b);
    return b;
}

static void *mkba(tally_rt *rt, const char *s, size_t n)
{
    void *b = tally_bytearray(rt, s, n);
    assert_non_null(b);
    return b;
}

static void *mkarr(tally_rt *rt, tally_array_kind k)
{
    void *a = tally_array(rt, k, 0);
    assert_non_null(a);
    return a;
}

/* A new array of kind k holding the n ints of v. */
static void *arr_of(tally_rt *rt, tally_array_kind k, const int64_t *v, size_t n)
{
    void *a = mkarr(rt, k);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(tally_array_append_i64(a, v[i]), 0);
    return a;
}

static void check_items(void *a, const int64_t *want, size_t n)
{
    assert_int_equal(tally_array_size(a), n);
    for (size_t i = 0; i < n; i++) {
        int64_t v = -1;
        assert_int_equal(tally_array_get_i64(a, (ptrdiff_t)i, &v), 0);
        assert_int_equal(v, want[i]);
    }
}

static const tally_array_kind all_kinds[] = {TALLY_INT8,   TALLY_UINT8,  TALLY_INT16,
                                             TALLY_UINT16, TALLY_INT32,  TALLY_UINT32,
                                             TALLY_INT64,  TALLY_UINT64, TALLY_FLOAT32,
                                             TALLY_FLOAT64};
#define NKINDS (sizeof all_kinds / sizeof all_kinds[0])

/* Makes every type and singleton the scenarios use, then returns the settled
 * block count. */
static size_t bytes_baseline(tally_rt *rt)
{
    void *objs[] = {mkbytes(rt, "x", 1), mkba(rt, "y", 1), mkarr(rt, TALLY_INT8), NULL, NULL,
                    NULL};
    assert_int_equal(tally_array_append_i64(objs[2], 1), 0);
    objs[3] = tally_iter(objs[2]);
    assert_non_null(objs[3]);
    objs[4] = tally_repr(objs[2]);
    assert_non_null(objs[4]);
    for (int64_t v = -5; v <= 256; v++)
        tally_decref(tally_int(rt, v)); /* the small ints, made once */
    objs[5] = tally_int(rt, 100000);
    for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++)
        tally_decref(objs[i]);
    return settled_blocks(rt);
}

/* ---- bytes ----------------------------------------------------------------------- */

static void test_bytes_basic(void **state)
{
    tally_rt *rt = *state;
    size_t base = bytes_baseline(rt);
    void *b = mkbytes(rt, "ab\0c", 4);
    assert_true(tally_is_bytes(b));
    assert_false(tally_is_bytearray(b));
    assert_false(tally_gc_is_tracked(b));
    assert_int_equal(tally_bytes_size(b), 4);
    assert_memory_equal(tally_bytes_data(b), "ab\0c", 4);
    assert_int_equal(tally_bytes_data(b)[4], 0); /* NUL-terminated */
    void *e = tally_bytes(rt, NULL, 0);
    assert_non_null(e);
    assert_int_equal(tally_bytes_size(e), 0);
    assert_int_equal(tally_bytes_data(e)[0], 0);
    /* NULL data for some bytes */
    tally_clear_error(rt);
    assert_null(tally_bytes(rt, NULL, 3));
    check_error(rt, TALLY_EINVAL);
    /* not a bytes */
    void *ba = mkba(rt, "ab", 2);
    assert_null(tally_bytes_data(ba));
    check_error(rt, TALLY_EINVAL);
    assert_int_equal(tally_bytes_size(ba), 0);
    check_error(rt, TALLY_EINVAL);
    assert_null(tally_bytes_data(NULL));
    /* sizeof: the data is inline, nothing owned outside */
    void *big = tally_bytes(rt, NULL, 0);
    char buf[1000];
    memset(buf, 'z', sizeof buf);
    void *b1000 = mkbytes(rt, buf, sizeof buf);
    assert_true(tally_sizeof(b1000) >= 1000 + 1 + tally_sizeof(big) - 16);
    tally_decref(big);
    tally_decref(b1000);
    tally_decref(ba);
    tally_decref(e);
    tally_decref(b);
    assert_settled(rt, base);
}

static void test_bytes_hash_eq(void **state)
{
    tally_rt *rt = *state;
    size_t base = bytes_baseline(rt);
    void *a = mkbytes(rt, "hello, world", 12), *b = mkbytes(rt, "hello, world", 12);
    void *c = mkbytes(rt, "hello, worle", 12), *d = mkbytes(rt, "a", 1);
    void *d0 = mkbytes(rt, "a\0", 2), *ba = mkba(rt, "hello, world", 12);
    uint64_t ha, hb, hc, hd, hd0;
    assert_int_equal(tally_hash(a, &ha), 0);
    assert_int_equal(tally_hash(b, &hb), 0);
    assert_int_equal(tally_hash(c, &hc), 0);
    assert_int_equal(tally_hash(d, &hd), 0);
    assert_int_equal(tally_hash(d0, &hd0), 0);
    assert_true(ha == hb);
    assert_true(ha != hc);
    assert_true(hd != hd0);
    assert_int_equal(tally_eq(a, b), 1);
    assert_int_equal(tally_eq(a, c), 0);
    assert_int_equal(tally_eq(d, d0), 0);
    assert_int_equal(tally_eq(a, ba), 1); /* b'..' == bytearray(b'..'), both ways */
    assert_int_equal(tally_eq(ba, a), 1);
    assert_int_equal(tally_eq(ba, c), 0);
    void *s = tally_str(rt, "a");
    assert_int_equal(tally_eq(d, s), 0); /* b'a' != 'a' */
    /* bytearray is unhashable */
    uint64_t h;
    assert_int_equal(tally_hash(ba, &h), -1);
    check_error(rt, TALLY_EINVAL);
    /* many distinct bytes, few hash collisions */
    unsigned same = 0;
    uint64_t prev = 0;
    for (uint32_t i = 0; i < 1000; i++) {
        void *x = mkbytes(rt, (const char *)&i, sizeof i);
        assert_int_equal(tally_hash(x, &h), 0);
        same += i > 0 && h == prev;
        prev = h;
        tally_decref(x);
    }
    assert_int_equal(same, 0);
    void *objs[] = {a, b, c, d, d0, ba, s};
    for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++)
        tally_decref(objs[i]);
    assert_settled(rt, base);
}

static void test_bytes_repr(void **state)
{
    tally_rt *rt = *state;
    size_t base = bytes_baseline(rt);
    static const struct {
        const char *data;
        size_t n;
        const char *want;
    } cases[] = {
        {"", 0, "b''"},
        {"abc", 3, "b'abc'"},
        {"'", 1, "b\"'\""},
        {"'\"", 2, "b'\\'\"'"},
        {"\"", 1, "b'\"'"},
        {"\x00\xff\t\n\r\\\x07z\x7f \x1f~", 12, "b'\\x00\\xff\\t\\n\\r\\\\\\x07z\\x7f \\x1f~'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        void *b = mkbytes(rt, cases[i].data, cases[i].n);
        check_repr(b, cases[i].want);
        tally_decref(b);
        void *ba = mkba(rt, cases[i].data, cases[i].n);
        char want[128];
        snprintf(want, sizeof want, "bytearray(%s)", cases[i].want);
        check_repr(ba, want);
        tally_decref(ba);
    }
    assert_settled(rt, base);
}

/* ---- bytearray ------------------------------------------------------------------- */

static void test_bytearray_ops(void **state)
{
    tally_rt *rt = *state;
    size_t base = bytes_baseline(rt);
    void *b = tally_bytearray(rt, NULL, 0);
    assert_non_null(b);
    assert_true(tally_is_bytearray(b));
    assert_false(tally_is_bytes(b));
    assert_false(tally_gc_is_tracked(b));
    assert_int_equal(tally_bytearray_size(b), 0);
    assert_int_equal(tally_bytearray_append(b, "abc", 3), 0);
    assert_int_equal(tally_bytearray_append(b, NULL, 0), 0);
    tally_clear_error(rt);
    assert_int_equal(tally_bytearray_append(b, NULL, 2), -1);
    check_error(rt, TALLY_EINVAL);
    assert_int_equal(tally_bytearray_size(b), 3);
    assert_memory_equal(tally_bytearray_data(b), "abc", 3);
    /* its own bytes, several times, across moves of the block */
    for (int i = 0; i < 10; i++)
        assert_int_equal(tally_bytearray_append(b, tally_bytearray_data(b), 3), 0);
    assert_int_equal(tally_bytearray_size(b), 33);
    for (size_t i = 0; i < 33; i += 3)
        assert_memory_equal(tally_bytearray_data(b) + i, "abc", 3);
    assert_int_equal(tally_bytearray_append(b, tally_bytearray_data(b) + 1, 32), 0);
    assert_int_equal(tally_bytearray_size(b), 65);
    assert_memory_equal(tally_bytearray_data(b) + 33, "bcabc", 5);
    /* resize: growth zero-filled, shrink keeps the prefix */
    assert_int_equal(tally_bytearray_resize(b, 2), 0);
    assert_int_equal(tally_bytearray_resize(b, 100), 0);
    assert_int_equal(tally_bytearray_size(b), 100);
    assert_memory_equal(tally_bytearray_data(b), "ab", 2);
    assert_true(all_bytes_are(tally_bytearray_data(b) + 2, 98, 0));
    char want[600] = "bytearray(b'ab";
    for (int i = 0; i < 98; i++)
        strcat(want, "\\x00");
    strcat(want, "')");
    check_repr(b, want);
    size_t big = tally_sizeof(b);
    assert_int_equal(tally_bytearray_resize(b, 0), 0); /* the block is given back */
    assert_int_equal(tally_bytearray_size(b), 0);
    assert_true(tally_sizeof(b) < big);
    assert_true(tally_sizeof(b) + 100 <= big);
    /* equality with bytearray and bytes */
    void *c = mkba(rt, "xy", 2), *d = mkbytes(rt, "xy", 2), *e = mkba(rt, "xz", 2);
    assert_int_equal(tally_bytearray_append(b, "xy", 2), 0);
    assert_int_equal(tally_eq(b, c), 1);
    assert_int_equal(tally_eq(b, d), 1);
    assert_int_equal(tally_eq(b, e), 0);
    void *empty1 = mkba(rt, NULL, 0), *empty2 = mkbytes(rt, NULL, 0);
    assert_int_equal(tally_eq(empty1, empty2), 1);
    /* not a bytearray */
    assert_int_equal(tally_bytearray_append(d, "x", 1), -1);
    check_error(rt, TALLY_EINVAL);
    assert_int_equal(tally_bytearray_resize(d, 5), -1);
    check_error(rt, TALLY_EINVAL);
    assert_null(tally_bytearray_data(d));
    check_error(rt, TALLY_EINVAL);
    assert_int_equal(tally_bytearray_size(d), 0);
    check_error(rt, TALLY_EINVAL);
    void *objs[] = {b, c, d, e, empty1, empty2};
    for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++)
        tally_decref(objs[i]);
    assert_settled(rt, base);
}

static void test_bytearray_growth(void **state)
{
    tally_rt *rt = *state;
    size_t base = bytes_baseline(rt);
    void *b = mkba(rt, NULL, 0);
    size_t n = 1000000, last = tally_sizeof(b), grew = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)(i * 7);
        assert_int_equal(tally_bytearray_append(b, &c, 1), 0);
        size_t s = tally_sizeof(b);
        assert_true(s >= last);
        grew += s > last;
        last = s;
    }
    assert_true(last >= n);
    assert_true(grew > 10 && grew < 200); /* amortised: few reallocations */
    const uint8_t *d = tally_bytearray_data(b);
    for (size_t i = 0; i < n; i++)
        if (d[i] != (uint8_t)(i * 7))
            fail_msg("byte %zu is %u", i, d[i]);
    tally_decref(b);
    assert_settled(rt, base);
}

/* ---- typed arrays: kinds and limits --------------------------------------------------- */

typedef struct kind_info {
    tally_array_kind kind;
    size_t itemsize;
    int64_t min;
    uint64_t max;
    const char *code;
} kind_info;

static const kind_info kinds[] = {
    {TALLY_INT8, 1, INT8_MIN, INT8_MAX, "b"},
    {TALLY_UINT8, 1, 0, UINT8_MAX, "B"},
    {TALLY_INT16, 2, INT16_MIN, INT16_MAX, "h"},
    {TALLY_UINT16, 2, 0, UINT16_MAX, "H"},
    {TALLY_INT32, 4, INT32_MIN, INT32_MAX, "i"},
    {TALLY_UINT32, 4, 0, UINT32_MAX, "I"},
    {TALLY_INT64, 8, INT64_MIN, INT64_MAX, "q"},
    {TALLY_UINT64, 8, 0, UINT64_MAX, "Q"},
};

static void test_array_int_limits(void **state)
{
    tally_rt *rt = *state;
    size_t base = bytes_baseline(rt);
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        const kind_info *ki = &kinds[k];
        void *a = mkarr(rt, ki->kind);
        assert_true(tally_is_array(a));
        assert_false(tally_gc_is_tracked(a));
        assert_int_equal(tally_array_kind_of(a), ki->kind);
        assert_int_equal(tally_array_itemsize(a), ki->itemsize);
        /* the minimum and one below */
        assert_int_equal(tally_array_append_i64(a, ki->min), 0);
        if (ki->min > INT64_MIN) {
            assert_int_equal(tally_array_append_i64(a, ki->min - 1), -1);
            check_error(rt, TALLY_EOVERFLOW);
        }
        /* the maximum (as an int64 where it fits) and one above */
        int64_t top = ki->max > INT64_MAX ? INT64_MAX : (int64_t)ki->max;
        assert_int_equal(tally_array_append_i64(a, top), 0);
        if (ki->max < INT64_MAX) {
            assert_int_equal(tally_array_append_i64(a, top + 1), -1);
            check_error(rt, TALLY_EOVERFLOW);
        }
        assert_int_equal(tally_array_size(a), 2);
        /* doubles: integral in range, integral out of range, fractions, NaN, inf */
        assert_int_equal(tally_array_append_f64(a, -0.0), 0);
        assert_int_equal(tally_array_append_f64(a, 100.0), 0);
        assert_int_equal(tally_array_append_f64(a, 1.5), -1);
        check_error(rt, TALLY_EINVAL);
        assert_int_equal(tally_array_append_f64(a, NAN), -1);
        check_error(rt, TALLY_EINVAL);
        assert_int_equal(tally_array_append_f64(a, INFINITY), -1);
        check_error(rt, TALLY_EOVERFLOW);
        assert_int_equal(tally_array_append_f64(a, (double)ki->max * 2 + 2), -1);
        check_error(rt, TALLY_EOVERFLOW);
        assert_int_equal(tally_array_append_f64(a, (double)ki->min - 1e30 * (ki->min < 0) - 1),
                         -1);
        check_error(rt, TALLY_EOVERFLOW);
        assert_int_equal(tally_array_size(a), 4); /* the failures appended nothing */
        int64_t v;
        double f;
        assert_int_equal(tally_array_get_i64(a, 0, &v), 0);
        assert_int_equal(v, ki->min);
        assert_int_equal(tally_array_get_i64(a, -4, &v), 0);
        assert_int_equal(v, ki->min);
        assert_int_equal(tally_array_get_i64(a, -1, &v), 0);
        assert_int_equal(v, 100);
        assert_int_equal(tally_array_get_i64(a, 2, &v), 0);
        assert_int_equal(v, 0);
        assert_int_equal(tally_array_get_f64(a, 0, &f), 0);
        assert_true(f == (double)ki->min);
        assert_int_equal(tally_array_get_f64(a, -3, &f), 0);
        assert_true(f == (double)top);
        /* out of range */
        assert_int_equal(tally_array_get_i64(a, 4, &v), -1);
        check_error(rt, TALLY_EINVAL);
        assert_int_equal(tally_array_get_i64(a, -5, &v), -1);
        check_error(rt, TALLY_EINVAL);
        assert_int_equal(tally_array_get_f64(a, PTRDIFF_MIN, &f), -1);
        check_error(rt, TALLY_EINVAL);
        tally_decref(a);
    }
    /* uint64 beyond int64: stored from raw data and from a double; get_i64 refuses */
    void *q = mkarr(rt, TALLY_UINT64);
    uint64_t big = UINT64_MAX;
    assert_int_equal(tally_array_extend(q, &big, 1), 0);
    assert_int_equal(tally_array_append_f64(q, 9223372036854775808.0), 0);
    assert_int_equal(tally_array_append_f64(q, 18446744073709551616.0), -1);
    check_error(rt, TALLY_EOVERFLOW);
    int64_t v;
    assert_int_equal(tally_array_get_i64(q, 0, &v), -1);
    check_error(rt, TALLY_EOVERFLOW);
    double f;
    assert_int_equal(tally_array_get_f64(q, 1, &f), 0);
    assert_true(f == 9223372036854775808.0);
    check_repr(q, "array('Q', [18446744073709551615, 9223372036854775808])");
    uint64_t *raw = tally_array_data(q);
    assert_true(raw[1] == (uint64_t)1 << 63);
    tally_decref(q);
    /* int64 limits from doubles */
    void *l = mkarr(rt, TALLY_INT64);
    assert_int_equal(tally_array_append_f64(l, -9223372036854775808.0), 0);
    assert_int_equal(tally_array_append_f64(l, 9223372036854775808.0), -1);
    check_error(rt, TALLY_EOVERFLOW);
    assert_int_equal(tally_array_append_f64(l, 4503599627370497.0), 0); /* 2^52 + 1 */
    assert_int_equal(tally_array_get_i64(l, 0, &v), 0);
    assert_true(v == INT64_MIN);
    assert_int_equal(tally_array_get_i64(l, 1, &v), 0);
    assert_true(v == 4503599627370497);
    tally_decref(l);
    /* bad kind, not an array */
    assert_null(tally_array(rt, (tally_array_kind)99, 0));
    check_error(rt, TALLY_EINVAL);
    void *s = tally_str(rt, "x");
    assert_int_equal(tally_array_append_i64(s, 1), -1);
    check_error(rt, TALLY_EINVAL);
    assert_int_equal(tally_array_size(s), 0);
    check_error(rt, TALLY_EINVAL);
    assert_null(tally_array_data(s));
    check_error(rt, TALLY_EINVAL);
    assert_null(tally_array_slice(s, 0, 1));
    check_error(rt, TALLY_EINVAL);
    tally_decref(s);
    assert_settled(rt, base);
}

static void test_array_float_kinds(void **state)
{
    tally_rt *rt = *state;
    size_t base = bytes_baseline(rt);
    void *f = mkarr(rt, TALLY_FLOAT32), *d = mkarr(rt, TALLY_FLOAT64);
    assert_int_equal(tally_array_itemsize(f), 4);
    assert_int_equal(tally_array_itemsize(d), 8);
    assert_int_equal(tally_array_append_f64(f, 0.1), 0);
    assert_int_equal(tally_array_append_f64(f, 3.0), 0);
    assert_int_equal(tally_array_append_f64(f, 3.4028234663852886e38), 0); /* FLT_MAX */
    assert_int_equal(tally_array_append_f64(f, 3.4028235677973366e38), -1); /* rounds to inf */
    check_error(rt, TALLY_EOVERFLOW);
    assert_int_equal(tally_array_append_f64(f, -1e300), -1);
    check_error(rt, TALLY_EOVERFLOW);
    assert_int_equal(tally_array_append_f64(f, INFINITY), 0);
    assert_int_equal(tally_array_append_i64(f, INT64_MAX), 0);
    assert_int_equal(tally_array_size(f), 5);
    float *fd = tally_array_data(f);
    assert_true(fd[0] == 0.1f);
    assert_true(isinf(fd[3]));
    double x;
    assert_int_equal(tally_array_get_f64(f, 0, &x), 0);
    assert_true(x == (double)0.1f);
    int64_t v;
    assert_int_equal(tally_array_get_i64(f, 1, &v), 0);
    assert_int_equal(v, 3);
    assert_int_equal(tally_array_get_i64(f, 0, &v), -1); /* 0.1: not integral */
    check_error(rt, TALLY_EINVAL);
    assert_int_equal(tally_array_get_i64(f, 3, &v), -1); /* inf */
    check_error(rt, TALLY_EOVERFLOW);
    assert_int_equal(tally_array_append_f64(d, NAN), 0);
    assert_int_equal(tally_array_append_f64(d, -1e300), 0);
    assert_int_equal(tally_array_append_i64(d, -7), 0);
    assert_int_equal(tally_array_get_i64(d, 0, &v), -1);
    check_error(rt, TALLY_EINVAL);
    assert_int_equal(tally_array_get_i64(d, 1, &v), -1);
    check_error(rt, TALLY_EOVERFLOW);
    assert_int_equal(tally_array_get_i64(d, -1, &v), 0);
    assert_int_equal(v, -7);
    assert_int_equal(tally_array_get_f64(d, -2, &x), 0);
    assert_true(x == -1e300);
    /* no float type yet: iteration of a float array is refused */
    assert_null(tally_iter(d));
    check_error(rt, TALLY_EINVAL);
    assert_null(tally_iter(f));
    check_error(rt, TALLY_EINVAL);
    tally_decref(f);
    tally_decref(d);
    assert_settled(rt, base);
}

/* ---- typed arrays: extend, slices, growth ---------------------------------------------- */

static void test_array_extend_slice(void **state)
{
    tally_rt *rt = *state;
    size_t base = bytes_baseline(rt);
    void *a = mkarr(rt, TALLY_INT16);
    int16_t raw[10];
    for (int i = 0; i < 10; i++)
        raw[i] = (int16_t)(i - 3);
    assert_int_equal(tally_array_extend(a, raw, 10), 0);
    assert_int_equal(tally_array_extend(a, NULL, 0), 0);
    assert_int_equal(tally_array_extend(a, NULL, 1), -1);
    check_error(rt, TALLY_EINVAL);
    int64_t want[10];
    for (int i = 0; i < 10; i++)
        want[i] = i - 3;
    check_items(a, want, 10);
    /* slices against Python's list(range(10))[s:e] shifted by -3 */
    static const struct {
        ptrdiff_t s, e;
        size_t first, n;
    } sl[] = {{2, 5, 2, 3},  {-3, 100, 7, 3}, {-100, 3, 0, 3}, {5, 2, 0, 0},  {0, 0, 0, 0},
              {-1, -1, 0, 0}, {-2, HI, 8, 2}, {LO, HI, 0, 10}, {8, -100, 0, 0}, {HI, LO, 0, 0}};
    for (size_t i = 0; i < sizeof sl / sizeof sl[0]; i++) {
        void *s = tally_array_slice(a, sl[i].s, sl[i].e);
        assert_non_null(s);
        assert_int_equal(tally_array_kind_of(s), TALLY_INT16);
        check_items(s, want + sl[i].first, sl[i].n);
        tally_decref(s);
    }
    /* extend from its own items (the block moves under the source) */
    for (int i = 0; i < 6; i++)
        assert_int_equal(tally_array_extend(a, tally_array_data(a), tally_array_size(a)), 0);
    assert_int_equal(tally_array_size(a), 640);
    for (size_t i = 0; i < 640; i++) {
        int64_t v;
        assert_int_equal(tally_array_get_i64(a, (ptrdiff_t)i, &v), 0);
        assert_int_equal(v, want[i % 10]);
    }
    /* the capacity given is allocated up front */
    void *c = tally_array(rt, TALLY_FLOAT64, 1000);
    assert_non_null(c);
    size_t sz = tally_sizeof(c);
    assert_true(sz >= 8000);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(tally_array_append_f64(c, i * 0.5), 0);
    assert_int_equal(tally_sizeof(c), sz);
    tally_decref(c);
    tally_decref(a);
    assert_settled(rt, base);
}

static void test_array_growth(void **state)
{
    tally_rt *rt = *state;
    size_t base = bytes_baseline(rt);
    void *a = mkarr(rt, TALLY_INT32);
    size_t n = 1000000, last = tally_sizeof(a), grew = 0;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(tally_array_append_i64(a, (int64_t)i * 3 - 7), 0);
        size_t s = tally_sizeof(a);
        assert_true(s >= last);
        grew += s > last;
        last = s;
    }
    assert_true(last >= 4 * n);
    /* Amortised: growth by copying takes 1/16 of slack; growth without a copy (in
     * place, or a huge block's pages moved) only 1/64, which with 4 KiB pools is
     * a few hundred steps to 4 MB.  One step per item would be a million. */
    assert_true(grew > 10 && grew < 1000);
    const int32_t *d = tally_array_data(a);
    for (size_t i = 0; i < n; i++)
        if (d[i] != (int32_t)i * 3 - 7)
            fail_msg("item %zu is %d", i, d[i]);
    int64_t v;
    assert_int_equal(tally_array_get_i64(a, -1, &v), 0);
    assert_int_equal(v, (int64_t)(n - 1) * 3 - 7);
    void *tail = tally_array_slice(a, -10, HI);
    assert_non_null(tail);
    assert_int_equal(tally_array_size(tail), 10);
    assert_true(tally_sizeof(tail) < 200);
    tally_decref(tail);
    tally_decref(a);
    assert_settled(rt, base);
}

/* ---- typed arrays: eq, repr, iter ----------------------------------------------------- */

static void test_array_eq(void **state)
{
    tally_rt *rt = *state;
    size_t base = bytes_baseline(rt);
    static const int64_t v[] = {1, -2, 3, 100};
    void *ai[NKINDS];
    for (size_t k = 0; k < NKINDS; k++) {
        ai[k] = mkarr(rt, all_kinds[k]);
        for (size_t i = 0; i < 4; i++) {
            int64_t x = v[i] < 0 && (k % 2 == 1 && k < 8) ? 2 : v[i]; /* unsigned: no -2 */
            assert_int_equal(tally_array_append_i64(ai[k], x), 0);
        }
    }
    /* signed kinds all equal each other, unsigned ones each other, and floats both */
    for (size_t i = 0; i < NKINDS; i++)
        for (size_t j = 0; j < NKINDS; j++) {
            bool ui = i % 2 == 1 && i < 8, uj = j % 2 == 1 && j < 8;
            bool fi = i >= 8, fj = j >= 8;
            int want = ui == uj || fi || fj ? 1 : 0;
            if ((ui && fj) || (uj && fi))
                want = 0; /* floats hold -2 */
            assert_int_equal(tally_eq(ai[i], ai[j]), want);
        }
    /* sizes differ; a fraction; NaN; another type */
    void *s3 = tally_array_slice(ai[0], 0, 3);
    assert_int_equal(tally_eq(ai[0], s3), 0);
    void *d = mkarr(rt, TALLY_FLOAT64), *q = mkarr(rt, TALLY_INT64);
    assert_int_equal(tally_array_append_f64(d, 1.5), 0);
    assert_int_equal(tally_array_append_i64(q, 1), 0);
    assert_int_equal(tally_eq(d, q), 0);
    void *n1 = mkarr(rt, TALLY_FLOAT64), *n2 = mkarr(rt, TALLY_FLOAT32);
    assert_int_equal(tally_array_append_f64(n1, NAN), 0);
    assert_int_equal(tally_array_append_f64(n2, NAN), 0);
    assert_int_equal(tally_eq(n1, n2), 0); /* nan != nan, as Python */
    void *l = tally_list(rt, 0);
    assert_int_equal(tally_eq(ai[0], l), 0);
    /* big values compared exactly: 2^63 as uint64 vs as double vs int64 max */
    void *u = mkarr(rt, TALLY_UINT64), *f = mkarr(rt, TALLY_FLOAT64), *i64 = mkarr(rt, TALLY_INT64);
    assert_int_equal(tally_array_append_f64(u, 9223372036854775808.0), 0);
    assert_int_equal(tally_array_append_f64(f, 9223372036854775808.0), 0);
    assert_int_equal(tally_array_append_i64(i64, INT64_MAX), 0);
    assert_int_equal(tally_eq(u, f), 1);
    assert_int_equal(tally_eq(u, i64), 0);
    assert_int_equal(tally_eq(f, i64), 0); /* (double)INT64_MAX == 2^63, but not exactly */
    uint64_t h;
    assert_int_equal(tally_hash(u, &h), -1); /* mutable: unhashable */
    check_error(rt, TALLY_EINVAL);
    void *objs[] = {s3, d, q, n1, n2, l, u, f, i64};
    for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++)
        tally_decref(objs[i]);
    for (size_t k = 0; k < NKINDS; k++)
        tally_decref(ai[k]);
    assert_settled(rt, base);
}

static void test_array_repr(void **state)
{
    tally_rt *rt = *state;
    size_t base = bytes_baseline(rt);
    static const int64_t v[] = {1, 2};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        void *a = arr_of(rt, kinds[k].kind, v, 2);
        char want[64];
        snprintf(want, sizeof want, "array('%s', [1, 2])", kinds[k].code);
        check_repr(a, want);
        tally_decref(a);
        a = mkarr(rt, kinds[k].kind);
        snprintf(want, sizeof want, "array('%s')", kinds[k].code);
        check_repr(a, want);
        tally_decref(a);
    }
    void *m = arr_of(rt, TALLY_INT8, (const int64_t[]){-128, 0, 127}, 3);
    check_repr(m, "array('b', [-128, 0, 127])");
    tally_decref(m);
    static const double dv[] = {0.1, 1.0, 1e16, 1e15, 123456789.0, -0.0, 1e-5, 0.0001,
                                1.5e300, INFINITY, NAN, -2.5, 5e-324, 0.5, 100.25};
    void *d = mkarr(rt, TALLY_FLOAT64);
    for (size_t i = 0; i < sizeof dv / sizeof dv[0]; i++)
        assert_int_equal(tally_array_append_f64(d, dv[i]), 0);
    /* made with python3: repr(array.array('d', [...])) */
    check_repr(d, "array('d', [0.1, 1.0, 1e+16, 1000000000000000.0, 123456789.0, -0.0, "
                  "1e-05, 0.0001, 1.5e+300, inf, nan, -2.5, 5e-324, 0.5, 100.25])");
    void *f = mkarr(rt, TALLY_FLOAT32);
    assert_int_equal(tally_array_append_f64(f, 0.1), 0);
    assert_int_equal(tally_array_append_f64(f, 3.0), 0);
    assert_int_equal(tally_array_append_f64(f, 1e20), 0);
    assert_int_equal(tally_array_append_f64(f, -INFINITY), 0);
    check_repr(f, "array('f', [0.10000000149011612, 3.0, 1.0000000200408773e+20, -inf])");
    void *e = mkarr(rt, TALLY_FLOAT32);
    check_repr(e, "array('f')");
    tally_decref(e);
    tally_decref(f);
    tally_decref(d);
    assert_settled(rt, base);
}

static void test_array_iter(void **state)
{
    tally_rt *rt = *state;
    size_t base = bytes_baseline(rt);
    static const int64_t v[] = {-1, 0, 255, 300000, -300000};
    void *a = arr_of(rt, TALLY_INT32, v, 5);
    void *it = tally_iter(a);
    assert_non_null(it);
    assert_false(tally_gc_is_tracked(it));
    size_t n = 0;
    for (void *x; (x = tally_next(it)) != NULL; tally_decref(x)) {
        assert_true(tally_is_int(x));
        assert_int_equal(tally_int_value(x), n < 5 ? v[n] : 42);
        n++;
        if (n == 2) /* grows while iterated: the new item is seen */
            assert_int_equal(tally_array_append_i64(a, 42), 0);
    }
    assert_int_equal(tally_last_error(rt), TALLY_OK);
    assert_int_equal(n, 6);
    assert_null(tally_next(it)); /* stays exhausted */
    tally_decref(it);
    /* the iterator keeps the array alive */
    it = tally_iter(a);
    assert_non_null(it);
    tally_decref(a);
    void *x = tally_next(it);
    assert_non_null(x);
    assert_int_equal(tally_int_value(x), -1);
    tally_decref(x);
    tally_decref(it);
    /* uint64 beyond int64 cannot become an int */
    void *u = mkarr(rt, TALLY_UINT64);
    uint64_t raw[2] = {7, UINT64_MAX};
    assert_int_equal(tally_array_extend(u, raw, 2), 0);
    it = tally_iter(u);
    assert_non_null(it);
    x = tally_next(it);
    assert_non_null(x);
    assert_int_equal(tally_int_value(x), 7);
    tally_decref(x);
    assert_null(tally_next(it));
    check_error(rt, TALLY_EOVERFLOW);
    tally_decref(it);
    tally_decref(u);
    /* a list made from an array */
    void *b = arr_of(rt, TALLY_UINT8, (const int64_t[]){1, 2, 3}, 3);
    void *l = tally_list_from(rt, b);
    assert_non_null(l);
    check_repr(l, "[1, 2, 3]");
    tally_decref(l);
    tally_decref(b);
    assert_settled(rt, base);
}

/* ---- huge sizes ------------------------------------------------------------------ */

static void test_huge_sizes(void **state)
{
    tally_rt *rt = *state;
    size_t base = bytes_baseline(rt);
    char c = 'x';
    tally_clear_error(rt);
    assert_null(tally_bytes(rt, &c, SIZE_MAX));
    check_error(rt, TALLY_EOVERFLOW);
    assert_null(tally_bytes(rt, &c, SIZE_MAX - 1));
    check_error(rt, TALLY_EOVERFLOW);
    assert_null(tally_bytearray(rt, &c, SIZE_MAX));
    check_error(rt, TALLY_EOVERFLOW);
    void *b = mkba(rt, "ab", 2);
    assert_int_equal(tally_bytearray_resize(b, SIZE_MAX), -1);
    check_error(rt, TALLY_EOVERFLOW);
    assert_int_equal(tally_bytearray_append(b, &c, SIZE_MAX - 1), -1);
    check_error(rt, TALLY_EOVERFLOW);
    /* representable, but more than the heap can give: the heap's error */
    assert_int_equal(tally_bytearray_resize(b, (size_t)PTRDIFF_MAX / 2), -1);
    assert_int_not_equal(tally_last_error(rt), TALLY_OK);
    tally_clear_error(rt);
    assert_null(tally_bytes(rt, &c, (size_t)1 << 50)); /* never read: refused by the heap */
    assert_int_not_equal(tally_last_error(rt), TALLY_OK);
    tally_clear_error(rt);
    assert_int_equal(tally_bytearray_size(b), 2);
    assert_memory_equal(tally_bytearray_data(b), "ab", 2);
    for (size_t k = 0; k < NKINDS; k++) {
        assert_null(tally_array(rt, all_kinds[k], SIZE_MAX));
        check_error(rt, TALLY_EOVERFLOW);
        assert_null(tally_array(rt, all_kinds[k], SIZE_MAX / 2));
        check_error(rt, TALLY_EOVERFLOW);
        assert_null(tally_array(rt, all_kinds[k], (size_t)1 << 50));
        assert_int_not_equal(tally_last_error(rt), TALLY_OK);
        tally_clear_error(rt);
    }
    void *a = arr_of(rt, TALLY_INT64, (const int64_t[]){5}, 1);
    assert_int_equal(tally_array_extend(a, &c, SIZE_MAX), -1);
    check_error(rt, TALLY_EOVERFLOW);
    assert_int_equal(tally_array_extend(a, &c, SIZE_MAX / 8), -1);
    check_error(rt, TALLY_EOVERFLOW);
    assert_int_equal(tally_array_extend(a, &c, (size_t)1 << 50), -1);
    assert_int_not_equal(tally_last_error(rt), TALLY_OK);
    tally_clear_error(rt);
    check_items(a, (const int64_t[]){5}, 1);
    tally_decref(a);
    tally_decref(b);
    assert_settled(rt, base);
}

/* ---- fault injection ------------------------------------------------------------ */

/* A failed call: it must say why. */
static void failed(tally_rt *rt, unsigned *fails)
{
    assert_int_not_equal(tally_last_error(rt), TALLY_OK);
    tally_clear_error(rt);
    ++*fails;
}

/* A copy of an object's contents (a bytearray or an array), to see that a failed
 * call changed nothing. */
typedef struct snap {
    size_t n;
    uint8_t b[4096];
} snap;

static void take_snap(snap *s, void *o)
{
    const void *p = tally_is_array(o) ? tally_array_data(o) : tally_bytearray_data(o);
    s->n = tally_is_array(o) ? tally_array_size(o) * tally_array_itemsize(o)
                             : tally_bytearray_size(o);
    assert_true(s->n <= sizeof s->b);
    if (s->n)
        memcpy(s->b, p, s->n);
}

static void check_snap(const snap *s, void *o)
{
    const void *p = tally_is_array(o) ? tally_array_data(o) : tally_bytearray_data(o);
    size_t n = tally_is_array(o) ? tally_array_size(o) * tally_array_itemsize(o)
                                 : tally_bytearray_size(o);
    assert_int_equal(n, s->n);
    if (n)
        assert_memory_equal(p, s->b, n);
}

#define STEP(of, call)                                                                     \
    do {                                                                                   \
        take_snap(&sn, (of));                                                              \
        if ((call) != 0) {                                                                 \
            failed(rt, fails);                                                             \
            check_snap(&sn, (of));                                                         \
        }                                                                                  \
    } while (0)

/* A call making a new object: NULL must leave `of` as it was. */
static void *made(tally_rt *rt, unsigned *fails, void *o, const snap *sn, void *of)
{
    if (o == NULL) {
        failed(rt, fails);
        check_snap(sn, of);
    }
    return o;
}
#define MADE(call, of) (take_snap(&sn, (of)), made(rt, fails, (call), &sn, (of)))

static void fault_arrays(tally_rt *rt, unsigned *fails, void *ba)
{
    static snap sn;
    for (size_t k = 0; k < NKINDS; k++) {
        void *a = MADE(tally_array(rt, all_kinds[k], k), ba);
        if (a == NULL)
            continue;
        for (int i = 0; i < 40; i++)
            STEP(a, tally_array_append_i64(a, i));
        STEP(a, tally_array_append_f64(a, 2.0));
        STEP(a, tally_array_extend(a, tally_array_data(a), tally_array_size(a) / 2));
        void *s = MADE(tally_array_slice(a, 3, -3), a);
        void *r = MADE(tally_repr(a), a);
        void *it = k < 8 ? MADE(tally_iter(a), a) : NULL;
        void *x = it != NULL ? tally_next(it) : NULL;
        if (it != NULL && x == NULL)
            failed(rt, fails);
        const void *objs[] = {x, it, r, s, a};
        for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++)
            tally_xdecref((void *)objs[i]);
    }
}

static void fault_scenario(tally_rt *rt, unsigned *fails)
{
    static snap sn;
    void *ba = tally_bytearray(rt, "seed", 4);
    if (ba == NULL) {
        failed(rt, fails);
        return;
    }
    for (int i = 0; i < 30; i++) {
        STEP(ba, tally_bytearray_append(ba, "0123456789", (size_t)i % 11));
        STEP(ba, tally_bytearray_append(ba, tally_bytearray_data(ba), 3));
    }
    STEP(ba, tally_bytearray_resize(ba, 1000));
    STEP(ba, tally_bytearray_resize(ba, 10));
    void *b = MADE(tally_bytes(rt, tally_bytearray_data(ba), tally_bytearray_size(ba)), ba);
    void *r1 = MADE(tally_repr(ba), ba);
    void *r2 = b != NULL ? MADE(tally_repr(b), ba) : NULL;
    fault_arrays(rt, fails, ba);
    const void *objs[] = {r2, r1, b, ba};
    for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++)
        tally_xdecref((void *)objs[i]);
}

static void test_fault_injection(void **state)
{
    tally_rt *rt = *state;
    bytes_baseline(rt);
    unsigned fails = 0;
    fault_scenario(rt, &fails); /* warm-up: every type registered */
    assert_int_equal(fails, 0);
    size_t base = settled_blocks(rt);
    assert_true(fail_each_allocation(rt, fault_scenario, base) > 50);
    tally_clear_error(rt);
}

int main(void)
{
    unsetenv("TALLY_DEBUG");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bytes_basic, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_bytes_hash_eq, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_bytes_repr, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_bytearray_ops, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_bytearray_growth, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_array_int_limits, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_array_float_kinds, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_array_extend_slice, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_array_growth, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_array_eq, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_array_repr, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_array_iter, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_huge_sizes, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_fault_injection, setup_rt, teardown_rt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
