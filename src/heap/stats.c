/* stats.c - looking at the heap: statistics, the readable dump with its pool map,
 * the walk over live blocks, the consistency check, and trim.
 *
 * Everything here is built on one walk over pools (tallyH_walk_pools): regions in
 * list order, each region's used pools in address order (a large block's pools
 * visited once, at its first pool), then the huge blocks.  Medium blocks live
 * outside pools: the statistics, the block walk and the check add them from
 * medium.c.  Nothing here is on a
 * hot path; figures that cannot be kept cheaply on the fast paths (per-class
 * counts, free bytes, fragmentation) are computed from the pools when asked.
 */
#include <string.h>

#include "heap/bitmap.h"
#include "heap/heap.h"
#include "heap/heap_inline.h"

static tallyH_heap *heap_of(tally_rt *rt)
{
    return (tallyH_heap *)(void *)rt;
}

static bool is_small(const tallyH_heap *h, const tallyH_pool *p)
{
    return tallyB_peek_word(p) == tallyH_tag(h, p, TALLY_POOL_SMALL);
}

static bool is_large(const tallyH_heap *h, const tallyH_pool *p)
{
    return tallyB_peek_word(p) == tallyH_tag(h, p, TALLY_POOL_LARGE);
}

static bool pool_is_free(const tallyH_region *r, uint32_t i)
{
    return (r->freemap[i >> 6] >> (i & 63)) & 1;
}

int tallyH_walk_pools(tallyH_heap *h, tallyH_pool_visitor fn, void *arg)
{
    for (tallyH_region *r = h->regions; r; r = r->next) {
        uint32_t i = 0;
        while (i < r->npools) {
            if (pool_is_free(r, i)) {
                i++;
                continue;
            }
            tallyH_pool *p = (tallyH_pool *)(r->base + ((size_t)i << TALLY_POOL_SHIFT));
            uint32_t step = 1;
            if (is_large(h, p) && p->nunits > 0 && p->nunits <= r->npools - i)
                step = p->nunits;
            int rc = fn(h, p, arg);
            if (rc != 0)
                return rc;
            i += step;
        }
    }
    for (tallyH_pool *p = h->huge; p; p = p->next) {
        int rc = fn(h, p, arg);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* ---- statistics --------------------------------------------------------------------- */

static int stats_pool(tallyH_heap *h, tallyH_pool *p, void *arg)
{
    struct tally_heap_stats *s = arg;
    if (is_small(h, p)) {
        tally_class_stats *c = &s->classes[p->cls];
        size_t used = (size_t)p->cap - p->nfree;
        c->blocks_used += used;
        c->blocks_free += p->nfree;
        c->pools++;
        c->pools_full += p->nfree == 0;
        s->blocks_in_use += used;
        s->bytes_free += (size_t)p->nfree * p->bsize;
        if (p->nfree > 0 && p->bsize > s->largest_free)
            s->largest_free = p->bsize;
        s->pools_used++;
    } else if (is_large(h, p)) {
        s->blocks_in_use++;
        s->pools_used += p->region ? p->nunits : 0;
    }
    return 0;
}

/* Free pools, the longest run of pools that could serve one request (free pools
 * and empty small pools, which are released on demand), and clean free pools
 * (never touched or purged: not resident). */
static void free_runs(const tallyH_heap *h, size_t *free_pools, size_t *longest, size_t *clean)
{
    *free_pools = *longest = *clean = 0;
    for (const tallyH_region *r = h->regions; r; r = r->next) {
        size_t run = 0;
        for (uint32_t i = 0; i < r->npools; i++) {
            const tallyH_pool *p = (const tallyH_pool *)(r->base + ((size_t)i << TALLY_POOL_SHIFT));
            bool reusable = pool_is_free(r, i) || (is_small(h, p) && p->nfree == p->cap);
            run = reusable ? run + 1 : 0;
            if (run > *longest)
                *longest = run;
            if (pool_is_free(r, i) && !((r->dirtymap[i >> 6] >> (i & 63)) & 1))
                (*clean)++;
        }
        *free_pools += r->nfree;
    }
}

int tally_heap_stats(tally_rt *rt, struct tally_heap_stats *s)
{
    if (rt == NULL)
        return -1;
    tallyH_heap *h = heap_of(rt);
    if (s == NULL) {
        tallyB_error_set(&h->err, TALLY_EINVAL, "tally_heap_stats: no struct to fill");
        return -1;
    }
    memset(s, 0, sizeof *s);
    s->nclasses = h->nclasses;
    for (int i = 0; i < h->nclasses; i++)
        s->classes[i].block_size = h->classes[i].bsize;
    tallyH_walk_pools(h, stats_pool, s);

    size_t free_pools, longest, clean;
    free_runs(h, &free_pools, &longest, &clean);
    s->bytes_in_use = tallyH_in_use(h);
    s->bytes_in_use_peak = h->in_use_peak;
    s->bytes_reserved = h->reserved;
    s->bytes_reserved_peak = h->reserved_peak;
    s->bytes_committed = h->reserved - (h->fixed ? 0 : clean << TALLY_POOL_SHIFT);
    s->bytes_limit = h->fixed ? h->span : h->limit;
    /* Quarantined debug blocks are still allocated in their pools but not in use. */
    s->blocks_in_use -= h->quarantine.count;
    s->blocks_in_use += h->medium_blocks;
    s->large_blocks = h->large_blocks;
    s->large_bytes = h->large_bytes;
    s->pool_size = TALLY_POOL_SIZE;
    s->pools_free = free_pools;
    s->pools_total = s->pools_used + free_pools;
    s->arenas = h->narenas;
    s->arenas_peak = h->narenas_peak;
    s->arenas_cached = h->nempty + h->medium_empty;
    s->medium_blocks = h->medium_blocks;
    s->medium_bytes = h->medium_bytes;
    s->medium_free = tallyH_medium_free_bytes(h);
    s->medium_arenas = h->medium_arenas;
    s->bytes_free += free_pools << TALLY_POOL_SHIFT;
    if (longest > 0 && (longest << TALLY_POOL_SHIFT) - TALLY_LARGE_HDR > s->largest_free)
        s->largest_free = (longest << TALLY_POOL_SHIFT) - TALLY_LARGE_HDR;
    if (s->largest_free > s->bytes_free) /* kept empty pools count whole in the run */
        s->bytes_free = s->largest_free;
    s->fragmentation = s->bytes_free ? 1.0 - (double)s->largest_free / (double)s->bytes_free : 0.0;
    s->overhead = s->bytes_reserved ? 1.0 - (double)s->bytes_in_use / (double)s->bytes_reserved : 0.0;
    s->allocs = h->nalloc;
    s->backend_requests = h->nmaps;
    s->backend_releases = h->nunmaps;
    s->errors_detected = h->err.reports;
    s->debug = h->debug;
    s->fixed = (int)h->fixed;
    if (h->debug) { /* quarantined blocks are counted free already */
        for (unsigned k = 0; k < h->quarantine.count; k++) {
            uint8_t *b = h->quarantine.slot[(h->quarantine.head + k) % TALLY_QUARANTINE_SLOTS];
            tallyH_pool *p = tallyH_pool_of(b);
            if (is_small(h, p))
                s->classes[p->cls].blocks_used--;
        }
    }
    s->frees = s->allocs - s->blocks_in_use;
    return 0;
}

/* ---- walking live blocks ---------------------------------------------------------------- */

typedef struct visit_ctx {
    tally_block_visitor fn;
    void *arg;
} visit_ctx;

static int visit_one(tallyH_heap *h, uint8_t *b, size_t size, visit_ctx *v)
{
    if (!h->debug)
        return v->fn(b, size, v->arg);
    size_t n;
    if (!tallyH_debug_user_block(b, &n))
        return 0; /* waiting in quarantine: not live */
    return v->fn(b + TALLY_DEBUG_HEAD, n, v->arg);
}

static int visit_pool(tallyH_heap *h, tallyH_pool *p, void *arg)
{
    visit_ctx *v = arg;
    if (is_large(h, p))
        return visit_one(h, p->data, p->lsize, v);
    if (!is_small(h, p))
        return 0;
    for (uint32_t i = 0; i < p->cap; i++) {
        if (tallyH_pool_is_free(p, i))
            continue;
        int rc = visit_one(h, p->data + (size_t)i * p->bsize, p->bsize, v);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int tally_heap_visit(tally_rt *rt, tally_block_visitor visit, void *arg)
{
    if (rt == NULL || visit == NULL)
        return 0;
    visit_ctx v = {visit, arg};
    int rc = tallyH_walk_pools(heap_of(rt), visit_pool, &v);
    return rc != 0 ? rc : tallyH_medium_visit(heap_of(rt), visit, arg);
}

/* ---- consistency check --------------------------------------------------------------------- */

typedef struct check_ctx {
    long problems;
    size_t live_bytes; /* what tallyH_in_use() should be, recomputed from the pools */
} check_ctx;

/* Bytes a debug block counts in use: its request, or 0 in quarantine. */
static size_t debug_live_size(const uint8_t *b)
{
    size_t n;
    return tallyH_debug_user_block(b, &n) ? n : 0;
}

#define CHECK(cond, ...)                                                  \
    do {                                                                  \
        if (!(cond)) {                                                    \
            tallyB_error_report(&h->err, TALLY_ECORRUPT, __VA_ARGS__); \
            c->problems++;                                                \
            return 0;                                                     \
        }                                                                 \
    } while (0)

static int check_small(tallyH_heap *h, tallyH_pool *p, check_ctx *c)
{
    CHECK(p->heap == h && p->cls < h->nclasses, "pool %p: owner or class field damaged", (void *)p);
    const tallyH_class *k = &h->classes[p->cls];
    CHECK(p->bsize == k->bsize && p->cap == k->cap && p->data == (uint8_t *)p + k->hdr &&
              p->inv == k->inv && p->span == (uint32_t)p->cap * p->bsize,
          "pool %p: geometry fields damaged", (void *)p);
    uint32_t words = (p->cap + 63u) / 64u, count = 0;
    for (uint32_t w = 0; w < words; w++) {
        uint64_t bits = p->freemap[w];
        if (w == words - 1 && p->cap % 64)
            CHECK((bits >> (p->cap % 64)) == 0, "pool %p: bitmap has bits past its end", (void *)p);
        count += (uint32_t)__builtin_popcountll(bits);
    }
    CHECK(count == p->nfree, "pool %p: %u free blocks in the bitmap, %u counted", (void *)p,
          count, p->nfree);
    CHECK(p->hint < words, "pool %p: search hint past the bitmap", (void *)p);
    bool listed = k->avail == p || (p->prev != NULL && p->prev->next == p);
    CHECK(listed == (p->nfree > 0), "pool %p: on its class list: %d, free blocks: %u",
          (void *)p, listed, p->nfree);
    if (!h->debug) {
        c->live_bytes += (size_t)(p->cap - p->nfree) * p->bsize;
        return 0;
    }
    for (uint32_t i = 0; i < p->cap; i++) {
        uint8_t *b = p->data + (size_t)i * p->bsize;
        bool live = !tallyH_pool_is_free(p, i);
        c->problems += tallyH_debug_check_block(h, b, p->bsize, live);
        c->live_bytes += live ? debug_live_size(b) : 0;
    }
    return 0;
}

static int check_pool(tallyH_heap *h, tallyH_pool *p, void *arg)
{
    check_ctx *c = arg;
    if (is_small(h, p))
        return check_small(h, p, c);
    CHECK(is_large(h, p), "pool %p: header damaged (not a pool of this heap)", (void *)p);
    size_t expect = p->region ? ((size_t)p->nunits << TALLY_POOL_SHIFT) - TALLY_LARGE_HDR : p->lsize;
    CHECK(p->heap == h && p->data == (uint8_t *)p + TALLY_LARGE_HDR && p->lsize == expect &&
              (p->region == NULL || p->nunits >= 1),
          "large block at %p: header damaged", (void *)p);
    if (!h->debug) {
        c->live_bytes += p->lsize;
        return 0;
    }
    c->problems += tallyH_debug_check_block(h, p->data, p->lsize, true);
    c->live_bytes += debug_live_size(p->data);
    return 0;
}

static long check_lists(tallyH_heap *h)
{
    long problems = 0;
    for (int i = 0; i < h->nclasses; i++) {
        uint32_t n = 0;
        for (tallyH_pool *p = h->classes[i].avail; p && n <= h->classes[i].npools; p = p->next, n++) {
            if (!is_small(h, p) || p->cls != i || p->nfree == 0) {
                tallyB_error_report(&h->err, TALLY_ECORRUPT,
                                    "size class %d: list holds a bad pool %p", i, (void *)p);
                problems++;
                break;
            }
        }
        if (n > h->classes[i].npools) {
            tallyB_error_report(&h->err, TALLY_ECORRUPT, "size class %d: list is too long", i);
            problems++;
        }
    }
    for (tallyH_region *r = h->regions; r; r = r->next) {
        uint32_t count = tallyH_bits_count(r->freemap, (r->npools + 63) / 64);
        if (r->tag != tallyH_tag(h, r, 0) || count != r->nfree) {
            tallyB_error_report(&h->err, TALLY_ECORRUPT, "region %p: header damaged", (void *)r);
            problems++;
        }
    }
    return problems;
}

long tally_heap_check(tally_rt *rt)
{
    if (rt == NULL)
        return 0;
    tallyH_heap *h = heap_of(rt);
    check_ctx c = {0, 0};
    tallyH_walk_pools(h, check_pool, &c);
    c.problems += check_lists(h);
    c.problems += tallyH_medium_check(h, &c.live_bytes);
    if (c.live_bytes != tallyH_in_use(h) || h->headroom < 0) {
        tallyB_error_report(&h->err, TALLY_ECORRUPT,
                            "accounting: %zu bytes in live blocks, %zu counted in use",
                            c.live_bytes, tallyH_in_use(h));
        c.problems++;
    }
    return c.problems;
}

size_t tally_heap_trim(tally_rt *rt)
{
    if (rt == NULL)
        return 0;
    tallyH_heap *h = heap_of(rt);
    tallyH_pools_release_empty(h);
    return tallyH_regions_trim(h);
}
