/* handle.c - 32-bit handles for 16-byte-aligned addresses in the heap.
 *
 * The layers above link objects into lists; 64-bit pointers would make those links
 * as big as the objects' headers, so they are kept as 32-bit handles instead:
 *
 *   handle = slot << TALLY_HANDLE_SHIFT | (address - chunk) / 16
 *
 * A chunk is an arena (hosted), one arena-sized piece of the caller's buffer
 * (fixed), the start of a huge block's mapping, or any small area a layer above
 * registers (the collector's list heads).  The slot table maps a slot to its
 * chunk's address: decoding is one load.  Every pool header holds the handle of
 * its own first byte (hbase), so encoding is one load too.  There are 2^(32 -
 * TALLY_HANDLE_SHIFT) slots: with 1 MiB arenas, 65536, or 64 GiB of heap.
 *
 * The table starts in the heap struct; a hosted heap that outgrows it maps a
 * larger one from its backend (a failure is the arena's or huge block's failure);
 * a fixed heap knows its chunks at start and keeps their table in the buffer's
 * prefix.  Slots are taken lowest first and given back when their chunk goes.
 * A huge block that the backend moves (remapped, not copied) keeps its slot: only
 * the slot's chunk address changes, so the handles stored inside it stay valid.
 */
#include "heap/heap.h"

#include <string.h>

bool tallyH_slots_reserve(tallyH_heap *h, uint32_t more)
{
    tallyH_slots *s = &h->slots;
    if (s->used + more <= s->cap)
        return true;
    if (s->cap + (size_t)more > TALLY_HANDLE_SLOTS || h->fixed) {
        tallyB_error_set(&h->err, TALLY_ENOMEM,
                         "the heap has no handle slot left (%u chunks of %zu bytes in use)",
                         s->used, (size_t)TALLY_ARENA_SIZE);
        return false;
    }
    size_t cap = s->cap * 2 >= s->used + more ? s->cap * 2 : s->used + more;
    if (cap > TALLY_HANDLE_SLOTS)
        cap = TALLY_HANDLE_SLOTS;
    size_t bytes = TALLY_ALIGN_UP(cap * sizeof(uint8_t *), tallyH_page_size());
    uint8_t **base = tallyH_backend_map(h, bytes, tallyH_page_size());
    if (base == NULL)
        return false;
    memcpy(base, s->base, s->cap * sizeof *base);
    if (s->map_size)
        tallyH_backend_unmap(h, s->base, s->map_size);
    s->base = base;
    s->cap = (uint32_t)(bytes / sizeof *base);
    s->map_size = bytes;
    return true;
}

uint32_t tallyH_slot_take(tallyH_heap *h, uint8_t *chunk)
{
    if (!tallyH_slots_reserve(h, 1))
        return UINT32_MAX;
    tallyH_slots *s = &h->slots;
    uint32_t i = s->hint;
    while (s->base[i] != NULL)
        i++;
    s->base[i] = chunk;
    s->used++;
    s->hint = i + 1;
    return i;
}

void tallyH_slot_drop(tallyH_heap *h, uint32_t slot)
{
    tallyH_slots *s = &h->slots;
    s->base[slot] = NULL;
    s->used--;
    if (slot < s->hint)
        s->hint = slot;
}

void tallyH_slot_move(tallyH_heap *h, uint32_t slot, uint8_t *chunk)
{
    h->slots.base[slot] = chunk;
}

void tallyH_slots_init(tallyH_heap *h, uint8_t **table, uint32_t cap)
{
    tallyH_slots *s = &h->slots;
    s->base = table ? table : s->inline_base;
    s->cap = table ? cap : TALLY_HANDLE_INLINE_SLOTS;
    memset(s->base, 0, s->cap * sizeof *s->base);
    s->used = s->hint = 0;
    s->map_size = 0;
}

void tallyH_slots_destroy(tallyH_heap *h)
{
    tallyH_slots *s = &h->slots;
    if (s->map_size)
        tallyH_backend_unmap(h, s->base, s->map_size);
    s->map_size = 0;
}

uint32_t tallyH_region_hbase(const tallyH_region *r, const uint8_t *unit)
{
    size_t off = (size_t)(unit - r->base);
    size_t k = off >> TALLY_ARENA_SHIFT; /* the chunk within a fixed region */
    return ((r->slot + (uint32_t)k) << TALLY_HANDLE_SHIFT) |
           (uint32_t)((off - (k << TALLY_ARENA_SHIFT)) >> 4);
}
