/* runtime.h - the runtime handle: one struct holding every layer's state.
 *
 * Layers below (heap, object, gc, types, trace) keep their state in structs of
 * their own; the runtime puts them together.  The heap comes first, and this is an
 * invariant the heap relies on: a tallyH_heap pointer and its tally_rt pointer are
 * the same address, so the heap can name its runtime (tally_runtime_of) without
 * knowing the layers above it.
 */
#ifndef TALLY_RUNTIME_INTERNAL_H
#define TALLY_RUNTIME_INTERNAL_H

#include "gc/gc.h"
#include "heap/heap.h"
#include "object/object.h"
#include "trace/trace.h"
#include "types/types.h"

struct tally_rt {
    tallyH_heap heap;  /* must stay first (see above) */
    size_t map_size;   /* hosted: bytes of the runtime's own mapping, else 0 */
    void *memory;      /* fixed: the caller's buffer, given back intact at close */
    size_t memory_size;
    tallyO_state obj;  /* objects: type table, deaths in progress */
    tallyG_state gc;   /* the collector and weak references */
    tallyT_state types; /* built-in types: small ints, interned strs, empty tuple */
    tallyM_state trace; /* allocation tracing (src/trace/) */
    bool leaks_at_close; /* print the leak report at tally_close (report_leaks) */
};

_Static_assert(offsetof(struct tally_rt, heap) == 0, "the heap must be the runtime's first member");

#endif /* TALLY_RUNTIME_INTERNAL_H */
