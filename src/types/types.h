/* types.h - internal state and helpers of the built-in types (src/types/).
 *
 * The per-runtime part of the built-in types lives in tally_rt (runtime.h): the
 * cache of small ints, the intern table of strs and the empty tuple, all made on
 * first use (opening a runtime allocates nothing for them; it only registers the
 * built-in types, in the type entries the runtime holds inline).
 */
#ifndef TALLY_TYPES_INTERNAL_H
#define TALLY_TYPES_INTERNAL_H

#include <stdbool.h>
#include <string.h>

#include "base/base.h"
#include "base/error.h"
#include "object/object.h"
#include "tally/types.h"

#ifndef TALLY_SMALL_INT_MIN
#define TALLY_SMALL_INT_MIN (-5)
#endif
#ifndef TALLY_SMALL_INT_MAX
#define TALLY_SMALL_INT_MAX 256
#endif
#define TALLY_SMALL_INT_COUNT (TALLY_SMALL_INT_MAX - TALLY_SMALL_INT_MIN + 1)

typedef struct tallyT_state {
    void *small_ints[TALLY_SMALL_INT_COUNT]; /* immortal ints, NULL until first asked */
    uint64_t *interned;       /* intern table: open addressing, power of 2 (str.c), */
                              /* its words then a tag byte per slot, one block */
    size_t interned_cap;
    size_t interned_used;
    void *empty_tuple;        /* immortal, NULL until first asked */
    unsigned depth;           /* nested repr and eq calls (see TALLY_NESTING_MAX) */
} tallyT_state;

/* Nested containers deeper than this make repr and eq fail (TALLY_EOVERFLOW)
 * instead of overflowing the C stack, as CPython's recursion limit does. */
#ifndef TALLY_NESTING_MAX
#define TALLY_NESTING_MAX 1000
#endif

/* The built-in types are registered when a runtime opens, in this order, so
 * their type indexes are the same in every runtime: checking an object's type is
 * one compare of its header with a constant, with no runtime lookup. */
enum tallyT_builtin {
    TALLY_BT_INT, TALLY_BT_STR, TALLY_BT_TUPLE, TALLY_BT_LIST, TALLY_BT_DICT, TALLY_BT_SET,
    TALLY_BT_BYTES, TALLY_BT_BYTEARRAY, TALLY_BT_ARRAY, TALLY_BT_WEAKVALUEMAP,
    TALLY_BT_LIST_ITER, TALLY_BT_TUPLE_ITER, TALLY_BT_TABLE_ITER, TALLY_BT_COUNT
};
/* The iterators of lists, tuples, dicts and sets (defined in their files). */
TALLY_INTERNAL extern const tally_type tallyT_list_iter_type;
TALLY_INTERNAL extern const tally_type tallyT_tuple_iter_type;
TALLY_INTERNAL extern const tally_type tallyT_table_iter_type;
TALLY_INTERNAL extern const tally_type *const tallyT_builtin[TALLY_BT_COUNT];

/* Registers the built-in types (in the runtime's inline type entries: nothing is
 * allocated); 0, or -1 with the error set if that was impossible. */
TALLY_INTERNAL int tallyT_init(tally_rt *rt);

/* The runtime's error record, for the types' failures. */
TALLY_INTERNAL tallyB_errstate *tallyT_err(tally_rt *rt);

/* str.c: the hash a str of these bytes has, and whether str s holds exactly these
 * bytes (hash first): lookups by C string without making a str. */
TALLY_INTERNAL uint64_t tallyT_str_hash_bytes(const char *p, size_t n);
TALLY_INTERNAL bool tallyT_str_is_bytes(const void *s, uint64_t hash, const char *p, size_t n);

/* The heap of o's runtime (its first member), where containers keep their
 * buffers (tallyH_buf_*, heap/heap.h). */
struct tallyH_heap;
TALLY_INLINE struct tallyH_heap *tallyT_heap(const void *o)
{
    return (struct tallyH_heap *)(void *)tally_runtime_of(o);
}

/* The type of o: from the constant table for built-in types. */
TALLY_INLINE const tally_type *tallyT_type(const void *o)
{
    uint32_t i = tallyO_info(o) & TALLY_OF_TYPE_MASK;
    return i < TALLY_BT_COUNT ? tallyT_builtin[i] : tally_type_of(o);
}

/* Is o (not NULL) exactly of built-in type bt?  One compare of its header. */
TALLY_INLINE bool tallyT_is_bt(const void *o, enum tallyT_builtin bt)
{
    return (tallyO_info(o) & TALLY_OF_TYPE_MASK) == (uint32_t)bt;
}

TALLY_INLINE bool tallyT_is_str(const void *o)
{
    return tallyT_is_bt(o, TALLY_BT_STR);
}

/* The cached hash of str s: the first word of every str (str.c checks this). */
TALLY_INLINE uint64_t tallyT_str_hash_of(const void *s)
{
    uint64_t h;
    memcpy(&h, s, sizeof h);
    return h;
}

/* Do strs a and b hold the same text?  No user code runs. */
TALLY_INTERNAL bool tallyT_str_same(const void *a, const void *b);

/* Is o (which may be NULL) of exactly type t? */
TALLY_INLINE bool tallyT_is(const void *o, const tally_type *t)
{
    return o != NULL && tallyT_type(o) == t;
}

#endif /* TALLY_TYPES_INTERNAL_H */
