/* medium.c - medium blocks: containers' buffers with 256-byte granularity.
 *
 * Above the largest size class, blocks are runs of whole pools (large blocks), so
 * a 40,000-byte array would take 48 KiB.  Containers' owned buffers (array items,
 * list items, bytearray data, dict and set tables) ask through the tallyH_buf_*
 * calls instead, and a request between the largest class and TALLY_MEDIUM_MAX
 * gets a run of 256-byte units in a medium arena: one backend mapping of
 * TALLY_ARENA_SIZE bytes aligned to its size, marked in the owner map like a pool
 * arena.
 *
 *   | header: tag, heap, links, counts, free map, start map | unit | unit | ... |
 *
 * The header fills the first few units.  Two bitmaps hold everything about the
 * blocks, none of it inside them: a unit is free (free map), or used and then
 * either the first unit of a block (start map) or a continuation of the block
 * before it.  A block therefore ends at the next start or the next free unit,
 * so no size is stored.  Allocation is first fit over the arenas, oldest first;
 * a block grows in place into the free units after it (arrays grow by append).
 * An arena left without blocks is kept if it is the only empty one, else given
 * back at once; tally_heap_trim, exhaustion and close give back all of them.
 *
 * Recognising a medium block.  The header's tag (its address ^ the heap's cookie
 * ^ TALLY_POOL_MEDIUM) sits at the arena's base, like a pool header's.  For any
 * address a hosted heap owns, the granule base is mapped and its first word is a
 * tag written by the heap or zero (pool 0 of a pool arena, a huge block's header,
 * a medium header), so reading it is safe; the tag is cleared before an arena is
 * unmapped.  tally_free's fast path never takes a medium pointer for a small
 * block (the kind differs, and user bytes at pool boundaries would have to forge
 * a secret tag, as for large blocks); its slow path recognises medium blocks and
 * refuses them.  Medium blocks are off in debug mode (buffers then get the debug
 * layout of ordinary blocks) and on a fixed heap (its owner map marks granules of
 * a buffer that need not start on one).
 */
#include <stddef.h>
#include <string.h>

#include "heap/bitmap.h"
#include "heap/heap.h"
#include "heap/heap_inline.h"

#define UNIT_SHIFT 8u
#define UNIT ((size_t)1 << UNIT_SHIFT)
#define NUNITS ((uint32_t)(TALLY_ARENA_SIZE >> UNIT_SHIFT))
#define NWORDS (NUNITS / 64)

struct tallyH_medium {
    uintptr_t tag;            /* tallyH_tag(heap, this, TALLY_POOL_MEDIUM); 0 once released */
    tallyH_heap *heap;        /* owner: at the offset a pool header keeps it */
    tallyH_medium *next;      /* h->medium, oldest first */
    tallyH_medium *prev;
    uint32_t nfree;           /* free units */
    uint32_t nblocks;         /* live blocks */
    uint64_t freemap[NWORDS];  /* 1 = free unit */
    uint64_t startmap[NWORDS]; /* 1 = a block starts here (never set on a free unit) */
};

_Static_assert(offsetof(tallyH_medium, tag) == offsetof(tallyH_pool, tag) &&
                   offsetof(tallyH_medium, heap) == offsetof(tallyH_pool, heap),
               "a medium header reads as a pool header where both say whose it is");

#define HDR_UNITS ((uint32_t)((sizeof(tallyH_medium) + UNIT - 1) >> UNIT_SHIFT))
_Static_assert(HDR_UNITS < NUNITS / 8, "the header takes a small part of an arena");
_Static_assert(TALLY_MEDIUM_MAX <= (size_t)(NUNITS - HDR_UNITS) << UNIT_SHIFT,
               "the largest medium block fits an empty arena");

/* ---- arenas --------------------------------------------------------------------- */

static tallyH_medium *arena_of(const void *p)
{
    return (tallyH_medium *)((uintptr_t)p & ~(uintptr_t)(TALLY_ARENA_SIZE - 1));
}

bool tallyH_is_medium(const tallyH_heap *h, const void *p)
{
    if (h->medium == NULL)
        return false;
    const tallyH_medium *m = arena_of(p);
    return tallyB_peek_word(m) == tallyH_tag(h, m, TALLY_POOL_MEDIUM);
}

static tallyH_medium *arena_new(tallyH_heap *h)
{
    tallyH_medium *m = (tallyH_medium *)tallyH_map_owned(h, TALLY_ARENA_SIZE);
    if (m == NULL)
        return NULL;
    memset(m, 0, sizeof *m);
    m->tag = tallyH_tag(h, m, TALLY_POOL_MEDIUM);
    m->heap = h;
    m->nfree = NUNITS - HDR_UNITS;
    tallyH_bits_set(m->freemap, HDR_UNITS, m->nfree, true);
    tallyH_medium **link = &h->medium; /* at the tail: older arenas fill first */
    while (*link != NULL) {
        m->prev = *link;
        link = &(*link)->next;
    }
    *link = m;
    h->medium_arenas++;
    h->medium_empty++;
    if (++h->narenas > h->narenas_peak)
        h->narenas_peak = h->narenas;
    return m;
}

static void arena_release(tallyH_heap *h, tallyH_medium *m)
{
    if (m->prev)
        m->prev->next = m->next;
    else
        h->medium = m->next;
    if (m->next)
        m->next->prev = m->prev;
    h->medium_arenas--;
    h->narenas--;
    if (m->nblocks == 0)
        h->medium_empty--;
    m->tag = 0; /* a backend that recycles memory must not hand back a valid tag */
    tallyH_owner_remove(h, (uintptr_t)m);
    tallyH_backend_unmap(h, m, TALLY_ARENA_SIZE);
}

size_t tallyH_medium_release_empty(tallyH_heap *h)
{
    size_t bytes = 0;
    tallyH_medium *m = h->medium;
    while (m != NULL) {
        tallyH_medium *next = m->next;
        if (m->nblocks == 0) {
            arena_release(h, m);
            bytes += TALLY_ARENA_SIZE;
        }
        m = next;
    }
    return bytes;
}

/* Unmaps every medium arena, blocks or not (tally_close). */
void tallyH_medium_destroy(tallyH_heap *h)
{
    while (h->medium != NULL)
        arena_release(h, h->medium);
    h->medium_empty = h->medium_blocks = h->medium_bytes = 0;
}

/* ---- blocks ----------------------------------------------------------------------- */

static uint32_t unit_index(const tallyH_medium *m, const void *p)
{
    return (uint32_t)(((uintptr_t)p - (uintptr_t)m) >> UNIT_SHIFT);
}

static uint32_t units_for(size_t n)
{
    return (uint32_t)((n + UNIT - 1) >> UNIT_SHIFT);
}

/* Units of the block starting at unit i: up to the next free unit or the next
 * start before it (that search stops at the free unit: a growing block is often
 * followed by free units, and is then measured in a word or two). */
static uint32_t block_units(const tallyH_medium *m, uint32_t i)
{
    uint32_t f = tallyH_next_set(m->freemap, NUNITS, i + 1);
    if (f == TALLY_BIT_NONE)
        f = NUNITS;
    uint32_t s = tallyH_next_set(m->startmap, f, i + 1);
    return (s == TALLY_BIT_NONE ? f : s) - i;
}

static uint8_t *claim(tallyH_heap *h, tallyH_medium *m, uint32_t i, uint32_t units)
{
    if (m->nblocks++ == 0)
        h->medium_empty--;
    tallyH_bits_set(m->freemap, i, units, false);
    tallyH_bits_set(m->startmap, i, 1, true);
    m->nfree -= units;
    h->medium_blocks++;
    h->medium_bytes += (size_t)units << UNIT_SHIFT;
    return (uint8_t *)m + ((size_t)i << UNIT_SHIFT);
}

/* A run of units, first fit over the arenas, or NULL with the error set. */
static uint8_t *take(tallyH_heap *h, uint32_t units)
{
    tallyH_medium *m;
    for (m = h->medium; m != NULL; m = m->next) {
        if (m->nfree < units)
            continue;
        uint32_t i = tallyH_find_run(m->freemap, NUNITS, units);
        if (i != TALLY_BIT_NONE)
            return claim(h, m, i, units);
    }
    if ((m = arena_new(h)) == NULL)
        return NULL;
    return claim(h, m, HDR_UNITS, units);
}

/* Gives the block at unit i of m back; an emptied arena is kept only if it is
 * the one empty arena. */
static void give(tallyH_heap *h, tallyH_medium *m, uint32_t i, uint32_t units)
{
    tallyH_bits_set(m->startmap, i, 1, false);
    tallyH_bits_set(m->freemap, i, units, true);
    m->nfree += units;
    h->medium_blocks--;
    h->medium_bytes -= (size_t)units << UNIT_SHIFT;
    if (--m->nblocks == 0 && ++h->medium_empty > 1)
        arena_release(h, m);
}

/* Resizes the block at unit i (have units) to want units in place, if the units
 * after it are free; the tools and the counters follow. */
static bool resize(tallyH_heap *h, tallyH_medium *m, uint32_t i, uint32_t have, uint32_t want)
{
    if (want < have) {
        tallyH_bits_set(m->freemap, i + want, have - want, true);
        m->nfree += have - want;
    } else if (want > have) {
        /* The search stops at the last unit wanted, not at the arena's end. */
        if (i + want > NUNITS || tallyH_next_clear(m->freemap, i + want, i + have) < i + want)
            return false;
        tallyH_bits_set(m->freemap, i + have, want - have, false);
        m->nfree -= want - have;
    }
    size_t old_n = (size_t)have << UNIT_SHIFT, new_n = (size_t)want << UNIT_SHIFT;
    uint8_t *p = (uint8_t *)m + ((size_t)i << UNIT_SHIFT);
    tallyH_count_resize(h, p, old_n, new_n);
    h->medium_bytes = h->medium_bytes - old_n + new_n;
    return true;
}

/* Is p the start of a live block of m?  Containers pass only their own blocks:
 * anything else is heap damage or a bug above, reported. */
static bool live_start(tallyH_heap *h, const tallyH_medium *m, const void *p, const char *what)
{
    uint32_t i = unit_index(m, p);
    if (((uintptr_t)p & (UNIT - 1)) == 0 && i >= HDR_UNITS && tallyH_bit_get(m->startmap, i))
        return true;
    tallyB_error_report(&h->err, TALLY_ECORRUPT,
                        "%s of %p: not a live block of the medium arena %p", what, p, (void *)m);
    return false;
}

/* ---- the buffer calls -------------------------------------------------------------- */

/* Does a request of n bytes get a medium block? */
static bool medium_request(const tallyH_heap *h, size_t n)
{
    return !h->debug && !h->fixed && n > h->class_max && n <= TALLY_MEDIUM_MAX;
}

static uint8_t *take_bytes(tallyH_heap *h, size_t n)
{
    return take(h, units_for(n));
}

/* A medium block of n bytes, counted and announced to the tools: tallyH_alloc's
 * steps (a failure relieves the heap and retries once). */
static uint8_t *alloc_counted(tallyH_heap *h, size_t n)
{
    if (tallyH_alloc_fault(h))
        return NULL;
    uint8_t *b = tallyH_alloc_relieved(h, n, take_bytes);
    if (b == NULL)
        return NULL;
    size_t size = (size_t)units_for(n) << UNIT_SHIFT;
    tallyH_count_alloc(h, size);
    tallyB_anno_alloc(h, b, size, false);
    return b;
}

void *tallyH_buf_alloc_at(tallyH_heap *h, size_t n, const char *file, int line)
{
    const void *caller = __builtin_return_address(0);
    if (!medium_request(h, n))
        return tallyH_malloc_at(h, n, file, line, caller);
    uint8_t *b = alloc_counted(h, n);
    if (b == NULL) {
        h->ncalls_uncounted++;
        return NULL;
    }
    if (h->tracer != NULL)
        h->tracer->alloc(h->tracer->arg, b, n, file, line, caller);
    return b;
}

void tallyH_buf_free(tallyH_heap *h, void *p)
{
    if (p == NULL)
        return;
    if (!tallyH_is_medium(h, p)) {
        tally_free((tally_rt *)(void *)h, p);
        return;
    }
    tallyH_medium *m = arena_of(p);
    if (!live_start(h, m, p, "free of a buffer"))
        return;
    uint32_t i = unit_index(m, p), units = block_units(m, i);
    size_t size = (size_t)units << UNIT_SHIFT;
    tallyB_anno_free(h, p, size);
    tallyH_count_free(h, size);
    give(h, m, i, units);
    if (h->tracer != NULL)
        h->tracer->free(h->tracer->arg, p);
}

size_t tallyH_buf_usable(const tallyH_heap *h, const void *p)
{
    if (p == NULL)
        return 0;
    if (!tallyH_is_medium(h, p))
        return tally_usable_size(p);
    const tallyH_medium *m = arena_of(p);
    return (size_t)block_units(m, unit_index(m, p)) << UNIT_SHIFT;
}

void *tallyH_buf_resize_nocopy(tallyH_heap *h, void *p, size_t n)
{
    if (p == NULL || n == 0)
        return NULL;
    if (!tallyH_is_medium(h, p))
        return tallyH_resize_nocopy(h, p, n);
    if (!medium_request(h, n))
        return NULL; /* a class or a large block serves it: the caller moves it */
    tallyH_medium *m = arena_of(p);
    if (!live_start(h, m, p, "resize of a buffer"))
        return NULL;
    uint32_t i = unit_index(m, p);
    if (!resize(h, m, i, block_units(m, i), units_for(n)))
        return NULL;
    if (h->tracer != NULL) /* as tallyH_resize_nocopy: no site, no user code */
        h->tracer->resize(h->tracer->arg, p, p, n, NULL, 0, NULL);
    return p;
}

/* ---- looking at the arenas ------------------------------------------------------------ */

int tallyH_medium_visit(tallyH_heap *h, int (*fn)(void *, size_t, void *), void *arg)
{
    for (tallyH_medium *m = h->medium; m != NULL; m = m->next) {
        uint32_t i = 0;
        while ((i = tallyH_next_set(m->startmap, NUNITS, i)) != TALLY_BIT_NONE) {
            uint32_t units = block_units(m, i);
            int rc = fn((uint8_t *)m + ((size_t)i << UNIT_SHIFT), (size_t)units << UNIT_SHIFT, arg);
            if (rc != 0)
                return rc;
            i += units;
        }
    }
    return 0;
}

/* Problems of one arena's header and maps (0 or 1: the first one found). */
static long check_arena(tallyH_heap *h, const tallyH_medium *m, size_t *live)
{
    const char *why = NULL;
    bool starts_free = false, header_free = false;
    for (uint32_t w = 0; w < NWORDS; w++)
        starts_free |= (m->startmap[w] & m->freemap[w]) != 0;
    for (uint32_t i = 0; i < HDR_UNITS; i++)
        header_free |= tallyH_bit_get(m->freemap, i) || tallyH_bit_get(m->startmap, i);
    if (m->tag != tallyH_tag(h, m, TALLY_POOL_MEDIUM) || m->heap != h)
        why = "tag or owner damaged";
    else if (tallyH_bits_count(m->freemap, NWORDS) != m->nfree ||
             tallyH_bits_count(m->startmap, NWORDS) != m->nblocks)
        why = "counts disagree with the maps";
    else if (starts_free || header_free)
        why = "a block starts on a free unit, or the header is marked free";
    else if (HDR_UNITS < NUNITS && !tallyH_bit_get(m->freemap, HDR_UNITS) &&
             !tallyH_bit_get(m->startmap, HDR_UNITS))
        why = "used units after the header belong to no block";
    for (uint32_t i = HDR_UNITS + 1; why == NULL && i < NUNITS; i++)
        if (tallyH_bit_get(m->freemap, i - 1) && !tallyH_bit_get(m->freemap, i) &&
            !tallyH_bit_get(m->startmap, i))
            why = "used units after free ones belong to no block";
    if (why != NULL) {
        tallyB_error_report(&h->err, TALLY_ECORRUPT, "medium arena %p: %s", (const void *)m, why);
        return 1;
    }
    *live += (size_t)(NUNITS - HDR_UNITS - m->nfree) << UNIT_SHIFT;
    return 0;
}

long tallyH_medium_check(tallyH_heap *h, size_t *live)
{
    long problems = 0;
    size_t arenas = 0, empty = 0, blocks = 0, bytes = *live;
    for (const tallyH_medium *m = h->medium; m != NULL && arenas <= h->medium_arenas; m = m->next) {
        arenas++;
        empty += m->nblocks == 0;
        blocks += m->nblocks;
        problems += check_arena(h, m, live);
    }
    bytes = *live - bytes;
    if (arenas != h->medium_arenas || empty != h->medium_empty || blocks != h->medium_blocks ||
        bytes != h->medium_bytes) {
        tallyB_error_report(&h->err, TALLY_ECORRUPT,
                            "medium arenas: %zu arenas (%zu empty), %zu blocks of %zu bytes "
                            "found, %zu (%zu), %zu of %zu counted", arenas, empty, blocks, bytes,
                            h->medium_arenas, h->medium_empty, h->medium_blocks, h->medium_bytes);
        problems++;
    }
    return problems;
}

size_t tallyH_medium_free_bytes(const tallyH_heap *h)
{
    size_t units = 0;
    for (const tallyH_medium *m = h->medium; m != NULL; m = m->next)
        units += m->nfree;
    return units << UNIT_SHIFT;
}

void tallyH_medium_dump(const tallyH_heap *h, FILE *out)
{
    for (const tallyH_medium *m = h->medium; m != NULL; m = m->next)
        fprintf(out, "  %p medium arena: %u blocks, %u of %u units of %zu bytes free\n",
                (const void *)m, m->nblocks, m->nfree, NUNITS - HDR_UNITS, UNIT);
}
