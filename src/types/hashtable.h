/* hashtable.h - the insertion-ordered hash table shared by dict and set.
 *
 * The table (implemented in dict.c) is CPython 3.6's compact layout: a dense
 * array of entries in insertion order, and an index of 2^log2 small integer
 * slots (1, 2, 4 or 8 bytes each, by table size) pointing into it:
 *
 *     index:   [ -1 | 2 | -1 | 0 | -2 | 1 | -1 | -1 ]   -1 empty, -2 dummy
 *     entries: [ {h0,k0,v0} {NULL} {h2,k2,v2} ... ]      NULL key: deleted
 *
 * Entries have one of three layouts (below): a dict keyed only by strs leaves
 * the hash out (the str caches it), as CPython 3.11's unicode-keyed tables do,
 * and a set leaves the value out.  The table is the first
 * member of its owner object (struct dict, struct set), so the functions below
 * take the owner and reach the runtime through it.
 *
 * Every function that can run user code (hash, eq, a finalizer run by a release
 * or by a collection inside an allocation) leaves the table consistent before
 * doing so and reads it again afterwards; see dict.c.
 */
#ifndef TALLY_TYPES_HASHTABLE_H
#define TALLY_TYPES_HASHTABLE_H

#include "types/types.h"

/* One word of an entry: a key or value reference, or a stored hash. */
typedef union tallyT_word {
    void *p;
    uint64_t h;
} tallyT_word;

/* Entry layouts, chosen when the first entry is stored and kept while the arrays
 * exist (a non-str key stored in a STR table converts it to MIXED):
 *     MIXED  {hash, key, value}  24 bytes  a dict with some non-str key
 *     STR    {key, value}        16 bytes  a dict whose keys are all exact strs:
 *                                          the hash is read from the str itself
 *     SET    {hash, key}         16 bytes  a set (no values) */
enum { TALLYT_LAYOUT_NONE, TALLYT_LAYOUT_MIXED, TALLYT_LAYOUT_STR, TALLYT_LAYOUT_SET };

/* A dict starts as tally_dict_view (tally/types.h): index, entries, log2 and
 * layout are where the inline tally_dict_get reads them (checked in dict.c). */
typedef struct tallyT_table {
    uint8_t *index;         /* 2^log2 slots, or NULL while nothing was ever stored */
    tallyT_word *entries;   /* usable entries of tallyT_width() words, [0, nentries) written */
    uint8_t log2;           /* log2 of the index size; 0 while index is NULL */
    uint8_t layout;         /* TALLYT_LAYOUT_*; NONE while index is NULL */
    size_t nentries;        /* entries written, deleted ones included */
    size_t used;            /* live entries */
    uint64_t version;       /* bumped on every insertion, deletion, resize, clear */
    size_t walk_i, walk_pos; /* tallyT_table_item's cursor, valid for walk_version */
    uint64_t walk_version;
} tallyT_table;

/* Words per entry. */
TALLY_INLINE size_t tallyT_width(const tallyT_table *t)
{
    return t->layout == TALLYT_LAYOUT_MIXED ? 3 : 2;
}

/* Entry i's words. */
TALLY_INLINE tallyT_word *tallyT_entry(const tallyT_table *t, size_t i)
{
    return t->entries + i * tallyT_width(t);
}

/* The key of entry e (NULL once deleted), borrowed. */
TALLY_INLINE void *tallyT_entry_key(const tallyT_table *t, const tallyT_word *e)
{
    return e[t->layout == TALLYT_LAYOUT_STR ? 0 : 1].p;
}

/* The value of entry e, borrowed (NULL in a set). */
TALLY_INLINE void *tallyT_entry_value(const tallyT_table *t, const tallyT_word *e)
{
    if (t->layout == TALLYT_LAYOUT_SET)
        return NULL;
    return e[t->layout == TALLYT_LAYOUT_STR ? 1 : 2].p;
}

/* The hash of the key of live entry e. */
TALLY_INLINE uint64_t tallyT_entry_hash(const tallyT_table *t, const tallyT_word *e)
{
    return t->layout == TALLYT_LAYOUT_STR ? tallyT_str_hash_of(e[0].p) : e[0].h;
}

/* What an iterator over a table yields. */
enum { TALLYT_KEYS, TALLYT_VALUES, TALLYT_ITEMS };

/* Hashes key for the table: 0, or -1 with the error set (NULL or unhashable). */
TALLY_INTERNAL int tallyT_table_hash(void *owner, void *key, uint64_t *hash);
/* 1 with *value borrowed (may be NULL for a set), 0 absent, -1 error. */
TALLY_INTERNAL int tallyT_table_lookup(void *owner, void *key, uint64_t hash, void **value);
/* Stores key -> value (value NULL for a set).  1 inserted, 0 present (the value
 * replaced when `replace`), -1 error with the table unchanged. */
TALLY_INTERNAL int tallyT_table_insert(void *owner, void *key, uint64_t hash, void *value,
                                       bool replace);
/* Removes key: 1 removed (the value's reference moved to *value when value is not
 * NULL, else released), 0 absent, -1 error.  With `only_if` not NULL, the entry is
 * removed only if its value is that very object (else 0). */
TALLY_INTERNAL int tallyT_table_remove(void *owner, void *key, uint64_t hash, void *only_if,
                                       void **value);
/* Empties the table: detached first, then every reference released. */
TALLY_INTERNAL void tallyT_table_clear(void *owner);
/* For a type's destroy: frees the arrays and releases no reference (clear ran
 * first at death, so normally nothing is left; when the runtime closes, the
 * objects may be gone already). */
TALLY_INTERNAL void tallyT_table_free(void *owner);
TALLY_INTERNAL void tallyT_table_traverse(void *owner, tally_visit_fn visit, void *arg);
TALLY_INTERNAL size_t tallyT_table_owned(const void *owner);
/* The i-th live entry in insertion order (borrowed): 0, or -1 out of range.
 * Consecutive i cost O(1) each. */
TALLY_INTERNAL int tallyT_table_item(const void *owner, size_t i, void **key, void **value);
/* A new iterator yielding keys, values or (key, value) tuples. */
TALLY_INTERNAL void *tallyT_table_iter(void *owner, int kind);
/* Equality of two tables' contents: same keys (and, with values, equal values). */
TALLY_INTERNAL int tallyT_table_eq(void *a, void *b, bool values);

#endif /* TALLY_TYPES_HASHTABLE_H */
