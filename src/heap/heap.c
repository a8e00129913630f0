/* heap.c - the raw allocation API: tally_malloc, tally_calloc, tally_realloc,
 * tally_free, tally_usable_size, and the paths behind them.
 *
 * Fast paths.  A request of 1..512 bytes maps to class (n - 1) >> 4; if that class
 * has a pool with a free block, the block is its lowest free bit (heap_inline.h).
 * A release checks that the heap owns the address (no dereference), that the pool
 * header's tag is intact, that the address is a block start and that the block is
 * live, then sets its bit.  Anything else - no pool at hand, larger sizes, debug
 * mode, fault injection, Valgrind, a misuse - goes to the out-of-line slow paths.
 *
 * Sizes.  Up to h->class_max (about half a pool) requests are served by pool
 * classes; larger ones by a run of whole pools inside a region ("large"); on the
 * hosted backend, runs longer than an arena get a mapping of their own ("huge"),
 * aligned to an arena so that ownership stays one bit per granule.  Only the first
 * granule of a huge mapping is marked owned: the block's start is there, and
 * pointers further in are not block starts anyway.
 *
 * Realloc of a huge block copies nothing when the backend has remap() (mremap on
 * Linux): the mapping shrinks or grows in place, or else its pages move to the
 * start of a new arena-aligned mapping the heap obtains as for a new huge block
 * (so the block stays inside the ownership windows).  A move keeps the block's
 * handle slot, re-pointed, so handles stored inside it stay valid.  Without
 * remap(), under Valgrind, in debug mode, and between large and huge sizes,
 * blocks move by copying.
 *
 * Containers' buffers of the sizes between are "medium" blocks instead, of
 * 256-byte units (medium.c, through the tallyH_buf_* calls): tally_malloc never
 * hands one out, and the slow paths of tally_free and tally_realloc refuse one.
 *
 * When memory runs out, the heap releases the empty pools classes keep, flushes
 * the debug quarantine, unmaps cached empty arenas, calls the exhaustion hook (the
 * collector's), and retries once before failing with the error set and the heap
 * untouched.
 *
 * Tracing.  The public calls are tally_malloc_at and friends (the headers make
 * tally_malloc a macro passing __FILE__ and __LINE__); the plain functions share
 * their fast paths.  The site, with the caller's return address, is handed to the
 * slow paths only, which report to the tracer's hooks when one is installed
 * (h->tracer, which also sets h->slow): the fast paths do not change.
 */
#include "heap/heap.h"

#include <string.h>

#include "heap/heap_inline.h"

static inline tallyH_heap *heap_of(tally_rt *rt)
{
    /* The heap is the first member of the runtime (runtime/runtime.h). */
    return (tallyH_heap *)(void *)rt;
}

void tallyH_update_slow(tallyH_heap *h)
{
    const tallyH_fault *f = &h->fault_alloc;
    bool checks = h->debug != 0 || h->on_valgrind || f->countdown != 0 || f->firing;
    h->slow = (checks ? TALLY_SLOW_CHECKS : 0) | (h->tracer != NULL ? TALLY_SLOW_TRACE : 0);
}

/* ---- large and huge blocks ------------------------------------------------------- */

static void large_init(tallyH_heap *h, tallyH_pool *p, tallyH_region *r, uint32_t nunits,
                       size_t lsize)
{
    tallyB_anno_access(p, TALLY_LARGE_HDR);
    p->heap = h;
    p->region = r;
    p->data = (uint8_t *)p + TALLY_LARGE_HDR;
    p->bsize = p->inv = p->span = 0;
    p->cap = p->nfree = p->hint = p->cls = 0;
    p->nunits = nunits;
    if (r != NULL)
        p->hbase = tallyH_region_hbase(r, (const uint8_t *)p);
    p->next = p->prev = NULL;
    p->lsize = lsize;
    p->tag = tallyH_tag(h, p, TALLY_POOL_LARGE);
    h->large_blocks++;
    h->large_bytes += lsize;
}

/* Bytes of the mapping of a huge block of n bytes. */
static size_t huge_map_size(size_t n)
{
    return TALLY_ALIGN_UP(TALLY_LARGE_HDR + n, tallyH_page_size());
}

static uint8_t *huge_alloc(tallyH_heap *h, size_t n)
{
    size_t size = huge_map_size(n);
    uint8_t *m = tallyH_map_owned(h, size);
    if (m == NULL)
        return NULL;
    uint32_t slot = tallyH_slot_take(h, m);
    if (slot == UINT32_MAX) {
        tallyH_owner_remove(h, (uintptr_t)m);
        tallyH_backend_unmap(h, m, size);
        return NULL;
    }
    tallyH_pool *p = (tallyH_pool *)m;
    large_init(h, p, NULL, 0, size - TALLY_LARGE_HDR);
    p->hbase = slot << TALLY_HANDLE_SHIFT;
    p->next = h->huge;
    if (h->huge)
        h->huge->prev = p;
    h->huge = p;
    h->narenas++;
    if (h->narenas > h->narenas_peak)
        h->narenas_peak = h->narenas;
    return p->data;
}

static void huge_free(tallyH_heap *h, tallyH_pool *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        h->huge = p->next;
    if (p->next)
        p->next->prev = p->prev;
    size_t size = p->lsize + TALLY_LARGE_HDR;
    h->narenas--;
    tallyH_slot_drop(h, p->hbase >> TALLY_HANDLE_SHIFT);
    tallyH_owner_remove(h, (uintptr_t)p);
    tallyH_backend_unmap(h, p, size);
}

static size_t pools_for(size_t n)
{
    return (TALLY_LARGE_HDR + n + TALLY_POOL_MASK) >> TALLY_POOL_SHIFT;
}

static uint8_t *large_alloc(tallyH_heap *h, size_t n)
{
    size_t units = pools_for(n);
    if (!h->fixed && units > TALLY_ARENA_POOLS)
        return huge_alloc(h, n);
    if (units > UINT32_MAX) {
        tallyB_error_set(&h->err, TALLY_ENOMEM, "request of %zu bytes exceeds the heap", n);
        return NULL;
    }
    tallyH_region *r;
    uint8_t *u = tallyH_units_alloc(h, (uint32_t)units, &r);
    if (u == NULL)
        return NULL;
    tallyH_pool *p = (tallyH_pool *)u;
    large_init(h, p, r, (uint32_t)units, (units << TALLY_POOL_SHIFT) - TALLY_LARGE_HDR);
    return p->data;
}

/* ---- allocation ------------------------------------------------------------------ */

static uint8_t *alloc_once(tallyH_heap *h, size_t n)
{
    if (n > h->class_max)
        return large_alloc(h, n);
    int ci = tallyH_class_index(h, n);
    tallyH_pool *p = h->classes[ci].avail;
    if (p == NULL && (p = tallyH_pool_new(h, ci)) == NULL)
        return NULL;
    uint8_t *b = tallyH_pool_take(p);
    return p->nfree == 0 ? tallyH_pool_filled(h, p, b) : b;
}

bool tallyH_relieve(tallyH_heap *h, size_t n)
{
    bool any = tallyH_pools_release_empty(h) > 0;
    if (tallyH_quarantine_flush(h))
        any = true;
    if (tallyH_arenas_release_empty(h) > 0) /* cached arenas count against the limit */
        any = true;
    if (h->exhausted && h->exhausted(h, n, h->exhausted_arg))
        any = true;
    return any;
}

/* Is a request of n bytes within max?  Sets the error if not. */
bool tallyH_request_fits(tallyH_heap *h, size_t n, size_t max)
{
    if (n <= max)
        return true;
    tallyB_error_set(&h->err, TALLY_EINVAL, "request of %zu bytes is larger than the heap allows", n);
    return false;
}

/* Allocates n bytes (1 <= n) for internal callers: no annotation, no debug layout,
 * no counting (the caller counts what it hands out). */
void *tallyH_alloc(tallyH_heap *h, size_t n)
{
    if (!tallyH_request_fits(h, n, TALLY_MAX_REQUEST))
        return NULL;
    return tallyH_alloc_relieved(h, n, alloc_once);
}

/* A block of n bytes handed to the user: counted, and announced to the tools. */
static uint8_t *alloc_user(tallyH_heap *h, size_t n, bool zeroed, tallyH_block *blk)
{
    uint8_t *b = tallyH_alloc(h, n);
    if (b == NULL)
        return NULL;
    tallyH_block_of(b, blk);
    tallyH_count_alloc(h, blk->size);
    tallyB_anno_alloc(h, b, blk->size, zeroed);
    return b;
}

bool tallyH_alloc_fault(tallyH_heap *h)
{
    if (!(h->fault_alloc.countdown || h->fault_alloc.firing) || !tallyH_fault_hit(&h->fault_alloc))
        return false;
    tallyB_error_set(&h->err, TALLY_EFAULT, "injected fault: allocation %lu failed",
                     h->fault_alloc.requests);
    return true;
}

static void *malloc_checked(tallyH_heap *h, size_t n, bool zero)
{
    if (tallyH_alloc_fault(h))
        return NULL;
    if (h->debug) /* a 0-byte debug block has guards right at its start */
        return tallyH_debug_malloc(h, n, zero);
    if (n == 0)
        n = 1;
    tallyH_block blk;
    uint8_t *b = alloc_user(h, n, zero, &blk);
    if (b != NULL && zero && !(blk.large && blk.pool->region == NULL)) /* huge: fresh, zero */
        memset(b, 0, n);
    return b;
}

/* Takes a block from p, the head pool of its class (the fast path's work). */
TALLY_INLINE void *take_small(tallyH_heap *h, tallyH_pool *p)
{
    uint8_t *b = tallyH_pool_take(p);
    tallyH_count_alloc(h, p->bsize);
    TALLY_ASAN_UNPOISON(b, p->bsize);
    if (TALLY_UNLIKELY(p->nfree == 0))
        return tallyH_pool_filled(h, p, b);
    return b;
}

/* The slow path of every allocation call, where a traced allocation is
 * reported (the fast paths are off while tracing: h->slow).  When tracing is the
 * only reason for the slow path, small blocks come the fast way instead
 * (malloc_traced_small). */
static TALLY_NOINLINE void *malloc_slow(tallyH_heap *h, size_t n, bool zero, const char *file,
                                        int line, const void *caller)
{
    void *b;
    if ((b = malloc_checked(h, n, zero)) == NULL) {
        h->ncalls_uncounted++;
        return NULL;
    }
    if (h->tracer != NULL)
        h->tracer->alloc(h->tracer->arg, b, n, file, line, caller);
    return b;
}

/* A small block while tracing is the only reason for the slow path: taken the
 * fast way, then reported with its pool (live: it holds the block).  Out of
 * line, and small, so that it needs no more than the fast path's registers. */
static TALLY_NOINLINE void *malloc_traced_small(tallyH_heap *h, size_t n, const char *file,
                                                int line, const void *caller)
{
    tallyH_pool *p = h->classes[(n - 1) >> 4].avail;
    if (p == NULL)
        return malloc_slow(h, n, false, file, line, caller);
    void *b = take_small(h, p);
    h->tracer->alloc_small(h->tracer->arg, p, b, n, file, line, caller);
    return b;
}

/* Does a request of n bytes (n == 0 wraps) go to malloc_traced_small? */
TALLY_INLINE bool traced_small(const tallyH_heap *h, size_t n)
{
    return n - 1 < TALLY_SMALL_MAX && h->slow == TALLY_SLOW_TRACE;
}

/* The fast path, a block from the head pool of its class, else the slow path.
 * Shared by the plain and the _at functions: the site arguments are only passed
 * on to the slow path, so the fast path is the same code in both (a leaf that
 * returns the block, or tail-calls tallyH_pool_filled, with no stack frame). */
TALLY_INLINE void *malloc_at(tallyH_heap *h, size_t n, const char *file, int line,
                             const void *caller)
{
    size_t m = n - 1; /* n == 0 wraps and takes the slow path */
    if (TALLY_LIKELY(m < TALLY_SMALL_MAX && !h->slow)) {
        tallyH_pool *p = h->classes[m >> 4].avail;
        if (TALLY_LIKELY(p != NULL))
            return take_small(h, p);
    } else if (traced_small(h, n)) {
        return malloc_traced_small(h, n, file, line, caller);
    }
    return malloc_slow(h, n, false, file, line, caller);
}

/* The plain functions keep their names and signatures (the ABI): the public
 * headers turn calls into the _at calls with a macro, so the names are written in
 * parentheses here, where the macro does not expand. */
void *(tally_malloc)(tally_rt *rt, size_t n)
{
    return malloc_at(heap_of(rt), n, NULL, 0, __builtin_return_address(0));
}

void *tally_malloc_at(tally_rt *rt, size_t n, const char *file, int line)
{
    return malloc_at(heap_of(rt), n, file, line, __builtin_return_address(0));
}

void *tallyH_malloc_at(tallyH_heap *h, size_t n, const char *file, int line, const void *caller)
{
    return malloc_at(h, n, file, line, caller);
}

static void *calloc_at(tallyH_heap *h, size_t count, size_t n, const char *file, int line,
                       const void *caller)
{
    size_t total;
    if (__builtin_mul_overflow(count, n, &total)) {
        tallyB_error_set(&h->err, TALLY_EOVERFLOW, "calloc of %zu elements of %zu bytes overflows",
                         count, n);
        return NULL;
    }
    if (traced_small(h, total)) { /* the hooks do not read the block: zeroed after */
        void *b = malloc_traced_small(h, total, file, line, caller);
        if (b != NULL)
            memset(b, 0, total);
        return b;
    }
    return malloc_slow(h, total, true, file, line, caller);
}

void *(tally_calloc)(tally_rt *rt, size_t count, size_t n)
{
    return calloc_at(heap_of(rt), count, n, NULL, 0, __builtin_return_address(0));
}

void *tally_calloc_at(tally_rt *rt, size_t count, size_t n, const char *file, int line)
{
    return calloc_at(heap_of(rt), count, n, file, line, __builtin_return_address(0));
}

/* ---- finding and releasing blocks -------------------------------------------------- */

/* The region whose pools contain address a, or NULL (a huge block): a search,
 * fine on this error path. */
static tallyH_region *region_containing(tallyH_heap *h, uintptr_t a)
{
    for (tallyH_region *r = h->regions; r; r = r->next)
        if (a - (uintptr_t)r->base < ((size_t)r->npools << TALLY_POOL_SHIFT))
            return r;
    return NULL;
}

/* Explains an owned address whose pool header is not a live pool's. */
static tally_error explain_stray(tallyH_heap *h, uintptr_t user, uintptr_t a, const char *what)
{
    tallyH_region *r = region_containing(h, a);
    uint8_t *unit = (uint8_t *)tallyH_pool_of((void *)a);
    if (r == NULL || unit < r->base) {
        tallyB_error_report(&h->err, TALLY_EFOREIGN,
                            "%s of %p: not the start of a block (inside a large block)", what,
                            (void *)user);
        return TALLY_EFOREIGN;
    }
    if (tallyH_region_pool_free(r, unit)) {
        tallyB_error_report(&h->err, TALLY_EDOUBLEFREE,
                            "%s of %p: the block is not allocated, its pool %p is free "
                            "(double free?)", what, (void *)user, (void *)unit);
        return TALLY_EDOUBLEFREE;
    }
    /* A used pool without a valid header: the middle of a large block, or damage. */
    for (uint8_t *u = unit; u >= r->base; u -= TALLY_POOL_SIZE) {
        if (tallyB_peek_word(u) == tallyH_tag(h, u, TALLY_POOL_LARGE)) {
            tallyH_pool *p = (tallyH_pool *)u;
            if (unit < u + ((size_t)p->nunits << TALLY_POOL_SHIFT)) {
                tallyB_error_report(&h->err, TALLY_EFOREIGN,
                                    "%s of %p: not the start of a block (inside the %zu-byte "
                                    "block at %p)", what, (void *)user, p->lsize, (void *)p->data);
                return TALLY_EFOREIGN;
            }
            break;
        }
        if (u == r->base)
            break;
    }
    tallyB_error_report(&h->err, TALLY_ECORRUPT,
                        "%s of %p: the header of pool %p is damaged (heap corruption, "
                        "probably a buffer overrun from the pool before)", what, (void *)user,
                        (void *)unit);
    return TALLY_ECORRUPT;
}

/* Looks up the block at raw address a, on behalf of user pointer `user`.  Reports
 * and returns an error for anything that is not a live block of h. */
static tally_error block_find_at(tallyH_heap *h, uintptr_t a, uintptr_t user, tallyH_block *b,
                                 const char *what)
{
    if (!tallyH_owns_any(h, a)) {
        tallyB_error_report(&h->err, TALLY_EFOREIGN,
                            "%s of %p: not a block of this runtime (foreign pointer)", what,
                            (void *)user);
        return TALLY_EFOREIGN;
    }
    if (tallyH_is_medium(h, (const void *)a)) {
        tallyB_error_report(&h->err, TALLY_EFOREIGN,
                            "%s of %p: a container's buffer (in a medium arena), not a block "
                            "from tally_malloc", what, (void *)user);
        return TALLY_EFOREIGN;
    }
    tallyH_pool *p = tallyH_pool_of((void *)a);
    uintptr_t tag = tallyB_peek_word(p);
    if (tag == tallyH_tag(h, p, TALLY_POOL_SMALL)) {
        int64_t idx = tallyH_pool_index(p, a);
        if (idx < 0) {
            tallyB_error_report(&h->err, TALLY_EFOREIGN,
                                "%s of %p: not the start of a block (pool %p of %u-byte blocks)",
                                what, (void *)user, (void *)p, p->bsize);
            return TALLY_EFOREIGN;
        }
        if (tallyH_pool_is_free(p, (uint32_t)idx)) {
            tallyB_error_report(&h->err, TALLY_EDOUBLEFREE,
                                "%s of %p: the %u-byte block is not allocated (double free?)",
                                what, (void *)user, p->bsize);
            return TALLY_EDOUBLEFREE;
        }
        *b = (tallyH_block){p, (uint8_t *)a, p->bsize, (uint32_t)idx, false};
        return TALLY_OK;
    }
    if (tag == tallyH_tag(h, p, TALLY_POOL_LARGE)) {
        if (a != (uintptr_t)p->data) {
            tallyB_error_report(&h->err, TALLY_EFOREIGN,
                                "%s of %p: not the start of a block (inside the %zu-byte block at %p)",
                                what, (void *)user, p->lsize, (void *)p->data);
            return TALLY_EFOREIGN;
        }
        *b = (tallyH_block){p, p->data, p->lsize, 0, true};
        return TALLY_OK;
    }
    return explain_stray(h, user, a, what);
}

tally_error tallyH_block_find(tallyH_heap *h, const void *p, tallyH_block *b, const char *what)
{
    return block_find_at(h, (uintptr_t)p, (uintptr_t)p, b, what);
}

tally_error tallyH_block_find_user(tallyH_heap *h, const void *raw, const void *user,
                                   tallyH_block *b, const char *what)
{
    return block_find_at(h, (uintptr_t)raw, (uintptr_t)user, b, what);
}

/* The usable size of `user` if it is the start of a live block handed to a user,
 * else 0 (quietly: no report). */
size_t tallyH_user_block_size(tallyH_heap *h, const void *user)
{
    uintptr_t a = (uintptr_t)user - (h->debug ? TALLY_DEBUG_HEAD : 0);
    if (!tallyH_owns_any(h, a))
        return 0;
    tallyH_pool *p = tallyH_pool_of((void *)a);
    uintptr_t tag = tallyB_peek_word(p);
    size_t n;
    if (tag == tallyH_tag(h, p, TALLY_POOL_SMALL)) {
        int64_t idx = tallyH_pool_index(p, a);
        if (idx < 0 || tallyH_pool_is_free(p, (uint32_t)idx))
            return 0;
        n = p->bsize;
    } else if (tag == tallyH_tag(h, p, TALLY_POOL_LARGE) && a == (uintptr_t)p->data) {
        n = p->lsize;
    } else {
        return 0;
    }
    if (h->debug && !tallyH_debug_user_block((const uint8_t *)a, &n))
        return 0; /* in quarantine */
    return n;
}

/* A live block the heap itself handed out (no checks). */
void tallyH_block_of(void *raw, tallyH_block *b)
{
    tallyH_pool *p = tallyH_pool_of(raw);
    if (p->tag == tallyH_tag(p->heap, p, TALLY_POOL_SMALL)) {
        int64_t idx = tallyH_pool_index(p, (uintptr_t)raw);
        *b = (tallyH_block){p, raw, p->bsize, (uint32_t)idx, false};
    } else {
        *b = (tallyH_block){p, raw, p->lsize, 0, true};
    }
}

/* Returns a block to its pool or region (counting is the caller's). */
void tallyH_release(tallyH_heap *h, const tallyH_block *b)
{
    tallyH_pool *p = b->pool;
    if (!b->large) {
        tallyH_pool_give(h, p, b->index);
        return;
    }
    h->large_blocks--;
    h->large_bytes -= p->lsize;
    if (p->region == NULL) {
        huge_free(h, p);
        return;
    }
    p->tag = 0;
    tallyH_units_free(h, p->region, (uint8_t *)p, p->nunits);
}

/* Releases user block ptr; false if it was not released (misuse, reported). */
static bool free_checked(tallyH_heap *h, void *ptr)
{
    if (h->debug)
        return tallyH_debug_free(h, ptr);
    tallyH_block b;
    if (tallyH_block_find(h, ptr, &b, "free") != TALLY_OK)
        return false;
    tallyB_anno_free(h, b.addr, b.size);
    tallyH_count_free(h, b.size);
    tallyH_release(h, &b);
    return true;
}

/* The fast path's release of a small block: false (nothing done) if ptr is not
 * a live small block it can vouch for (the slow path then checks and reports).
 * Ownership and the header tag are checked once per pool run: last_pool is a
 * live small pool of this heap that passed them (cleared when it is released). */
/* The first word of the pool-aligned unit below a pointer being released: the
 * tag of its pool if it is a small block.  For a misused pointer it may be bytes
 * the heap poisoned for AddressSanitizer (a container's buffer after freed medium
 * units), so an ASan build reads it without being instrumented and lets the slow
 * path refuse the pointer, as every other build does. */
TALLY_INLINE uintptr_t pool_word(const tallyH_pool *p)
{
#if TALLY_ASAN
    return tallyB_peek_word(&p->tag);
#else
    return p->tag;
#endif
}

TALLY_INLINE bool free_small(tallyH_heap *h, void *ptr, bool traced)
{
    uintptr_t a = (uintptr_t)ptr;
    tallyH_pool *p = tallyH_pool_of(ptr);
    if (p != h->last_pool) {
        if (!tallyH_owns(h, a) || pool_word(p) != tallyH_tag(h, p, TALLY_POOL_SMALL))
            return false;
        h->last_pool = p;
    }
    int64_t idx = tallyH_pool_index(p, a);
    if (TALLY_UNLIKELY(idx < 0 || tallyH_pool_is_free(p, (uint32_t)idx)))
        return false; /* interior pointer or double free: reported by the slow path */
    if (traced) /* before the give, which may release p (and its arena) */
        h->tracer->free_small(h->tracer->arg, p, ptr);
    TALLY_ASAN_POISON(ptr, p->bsize);
    tallyH_count_free(h, p->bsize);
    tallyH_pool_give(h, p, (uint32_t)idx);
    return true;
}

/* The slow path of every release, where a traced release is reported.  When
 * tracing is the only reason for the slow path, small blocks go the fast way
 * instead (free_traced). */
static TALLY_NOINLINE void free_slow(tallyH_heap *h, void *ptr)
{
    if (ptr == NULL)
        return;
    if (!free_checked(h, ptr))
        return;
    if (h->tracer != NULL)
        h->tracer->free(h->tracer->arg, ptr);
}

/* A release while tracing is the only reason for the slow path: a small block is
 * given back the fast way, reported first (free_small), and anything else goes
 * the general way. */
static TALLY_NOINLINE void free_traced(tallyH_heap *h, void *ptr)
{
    if (ptr != NULL && free_small(h, ptr, true))
        return;
    free_slow(h, ptr);
}

void tally_free(tally_rt *rt, void *ptr)
{
    tallyH_heap *h = heap_of(rt);
    if (TALLY_LIKELY(!h->slow)) {
        if (TALLY_LIKELY(free_small(h, ptr, false)))
            return;
    } else if (h->slow == TALLY_SLOW_TRACE) {
        free_traced(h, ptr);
        return;
    }
    free_slow(h, ptr);
}

/* ---- realloc ----------------------------------------------------------------------- */

/* Large block p, at the same address, now holds lsize usable bytes: the tools and
 * the counters follow. */
static void large_set_size(tallyH_heap *h, tallyH_pool *p, size_t lsize)
{
    tallyH_count_resize(h, p->data, p->lsize, lsize);
    h->large_bytes = h->large_bytes - p->lsize + lsize;
    p->lsize = lsize;
}

/* May huge blocks be resized by the backend instead of copied?  Not without a
 * remap(), and not under Valgrind: memcheck's mempool records a block at one
 * address, and copying is correct, only slower.  (Debug mode never gets here:
 * tallyH_debug_realloc always moves a block, to catch stale pointers with poison.) */
static bool huge_remappable(const tallyH_heap *h)
{
    return h->backend.remap != NULL && !h->on_valgrind;
}

/* Resizes huge block p in place, by remapping, to hold n bytes. */
static bool huge_resize(tallyH_heap *h, tallyH_pool *p, size_t n)
{
    size_t old_size = p->lsize + TALLY_LARGE_HDR, size = huge_map_size(n);
    if (size == old_size)
        return true;
    if (!huge_remappable(h) || !tallyH_backend_remap(h, p, old_size, size, NULL))
        return false;
    large_set_size(h, p, size - TALLY_LARGE_HDR);
    if (size < old_size) /* the tail is unmapped: no stale poison for its next user */
        TALLY_ASAN_UNPOISON((uint8_t *)p + size, old_size - size);
    return true;
}

/* A huge block stays huge in place, by remapping, or (shrinking, without remap())
 * as long as it wastes at most half of itself.  One that would fit an arena is
 * copied into one: the transition between huge and large takes the copy path. */
static bool huge_fits(tallyH_heap *h, tallyH_pool *p, size_t n)
{
    if (pools_for(n) > TALLY_ARENA_POOLS && huge_resize(h, p, n))
        return true;
    return n <= p->lsize && n >= p->lsize / 2;
}

/* Huge block p's pages now lie at q, the start of a new mapping of size bytes
 * (the header came along): make everything that names the block's address name q. */
static void huge_moved(tallyH_heap *h, tallyH_pool *p, tallyH_pool *q, size_t size)
{
    q->tag = tallyH_tag(h, q, TALLY_POOL_LARGE);
    q->data = (uint8_t *)q + TALLY_LARGE_HDR;
    if (q->prev)
        q->prev->next = q;
    else
        h->huge = q;
    if (q->next)
        q->next->prev = q;
    tallyH_slot_move(h, q->hbase >> TALLY_HANDLE_SHIFT, (uint8_t *)q);
    tallyH_owner_remove(h, (uintptr_t)p);
    large_set_size(h, q, size - TALLY_LARGE_HDR);
}

/* Moves huge block p, without copying, to a new arena-aligned owned mapping big
 * enough for n bytes: the backend moves the pages there.  Returns the block's new
 * address, or NULL with the error set and p untouched. */
static uint8_t *huge_move(tallyH_heap *h, tallyH_pool *p, size_t n)
{
    if (!huge_remappable(h) || pools_for(n) <= TALLY_ARENA_POOLS)
        return NULL;
    size_t old_size = p->lsize + TALLY_LARGE_HDR, size = huge_map_size(n);
    uint8_t *m = tallyH_map_owned(h, size);
    if (m == NULL)
        return NULL;
    if (!tallyH_backend_remap(h, p, old_size, size, m)) {
        tallyH_owner_remove(h, (uintptr_t)m);
        tallyH_backend_unmap(h, m, size);
        return NULL;
    }
    tallyH_pool *q = (tallyH_pool *)m;
    huge_moved(h, p, q, size);
    return q->data;
}

/* Resizes large block b in place to hold n bytes, if its region allows. */
static bool large_resize(tallyH_heap *h, tallyH_block *b, size_t n)
{
    tallyH_pool *p = b->pool;
    if (n <= h->class_max)
        return false; /* a pool class serves it with less waste */
    if (p->region == NULL)
        return huge_fits(h, p, n);
    size_t want = pools_for(n);
    if (want == p->nunits)
        return true;
    if (want < p->nunits) {
        uint32_t drop = p->nunits - (uint32_t)want;
        tallyH_units_free(h, p->region, (uint8_t *)p + (want << TALLY_POOL_SHIFT), drop);
    } else if (want >= UINT32_MAX || !tallyH_units_extend(h, p->region, (uint8_t *)p,
                                                          p->nunits, (uint32_t)want)) {
        return false;
    }
    large_set_size(h, p, (want << TALLY_POOL_SHIFT) - TALLY_LARGE_HDR);
    p->nunits = (uint32_t)want;
    return true;
}

static bool fits_in_place(tallyH_heap *h, tallyH_block *b, size_t n)
{
    if (b->large)
        return large_resize(h, b, n);
    /* Keep a small block unless it would waste more than half of itself. */
    return n <= b->size && (n > b->size / 2 || b->size <= 16);
}

static void *realloc_checked(tallyH_heap *h, void *p, size_t n);

static void *realloc_at(tallyH_heap *h, void *p, size_t n, const char *file, int line,
                        const void *caller)
{
    if (p == NULL)
        return tallyH_malloc_at(h, n, file, line, caller);
    void *q = realloc_checked(h, p, n);
    if (q == NULL || q == p)
        h->ncalls_uncounted++; /* failed, or stayed in place: no allocation counted */
    if (q != NULL && h->tracer != NULL)
        h->tracer->resize(h->tracer->arg, p, q, n, file, line, caller);
    return q;
}

void *(tally_realloc)(tally_rt *rt, void *p, size_t n)
{
    return realloc_at(heap_of(rt), p, n, NULL, 0, __builtin_return_address(0));
}

void *tally_realloc_at(tally_rt *rt, void *p, size_t n, const char *file, int line)
{
    return realloc_at(heap_of(rt), p, n, file, line, __builtin_return_address(0));
}

static void *realloc_checked(tallyH_heap *h, void *p, size_t n)
{
    if (tallyH_alloc_fault(h))
        return NULL;
    if (h->debug)
        return tallyH_debug_realloc(h, p, n);
    if (n == 0)
        n = 1;
    tallyH_block b;
    if (tallyH_block_find(h, p, &b, "realloc") != TALLY_OK)
        return NULL;
    if (!tallyH_request_fits(h, n, TALLY_MAX_REQUEST))
        return NULL;
    /* A failed attempt to remap is no failure of the call: its error is dropped. */
    tally_error before = h->err.code;
    bool stays = fits_in_place(h, &b, n);
    uint8_t *q = stays ? (uint8_t *)p : NULL;
    if (!stays && b.large && b.pool->region == NULL && (q = huge_move(h, b.pool, n)) != NULL)
        h->nalloc++; /* counted as the copy path counts it: one allocation, so one free */
    h->err.code = before;
    if (q != NULL)
        return q;
    tallyH_block qb;
    q = alloc_user(h, n, false, &qb);
    if (q == NULL)
        return NULL;
    memcpy(q, p, n < b.size ? n : b.size);
    tallyB_anno_free(h, b.addr, b.size);
    tallyH_count_free(h, b.size);
    tallyH_release(h, &b);
    return q;
}

void *tallyH_resize_nocopy(tallyH_heap *h, void *p, size_t n)
{
    if (p == NULL || n == 0 || h->debug)
        return NULL;
    tallyB_errstate saved = h->err; /* a failure here is no failure of the caller's */
    tallyH_block b;
    uint8_t *q = NULL;
    if (tallyH_block_find(h, p, &b, "realloc") == TALLY_OK &&
        tallyH_request_fits(h, n, TALLY_MAX_REQUEST)) {
        if (fits_in_place(h, &b, n))
            q = p;
        else if (b.large && b.pool->region == NULL)
            q = huge_move(h, b.pool, n);
    }
    saved.reports = h->err.reports; /* a misuse report stays counted */
    h->err = saved;
    if (q != NULL && h->tracer != NULL) /* the tracer runs no user code either */
        h->tracer->resize(h->tracer->arg, p, q, n, NULL, 0, NULL);
    return q; /* a resize, not an allocation: no allocation counter moves */
}

void *tallyH_malloc_quiet(tallyH_heap *h, size_t n)
{
    tallyB_errstate saved = h->err;
    tallyH_exhausted_fn exhausted = h->exhausted;
    h->exhausted = NULL; /* no collection: it would run finalizers, user code */
    void *b = malloc_checked(h, n, false);
    h->exhausted = exhausted;
    if (b == NULL) {
        h->ncalls_uncounted++;
        saved.reports = h->err.reports;
        h->err = saved; /* the caller's call did not fail */
    }
    return b;
}

void tallyH_free_quiet(tallyH_heap *h, void *p)
{
    if (p != NULL)
        free_checked(h, p);
}

static int clear_aux(tallyH_heap *h, tallyH_pool *p, void *arg)
{
    (void)arg;
    if (tallyB_peek_word(p) == tallyH_tag(h, p, TALLY_POOL_SMALL))
        p->aux = 0;
    return 0;
}

void tallyH_set_tracer(tallyH_heap *h, const tallyH_tracer *t)
{
    if (t == NULL && h->tracer != NULL) /* the words name records about to go */
        tallyH_walk_pools(h, clear_aux, NULL);
    h->tracer = t;
    tallyH_update_slow(h);
}

bool tallyH_can_remap(const tallyH_heap *h)
{
    return huge_remappable(h) && !h->debug;
}

/* ---- queries ------------------------------------------------------------------------ */

size_t tally_usable_size(const void *ptr)
{
    if (ptr == NULL)
        return 0;
    const tallyH_pool *p = tallyH_pool_of(ptr);
    const tallyH_heap *h = p->heap;
    if (h->debug)
        return tallyH_debug_usable(ptr);
    if (p->tag == tallyH_tag(h, p, TALLY_POOL_SMALL))
        return p->bsize;
    if (p->tag == tallyH_tag(h, p, TALLY_POOL_LARGE))
        return p->lsize;
    return 0;
}

tally_rt *tally_runtime_of(const void *ptr)
{
    if (ptr == NULL)
        return NULL;
    return (tally_rt *)(void *)tallyH_pool_of(ptr)->heap;
}

/* ---- fault injection ---------------------------------------------------------------- */

static tallyH_fault *fault_of(tallyH_heap *h, tally_fault_kind kind)
{
    if (kind == TALLY_FAULT_BACKEND)
        return &h->fault_backend;
    if (kind == TALLY_FAULT_ALLOC)
        return &h->fault_alloc;
    return NULL;
}

void tally_fault_inject(tally_rt *rt, tally_fault_kind kind, unsigned long nth, unsigned flags)
{
    tallyH_heap *h = heap_of(rt);
    tallyH_fault *f = fault_of(h, kind);
    if (f == NULL) {
        tallyB_error_set(&h->err, TALLY_EINVAL, "unknown fault kind %d", (int)kind);
        return;
    }
    f->countdown = nth;
    f->persist = (flags & TALLY_FAULT_PERSIST) != 0;
    f->firing = false;
    tallyH_update_slow(h);
}

unsigned long tally_fault_requests(const tally_rt *rt, tally_fault_kind kind)
{
    tallyH_heap *h = heap_of((tally_rt *)rt);
    if (kind == TALLY_FAULT_ALLOC)
        return (unsigned long)(h->nalloc + h->ncalls_uncounted);
    tallyH_fault *f = fault_of(h, kind);
    return f ? f->requests : 0;
}

unsigned long tally_fault_failures(const tally_rt *rt, tally_fault_kind kind)
{
    tallyH_fault *f = fault_of(heap_of((tally_rt *)rt), kind);
    return f ? f->failures : 0;
}

/* ---- lifetime ------------------------------------------------------------------------ */

static uintptr_t make_cookie(const tallyH_heap *h)
{
    /* Secret for pool tags: mixes the heap's and the stack's (randomised) addresses
     * with a timestamp-free counter-less hash (splitmix64 finaliser). */
    uintptr_t local = 0;
    uint64_t x = (uint64_t)(uintptr_t)h ^ ((uint64_t)(uintptr_t)&local << 17) ^ 0x9e3779b97f4a7c15ull;
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return (uintptr_t)(x & ~(uint64_t)7); /* low bits stay free for the kind */
}

int tallyH_init(tallyH_heap *h, const tally_config *cfg)
{
    tallyB_error_init(&h->err, cfg->report, cfg->report_arg);
    h->cookie = make_cookie(h);
    tallyH_classes_init(h);
    h->debug = cfg->debug;
    h->limit = cfg->memory ? 0 : cfg->max_bytes;
    h->retain = cfg->retain_arenas ? cfg->retain_arenas : 2;
    h->backend = *tallyH_backend_for(cfg);
    h->on_valgrind = TALLY_ON_VALGRIND();
    h->last_pool = TALLY_NO_POOL;
    tallyH_slots_init(h, NULL, 0);
    tallyB_anno_pool_create(h);
    tallyH_update_slow(h);
    return 0;
}

void tallyH_destroy(tallyH_heap *h)
{
    tallyB_anno_pool_destroy(h);
    tallyH_regions_destroy(h);
    tallyH_slots_destroy(h);
    tallyH_owner_destroy(h);
}
