/* array.c - typed arrays: Python's array module (unboxed numbers, contiguous).
 *
 * An array is a plain (non-container) object holding its kind, its size and
 * capacity in items and a pointer to a separate heap buffer of items (a medium
 * block between the largest size class and half an arena: 256-byte granularity,
 * heap/medium.c), grown by about 1/16 plus a few items and widened to what the
 * block really holds (tallyH_buf_usable).  It holds no references, so the collector never scans it.
 *
 * Values cross the API as int64_t or double and are range-checked against the
 * kind: a value the kind cannot hold is TALLY_EOVERFLOW, a float with a fraction
 * (or a NaN) given to an integer kind is TALLY_EINVAL; float32 refuses finite
 * doubles that would become infinite (as Python's struct 'f' does).  Equality
 * compares item by item by value across kinds, exactly, as Python does for arrays
 * of different typecodes (array('b', [1]) == array('d', [1.0])); the repr uses
 * Python's typecodes and float repr (shortest text that reads back the same).
 *
 * Re-entrancy, as for lists: an allocation may run finalizers that resize this
 * array, so the item block grows in place (or by the heap moving a huge block's
 * pages) only where that runs no hook, else by allocate-then-copy, the state read
 * again after each allocation; nothing changes until it has succeeded.
 *
 * Iteration yields ints for the integer kinds.  There is no float type yet, so
 * tally_iter of a float array fails with TALLY_EINVAL.
 */
#include "types/types.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "heap/heap.h"
#include "runtime/runtime.h"

typedef struct array_obj {
    tally_array_kind kind;
    size_t size;   /* items in use */
    size_t cap;    /* items the block holds */
    uint8_t *items; /* tallyH_buf_alloc'd block, or NULL while cap is 0 */
} array_obj;

typedef struct array_iter {
    array_obj *seq; /* NULL once exhausted */
    size_t index;   /* next item; checked against the size every time */
} array_iter;

/* Byte sizes beyond this are refused, so that every offset fits a ptrdiff_t. */
#define ARRAY_MAX_BYTES ((size_t)PTRDIFF_MAX - 4096)

#define NKINDS ((int)TALLY_FLOAT64 + 1)

static const size_t item_sizes[NKINDS] = {1, 1, 2, 2, 4, 4, 8, 8, 4, 8};
static const char typecodes[NKINDS] = {'b', 'B', 'h', 'H', 'i', 'I', 'q', 'Q', 'f', 'd'};
/* The range of each integer kind (the float kinds' entries are unused). */
static const int64_t kind_min[NKINDS] = {INT8_MIN, 0, INT16_MIN, 0, INT32_MIN, 0, INT64_MIN, 0};
static const uint64_t kind_max[NKINDS] = {INT8_MAX, UINT8_MAX, INT16_MAX, UINT16_MAX,
                                          INT32_MAX, UINT32_MAX, INT64_MAX, UINT64_MAX};

static const tally_type array_iter_type;

static tallyB_errstate *err_of(const void *o)
{
    return tallyT_err(tally_runtime_of(o));
}

static bool is_float_kind(tally_array_kind k)
{
    return k == TALLY_FLOAT32 || k == TALLY_FLOAT64;
}

static size_t max_items(tally_array_kind k)
{
    return ARRAY_MAX_BYTES / item_sizes[k];
}

/* a as an array, or NULL with the error set (when a names a runtime). */
static array_obj *as_array(const void *a, const char *fn)
{
    if (tallyT_is(a, &tally_array_type))
        return (array_obj *)a;
    if (a != NULL)
        tallyB_error_set(err_of(a), TALLY_EINVAL, "%s: not an array", fn);
    return NULL;
}

/* ---- items as values ------------------------------------------------------------------ */

/* An item as a number: an exact integer for the integer kinds, a double for the
 * float kinds. */
typedef struct num {
    bool is_float;
    __int128 i;
    double f;
} num;

static num load(const array_obj *a, size_t k)
{
    const uint8_t *p = a->items + k * item_sizes[a->kind];
    num v = {false, 0, 0.0};
    switch (a->kind) {
    case TALLY_INT8: { int8_t x; memcpy(&x, p, 1); v.i = x; break; }
    case TALLY_UINT8: { uint8_t x; memcpy(&x, p, 1); v.i = x; break; }
    case TALLY_INT16: { int16_t x; memcpy(&x, p, 2); v.i = x; break; }
    case TALLY_UINT16: { uint16_t x; memcpy(&x, p, 2); v.i = x; break; }
    case TALLY_INT32: { int32_t x; memcpy(&x, p, 4); v.i = x; break; }
    case TALLY_UINT32: { uint32_t x; memcpy(&x, p, 4); v.i = x; break; }
    case TALLY_INT64: { int64_t x; memcpy(&x, p, 8); v.i = x; break; }
    case TALLY_UINT64: { uint64_t x; memcpy(&x, p, 8); v.i = x; break; }
    case TALLY_FLOAT32: { float x; memcpy(&x, p, 4); v.is_float = true; v.f = x; break; }
    case TALLY_FLOAT64: { double x; memcpy(&x, p, 8); v.is_float = true; v.f = x; break; }
    }
    return v;
}

/* Writes v (already range-checked for the kind) as item k. */
static void store(array_obj *a, size_t k, num v)
{
    uint8_t *p = a->items + k * item_sizes[a->kind];
    switch (a->kind) {
    case TALLY_INT8: { int8_t x = (int8_t)v.i; memcpy(p, &x, 1); break; }
    case TALLY_UINT8: { uint8_t x = (uint8_t)v.i; memcpy(p, &x, 1); break; }
    case TALLY_INT16: { int16_t x = (int16_t)v.i; memcpy(p, &x, 2); break; }
    case TALLY_UINT16: { uint16_t x = (uint16_t)v.i; memcpy(p, &x, 2); break; }
    case TALLY_INT32: { int32_t x = (int32_t)v.i; memcpy(p, &x, 4); break; }
    case TALLY_UINT32: { uint32_t x = (uint32_t)v.i; memcpy(p, &x, 4); break; }
    case TALLY_INT64: { int64_t x = (int64_t)v.i; memcpy(p, &x, 8); break; }
    case TALLY_UINT64: { uint64_t x = (uint64_t)v.i; memcpy(p, &x, 8); break; }
    case TALLY_FLOAT32: { float x = (float)v.f; memcpy(p, &x, 4); break; }
    case TALLY_FLOAT64: { double x = v.f; memcpy(p, &x, 8); break; }
    }
}

/* Has d no fraction?  Every double of magnitude 2^52 or more is integral; below
 * that, the round trip through int64 tells (no libm needed). */
static bool integral(double d)
{
    if (!isfinite(d))
        return false;
    double m = d < 0 ? -d : d;
    return m >= 4503599627370496.0 || (double)(int64_t)d == d;
}

/* The exact integer value of a double, if it is integral and within [-2^63,
 * 2^64): true with *out set. */
static bool double_to_int(double d, __int128 *out)
{
    if (!(d >= -9223372036854775808.0 && d < 18446744073709551616.0) || !integral(d))
        return false;
    *out = d < 0 ? (__int128)(int64_t)d : (__int128)(uint64_t)d;
    return true;
}

/* Doubles of this magnitude or more round to infinity as floats (FLT_MAX plus
 * half an ulp, a tie that rounds to even: up). */
#define FLOAT32_OVERFLOW 0x1.ffffffp+127

static int fail(const array_obj *a, tally_error code, const char *fn, const char *why)
{
    tallyB_error_set(err_of(a), code, "%s: %s for array of type '%c'", fn, why,
                     typecodes[a->kind]);
    return -1;
}

/* Makes v fit a's kind: 0 with v converted, or -1 with the error set. */
static int convert(const array_obj *a, num *v, const char *fn)
{
    if (is_float_kind(a->kind)) {
        if (!v->is_float)
            v->f = (double)v->i;
        v->is_float = true;
        double m = v->f < 0 ? -v->f : v->f;
        if (a->kind == TALLY_FLOAT32 && isfinite(m) && m >= FLOAT32_OVERFLOW)
            return fail(a, TALLY_EOVERFLOW, fn, "float too large");
        return 0;
    }
    if (v->is_float) {
        if (isnan(v->f) || (isfinite(v->f) && !integral(v->f)))
            return fail(a, TALLY_EINVAL, fn, "a float with a fraction (or NaN)");
        if (!double_to_int(v->f, &v->i))
            return fail(a, TALLY_EOVERFLOW, fn, "value out of range");
        v->is_float = false;
    }
    if (v->i < kind_min[a->kind] || v->i > (__int128)kind_max[a->kind])
        return fail(a, TALLY_EOVERFLOW, fn, "value out of range");
    return 0;
}

/* ---- storage -------------------------------------------------------------------------- */

/* Growth by 1/16 (and a few items), as CPython's array: unboxed items leave
 * little else to save, so the slack is most of an array's overhead. */
static size_t grown_capacity(size_t need, size_t limit)
{
    size_t cap = need + (need >> 4) + 7; /* no overflow: need <= limit < SIZE_MAX / 2 */
    return cap > limit ? limit : cap;
}

/* Growth in place (or a huge block's pages moved) costs no copy, so it asks for
 * little slack: 1/256 for a medium block, which the heap rounds up to 256-byte
 * units (all of which become capacity: the spare room stays under 1/256 plus one
 * unit, which keeps an array('i') of 10^4 items built by append under 40,500
 * bytes), and 1/128 beyond, where the heap rounds to pages and each growth is a
 * remap, a system call.  True, or false with nothing changed; runs no user code. */
static bool grow_nocopy(array_obj *a, size_t need, bool exact, size_t limit)
{
    if (a->items == NULL)
        return false;
    size_t isz = item_sizes[a->kind], cap = need;
    if (!exact)
        cap += need * isz <= TALLY_MEDIUM_MAX ? need >> 8 : need >> 7;
    if (cap > limit)
        cap = limit;
    tallyH_heap *h = tallyT_heap(a);
    uint8_t *d = tallyH_buf_resize_nocopy(h, a->items, cap * isz);
    if (d == NULL)
        return false;
    size_t usable = tallyH_buf_usable(h, d) / isz;
    a->items = d;
    a->cap = usable < limit ? usable : limit;
    return true;
}

static int too_many(const array_obj *a, const char *fn)
{
    tallyB_error_set(err_of(a), TALLY_EOVERFLOW, "%s: an array of more than %zu items of %zu bytes",
                     fn, max_items(a->kind), item_sizes[a->kind]);
    return -1;
}

/* Room for need items in all (exactly need when exact, else with slack): 0, or
 * -1 with the error set and a unchanged.  The allocation may run user code that
 * resizes a: the state is read again afterwards and the current items copied. */
static int reserve_total(array_obj *a, size_t need, bool exact, const char *fn)
{
    tallyH_heap *h = tallyT_heap(a);
    size_t isz = item_sizes[a->kind], limit = max_items(a->kind);
    if (need > limit)
        return too_many(a, fn);
    while (need > a->cap) {
        if (grow_nocopy(a, need, exact, limit))
            continue;
        uint8_t *old = a->items;
        size_t size = a->size, cap = exact ? need : grown_capacity(need, limit);
        uint8_t *d = tallyH_buf_alloc(h, cap * isz);
        if (d == NULL)
            return -1;
        if (a->items != old || a->size != size) {
            tallyH_buf_free(h, d); /* changed meanwhile: look again */
            continue;
        }
        size_t usable = tallyH_buf_usable(h, d) / isz;
        if (size != 0)
            memcpy(d, old, size * isz);
        a->items = d;
        a->cap = usable < limit ? usable : limit;
        tallyH_buf_free(h, old);
    }
    return 0;
}

/* Room for extra more items than a has now (re-measured after user code). */
static int reserve(array_obj *a, size_t extra, const char *fn)
{
    for (;;) {
        size_t need;
        if (__builtin_add_overflow(a->size, extra, &need))
            return too_many(a, fn);
        if (need <= a->cap)
            return 0;
        if (reserve_total(a, need, false, fn) != 0)
            return -1;
    }
}

/* ---- the array type ------------------------------------------------------------------ */

/* Exact comparison of two numbers (a float equals an int only if integral). */
static bool num_eq(num x, num y)
{
    if (x.is_float && y.is_float)
        return x.f == y.f;
    if (x.is_float || y.is_float) {
        num f = x.is_float ? x : y, i = x.is_float ? y : x;
        __int128 v;
        return double_to_int(f.f, &v) && v == i.i;
    }
    return x.i == y.i;
}

static int array_eq(void *self, void *other)
{
    if (!tallyT_is(other, &tally_array_type))
        return 0;
    const array_obj *a = self, *b = other;
    if (a->size != b->size)
        return 0;
    if (a->kind == b->kind && !is_float_kind(a->kind)) /* same bits, same values */
        return a->size == 0 || memcmp(a->items, b->items, a->size * item_sizes[a->kind]) == 0;
    for (size_t k = 0; k < a->size; k++)
        if (!num_eq(load(a, k), load(b, k)))
            return 0;
    return 1;
}

/* Python's repr of a double: the shortest %e text that reads back the same,
 * laid out as float.__repr__ does (fixed notation for exponents -4..15, with
 * ".0" when integral; else d.ddde+XX). */
static int repr_double(tally_strbuf *out, double d)
{
    if (isnan(d))
        return tally_strbuf_append(out, "nan", 3);
    if (isinf(d))
        return tally_strbuf_append(out, d < 0 ? "-inf" : "inf", d < 0 ? 4 : 3);
    char buf[40];
    for (int prec = 0; prec < 17; prec++) {
        snprintf(buf, sizeof buf, "%.*e", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    char digits[24];
    size_t n = 0;
    const char *p = buf + (buf[0] == '-');
    for (; *p != 'e'; p++)
        if (*p != '.')
            digits[n++] = *p;
    while (n > 1 && digits[n - 1] == '0')
        n--;
    digits[n] = '\0';
    int exp = atoi(p + 1);
    if (buf[0] == '-' && tally_strbuf_append(out, "-", 1) != 0)
        return -1;
    if (exp < -4 || exp >= 16) {
        const char *frac = n > 1 ? "." : "";
        return tally_strbuf_appendf(out, "%c%s%se%c%02d", digits[0], frac, digits + 1,
                                    exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    }
    static const char zeros[] = "0000000000000000"; /* enough for exponents -4..15 */
    if (exp < 0)
        return tally_strbuf_appendf(out, "0.%.*s%s", -exp - 1, zeros, digits);
    /* digits[0..exp] before the point (zero-padded), the rest (or 0) after. */
    size_t whole = (size_t)exp + 1;
    if (n <= whole)
        return tally_strbuf_appendf(out, "%s%.*s.0", digits, (int)(whole - n), zeros);
    return tally_strbuf_appendf(out, "%.*s.%s", (int)whole, digits, digits + whole);
}

static int repr_item(tally_strbuf *out, num v)
{
    if (v.is_float)
        return repr_double(out, v.f);
    if (v.i < 0)
        return tally_strbuf_appendf(out, "%lld", (long long)v.i);
    return tally_strbuf_appendf(out, "%llu", (unsigned long long)v.i);
}

static int array_repr(void *self, tally_strbuf *out)
{
    const array_obj *a = self;
    int rc = tally_strbuf_appendf(out, "array('%c'", typecodes[a->kind]);
    if (rc == 0 && a->size > 0)
        rc = tally_strbuf_append(out, ", [", 3);
    for (size_t k = 0; rc == 0 && k < a->size; k++) {
        if (k > 0)
            rc = tally_strbuf_append(out, ", ", 2);
        if (rc == 0)
            rc = repr_item(out, load(a, k));
    }
    if (rc == 0 && a->size > 0)
        rc = tally_strbuf_append(out, "]", 1);
    if (rc == 0)
        rc = tally_strbuf_append(out, ")", 1);
    return rc;
}

static void *array_iter_new(void *self)
{
    array_obj *a = self;
    if (is_float_kind(a->kind)) {
        tallyB_error_set(err_of(a), TALLY_EINVAL,
                         "cannot iterate over array of type '%c': Tally has no float type yet",
                         typecodes[a->kind]);
        return NULL;
    }
    array_iter *it = tally_new(tally_runtime_of(a), &array_iter_type);
    if (it != NULL) {
        tally_incref(a);
        it->seq = a;
    }
    return it;
}

static size_t array_owned_bytes(const void *self)
{
    const array_obj *a = self;
    return tallyH_buf_usable(tallyT_heap(a), a->items);
}

static void array_destroy(void *self)
{
    array_obj *a = self;
    tallyH_buf_free(tallyT_heap(a), a->items);
    a->items = NULL;
    a->size = a->cap = 0;
}

static int array_hash(void *self, uint64_t *out)
{
    (void)out;
    tallyB_error_set(err_of(self), TALLY_EINVAL, "unhashable type: 'array'");
    return -1;
}

static const tally_type_ops array_ops = {
    .hash = array_hash, /* mutable, as Python's array: unhashable */
    .eq = array_eq,
    .repr = array_repr,
    .iter = array_iter_new,
    .owned_bytes = array_owned_bytes,
};

const tally_type tally_array_type = {
    .name = "array",
    .size = sizeof(array_obj),
    .destroy = array_destroy,
    .ops = &array_ops,
};

/* ---- the iterator -------------------------------------------------------------------- */

/* It holds one reference, to an array, which holds none: it can never be part of
 * a cycle, so it is not tracked by the collector; traverse and clear still let
 * the collector's tools see and release the reference. */
static void array_iter_traverse(void *self, tally_visit_fn visit, void *arg)
{
    array_iter *it = self;
    if (it->seq != NULL)
        visit(it->seq, arg);
}

static void array_iter_clear(void *self)
{
    tally_setref(&((array_iter *)self)->seq, NULL);
}

/* By index: the array may change between calls. */
static int array_iter_next(void *self, void **out)
{
    array_iter *it = self;
    array_obj *a = it->seq;
    if (a == NULL || it->index >= a->size) {
        array_iter_clear(it);
        return 0;
    }
    num v = load(a, it->index);
    if (v.i > INT64_MAX) {
        tallyB_error_set(err_of(a), TALLY_EOVERFLOW,
                         "array item %zu (%llu) does not fit an int", it->index,
                         (unsigned long long)v.i);
        return -1;
    }
    void *o = tally_int(tally_runtime_of(a), (int64_t)v.i);
    if (o == NULL)
        return -1; /* the index stays: the same item is tried again next time */
    it->index++;
    *out = o;
    return 1;
}

static const tally_type_ops array_iter_ops = {.next = array_iter_next};

static const tally_type array_iter_type = {
    .name = "array_iterator",
    .size = sizeof(array_iter),
    .traverse = array_iter_traverse,
    .clear = array_iter_clear,
    .ops = &array_iter_ops,
};

/* ---- creation and access ------------------------------------------------------------- */

void *tally_array(tally_rt *rt, tally_array_kind kind, size_t capacity)
{
    if ((int)kind < 0 || (int)kind >= NKINDS) {
        tallyB_error_set(tallyT_err(rt), TALLY_EINVAL, "tally_array: unknown kind %d", (int)kind);
        return NULL;
    }
    if (capacity > max_items(kind)) {
        tallyB_error_set(tallyT_err(rt), TALLY_EOVERFLOW,
                         "tally_array: %zu items of %zu bytes is too large", capacity,
                         item_sizes[kind]);
        return NULL;
    }
    array_obj *a = tally_new(rt, &tally_array_type);
    if (a == NULL)
        return NULL;
    a->kind = kind;
    if (capacity != 0 && reserve_total(a, capacity, true, "tally_array") != 0) {
        tally_decref(a);
        return NULL;
    }
    return a;
}

int tally_is_array(const void *o)
{
    return tallyT_is(o, &tally_array_type);
}

tally_array_kind tally_array_kind_of(const void *a)
{
    const array_obj *x = as_array(a, "tally_array_kind_of");
    return x != NULL ? x->kind : TALLY_INT8;
}

size_t tally_array_size(const void *a)
{
    const array_obj *x = as_array(a, "tally_array_size");
    return x != NULL ? x->size : 0;
}

size_t tally_array_itemsize(const void *a)
{
    const array_obj *x = as_array(a, "tally_array_itemsize");
    return x != NULL ? item_sizes[x->kind] : 0;
}

void *tally_array_data(void *a)
{
    array_obj *x = as_array(a, "tally_array_data");
    return x != NULL ? x->items : NULL;
}

/* Where data lies inside a's own items: true with *off (bytes) set. */
static bool inside(const array_obj *a, const void *data, size_t *off)
{
    uintptr_t p = (uintptr_t)data, lo = (uintptr_t)a->items;
    if (a->items == NULL || p < lo || p >= lo + a->size * item_sizes[a->kind])
        return false;
    *off = (size_t)(p - lo);
    return true;
}

int tally_array_extend(void *a, const void *data, size_t n)
{
    array_obj *x = as_array(a, "tally_array_extend");
    if (x == NULL)
        return -1;
    if (data == NULL && n != 0)
        return fail(x, TALLY_EINVAL, "tally_array_extend", "NULL data");
    if (n == 0)
        return 0;
    size_t isz = item_sizes[x->kind], off = 0;
    bool own = inside(x, data, &off); /* its own items: found again after the move */
    if (reserve(x, n, "tally_array_extend") != 0)
        return -1;
    size_t bytes = n * isz; /* no overflow: reserve checked size + n items */
    if (own && (off > x->size * isz || bytes > x->size * isz - off))
        return fail(x, TALLY_EINVAL, "tally_array_extend", "the source shrank during the call");
    memcpy(x->items + x->size * isz, own ? x->items + off : (const uint8_t *)data, bytes);
    x->size += n;
    return 0;
}

static int append_num(array_obj *x, num v, const char *fn)
{
    if (convert(x, &v, fn) != 0 || reserve(x, 1, fn) != 0)
        return -1;
    store(x, x->size++, v);
    return 0;
}

int tally_array_append_i64(void *a, int64_t v)
{
    array_obj *x = as_array(a, "tally_array_append_i64");
    num n = {false, v, 0.0};
    return x != NULL ? append_num(x, n, "tally_array_append_i64") : -1;
}

int tally_array_append_f64(void *a, double v)
{
    array_obj *x = as_array(a, "tally_array_append_f64");
    num n = {true, 0, v};
    return x != NULL ? append_num(x, n, "tally_array_append_f64") : -1;
}

/* Turns i (negative: from the end) into an index below a->size; false with the
 * error set when it is out of range. */
static bool norm_index(const array_obj *a, ptrdiff_t i, size_t *out, const char *fn)
{
    size_t k = i < 0 ? (size_t)0 - (size_t)i : (size_t)i; /* |i| without overflow */
    if (i < 0 ? k <= a->size : k < a->size) {
        *out = i < 0 ? a->size - k : k;
        return true;
    }
    tallyB_error_set(err_of(a), TALLY_EINVAL, "%s: index %td out of range (size %zu)", fn, i,
                     a->size);
    return false;
}

int tally_array_get_i64(const void *a, ptrdiff_t i, int64_t *out)
{
    const char *fn = "tally_array_get_i64";
    const array_obj *x = as_array(a, fn);
    size_t k;
    if (x == NULL || !norm_index(x, i, &k, fn))
        return -1;
    num v = load(x, k);
    if (v.is_float) {
        if (isnan(v.f) || (isfinite(v.f) && !integral(v.f)))
            return fail(x, TALLY_EINVAL, fn, "item is not integral");
        if (!double_to_int(v.f, &v.i))
            return fail(x, TALLY_EOVERFLOW, fn, "item does not fit an int64");
    }
    if (v.i > INT64_MAX)
        return fail(x, TALLY_EOVERFLOW, fn, "item does not fit an int64");
    *out = (int64_t)v.i;
    return 0;
}

int tally_array_get_f64(const void *a, ptrdiff_t i, double *out)
{
    const array_obj *x = as_array(a, "tally_array_get_f64");
    size_t k;
    if (x == NULL || !norm_index(x, i, &k, "tally_array_get_f64"))
        return -1;
    num v = load(x, k);
    *out = v.is_float ? v.f : (double)v.i; /* the nearest double, like Python's float() */
    return 0;
}

/* Python's clamping of a[start:stop] for n items: the first index and the count. */
static size_t clamp_slice(size_t n, ptrdiff_t start, ptrdiff_t stop, size_t *first)
{
    ptrdiff_t len = (ptrdiff_t)n, ends[2] = {start, stop};
    for (int e = 0; e < 2; e++) {
        if (ends[e] < 0)
            ends[e] = ends[e] < -len ? 0 : ends[e] + len;
        else if (ends[e] > len)
            ends[e] = len;
    }
    *first = (size_t)ends[0];
    return ends[1] > ends[0] ? (size_t)(ends[1] - ends[0]) : 0;
}

void *tally_array_slice(const void *a, ptrdiff_t start, ptrdiff_t stop)
{
    array_obj *src = as_array(a, "tally_array_slice");
    if (src == NULL)
        return NULL;
    array_obj *r = tally_array(tally_runtime_of(src), src->kind, 0);
    if (r == NULL)
        return NULL;
    /* Each allocation may change src: measure again until r has room, then copy. */
    for (;;) {
        size_t first, count = clamp_slice(src->size, start, stop, &first);
        if (count > r->cap) {
            if (reserve_total(r, count, true, "tally_array_slice") != 0) {
                tally_decref(r);
                return NULL;
            }
            continue;
        }
        size_t isz = item_sizes[src->kind];
        if (count != 0)
            memcpy(r->items, src->items + first * isz, count * isz);
        r->size = count;
        return r;
    }
}
