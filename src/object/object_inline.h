/* object_inline.h - the fast path of object creation, inline for tally_new.
 *
 * A type's table entry comes from a direct-mapped cache keyed by the descriptor's
 * address; a block of a size with a free stack comes from that stack, any other
 * from the heap (object.c).  The payload is zeroed and the header written in one
 * store; a container's links are written when it is tracked.
 */
#ifndef TALLY_OBJECT_INLINE_H
#define TALLY_OBJECT_INLINE_H

#include <string.h>

#include "object/object.h"
#include "runtime/runtime.h"

TALLY_INLINE const tallyO_typeinfo *tallyO_type_entry(tally_rt *rt, const tally_type *t)
{
    const tallyO_typeinfo *c = &rt->obj.cache[((uintptr_t)t >> 4) & (TALLY_TYPECACHE - 1)];
    if (TALLY_LIKELY(c->type == t))
        return c;
    return tallyO_type_lookup(rt, t);
}

TALLY_INLINE size_t tallyO_prefix(uint32_t info)
{
    return sizeof(tally_head) + ((info & TALLY_OF_LINKED) ? sizeof(tallyO_link) : 0);
}

/* Writes a new object's header (count 1) in one store. */
TALLY_INLINE void tallyO_head_init(void *o, uint32_t info)
{
    uint64_t word = (uint64_t)1 | ((uint64_t)info << 32);
    _Static_assert(offsetof(tally_head, rc) == 0 && offsetof(tally_head, info) == 4,
                   "the header is {rc, info}");
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    word = ((uint64_t)1 << 32) | info;
#endif
    memcpy(tallyO_head(o), &word, sizeof word);
}

/* An object from a free stack's block b: zeroed in 16-byte steps from the
 * header's 16-byte unit to the end of the block (a multiple of 16 bytes); the
 * header is written next, and a container's links when it is tracked. */
TALLY_INLINE void *tallyO_init_small(tally_rt *rt, uint8_t *b, const tallyO_typeinfo *ti)
{
    uint32_t end = (ti->total + 15u) & ~15u;
    for (uint32_t i = ti->prefix & ~15u; i < end; i += 16) {
        static const uint8_t zero[16];
        memcpy(b + i, zero, 16);
    }
    void *o = b + ti->prefix;
    tallyO_head_init(o, ti->info);
    rt->obj.live++;
    return o;
}

/* A new object of the type ti describes, or NULL with the error set.  A
 * container comes with TRACKED set in its header: the caller links it.  The
 * site (file, line, caller) goes to the tracer: while the heap is on its slow
 * path (h->slow: checks or tracing), a block comes through tallyO_new_slow_at,
 * which reports a block taken from a free stack to the tracer. */
TALLY_INLINE void *tallyO_new_at(tally_rt *rt, const tallyO_typeinfo *ti, const char *file,
                                 int line, const void *caller)
{
    tallyO_freestack *fs = ti->stack;
    if (TALLY_LIKELY(fs != NULL) && fs->n != 0 && !rt->heap.slow) /* no user code runs here */
        return tallyO_init_small(rt, fs->block[--fs->n], ti);
    return tallyO_new_slow_at(rt, ti, 0, file, line, caller);
}

TALLY_INLINE void *tallyO_new(tally_rt *rt, const tallyO_typeinfo *ti)
{
    return tallyO_new_at(rt, ti, NULL, 0, NULL);
}

#endif /* TALLY_OBJECT_INLINE_H */
