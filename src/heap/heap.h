/* heap.h - internal structures of the private heap.
 *
 * Layout.  The heap is made of *pools* (TALLY_POOL_SIZE bytes, aligned to their
 * size), grouped in *regions*: a hosted arena (64 pools from one backend mapping,
 * its header kept apart) or the one caller-given buffer.  Every pool
 * starts with a header, so any block address masked with ~TALLY_POOL_MASK gives its
 * pool, the pool gives its heap, and the heap is the first member of the runtime:
 * the owner of a block is found in O(1) without a search.
 *
 *   arena (hosted, 2^TALLY_ARENA_SHIFT aligned; its region header lives apart)
 *   +---------+---------+---------+-----+---------+
 *   | pool 0  | pool 1  | pool 2  | ... | pool 63 |
 *   +---------+---------+---------+-----+---------+
 *   pool (small): | header | free bitmap | block 0 | block 1 | ... | block cap-1 |
 *   pool (large): | header | one block spanning nunits pools ................... |
 *
 * Small pools serve one size class each.  Which blocks are free is kept ONLY in the
 * pool header's bitmap (1 = free), never inside free blocks: allocation takes the
 * lowest set bit, release sets it again.  So a write through a dangling pointer can
 * never corrupt allocator metadata, a double free is detected in every mode (the bit
 * is already set), and live blocks can be enumerated by walking bitmaps (what the
 * collector needs, with no per-object list links).
 *
 * Ownership.  Before a pointer passed to tally_free() is dereferenced, the heap
 * checks that it lies in memory the heap owns: one bit per arena-sized granule of
 * an address window (owner.c).  A foreign pointer is thus
 * reported without being read.  Pool headers then carry a tag (their address XOR a
 * per-heap secret XOR their kind), which catches pointers into free pools, into the
 * middle of large blocks, and overwritten headers.
 *
 * Invariants.
 *  - A small pool is on its class's `avail` queue iff nfree > 0.  The head's prev
 *    is stale: popping the head writes nothing into the next pool (in a large
 *    heap, a cache miss); only a non-head pool's prev is exact.
 *  - A region is on the heap's `avail` list iff it has a free pool.
 *  - A free pool's first word (its tag) is 0, or the pool is marked dirty in its
 *    region, in which case its tag is cleared before the pool is reused for the
 *    middle of a large block.
 *  - Bytes in use (tallyH_in_use: in_use_peak - headroom) is the sum of the usable
 *    sizes of live blocks: block sizes, or in debug mode the sizes requested
 *    (quarantined blocks excluded).  headroom >= 0 between calls.
 *  - h->large_blocks / large_bytes count large blocks held, quarantine included.
 *
 * Medium blocks (medium.c) serve containers' owned buffers only, through the
 * tallyH_buf_* calls: sizes above the largest class, in 256-byte units of arenas
 * of their own, so that a 40,000-byte array takes 40,192 bytes rather than three
 * whole pools.  tally_malloc never returns one; tally_free and tally_realloc
 * refuse one (TALLY_EFOREIGN) on their slow paths.
 */
#ifndef TALLY_HEAP_INTERNAL_H
#define TALLY_HEAP_INTERNAL_H

#include <stdbool.h>
#include <stdio.h>

#include "base/annotate.h"
#include "base/base.h"
#include "base/error.h"
#include "tally/heap.h"

#define TALLY_POOL_SIZE ((size_t)1 << TALLY_POOL_SHIFT)
#define TALLY_POOL_MASK (TALLY_POOL_SIZE - 1)
#define TALLY_ARENA_SIZE ((size_t)1 << TALLY_ARENA_SHIFT)
#define TALLY_ARENA_POOLS 64

/* Allocations between two releases of surplus empty arenas (region.c). */
#ifndef TALLY_DECAY_ALLOCS
#define TALLY_DECAY_ALLOCS 1024u
#endif

/* The empty value of h->last_pool: not pool-aligned, so no pointer's pool (not
 * even NULL's, which is 0) can ever equal it. */
#define TALLY_NO_POOL ((tallyH_pool *)(uintptr_t)1)

/* Ownership windows beyond the first, opened when a backend places memory far
 * from the first mapping (owner.c). */
#define TALLY_OWNER_EXTRA_WINDOWS 7

/* Pool kinds, folded into the header tag. */
#define TALLY_POOL_SMALL 1u
#define TALLY_POOL_LARGE 2u
#define TALLY_POOL_MEDIUM 4u /* the header of a medium arena (medium.c) */

/* Region kinds (the region header of an arena lives apart from it, region.c). */
#define TALLY_REGION_ARENA 1u
#define TALLY_REGION_FIXED 2u

/* Largest request the heap accepts: anything above cannot be mapped anyway and
 * would overflow size arithmetic. */
#define TALLY_MAX_REQUEST (((size_t)1 << 47) - TALLY_ARENA_SIZE)

typedef struct tallyH_pool tallyH_pool;
typedef struct tallyH_region tallyH_region;
typedef struct tallyH_class tallyH_class;
typedef struct tallyH_heap tallyH_heap;
typedef struct tallyH_medium tallyH_medium;

struct tallyH_pool {
    uintptr_t tag;           /* (uintptr_t)this ^ heap->cookie ^ kind; 0 when free */
    tallyH_heap *heap;       /* owner */
    tallyH_region *region;   /* region holding this pool; NULL for a huge block */
    uint8_t *data;           /* small: block 0; large: the block */
    uint32_t bsize;          /* small: bytes per block */
    uint32_t inv;            /* small: ceil(2^32 / bsize), for division by bsize */
    uint32_t span;           /* small: cap * bsize, bytes covered by blocks */
    uint16_t cap;            /* small: blocks in the pool */
    uint16_t nfree;          /* small: free blocks */
    uint16_t hint;           /* small: bitmap word where the next search starts */
    uint16_t cls;            /* small: size-class index */
    uint32_t nunits;         /* pools covered: 1 for small, the span for large */
    uint32_t hbase;          /* handle of this header's first byte (handle.c) */
    uint32_t aux;            /* small: the tracer's word (the handle of its record of
                                this pool), 0 when none; zeroed when the pool is made
                                and when the tracer is removed.  Fills padding. */
    tallyH_pool *next;       /* small: class avail queue; huge: heap's huge list */
    tallyH_pool *prev;       /* not kept for the head of a class queue */
    size_t lsize;            /* large: usable bytes of the block */
    uint64_t freemap[];      /* small: cap bits, 1 = free */
};

#define TALLY_LARGE_HDR TALLY_ALIGN_UP(sizeof(tallyH_pool), 16)
_Static_assert(sizeof(tallyH_pool) == 88, "the pool header's size sets every class's capacity");

struct tallyH_region {
    uintptr_t tag;            /* (uintptr_t)this ^ heap->cookie */
    tallyH_heap *heap;        /* owner */
    tallyH_region *next;      /* all regions of the heap */
    tallyH_region *prev;
    tallyH_region *anext;     /* regions with a free pool (h->avail) */
    tallyH_region *aprev;
    uint8_t *base;            /* first pool */
    uint32_t npools;          /* pools managed */
    uint32_t nfree;           /* of which free */
    uint32_t kind;            /* TALLY_REGION_ARENA or _FIXED */
    uint32_t slot;            /* handle slot of its first chunk (fixed: of nchunks) */
    uint32_t nwords;          /* words in each map */
    void *map_addr;           /* backend mapping (arena) */
    size_t map_size;
    uint64_t *freemap;        /* bit per pool: 1 = free */
    uint64_t *dirtymap;       /* bit per pool: free, used before, not purged */
    uint64_t maps[2];         /* the two maps of an arena (one word each) */
};

struct tallyH_class {
    tallyH_pool *avail;       /* queue of pools with a free block: head used first */
    tallyH_pool *tail;        /* its last pool (NULL when empty) */
    uint32_t bsize;           /* block size */
    uint32_t inv;             /* ceil(2^32 / bsize) */
    uint16_t cap;             /* blocks per pool */
    uint16_t hdr;             /* pool header bytes, bitmap included */
    uint32_t npools;          /* pools serving this class */
};
_Static_assert(sizeof(struct tallyH_class) == 32, "class records are indexed by a shift");

/* One injectable fault (SQLite's fault.c idea). */
typedef struct tallyH_fault {
    unsigned long requests;   /* requests seen */
    unsigned long failures;   /* requests failed on purpose */
    unsigned long countdown;  /* fail when it reaches 0 after decrement; 0 = off */
    bool persist;             /* keep failing after the first */
    bool firing;              /* persist mode has started failing */
} tallyH_fault;

/* A block seen from its pointer (see tallyH_block_find). */
typedef struct tallyH_block {
    tallyH_pool *pool;
    uint8_t *addr;            /* start of the block */
    size_t size;              /* usable bytes of the block */
    uint32_t index;           /* small: block index in its pool */
    bool large;
} tallyH_block;

typedef struct tallyH_quarantine {
    uint8_t *slot[TALLY_QUARANTINE_SLOTS]; /* debug blocks (raw addresses), FIFO */
    unsigned head, count;
    size_t bytes;             /* their total size */
} tallyH_quarantine;

/* Handles (handle.c): 32-bit names of 16-byte-aligned heap addresses. */
#define TALLY_HANDLE_SHIFT (TALLY_ARENA_SHIFT - 4)
#define TALLY_HANDLE_MASK (((uint32_t)1 << TALLY_HANDLE_SHIFT) - 1)
#define TALLY_HANDLE_SLOTS ((size_t)1 << (32 - TALLY_HANDLE_SHIFT))
#define TALLY_HANDLE_INLINE_SLOTS 16
#define TALLY_HANDLE_EXTRA_SLOTS 2 /* slots a fixed heap keeps for the layers above */
#define TALLY_HANDLE_NONE UINT32_MAX

typedef struct tallyH_slots {
    uint8_t **base;           /* slot -> chunk start; NULL: free */
    uint32_t cap;             /* entries of base */
    uint32_t used;            /* slots taken */
    uint32_t hint;            /* no free slot below */
    size_t map_size;          /* bytes of base's own mapping (hosted, once grown) */
    uint8_t *inline_base[TALLY_HANDLE_INLINE_SLOTS];
} tallyH_slots;

/* Called when memory runs out, before the heap gives up: may free memory (the
 * collector runs a full collection there) and returns nonzero to ask for a retry. */
typedef int (*tallyH_exhausted_fn)(tallyH_heap *h, size_t request, void *arg);

/* Allocation tracing (the trace layer, src/trace/, installs it; the heap knows
 * nothing above itself).  While h->tracer is set every call takes the slow path,
 * and the slow paths report each change to a user block once it is done and the
 * heap is consistent again: a block handed out (p, n bytes requested, the call's
 * site), released, or resized (p became q, possibly p == q).  `file`/`line` are
 * what the tally_*_at calls were given (NULL/0 from the plain functions); `caller`
 * is the return address into the code that called the public function, where the
 * tracer's native stack starts.  A resize by tallyH_resize_nocopy has no site
 * (file and caller NULL): the block keeps the one it has.  The hooks must not run
 * user code: they may allocate only through tallyH_malloc_quiet, which runs no
 * hook. */
typedef struct tallyH_tracer {
    void (*alloc)(void *arg, void *p, size_t n, const char *file, int line, const void *caller);
    void (*free)(void *arg, void *p);
    /* The same two for a small block on the branch where tracing is the only
     * reason for the slow path (no debug mode, no fault injection): pool is p's
     * pool, live while the hook runs (free_small is called before the block is
     * given back), so the tracer may read it, and use its aux word. */
    void (*alloc_small)(void *arg, tallyH_pool *pool, void *p, size_t n, const char *file,
                        int line, const void *caller);
    void (*free_small)(void *arg, tallyH_pool *pool, void *p);
    void (*resize)(void *arg, void *p, void *q, size_t n, const char *file, int line,
                   const void *caller);
    void *arg;
} tallyH_tracer;

/* Why h->slow is set: checks (debug mode, Valgrind, fault injection), tracing. */
#define TALLY_SLOW_CHECKS 1u
#define TALLY_SLOW_TRACE 2u

struct tallyH_heap {
    /* The runtime's public view (tally_rt_view in tally/types.h), which the inline
     * fast paths of the public headers read at the very start of a runtime: kept by
     * the layers above (the types layer fills it); the heap never reads it. */
    uintptr_t view[3];

    /* -- hot: read by every fast path -- */
    uint32_t slow;            /* nonzero: all calls take the slow path (TALLY_SLOW_*) */
    uint32_t fixed;           /* fixed-buffer backend */
    uintptr_t lo;             /* ownership window [lo, lo + span) */
    uintptr_t span;
    uint64_t *owner_map;      /* bit per arena-sized granule of the window (owner.c) */
    tallyH_pool *last_pool;   /* small pool whose ownership and tag tally_free checked
                                 last, or TALLY_NO_POOL (see tallyH_pool_release) */
    uintptr_t cookie;         /* secret mixed into pool tags */
    size_t in_use_peak;       /* high-water mark of bytes in use */
    intptr_t headroom;        /* in_use_peak - in use: one counter keeps both (the fast
                                 paths add or subtract; a negative value is a new peak) */
    unsigned long long nalloc;  /* allocations; frees are nalloc - live blocks */
    tallyH_class classes[TALLY_MAX_CLASSES];

    /* -- size classes -- */
    int nclasses;             /* classes in use */
    uint32_t class_max;       /* largest class size; above: large blocks */

    /* -- regions -- */
    tallyH_region *regions;   /* all regions */
    tallyH_region *avail;     /* regions with a free pool, fullest-first-ish */
    tallyH_pool *huge;        /* hosted huge blocks (own mapping each) */
    void *region_slabs;       /* pages holding arena headers (region.c) */
    tallyH_region *region_spare; /* unused arena headers in those pages */
    size_t narenas;           /* arenas mapped */
    size_t narenas_peak;
    size_t nempty;            /* arenas with every pool free */
    size_t retain;            /* empty arenas kept at least */
    unsigned long long decay_mark; /* nalloc when surplus was last given back */
    size_t reserved;          /* bytes held from the backend / usable buffer */
    size_t reserved_peak;
    size_t limit;             /* max_bytes (hosted), 0 = none */
    size_t large_blocks;
    size_t large_bytes;
    tallyH_medium *medium;    /* medium arenas (medium.c), oldest first */
    size_t medium_arenas;     /* of which counted in narenas too */
    size_t medium_empty;      /* medium arenas with no block (kept: at most one) */
    size_t medium_blocks;     /* live medium blocks and their usable bytes */
    size_t medium_bytes;
    unsigned long long ncalls_uncounted; /* allocation calls that failed or stayed put */
    unsigned long long nmaps;   /* backend map calls (or buffer carve-outs) */
    unsigned long long nunmaps;

    /* -- backend -- */
    tally_backend backend;
    struct {
        uintptr_t lo;         /* further ownership windows (owner.c) */
        uint64_t *map;
    } windows[TALLY_OWNER_EXTRA_WINDOWS];
    unsigned nwindows;

    /* -- checking -- */
    int debug;                /* TALLY_DEBUG_* level */
    bool on_valgrind;
    tallyH_fault fault_backend;
    tallyH_fault fault_alloc;
    tallyH_quarantine quarantine;
    long known_problems;      /* full debug mode: problems already reported */
    tallyH_exhausted_fn exhausted;
    void *exhausted_arg;
    const tallyH_tracer *tracer; /* allocation tracing hooks, or NULL (see above) */
    tallyB_errstate err;
    tallyH_slots slots;       /* handle slot table (handle.c) */
};

/* ---- inline helpers ---------------------------------------------------------- */

TALLY_INLINE size_t tallyH_in_use(const tallyH_heap *h)
{
    return h->in_use_peak - (size_t)h->headroom;
}

TALLY_INLINE tallyH_pool *tallyH_pool_of(const void *p)
{
    return (tallyH_pool *)((uintptr_t)p & ~(uintptr_t)TALLY_POOL_MASK);
}

TALLY_INLINE uintptr_t tallyH_tag(const tallyH_heap *h, const void *hdr, unsigned kind)
{
    return (uintptr_t)hdr ^ h->cookie ^ kind;
}

/* Ownership: one bit per arena-sized granule of a window (owner.c). */
#ifndef TALLY_OWNER_WINDOW_SHIFT /* 2^20 granules: 1 TiB with 1 MiB arenas */
#define TALLY_OWNER_WINDOW_SHIFT (TALLY_ARENA_SHIFT + 20)
#endif

/* Does window 0 of the heap own address a?  Never dereferences a.  False is not
 * final: ask tallyH_owns_any() on the slow path. */
TALLY_INLINE bool tallyH_owns(const tallyH_heap *h, uintptr_t a)
{
    uintptr_t off = a - h->lo;
    if (off >= h->span)
        return false;
    uintptr_t g = off >> TALLY_ARENA_SHIFT;
    return (h->owner_map[g >> 6] >> (g & 63)) & 1;
}

/* Index of block at byte offset off of a pool with the given reciprocal: exact for
 * every offset within a pool (checked exhaustively by the tests). */
TALLY_INLINE uint32_t tallyH_div(uint32_t off, uint32_t inv)
{
    return (uint32_t)(((uint64_t)off * inv) >> 32);
}

TALLY_INLINE uint32_t tallyH_reciprocal(uint32_t bsize)
{
    return (uint32_t)((((uint64_t)1 << 32) + bsize - 1) / bsize);
}

/* The address a handle names (one load). */
TALLY_INLINE void *tallyH_at(const tallyH_heap *h, uint32_t handle)
{
    return h->slots.base[handle >> TALLY_HANDLE_SHIFT] + ((size_t)(handle & TALLY_HANDLE_MASK) << 4);
}

/* The handle of p, a 16-byte-aligned address in a pool, a large block's first
 * pool or the first arena-size of a huge block (one load). */
TALLY_INLINE uint32_t tallyH_handle(const void *p)
{
    const tallyH_pool *pool = tallyH_pool_of(p);
    return pool->hbase + (uint32_t)(((uintptr_t)p - (uintptr_t)pool) >> 4);
}

/* ---- handle.c ------------------------------------------------------------------ */
TALLY_INTERNAL void tallyH_slots_init(tallyH_heap *h, uint8_t **table, uint32_t cap);
TALLY_INTERNAL void tallyH_slots_destroy(tallyH_heap *h);
/* Room for `more` slots, or false with the error set. */
TALLY_INTERNAL bool tallyH_slots_reserve(tallyH_heap *h, uint32_t more);
/* A slot for a chunk (16-byte aligned, named up to TALLY_ARENA_SIZE bytes on), or
 * UINT32_MAX with the error set. */
TALLY_INTERNAL uint32_t tallyH_slot_take(tallyH_heap *h, uint8_t *chunk);
TALLY_INTERNAL void tallyH_slot_drop(tallyH_heap *h, uint32_t slot);
/* The chunk of a slot moved (a huge block remapped): its handles follow it. */
TALLY_INTERNAL void tallyH_slot_move(tallyH_heap *h, uint32_t slot, uint8_t *chunk);
TALLY_INTERNAL uint32_t tallyH_region_hbase(const tallyH_region *r, const uint8_t *unit);

/* ---- sizeclass.c --------------------------------------------------------------- */
TALLY_INTERNAL void tallyH_classes_init(tallyH_heap *h);
/* Class index for a request of n bytes (1 <= n <= h->class_max). */
TALLY_INTERNAL int tallyH_class_index(const tallyH_heap *h, size_t n);
TALLY_INTERNAL size_t tallyH_small_header(uint32_t cap);

/* ---- pool.c -------------------------------------------------------------------- */
TALLY_INTERNAL tallyH_pool *tallyH_pool_new(tallyH_heap *h, int cls);
TALLY_INTERNAL uint8_t *tallyH_pool_filled(tallyH_heap *h, tallyH_pool *p, uint8_t *b);
TALLY_INTERNAL void tallyH_pool_changed(tallyH_heap *h, tallyH_pool *p);
TALLY_INTERNAL void tallyH_pool_unlink(tallyH_class *c, tallyH_pool *p);
TALLY_INTERNAL void tallyH_pool_release(tallyH_heap *h, tallyH_pool *p);
TALLY_INTERNAL size_t tallyH_pools_release_empty(tallyH_heap *h);

/* ---- region.c ------------------------------------------------------------------ */
/* n contiguous free pools (marked used), or NULL with the error set. */
TALLY_INTERNAL uint8_t *tallyH_units_alloc(tallyH_heap *h, uint32_t n, tallyH_region **out);
TALLY_INTERNAL void tallyH_units_free(tallyH_heap *h, tallyH_region *r, uint8_t *unit, uint32_t n);
/* Tries to take the n pools following [unit, unit + have) in place. */
TALLY_INTERNAL bool tallyH_units_extend(tallyH_heap *h, tallyH_region *r, uint8_t *unit,
                                        uint32_t have, uint32_t want);
TALLY_INTERNAL tallyH_region *tallyH_region_fixed_init(tallyH_heap *h, uint8_t *mem,
                                                       size_t size, uint8_t **prefix_end);
TALLY_INTERNAL bool tallyH_region_pool_free(const tallyH_region *r, const uint8_t *unit);
TALLY_INTERNAL size_t tallyH_regions_trim(tallyH_heap *h);
TALLY_INTERNAL size_t tallyH_arenas_release_empty(tallyH_heap *h);
TALLY_INTERNAL void tallyH_arenas_decay(tallyH_heap *h);
TALLY_INTERNAL void tallyH_regions_destroy(tallyH_heap *h);
/* A request for backend memory, through fault injection and the limit. */
TALLY_INTERNAL void *tallyH_backend_map(tallyH_heap *h, size_t size, size_t align);
TALLY_INTERNAL void tallyH_backend_unmap(tallyH_heap *h, void *p, size_t size);
/* Resizes (target NULL) or moves a mapping with the backend's remap(); false with
 * the error set, and nothing changed, on failure. */
TALLY_INTERNAL bool tallyH_backend_remap(tallyH_heap *h, void *old, size_t old_size,
                                         size_t new_size, void *target);
TALLY_INTERNAL uint8_t *tallyH_map_owned(tallyH_heap *h, size_t size);
TALLY_INTERNAL bool tallyH_fault_hit(tallyH_fault *f);

/* ---- owner.c ------------------------------------------------------------------- */
TALLY_INTERNAL int tallyH_owner_add(tallyH_heap *h, uintptr_t base);
TALLY_INTERNAL void tallyH_owner_remove(tallyH_heap *h, uintptr_t base);
TALLY_INTERNAL bool tallyH_owns_any(const tallyH_heap *h, uintptr_t a);
TALLY_INTERNAL void tallyH_owner_destroy(tallyH_heap *h);
TALLY_INTERNAL size_t tallyH_owner_map_bytes(void);
TALLY_INTERNAL void tallyH_owner_fixed(tallyH_heap *h, uint64_t *map, uintptr_t base, size_t size);
TALLY_INTERNAL size_t tallyH_owner_fixed_words(size_t size);

/* ---- medium.c ------------------------------------------------------------------ */
/* Requests of more than this go to large or huge blocks. */
#define TALLY_MEDIUM_MAX (TALLY_ARENA_SIZE / 2)
/* Is p (a live block of h, or an address h owns) in a medium arena?  Reads the
 * word at p's arena-aligned base, mapped for every owned address of a hosted heap;
 * without medium arenas (always so for a fixed heap) nothing is read. */
TALLY_INTERNAL bool tallyH_is_medium(const tallyH_heap *h, const void *p);
/* Buffers of containers: blocks of the medium range come from medium arenas,
 * others (and all of them in debug mode or on a fixed heap) are the blocks of
 * tally_malloc.  Same contract as tally_malloc (counted, traced, fault injection,
 * exhaustion hook), tally_free, tally_usable_size and tallyH_resize_nocopy. */
TALLY_INTERNAL void *tallyH_buf_alloc_at(tallyH_heap *h, size_t n, const char *file, int line);
#define tallyH_buf_alloc(h, n) tallyH_buf_alloc_at((h), (n), __FILE__, __LINE__)
TALLY_INTERNAL void tallyH_buf_free(tallyH_heap *h, void *p);
TALLY_INTERNAL size_t tallyH_buf_usable(const tallyH_heap *h, const void *p);
TALLY_INTERNAL void *tallyH_buf_resize_nocopy(tallyH_heap *h, void *p, size_t n);
/* Gives back empty medium arenas; returns bytes unmapped. */
TALLY_INTERNAL size_t tallyH_medium_release_empty(tallyH_heap *h);
TALLY_INTERNAL void tallyH_medium_destroy(tallyH_heap *h);
/* Calls fn(block, usable size, arg) for every medium block; stops at nonzero. */
TALLY_INTERNAL int tallyH_medium_visit(tallyH_heap *h, int (*fn)(void *, size_t, void *), void *arg);
/* Checks every medium arena's header and maps (problems reported and counted);
 * adds the usable bytes of live medium blocks to *live. */
TALLY_INTERNAL long tallyH_medium_check(tallyH_heap *h, size_t *live);
/* Free units' bytes of all medium arenas. */
TALLY_INTERNAL size_t tallyH_medium_free_bytes(const tallyH_heap *h);
TALLY_INTERNAL void tallyH_medium_dump(const tallyH_heap *h, FILE *out);

/* ---- backend_os.c -------------------------------------------------------------- */
/* The backend a hosted runtime opened with cfg uses: cfg's own, or the OS
 * backend, whose mappings of more than TALLY_THP_MIN bytes (the huge blocks) are
 * whole 2 MiB stretches with transparent huge pages if cfg asks for them
 * (tally_config.huge_pages). */
#ifndef TALLY_THP_MIN
#define TALLY_THP_MIN TALLY_ARENA_SIZE
#endif
TALLY_INTERNAL const tally_backend *tallyH_backend_for(const tally_config *cfg);
TALLY_INTERNAL size_t tallyH_page_size(void);

/* ---- heap.c -------------------------------------------------------------------- */
TALLY_INTERNAL int tallyH_init(tallyH_heap *h, const tally_config *cfg);
TALLY_INTERNAL void tallyH_destroy(tallyH_heap *h);
TALLY_INTERNAL void *tallyH_alloc(tallyH_heap *h, size_t n);
TALLY_INTERNAL bool tallyH_request_fits(tallyH_heap *h, size_t n, size_t max);
/* Frees what can be freed without losing anything (the exhaustion path); true if
 * a retry may succeed. */
TALLY_INTERNAL bool tallyH_relieve(tallyH_heap *h, size_t n);
/* Does an injected fault fail this allocation call?  Sets the error if so. */
TALLY_INTERNAL bool tallyH_alloc_fault(tallyH_heap *h);

/* once(h, n), and once more after the heap gave back what it could
 * (tallyH_relieve) if it failed for want of memory (not an injected fault); a
 * successful retry leaves the error as it was before.  Inline, so that each
 * caller's `once` is a direct call. */
TALLY_INLINE uint8_t *tallyH_alloc_relieved(tallyH_heap *h, size_t n,
                                            uint8_t *(*once)(tallyH_heap *, size_t))
{
    tally_error before = h->err.code;
    uint8_t *b = once(h, n);
    if (b == NULL && h->err.code != TALLY_EFAULT && tallyH_relieve(h, n)) {
        b = once(h, n);
        if (b != NULL)
            h->err.code = before;
    }
    return b;
}
TALLY_INTERNAL void tallyH_release(tallyH_heap *h, const tallyH_block *b);
TALLY_INTERNAL tally_error tallyH_block_find(tallyH_heap *h, const void *p, tallyH_block *b,
                                             const char *what);
/* Same, for a raw block address behind a different user pointer (debug layout). */
TALLY_INTERNAL tally_error tallyH_block_find_user(tallyH_heap *h, const void *raw,
                                                  const void *user, tallyH_block *b,
                                                  const char *what);
/* The usable size of `user` if it starts a live block handed to a user, else 0
 * (quietly: no report). */
TALLY_INTERNAL size_t tallyH_user_block_size(tallyH_heap *h, const void *user);
/* A live block the heap handed out itself (no checks). */
TALLY_INTERNAL void tallyH_block_of(void *raw, tallyH_block *b);
TALLY_INTERNAL void tallyH_update_slow(tallyH_heap *h);
/* tally_malloc_at for the layers above, which pass their own caller's site (the
 * object layer for tally_new_at): the same fast path. */
TALLY_INTERNAL void *tallyH_malloc_at(tallyH_heap *h, size_t n, const char *file, int line,
                                      const void *caller);
/* A block for the heap's own clients that must stay invisible (the tracer's
 * tables): counted in the heap's statistics and subject to fault injection like
 * any allocation, but no tracing hook runs, no exhaustion hook (so no collection,
 * no user code), and a failure leaves the runtime's last error untouched.
 * Released with tallyH_free_quiet. */
TALLY_INTERNAL void *tallyH_malloc_quiet(tallyH_heap *h, size_t n);
TALLY_INTERNAL void tallyH_free_quiet(tallyH_heap *h, void *p);
/* Installs (or with NULL removes) the tracing hooks; all calls take the slow path
 * while they are installed. */
TALLY_INTERNAL void tallyH_set_tracer(tallyH_heap *h, const tallyH_tracer *t);

/* ---- debug.c ------------------------------------------------------------------- */
TALLY_INTERNAL void *tallyH_debug_malloc(tallyH_heap *h, size_t n, bool zero);
/* False if p was not released (misuse or damage, reported). */
TALLY_INTERNAL bool tallyH_debug_free(tallyH_heap *h, void *p);
TALLY_INTERNAL void *tallyH_debug_realloc(tallyH_heap *h, void *p, size_t n);
/* heap.c: resizes block p to n bytes without copying and without running any
 * hook (so no user code): in place, or for a huge block by moving its pages.
 * The new address, or NULL with p and the error state untouched.  For containers
 * that must not let a finalizer run while they grow. */
TALLY_INTERNAL void *tallyH_resize_nocopy(tallyH_heap *h, void *p, size_t n);
/* Do huge blocks grow without copying (tallyH_resize_nocopy moves them)? */
TALLY_INTERNAL bool tallyH_can_remap(const tallyH_heap *h);
TALLY_INTERNAL size_t tallyH_debug_usable(const void *p);
TALLY_INTERNAL bool tallyH_debug_user_block(const uint8_t *raw, size_t *n);
#define TALLY_DEBUG_HEAD 16u
TALLY_INTERNAL void tallyH_debug_pool_init(tallyH_pool *p);
TALLY_INTERNAL bool tallyH_quarantine_flush(tallyH_heap *h);
TALLY_INTERNAL long tallyH_debug_check_block(tallyH_heap *h, uint8_t *b, size_t size, bool live);

/* ---- stats.c ------------------------------------------------------------------- */
typedef int (*tallyH_pool_visitor)(tallyH_heap *h, tallyH_pool *p, void *arg);
TALLY_INTERNAL int tallyH_walk_pools(tallyH_heap *h, tallyH_pool_visitor fn, void *arg);

#endif /* TALLY_HEAP_INTERNAL_H */
