/* owner.c - which memory belongs to a heap: one bit per arena-sized granule.
 *
 * tally_free(rt, p) must reject a pointer the runtime never handed out without
 * reading the memory it points to (that memory may be unmapped).  Arenas are
 * aligned to their size, so (address - lo) >> TALLY_ARENA_SHIFT names a granule,
 * and a flat bitmap says which granules are ours.  The bitmap covers a fixed window
 * of 2^20 granules (1 TiB with 1 MiB arenas) centred on the heap's first mapping;
 * it lives in the runtime's own mapping (128 KiB, counted as reserved), where
 * untouched pages cost no memory (one 4 KiB page of bits covers 32 GiB).  A lookup is a subtraction, a compare and a
 * bit test, done on every tally_free.  This plays the role of CPython's arena
 * radix tree, kept per runtime so that two runtimes never mistake each other's
 * blocks for their own, and flat because the window keeps it small.
 *
 * A mapping the backend places outside the window is refused (given back, and the
 * request fails with TALLY_ENOMEM): a single runtime is thus limited to a 1 TiB
 * span of address space.  Huge blocks have mappings of their own aligned to a
 * granule; only their first granule is marked, since pointers further in are not
 * block starts.  The fixed buffer marks every granule it overlaps: its range check
 * is exact already, and one code path serves both backends.
 */
#include "heap/heap.h"

#include <string.h>

size_t tallyH_owner_map_bytes(void)
{
    return ((size_t)1 << (TALLY_OWNER_WINDOW_SHIFT - TALLY_ARENA_SHIFT)) / 8;
}

static void set_bit(uint64_t *map, uintptr_t g, bool on)
{
    if (on)
        map[g >> 6] |= (uint64_t)1 << (g & 63);
    else
        map[g >> 6] &= ~((uint64_t)1 << (g & 63));
}

/* Marks the granule holding base as owned.  The first call places the window. */
int tallyH_owner_add(tallyH_heap *h, uintptr_t base)
{
    if (h->span == 0) {
        uintptr_t half = (uintptr_t)1 << (TALLY_OWNER_WINDOW_SHIFT - 1);
        uintptr_t g0 = TALLY_ALIGN_DOWN(base, TALLY_ARENA_SIZE);
        h->lo = g0 > half ? g0 - half : 0;
        h->span = (uintptr_t)1 << TALLY_OWNER_WINDOW_SHIFT;
    }
    if (base - h->lo >= h->span) {
        tallyB_error_set(&h->err, TALLY_ENOMEM,
                         "the backend placed memory at %p, outside this runtime's %zu GiB "
                         "address window", (void *)base,
                         (size_t)1 << (TALLY_OWNER_WINDOW_SHIFT - 30));
        return -1;
    }
    set_bit(h->owner_map, (base - h->lo) >> TALLY_ARENA_SHIFT, true);
    return 0;
}

void tallyH_owner_remove(tallyH_heap *h, uintptr_t base)
{
    set_bit(h->owner_map, (base - h->lo) >> TALLY_ARENA_SHIFT, false);
}

/* The fixed buffer: its pools span [base, base + size); the map (in the buffer's
 * prefix, tallyH_owner_fixed_words() words) marks every granule they touch. */
void tallyH_owner_fixed(tallyH_heap *h, uint64_t *map, uintptr_t base, size_t size)
{
    h->owner_map = map;
    h->lo = base;
    h->span = size;
    size_t granules = ((size - 1) >> TALLY_ARENA_SHIFT) + 1;
    memset(map, 0, tallyH_owner_fixed_words(size) * sizeof(uint64_t));
    for (size_t g = 0; g < granules; g++)
        set_bit(map, g, true);
}

size_t tallyH_owner_fixed_words(size_t size)
{
    return (((size + TALLY_ARENA_SIZE - 1) >> TALLY_ARENA_SHIFT) + 63) / 64;
}
