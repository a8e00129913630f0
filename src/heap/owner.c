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
 * The fast paths look at that one window.  A backend may place memory far away
 * (one built on malloc gets both brk-heap and mmap addresses, tens of TiB apart):
 * up to TALLY_OWNER_EXTRA_WINDOWS more windows are then opened, each with a map
 * of its own from the backend, and consulted on the slow path only - blocks there
 * are freed correctly, a little more slowly.  Memory beyond all windows is refused
 * (given back; the request fails with TALLY_ENOMEM).  Huge blocks have mappings of their own aligned to a
 * granule; only their first granule is marked, since pointers further in are not
 * block starts (a huge block moved by remapping has its old granule cleared and its
 * new one marked).  The fixed buffer marks every granule it overlaps: its range check
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

/* Window w of the heap: 0 is the fast one, kept in the heap's hot fields. */
static bool window_has(const tallyH_heap *h, unsigned w, uintptr_t a, uintptr_t *g)
{
    uintptr_t lo = w == 0 ? h->lo : h->windows[w - 1].lo;
    uintptr_t span = w == 0 ? h->span : (uintptr_t)1 << TALLY_OWNER_WINDOW_SHIFT;
    if (a - lo >= span)
        return false;
    *g = (a - lo) >> TALLY_ARENA_SHIFT;
    return true;
}

static uint64_t *window_map(const tallyH_heap *h, unsigned w)
{
    return w == 0 ? h->owner_map : h->windows[w - 1].map;
}

static uintptr_t window_base(uintptr_t base)
{
    uintptr_t half = (uintptr_t)1 << (TALLY_OWNER_WINDOW_SHIFT - 1);
    uintptr_t g0 = TALLY_ALIGN_DOWN(base, TALLY_ARENA_SIZE);
    return g0 > half ? g0 - half : 0;
}

/* Opens a window around base: the first in the hot fields, later ones with a map
 * of their own from the backend.  Returns its index, or -1 (error set). */
static int window_open(tallyH_heap *h, uintptr_t base)
{
    if (h->span == 0) {
        h->lo = window_base(base);
        h->span = (uintptr_t)1 << TALLY_OWNER_WINDOW_SHIFT;
        return 0;
    }
    if (h->nwindows == TALLY_OWNER_EXTRA_WINDOWS) {
        tallyB_error_set(&h->err, TALLY_ENOMEM,
                         "the backend placed memory at %p, outside this runtime's %d address "
                         "windows of %zu GiB", (void *)base, TALLY_OWNER_EXTRA_WINDOWS + 1,
                         (size_t)1 << (TALLY_OWNER_WINDOW_SHIFT - 30));
        return -1;
    }
    uint64_t *map = tallyH_backend_map(h, tallyH_owner_map_bytes(), 4096);
    if (map == NULL)
        return -1;
    memset(map, 0, tallyH_owner_map_bytes());
    h->windows[h->nwindows].lo = window_base(base);
    h->windows[h->nwindows].map = map;
    return (int)++h->nwindows;
}

/* Marks the granule holding base as owned, opening a window if none covers it. */
int tallyH_owner_add(tallyH_heap *h, uintptr_t base)
{
    uintptr_t g;
    for (unsigned w = 0; w <= h->nwindows; w++) {
        if (window_has(h, w, base, &g)) {
            set_bit(window_map(h, w), g, true);
            return 0;
        }
    }
    int w = window_open(h, base);
    if (w < 0)
        return -1;
    g = (base - (w == 0 ? h->lo : h->windows[w - 1].lo)) >> TALLY_ARENA_SHIFT;
    set_bit(window_map(h, (unsigned)w), g, true);
    return 0;
}

void tallyH_owner_remove(tallyH_heap *h, uintptr_t base)
{
    uintptr_t g;
    for (unsigned w = 0; w <= h->nwindows; w++) {
        if (window_has(h, w, base, &g)) {
            set_bit(window_map(h, w), g, false);
            return;
        }
    }
}

/* The slow-path question: owned in any window? */
bool tallyH_owns_any(const tallyH_heap *h, uintptr_t a)
{
    if (tallyH_owns(h, a))
        return true;
    uintptr_t g;
    for (unsigned w = 1; w <= h->nwindows; w++)
        if (window_has(h, w, a, &g))
            return (window_map(h, w)[g >> 6] >> (g & 63)) & 1;
    return false;
}

void tallyH_owner_destroy(tallyH_heap *h)
{
    for (unsigned w = 0; w < h->nwindows; w++)
        tallyH_backend_unmap(h, h->windows[w].map, tallyH_owner_map_bytes());
    h->nwindows = 0;
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
