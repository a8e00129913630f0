/* tally/heap.h - the private heap: raw allocation, statistics, checks, heap walk.
 *
 * The raw API is the PyMem_Malloc / PyObject_Malloc analogue.  Every block is
 * aligned to TALLY_ALIGNMENT (16) bytes.  Requests up to 512 bytes come from
 * size-class pools (16-byte steps), larger ones from coarser pool classes and from
 * spans of whole pools; each pool is found from a block pointer by masking, so
 * tally_usable_size() and tally_runtime_of() need no runtime argument.
 *
 * Misuse is detected in every mode and never corrupts the heap: freeing a pointer
 * the runtime did not hand out, freeing twice, or freeing an interior pointer is
 * reported (tally_last_error, report callback) and the call does nothing else.
 * Debug mode (tally_config.debug) adds guard bytes, poison and a quarantine.
 */
#ifndef TALLY_HEAP_H
#define TALLY_HEAP_H

#include <stddef.h>
#include <stdio.h>

#include "tally/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TALLY_ALIGNMENT 16
#define TALLY_SMALL_MAX 512   /* largest request served by 16-byte size classes */
#define TALLY_MAX_CLASSES 64  /* upper bound on the number of size classes */

/* Returns a block of at least n bytes (n == 0 gives a unique minimal block), or
 * NULL with tally_last_error() set (TALLY_ENOMEM, TALLY_ELIMIT, TALLY_EINVAL). */
TALLY_API void *tally_malloc(tally_rt *rt, size_t n);
/* Zero-filled array of count * n bytes; NULL with TALLY_EOVERFLOW on overflow. */
TALLY_API void *tally_calloc(tally_rt *rt, size_t count, size_t n);
/* C realloc semantics: p == NULL allocates; on failure returns NULL and p is left
 * untouched; n == 0 returns a minimal block (p is released).  Blocks bigger than an
 * arena are resized without copying when the backend can remap (the OS backend on
 * Linux): in place, or by moving their pages (then the address changes). */
TALLY_API void *tally_realloc(tally_rt *rt, void *p, size_t n);
/* Releases p (NULL is ignored). */
TALLY_API void tally_free(tally_rt *rt, void *p);

/* The same calls with the site of the request, which the tracer (tally/trace.h)
 * records for each block allocated while tracing.  The macros below make every
 * tally_malloc(rt, n) in a program such a call with __FILE__ and __LINE__; file
 * must be a string that outlives the runtime (a string literal).  The plain
 * functions stay exported with the signatures above: taking tally_malloc's
 * address, writing (tally_malloc)(rt, n), or defining TALLY_NO_SITE_MACROS
 * before including Tally's headers reaches them (their blocks are traced with
 * an unknown file and line, and their caller's address). */
TALLY_API void *tally_malloc_at(tally_rt *rt, size_t n, const char *file, int line);
TALLY_API void *tally_calloc_at(tally_rt *rt, size_t count, size_t n, const char *file, int line);
TALLY_API void *tally_realloc_at(tally_rt *rt, void *p, size_t n, const char *file, int line);

#ifndef TALLY_NO_SITE_MACROS
#define tally_malloc(rt, n) tally_malloc_at((rt), (n), __FILE__, __LINE__)
#define tally_calloc(rt, count, n) tally_calloc_at((rt), (count), (n), __FILE__, __LINE__)
#define tally_realloc(rt, p, n) tally_realloc_at((rt), (p), (n), __FILE__, __LINE__)
#endif
/* Bytes usable at p (at least what was requested; exactly that in debug mode).
 * p must be a live block of some runtime. */
TALLY_API size_t tally_usable_size(const void *p);
/* The runtime that owns live block p. */
TALLY_API tally_rt *tally_runtime_of(const void *p);

/* Per-size-class figures. */
typedef struct tally_class_stats {
    size_t block_size;  /* bytes per block */
    size_t blocks_used; /* live blocks */
    size_t blocks_free; /* free blocks in this class's pools */
    size_t pools;       /* pools currently serving this class */
    size_t pools_full;  /* of which have no free block */
} tally_class_stats;

/* Whole-heap figures, as sys._debugmallocstats() and micropython.mem_info() show. */
struct tally_heap_stats {
    size_t bytes_in_use;        /* usable bytes of live blocks */
    size_t bytes_in_use_peak;   /* high-water mark of bytes_in_use */
    size_t bytes_reserved;      /* bytes held from the backend (or the usable buffer) */
    size_t bytes_reserved_peak; /* high-water mark of bytes_reserved */
    size_t bytes_committed;     /* reserved minus free pools that were never touched
                                   or were purged: an upper bound on resident memory */
    size_t bytes_limit;         /* max_bytes, or the usable buffer size; 0: none */
    size_t blocks_in_use;       /* live blocks, all sizes */
    size_t large_blocks;        /* live blocks larger than a pool class */
    size_t large_bytes;         /* their usable bytes */
    size_t pool_size;           /* bytes per pool (unit of the heap) */
    size_t pools_total;         /* pools in all arenas (or the buffer) */
    size_t pools_used;          /* pools holding blocks or part of a large block */
    size_t pools_free;          /* pools free for any use */
    size_t arenas;              /* backend mappings held (arenas + huge blocks) */
    size_t arenas_peak;         /* high-water mark of arenas */
    size_t arenas_cached;       /* empty arenas kept for reuse */
    size_t bytes_free;          /* free bytes: free blocks + free pools */
    size_t largest_free;        /* largest request that fits without new memory
                                   (empty pools kept for reuse count as free) */
    double fragmentation;       /* 1 - largest_free / bytes_free (0: none) */
    double overhead;            /* 1 - bytes_in_use / bytes_reserved */
    unsigned long long allocs;  /* successful allocations */
    unsigned long long frees;   /* successful releases */
    unsigned long long backend_requests; /* map calls (or buffer carve-outs) */
    unsigned long long backend_releases; /* unmap calls */
    unsigned long long errors_detected;  /* misuse and corruption reports */
    int debug;                  /* debug level in force */
    int fixed;                  /* 1 for the fixed-buffer backend */
    int nclasses;               /* valid entries in classes[] */
    tally_class_stats classes[TALLY_MAX_CLASSES];
    /* Containers' buffers between the largest class and half an arena are medium
     * blocks, of 256-byte units in arenas of their own (counted in arenas and
     * in blocks_in_use, not in large_blocks or pools). */
    size_t medium_blocks;       /* live medium blocks */
    size_t medium_bytes;        /* their usable bytes */
    size_t medium_free;         /* free bytes in medium arenas */
    size_t medium_arenas;       /* medium arenas mapped */
};

/* Fills *out.  Returns 0, or -1 with TALLY_EINVAL for NULL arguments. */
TALLY_API int tally_heap_stats(tally_rt *rt, struct tally_heap_stats *out);

/* Prints a readable report of the statistics, the size classes in use and a map of
 * the pools (one character per pool), to out. */
TALLY_API void tally_heap_dump(tally_rt *rt, FILE *out);

/* Validates every pool header, bitmap and counter; in debug mode also every guard
 * and every poisoned free block.  Each problem is reported; returns how many. */
TALLY_API long tally_heap_check(tally_rt *rt);

/* Returns unused memory to the backend now: cached empty arenas are unmapped and
 * free pools purged.  Returns the number of bytes released. */
TALLY_API size_t tally_heap_trim(tally_rt *rt);

/* Calls visit(block, usable_size, arg) for every live block, in address order
 * within each arena.  visit returns nonzero to stop the walk early; the walk then
 * returns that value (0 when it ran to the end).  visit must not allocate or free. */
typedef int (*tally_block_visitor)(void *block, size_t size, void *arg);
TALLY_API int tally_heap_visit(tally_rt *rt, tally_block_visitor visit, void *arg);

#ifdef __cplusplus
}
#endif
#endif /* TALLY_HEAP_H */
