/* object.h - internal layout of objects: the header, its flag bits, the link
 * words of containers, the per-runtime type table and the object layer's state.
 *
 *   plain object:   block = | head (8) | payload ...
 *   container:      block = | link (16) | head (8) | payload ...
 *                                                  ^ the pointer users see
 *
 *   head.rc    32-bit reference count; >= 2^31 immortal (PEP 683), 0 once dead
 *   head.info  bits 0..21  index of the type in the runtime's type table
 *              bits 22..31 flags (TALLY_OF_*)
 *   link       next, prev: the collector's doubly linked generation lists.  While
 *              the collector runs, prev of an object in the set being collected
 *              holds its scratch count (gc_refs) instead of a pointer (gc/).
 *
 * Death (tallyO_dealloc): finalize once (may resurrect), the collector's hook
 * (untrack, clear weak references), release the held references, destroy, free.
 * Held references are released depth-first up to TALLY_DEALLOC_DEPTH nested
 * deaths, as CPython does; deeper deaths are queued on a list threaded through
 * the dead objects' link words (every object that holds references has them) and
 * released by the outermost death, so no chain overflows the C stack.
 */
#ifndef TALLY_OBJECT_INTERNAL_H
#define TALLY_OBJECT_INTERNAL_H

#include <stdbool.h>

#include "base/base.h"
#include "tally/object.h"

/* Flags in head.info. */
#define TALLY_OF_LINKED     (1u << 22) /* has link words (a container) */
#define TALLY_OF_TRACKED    (1u << 23) /* on a collector list */
#define TALLY_OF_FINALIZED  (1u << 24) /* finalize has run (PEP 442) */
#define TALLY_OF_WEAKREFS   (1u << 25) /* weak references may point here */
#define TALLY_OF_COLLECTING (1u << 26) /* in the set being collected */
#define TALLY_OF_REACHED    (1u << 27) /* collector: reachable from outside the set */
#define TALLY_OF_UNREACHED  (1u << 28) /* collector: found unreachable */
#define TALLY_OF_RELEASED   (1u << 29) /* held references already released */
#define TALLY_OF_IMMORTAL   (1u << 30) /* made immortal (rc is TALLY_RC_IMMORTAL) */
#define TALLY_OF_DYING      (1u << 31) /* being destroyed */
#define TALLY_OF_TYPE_MASK  ((1u << 22) - 1)
#define TALLY_MAX_TYPES     (1u << 22)

/* Nested deaths released on the C stack before they are queued. */
#ifndef TALLY_DEALLOC_DEPTH
#define TALLY_DEALLOC_DEPTH 64
#endif

typedef struct tallyO_link tallyO_link;
struct tallyO_link {
    tallyO_link *next;
    uintptr_t prev;          /* a tallyO_link *, or gc_refs during a collection */
};
_Static_assert(sizeof(tallyO_link) == 16, "containers carry 16 bytes of links");

/* Set by the collector layer: what happens to objects it knows about. */
typedef struct tallyO_hooks {
    /* o (tracked or with weak references) is dying: untrack it, clear weak
     * references and run their callbacks.  o's count is 0 and stays 0. */
    void (*dying)(tally_rt *rt, void *o);
    /* o stops being tracked (it became immortal). */
    void (*untrack)(tally_rt *rt, void *o);
} tallyO_hooks;

typedef struct tallyO_typecache {
    const tally_type *type;
    uint32_t index;
} tallyO_typecache;

#define TALLY_TYPECACHE 64

typedef struct tallyO_state {
    const tally_type **types;   /* type table (heap block), index -> descriptor */
    uint32_t ntypes;
    uint32_t types_cap;
    tallyO_typecache cache[TALLY_TYPECACHE]; /* direct-mapped by descriptor address */
    tallyO_hooks hooks;
    unsigned depth;             /* nested deaths on the C stack */
    tallyO_link *pending;       /* queued deaths (see above) */
    unsigned long long live;    /* objects alive */
    unsigned long long created; /* objects ever created */
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

TALLY_INTERNAL int tallyO_init(tally_rt *rt);
TALLY_INTERNAL void tallyO_destroy(tally_rt *rt);
/* Allocates an object (not tracked, no collector bookkeeping): count 1. */
TALLY_INTERNAL void *tallyO_alloc(tally_rt *rt, const tally_type *type, size_t nitems);
TALLY_INTERNAL const tally_type *tallyO_type(tally_rt *rt, const void *o);
/* Releases the references o holds (clear, else traverse + decref), once. */
TALLY_INTERNAL void tallyO_release_refs(tally_rt *rt, void *o);
/* Reports misuse of object o through the runtime's error state. */
TALLY_INTERNAL void tallyO_misuse(tally_rt *rt, const void *o, tally_error code, const char *what);

#endif /* TALLY_OBJECT_INTERNAL_H */
