/* region.c - regions of pools: hosted arenas, the fixed buffer, runs of pools.
 *
 * A region hands out runs of contiguous pools, tracked by a bitmap (1 = free): one
 * pool for a small pool, several for a large block.  Hosted arenas are 64 pools
 * from one backend mapping aligned to its size, so the bitmap is one word; their
 * headers live apart, in small slabs (region_header_new).  The fixed buffer is one
 * region of however many pools fit; its header and bitmaps sit in the buffer's
 * prefix.
 *
 * Arena hysteresis.  An arena whose pools are all free is not unmapped at once: it
 * is kept at the tail of the avail list (partly used arenas are filled first, so
 * empty ones stay empty).  max(retain, live arenas / 4) of them are kept for good;
 * the surplus decays, one arena per TALLY_DECAY_ALLOCS allocations, as the program
 * runs on (tallyH_arenas_decay).  A program that oscillates thus reuses resident
 * arenas instead of unmapping and faulting them in again, and one that shrinks for
 * good gives most memory back as it continues.  tally_heap_trim() releases all
 * unused memory at once, and purges free pools of live arenas.
 *
 * Dirty pools.  A pool freed after use keeps stale bytes, including possibly a
 * valid-looking pool header.  Such pools are marked dirty; before a dirty pool
 * becomes the middle of a large block its first word is cleared, so a stray free()
 * into a large block can never be mistaken for a small block.  Purged and fresh
 * pools read as zeros and need nothing.
 */
#include <string.h>

#include "heap/bitmap.h"
#include "heap/heap.h"


/* ---- lists --------------------------------------------------------------------- */

static void avail_unlink(tallyH_heap *h, tallyH_region *r)
{
    if (r->aprev)
        r->aprev->anext = r->anext;
    else
        h->avail = r->anext;
    if (r->anext)
        r->anext->aprev = r->aprev;
    r->anext = r->aprev = NULL;
}

static void avail_push_head(tallyH_heap *h, tallyH_region *r)
{
    r->aprev = NULL;
    r->anext = h->avail;
    if (h->avail)
        h->avail->aprev = r;
    h->avail = r;
}

static void avail_push_tail(tallyH_heap *h, tallyH_region *r)
{
    tallyH_region *t = h->avail;
    if (t == NULL) {
        avail_push_head(h, r);
        return;
    }
    while (t->anext)
        t = t->anext;
    t->anext = r;
    r->aprev = t;
    r->anext = NULL;
}

static void regions_link(tallyH_heap *h, tallyH_region *r)
{
    r->prev = NULL;
    r->next = h->regions;
    if (h->regions)
        h->regions->prev = r;
    h->regions = r;
}

static void regions_unlink(tallyH_heap *h, tallyH_region *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        h->regions = r->next;
    if (r->next)
        r->next->prev = r->prev;
}

/* ---- backend requests ----------------------------------------------------------- */

bool tallyH_fault_hit(tallyH_fault *f)
{
    f->requests++;
    if (f->firing) {
        f->failures++;
        return true;
    }
    if (f->countdown != 0 && --f->countdown == 0) {
        f->failures++;
        f->firing = f->persist;
        return true;
    }
    return false;
}

void *tallyH_backend_map(tallyH_heap *h, size_t size, size_t align)
{
    if (tallyH_fault_hit(&h->fault_backend)) {
        tallyB_error_set(&h->err, TALLY_EFAULT, "injected fault: backend request %lu failed",
                         h->fault_backend.requests);
        return NULL;
    }
    if (h->limit != 0 && (size > h->limit || h->reserved > h->limit - size)) {
        tallyB_error_set(&h->err, TALLY_ELIMIT,
                         "memory limit of %zu bytes reached (%zu reserved, %zu more needed)",
                         h->limit, h->reserved, size);
        return NULL;
    }
    void *p = h->backend.map(h->backend.ctx, size, align);
    if (p == NULL) {
        tallyB_error_set(&h->err, TALLY_ENOMEM, "the backend could not map %zu bytes", size);
        return NULL;
    }
    TALLY_ASAN_UNPOISON(p, size); /* a recycled address may carry stale poison */
    h->nmaps++;
    h->reserved += size;
    if (h->reserved > h->reserved_peak)
        h->reserved_peak = h->reserved;
    return p;
}

void tallyH_backend_unmap(tallyH_heap *h, void *p, size_t size)
{
    TALLY_ASAN_UNPOISON(p, size); /* shadow memory outlives the mapping */
    h->backend.unmap(h->backend.ctx, p, size);
    h->nunmaps++;
    h->reserved -= size;
}

/* Resizes a whole mapping in place (target NULL) or moves it onto target, a
 * mapping of new_size bytes from tallyH_backend_map, through the backend's remap()
 * (the caller checks it exists).  A request like a map: fault injection first,
 * and growth in place within the limit (a target was counted when mapped).  After
 * a move the old mapping is gone, counted as a release. */
bool tallyH_backend_remap(tallyH_heap *h, void *old, size_t old_size, size_t new_size,
                          void *target)
{
    if (tallyH_fault_hit(&h->fault_backend)) {
        tallyB_error_set(&h->err, TALLY_EFAULT, "injected fault: backend request %lu failed",
                         h->fault_backend.requests);
        return false;
    }
    size_t more = target == NULL && new_size > old_size ? new_size - old_size : 0;
    if (h->limit != 0 && (more > h->limit || h->reserved > h->limit - more)) {
        tallyB_error_set(&h->err, TALLY_ELIMIT,
                         "memory limit of %zu bytes reached (%zu reserved, %zu more needed)",
                         h->limit, h->reserved, more);
        return false;
    }
    if (h->backend.remap(h->backend.ctx, old, old_size, new_size, target) != 0) {
        tallyB_error_set(&h->err, TALLY_ENOMEM, "the backend could not %s the %zu-byte mapping at %p",
                         target ? "move" : "resize", old_size, old);
        return false;
    }
    if (target != NULL) {
        TALLY_ASAN_UNPOISON(old, old_size); /* shadow memory outlives the mapping */
        h->nunmaps++;
        h->reserved -= old_size;
    } else {
        h->reserved = h->reserved - old_size + new_size;
    }
    if (h->reserved > h->reserved_peak)
        h->reserved_peak = h->reserved;
    return true;
}

/* ---- arenas -------------------------------------------------------------------- */

/* Maps size bytes aligned to an arena and marks them owned (or gives them back). */
uint8_t *tallyH_map_owned(tallyH_heap *h, size_t size)
{
    uint8_t *m = tallyH_backend_map(h, size, TALLY_ARENA_SIZE);
    if (m != NULL && tallyH_owner_add(h, (uintptr_t)m) != 0) {
        tallyH_backend_unmap(h, m, size);
        return NULL;
    }
    return m;
}

/* ---- region headers ------------------------------------------------------------ */

/* Arena headers live in small slabs of their own (one page holds about thirty),
 * not in their arenas: an arena's 64 pools are all usable, and a header costs a
 * share of one resident page instead of a whole touched page per arena. */
typedef struct region_slab {
    struct region_slab *next;
    tallyH_region slots[];
} region_slab;

#define REGION_SLAB_BYTES 4096u
#define REGION_SLAB_SLOTS ((REGION_SLAB_BYTES - sizeof(region_slab)) / sizeof(tallyH_region))

static tallyH_region *region_header_new(tallyH_heap *h)
{
    if (h->region_spare == NULL) {
        region_slab *slab = tallyH_backend_map(h, REGION_SLAB_BYTES, 4096);
        if (slab == NULL)
            return NULL;
        slab->next = h->region_slabs;
        h->region_slabs = slab;
        for (size_t i = 0; i < REGION_SLAB_SLOTS; i++) {
            slab->slots[i].next = h->region_spare;
            h->region_spare = &slab->slots[i];
        }
    }
    tallyH_region *r = h->region_spare;
    h->region_spare = r->next;
    memset(r, 0, sizeof *r);
    return r;
}

static void region_header_free(tallyH_heap *h, tallyH_region *r)
{
    r->tag = 0;
    r->next = h->region_spare;
    h->region_spare = r;
}

/* ---- arenas -------------------------------------------------------------------- */

static tallyH_region *arena_new(tallyH_heap *h)
{
    tallyH_region *r = region_header_new(h);
    if (r == NULL)
        return NULL;
    uint8_t *m = tallyH_map_owned(h, TALLY_ARENA_SIZE);
    if (m == NULL) {
        region_header_free(h, r);
        return NULL;
    }
    uint32_t slot = tallyH_slot_take(h, m);
    if (slot == UINT32_MAX) {
        tallyH_owner_remove(h, (uintptr_t)m);
        tallyH_backend_unmap(h, m, TALLY_ARENA_SIZE);
        region_header_free(h, r);
        return NULL;
    }
    r->slot = slot;
    r->tag = tallyH_tag(h, r, 0);
    r->heap = h;
    r->kind = TALLY_REGION_ARENA;
    r->base = m;
    r->npools = TALLY_ARENA_POOLS;
    r->nfree = r->npools;
    r->nwords = 1;
    r->map_addr = m;
    r->map_size = TALLY_ARENA_SIZE;
    r->freemap = &r->maps[0];
    r->dirtymap = &r->maps[1];
    r->freemap[0] = ~(uint64_t)0;
    r->dirtymap[0] = 0;
    regions_link(h, r);
    avail_push_head(h, r);
    h->narenas++;
    if (h->narenas > h->narenas_peak)
        h->narenas_peak = h->narenas;
    h->nempty++;
    return r;
}

static void arena_unmap(tallyH_heap *h, tallyH_region *r)
{
    tallyH_slot_drop(h, r->slot);
    tallyH_owner_remove(h, (uintptr_t)r->map_addr);
    tallyH_backend_unmap(h, r->map_addr, r->map_size);
    region_header_free(h, r);
}

static void arena_release(tallyH_heap *h, tallyH_region *r)
{
    avail_unlink(h, r);
    regions_unlink(h, r);
    h->nempty--;
    h->narenas--;
    arena_unmap(h, r);
}

/* Empty arenas the heap keeps for reuse: at least `retain`, and a quarter of the
 * arenas in use, so the cache grows with the heap. */
static size_t arenas_to_keep(const tallyH_heap *h)
{
    size_t live = h->narenas - h->nempty;
    return h->retain > live / 4 ? h->retain : live / 4;
}

/* An arena has just become empty: it goes to the tail of the avail list, where it
 * is used last.  Nothing is unmapped here: giving pages back costs the kernel about
 * 60 us per MiB, which a program freeing a large structure would pay in the middle
 * of its work, and a program that grows again would pay twice (and fault the pages
 * in again).  The surplus is given back by tallyH_arenas_decay instead. */
static void arena_emptied(tallyH_heap *h, tallyH_region *r)
{
    h->nempty++;
    avail_unlink(h, r);
    avail_push_tail(h, r);
}

/* Gives back one surplus empty arena for every TALLY_DECAY_ALLOCS allocations the
 * program makes while it has surplus: called from events that happen as a program
 * runs (a pool fills, changes lists, or is created), so memory returns as the
 * program continues, never in a burst of frees.  Deterministic: it counts
 * allocations, not time.  tally_heap_trim, exhaustion and close release at once. */
void tallyH_arenas_decay(tallyH_heap *h)
{
    if (h->nempty <= arenas_to_keep(h)) {
        h->decay_mark = h->nalloc;
        return;
    }
    if (h->nalloc - h->decay_mark < TALLY_DECAY_ALLOCS)
        return;
    h->decay_mark = h->nalloc;
    for (tallyH_region *r = h->avail; r; r = r->anext) {
        if (r->kind == TALLY_REGION_ARENA && r->nfree == r->npools) {
            arena_release(h, r);
            return;
        }
    }
}

/* ---- runs of pools ------------------------------------------------------------- */

static uint8_t *run_take(tallyH_heap *h, tallyH_region *r, uint32_t i, uint32_t n)
{
    if (r->nfree == r->npools && r->kind == TALLY_REGION_ARENA)
        h->nempty--;
    tallyH_bits_set(r->freemap, i, n, false);
    r->nfree -= n;
    if (r->nfree == 0)
        avail_unlink(h, r);
    for (uint32_t k = i; k < i + n; k++) {
        if (!tallyH_bit_get(r->dirtymap, k))
            continue;
        tallyH_bits_set(r->dirtymap, k, 1, false);
        uint8_t *unit = r->base + ((size_t)k << TALLY_POOL_SHIFT);
        tallyB_anno_access(unit, sizeof(uintptr_t));
        *(uintptr_t *)unit = 0;
    }
    return r->base + ((size_t)i << TALLY_POOL_SHIFT);
}

/* Does a run of n pools take an empty arena?  A run of more than half an arena
 * is most of one anyway, and at an empty arena's start it can grow in place to
 * the whole arena: a container's buffer growing by an eighth from 512 KiB went
 * to a gap after some pools, could not extend there past 655 KiB and was copied
 * into another arena, faulting in fresh pages for what it had; now it grows in
 * place up to the arena's size.  A program that builds and drops such buffers
 * gets the same kept arena, its pages touched, each time. */
static bool run_wants_empty_arena(const tallyH_heap *h, uint32_t n)
{
    return !h->fixed && n > TALLY_ARENA_POOLS / 2;
}

/* A run of n free pools in a region that has one (only in empty arenas if
 * empty_only), taken; NULL if none has. */
static uint8_t *run_find(tallyH_heap *h, uint32_t n, bool empty_only, tallyH_region **out)
{
    for (tallyH_region *r = h->avail; r; r = r->anext) {
        if (r->nfree < n || (empty_only && r->nfree != r->npools))
            continue;
        uint32_t i = n == 1 ? tallyH_next_set(r->freemap, r->npools, 0)
                            : tallyH_find_run(r->freemap, r->npools, n);
        if (i != TALLY_BIT_NONE) {
            *out = r;
            if (h->fixed)
                h->nmaps++;
            return run_take(h, r, i, n);
        }
    }
    return NULL;
}

uint8_t *tallyH_units_alloc(tallyH_heap *h, uint32_t n, tallyH_region **out)
{
    if (h->fixed && tallyH_fault_hit(&h->fault_backend)) {
        tallyB_error_set(&h->err, TALLY_EFAULT, "injected fault: pool request %lu failed",
                         h->fault_backend.requests);
        return NULL;
    }
    bool empty_only = run_wants_empty_arena(h, n);
    uint8_t *u = run_find(h, n, empty_only, out);
    if (u != NULL)
        return u;
    if (h->fixed) {
        tallyH_region *r = h->regions;
        tallyB_error_set(&h->err, TALLY_ENOMEM,
                         "fixed heap exhausted: no run of %u free pools of %zu bytes "
                         "(%u of %u pools free)",
                         n, TALLY_POOL_SIZE, r ? r->nfree : 0, r ? r->npools : 0);
        return NULL;
    }
    TALLY_ASSERT(n <= TALLY_ARENA_POOLS);
    tally_error before = h->err.code;
    tallyH_region *r = arena_new(h);
    if (r != NULL) {
        *out = r;
        return run_take(h, r, 0, n);
    }
    /* No new arena (the memory limit, the backend): a big run takes a gap after
     * all rather than fail while one has room. */
    if (empty_only && (u = run_find(h, n, false, out)) != NULL)
        h->err.code = before;
    return u;
}

void tallyH_units_free(tallyH_heap *h, tallyH_region *r, uint8_t *unit, uint32_t n)
{
    uint32_t i = (uint32_t)((size_t)(unit - r->base) >> TALLY_POOL_SHIFT);
    bool was_full = r->nfree == 0;
    tallyH_bits_set(r->freemap, i, n, true);
    tallyH_bits_set(r->dirtymap, i, n, true);
    r->nfree += n;
    if (was_full)
        avail_push_head(h, r);
    if (r->nfree == r->npools && r->kind == TALLY_REGION_ARENA)
        arena_emptied(h, r);
}

bool tallyH_units_extend(tallyH_heap *h, tallyH_region *r, uint8_t *unit, uint32_t have,
                         uint32_t want)
{
    uint32_t i = (uint32_t)((size_t)(unit - r->base) >> TALLY_POOL_SHIFT);
    if (i + want > r->npools)
        return false;
    if (tallyH_next_clear(r->freemap, r->npools, i + have) < i + want)
        return false;
    run_take(h, r, i + have, want - have);
    return true;
}

bool tallyH_region_pool_free(const tallyH_region *r, const uint8_t *unit)
{
    uint32_t i = (uint32_t)((size_t)(unit - r->base) >> TALLY_POOL_SHIFT);
    return tallyH_bit_get(r->freemap, i);
}

/* ---- the fixed buffer ------------------------------------------------------------ */

/* Lays a region over [mem, mem + size): header and bitmaps first, then as many
 * aligned pools as fit.  Returns NULL if not even one pool fits. */
tallyH_region *tallyH_region_fixed_init(tallyH_heap *h, uint8_t *mem, size_t size,
                                        uint8_t **prefix_end)
{
    uintptr_t start = TALLY_ALIGN_UP((uintptr_t)mem, 16);
    uintptr_t end = (uintptr_t)mem + size;
    size_t max_pools = size >> TALLY_POOL_SHIFT;
    size_t words = (max_pools + 63) / 64;
    size_t owner_words = tallyH_owner_fixed_words(size);
    /* Handle slots: one per arena-sized chunk, and a few for the layers above. */
    size_t nslots = (size >> TALLY_ARENA_SHIFT) + 1 + TALLY_HANDLE_EXTRA_SLOTS;
    size_t table_bytes = nslots > TALLY_HANDLE_INLINE_SLOTS ? nslots * sizeof(uint8_t *) : 0;
    uintptr_t maps = start + TALLY_ALIGN_UP(sizeof(tallyH_region), 16);
    uintptr_t owner = maps + 2 * words * sizeof(uint64_t);
    uintptr_t table = owner + owner_words * sizeof(uint64_t);
    uintptr_t base = TALLY_ALIGN_UP(table + table_bytes, TALLY_POOL_SIZE);
    if (base >= end || end - base < TALLY_POOL_SIZE)
        return NULL;
    size_t npools = (end - base) >> TALLY_POOL_SHIFT;

    tallyH_region *r = (tallyH_region *)start;
    memset(r, 0, sizeof *r);
    r->tag = tallyH_tag(h, r, 0);
    r->heap = h;
    r->kind = TALLY_REGION_FIXED;
    r->base = (uint8_t *)base;
    r->npools = (uint32_t)npools;
    r->nfree = r->npools;
    r->nwords = (uint32_t)words;
    r->freemap = (uint64_t *)maps;
    r->dirtymap = r->freemap + words;
    memset(r->freemap, 0, 2 * words * sizeof(uint64_t));
    tallyH_bits_set(r->freemap, 0, r->npools, true);
    /* The caller's buffer holds arbitrary bytes: every pool starts dirty. */
    tallyH_bits_set(r->dirtymap, 0, r->npools, true);
    if (table_bytes)
        tallyH_slots_init(h, (uint8_t **)table, (uint32_t)nslots);
    size_t nchunks = ((npools << TALLY_POOL_SHIFT) + TALLY_ARENA_SIZE - 1) >> TALLY_ARENA_SHIFT;
    for (size_t k = 0; k < nchunks; k++) { /* consecutive: the table is empty */
        uint32_t slot = tallyH_slot_take(h, (uint8_t *)base + (k << TALLY_ARENA_SHIFT));
        if (k == 0)
            r->slot = slot;
    }
    regions_link(h, r);
    avail_push_head(h, r);
    tallyH_owner_fixed(h, (uint64_t *)owner, base, npools << TALLY_POOL_SHIFT);
    h->reserved = h->reserved_peak = h->span;
    *prefix_end = (uint8_t *)base;
    return r;
}

/* ---- trim and teardown ------------------------------------------------------------ */

/* Purges the dirty free pools of r; returns bytes purged. */
static size_t region_purge(tallyH_heap *h, tallyH_region *r)
{
    if (h->backend.purge == NULL || r->kind != TALLY_REGION_ARENA)
        return 0;
    size_t bytes = 0;
    uint32_t i = 0;
    while ((i = tallyH_next_set(r->dirtymap, r->npools, i)) != TALLY_BIT_NONE) {
        uint32_t j = tallyH_next_clear(r->dirtymap, r->npools, i);
        size_t len = (size_t)(j - i) << TALLY_POOL_SHIFT;
        h->backend.purge(h->backend.ctx, r->base + ((size_t)i << TALLY_POOL_SHIFT), len);
        tallyH_bits_set(r->dirtymap, i, j - i, false);
        bytes += len;
        i = j;
    }
    return bytes;
}

/* Unmaps every empty arena, cached or not, medium arenas included; returns bytes
 * released. */
size_t tallyH_arenas_release_empty(tallyH_heap *h)
{
    size_t bytes = tallyH_medium_release_empty(h);
    tallyH_region *r = h->regions;
    while (r) {
        tallyH_region *next = r->next;
        if (r->kind == TALLY_REGION_ARENA && r->nfree == r->npools) {
            bytes += r->map_size;
            arena_release(h, r);
        }
        r = next;
    }
    return bytes;
}

size_t tallyH_regions_trim(tallyH_heap *h)
{
    size_t bytes = tallyH_arenas_release_empty(h);
    for (tallyH_region *r = h->regions; r; r = r->next)
        bytes += region_purge(h, r);
    return bytes;
}

void tallyH_regions_destroy(tallyH_heap *h)
{
    tallyH_medium_destroy(h);
    while (h->huge) {
        tallyH_pool *p = h->huge;
        h->huge = p->next;
        tallyH_owner_remove(h, (uintptr_t)p);
        tallyH_backend_unmap(h, p, p->lsize + TALLY_LARGE_HDR); /* as huge_free */
    }
    while (h->regions) {
        tallyH_region *r = h->regions;
        h->regions = r->next;
        if (r->kind == TALLY_REGION_ARENA)
            arena_unmap(h, r);
    }
    while (h->region_slabs) {
        region_slab *slab = h->region_slabs;
        h->region_slabs = slab->next;
        tallyH_backend_unmap(h, slab, REGION_SLAB_BYTES);
    }
    h->region_spare = NULL;
    h->avail = NULL;
    h->narenas = h->nempty = 0;
}
