/* bytes.c - the built-in bytes (immutable) and bytearray (mutable).
 *
 * A bytes is one plain (non-container) object: a small fixed part with the cached
 * hash and the size, followed inline by the bytes and a NUL (tally_new_var with
 * one-byte items), so it costs one block and its data can be handed to C code
 * expecting a string.  The hash is computed once, when the bytes is made.
 *
 * A bytearray is a plain object holding its size, its capacity and a pointer to
 * a separate heap block of data, grown by about 1/8 plus a few bytes (CPython's
 * pattern) and widened to what the block really holds (tallyH_buf_usable: a
 * medium block, of 256-byte units, between the largest class and half an arena).
 * Neither type holds references, so the collector never looks at them.
 *
 * Re-entrancy: an allocation may run the collector, whose finalizers are user
 * code that may resize this very bytearray.  So the data block is grown by
 * allocate-then-copy (never tally_realloc, which would read a block a finalizer
 * may have freed meanwhile), the state is read again once the allocation returns,
 * and nothing is changed until the allocation has succeeded: a failed call leaves
 * the bytearray as it was.  Appending a bytearray's own bytes to it works: the
 * source is located by its offset, which survives the move.
 *
 * Equality follows Python: a bytes equals a bytes or a bytearray with the same
 * contents; a bytearray is unhashable.  repr is Python's: b'..' (or b".." when
 * that avoids escaping a quote) with \t \n \r \\ and \xhh escapes.
 */
#include "types/types.h"

#include <stdio.h>
#include <string.h>

#include "heap/heap.h"
#include "runtime/runtime.h"

typedef struct bytes_obj {
    uint64_t hash;    /* of the bytes, computed once at creation */
    size_t size;      /* bytes of data, the NUL not counted */
    uint8_t data[];   /* size bytes, then a NUL */
} bytes_obj;

typedef struct bytearray_obj {
    size_t size;    /* bytes in use */
    size_t cap;     /* bytes the data block holds */
    uint8_t *data;  /* tally_malloc'd block, or NULL while cap is 0 */
} bytearray_obj;

/* Sizes beyond this are refused before anything is allocated, so that size + 1,
 * the object's header and the growth formula can never overflow, and every
 * offset fits a ptrdiff_t. */
#define BYTES_MAX ((size_t)PTRDIFF_MAX - 4096)

static tallyB_errstate *err_of(const void *o)
{
    return tallyT_err(tally_runtime_of(o));
}

static bool size_ok(tally_rt *rt, size_t n, const char *what)
{
    if (n <= BYTES_MAX)
        return true;
    tallyB_error_set(tallyT_err(rt), TALLY_EOVERFLOW, "%s: %zu bytes is too large", what, n);
    return false;
}

static bool data_ok(tally_rt *rt, const void *data, size_t n, const char *what)
{
    if (data != NULL || n == 0)
        return true;
    tallyB_error_set(tallyT_err(rt), TALLY_EINVAL, "%s: NULL data for %zu bytes", what, n);
    return false;
}

/* o as an object of type t, or NULL with the error set (when o is not NULL and
 * so names a runtime to set it in). */
static void *as_type(const void *o, const tally_type *t, const char *fn)
{
    if (tallyT_is(o, t))
        return (void *)o;
    if (o != NULL)
        tallyB_error_set(err_of(o), TALLY_EINVAL, "%s: not a %s", fn, t->name);
    return NULL;
}

/* ---- hashing ------------------------------------------------------------------------ */


/* ---- the shared repr ------------------------------------------------------------------ */

/* Python's choice: single quotes, unless the data has ' and no ". */
static char repr_quote(const uint8_t *p, size_t n)
{
    if (n == 0)
        return '\''; /* p may be NULL: an empty bytearray has no block */
    bool single = memchr(p, '\'', n) != NULL, dbl = memchr(p, '"', n) != NULL;
    return single && !dbl ? '"' : '\'';
}

/* The escape of byte c in a literal quoted with q, written to buf: its length, or
 * 0 if c stands as it is. */
static size_t escape(uint8_t c, char q, char buf[8])
{
    switch (c) {
    case '\t': return (size_t)snprintf(buf, 8, "\\t");
    case '\n': return (size_t)snprintf(buf, 8, "\\n");
    case '\r': return (size_t)snprintf(buf, 8, "\\r");
    case '\\': return (size_t)snprintf(buf, 8, "\\\\");
    default: break;
    }
    if (c == (uint8_t)q)
        return (size_t)snprintf(buf, 8, "\\%c", q);
    if (c < 0x20 || c >= 0x7F)
        return (size_t)snprintf(buf, 8, "\\x%02x", c);
    return 0;
}

/* Appends b'...' for the n bytes at p; runs of plain bytes are copied at once. */
static int repr_literal(tally_strbuf *out, const uint8_t *p, size_t n)
{
    char q = repr_quote(p, n);
    char open[2] = {'b', q};
    int rc = tally_strbuf_append(out, open, 2);
    size_t run = 0; /* start of the bytes copied as they are */
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char buf[8];
        size_t len = escape(p[i], q, buf);
        if (len == 0)
            continue;
        rc = tally_strbuf_append(out, (const char *)p + run, i - run);
        if (rc == 0)
            rc = tally_strbuf_append(out, buf, len);
        run = i + 1;
    }
    if (rc == 0 && n > run)
        rc = tally_strbuf_append(out, (const char *)p + run, n - run);
    if (rc == 0)
        rc = tally_strbuf_append(out, &q, 1);
    return rc;
}

/* The contents of a bytes or a bytearray; false for any other object. */
static bool contents(const void *o, const uint8_t **p, size_t *n)
{
    if (tallyT_is(o, &tally_bytes_type)) {
        *p = ((const bytes_obj *)o)->data;
        *n = ((const bytes_obj *)o)->size;
        return true;
    }
    if (tallyT_is(o, &tally_bytearray_type)) {
        *p = ((const bytearray_obj *)o)->data;
        *n = ((const bytearray_obj *)o)->size;
        return true;
    }
    return false;
}

/* Equal contents, for bytes and bytearray alike (as Python's b'a' == bytearray(b'a')). */
static int same_contents(void *self, void *other)
{
    const uint8_t *a, *b;
    size_t na, nb;
    if (!contents(self, &a, &na) || !contents(other, &b, &nb) || na != nb)
        return 0;
    return na == 0 || memcmp(a, b, na) == 0;
}

/* ---- bytes ------------------------------------------------------------------------------ */

static int bytes_hash(void *self, uint64_t *out)
{
    *out = ((bytes_obj *)self)->hash;
    return 0;
}

static int bytes_eq(void *self, void *other)
{
    const bytes_obj *a = self, *b = other;
    if (tallyT_is(other, &tally_bytes_type) && a->hash != b->hash)
        return 0; /* cached hashes differ: no need to compare the bytes */
    return same_contents(self, other);
}

static int bytes_repr(void *self, tally_strbuf *out)
{
    const bytes_obj *b = self;
    return repr_literal(out, b->data, b->size);
}

static const tally_type_ops bytes_ops = {
    .hash = bytes_hash,
    .eq = bytes_eq,
    .repr = bytes_repr,
    .owned_bytes = NULL, /* inline: owns nothing outside its block */
};

const tally_type tally_bytes_type = {
    .name = "bytes",
    .size = sizeof(bytes_obj),
    .item_size = 1,
    .ops = &bytes_ops,
};

void *tally_bytes(tally_rt *rt, const void *data, size_t n)
{
    if (!size_ok(rt, n, "tally_bytes") || !data_ok(rt, data, n, "tally_bytes"))
        return NULL;
    bytes_obj *b = tally_new_var(rt, &tally_bytes_type, n + 1); /* zero-filled: the NUL */
    if (b == NULL)
        return NULL;
    if (n != 0)
        memcpy(b->data, data, n);
    b->size = n;
    b->hash = tallyT_str_hash_bytes((const char *)b->data, n); /* str's hash of the bytes */
    return b;
}

int tally_is_bytes(const void *o)
{
    return tallyT_is(o, &tally_bytes_type);
}

const uint8_t *tally_bytes_data(const void *b)
{
    const bytes_obj *x = as_type(b, &tally_bytes_type, "tally_bytes_data");
    return x != NULL ? x->data : NULL;
}

size_t tally_bytes_size(const void *b)
{
    const bytes_obj *x = as_type(b, &tally_bytes_type, "tally_bytes_size");
    return x != NULL ? x->size : 0;
}

/* ---- bytearray storage --------------------------------------------------------------- */

/* The capacity to allocate for `need` bytes: CPython's bytearray growth. */
static size_t grown_capacity(size_t need)
{
    size_t cap = need + (need >> 3) + (need < 9 ? 3 : 6); /* no overflow: need <= BYTES_MAX */
    return cap > BYTES_MAX ? BYTES_MAX : cap;
}

/* Gives the data `cap` bytes' room without a copy and without running user code
 * (a medium block grown in place, a huge block's pages moved): true, or false
 * with nothing changed. */
static bool grow_nocopy(bytearray_obj *b, size_t cap)
{
    if (b->data == NULL)
        return false;
    tallyH_heap *h = tallyT_heap(b);
    uint8_t *d = tallyH_buf_resize_nocopy(h, b->data, cap);
    if (d == NULL)
        return false;
    size_t usable = tallyH_buf_usable(h, d);
    b->data = d;
    b->cap = usable < BYTES_MAX ? usable : BYTES_MAX;
    return true;
}

/* Makes room for `extra` more bytes than b has now: 0, or -1 with the error set
 * and b unchanged.  The data grows without a copy where the heap can do that
 * quietly; else the allocation may run user code that resizes b, so the need is
 * computed again afterwards and the current contents are copied. */
static int reserve(bytearray_obj *b, size_t extra, const char *what)
{
    tally_rt *rt = tally_runtime_of(b);
    tallyH_heap *h = tallyT_heap(b);
    for (;;) {
        size_t need;
        if (__builtin_add_overflow(b->size, extra, &need))
            need = SIZE_MAX; /* refused just below */
        if (!size_ok(rt, need, what))
            return -1;
        if (need <= b->cap)
            return 0;
        size_t cap = grown_capacity(need);
        if (grow_nocopy(b, cap))
            return 0;
        uint8_t *old = b->data;
        size_t size = b->size;
        uint8_t *d = tallyH_buf_alloc(h, cap);
        if (d == NULL)
            return -1;
        if (b->data != old || b->size != size) {
            tallyH_buf_free(h, d); /* changed meanwhile: measure again */
            continue;
        }
        size_t usable = tallyH_buf_usable(h, d);
        if (size != 0)
            memcpy(d, old, size);
        b->data = d;
        b->cap = usable < BYTES_MAX ? usable : BYTES_MAX;
        tallyH_buf_free(h, old);
    }
}

/* ---- bytearray type -------------------------------------------------------------------- */

static int bytearray_hash(void *self, uint64_t *out)
{
    (void)out;
    tallyB_error_set(err_of(self), TALLY_EINVAL, "unhashable type: 'bytearray'");
    return -1;
}

static int bytearray_repr(void *self, tally_strbuf *out)
{
    const bytearray_obj *b = self;
    int rc = tally_strbuf_append(out, "bytearray(", 10);
    if (rc == 0)
        rc = repr_literal(out, b->data, b->size);
    if (rc == 0)
        rc = tally_strbuf_append(out, ")", 1);
    return rc;
}

static size_t bytearray_owned_bytes(const void *self)
{
    const bytearray_obj *b = self;
    return tallyH_buf_usable(tallyT_heap(b), b->data);
}

static void bytearray_destroy(void *self)
{
    bytearray_obj *b = self;
    tallyH_buf_free(tallyT_heap(b), b->data);
    b->data = NULL;
    b->size = b->cap = 0;
}

static const tally_type_ops bytearray_ops = {
    .hash = bytearray_hash,
    .eq = same_contents,
    .repr = bytearray_repr,
    .owned_bytes = bytearray_owned_bytes,
};

const tally_type tally_bytearray_type = {
    .name = "bytearray",
    .size = sizeof(bytearray_obj),
    .destroy = bytearray_destroy,
    .ops = &bytearray_ops,
};

/* ---- bytearray API ----------------------------------------------------------------------- */

void *tally_bytearray(tally_rt *rt, const void *data, size_t n)
{
    if (!size_ok(rt, n, "tally_bytearray") || !data_ok(rt, data, n, "tally_bytearray"))
        return NULL;
    bytearray_obj *b = tally_new(rt, &tally_bytearray_type);
    if (b == NULL || n == 0)
        return b;
    if (tally_bytearray_append(b, data, n) != 0) {
        tally_decref(b);
        return NULL;
    }
    return b;
}

int tally_is_bytearray(const void *o)
{
    return tallyT_is(o, &tally_bytearray_type);
}

uint8_t *tally_bytearray_data(void *b)
{
    bytearray_obj *x = as_type(b, &tally_bytearray_type, "tally_bytearray_data");
    return x != NULL ? x->data : NULL;
}

size_t tally_bytearray_size(const void *b)
{
    const bytearray_obj *x = as_type(b, &tally_bytearray_type, "tally_bytearray_size");
    return x != NULL ? x->size : 0;
}

/* Where data lies inside b's own bytes: true with *off set, false if it does not
 * (compared as addresses, so no pointer outside the block is formed). */
static bool inside(const bytearray_obj *b, const void *data, size_t *off)
{
    uintptr_t p = (uintptr_t)data, lo = (uintptr_t)b->data;
    if (b->data == NULL || p < lo || p >= lo + b->size)
        return false;
    *off = (size_t)(p - lo);
    return true;
}

int tally_bytearray_append(void *b, const void *data, size_t n)
{
    bytearray_obj *x = as_type(b, &tally_bytearray_type, "tally_bytearray_append");
    if (x == NULL)
        return -1;
    if (!data_ok(tally_runtime_of(x), data, n, "tally_bytearray_append"))
        return -1;
    if (n == 0)
        return 0;
    size_t off = 0;
    bool own = inside(x, data, &off); /* its own bytes: found again after the move */
    if (reserve(x, n, "tally_bytearray_append") != 0)
        return -1;
    if (own && (off > x->size || n > x->size - off)) {
        tallyB_error_set(err_of(x), TALLY_EINVAL,
                         "tally_bytearray_append: the source shrank during the call");
        return -1;
    }
    memcpy(x->data + x->size, own ? x->data + off : (const uint8_t *)data, n);
    x->size += n;
    return 0;
}

int tally_bytearray_resize(void *b, size_t n)
{
    bytearray_obj *x = as_type(b, &tally_bytearray_type, "tally_bytearray_resize");
    if (x == NULL)
        return -1;
    if (n == 0) { /* all memory back: what bytearray.clear() does */
        bytearray_destroy(x);
        return 0;
    }
    /* Measured again each time: reserve may run user code that resizes x. */
    while (n > x->cap)
        if (reserve(x, n - x->size, "tally_bytearray_resize") != 0)
            return -1;
    if (n > x->size)
        memset(x->data + x->size, 0, n - x->size);
    x->size = n;
    return 0;
}
