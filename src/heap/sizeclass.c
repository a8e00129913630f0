/* sizeclass.c - the size classes and how a request maps to one.
 *
 * Small classes: 16, 32, ..., 512 bytes, one every 16 bytes (CPython's obmalloc
 * spacing), so rounding wastes 7.5 bytes on average and the class of a request is
 * (n - 1) >> 4, computed inline on the fast path.
 *
 * Medium classes, up to half a pool, are chosen by how many blocks fit a pool: for
 * k blocks per pool the block size is (pool - header) / k rounded down to 16, so a
 * pool has no unused tail.  Going from k down to 2, a size is kept when it is at
 * least 1/8 above the previous one: about four classes per doubling, rounding loss
 * at most 12.5% (and 33% between the last two, where only 3 and 2 blocks fit).
 * Larger requests take whole pools (see heap.c).
 */
#include "heap/heap.h"

/* Header bytes of a small pool with cap blocks: fixed part plus bitmap, rounded so
 * that block 0 is 16-byte aligned. */
size_t tallyH_small_header(uint32_t cap)
{
    size_t words = (cap + 63) / 64;
    return TALLY_ALIGN_UP(sizeof(tallyH_pool) + words * sizeof(uint64_t), 16);
}

/* Blocks of bsize that fit a pool next to their own header. */
static uint32_t capacity(uint32_t bsize)
{
    uint32_t cap = (uint32_t)((TALLY_POOL_SIZE - sizeof(tallyH_pool)) / bsize);
    while (cap > 0 && tallyH_small_header(cap) + (size_t)cap * bsize > TALLY_POOL_SIZE)
        cap--;
    return cap;
}

static void class_set(tallyH_heap *h, int i, uint32_t bsize)
{
    tallyH_class *c = &h->classes[i];
    c->avail = c->tail = NULL;
    c->bsize = bsize;
    c->inv = tallyH_reciprocal(bsize);
    c->cap = (uint16_t)capacity(bsize);
    c->hdr = (uint16_t)tallyH_small_header(c->cap);
    c->npools = 0;
}

void tallyH_classes_init(tallyH_heap *h)
{
    int n = 0;
    for (uint32_t s = 16; s <= TALLY_SMALL_MAX; s += 16)
        class_set(h, n++, s);
    uint32_t last = TALLY_SMALL_MAX;
    uint32_t kmax = (uint32_t)(TALLY_POOL_SIZE / (TALLY_SMALL_MAX + 16));
    for (uint32_t k = kmax; k >= 2 && n < TALLY_MAX_CLASSES; k--) {
        size_t room = TALLY_POOL_SIZE - tallyH_small_header(k);
        uint32_t s = (uint32_t)TALLY_ALIGN_DOWN(room / k, 16);
        bool spaced = s >= last + last / 8;
        if (s > last && (spaced || k == 2)) {
            class_set(h, n++, s);
            last = s;
        }
    }
    h->nclasses = n;
    h->class_max = last;
}

int tallyH_class_index(const tallyH_heap *h, size_t n)
{
    if (n <= TALLY_SMALL_MAX)
        return (int)((n - 1) >> 4);
    int lo = TALLY_SMALL_MAX / 16, hi = h->nclasses - 1;
    while (lo < hi) { /* smallest class with bsize >= n */
        int mid = (lo + hi) / 2;
        if (h->classes[mid].bsize >= n)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}
