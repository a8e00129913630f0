/* summary.c - the per-type summary of live objects (pympler's muppy summary).
 *
 * From the census (census.c: every live block, objects told from raw blocks,
 * owned buffers and the runtime's own tables marked), count the objects of each
 * type and add up their tally_sizeof, which is exact as the heap rounds: the
 * block's usable size, header included, plus what the object owns outside it.
 * Raw blocks neither owned by an object nor the runtime's own add up to one line,
 * "(raw blocks)", with their usable sizes.  Immortal objects are alive and are
 * counted (the leak report is what leaves them out).
 *
 * Grouping: the cells are copied to the result array keyed by type and sorted by
 * type, then runs of one type are folded into one line in place, and the lines
 * sorted by bytes.  The result is one heap block (tallyH_malloc_quiet), released
 * with tally_trace_release; the census is freed before returning.
 */
#include "trace/trace.h"

#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h"
#include "tally/types.h"

static int cmp_by_type(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const tally_type_stat *)a)->type;
    uintptr_t y = (uintptr_t)((const tally_type_stat *)b)->type;
    return x < y ? -1 : x > y;
}

/* Largest first; then more objects first; then by name, so the order is stable. */
static int cmp_by_bytes(const void *a, const void *b)
{
    const tally_type_stat *x = a, *y = b;
    if (x->bytes != y->bytes)
        return x->bytes > y->bytes ? -1 : 1;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return strcmp(x->name, y->name);
}

tally_type_stat *tally_trace_type_summary(tally_rt *rt, size_t *n)
{
    if (rt == NULL || n == NULL) {
        if (rt != NULL)
            tallyB_error_set(&rt->heap.err, TALLY_EINVAL, "tally_trace_type_summary: n is NULL");
        return NULL;
    }
    *n = 0;
    tallyM_census c;
    if (tallyM_census_take(rt, &c) != 0)
        return NULL;
    size_t m = 0;
    for (size_t i = 0; i < c.n; i++)
        if (!(c.cells[i].flags & (TALLY_CELL_INTERNAL | TALLY_CELL_OWNED)))
            m++;
    /* At least one entry, so that an empty summary is not mistaken for a failure. */
    tally_type_stat *out = tallyH_malloc_quiet(&rt->heap, (m ? m : 1) * sizeof *out);
    if (out == NULL) {
        tallyM_census_free(rt, &c);
        tallyB_error_set(&rt->heap.err, TALLY_ENOMEM, "no memory for the type summary");
        return NULL;
    }
    size_t k = 0;
    for (size_t i = 0; i < c.n; i++) {
        const tallyM_cell *cell = &c.cells[i];
        if (cell->flags & (TALLY_CELL_INTERNAL | TALLY_CELL_OWNED))
            continue;
        size_t bytes = cell->obj ? tally_sizeof(cell->obj) : cell->size;
        out[k++] = (tally_type_stat){cell->type, tallyM_type_name(cell->type), 1, bytes};
    }
    tallyM_census_free(rt, &c);
    qsort(out, k, sizeof *out, cmp_by_type);
    size_t lines = 0;
    for (size_t i = 0; i < k; i++) {
        if (lines > 0 && out[lines - 1].type == out[i].type) {
            out[lines - 1].count++;
            out[lines - 1].bytes += out[i].bytes;
        } else {
            out[lines++] = out[i];
        }
    }
    qsort(out, lines, sizeof *out, cmp_by_bytes);
    *n = lines;
    return out;
}

int tally_trace_type_summary_print(tally_rt *rt, FILE *out, size_t limit)
{
    if (out == NULL) {
        if (rt != NULL)
            tallyB_error_set(&rt->heap.err, TALLY_EINVAL,
                             "tally_trace_type_summary_print: no stream");
        return -1;
    }
    size_t n;
    tally_type_stat *s = tally_trace_type_summary(rt, &n);
    if (s == NULL)
        return -1;
    size_t count = 0, bytes = 0;
    for (size_t i = 0; i < n; i++) {
        count += s[i].count;
        bytes += s[i].bytes;
    }
    fprintf(out, "%-24s %10s %12s\n", "type", "count", "bytes");
    for (size_t i = 0; i < n && (limit == 0 || i < limit); i++)
        fprintf(out, "%-24s %10zu %12zu\n", s[i].name, s[i].count, s[i].bytes);
    if (limit != 0 && n > limit)
        fprintf(out, "... %zu more types\n", n - limit);
    fprintf(out, "%-24s %10zu %12zu\n", "total", count, bytes);
    tally_trace_release(s);
    return 0;
}
