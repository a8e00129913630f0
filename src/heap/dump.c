/* dump.c - tally_heap_dump(): the heap as a person reads it.
 *
 * What sys._debugmallocstats() and micropython.mem_info(1) print: totals, one line
 * per size class in use, then a map with one character per pool, so that
 * fragmentation can be seen at a glance:
 *
 *   .  free pool            0-9  small pool, that many tenths of its blocks used
 *   #  full small pool      L    first pool of a large block, = the rest of it
 *   !  a pool whose header is damaged (run tally_heap_check for details)
 *
 * then a line per huge block and per medium arena (containers' buffers).
 */
#include <string.h>

#include "heap/heap.h"

static char pool_char(const tallyH_heap *h, const tallyH_pool *p)
{
    uintptr_t tag = tallyB_peek_word(p);
    if (tag == tallyH_tag(h, p, TALLY_POOL_LARGE))
        return 'L';
    if (tag != tallyH_tag(h, p, TALLY_POOL_SMALL))
        return '!';
    if (p->nfree == 0)
        return '#';
    return (char)('0' + (unsigned)(p->cap - p->nfree) * 10u / p->cap);
}

static void dump_region_map(const tallyH_heap *h, const tallyH_region *r, FILE *out)
{
    char line[72];
    uint32_t cont = 0; /* pools left in the current large block */
    for (uint32_t i = 0; i < r->npools; i++) {
        const tallyH_pool *p = (const tallyH_pool *)(r->base + ((size_t)i << TALLY_POOL_SHIFT));
        char ch;
        if ((r->freemap[i >> 6] >> (i & 63)) & 1) {
            ch = '.';
            cont = 0;
        } else if (cont > 0) {
            ch = '=';
            cont--;
        } else {
            ch = pool_char(h, p);
            if (ch == 'L')
                cont = p->nunits > 0 ? p->nunits - 1 : 0;
        }
        if (i % 64 == 0)
            memset(line, 0, sizeof line);
        line[i % 64] = ch;
        if (i % 64 == 63 || i == r->npools - 1)
            fprintf(out, "  %p %s\n", (void *)(r->base + ((size_t)(i - i % 64) << TALLY_POOL_SHIFT)),
                    line);
    }
}

static void dump_classes(const struct tally_heap_stats *s, FILE *out)
{
    fprintf(out, "size classes in use:\n");
    fprintf(out, "  %6s %7s %10s %10s %7s %6s\n", "block", "pools", "used", "free", "full", "use%");
    for (int i = 0; i < s->nclasses; i++) {
        const tally_class_stats *c = &s->classes[i];
        if (c->pools == 0)
            continue;
        size_t total = c->blocks_used + c->blocks_free;
        fprintf(out, "  %6zu %7zu %10zu %10zu %7zu %5.1f%%\n", c->block_size, c->pools,
                c->blocks_used, c->blocks_free, c->pools_full,
                total ? 100.0 * (double)c->blocks_used / (double)total : 0.0);
    }
}

void tally_heap_dump(tally_rt *rt, FILE *out)
{
    if (rt == NULL || out == NULL)
        return;
    tallyH_heap *h = (tallyH_heap *)(void *)rt;
    struct tally_heap_stats s;
    tally_heap_stats(rt, &s);
    fprintf(out, "Tally heap: %s backend, pools of %zu bytes, debug level %d\n",
            h->fixed ? "fixed-buffer" : "hosted", s.pool_size, s.debug);
    fprintf(out, "  in use:     %12zu bytes in %zu blocks (peak %zu bytes)\n", s.bytes_in_use,
            s.blocks_in_use, s.bytes_in_use_peak);
    fprintf(out, "  reserved:   %12zu bytes (peak %zu bytes)", s.bytes_reserved,
            s.bytes_reserved_peak);
    if (s.bytes_limit)
        fprintf(out, ", limit %zu bytes", s.bytes_limit);
    if (!h->fixed)
        fprintf(out, "\n  committed:  %12zu bytes (reserved less free pools never touched or purged)",
                s.bytes_committed);
    fprintf(out, "\n  free:       %12zu bytes, largest free block %zu bytes, fragmentation %.1f%%\n",
            s.bytes_free, s.largest_free, 100.0 * s.fragmentation);
    fprintf(out, "  overhead:   %11.1f%% of reserved bytes not in use\n", 100.0 * s.overhead);
    fprintf(out, "  pools:      %12zu used, %zu free, %zu total\n", s.pools_used, s.pools_free,
            s.pools_total);
    if (!h->fixed)
        fprintf(out, "  arenas:     %12zu mapped (peak %zu), %zu empty kept for reuse\n", s.arenas,
                s.arenas_peak, s.arenas_cached);
    fprintf(out, "  large:      %12zu blocks, %zu bytes\n", s.large_blocks, s.large_bytes);
    if (s.medium_arenas)
        fprintf(out, "  medium:     %12zu blocks, %zu bytes, %zu bytes free in %zu arenas\n",
                s.medium_blocks, s.medium_bytes, s.medium_free, s.medium_arenas);
    fprintf(out, "  calls:      %12llu allocations, %llu frees, %llu backend requests, "
                 "%llu releases\n", s.allocs, s.frees, s.backend_requests, s.backend_releases);
    fprintf(out, "  errors:     %12llu detected\n", s.errors_detected);
    dump_classes(&s, out);
    fprintf(out, "pool map (. free, 0-9 tenths used, # full, L= large block, ! damaged):\n");
    for (const tallyH_region *r = h->regions; r; r = r->next)
        dump_region_map(h, r, out);
    for (const tallyH_pool *p = h->huge; p; p = p->next)
        fprintf(out, "  %p huge block of %zu bytes\n", (const void *)p->data, p->lsize);
    tallyH_medium_dump(h, out);
}
