/* tally/types.h - built-in types: ints, strings, tuples, lists, and iteration.
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

/* ---- generators and lazy pipelines ----------------------------------------------- */

/* A generator: an iterator that calls step(state, &item) for each item: step
 * returns 1 with a new reference in item, 0 at the end, -1 on error (error set).
 * state (an object, may be NULL) is kept alive by the generator. */
typedef int (*tally_gen_step)(void *state, void **item);
TALLY_API void *tally_gen_new(tally_rt *rt, tally_gen_step step, void *state);

/* Lazy iterators, each holding its source iterator, producing one item at a time:
 *   range(start, stop, step) as ints;  map(fn, it);  filter(pred, it);
 *   zip(its...) as tuples;  enumerate(it, start) as (int, item) tuples;
 *   take(it, n): the first n items.
 * fn returns a new reference or NULL (error set); pred returns 1, 0 or -1. */
typedef void *(*tally_map_fn)(void *item, void *arg);
typedef int (*tally_pred_fn)(void *item, void *arg);
TALLY_API void *tally_range(tally_rt *rt, int64_t start, int64_t stop, int64_t step);
TALLY_API void *tally_map(tally_rt *rt, tally_map_fn fn, void *arg, void *iterable);
TALLY_API void *tally_filter(tally_rt *rt, tally_pred_fn pred, void *arg, void *iterable);
TALLY_API void *tally_zip(tally_rt *rt, size_t n, void *const iterables[]);
TALLY_API void *tally_enumerate(tally_rt *rt, void *iterable, int64_t start);
TALLY_API void *tally_take(tally_rt *rt, void *iterable, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* TALLY_TYPES_H */
