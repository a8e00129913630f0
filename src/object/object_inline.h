/* object_inline.h - the fast path of object creation, inline for tally_new.
 *
 * A type's table entry comes from a direct-mapped cache keyed by the descriptor's
 * address; a block of a size class with a free stack comes from that stack, any
 * other from the heap (object.c).  The block is zeroed and the header written.
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

/* A zeroed object from block b of a free stack (whole 16-byte steps: the blocks
 * of the stacks are small and a multiple of 16 bytes). */
TALLY_INLINE void *tallyO_init_small(tally_rt *rt, uint8_t *b, uint32_t total, uint32_t info)
{
    for (uint32_t i = 0; i < total; i += 16) {
        uint64_t z[2] = {0, 0};
        memcpy(b + i, z, 16);
    }
    void *o = b + tallyO_prefix(info);
    tally_head *h = tallyO_head(o);
    h->rc = 1;
    h->info = info;
    rt->obj.live++;
    return o;
}

/* A new object of the type ti describes (not tracked), or NULL with the error
 * set. */
TALLY_INLINE void *tallyO_new(tally_rt *rt, const tallyO_typeinfo *ti)
{
    if (TALLY_LIKELY(ti->stack != 0) && !rt->heap.slow) { /* no user code runs here */
        tallyO_freestack *fs = &rt->obj.free[ti->stack - 1];
        if (fs->n != 0)
            return tallyO_init_small(rt, fs->block[--fs->n], ti->total, ti->info);
    }
    return tallyO_new_slow(rt, ti, 0);
}

#endif /* TALLY_OBJECT_INLINE_H */
