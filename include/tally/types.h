/* tally/types.h - built-in types: ints, strings, bytes, tuples, lists, dicts, sets,
 * typed arrays, a weak-value map, and iteration.
 *
 * Every built-in value is an object (tally/object.h): release it with
 * tally_decref().  Functions that return an object return a new reference
 * unless they say "borrowed"; functions that store an object take their own
 * reference to it (the caller keeps its reference).  Failures return NULL or -1
 * with tally_last_error() set; nothing is changed by a failed call.
 *
 * The protocol: a type's `ops` (struct tally_type_ops) may give hashing,
 * equality, a debug representation, iteration and owned-memory sizes; every
 * built-in type has them, and user types may too.
 */
#ifndef TALLY_TYPES_H
#define TALLY_TYPES_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "tally/object.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- a growable text buffer ------------------------------------------------------ */

/* Collects text in one heap buffer (of the runtime's heap) and turns it into a str
 * with tally_strbuf_finish.  After an allocation failure the buffer stays valid,
 * further appends do nothing, and finish returns NULL with the error set. */
typedef struct tally_strbuf {
    tally_rt *rt;
    char *data;      /* NUL-terminated contents (NULL while empty) */
    size_t len;      /* bytes used */
    size_t cap;      /* bytes allocated */
    int failed;      /* an append failed */
} tally_strbuf;

TALLY_API void tally_strbuf_init(tally_strbuf *b, tally_rt *rt);
TALLY_API int tally_strbuf_append(tally_strbuf *b, const char *data, size_t n);
TALLY_API int tally_strbuf_appendf(tally_strbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends the debug representation of o (tally_repr's text). */
TALLY_API int tally_strbuf_append_repr(tally_strbuf *b, void *o);
/* A new str of the contents (which must be valid UTF-8); the buffer is released. */
TALLY_API void *tally_strbuf_finish(tally_strbuf *b);
/* Releases the buffer without making a str. */
TALLY_API void tally_strbuf_discard(tally_strbuf *b);

/* ---- the protocol --------------------------------------------------------------- */

typedef struct tally_type_ops {
    /* 0 with *out set, or -1 with the error set (unhashable: TALLY_EINVAL). */
    int (*hash)(void *self, uint64_t *out);
    /* 1 equal, 0 not equal, -1 error; other may be of any type. */
    int (*eq)(void *self, void *other);
    /* Appends the debug representation to out; 0, or -1 if out failed. */
    int (*repr)(void *self, tally_strbuf *out);
    /* A new iterator over self, or NULL with the error set. */
    void *(*iter)(void *self);
    /* Iterators: 1 with *out a new reference, 0 at the end, -1 on error. */
    int (*next)(void *self, void **out);
    /* Heap bytes self owns outside its own block (a list's item array). */
    size_t (*owned_bytes)(const void *self);
} tally_type_ops;

/* Hash of o: by value for the built-in immutable types (equal values hash
 * equal), by identity for objects whose type has no hash. */
TALLY_API int tally_hash(void *o, uint64_t *out);
/* 1 if a and b are equal (by value for built-in types, by identity otherwise),
 * 0 if not, -1 on error. */
TALLY_API int tally_eq(void *a, void *b);
/* A new str: the debug representation, as Python's repr() would print it. */
TALLY_API void *tally_repr(void *o);

/* A new iterator over o (containers, ranges, iterators themselves), or NULL with
 * the error set (TALLY_EINVAL if o is not iterable). */
TALLY_API void *tally_iter(void *o);
/* The next item of iterator it, a new reference; NULL at the end, with
 * tally_last_error() TALLY_OK, or NULL on error, with the error set. */
TALLY_API void *tally_next(void *it);
/* The same as 1 (item in *out), 0 (end) or -1 (error). */
TALLY_API int tally_iter_next(void *it, void **out);

/* Bytes of o's own block, header and rounding to its size class included, plus
 * what it owns outside it (like sys.getsizeof). */
TALLY_API size_t tally_sizeof(const void *o);
/* tally_sizeof of o and of every object reachable from it that is not shared
 * elsewhere: an object counts if all its references come from objects that
 * count (immortal objects never do).  Like pympler's asizeof, but shared objects
 * are left out.  0 with the error set if the walk's scratch memory runs out. */
TALLY_API size_t tally_deep_sizeof(void *o);

/* ---- int ------------------------------------------------------------------------- */

/* Small ints (TALLY_SMALL_INT_MIN..MAX, -5..256 as in CPython unless the build
 * says otherwise) are immortal and made once per runtime: never allocated again. */
TALLY_API extern const tally_type tally_int_type;
TALLY_API void *tally_int(tally_rt *rt, int64_t value);
TALLY_API int64_t tally_int_value(const void *o);
TALLY_API int tally_is_int(const void *o);

/* ---- str ------------------------------------------------------------------------- */

/* Immutable UTF-8 text, NUL-terminated, with its length in code points and its
 * hash computed once. */
TALLY_API extern const tally_type tally_str_type;
/* A new str from NUL-terminated UTF-8; TALLY_EINVAL if it is not valid UTF-8. */
TALLY_API void *tally_str(tally_rt *rt, const char *utf8);
TALLY_API void *tally_str_n(tally_rt *rt, const char *utf8, size_t nbytes);
TALLY_API void *tally_str_format(tally_rt *rt, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
TALLY_API void *tally_str_vformat(tally_rt *rt, const char *fmt, va_list ap);
TALLY_API int tally_is_str(const void *o);
TALLY_API const char *tally_str_data(const void *s);    /* borrowed, NUL-terminated */
TALLY_API size_t tally_str_bytes(const void *s);        /* length in bytes */
TALLY_API size_t tally_str_len(const void *s);          /* length in code points */
/* The interned str equal to s (s itself if it becomes the interned one): equal
 * interned strs are one object, so they compare by pointer. */
TALLY_API void *tally_str_intern(void *s);
TALLY_API void *tally_str_intern_c(tally_rt *rt, const char *utf8);
/* a + b in one allocation. */
TALLY_API void *tally_str_concat(tally_rt *rt, void *a, void *b);
/* sep.join(items): the n strs of items joined with sep (may be NULL for ""),
 * measured first, then made with one allocation. */
TALLY_API void *tally_str_join(tally_rt *rt, void *sep, size_t n, void *const items[]);
/* The same over any iterable of strs. */
TALLY_API void *tally_str_join_iter(tally_rt *rt, void *sep, void *iterable);

/* ---- tuple ----------------------------------------------------------------------- */

/* Immutable, fixed size; the empty tuple is one immortal object per runtime. */
TALLY_API extern const tally_type tally_tuple_type;
/* A tuple of the n objects of items (none may be NULL). */
TALLY_API void *tally_tuple(tally_rt *rt, size_t n, void *const items[]);
/* The same with the items as arguments: tally_tuple_of(rt, 2, a, b). */
TALLY_API void *tally_tuple_of(tally_rt *rt, size_t n, ...);
TALLY_API int tally_is_tuple(const void *o);
TALLY_API size_t tally_tuple_size(const void *t);
TALLY_API void *tally_tuple_get(const void *t, size_t i); /* borrowed; NULL if out of range */

/* ---- list ------------------------------------------------------------------------ */

/* Mutable, amortised growth.  Indexes may be negative (from the end, as in
 * Python); out of range is TALLY_EINVAL. */
TALLY_API extern const tally_type tally_list_type;
TALLY_API void *tally_list(tally_rt *rt, size_t capacity);
/* A new list of the items of any iterable. */
TALLY_API void *tally_list_from(tally_rt *rt, void *iterable);
TALLY_API int tally_is_list(const void *o);
TALLY_API size_t tally_list_size(const void *l);
TALLY_API void *tally_list_get(const void *l, ptrdiff_t i); /* borrowed; NULL if out of range */
TALLY_API int tally_list_set(void *l, ptrdiff_t i, void *o);
TALLY_API int tally_list_append(void *l, void *o);
TALLY_API int tally_list_extend(void *l, void *iterable);
TALLY_API int tally_list_insert(void *l, ptrdiff_t i, void *o); /* clamped, as list.insert */
TALLY_API int tally_list_delete(void *l, ptrdiff_t i);
TALLY_API void *tally_list_pop(void *l, ptrdiff_t i);  /* new reference */
/* A new list of l[start:stop:step] (Python's slice rules; step != 0).  An omitted
 * bound is PTRDIFF_MIN or PTRDIFF_MAX, which clamp as Python's None does: l[::-1]
 * is tally_list_slice(l, PTRDIFF_MAX, PTRDIFF_MIN, -1). */
TALLY_API void *tally_list_slice(const void *l, ptrdiff_t start, ptrdiff_t stop, ptrdiff_t step);
TALLY_API void tally_list_clear(void *l);
TALLY_API void tally_list_reverse(void *l);
/* Stable sort; cmp returns <0, 0, >0 (it must not change the list).  A NULL cmp
 * sorts ints and strs by value.  -1 with the error set if an item cannot be
 * compared. */
typedef int (*tally_cmp_fn)(void *a, void *b, void *arg);
TALLY_API int tally_list_sort(void *l, tally_cmp_fn cmp, void *arg);

/* ---- dict ------------------------------------------------------------------------ */

/* Insertion-ordered hash table (CPython 3.6's compact layout: a dense array of
 * entries plus a small index table), keys hashed and compared by the protocol;
 * keys must be hashable (an unhashable key is TALLY_EINVAL).  Lookups of str keys
 * compare hashes and pointers first. */
TALLY_API extern const tally_type tally_dict_type;
TALLY_API void *tally_dict(tally_rt *rt);
TALLY_API int tally_is_dict(const void *o);
TALLY_API size_t tally_dict_size(const void *d);
/* d[key] = value (both referenced); 0 or -1. */
TALLY_API int tally_dict_set(void *d, void *key, void *value);
/* d[key], borrowed; NULL if absent (no error) or on error (error set: check
 * tally_last_error, or use tally_dict_lookup). */
TALLY_API void *tally_dict_get(const void *d, void *key);
/* 1 with *value borrowed, 0 absent, -1 error. */
TALLY_API int tally_dict_lookup(const void *d, void *key, void **value);
/* The same with a C string key (no str is made). */
TALLY_API void *tally_dict_get_c(const void *d, const char *key);
TALLY_API int tally_dict_set_c(void *d, const char *key, void *value);
/* del d[key]: 1 deleted, 0 absent, -1 error. */
TALLY_API int tally_dict_delete(void *d, void *key);
/* pop: a new reference to the value removed, or NULL (absent: no error). */
TALLY_API void *tally_dict_pop(void *d, void *key);
TALLY_API void tally_dict_clear(void *d);
/* The i-th live entry in insertion order (borrowed), for 0 <= i < size: a walk
 * in O(1) per step; 0 or -1 (out of range). */
TALLY_API int tally_dict_item(const void *d, size_t i, void **key, void **value);
/* Iterators: keys (what tally_iter of a dict gives), values, items (tuples). */
TALLY_API void *tally_dict_keys(void *d);
TALLY_API void *tally_dict_values(void *d);
TALLY_API void *tally_dict_items(void *d);

/* ---- set ------------------------------------------------------------------------- */

TALLY_API extern const tally_type tally_set_type;
TALLY_API void *tally_set(tally_rt *rt);
TALLY_API void *tally_set_from(tally_rt *rt, void *iterable);
TALLY_API int tally_is_set(const void *o);
TALLY_API size_t tally_set_size(const void *s);
/* 1 added, 0 already there, -1 error. */
TALLY_API int tally_set_add(void *s, void *key);
/* 1 present, 0 absent, -1 error. */
TALLY_API int tally_set_contains(const void *s, void *key);
/* 1 removed, 0 absent, -1 error. */
TALLY_API int tally_set_discard(void *s, void *key);
TALLY_API void tally_set_clear(void *s);

/* ---- weak-value map ---------------------------------------------------------------- */

/* Python's WeakValueDictionary: values are held by weak references, and an entry
 * disappears when its value dies (by count or by the collector).  Keys are held
 * strongly. */
TALLY_API extern const tally_type tally_weakvaluemap_type;
TALLY_API void *tally_weakvaluemap(tally_rt *rt);
TALLY_API int tally_weakvaluemap_set(void *m, void *key, void *value);
/* A new reference to the live value, or NULL (absent or dead: no error). */
TALLY_API void *tally_weakvaluemap_get(void *m, void *key);
TALLY_API int tally_weakvaluemap_delete(void *m, void *key);
/* Live entries (entries whose value died are gone already). */
TALLY_API size_t tally_weakvaluemap_size(void *m);

/* ---- bytes and bytearray --------------------------------------------------------- */

TALLY_API extern const tally_type tally_bytes_type;
TALLY_API extern const tally_type tally_bytearray_type;
TALLY_API void *tally_bytes(tally_rt *rt, const void *data, size_t n);   /* immutable */
TALLY_API int tally_is_bytes(const void *o);
TALLY_API const uint8_t *tally_bytes_data(const void *b);
TALLY_API size_t tally_bytes_size(const void *b);
TALLY_API void *tally_bytearray(tally_rt *rt, const void *data, size_t n); /* mutable */
TALLY_API int tally_is_bytearray(const void *o);
/* The current contents: valid until the bytearray is next resized. */
TALLY_API uint8_t *tally_bytearray_data(void *b);
TALLY_API size_t tally_bytearray_size(const void *b);
TALLY_API int tally_bytearray_append(void *b, const void *data, size_t n); /* amortised */
TALLY_API int tally_bytearray_resize(void *b, size_t n);                   /* new bytes zero */

/* ---- typed arrays ------------------------------------------------------------------ */

/* Python's array module: unboxed numbers stored contiguously, never scanned by
 * the collector. */
typedef enum tally_array_kind {
    TALLY_INT8, TALLY_UINT8, TALLY_INT16, TALLY_UINT16, TALLY_INT32, TALLY_UINT32,
    TALLY_INT64, TALLY_UINT64, TALLY_FLOAT32, TALLY_FLOAT64
} tally_array_kind;
TALLY_API extern const tally_type tally_array_type;
TALLY_API void *tally_array(tally_rt *rt, tally_array_kind kind, size_t capacity);
TALLY_API int tally_is_array(const void *o);
TALLY_API tally_array_kind tally_array_kind_of(const void *a);
TALLY_API size_t tally_array_size(const void *a);
TALLY_API size_t tally_array_itemsize(const void *a);
/* Appends n items from data (of the array's kind); amortised growth. */
TALLY_API int tally_array_extend(void *a, const void *data, size_t n);
/* Appends one item given as a double or an int64 (converted; range-checked). */
TALLY_API int tally_array_append_i64(void *a, int64_t v);
TALLY_API int tally_array_append_f64(void *a, double v);
TALLY_API int tally_array_get_i64(const void *a, ptrdiff_t i, int64_t *out);
TALLY_API int tally_array_get_f64(const void *a, ptrdiff_t i, double *out);
/* A new array of a[start:stop] (Python's clamping; no step). */
TALLY_API void *tally_array_slice(const void *a, ptrdiff_t start, ptrdiff_t stop);
/* A buffer view: the items, contiguous, valid until the array is next resized. */
TALLY_API void *tally_array_data(void *a);

/* ---- generators and lazy pipelines ----------------------------------------------- */

/* A generator: an iterator that calls step(state, &item) for each item: step
 * returns 1 with a new reference in item, 0 at the end, -1 on error (error set).
 * state (an object, may be NULL) is kept alive by the generator. */
typedef int (*tally_gen_step)(void *state, void **item);
TALLY_API void *tally_gen_new(tally_rt *rt, tally_gen_step step, void *state);

/* Lazy iterators, each holding its source iterator, producing one item at a time:
 *   range(start, stop, step) as ints (a sequence: see below);  map(fn, it);  filter(pred, it);
 *   zip(its...) as tuples;  enumerate(it, start) as (int, item) tuples;
 *   take(it, n): the first n items.
 * fn returns a new reference or NULL (error set); pred returns 1, 0 or -1. */
typedef void *(*tally_map_fn)(void *item, void *arg);
typedef int (*tally_pred_fn)(void *item, void *arg);
TALLY_API void *tally_range(tally_rt *rt, int64_t start, int64_t stop, int64_t step);
/* A range is an immutable sequence, not an iterator (as in Python): tally_iter
 * of it makes a new iterator each time, so it can be walked again; it compares
 * and hashes by the ints it produces.  Its length, and item i (negative i counts
 * from the end): 0, or -1 (TALLY_EINVAL) out of range. */
TALLY_API extern const tally_type tally_range_type;
TALLY_API int tally_is_range(const void *o);
TALLY_API uint64_t tally_range_size(const void *r);
TALLY_API int tally_range_get(const void *r, int64_t i, int64_t *out);
TALLY_API void *tally_map(tally_rt *rt, tally_map_fn fn, void *arg, void *iterable);
TALLY_API void *tally_filter(tally_rt *rt, tally_pred_fn pred, void *arg, void *iterable);
TALLY_API void *tally_zip(tally_rt *rt, size_t n, void *const iterables[]);
TALLY_API void *tally_enumerate(tally_rt *rt, void *iterable, int64_t start);
TALLY_API void *tally_take(tally_rt *rt, void *iterable, size_t n);

/* ---- inline fast paths ------------------------------------------------------------ */

/* The hottest calls are inline, as CPython's Py_INCREF and PyList_GET_ITEM are: a
 * few instructions handle the common case (a small int already made, a list with
 * room, a list iterator with items left) and anything else calls the exported
 * function of the same name, which does everything.  The macros below replace the
 * calls; `(tally_int)(rt, v)`, `&tally_int` or defining TALLY_NO_INLINE before
 * including reach the exported functions instead.
 *
 * They read the layouts below, which are therefore part of the ABI: the first
 * words of every runtime, the start of a list and of a list iterator, and the type
 * index built-in objects carry in their header.  Treat them as read-only. */
typedef struct tally_rt_view {
    void *const *small_ints; /* immortal small ints by value - small_min; NULL: not made yet */
    int64_t small_min;
    uint64_t small_count;
} tally_rt_view;

typedef struct tally_list_view {
    size_t size;
    size_t cap;
    void **items;
} tally_list_view;

typedef struct tally_list_iter_view {
    tally_list_view *seq; /* NULL once exhausted */
    size_t index;
} tally_list_iter_view;

/* The start of a dict.  While `layout` is TALLY_DICT_LAYOUT_STR, every key is a
 * str, `entries` holds {key, value} pairs and `index` has 2^log2 slots.  For
 * 16 <= log2 <= 31 (the tables the inline lookup reads) a slot is an int32_t:
 * -1 empty, -2 deleted, or else entry number n in its low log2 bits and a tag,
 * bits 32 and up of the key's hash (31 - log2 of them), above:
 *     slot = n | ((hash >> 32) & ((1 << (31 - log2)) - 1)) << log2
 * A key's probe visits slot hash & (2^log2 - 1) first and then, with perturb
 * starting at the hash, perturb >>= 5; i = (5 * i + 1 + perturb) & (2^log2 - 1).
 * A library that changes any of this gives such tables a new layout number, so
 * that code built against these headers calls the exported function instead. */
typedef struct tally_dict_view {
    const void *index;
    void *const *entries;
    uint8_t log2;
    uint8_t layout;
} tally_dict_view;

/* The start of a str: the hash of its bytes (what tally_hash returns). */
typedef struct tally_str_view {
    uint64_t hash;
} tally_str_view;

/* Type indexes of built-in objects, in the low bits of tally_head.info. */
#define TALLY_INFO_TYPE_MASK 0xFFFFFu
#define TALLY_TYPEIX_INT 0u
#define TALLY_TYPEIX_STR 1u
#define TALLY_TYPEIX_LIST 3u
#define TALLY_TYPEIX_DICT 4u
#define TALLY_TYPEIX_LIST_ITER 10u

#define TALLY_DICT_LAYOUT_STR 2u

static inline int tally_typeix_is_(const void *o, unsigned ix)
{
    return (TALLY_HEAD(o)->info & TALLY_INFO_TYPE_MASK) == ix;
}

/* tally_incref when that writes at most the count: false (nothing done) when its
 * out-of-line half would run, so that the caller's exported function takes over
 * (the library's own frameless fast paths use it too). */
static inline int tally_incref_quick_(void *o)
{
    tally_head *h = TALLY_HEAD(o);
    uint32_t rc = h->rc;
    if (__builtin_expect(rc - 1u < TALLY_RC_IMMORTAL_MIN - 2u, 1)) {
        h->rc = rc + 1u;
        return 1;
    }
    return rc == TALLY_RC_IMMORTAL;
}

static inline void *tally_int_inline(tally_rt *rt, int64_t value)
{
    const tally_rt_view *v = (const tally_rt_view *)(const void *)rt;
    uint64_t i = (uint64_t)value - (uint64_t)v->small_min;
    if (i < v->small_count && v->small_ints[i] != NULL)
        return v->small_ints[i]; /* immortal: the new reference costs nothing */
    return (tally_int)(rt, value);
}

static inline int64_t tally_int_value_inline(const void *o)
{
    if (o != NULL && tally_typeix_is_(o, TALLY_TYPEIX_INT)) {
        int64_t x;
        memcpy(&x, o, sizeof x);
        return x;
    }
    return (tally_int_value)(o);
}

static inline size_t tally_list_size_inline(const void *l)
{
    if (l != NULL && tally_typeix_is_(l, TALLY_TYPEIX_LIST))
        return ((const tally_list_view *)l)->size;
    return (tally_list_size)(l);
}

static inline int tally_list_append_inline(void *l, void *o)
{
    if (l != NULL && o != NULL && tally_typeix_is_(l, TALLY_TYPEIX_LIST)) {
        tally_list_view *v = (tally_list_view *)l;
        if (v->size < v->cap && tally_incref_quick_(o)) {
            v->items[v->size++] = o;
            return 0;
        }
    }
    return (tally_list_append)(l, o);
}

static inline void *tally_next_inline(void *it)
{
    if (it != NULL && tally_typeix_is_(it, TALLY_TYPEIX_LIST_ITER)) {
        tally_list_iter_view *i = (tally_list_iter_view *)it;
        tally_list_view *l = i->seq;
        if (l != NULL && i->index < l->size) {
            void *x = l->items[i->index];
            if (tally_incref_quick_(x)) {
                i->index++;
                return x;
            }
        }
    }
    return (tally_next)(it);
}

/* The entry of `key` in a big str-keyed dict's index when it holds that very
 * object (the common case: keys kept or interned), or NULL when the exported
 * function must decide (another key with the same tag, the end of the probe).
 * A slot matches when its bits above the entry number are the tag with the sign
 * clear: one test passes over empty and deleted slots and other keys' entries. */
static inline void *const *tally_dict_find_same_(const tally_dict_view *t, unsigned log2,
                                                 const void *key)
{
    const uint64_t hash = ((const tally_str_view *)key)->hash;
    const uint32_t low = ~(~0u << log2); /* the entry number's bits */
    const uint32_t want = ((uint32_t)(hash >> 32) << log2) & 0x7FFFFFFFu;
    const uint32_t *index = (const uint32_t *)t->index;
    uint64_t i = hash & low, perturb = hash;
    for (;;) {
        uint32_t v = index[i];
        if (((v ^ want) & ~low) == 0) {
            void *const *e = t->entries + 2 * (size_t)(v & low);
            return e[0] == key ? e : NULL;
        }
        if (v == 0xFFFFFFFFu) /* empty: the probe ends */
            return NULL;
        perturb >>= 5;
        i = (5 * i + 1 + perturb) & low;
    }
}

static inline void *tally_dict_get_inline(const void *d, void *key)
{
    if (d != NULL && key != NULL && tally_typeix_is_(d, TALLY_TYPEIX_DICT) &&
        tally_typeix_is_(key, TALLY_TYPEIX_STR)) {
        const tally_dict_view *t = (const tally_dict_view *)d;
        if (t->layout == TALLY_DICT_LAYOUT_STR && t->log2 - 16u < 16u) {
            void *const *e = tally_dict_find_same_(t, t->log2, key);
            if (e != NULL)
                return e[1]; /* borrowed, as the exported function returns it */
        }
    }
    return (tally_dict_get)(d, key);
}

#ifndef TALLY_NO_INLINE
#define tally_dict_get(d, key) tally_dict_get_inline((d), (key))
#define tally_int(rt, value) tally_int_inline((rt), (value))
#define tally_int_value(o) tally_int_value_inline((o))
#define tally_list_size(l) tally_list_size_inline((l))
#define tally_list_append(l, o) tally_list_append_inline((l), (o))
#define tally_next(it) tally_next_inline((it))
#endif

#ifdef __cplusplus
}
#endif

#endif /* TALLY_TYPES_H */
