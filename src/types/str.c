/* str.c - the built-in str: immutable UTF-8 text.
 *
 * A str is one plain (non-container) object: a fixed part with the cached hash,
 * the length in bytes and in code points, followed inline by the bytes and a NUL
 * (tally_new_var with one-byte items), so a str costs one block and its data is
 * a C string.  Text from outside is validated strictly (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF, no truncated sequences) before a
 * str exists; strs built from other strs (concat, join) are valid by construction
 * and only have their lengths added.  Every constructor measures first and then
 * makes the str with a single allocation.
 *
 * Interning keeps one canonical str per value in rt->types.interned, an open
 * addressing table keyed by the cached hash with linear probing, grown to twice
 * its size when it would pass half full.  Interned strs are immortal, so the
 * table never has to delete and holds no counted references, and equal interned
 * strs are one object (pointer comparison).  A slot is one word: the low 32 bits
 * of the str's hash above its heap handle plus one (0: empty).  A probe compares
 * hashes without touching the strs, and growing re-places every str from the
 * word alone, so neither reads a str that does not match (each would be a cache
 * miss in a large table).
 *
 * Beside the words, in the same block, each slot has a tag byte: 0 for an empty
 * slot, else the top byte of the str's hash (1 for 0).  A probe reads the tags
 * and reads a word only where the tag matches (one in 255 for another str).  New
 * text, most calls when a program interns many texts once, so costs a read of
 * the tags, an eighth of the words' size: with 10^6 strs, 2 MiB of tags mostly
 * stay in cache while 16 MiB of words would not (a miss to DRAM per call).  The
 * probe's first word is fetched together with its tag, so a hit costs no more.
 */
#include "types/types.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "heap/heap.h"
#include "runtime/runtime.h"

typedef struct str_obj {
    uint64_t hash;  /* of the bytes, computed once at creation */
    size_t nbytes;  /* bytes of text, the NUL not counted */
    size_t nchars;  /* code points */
    char data[];    /* nbytes of UTF-8, then a NUL */
} str_obj;

/* Tables (types.h) and the inline tally_dict_get (tally_str_view) read a str
 * key's hash as the object's first word. */
_Static_assert(offsetof(str_obj, hash) == 0 && offsetof(tally_str_view, hash) == 0,
               "a str's hash must be its first word");

/* Text longer than this is refused before anything is read or allocated, so that
 * nbytes + 1 and the object's header can never overflow. */
#define STR_MAX_BYTES ((size_t)PTRDIFF_MAX - 4096)

#define INTERN_MIN_CAP 32

/* ---- hashing ----------------------------------------------------------------------- */

/* The 128-bit product of a and b folded to 64 bits: every input bit reaches
 * many output bits in one multiplication. */
static uint64_t fold_mul(uint64_t a, uint64_t b)
{
    unsigned __int128 p = (unsigned __int128)a * b;
    return (uint64_t)p ^ (uint64_t)(p >> 64);
}

/* A fast 64-bit hash of n bytes: eight bytes per multiplication, the length mixed
 * in from the start (so "a" and "a\0" differ), a final avalanche. */
static uint64_t hash_bytes(const char *p, size_t n)
{
    const uint64_t k1 = 0x9E3779B97F4A7C15ull, k2 = 0xD1B54A32D192ED03ull;
    uint64_t h = fold_mul((uint64_t)n ^ k1, k2);
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = fold_mul(h ^ w ^ k1, k2);
    }
    uint64_t tail = 0;
    memcpy(&tail, p, n);
    h = fold_mul(h ^ tail ^ k2, k1);
    h ^= h >> 31;
    h *= k2;
    return h ^ (h >> 29);
}

uint64_t tallyT_str_hash_bytes(const char *p, size_t n)
{
    return hash_bytes(p, n);
}

/* ---- UTF-8 validation ---------------------------------------------------------------- */

/* Why the sequence starting with lead byte c is wrong when its second byte b is
 * outside [lo, hi]: the ranges exclude exactly overlongs, surrogates and code
 * points above U+10FFFF (RFC 3629's table). */
static const char *bad_second(unsigned c, unsigned b)
{
    if (b < 0x80 || b > 0xBF)
        return "invalid continuation byte";
    if (c == 0xE0 || c == 0xF0)
        return "overlong encoding";
    if (c == 0xED)
        return "surrogate code point";
    return "code point above U+10FFFF";
}

/* The length and the allowed range of the second byte of a sequence that starts
 * with c (>= 0x80), or 0 if c cannot start one. */
static size_t lead_info(unsigned c, unsigned *lo, unsigned *hi)
{
    *lo = 0x80;
    *hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        return 2;
    if (c >= 0xE0 && c <= 0xEF) {
        *lo = c == 0xE0 ? 0xA0 : 0x80;
        *hi = c == 0xED ? 0x9F : 0xBF;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        *lo = c == 0xF0 ? 0x90 : 0x80;
        *hi = c == 0xF4 ? 0x8F : 0xBF;
        return 4;
    }
    return 0;
}

static const char *bad_lead(unsigned c)
{
    if (c < 0xC0)
        return "unexpected continuation byte";
    if (c < 0xC2)
        return "overlong encoding";
    return "code point above U+10FFFF";
}

/* Checks the multi-byte sequence at s[0] (n bytes available); its length, or 0
 * with *why set. */
static size_t check_sequence(const unsigned char *s, size_t n, const char **why)
{
    unsigned lo, hi;
    size_t len = lead_info(s[0], &lo, &hi);
    if (len == 0) {
        *why = bad_lead(s[0]);
        return 0;
    }
    for (size_t k = 1; k < len; k++) {
        if (k >= n) {
            *why = "truncated sequence";
            return 0;
        }
        unsigned b = s[k];
        if (k == 1 && (b < lo || b > hi)) {
            *why = bad_second(s[0], b);
            return 0;
        }
        if (b < 0x80 || b > 0xBF) {
            *why = "truncated sequence";
            return 0;
        }
    }
    return len;
}

/* Validates n bytes of UTF-8 and counts their code points: true, or false with
 * the error set naming the offset of the offending sequence. */
static bool utf8_scan(tally_rt *rt, const char *text, size_t n, size_t *nchars)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0, chars = 0;
    while (i < n) {
        uint64_t w;
        if (n - i >= 8 && (memcpy(&w, s + i, 8), (w & 0x8080808080808080ull) == 0)) {
            i += 8; /* eight ASCII bytes at once: the common case */
            chars += 8;
            continue;
        }
        if (s[i] < 0x80) {
            i++;
            chars++;
            continue;
        }
        const char *why = NULL;
        size_t len = check_sequence(s + i, n - i, &why);
        if (len == 0) {
            tallyB_error_set(tallyT_err(rt), TALLY_EINVAL,
                             "invalid UTF-8 at byte offset %zu: %s (byte 0x%02x)", i, why, s[i]);
            return false;
        }
        i += len;
        chars++;
    }
    *nchars = chars;
    return true;
}

/* ---- making strs --------------------------------------------------------------------- */

static bool size_ok(tally_rt *rt, size_t nbytes)
{
    if (nbytes <= STR_MAX_BYTES)
        return true;
    tallyB_error_set(tallyT_err(rt), TALLY_EOVERFLOW, "str of %zu bytes is too large", nbytes);
    return false;
}

/* An unsealed str with room for nbytes (and the NUL, already there: tally_new_var
 * zero-fills); the caller writes the bytes, then seals it. */
static str_obj *str_alloc(tally_rt *rt, size_t nbytes)
{
    if (!size_ok(rt, nbytes))
        return NULL;
    str_obj *s = tally_new_var(rt, &tally_str_type, nbytes + 1);
    if (s != NULL)
        s->nbytes = nbytes;
    return s;
}

static str_obj *str_seal(str_obj *s, size_t nchars)
{
    s->nchars = nchars;
    s->hash = hash_bytes(s->data, s->nbytes);
    return s;
}

static str_obj *as_str(void *o)
{
    return tallyT_is(o, &tally_str_type) ? o : NULL;
}

static const char *type_name(const void *o)
{
    if (o == NULL)
        return "NULL";
    const char *name = tally_type_of(o)->name;
    return name ? name : "object";
}

void *tally_str_n(tally_rt *rt, const char *utf8, size_t nbytes)
{
    size_t nchars;
    if (!size_ok(rt, nbytes))
        return NULL;
    if (utf8 == NULL && nbytes != 0) {
        tallyB_error_set(tallyT_err(rt), TALLY_EINVAL, "str from a NULL pointer");
        return NULL;
    }
    if (!utf8_scan(rt, utf8, nbytes, &nchars))
        return NULL; /* validated before allocating: a bad input costs nothing */
    str_obj *s = str_alloc(rt, nbytes);
    if (s == NULL)
        return NULL;
    if (nbytes != 0)
        memcpy(s->data, utf8, nbytes);
    return str_seal(s, nchars);
}

void *tally_str(tally_rt *rt, const char *utf8)
{
    if (utf8 == NULL) {
        tallyB_error_set(tallyT_err(rt), TALLY_EINVAL, "str from a NULL pointer");
        return NULL;
    }
    return tally_str_n(rt, utf8, strlen(utf8));
}

void *tally_str_vformat(tally_rt *rt, const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    str_obj *s = NULL;
    int n = vsnprintf(NULL, 0, fmt, ap);
    if (n < 0)
        tallyB_error_set(tallyT_err(rt), TALLY_EINVAL, "bad format string '%s'", fmt);
    else
        s = str_alloc(rt, (size_t)n);
    if (s != NULL) {
        /* Formatted straight into the str, which is validated afterwards (%s and
         * %c may have put anything there). */
        size_t nchars;
        vsnprintf(s->data, (size_t)n + 1, fmt, again);
        if (utf8_scan(rt, s->data, s->nbytes, &nchars)) {
            str_seal(s, nchars);
        } else {
            tally_decref(s);
            s = NULL;
        }
    }
    va_end(again);
    return s;
}

void *tally_str_format(tally_rt *rt, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    void *s = tally_str_vformat(rt, fmt, ap);
    va_end(ap);
    return s;
}

/* ---- access -------------------------------------------------------------------------- */

int tally_is_str(const void *o)
{
    return tallyT_is(o, &tally_str_type);
}

const char *tally_str_data(const void *s)
{
    return tally_is_str(s) ? ((const str_obj *)s)->data : NULL;
}

size_t tally_str_bytes(const void *s)
{
    return tally_is_str(s) ? ((const str_obj *)s)->nbytes : 0;
}

size_t tally_str_len(const void *s)
{
    return tally_is_str(s) ? ((const str_obj *)s)->nchars : 0;
}

/* ---- concatenation and joining ------------------------------------------------------------ */

static void *not_a_str(tally_rt *rt, const char *what, const void *o)
{
    tallyB_error_set(tallyT_err(rt), TALLY_EINVAL, "%s: expected str, found %s", what,
                     type_name(o));
    return NULL;
}

static void *too_long(tally_rt *rt)
{
    tallyB_error_set(tallyT_err(rt), TALLY_EOVERFLOW, "joined str longer than SIZE_MAX bytes");
    return NULL;
}

void *tally_str_concat(tally_rt *rt, void *a, void *b)
{
    str_obj *x = as_str(a), *y = as_str(b);
    if (x == NULL || y == NULL)
        return not_a_str(rt, "concat", x == NULL ? a : b);
    size_t nbytes;
    if (__builtin_add_overflow(x->nbytes, y->nbytes, &nbytes))
        return too_long(rt);
    str_obj *s = str_alloc(rt, nbytes);
    if (s == NULL)
        return NULL;
    memcpy(s->data, x->data, x->nbytes);
    memcpy(s->data + x->nbytes, y->data, y->nbytes);
    return str_seal(s, x->nchars + y->nchars);
}

/* Sums the lengths of the n items and n-1 separators: 0, or -1 with the error set
 * (a non-str item, or a total beyond size_t). */
static int join_measure(tally_rt *rt, const str_obj *sep, size_t n, void *const items[],
                        size_t *nbytes, size_t *nchars)
{
    size_t bytes = 0, chars = 0;
    for (size_t i = 0; i < n; i++) {
        const str_obj *it = as_str(items[i]);
        if (it == NULL) {
            tallyB_error_set(tallyT_err(rt), TALLY_EINVAL,
                             "join: sequence item %zu: expected str, found %s", i,
                             type_name(items[i]));
            return -1;
        }
        if (__builtin_add_overflow(bytes, it->nbytes, &bytes))
            return too_long(rt), -1;
        chars += it->nchars;
    }
    if (n > 1 && sep != NULL) {
        size_t seps;
        if (__builtin_mul_overflow(n - 1, sep->nbytes, &seps) ||
            __builtin_add_overflow(bytes, seps, &bytes))
            return too_long(rt), -1;
        chars += (n - 1) * sep->nchars; /* no overflow: chars <= bytes */
    }
    *nbytes = bytes;
    *nchars = chars;
    return 0;
}

void *tally_str_join(tally_rt *rt, void *sep, size_t n, void *const items[])
{
    str_obj *sp = as_str(sep);
    if (sep != NULL && sp == NULL)
        return not_a_str(rt, "join separator", sep);
    size_t nbytes, nchars;
    if (join_measure(rt, sp, n, items, &nbytes, &nchars) != 0)
        return NULL;
    str_obj *s = str_alloc(rt, nbytes);
    if (s == NULL)
        return NULL;
    char *d = s->data;
    for (size_t i = 0; i < n; i++) {
        const str_obj *it = items[i];
        if (i > 0 && sp != NULL) {
            memcpy(d, sp->data, sp->nbytes);
            d += sp->nbytes;
        }
        memcpy(d, it->data, it->nbytes);
        d += it->nbytes;
    }
    return str_seal(s, nchars);
}

/* The items of an iterable collected for joining: references held in a heap
 * array of the runtime. */
typedef struct pieces {
    tally_rt *rt;
    void **items;
    size_t n, cap;
} pieces;

static void pieces_release(pieces *p)
{
    for (size_t i = 0; i < p->n; i++)
        tally_decref(p->items[i]);
    tally_free(p->rt, p->items);
}

/* Takes over the reference o: 0, or -1 with the error set (o released). */
static int pieces_add(pieces *p, void *o)
{
    if (!tally_is_str(o)) {
        tallyB_error_set(tallyT_err(p->rt), TALLY_EINVAL,
                         "join: sequence item %zu: expected str, found %s", p->n, type_name(o));
        tally_decref(o);
        return -1;
    }
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16, size;
        void **a = NULL;
        if (__builtin_mul_overflow(cap, sizeof *a, &size))
            tallyB_error_set(tallyT_err(p->rt), TALLY_EOVERFLOW, "join: too many items");
        else
            a = tally_realloc(p->rt, p->items, size); /* keeps the old array on failure */
        if (a == NULL) {
            tally_decref(o);
            return -1;
        }
        p->items = a;
        p->cap = cap;
    }
    p->items[p->n++] = o;
    return 0;
}

void *tally_str_join_iter(tally_rt *rt, void *sep, void *iterable)
{
    if (sep != NULL && !tally_is_str(sep))
        return not_a_str(rt, "join separator", sep);
    void *it = tally_iter(iterable);
    if (it == NULL)
        return NULL;
    pieces p = {rt, NULL, 0, 0};
    void *item;
    int r;
    while ((r = tally_iter_next(it, &item)) == 1)
        if (pieces_add(&p, item) != 0) {
            r = -1;
            break;
        }
    tally_decref(it);
    void *s = r == 0 ? tally_str_join(rt, sep, p.n, p.items) : NULL;
    pieces_release(&p);
    return s;
}

/* ---- interning ----------------------------------------------------------------------- */

static bool same_text(const str_obj *s, uint64_t hash, const char *data, size_t nbytes)
{
    return s->hash == hash && s->nbytes == nbytes && memcmp(s->data, data, nbytes) == 0;
}

bool tallyT_str_is_bytes(const void *s, uint64_t hash, const char *p, size_t n)
{
    return tally_is_str(s) && same_text(s, hash, p, n);
}

bool tallyT_str_same(const void *a, const void *b)
{
    const str_obj *sb = b;
    return a == b || same_text(a, sb->hash, sb->data, sb->nbytes);
}

/* An intern table word: hash bits and handle (see the top of the file). */
static uint64_t intern_word(const str_obj *s)
{
    uint32_t handle = tallyH_handle(tallyO_head(s)); /* a plain object's head starts its block */
    return (uint64_t)(uint32_t)s->hash << 32 | ((uint64_t)handle + 1);
}

static str_obj *intern_str(const tally_rt *rt, uint64_t word)
{
    const tallyH_heap *h = (const tallyH_heap *)(const void *)rt; /* the runtime's first member */
    return (str_obj *)(void *)((uint8_t *)tallyH_at(h, (uint32_t)word - 1) + sizeof(tally_head));
}

/* The tag byte of a str with this hash: never 0, which marks an empty slot. */
static uint8_t intern_tag(uint64_t hash)
{
    uint8_t t = (uint8_t)(hash >> 56);
    return t | (t == 0);
}

/* The tag bytes of a table of cap words, which follow them in its block. */
static uint8_t *intern_tags(uint64_t *table, size_t cap)
{
    return (uint8_t *)(table + cap);
}

/* Starts fetching the slot where the probe for hash starts, word and tag: in a
 * big table both are cache misses, the word's the longer. */
static void intern_prefetch(const tallyT_state *st, uint64_t hash)
{
    if (st->interned_cap == 0)
        return;
    size_t i = (size_t)hash & (st->interned_cap - 1);
    __builtin_prefetch(&st->interned[i]);
    __builtin_prefetch(intern_tags(st->interned, st->interned_cap) + i);
}

/* The interned str with this text, or NULL with *empty set to the empty slot
 * where it would go (NULL if the table is not made yet).  New text reads tags
 * only: the empty slot's word is not read (a store into it does not wait). */
static str_obj *intern_find(const tally_rt *rt, uint64_t hash, const char *data, size_t nbytes,
                            uint64_t **empty)
{
    const tallyT_state *st = &rt->types;
    *empty = NULL;
    if (st->interned_cap == 0)
        return NULL;
    size_t mask = st->interned_cap - 1;
    const uint8_t *tags = intern_tags(st->interned, st->interned_cap);
    uint8_t tag = intern_tag(hash);
    for (size_t i = (size_t)hash & mask;; i = (i + 1) & mask) {
        if (tags[i] == 0) { /* the table is never full: an empty slot ends the probe */
            *empty = &st->interned[i];
            return NULL;
        }
        if (tags[i] != tag)
            continue; /* another str: its word is not read */
        uint64_t w = st->interned[i];
        if (w >> 32 == (uint32_t)hash) {
            str_obj *s = intern_str(rt, w);
            if (same_text(s, hash, data, nbytes))
                return s;
        }
    }
}

/* Makes s, which no entry holds, the interned str of its text, in the empty
 * slot its probe ended at. */
static void intern_insert(tally_rt *rt, uint64_t *slot, str_obj *s)
{
    tallyT_state *st = &rt->types;
    tally_immortalize(s);
    *slot = intern_word(s);
    intern_tags(st->interned, st->interned_cap)[slot - st->interned] = intern_tag(s->hash);
    st->interned_used++;
}

/* Makes room for one more entry, doubling the table once it would pass half full:
 * true, or false with the error set and the table unchanged. */
static bool intern_reserve(tally_rt *rt)
{
    tallyT_state *st = &rt->types;
    if ((st->interned_used + 1) * 2 <= st->interned_cap)
        return true;
    size_t cap = st->interned_cap ? st->interned_cap * 2 : INTERN_MIN_CAP;
    if (cap > ((size_t)1 << 32)) { /* the words keep 32 bits of hash to place strs by */
        tallyB_error_set(tallyT_err(rt), TALLY_ENOMEM, "too many interned strs");
        return false;
    }
    uint64_t *table = tally_calloc(rt, cap, sizeof *table + 1); /* words, then tags */
    if (table == NULL)
        return false;
    const uint8_t *old_tags = st->interned ? intern_tags(st->interned, st->interned_cap) : NULL;
    uint8_t *tags = intern_tags(table, cap);
    for (size_t i = 0; i < st->interned_cap; i++) {
        uint64_t w = st->interned[i];
        if (w == 0)
            continue;
        size_t j = (size_t)(w >> 32) & (cap - 1);
        while (tags[j] != 0)
            j = (j + 1) & (cap - 1);
        table[j] = w;
        tags[j] = old_tags[i];
    }
    tally_free(rt, st->interned);
    st->interned = table;
    st->interned_cap = cap;
    return true;
}

void *tally_str_intern(void *s)
{
    str_obj *x = as_str(s);
    if (x == NULL) {
        if (s != NULL)
            return not_a_str(tally_runtime_of(s), "intern", s);
        return NULL; /* no runtime to report to */
    }
    tally_rt *rt = tally_runtime_of(s);
    uint64_t *slot;
    str_obj *found = intern_find(rt, x->hash, x->data, x->nbytes, &slot);
    if (found != NULL)
        return found; /* immortal: the new reference costs nothing */
    if (slot == NULL || (rt->types.interned_used + 1) * 2 > rt->types.interned_cap) {
        if (!intern_reserve(rt))
            return NULL; /* s untouched, still mortal */
        /* The table moved, and user code run by its allocation (a collection's
         * finalizers) may even have interned this text meanwhile. */
        if ((found = intern_find(rt, x->hash, x->data, x->nbytes, &slot)) != NULL)
            return found;
    }
    intern_insert(rt, slot, x);
    return s;
}

void *tally_str_intern_c(tally_rt *rt, const char *utf8)
{
    if (utf8 == NULL)
        return tally_str(rt, NULL); /* the error */
    /* Looked up by its bytes first: interning known text allocates nothing.  The
     * slot where the probe starts is fetched while the text is validated (which
     * new text needs, and which is cheap): in a big table it is a cache miss. */
    size_t nbytes = strlen(utf8), nchars;
    uint64_t hash = hash_bytes(utf8, nbytes);
    const tallyT_state *st = &rt->types;
    intern_prefetch(st, hash);
    if (!size_ok(rt, nbytes) || !utf8_scan(rt, utf8, nbytes, &nchars))
        return NULL; /* no str has this text: nothing to find */
    uint64_t *slot;
    str_obj *found = intern_find(rt, hash, utf8, nbytes, &slot);
    if (found != NULL)
        return found;
    const uint64_t *table = st->interned;
    size_t used = st->interned_used;
    str_obj *s = str_alloc(rt, nbytes);
    if (s == NULL)
        return NULL;
    memcpy(s->data, utf8, nbytes);
    s->nchars = nchars;
    s->hash = hash; /* what str_seal would compute again */
    /* The empty slot found above still is, unless the allocation ran user code
     * that interned (a collection's finalizers): then, and when the table must
     * grow, the general path probes again. */
    if (slot != NULL && st->interned == table && st->interned_used == used &&
        (used + 1) * 2 <= st->interned_cap) {
        intern_insert(rt, slot, s);
        return s;
    }
    void *t = tally_str_intern(s);
    tally_decref(s); /* a no-op when s became the interned str; frees it on failure */
    return t;
}

/* ---- the protocol -------------------------------------------------------------------- */

static int str_hash(void *self, uint64_t *out)
{
    *out = ((str_obj *)self)->hash;
    return 0;
}

static int str_eq(void *self, void *other)
{
    if (self == other)
        return 1;
    const str_obj *b = as_str(other);
    return b != NULL && same_text(self, b->hash, b->data, b->nbytes);
}

/* The escape for the character at p (Python's repr rules), written to buf: its
 * length, or 0 if the character stands as is.  *used is how many bytes it covers. */
static size_t repr_escape(const unsigned char *p, const unsigned char *end, char buf[8],
                          size_t *used)
{
    *used = 1;
    switch (*p) {
    case '\\': return (size_t)snprintf(buf, 8, "\\\\");
    case '\'': return (size_t)snprintf(buf, 8, "\\'");
    case '\n': return (size_t)snprintf(buf, 8, "\\n");
    case '\r': return (size_t)snprintf(buf, 8, "\\r");
    case '\t': return (size_t)snprintf(buf, 8, "\\t");
    default: break;
    }
    if (*p < 0x20 || *p == 0x7F)
        return (size_t)snprintf(buf, 8, "\\x%02x", *p);
    /* U+0080..U+009F (C1 controls, 0xC2 0x80..0x9F) are not printable either. */
    if (*p == 0xC2 && p + 1 < end && p[1] <= 0x9F) {
        *used = 2;
        return (size_t)snprintf(buf, 8, "\\x%02x", p[1]);
    }
    return 0;
}

static int str_repr(void *self, tally_strbuf *out)
{
    const str_obj *s = self;
    const unsigned char *p = (const unsigned char *)s->data, *end = p + s->nbytes;
    const unsigned char *run = p; /* start of the bytes copied as they are */
    int rc = tally_strbuf_append(out, "'", 1);
    while (rc == 0 && p < end) {
        char buf[8];
        size_t used, n = repr_escape(p, end, buf, &used);
        if (n == 0) {
            p++;
            continue;
        }
        rc = tally_strbuf_append(out, (const char *)run, (size_t)(p - run));
        if (rc == 0)
            rc = tally_strbuf_append(out, buf, n);
        p += used;
        run = p;
    }
    if (rc == 0)
        rc = tally_strbuf_append(out, (const char *)run, (size_t)(p - run));
    if (rc == 0)
        rc = tally_strbuf_append(out, "'", 1);
    return rc;
}

static const tally_type_ops str_ops = {
    .hash = str_hash,
    .eq = str_eq,
    .repr = str_repr,
    .owned_bytes = NULL, /* everything is inline: owns nothing outside its block */
};

const tally_type tally_str_type = {
    .name = "str",
    .size = sizeof(str_obj),
    .item_size = 1,
    .ops = &str_ops,
};
