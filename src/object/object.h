/* object.h - internal layout of objects: the header, its flag bits, the link
 * words of containers, the per-runtime type table and the object layer's state.
 *
 *   plain object:   block = | head (8) | payload ...
 *   container:      block = | link (8) | head (8) | payload ...
 *                                                 ^ the pointer users see
 *
 *   head.rc    32-bit reference count; >= 2^31 immortal (PEP 683), 0 once dead
 *   head.info  bits 0..19  index of the type in the runtime's type table
 *              bits 20..21 generation (tracked objects), 22..23 collector state,
 *              24..31 flags (TALLY_OF_*)
 *   link       next, prev: the collector's doubly linked generation lists, as
 *              32-bit heap handles (heap/handle.c), so a container costs 16 bytes
 *              in all.  While the collector runs, prev of an object in the set
 *              being collected holds its scratch count (gc_refs) instead (gc/).
 *
 * Death (dealloc in object.c): finalize once (may resurrect), untrack, the
 * collector's hook for weak references, release the held references, destroy,
 * free (or keep the block on a free stack for the next object of its size).
 * Held references are released depth-first up to TALLY_DEALLOC_DEPTH nested
 * deaths, as CPython does up to its trashcan's 50; deeper deaths are queued on a list threaded through
 * the dead objects' link words (every object that holds references has them) and
 * released by the outermost death, so no chain overflows the C stack.
 */
#ifndef TALLY_OBJECT_INTERNAL_H
#define TALLY_OBJECT_INTERNAL_H

#include <stdbool.h>

#include "base/base.h"
#include "heap/heap.h"
#include "tally/object.h"

/* head.info: type index, generation, collector state, flags. */
#define TALLY_OF_TYPE_MASK  ((1u << 20) - 1)
#define TALLY_MAX_TYPES     (1u << 20)
#define TALLY_OF_GEN_SHIFT  20          /* generation of a tracked object: 0..2, */
#define TALLY_OF_GEN_MASK   (3u << 20)  /* 3 = frozen or in the garbage list */
#define TALLY_OF_GEN_OUT    3u
#define TALLY_OF_STATE_MASK (3u << 22)  /* collector state; 0 outside collections */
#define TALLY_OF_COLLECTING (1u << 22)  /*   in the set, scratch count in prev */
#define TALLY_OF_REACHED    (2u << 22)  /*   in the set, found reachable */
#define TALLY_OF_UNREACHED  (3u << 22)  /*   (tentatively) unreachable */
#define TALLY_OF_LINKED     (1u << 24)  /* has link words (may hold references) */
#define TALLY_OF_TRACKED    (1u << 25)  /* on a collector list */
#define TALLY_OF_FINALIZED  (1u << 26)  /* finalize has run (PEP 442) */
#define TALLY_OF_WEAKREFS   (1u << 27)  /* weak references may point here */
#define TALLY_OF_RELEASED   (1u << 28)  /* held references already released */
#define TALLY_OF_IMMORTAL   (1u << 29)  /* made immortal (rc is TALLY_RC_IMMORTAL) */
#define TALLY_OF_DYING      (1u << 30)  /* being destroyed */
#define TALLY_OF_FINALIZING (1u << 31)  /* its finalizer runs on its way to death */

/* Nested deaths released on the C stack before they are queued.  Small on
 * purpose: each level is about six frames, and once the calls nest deeper than
 * the CPU's return-stack buffer (16-32 entries) every return is mispredicted; a
 * long chain is released 35% faster at 8 than at 64 (bench test 3). */
#ifndef TALLY_DEALLOC_DEPTH
#define TALLY_DEALLOC_DEPTH 8
#endif

typedef struct tallyO_link {
    uint32_t next;           /* handle of the next link */
    uint32_t prev;           /* handle of the previous link, or gc_refs */
} tallyO_link;
_Static_assert(sizeof(tallyO_link) == 8, "containers carry 8 bytes of links");

/* Set by the collector layer: o, whose count reached 0 for good, has weak
 * references: clear them and run their callbacks. */
typedef void (*tallyO_weakrefs_fn)(tally_rt *rt, void *o);
/* Set by the collector layer: container o is about to be finalized on its way to
 * death by count: it joins the youngest generation (tracked, as in CPython, which
 * is where it stays if the finalizer resurrects it). */
typedef void (*tallyO_to_young_fn)(tally_rt *rt, void *o);

/* Dead objects' blocks kept for reuse, per 16-byte size class up to
 * TALLY_OBJ_CACHE_MAX bytes (CPython's free lists, without writing into the
 * blocks: the stacks are here).  Their count is 0, so a dangling incref or decref
 * is still reported; the heap counts them in use.  Bypassed whenever the heap
 * checks every call (debug mode, fault injection, Valgrind); while it traces, a
 * block pushed is reported to the tracer as freed and one popped as allocated
 * (object.c), so traces stay those of the objects alive. */
#ifndef TALLY_OBJ_CACHE_DEPTH
#define TALLY_OBJ_CACHE_DEPTH 16
#endif
#define TALLY_OBJ_CACHE_MAX 256
typedef struct tallyO_freestack {
    uint32_t n;
    void *block[TALLY_OBJ_CACHE_DEPTH];
} tallyO_freestack;

typedef void (*tallyO_traverse_fn)(void *self, tally_visit_fn visit, void *arg);

/* A registered type: its descriptor and what the fast paths derive from it.
 * Entries never move and never change once made (the table grows by copying
 * into a larger block and keeping the old one), so pointers to them stay valid
 * while user code runs. */
typedef struct tallyO_typeinfo {
    const tally_type *type;
    tallyO_traverse_fn traverse; /* type->traverse, one load nearer */
    tallyO_freestack *stack; /* free stack of its objects; NULL: none (items: by the
                                block's size, see object.c; big: none) */
    uint32_t info;           /* header info of a new object: index | LINKED | TRACKED */
    uint32_t total;          /* block bytes for tally_new; 0 if above 4 GiB */
    uint16_t prefix;         /* bytes before the object pointer: 8 or 16 */
    uint16_t traits;         /* TALLY_TI_* */
} tallyO_typeinfo;

#define TALLY_TI_CONTAINER 1u /* TALLY_TYPE_CONTAINER */
#define TALLY_TI_FINALIZE 2u  /* has a finalizer */
#define TALLY_TI_CLEAR 4u     /* has a clear callback */
#define TALLY_TI_DESTROY 8u   /* has a destroy callback */
#define TALLY_TI_PLAIN 16u    /* holds no references, no callbacks: just freed */

#define TALLY_TYPECACHE 64

/* Type entries kept in the runtime itself: registering the built-in types at
 * open allocates nothing. */
#define TALLY_TYPES_INLINE 32

typedef struct tallyO_state {
    tallyO_typeinfo *types;     /* type table, by index: inline_types, then heap
                                   blocks (see above) */
    uint32_t ntypes;
    uint32_t types_cap;
    tallyO_typeinfo cache[TALLY_TYPECACHE]; /* copies, direct-mapped by descriptor address */
    tallyO_weakrefs_fn weakrefs_die;
    tallyO_to_young_fn to_young;
    uint32_t finalizer_types;   /* registered types with a finalizer */
    long young;                 /* containers created minus containers dead since
                                   the collector last reset it (its count 0) */
    unsigned depth;             /* nested deaths on the C stack */
    uint32_t pending;           /* handle of the first queued death, or NONE */
    unsigned long long live;    /* objects alive */
    tallyO_freestack free[TALLY_OBJ_CACHE_MAX / 16];
    tallyO_typeinfo inline_types[TALLY_TYPES_INLINE];
} tallyO_state;

TALLY_INLINE tally_head *tallyO_head(const void *o)
{
    return (tally_head *)((uintptr_t)o - sizeof(tally_head));
}

TALLY_INLINE tallyO_link *tallyO_link_of(const void *o)
{
    return (tallyO_link *)((uintptr_t)o - sizeof(tally_head) - sizeof(tallyO_link));
}

TALLY_INLINE void *tallyO_from_link(const tallyO_link *l)
{
    return (void *)((uintptr_t)l + sizeof(tallyO_link) + sizeof(tally_head));
}

TALLY_INLINE uint32_t tallyO_info(const void *o)
{
    return tallyO_head(o)->info;
}

TALLY_INLINE tallyO_link *tallyO_at(const tallyH_heap *heap, uint32_t handle)
{
    return (tallyO_link *)tallyH_at(heap, handle);
}

/* Takes l off its circular list (the collector's generation lists); l's own
 * words are left as they were: the caller relinks or reuses them. */
TALLY_INLINE void tallyO_unlink(const tallyH_heap *heap, tallyO_link *l)
{
    tallyO_at(heap, l->prev)->next = l->next;
    tallyO_at(heap, l->next)->prev = l->prev;
}

/* Untracks o if tracked (its state in a collection in progress goes too). */
TALLY_INLINE void tallyO_untrack(const tallyH_heap *heap, void *o)
{
    tally_head *h = tallyO_head(o);
    if (h->info & TALLY_OF_TRACKED) {
        tallyO_unlink(heap, tallyO_link_of(o));
        h->info &= ~(TALLY_OF_TRACKED | TALLY_OF_STATE_MASK);
    }
}

TALLY_INTERNAL int tallyO_init(tally_rt *rt);
TALLY_INTERNAL void tallyO_destroy(tally_rt *rt);
/* The table entry of a type, registering it on first sight; NULL with the error
 * set if the type is refused (object_inline.h has the cached fast path). */
TALLY_INTERNAL const tallyO_typeinfo *tallyO_type_lookup(tally_rt *rt, const tally_type *type);
/* Allocates an object (not tracked, no collector bookkeeping): count 1. */
TALLY_INTERNAL void *tallyO_new_slow(tally_rt *rt, const tallyO_typeinfo *ti, size_t nitems);
/* The same with the site of the request, for the tracer (tallyH_malloc_at). */
TALLY_INTERNAL void *tallyO_new_slow_at(tally_rt *rt, const tallyO_typeinfo *ti, size_t nitems,
                                        const char *file, int line, const void *caller);
/* Gives the blocks of the free stacks back to the heap. */
TALLY_INTERNAL void tallyO_cache_flush(tally_rt *rt);
TALLY_INTERNAL const tally_type *tallyO_type(tally_rt *rt, const void *o);
/* Releases the references o holds (clear, else traverse + decref), once. */
TALLY_INTERNAL void tallyO_release_refs(tally_rt *rt, void *o);
/* Reports misuse of object o through the runtime's error state. */
TALLY_INTERNAL void tallyO_misuse(tally_rt *rt, const void *o, tally_error code, const char *what);

#endif /* TALLY_OBJECT_INTERNAL_H */
