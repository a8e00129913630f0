/* pool.c - small pools: creation, the class queues, and giving pools back.
 *
 * A class's `avail` queue holds its pools that have a free block; allocation takes
 * from the head until that pool fills, then pops it.  A full pool that gets a
 * block back joins the tail, not the head: by the time it comes up again it has
 * collected more free blocks, so allocation stays on one warm pool for many calls
 * instead of visiting a cold pool per call (in a random live-set workload, nearly
 * every free turns a full pool non-full).  Popping the head writes nothing into
 * the next pool, whose prev is left stale; joining the tail writes into the old
 * tail, which joined recently and is still warm.  A pool that becomes empty is
 * returned to its region unless it is the class's only pool with free blocks:
 * keeping that one avoids giving back and re-creating a pool on every call of a
 * program that allocates and frees a single block in a loop (the "lone pair" case
 * that makes mimalloc 2.x slow).
 *
 * The allocation fast path itself (taking a bit from the bitmap) is inline in
 * heap_inline.h; this file has the transitions between queue states.
 */
#include <string.h>

#include "heap/heap.h"
#include "heap/heap_inline.h"

tallyH_pool *tallyH_pool_new(tallyH_heap *h, int cls)
{
    tallyH_class *c = &h->classes[cls];
    tallyH_region *r;
    tallyH_maybe_decay(h);
    uint8_t *u = tallyH_units_alloc(h, 1, &r);
    if (u == NULL)
        return NULL;
    tallyH_pool *p = (tallyH_pool *)u;
    tallyB_anno_access(u, c->hdr);
    p->heap = h;
    p->region = r;
    p->data = u + c->hdr;
    p->bsize = c->bsize;
    p->inv = c->inv;
    p->span = (uint32_t)c->cap * c->bsize;
    p->cap = c->cap;
    p->nfree = c->cap;
    p->hint = 0;
    p->cls = (uint16_t)cls;
    p->nunits = 1;
    p->hbase = tallyH_region_hbase(r, u);
    p->aux = 0;
    p->lsize = 0;
    uint32_t words = (c->cap + 63u) / 64u;
    memset(p->freemap, 0xff, words * sizeof(uint64_t));
    if (c->cap % 64)
        p->freemap[words - 1] = ((uint64_t)1 << (c->cap % 64)) - 1;
    p->tag = tallyH_tag(h, p, TALLY_POOL_SMALL);
    if (h->debug)
        tallyH_debug_pool_init(p);
    tallyB_anno_noaccess(p->data, p->span);
    /* A new pool is made only when the queue is empty: it becomes the whole queue. */
    p->prev = p->next = NULL;
    c->avail = c->tail = p;
    c->npools++;
    return p;
}

/* Takes p off its class queue.  The head is recognised by c->avail, not by its
 * prev, which is never maintained. */
void tallyH_pool_unlink(tallyH_class *c, tallyH_pool *p)
{
    if (c->avail == p) {
        c->avail = p->next; /* the new head's prev goes stale: never read */
    } else {
        p->prev->next = p->next;
        if (p->next)
            p->next->prev = p->prev;
    }
    if (c->tail == p)
        c->tail = c->avail == NULL ? NULL : p->prev;
    p->next = p->prev = NULL;
}

/* The block just taken was p's last: p leaves its class's list.  Returns b. */
uint8_t *tallyH_pool_filled(tallyH_heap *h, tallyH_pool *p, uint8_t *b)
{
    tallyH_pool_unlink(&h->classes[p->cls], p);
    tallyH_maybe_decay(h);
    return b;
}

/* p just went from full to one free block, or to all blocks free.  A full pool
 * that got a block back joins the tail of its class's queue; an empty pool is
 * released unless it is alone in that queue. */
void tallyH_pool_changed(tallyH_heap *h, tallyH_pool *p)
{
    tallyH_class *c = &h->classes[p->cls];
    if (p->nfree == 1) { /* join the tail */
        p->next = NULL;
        p->prev = c->tail;
        if (c->tail)
            c->tail->next = p;
        else
            c->avail = p;
        c->tail = p;
    }
    if (p->nfree == p->cap && !tallyH_pool_alone(c, p))
        tallyH_pool_release(h, p);
    tallyH_maybe_decay(h);
}

/* Returns a pool's pool-sized unit to its region. */
void tallyH_pool_release(tallyH_heap *h, tallyH_pool *p)
{
    tallyH_class *c = &h->classes[p->cls];
    tallyH_pool_unlink(c, p);
    c->npools--;
    if (h->last_pool == p) /* it vouches for live pools only */
        h->last_pool = TALLY_NO_POOL;
    p->tag = 0;
    tallyH_units_free(h, p->region, (uint8_t *)p, 1);
}

/* Releases the empty pools that classes keep for reuse (before giving up on an
 * allocation, and on trim).  Returns how many were released. */
size_t tallyH_pools_release_empty(tallyH_heap *h)
{
    size_t n = 0;
    for (int i = 0; i < h->nclasses; i++) {
        tallyH_pool *p = h->classes[i].avail;
        while (p) {
            tallyH_pool *next = p->next;
            if (p->nfree == p->cap) {
                tallyH_pool_release(h, p);
                n++;
            }
            p = next;
        }
    }
    return n;
}
