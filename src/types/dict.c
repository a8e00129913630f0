/* dict.c - the insertion-ordered hash table (shared with set.c through
 * hashtable.h), the built-in dict on top of it, and the weak-value map.
 *
 * The table is CPython 3.6's compact layout.  Entries {hash, key, value} are
 * appended to a dense array in insertion order (a dict keyed only by strs stores
 * {key, value} and reads the hash from the str; a set stores {hash, key}: see
 * hashtable.h); an index of 2^log2 slots holds,
 * for each occupied position of the open-addressing probe sequence, the number of
 * an entry (or EMPTY, or DUMMY where an entry was deleted):
 *
 *     index  (int8/16/32/64 by size):  [ E | 2 | E | 0 | D | 1 | E | E ]
 *                                      (entry numbers, with hash tags above them)
 *     entries (dense, in order):       [ {h,k0,v0} {h,k1,v1} {h,k2,v2} {0,NULL,NULL} ...]
 *
 * Probing starts at hash & mask and follows i = 5i + 1 + perturb, perturb >>= 5,
 * so every bit of the hash takes part, then every slot is reached.  Deleting
 * leaves a DUMMY in the index (the probe runs through it) and a NULL key in the
 * entry; the entry array is never reused in place, so when it is full the table
 * is rebuilt for three times the live entries, which also drops every dummy (and
 * shrinks a table emptied by deletions).  The entry array holds exactly 2/3 of the
 * index size, so the index is never more than 2/3 occupied and probes end.
 * Both arrays come from the runtime's heap (as containers' buffers: medium
 * blocks in the sizes between the classes and half an arena), separately from
 * the owner object; an empty table has neither.
 *
 * Re-entrancy.  User code runs inside these calls: a key's hash or eq, a
 * finalizer or weak-reference callback run by a release, and the collector (with
 * finalizers) run by any allocation.  It may change this very table.  Hence:
 *   - the table is consistent (every key and value a valid reference, the index
 *     matching the entries) whenever user code can run;
 *   - `version` changes with every insertion, deletion, rebuild and clear; a
 *     lookup that called eq starts again if it changed (or the key it compared
 *     was replaced), and a rebuild whose allocations ran user code that changed
 *     the table throws its arrays away and measures again;
 *   - keys and values are held by the caller's function while it calls user code,
 *     and old references are released last, once the table is consistent.
 * A failed call changes nothing: a rebuild either completes or leaves the old
 * arrays in place, and nothing is stored before it.
 */
#include "types/hashtable.h"

#include <string.h>

#include "runtime/runtime.h"

#define IX_EMPTY (-1)
#define IX_DUMMY (-2)
#define IX_ERROR (-3) /* find(): failed, error set */
#define IX_CHANGED (-4) /* keys_equal(): the table changed under the comparison */

#define MIN_LOG2 3       /* 8 slots, 5 entries */
#define MAX_LOG2 48      /* far beyond any heap; keeps every size computation exact */
#define PERTURB_SHIFT 5

/* The inline tally_dict_get (tally/types.h) reads a str-keyed table of 2^16 to
 * 2^31 slots as this file writes it: a change to the slots, the tags or the
 * probe sequence below must give such tables a new layout number. */
_Static_assert(offsetof(tallyT_table, index) == offsetof(tally_dict_view, index) &&
                   offsetof(tallyT_table, entries) == offsetof(tally_dict_view, entries) &&
                   offsetof(tallyT_table, log2) == offsetof(tally_dict_view, log2) &&
                   offsetof(tallyT_table, layout) == offsetof(tally_dict_view, layout),
               "a table starts as tally_dict_view");
_Static_assert(TALLYT_LAYOUT_STR == TALLY_DICT_LAYOUT_STR && IX_EMPTY == -1 && IX_DUMMY == -2 &&
                   PERTURB_SHIFT == 5,
               "the str-keyed table the inline lookup reads");


static tallyT_table *table_of(const void *owner)
{
    return (tallyT_table *)owner; /* the first member of every owner */
}

static tally_rt *rt_of(const void *o)
{
    return tally_runtime_of(o);
}

static const char *name_of(const void *o)
{
    const char *name = tally_type_of(o)->name;
    return name ? name : "object";
}

/* ---- the index ----------------------------------------------------------------- */

/* Bytes per index slot: the smallest signed integer that holds every entry
 * number of a table of 2^log2 slots (at most 2/3 of them) and the two markers. */
static size_t slot_width(unsigned log2)
{
    return log2 <= 7 ? 1 : log2 <= 15 ? 2 : log2 <= 31 ? 4 : 8;
}

/* Hash tags.  An entry number needs log2 bits, so a slot's bits between it and
 * the sign (8 * width - 1 - log2 of them, up to 32) hold bits of the entry's
 * hash: a probe passes an occupied slot whose tag differs without reading the
 * entry, and in a str-keyed table without reading the key's str either (each a
 * cache miss in a big table).  Equal hashes have equal tags, so no key that
 * could be equal is ever skipped. */
TALLY_INLINE uint64_t tag_of_w(size_t width, unsigned log2, uint64_t hash)
{
    unsigned bits = 8 * (unsigned)width - 1 - log2;
    if (bits > 32)
        bits = 32;
    return bits == 0 ? 0 : (hash >> 32) & (((uint64_t)1 << bits) - 1);
}

static uint64_t tag_of(unsigned log2, uint64_t hash)
{
    return tag_of_w(slot_width(log2), log2, hash);
}

/* What a slot holds for entry n of a key with this hash. */
static int64_t slot_value(unsigned log2, size_t n, uint64_t hash)
{
    return (int64_t)((uint64_t)n | tag_of(log2, hash) << log2);
}

/* The entry number in occupied slot value v, or -1 if its tag is not `tag`. */
static int64_t tagged_entry(int64_t v, unsigned log2, uint64_t tag)
{
    if (((uint64_t)v >> log2) != tag)
        return -1;
    return (int64_t)((uint64_t)v & (((uint64_t)1 << log2) - 1));
}

/* Slot i of an index of `width`-byte slots (a constant wherever this is inlined). */
TALLY_INLINE int64_t ix_load(const uint8_t *index, size_t width, size_t i)
{
    switch (width) {
    case 1:
        return ((const int8_t *)index)[i];
    case 2:
        return ((const int16_t *)(const void *)index)[i];
    case 4:
        return ((const int32_t *)(const void *)index)[i];
    default:
        return ((const int64_t *)(const void *)index)[i];
    }
}

static int64_t ix_get(const uint8_t *index, unsigned log2, size_t i)
{
    return ix_load(index, slot_width(log2), i);
}

static void ix_set(uint8_t *index, unsigned log2, size_t i, int64_t ix)
{
    if (log2 <= 7)
        ((int8_t *)index)[i] = (int8_t)ix;
    else if (log2 <= 15)
        ((int16_t *)(void *)index)[i] = (int16_t)ix;
    else if (log2 <= 31)
        ((int32_t *)(void *)index)[i] = (int32_t)ix;
    else
        ((int64_t *)(void *)index)[i] = ix;
}

static size_t usable_of(unsigned log2)
{
    return ((size_t)1 << log2) * 2 / 3;
}

typedef struct probe {
    size_t mask, i;
    uint64_t perturb;
} probe;

static probe probe_start(unsigned log2, uint64_t hash)
{
    size_t mask = ((size_t)1 << log2) - 1;
    return (probe){mask, (size_t)hash & mask, hash};
}

static void probe_next(probe *p)
{
    p->perturb >>= PERTURB_SHIFT;
    p->i = (p->i * 5 + (size_t)p->perturb + 1) & p->mask;
}

/* The first free slot (EMPTY or DUMMY) of hash's probe sequence: where a key
 * known to be absent goes.  The index always has empty slots. */
static size_t free_slot(const uint8_t *index, unsigned log2, uint64_t hash)
{
    probe p = probe_start(log2, hash);
    while (ix_get(index, log2, p.i) >= 0)
        probe_next(&p);
    return p.i;
}

/* ---- lookup ---------------------------------------------------------------------- */

/* Compares the key of entry e with key (equal hashes): 1, 0, -1 (error), or
 * IX_CHANGED if the comparison (user code) changed the table. */
static int keys_equal(tallyT_table *t, void *k, void *key)
{
    if (tallyT_is_str(k) && tallyT_is_str(key)) /* no user code: compare the text */
        return tallyT_str_same(k, key);
    uint64_t version = t->version;
    tally_incref(k); /* eq may delete the entry: k must outlive the call */
    int r = tally_eq(k, key);
    tally_decref(k);
    if (t->version != version)
        return IX_CHANGED;
    return r;
}

/* Finds key: its entry number with *slot its index slot, IX_EMPTY if absent
 * (with *slot the first free slot of its probe sequence, where it would go), or
 * IX_ERROR.  Identical keys match at once (interned and reused strs); equal ones
 * are compared only when their hashes are equal. */
static int64_t find(tallyT_table *t, void *key, uint64_t hash, size_t *slot)
{
restart:
    if (t->index == NULL)
        return IX_EMPTY;
    size_t first_free = SIZE_MAX;
    uint64_t tag = tag_of(t->log2, hash);
    for (probe p = probe_start(t->log2, hash);; probe_next(&p)) {
        int64_t ix = ix_get(t->index, t->log2, p.i);
        if (ix == IX_EMPTY) {
            *slot = first_free != SIZE_MAX ? first_free : p.i;
            return IX_EMPTY;
        }
        if (ix == IX_DUMMY) {
            if (first_free == SIZE_MAX)
                first_free = p.i;
            continue;
        }
        if ((ix = tagged_entry(ix, t->log2, tag)) < 0)
            continue;
        const tallyT_word *e = tallyT_entry(t, (size_t)ix);
        void *k = tallyT_entry_key(t, e);
        if (k != key) {
            if (tallyT_entry_hash(t, e) != hash)
                continue;
            int r = keys_equal(t, k, key);
            if (r == IX_CHANGED)
                goto restart;
            if (r < 0)
                return IX_ERROR;
            if (r == 0)
                continue;
        }
        *slot = p.i;
        return ix;
    }
}

/* ---- rebuilding ------------------------------------------------------------------ */

/* The index size for `used` live entries and room to grow: 3 * used slots
 * (CPython's growth rate), at least 8.  0 if beyond MAX_LOG2. */
static unsigned log2_for(size_t used)
{
    size_t want;
    if (__builtin_mul_overflow(used, (size_t)3, &want))
        return 0;
    unsigned log2 = MIN_LOG2;
    while (((size_t)1 << log2) < want)
        if (++log2 > MAX_LOG2)
            return 0;
    return log2;
}

/* Writes entry {hash, key, value} in the given layout. */
static void entry_put(tallyT_word *e, int layout, uint64_t hash, void *key, void *value)
{
    switch (layout) {
    case TALLYT_LAYOUT_STR:
        e[0].p = key;
        e[1].p = value;
        break;
    case TALLYT_LAYOUT_SET:
        e[0].h = hash;
        e[1].p = key;
        break;
    default:
        e[0].h = hash;
        e[1].p = key;
        e[2].p = value;
        break;
    }
}

/* Indexes entries [0, n) of a fresh array in `layout` into an empty index: one
 * loop per slot width, so the inner loop has no width switch. */
#define INDEX_ALL(T)                                                                       \
    for (size_t i = 0; i < n; i++) {                                                       \
        uint64_t h = layout == TALLYT_LAYOUT_STR ? tallyT_str_hash_of(entries[2 * i].p)    \
                                                 : entries[i * width].h;                   \
        probe p = probe_start(log2, h);                                                    \
        while (((const T *)(const void *)index)[p.i] != (T)IX_EMPTY)                       \
            probe_next(&p);                                                                \
        ((T *)(void *)index)[p.i] = (T)slot_value(log2, i, h);                             \
    }

static void index_all(uint8_t *index, unsigned log2, const tallyT_word *entries, size_t n,
                      int layout)
{
    size_t width = layout == TALLYT_LAYOUT_MIXED ? 3 : 2;
    if (log2 <= 7)
        INDEX_ALL(int8_t)
    else if (log2 <= 15)
        INDEX_ALL(int16_t)
    else if (log2 <= 31)
        INDEX_ALL(int32_t)
    else
        INDEX_ALL(int64_t)
}
#undef INDEX_ALL

/* Copies the live entries of t into the new arrays (in `layout`), in order, and
 * indexes them.  Without deletions or a change of layout, the entries are copied
 * in one go. */
static size_t rebuild_into(const tallyT_table *t, uint8_t *index, tallyT_word *entries,
                           unsigned log2, int layout)
{
    if (layout == t->layout && t->nentries == t->used) {
        if (t->used > 0)
            memcpy(entries, t->entries, t->used * tallyT_width(t) * sizeof *entries);
        index_all(index, log2, entries, t->used, layout);
        return t->used;
    }
    tallyT_table to = {.layout = (uint8_t)layout};
    size_t width = tallyT_width(&to), n = 0;
    for (size_t i = 0; i < t->nentries; i++) {
        const tallyT_word *e = tallyT_entry(t, i);
        void *key = tallyT_entry_key(t, e);
        if (key == NULL)
            continue;
        uint64_t hash = tallyT_entry_hash(t, e);
        entry_put(entries + n * width, layout, hash, key, tallyT_entry_value(t, e));
        ix_set(index, log2, free_slot(index, log2, hash), slot_value(log2, n, hash));
        n++;
    }
    return n;
}

/* The layout the table needs to store key (value NULL: a set): its own, or the
 * first one, or MIXED for a non-str key in a STR table. */
static int layout_for(const tallyT_table *t, void *key, void *value)
{
    if (t->layout == TALLYT_LAYOUT_NONE) {
        if (value == NULL)
            return TALLYT_LAYOUT_SET;
        return tallyT_is_str(key) ? TALLYT_LAYOUT_STR : TALLYT_LAYOUT_MIXED;
    }
    if (t->layout == TALLYT_LAYOUT_STR && !tallyT_is_str(key))
        return TALLYT_LAYOUT_MIXED;
    return t->layout;
}

static size_t usable_now(const tallyT_table *t)
{
    return t->index != NULL ? usable_of(t->log2) : 0;
}

/* Rebuilds the table in `layout` with room for more entries than it has live: 0,
 * or -1 with the error set and the table unchanged.  The allocations may run user
 * code that changes the table: then the new arrays are dropped and the size
 * measured again. */
static int table_grow(void *owner, int layout)
{
    tallyT_table *t = table_of(owner);
    tally_rt *rt = rt_of(owner);
    tallyH_heap *h = tallyT_heap(owner);
    for (;;) {
        uint64_t version = t->version;
        unsigned log2 = log2_for(t->used); /* 3 * used slots: room for 2 * used entries */
        if (log2 == 0) {
            tallyB_error_set(tallyT_err(rt), TALLY_EOVERFLOW, "%s: too many entries",
                             name_of(owner));
            return -1;
        }
        size_t index_bytes = ((size_t)1 << log2) * slot_width(log2);
        tallyT_table to = {.layout = (uint8_t)layout};
        size_t entry_bytes = usable_of(log2) * tallyT_width(&to) * sizeof(tallyT_word);
        uint8_t *index = tallyH_buf_alloc(h, index_bytes);
        if (index == NULL)
            return -1;
        tallyT_word *entries = tallyH_buf_alloc(h, entry_bytes);
        if (entries == NULL) {
            tallyH_buf_free(h, index);
            return -1;
        }
        if (t->version != version) { /* user code ran and changed the table */
            tallyH_buf_free(h, entries);
            tallyH_buf_free(h, index);
            continue;
        }
        memset(index, 0xFF, index_bytes); /* -1, EMPTY, at every width */
        size_t n = rebuild_into(t, index, entries, log2, layout);
        uint8_t *old_index = t->index;
        tallyT_word *old_entries = t->entries;
        t->index = index;
        t->entries = entries;
        t->log2 = (uint8_t)log2;
        t->layout = (uint8_t)layout;
        t->nentries = n;
        t->version++;
        if (old_index != NULL) {
            tallyH_buf_free(h, old_index);
            tallyH_buf_free(h, old_entries);
        }
        return 0;
    }
}

/* Appends an entry for a key known to be absent (room checked), indexed at
 * `slot` (find's free slot for it): no user code. */
static void append_entry(tallyT_table *t, size_t slot, void *key, uint64_t hash, void *value)
{
    size_t n = t->nentries;
    entry_put(tallyT_entry(t, n), t->layout, hash, key, value);
    ix_set(t->index, t->log2, slot, slot_value(t->log2, n, hash));
    t->nentries = n + 1;
    t->used++;
    t->version++;
}

/* ---- the table's operations -------------------------------------------------------- */

int tallyT_table_hash(void *owner, void *key, uint64_t *hash)
{
    if (key != NULL)
        return tally_hash(key, hash); /* unhashable: its error is set */
    tallyB_error_set(tallyT_err(rt_of(owner)), TALLY_EINVAL, "%s: the key is NULL",
                     name_of(owner));
    return -1;
}

/* The entry of str key in a STR table, or NULL with *slot the first free slot of
 * its probe sequence (where it would go; the index must exist then): only strs
 * are compared, so no user code runs and nothing can change under the probe. */
TALLY_INLINE tallyT_word *find_str(const tallyT_table *t, const void *key, uint64_t hash,
                                  size_t *slot)
{
    if (t->index == NULL)
        return NULL;
    size_t first_free = SIZE_MAX;
    uint64_t tag = tag_of(t->log2, hash);
    for (probe p = probe_start(t->log2, hash);; probe_next(&p)) {
        int64_t ix = ix_get(t->index, t->log2, p.i);
        if (ix == IX_EMPTY) {
            *slot = first_free != SIZE_MAX ? first_free : p.i;
            return NULL;
        }
        if (ix == IX_DUMMY) {
            if (first_free == SIZE_MAX)
                first_free = p.i;
            continue;
        }
        if ((ix = tagged_entry(ix, t->log2, tag)) < 0)
            continue;
        tallyT_word *e = t->entries + 2 * (size_t)ix;
        if (e[0].p == key || (tallyT_str_hash_of(e[0].p) == hash && tallyT_str_same(e[0].p, key)))
            return e;
    }
}

/* find_str for a lookup whose key is the very str object stored (the common case:
 * keys reused or interned), for one slot width, so that the width and the tag are
 * worked out once and the probe calls nothing (no stack frame, few instructions:
 * more lookups in flight while their cache misses are served).  The entry, or
 * NULL; *sure is false when another key with the same tag was met first, which
 * only find_str can decide (it compares text). */
TALLY_INLINE const tallyT_word *find_same_w(const tallyT_table *t, const void *key,
                                           uint64_t hash, size_t width, bool *sure)
{
    const unsigned log2 = t->log2;
    const uint64_t low = ((uint64_t)1 << log2) - 1, want = tag_of_w(width, log2, hash) << log2;
    for (probe p = probe_start(log2, hash);; probe_next(&p)) {
        int64_t v = ix_load(t->index, width, p.i);
        if (v == IX_EMPTY)
            break;
        if (v < 0 || ((uint64_t)v & ~low) != want) /* a dummy, or another tag */
            continue;
        const tallyT_word *e = t->entries + 2 * ((uint64_t)v & low);
        if (e[0].p == key)
            return e;
        *sure = false;
        return NULL;
    }
    return NULL;
}

/* find_same_w for the width of t's index (which must exist). */
TALLY_INLINE const tallyT_word *find_same(const tallyT_table *t, const void *key, uint64_t hash,
                                         bool *sure)
{
    *sure = true;
    if (t->log2 <= 7)
        return find_same_w(t, key, hash, 1, sure);
    if (t->log2 <= 15)
        return find_same_w(t, key, hash, 2, sure);
    if (t->log2 <= 31)
        return find_same_w(t, key, hash, 4, sure);
    return find_same_w(t, key, hash, 8, sure);
}

int tallyT_table_lookup(void *owner, void *key, uint64_t hash, void **value)
{
    tallyT_table *t = table_of(owner);
    if (t->layout == TALLYT_LAYOUT_STR && tallyT_is_str(key)) {
        size_t slot;
        const tallyT_word *e = find_str(t, key, hash, &slot);
        *value = e != NULL ? e[1].p : NULL;
        return e != NULL;
    }
    size_t slot;
    int64_t ix = find(t, key, hash, &slot);
    *value = ix >= 0 ? tallyT_entry_value(t, tallyT_entry(t, (size_t)ix)) : NULL;
    return ix >= 0 ? 1 : ix == IX_EMPTY ? 0 : -1;
}

/* Replaces the value of entry ix by `value` (whose reference moves in) and drops
 * the key reference the caller held; the old value goes last. */
static void replace_value(tallyT_table *t, int64_t ix, void *key, void *value)
{
    tallyT_word *e = tallyT_entry(t, (size_t)ix);
    size_t vo = t->layout == TALLYT_LAYOUT_STR ? 1 : 2; /* sets never replace */
    void *old = e[vo].p;
    e[vo].p = value;
    tally_decref(key);
    tally_xdecref(old);
}

/* Inserts str key into a STR table with room for one more entry: only strs are
 * compared, so no user code runs before the old value (if any) is released, last.
 * 1 inserted, 0 present. */
static int insert_str(tallyT_table *t, void *key, uint64_t hash, void *value, bool replace)
{
    size_t slot;
    tallyT_word *e = find_str(t, key, hash, &slot);
    if (e == NULL) {
        tally_incref(key);
        tally_incref(value);
        append_entry(t, slot, key, hash, value);
        return 1;
    }
    if (replace) {
        void *old = e[1].p;
        tally_incref(value);
        e[1].p = value;
        tally_decref(old);
    }
    return 0;
}

int tallyT_table_insert(void *owner, void *key, uint64_t hash, void *value, bool replace)
{
    tallyT_table *t = table_of(owner);
    if (t->layout == TALLYT_LAYOUT_STR && t->nentries < usable_now(t) && tallyT_is_str(key))
        return insert_str(t, key, hash, value, replace);
    tally_incref(key); /* held while user code runs; they move into the entry */
    tally_xincref(value);
    int64_t ix;
    size_t slot;
    for (;;) {
        ix = find(t, key, hash, &slot);
        if (ix != IX_EMPTY)
            break;
        /* Absent, and no user code runs until the entry is stored at `slot`. */
        int layout = layout_for(t, key, value);
        if (t->nentries < usable_now(t) && layout == t->layout) {
            append_entry(t, slot, key, hash, value);
            return 1;
        }
        if (table_grow(owner, layout) != 0) {
            ix = IX_ERROR;
            break;
        }
        /* Look again in the new index: the slot changed, and user code run by the
         * growth's allocations may even have stored key meanwhile. */
    }
    if (ix >= 0 && replace) {
        replace_value(t, ix, key, value);
        return 0;
    }
    tally_decref(key);
    tally_xdecref(value);
    return ix >= 0 ? 0 : -1;
}

int tallyT_table_remove(void *owner, void *key, uint64_t hash, void *only_if, void **value)
{
    tallyT_table *t = table_of(owner);
    size_t slot;
    int64_t ix = find(t, key, hash, &slot);
    if (ix < 0)
        return ix == IX_EMPTY ? 0 : -1;
    tallyT_word *e = tallyT_entry(t, (size_t)ix);
    void *k = tallyT_entry_key(t, e), *v = tallyT_entry_value(t, e);
    if (only_if != NULL && v != only_if)
        return 0;
    entry_put(e, t->layout, 0, NULL, NULL);
    ix_set(t->index, t->log2, slot, IX_DUMMY);
    t->used--;
    t->version++;
    tally_decref(k); /* the table is consistent: user code may run now */
    if (value != NULL)
        *value = v;
    else
        tally_xdecref(v);
    return 1;
}

void tallyT_table_clear(void *owner)
{
    tallyT_table *t = table_of(owner);
    tallyT_table old = *t;
    /* Detached first: the finalizers the releases run find an empty, valid table
     * (which they may fill again). */
    t->index = NULL;
    t->entries = NULL;
    t->nentries = t->used = 0;
    t->log2 = t->layout = 0;
    t->version++;
    for (size_t i = 0; i < old.nentries; i++) {
        const tallyT_word *e = tallyT_entry(&old, i);
        tally_xdecref(tallyT_entry_key(&old, e));
        tally_xdecref(tallyT_entry_value(&old, e));
    }
    if (old.index != NULL) {
        tallyH_buf_free(tallyT_heap(owner), old.index);
        tallyH_buf_free(tallyT_heap(owner), old.entries);
    }
}

void tallyT_table_free(void *owner)
{
    tallyT_table *t = table_of(owner);
    if (t->index != NULL) {
        tallyH_buf_free(tallyT_heap(owner), t->index);
        tallyH_buf_free(tallyT_heap(owner), t->entries);
    }
    memset(t, 0, sizeof *t);
}

void tallyT_table_traverse(void *owner, tally_visit_fn visit, void *arg)
{
    const tallyT_table *t = table_of(owner);
    for (size_t i = 0; i < t->nentries; i++) {
        const tallyT_word *e = tallyT_entry(t, i);
        void *k = tallyT_entry_key(t, e), *v = tallyT_entry_value(t, e);
        if (k != NULL)
            visit(k, arg);
        if (v != NULL)
            visit(v, arg);
    }
}

size_t tallyT_table_owned(const void *owner)
{
    const tallyT_table *t = table_of(owner);
    if (t->index == NULL)
        return 0;
    return tallyH_buf_usable(tallyT_heap(owner), t->index) +
           tallyH_buf_usable(tallyT_heap(owner), t->entries);
}

int tallyT_table_item(const void *owner, size_t i, void **key, void **value)
{
    tallyT_table *t = table_of(owner);
    if (i >= t->used) {
        tallyB_error_set(tallyT_err(rt_of(owner)), TALLY_EINVAL,
                         "%s item %zu out of range (size %zu)", name_of(owner), i, t->used);
        return -1;
    }
    size_t pos = i, k = i;
    if (t->nentries != t->used) { /* holes: walk from the cursor, or from the start */
        if (t->walk_version == t->version && t->walk_i <= i) {
            pos = t->walk_pos;
            k = t->walk_i;
        } else {
            for (pos = 0; tallyT_entry_key(t, tallyT_entry(t, pos)) == NULL; pos++)
                ;
            k = 0;
        }
        while (k < i)
            if (tallyT_entry_key(t, tallyT_entry(t, ++pos)) != NULL)
                k++;
        t->walk_i = i;
        t->walk_pos = pos;
        t->walk_version = t->version;
    }
    const tallyT_word *e = tallyT_entry(t, pos);
    *key = tallyT_entry_key(t, e);
    if (value != NULL)
        *value = tallyT_entry_value(t, e);
    return 0;
}

/* Same keys, and with `values` equal values.  Each pair is held while compared
 * (user code may change either table); the entries are read again every step. */
int tallyT_table_eq(void *a, void *b, bool values)
{
    tallyT_table *ta = table_of(a), *tb = table_of(b);
    if (ta->used != tb->used)
        return 0;
    for (size_t i = 0; i < ta->nentries; i++) {
        const tallyT_word *e = tallyT_entry(ta, i);
        void *k = tallyT_entry_key(ta, e), *v = tallyT_entry_value(ta, e), *other;
        if (k == NULL)
            continue;
        uint64_t hash = tallyT_entry_hash(ta, e);
        tally_incref(k);
        tally_xincref(v);
        int r = tallyT_table_lookup(b, k, hash, &other);
        if (r == 1 && values) {
            tally_xincref(other);
            r = tally_eq(v, other);
            tally_xdecref(other);
        }
        tally_decref(k);
        tally_xdecref(v);
        if (r != 1)
            return r;
    }
    return ta->used == tb->used;
}

/* ---- iterators ------------------------------------------------------------------- */

typedef struct table_iter {
    void *owner;  /* NULL once exhausted or failed */
    size_t pos;   /* next entry to look at */
    size_t used;  /* the owner's size when the iteration began */
    int kind;     /* TALLYT_KEYS, _VALUES, _ITEMS */
    int failed;   /* the owner changed size: every later call fails too */
} table_iter;

void *tallyT_table_iter(void *owner, int kind)
{
    table_iter *it = tally_new(rt_of(owner), &tallyT_table_iter_type);
    if (it == NULL)
        return NULL;
    tally_incref(owner);
    it->owner = owner;
    it->used = table_of(owner)->used; /* after the allocation, which may run user code */
    it->kind = kind;
    return it;
}

static void table_iter_traverse(void *self, tally_visit_fn visit, void *arg)
{
    table_iter *it = self;
    if (it->owner != NULL)
        visit(it->owner, arg);
}

static void table_iter_clear(void *self)
{
    tally_setref(&((table_iter *)self)->owner, NULL);
}

static int changed_size(table_iter *it)
{
    const char *name = it->owner ? name_of(it->owner) : "container";
    tallyB_error_set(tallyT_err(rt_of(it)), TALLY_EINVAL, "%s changed size during iteration",
                     name);
    it->failed = 1;
    table_iter_clear(it);
    return -1;
}

/* The item of entry e as the iterator hands it out: a new reference, or NULL
 * (error set) when the (key, value) tuple cannot be made. */
static void *iter_item(table_iter *it, const tallyT_table *t, const tallyT_word *e)
{
    void *k = tallyT_entry_key(t, e), *v = tallyT_entry_value(t, e);
    if (it->kind == TALLYT_KEYS || it->kind == TALLYT_VALUES) {
        void *o = it->kind == TALLYT_KEYS ? k : v;
        tally_incref(o);
        return o;
    }
    tally_incref(k); /* the allocation may run user code that deletes the entry */
    tally_incref(v);
    void *pair = tally_tuple_of(rt_of(it), 2, k, v);
    tally_decref(k);
    tally_decref(v);
    return pair;
}

static int table_iter_next(void *self, void **out)
{
    table_iter *it = self;
    if (it->failed) {
        tallyB_error_set(tallyT_err(rt_of(it)), TALLY_EINVAL,
                         "container changed size during iteration");
        return -1;
    }
    if (it->owner == NULL)
        return 0;
    const tallyT_table *t = table_of(it->owner);
    if (t->used != it->used)
        return changed_size(it);
    while (it->pos < t->nentries && tallyT_entry_key(t, tallyT_entry(t, it->pos)) == NULL)
        it->pos++;
    if (it->pos >= t->nentries) {
        table_iter_clear(it); /* exhausted: let go of the owner early */
        return 0;
    }
    void *item = iter_item(it, t, tallyT_entry(t, it->pos));
    if (item == NULL)
        return -1; /* the position stays: the same entry again next time */
    it->pos++;
    *out = item;
    return 1;
}

static const tally_type_ops table_iter_ops = {.next = table_iter_next};

const tally_type tallyT_table_iter_type = {
    .name = "table_iterator",
    .size = sizeof(table_iter),
    .flags = TALLY_TYPE_CONTAINER,
    .traverse = table_iter_traverse,
    .clear = table_iter_clear,
    .ops = &table_iter_ops,
};

/* ---- the dict type ------------------------------------------------------------------ */

typedef struct dict {
    tallyT_table t;  /* first: the table functions take the dict itself */
    int repr_active; /* a repr of this dict is in progress: show "{...}" */
} dict;
_Static_assert(offsetof(dict, t) == 0, "a dict starts with its table");

/* d as a dict, or NULL with the error set (when d names a runtime to set it in). */
static dict *as_dict(const void *d, const char *fn)
{
    if (tallyT_is(d, &tally_dict_type))
        return (dict *)d;
    if (d != NULL)
        tallyB_error_set(tallyT_err(rt_of(d)), TALLY_EINVAL, "%s: not a dict", fn);
    return NULL;
}

static void dict_traverse(void *self, tally_visit_fn visit, void *arg)
{
    tallyT_table_traverse(self, visit, arg);
}

/* At death and in the collector: empty for good, even if finalizers run by the
 * releases put entries back. */
static void dict_clear(void *self)
{
    while (table_of(self)->index != NULL)
        tallyT_table_clear(self);
}

static void dict_destroy(void *self)
{
    tallyT_table_free(self);
}

static int dict_hash(void *self, uint64_t *out)
{
    (void)out;
    tallyB_error_set(tallyT_err(rt_of(self)), TALLY_EINVAL, "unhashable type: 'dict'");
    return -1;
}

static int dict_eq(void *self, void *other)
{
    if (!tallyT_is(other, &tally_dict_type))
        return 0;
    return tallyT_table_eq(self, other, true);
}

/* Appends "k: v" for entry e, holding both (a user repr may change the dict). */
static int repr_entry(tally_strbuf *out, void *k, void *v)
{
    tally_incref(k);
    tally_incref(v);
    int rc = tally_strbuf_append_repr(out, k);
    if (rc == 0)
        rc = tally_strbuf_append(out, ": ", 2);
    if (rc == 0)
        rc = tally_strbuf_append_repr(out, v);
    tally_decref(k);
    tally_decref(v);
    return rc;
}

/* "{'a': 1, 'b': [2]}"; a dict met again inside itself shows as "{...}". */
static int dict_repr(void *self, tally_strbuf *out)
{
    dict *d = self;
    if (d->repr_active)
        return tally_strbuf_append(out, "{...}", 5);
    d->repr_active = 1;
    int rc = tally_strbuf_append(out, "{", 1);
    bool first = true;
    for (size_t i = 0; rc == 0 && i < d->t.nentries; i++) {
        const tallyT_word *e = tallyT_entry(&d->t, i);
        void *k = tallyT_entry_key(&d->t, e);
        if (k == NULL)
            continue;
        if (!first)
            rc = tally_strbuf_append(out, ", ", 2);
        first = false;
        if (rc == 0)
            rc = repr_entry(out, k, tallyT_entry_value(&d->t, e));
    }
    if (rc == 0)
        rc = tally_strbuf_append(out, "}", 1);
    d->repr_active = 0;
    return rc;
}

static void *dict_iter(void *self)
{
    return tallyT_table_iter(self, TALLYT_KEYS);
}

static size_t dict_owned_bytes(const void *self)
{
    return tallyT_table_owned(self);
}

static const tally_type_ops dict_ops = {
    .hash = dict_hash,
    .eq = dict_eq,
    .repr = dict_repr,
    .iter = dict_iter,
    .owned_bytes = dict_owned_bytes,
};

const tally_type tally_dict_type = {
    .name = "dict",
    .size = sizeof(dict),
    .flags = TALLY_TYPE_CONTAINER,
    .traverse = dict_traverse,
    .clear = dict_clear,
    .destroy = dict_destroy,
    .ops = &dict_ops,
};

/* ---- the dict API ------------------------------------------------------------------ */

void *tally_dict(tally_rt *rt)
{
    return tally_new(rt, &tally_dict_type); /* zero-filled: an empty table, no arrays */
}

int tally_is_dict(const void *o)
{
    return tallyT_is(o, &tally_dict_type);
}

size_t tally_dict_size(const void *d)
{
    const dict *dp = as_dict(d, "tally_dict_size");
    return dp != NULL ? dp->t.used : 0;
}

int tally_dict_set(void *d, void *key, void *value)
{
    dict *dp = as_dict(d, "tally_dict_set");
    uint64_t hash;
    if (dp == NULL)
        return -1;
    if (value == NULL) {
        tallyB_error_set(tallyT_err(rt_of(d)), TALLY_EINVAL, "tally_dict_set: the value is NULL");
        return -1;
    }
    if (key != NULL && tallyT_is_str(key))
        hash = tallyT_str_hash_of(key); /* what tally_hash would say, without the call */
    else if (tallyT_table_hash(dp, key, &hash) != 0)
        return -1;
    return tallyT_table_insert(dp, key, hash, value, true) < 0 ? -1 : 0;
}

int tally_dict_lookup(const void *d, void *key, void **value)
{
    dict *dp = as_dict(d, "tally_dict_lookup");
    uint64_t hash;
    *value = NULL;
    if (dp == NULL || tallyT_table_hash(dp, key, &hash) != 0)
        return -1;
    return tallyT_table_lookup(dp, key, hash, value);
}

/* tally_dict_get's answer for an absent key: NULL with no error. */
static TALLY_NOINLINE void *get_absent(const void *d)
{
    tally_clear_error(rt_of(d));
    return NULL;
}

/* tally_dict_get of a str key when find_same could not decide. */
static TALLY_NOINLINE void *get_str(const void *d, void *key)
{
    size_t slot;
    const tallyT_word *e = find_str(table_of(d), key, tallyT_str_hash_of(key), &slot);
    return e != NULL ? e[1].p : get_absent(d);
}

/* tally_dict_get in general: any key, any table (or no dict at all). */
static TALLY_NOINLINE void *get_any(const void *d, void *key)
{
    void *value;
    int r = tally_dict_lookup(d, key, &value);
    return r == 0 ? get_absent(d) : value;
}

void *(tally_dict_get)(const void *d, void *key)
{
    /* The common case first: a str key in a dict keyed by strs (so the layout says
     * that the index exists), found as the very object stored. */
    if (d != NULL && key != NULL && tallyT_is_bt(d, TALLY_BT_DICT) && tallyT_is_str(key) &&
        table_of(d)->layout == TALLYT_LAYOUT_STR) {
        bool sure;
        const tallyT_word *e = find_same(table_of(d), key, tallyT_str_hash_of(key), &sure);
        if (e != NULL)
            return e[1].p;
        return sure ? get_absent(d) : get_str(d, key);
    }
    return get_any(d, key);
}

/* The entry whose key is a str of exactly these bytes, or NULL: a probe with the
 * hash a str of them would have, comparing bytes (no user code runs, nothing is
 * allocated). */
static const tallyT_word *find_c(const tallyT_table *t, const char *key, size_t n)
{
    if (t->index == NULL)
        return NULL;
    uint64_t hash = tallyT_str_hash_bytes(key, n), tag = tag_of(t->log2, hash);
    for (probe p = probe_start(t->log2, hash);; probe_next(&p)) {
        int64_t ix = ix_get(t->index, t->log2, p.i);
        if (ix == IX_EMPTY)
            return NULL;
        if (ix == IX_DUMMY || (ix = tagged_entry(ix, t->log2, tag)) < 0)
            continue;
        const tallyT_word *e = tallyT_entry(t, (size_t)ix);
        if (tallyT_entry_hash(t, e) == hash &&
            tallyT_str_is_bytes(tallyT_entry_key(t, e), hash, key, n))
            return e;
    }
}

void *tally_dict_get_c(const void *d, const char *key)
{
    if (as_dict(d, "tally_dict_get_c") == NULL)
        return NULL;
    const tallyT_table *t = table_of(d);
    const tallyT_word *e = find_c(t, key, strlen(key));
    if (e == NULL) {
        tally_clear_error(rt_of(d)); /* absent: no error, as the other lookups */
        return NULL;
    }
    return tallyT_entry_value(t, e);
}

int tally_dict_set_c(void *d, const char *key, void *value)
{
    if (as_dict(d, "tally_dict_set_c") == NULL)
        return -1;
    void *k = tally_str(rt_of(d), key);
    if (k == NULL)
        return -1;
    int r = tally_dict_set(d, k, value);
    tally_decref(k);
    return r;
}

int tally_dict_delete(void *d, void *key)
{
    dict *dp = as_dict(d, "tally_dict_delete");
    uint64_t hash;
    if (dp == NULL || tallyT_table_hash(dp, key, &hash) != 0)
        return -1;
    return tallyT_table_remove(dp, key, hash, NULL, NULL);
}

void *tally_dict_pop(void *d, void *key)
{
    dict *dp = as_dict(d, "tally_dict_pop");
    uint64_t hash;
    void *value = NULL;
    if (dp == NULL || tallyT_table_hash(dp, key, &hash) != 0)
        return NULL;
    int r = tallyT_table_remove(dp, key, hash, NULL, &value);
    if (r == 0)
        tally_clear_error(rt_of(d));
    return r == 1 ? value : NULL;
}

void tally_dict_clear(void *d)
{
    dict *dp = as_dict(d, "tally_dict_clear");
    if (dp != NULL)
        tallyT_table_clear(dp);
}

int tally_dict_item(const void *d, size_t i, void **key, void **value)
{
    const dict *dp = as_dict(d, "tally_dict_item");
    *key = NULL;
    if (value != NULL)
        *value = NULL;
    return dp != NULL ? tallyT_table_item(dp, i, key, value) : -1;
}

static void *dict_view(void *d, int kind, const char *fn)
{
    dict *dp = as_dict(d, fn);
    return dp != NULL ? tallyT_table_iter(dp, kind) : NULL;
}

void *tally_dict_keys(void *d)
{
    return dict_view(d, TALLYT_KEYS, "tally_dict_keys");
}

void *tally_dict_values(void *d)
{
    return dict_view(d, TALLYT_VALUES, "tally_dict_values");
}

void *tally_dict_items(void *d)
{
    return dict_view(d, TALLYT_ITEMS, "tally_dict_items");
}

/* ---- the weak-value map ---------------------------------------------------------------
 *
 * A map holds a dict from each key to a cell; the cell holds the key and a weak
 * reference to the value, whose callback argument is the cell itself:
 *
 *     map -> dict { key -> cell {key, weakref -> value (weak), map (borrowed)} }
 *
 * When the value dies, the callback removes the entry -- only if the dict still
 * maps the key to this very cell, so an entry stored again under the same key is
 * kept (the cell being replaced normally dies with its weak reference, which
 * then never calls back; the check covers a cell still held somewhere for a
 * moment).  The callback runs inside a death or a collection: it allocates
 * nothing, holds the map while it removes, and does nothing while the map
 * itself is dying (count 0, or its dict already let go).  The cell's pointer to
 * the map is borrowed: cells live only in the map's dict, which dies with it. */

typedef struct wvmap {
    void *dict; /* NULL once the map is being cleared */
} wvmap;

typedef struct wvcell {
    void *key;
    void *weakref;
    wvmap *map; /* borrowed */
} wvcell;

static void wvcell_traverse(void *self, tally_visit_fn visit, void *arg)
{
    wvcell *c = self;
    if (c->key != NULL)
        visit(c->key, arg);
    if (c->weakref != NULL)
        visit(c->weakref, arg);
}

static void wvcell_clear(void *self)
{
    wvcell *c = self;
    c->map = NULL;
    tally_setref(&c->weakref, NULL); /* first: its callback will never run now */
    tally_setref(&c->key, NULL);
}

static const tally_type wvcell_type = {
    .name = "weakvaluemap_cell",
    .size = sizeof(wvcell),
    .flags = TALLY_TYPE_CONTAINER,
    .traverse = wvcell_traverse,
    .clear = wvcell_clear,
};

static void wvmap_traverse(void *self, tally_visit_fn visit, void *arg)
{
    wvmap *m = self;
    if (m->dict != NULL)
        visit(m->dict, arg);
}

static void wvmap_clear(void *self)
{
    tally_setref(&((wvmap *)self)->dict, NULL); /* NULL before the dict's release */
}

const tally_type tally_weakvaluemap_type = {
    .name = "weakvaluemap",
    .size = sizeof(wvmap),
    .flags = TALLY_TYPE_CONTAINER,
    .traverse = wvmap_traverse,
    .clear = wvmap_clear,
};

/* The weak reference's callback: the cell's value died. */
static void wvmap_value_died(void *weakref, void *arg)
{
    (void)weakref;
    wvcell *c = arg;
    wvmap *m = c->map;
    if (m == NULL || m->dict == NULL || tally_refcount(m) == 0 || c->key == NULL)
        return; /* the map is going away with all its entries */
    void *key = c->key;
    uint64_t hash;
    tally_incref(m); /* the removal releases objects: their finalizers may drop m */
    tally_incref(key);
    if (tally_hash(key, &hash) == 0 && m->dict != NULL)
        tallyT_table_remove(m->dict, key, hash, c, NULL);
    tally_decref(key);
    tally_decref(m);
}

static wvmap *as_wvmap(const void *m, const char *fn)
{
    if (tallyT_is(m, &tally_weakvaluemap_type) && ((const wvmap *)m)->dict != NULL)
        return (wvmap *)m;
    if (m != NULL)
        tallyB_error_set(tallyT_err(rt_of(m)), TALLY_EINVAL, "%s: not a weak-value map", fn);
    return NULL;
}

void *tally_weakvaluemap(tally_rt *rt)
{
    wvmap *m = tally_new(rt, &tally_weakvaluemap_type);
    if (m == NULL)
        return NULL;
    if ((m->dict = tally_dict(rt)) == NULL) {
        tally_decref(m);
        return NULL;
    }
    return m;
}

int tally_weakvaluemap_set(void *m, void *key, void *value)
{
    wvmap *mp = as_wvmap(m, "tally_weakvaluemap_set");
    if (mp == NULL)
        return -1;
    if (value == NULL || key == NULL) {
        tallyB_error_set(tallyT_err(rt_of(m)), TALLY_EINVAL,
                         "tally_weakvaluemap_set: the %s is NULL", key ? "value" : "key");
        return -1;
    }
    tally_rt *rt = rt_of(m);
    wvcell *c = tally_new(rt, &wvcell_type);
    if (c == NULL)
        return -1;
    tally_incref(key);
    c->key = key;
    c->weakref = tally_weakref_new(rt, value, wvmap_value_died, c);
    int r = -1;
    if (c->weakref != NULL && mp->dict != NULL) { /* the allocations may run user code */
        c->map = mp;
        r = tally_dict_set(mp->dict, key, c);
    }
    tally_decref(c); /* stored (the dict holds it), or released with its weak reference */
    return r;
}

void *tally_weakvaluemap_get(void *m, void *key)
{
    wvmap *mp = as_wvmap(m, "tally_weakvaluemap_get");
    void *c;
    if (mp == NULL)
        return NULL;
    int r = tally_dict_lookup(mp->dict, key, &c);
    if (r < 0)
        return NULL;
    /* No user code between the lookup and here: c is still the dict's. */
    void *value = r == 1 ? tally_weakref_get(((wvcell *)c)->weakref) : NULL;
    if (value == NULL)
        tally_clear_error(rt_of(m)); /* absent or dead: no error */
    return value;
}

int tally_weakvaluemap_delete(void *m, void *key)
{
    wvmap *mp = as_wvmap(m, "tally_weakvaluemap_delete");
    return mp != NULL ? tally_dict_delete(mp->dict, key) : -1;
}

size_t tally_weakvaluemap_size(void *m)
{
    wvmap *mp = as_wvmap(m, "tally_weakvaluemap_size");
    return mp != NULL ? tally_dict_size(mp->dict) : 0;
}
