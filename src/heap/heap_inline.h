/* heap_inline.h - the allocation and release fast paths, inline.
 *
 * Taking a block: the lowest set bit of the first non-zero word of the pool's free
 * bitmap at or after the word `hint` (wrapping around), which then becomes the
 * hint: next fit, so that releasing a block costs no hint upkeep.  Giving one back: divide its offset by the
 * block size (multiplication by a reciprocal), refuse if it is not a block start
 * or its bit is already set, then set the bit.  List transitions (pool full, pool
 * no longer full, pool empty) are rare and out of line in pool.c.
 */
#ifndef TALLY_HEAP_INLINE_H
#define TALLY_HEAP_INLINE_H

#include "heap/heap.h"

/* Rare: the bytes in use passed the peak, which moves up to them. */
TALLY_INLINE void tallyH_new_peak(tallyH_heap *h)
{
    h->in_use_peak += (size_t)-h->headroom;
    h->headroom = 0;
}

TALLY_INLINE void tallyH_count_alloc(tallyH_heap *h, size_t size)
{
    h->headroom -= (intptr_t)size;
    if (TALLY_UNLIKELY(h->headroom < 0))
        tallyH_new_peak(h);
    h->nalloc++;
}

/* Block p, at the same address, went from old_n to new_n bytes: the tools and
 * the bytes in use follow (the kind's own counters are the caller's). */
TALLY_INLINE void tallyH_count_resize(tallyH_heap *h, void *p, size_t old_n, size_t new_n)
{
    tallyB_anno_resize(h, p, old_n, new_n);
    h->headroom -= (intptr_t)new_n - (intptr_t)old_n;
    if (h->headroom < 0)
        tallyH_new_peak(h);
}

/* Takes a free block from p, which has one.  If that was p's last free block, the
 * caller must hand the block to tallyH_pool_filled() (a tail call, so that the
 * fast path needs no stack frame).  Counting is the caller's (tallyH_count_alloc):
 * debug mode counts the bytes requested, not the block. */
TALLY_INLINE uint8_t *tallyH_pool_take(tallyH_pool *p)
{
    uint32_t w = p->hint;
    uint64_t bits;
    while ((bits = p->freemap[w]) == 0) /* next fit: the search wraps around */
        w = w + 1 < (p->cap + 63u) / 64u ? w + 1 : 0;
    p->freemap[w] = bits & (bits - 1);
    p->hint = (uint16_t)w;
    p->nfree--;
    uint32_t idx = w * 64 + (uint32_t)__builtin_ctzll(bits);
    return p->data + (size_t)idx * p->bsize;
}

/* Where a small block would be: its index, or -1 if off is not a block start. */
TALLY_INLINE int64_t tallyH_pool_index(const tallyH_pool *p, uintptr_t a)
{
    uintptr_t off = a - (uintptr_t)p->data;
    if (TALLY_UNLIKELY(off >= p->span))
        return -1;
    uint32_t idx = tallyH_div((uint32_t)off, p->inv);
    if (TALLY_UNLIKELY((uintptr_t)idx * p->bsize != off))
        return -1;
    return idx;
}

TALLY_INLINE bool tallyH_pool_is_free(const tallyH_pool *p, uint32_t idx)
{
    return (p->freemap[idx >> 6] >> (idx & 63)) & 1;
}

TALLY_INLINE void tallyH_count_free(tallyH_heap *h, size_t size)
{
    h->headroom += (intptr_t)size;
}

/* Sets block idx's bit and returns p's new count of free blocks (see
 * tallyH_pool_give).  Counting is the caller's (tallyH_count_free): debug mode
 * counts a block free when it enters quarantine, not when it leaves. */
TALLY_INLINE uint32_t tallyH_pool_put(tallyH_pool *p, uint32_t idx)
{
    p->freemap[idx >> 6] |= (uint64_t)1 << (idx & 63);
    return ++p->nfree;
}

/* Is p the only pool on its class's queue?  That one is kept even when empty, so
 * that a lone malloc/free pair never gives a pool back and re-creates it. */
TALLY_INLINE bool tallyH_pool_alone(const tallyH_class *c, const tallyH_pool *p)
{
    return c->avail == p && p->next == NULL;
}

/* Gives block idx (live) of p back and moves p between queue states when it must:
 * it was full, or it is empty and not alone.  The common case costs no call. */
TALLY_INLINE void tallyH_pool_give(tallyH_heap *h, tallyH_pool *p, uint32_t idx)
{
    uint32_t nfree = tallyH_pool_put(p, idx);
    if (TALLY_UNLIKELY(nfree == 1 ||
                       (nfree == p->cap && !tallyH_pool_alone(&h->classes[p->cls], p))))
        tallyH_pool_changed(h, p);
}

/* Surplus empty arenas are given back as the program runs on (region.c); the test
 * here keeps the call off the paths that have nothing to give back. */
TALLY_INLINE void tallyH_maybe_decay(tallyH_heap *h)
{
    if (h->nempty > h->retain)
        tallyH_arenas_decay(h);
}

#endif /* TALLY_HEAP_INLINE_H */
