/* owner.c - which arenas belong to a hosted heap: a two-level radix bitmap.
 *
 * tally_free(rt, p) must reject a pointer the runtime never handed out without
 * reading the memory it points to (that memory may be unmapped).  Arenas are
 * aligned to their size, so address >> TALLY_ARENA_SHIFT names a granule; one bit
 * per granule says "ours".  The root (2^13 pointers) lives in the runtime's own
 * mapping; leaves are mapped on demand from the backend and cover 2^leaf_bits
 * granules each (4 KiB of bits covers 32 GiB with 1 MiB arenas).  This is the idea
 * of CPython's arena radix tree, kept per runtime instead of per process, so that
 * two runtimes never mistake each other's blocks for their own.
 *
 * Huge blocks have mappings of their own, aligned and rounded to whole granules, so
 * a granule is never shared between the heap and foreign memory.
 */
#include "heap/heap.h"

#include <string.h>

size_t tallyH_owner_root_bytes(void)
{
    return sizeof(uint64_t *) << TALLY_OWNER_ROOT_BITS;
}

static size_t leaf_bytes(const tallyH_heap *h)
{
    size_t bits = (size_t)1 << h->owner_leaf_bits;
    size_t bytes = bits / 8;
    return bytes < 4096 ? 4096 : bytes;
}

/* Marks every granule of [base, base + size) as owned; maps missing leaves.
 * On failure nothing stays marked. */
int tallyH_owner_add(tallyH_heap *h, uintptr_t base, size_t size)
{
    uintptr_t first = base >> TALLY_ARENA_SHIFT;
    uintptr_t last = (base + size - 1) >> TALLY_ARENA_SHIFT;
    if ((base + size - 1) >> TALLY_OWNER_ADDR_BITS) {
        tallyB_error_set(&h->err, TALLY_ENOMEM,
                         "backend returned memory above 2^48 (%p), which Tally cannot track",
                         (void *)base);
        return -1;
    }
    uintptr_t mask = ((uintptr_t)1 << h->owner_leaf_bits) - 1;
    for (uintptr_t g = first; g <= last; g++) {
        uint64_t **slot = &h->owner_root[g >> h->owner_leaf_bits];
        if (*slot == NULL) {
            *slot = tallyH_backend_map(h, leaf_bytes(h), 4096);
            if (*slot == NULL) {
                if (g > first)
                    tallyH_owner_remove(h, base, (g - first) << TALLY_ARENA_SHIFT);
                return -1;
            }
        }
        uintptr_t i = g & mask;
        (*slot)[i >> 6] |= (uint64_t)1 << (i & 63);
    }
    return 0;
}

void tallyH_owner_remove(tallyH_heap *h, uintptr_t base, size_t size)
{
    uintptr_t first = base >> TALLY_ARENA_SHIFT;
    uintptr_t last = (base + size - 1) >> TALLY_ARENA_SHIFT;
    uintptr_t mask = ((uintptr_t)1 << h->owner_leaf_bits) - 1;
    for (uintptr_t g = first; g <= last; g++) {
        uint64_t *leaf = h->owner_root[g >> h->owner_leaf_bits];
        if (leaf != NULL) {
            uintptr_t i = g & mask;
            leaf[i >> 6] &= ~((uint64_t)1 << (i & 63));
        }
    }
}

/* Unmaps every leaf.  The root belongs to the runtime's mapping. */
void tallyH_owner_destroy(tallyH_heap *h)
{
    if (h->owner_root == NULL)
        return;
    for (size_t i = 0; i < ((size_t)1 << TALLY_OWNER_ROOT_BITS); i++) {
        if (h->owner_root[i] != NULL) {
            tallyH_backend_unmap(h, h->owner_root[i], leaf_bytes(h));
            h->owner_root[i] = NULL;
        }
    }
}
