/* annotate.h - tell Valgrind and AddressSanitizer what the pools contain.
 *
 * Tally carves blocks out of large mappings, which Valgrind and ASan would otherwise
 * see as one big valid region: a user's overflow into a neighbouring block would go
 * unnoticed.  These wrappers mark each block as a heap block when handed out and as
 * inaccessible when freed (mimalloc's track.h, CPython's WITH_VALGRIND idea).
 *
 * Valgrind requests cost a few instructions even outside Valgrind, so the heap only
 * makes them on its slow path, which it forces when RUNNING_ON_VALGRIND.  ASan
 * poisoning is compiled in only in ASan builds and happens on every path.
 */
#ifndef TALLY_ANNOTATE_H
#define TALLY_ANNOTATE_H

#include "base/base.h"

#if defined(__SANITIZE_ADDRESS__)
#define TALLY_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TALLY_ASAN 1
#endif
#endif
#ifndef TALLY_ASAN
#define TALLY_ASAN 0
#endif

#if TALLY_ASAN
#include <sanitizer/asan_interface.h>
#define TALLY_ASAN_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define TALLY_ASAN_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define TALLY_ASAN_POISON(p, n) ((void)(p), (void)(n))
#define TALLY_ASAN_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#if TALLY_VALGRIND
#include <valgrind/memcheck.h>
#define TALLY_ON_VALGRIND() (RUNNING_ON_VALGRIND != 0)
#else
#define TALLY_ON_VALGRIND() 0
#endif

/* Valgrind sees each heap as a memory pool (its mempool API, which unlike
 * MALLOCLIKE blocks also works when the heap lives inside a malloc'd buffer);
 * `pool` is the heap's address.  Destroying the pool releases every block in it,
 * so blocks still live at tally_close are not reported as leaks. */
TALLY_INLINE void tallyB_anno_pool_create(const void *pool)
{
#if TALLY_VALGRIND
    VALGRIND_CREATE_MEMPOOL(pool, 0, 0);
#else
    (void)pool;
#endif
}

TALLY_INLINE void tallyB_anno_pool_destroy(const void *pool)
{
#if TALLY_VALGRIND
    VALGRIND_DESTROY_MEMPOOL(pool);
#else
    (void)pool;
#endif
}

/* A block is handed out: n bytes at p become addressable (defined if zeroed). */
TALLY_INLINE void tallyB_anno_alloc(const void *pool, void *p, size_t n, int zeroed)
{
    TALLY_ASAN_UNPOISON(p, n);
#if TALLY_VALGRIND
    VALGRIND_MEMPOOL_ALLOC(pool, p, n);
    if (zeroed)
        VALGRIND_MAKE_MEM_DEFINED(p, n);
#else
    (void)pool;
    (void)zeroed;
#endif
}

/* A block is taken back: its n bytes at p become inaccessible. */
TALLY_INLINE void tallyB_anno_free(const void *pool, void *p, size_t n)
{
#if TALLY_VALGRIND
    VALGRIND_MEMPOOL_FREE(pool, p);
#else
    (void)pool;
#endif
    TALLY_ASAN_POISON(p, n);
}

/* A live block changed size in place. */
TALLY_INLINE void tallyB_anno_resize(const void *pool, void *p, size_t old_n, size_t new_n)
{
    if (new_n > old_n)
        TALLY_ASAN_UNPOISON((char *)p + old_n, new_n - old_n);
    else
        TALLY_ASAN_POISON((char *)p + new_n, old_n - new_n);
#if TALLY_VALGRIND
    VALGRIND_MEMPOOL_CHANGE(pool, p, p, new_n);
    /* MEMPOOL_CHANGE moves the chunk's bounds but not the memory's state: the
     * grown tail (free pools until now, no-access) becomes addressable, with
     * undefined contents, as realloc's new bytes are; a shrunk tail no-access. */
    if (new_n > old_n)
        VALGRIND_MAKE_MEM_UNDEFINED((char *)p + old_n, new_n - old_n);
    else
        VALGRIND_MAKE_MEM_NOACCESS((char *)p + new_n, old_n - new_n);
#else
    (void)pool;
#endif
}

/* Memory that only Tally itself may touch (free blocks, guards). */
TALLY_INLINE void tallyB_anno_noaccess(void *p, size_t n)
{
#if TALLY_VALGRIND
    VALGRIND_MAKE_MEM_NOACCESS(p, n);
#endif
    TALLY_ASAN_POISON(p, n);
}

/* Tally is about to read or write such memory itself. */
TALLY_INLINE void tallyB_anno_access(void *p, size_t n)
{
    TALLY_ASAN_UNPOISON(p, n);
#if TALLY_VALGRIND
    VALGRIND_MAKE_MEM_DEFINED(p, n);
#endif
}

/* Reads a word Tally owns that the tools may consider inaccessible (a pool header
 * inside a freed large block, a debug guard), without them complaining. */
TALLY_INTERNAL uintptr_t tallyB_peek_word(const void *p);

#endif /* TALLY_ANNOTATE_H */
