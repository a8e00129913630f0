/* census.c - every live block of a runtime, told apart: objects, the buffers
 * objects own, the runtime's own tables, and the raw blocks left.
 *
 * The object-side reports (the type summary, the leak report, why-alive and the
 * reference graph) all start here.  One walk of the heap's live blocks
 * (tally_heap_visit) finds every object, tracked container or not, frozen or in
 * the garbage list, and every raw block: the collector's lists would only give
 * the tracked containers, and the heap walk sees them anyway, so it is the one
 * source (nothing is counted twice).  The walk cannot allocate, so it runs twice:
 * once to count the blocks, once to fill an array that comes from the heap
 * through tallyH_malloc_quiet (no tracing hook, no collection, no user code, and
 * a failure that is reported, never silent).  The array is a live block too and
 * is skipped by the second walk.
 *
 * A block holds an object when the object layer's test (tally_is_object) accepts
 * the pointer 16 bytes into it (a container's layout) or else 8 bytes into it;
 * 16 is tried first, because the link words at the start of a container could
 * pass for a plain object's header.  Then, on the array sorted by address:
 *
 *   INTERNAL  the runtime's own tables, which are no one's leak: the tracer's
 *             tables, the intern table of strs, the weak reference table, the
 *             grown type table, and the blocks parked on the object free stacks
 *             (dead objects' blocks kept for reuse: their count is 0).  Marked
 *             before objects are looked for: a table's words could pass for an
 *             object header.
 *   OWNED     a raw block an object owns outside its own block (a list's item
 *             array): it is counted in the owner's tally_sizeof, so the reports
 *             do not count it again as a raw block.  Found by scanning the words
 *             of the fixed part of each object whose type reports owned bytes
 *             for pointers to the start of a raw block; a raw block is claimed
 *             once.
 *   IMMORTAL  an immortal object (small ints, interned strs, the empty tuple).
 *
 * Cost: two heap walks, a sort, and for owners a scan of their block with a
 * binary search per word.  Memory: one cell (40 bytes) per live block.
 */
#include "trace/trace.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h"
#include "tally/types.h"

typedef struct fill_ctx {
    tallyM_cell *cells;
    size_t cap;
    size_t n;
    uintptr_t self;          /* the census array itself: not a block to report */
} fill_ctx;

static int count_block(void *block, size_t size, void *arg)
{
    (void)block;
    (void)size;
    ++*(size_t *)arg;
    return 0;
}

static int fill_block(void *block, size_t size, void *arg)
{
    fill_ctx *f = arg;
    if ((uintptr_t)block == f->self)
        return 0;
    if (f->n == f->cap)
        return 1; /* cannot happen (nothing allocates between the walks) */
    f->cells[f->n++] = (tallyM_cell){(uintptr_t)block, size, NULL, NULL, 0};
    return 0;
}

static int cmp_cell(const void *a, const void *b)
{
    uintptr_t x = ((const tallyM_cell *)a)->addr, y = ((const tallyM_cell *)b)->addr;
    return x < y ? -1 : x > y;
}

/* The index of the cell whose block starts at addr, or SIZE_MAX. */
static size_t find_start(const tallyM_census *c, uintptr_t addr)
{
    size_t lo = 0, hi = c->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->cells[mid].addr < addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < c->n && c->cells[lo].addr == addr ? lo : SIZE_MAX;
}

size_t tallyM_census_find(const tallyM_census *c, const void *o)
{
    /* o lies 8 or 16 bytes into its block: the last block starting at or below it. */
    uintptr_t a = (uintptr_t)o;
    size_t lo = 0, hi = c->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->cells[mid].addr <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return SIZE_MAX;
    const tallyM_cell *cell = &c->cells[lo - 1];
    return cell->obj == o ? lo - 1 : SIZE_MAX;
}

static void mark(tallyM_census *c, const void *p, uint32_t flag)
{
    if (p == NULL)
        return;
    size_t i = find_start(c, (uintptr_t)p);
    if (i != SIZE_MAX)
        c->cells[i].flags |= flag;
}

/* The runtime's own blocks (see the top).  Old type tables, kept when the table
 * grew past them, are no longer named anywhere and stay raw blocks. */
static void mark_internal(tally_rt *rt, tallyM_census *c)
{
    const tallyM_state *s = &rt->trace;
    mark(c, s->pools, TALLY_CELL_INTERNAL);
    for (size_t i = 0; s->pools != NULL && i < s->pools_cap; i++)
        mark(c, s->pools[i].rec, TALLY_CELL_INTERNAL);
    mark(c, s->traces, TALLY_CELL_INTERNAL);
    mark(c, s->sites, TALLY_CELL_INTERNAL);
    mark(c, s->site_index, TALLY_CELL_INTERNAL);
    mark(c, s->frames, TALLY_CELL_INTERNAL);
    mark(c, rt->types.interned, TALLY_CELL_INTERNAL);
    mark(c, rt->gc.wr_slots, TALLY_CELL_INTERNAL);
    if (rt->obj.types != rt->obj.inline_types)
        mark(c, rt->obj.types, TALLY_CELL_INTERNAL);
    for (size_t k = 0; k < TALLY_OBJ_CACHE_MAX / 16; k++) {
        const tallyO_freestack *fs = &rt->obj.free[k];
        for (uint32_t j = 0; j < fs->n; j++)
            mark(c, fs->block[j], TALLY_CELL_INTERNAL);
    }
}

/* Claims the raw blocks owner o points to, while they add up to no more than
 * the bytes its type says it owns.  Only the type's fixed part is scanned: that
 * is where a buffer's pointer lives, and it is written (objects start zeroed),
 * where the rest of the block may be rounding that sanitizers keep poisoned. */
static void claim_owned(tallyM_census *c, const tallyM_cell *owner, size_t owned)
{
    uintptr_t end = owner->addr + owner->size;
    if (end - (uintptr_t)owner->obj > owner->type->size)
        end = (uintptr_t)owner->obj + owner->type->size;
    size_t claimed = 0;
    for (uintptr_t w = (uintptr_t)owner->obj; w + sizeof(void *) <= end && claimed < owned;
         w += sizeof(void *)) {
        uintptr_t v;
        memcpy(&v, (const void *)w, sizeof v);
        size_t i = v ? find_start(c, v) : SIZE_MAX;
        if (i == SIZE_MAX)
            continue;
        tallyM_cell *b = &c->cells[i];
        if (b == owner || (b->flags & (TALLY_CELL_INTERNAL | TALLY_CELL_OWNED)))
            continue;
        /* A reference to an object points 8 or 16 bytes into its block, never at
         * the block's start: a block pointed at from its start is a buffer, even
         * if its first words looked like a header (an item array whose first
         * item's address reads as a count and a type index). */
        b->obj = NULL;
        b->type = NULL;
        b->flags = TALLY_CELL_OWNED;
        claimed += b->size;
    }
}

/* Under Valgrind: are the 8 bytes at h defined?  An object's header always is
 * (it is written when the object is made); a raw block's first bytes may not be,
 * and reading them to decide would be reported as a use of uninitialised memory.
 * The definedness bits are only read, never changed. */
static bool header_defined(const void *h)
{
#if TALLY_VALGRIND
    if (TALLY_ON_VALGRIND()) {
        unsigned char vbits[8];
        if (VALGRIND_GET_VBITS(h, vbits, sizeof vbits) != 1)
            return false;
        for (size_t i = 0; i < sizeof vbits; i++)
            if (vbits[i] != 0)
                return false;
    }
#endif
    (void)h;
    return true;
}

void *tallyM_object_in(tally_rt *rt, void *block, size_t size)
{
    /* A candidate's header must lie inside the block: tally_is_object reads it, and
     * past a small block's end (debug mode: past the bytes requested) the memory
     * is another block's or, to sanitizers, poisoned. */
    uint8_t *b = block;
    if (size >= 16 && header_defined(b + 8) && tally_is_object(rt, b + 16))
        return b + 16;
    if (size >= 8 && header_defined(b) && tally_is_object(rt, b + 8))
        return b + 8;
    return NULL;
}

int tallyM_census_take(tally_rt *rt, tallyM_census *c)
{
    c->cells = NULL;
    c->n = 0;
    size_t count = 0;
    tally_heap_visit(rt, count_block, &count);
    /* One cell spare: the array itself is a live block during the second walk. */
    size_t cap = count + 1;
    tallyM_cell *cells = NULL;
    if (cap <= SIZE_MAX / sizeof *cells)
        cells = tallyH_malloc_quiet(&rt->heap, cap * sizeof *cells);
    if (cells == NULL) {
        tallyB_error_set(&rt->heap.err, TALLY_ENOMEM,
                         "no memory for the census of %zu live blocks", count);
        return -1;
    }
    fill_ctx f = {cells, cap, 0, (uintptr_t)cells};
    tally_heap_visit(rt, fill_block, &f);
    c->cells = cells;
    c->n = f.n;
    qsort(cells, c->n, sizeof *cells, cmp_cell);

    /* The runtime's tables first: their contents could pass for an object header
     * (an intern table slot, a site record), and they are none. */
    mark_internal(rt, c);
    for (size_t i = 0; i < c->n; i++) {
        tallyM_cell *cell = &cells[i];
        if (cell->flags & TALLY_CELL_INTERNAL)
            continue;
        void *o = tallyM_object_in(rt, (void *)cell->addr, cell->size);
        if (o == NULL)
            continue;
        cell->obj = o;
        cell->type = tally_type_of(o);
        if (tally_is_immortal(o))
            cell->flags |= TALLY_CELL_IMMORTAL;
    }
    for (size_t i = 0; i < c->n; i++) {
        const tallyM_cell *cell = &cells[i];
        if (cell->obj == NULL || cell->type->ops == NULL || cell->type->ops->owned_bytes == NULL)
            continue;
        size_t owned = cell->type->ops->owned_bytes(cell->obj);
        if (owned > 0)
            claim_owned(c, cell, owned);
    }
    return 0;
}

void tallyM_census_free(tally_rt *rt, tallyM_census *c)
{
    if (c->cells != NULL)
        tallyH_free_quiet(&rt->heap, c->cells);
    c->cells = NULL;
    c->n = 0;
}

bool tallyM_cell_site(tally_rt *rt, const tallyM_cell *c, const char **file, int *line)
{
    tallyM_state *s = &rt->trace;
    tallyM_ref ref;
    if (!s->tracing || !tallyM_lookup(&rt->heap, s, c->addr, &ref) || ref.site >= s->nsites)
        return false;
    const tallyM_site *site = &s->sites[ref.site];
    *file = site->file ? site->file : TALLY_TRACE_UNKNOWN;
    *line = site->line;
    return true;
}

const char *tallyM_type_name(const tally_type *t)
{
    if (t == NULL)
        return "(raw blocks)";
    return t->name ? t->name : "(unnamed type)";
}
