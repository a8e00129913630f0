/* pool.c - small pools: creation, the class lists, and giving pools back.
 *
 * A class's `avail` list holds its pools that have a free block; allocation takes
 * from the head.  A pool that fills leaves the list; a full pool that gets a block
 * back returns to the head, so recently touched pools are reused first and pools
 * that drain can empty out completely.  A pool that becomes empty is returned to
 * its region unless it is the class's only pool with free blocks: keeping that one
 * avoids giving back and re-creating a pool on every call of a program that
 * allocates and frees a single block in a loop (the "lone pair" case that makes
 * mimalloc 2.x slow).
 *
 * The allocation fast path itself (taking a bit from the bitmap) is inline in
 * heap_inline.h; this file has the transitions between list states.
 */
#include <string.h>

#include "heap/heap.h"
#include "heap/heap_inline.h"

tallyH_pool *tallyH_pool_new(tallyH_heap *h, int cls)
{
    tallyH_class *c = &h->classes[cls];
    tallyH_region *r;
    if (h->nempty > h->retain)
        tallyH_arenas_decay(h);
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
    p->lsize = 0;
    uint32_t words = (c->cap + 63u) / 64u;
    memset(p->freemap, 0xff, words * sizeof(uint64_t));
    if (c->cap % 64)
        p->freemap[words - 1] = ((uint64_t)1 << (c->cap % 64)) - 1;
    p->tag = tallyH_tag(h, p, TALLY_POOL_SMALL);
    if (h->debug)
        tallyH_debug_pool_init(p);
    tallyB_anno_noaccess(p->data, p->span);
    p->prev = NULL;
    p->next = c->avail;
    if (c->avail)
        c->avail->prev = p;
    c->avail = p;
    c->npools++;
    return p;
}

void tallyH_pool_unlink(tallyH_class *c, tallyH_pool *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        c->avail = p->next;
    if (p->next)
        p->next->prev = p->prev;
    p->next = p->prev = NULL;
}

/* The block just taken was p's last: p leaves its class's list.  Returns b. */
uint8_t *tallyH_pool_filled(tallyH_heap *h, tallyH_pool *p, uint8_t *b)
{
    tallyH_pool_unlink(&h->classes[p->cls], p);
    if (h->nempty > h->retain)
        tallyH_arenas_decay(h);
    return b;
}

/* p just went from full to one free block, or to all blocks free.  A full pool
 * that got a block back goes to the head of its class's list; an empty pool is
 * released unless it is alone on that list. */
void tallyH_pool_changed(tallyH_heap *h, tallyH_pool *p)
{
    tallyH_class *c = &h->classes[p->cls];
    if (p->nfree == 1) {
        p->prev = NULL;
        p->next = c->avail;
        if (c->avail)
            c->avail->prev = p;
        c->avail = p;
    }
    if (p->nfree == p->cap && (p->next != NULL || p->prev != NULL))
        tallyH_pool_release(h, p);
    if (h->nempty > h->retain)
        tallyH_arenas_decay(h);
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
