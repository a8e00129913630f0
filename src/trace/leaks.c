/* leaks.c - the leak report: what is still alive, by type and allocation site.
 *
 * On demand (tally_trace_leaks) or at tally_close when the runtime was opened
 * with tally_config.report_leaks or TALLY_LEAKS=1 (runtime.c calls
 * tallyM_leaks_at_close before the heap is torn down).  Everything alive is
 * reported except what is nobody's leak: immortal objects (small ints, interned
 * strs, the empty tuple), the runtime's own tables, and the buffers objects own
 * (counted in their owners' tally_sizeof).  See census.c for how those are told.
 *
 * Grouping: one entry per leaked block keyed by (type, site), sorted and folded
 * in place; then each group gets its type's total and the groups are sorted by
 * that total, largest first, then by their own bytes, so that the report reads as
 * a type line followed by its sites.  The site is the one the tracer recorded
 * for the block (tracing on, and the block allocated while it was); otherwise
 * "site unknown (not traced)".
 *
 * Memory.  The report may run when the heap is exhausted (a program that leaked
 * until it ran out).  Its memory comes from tallyH_malloc_quiet, which fails
 * cleanly (no collection, no user code, no hook); if it fails, a second way that
 * needs no memory at all takes over: one heap walk adding up objects per type in
 * a fixed table on the stack, printed with a line saying the report is
 * incomplete.
 */
#include "trace/trace.h"

#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h"
#include "tally/types.h"

typedef struct leak_group {
    const tally_type *type;  /* NULL: raw blocks */
    const char *file;        /* NULL: not traced */
    int line;
    size_t count;
    size_t bytes;
    size_t type_bytes;       /* bytes of every group of this type (after folding) */
} leak_group;

static int cmp_str(const char *a, const char *b)
{
    if (a == b)
        return 0;
    if (a == NULL)
        return 1; /* unknown sites last */
    if (b == NULL)
        return -1;
    return strcmp(a, b);
}

static int cmp_key(const void *pa, const void *pb)
{
    const leak_group *a = pa, *b = pb;
    if (a->type != b->type)
        return (uintptr_t)a->type < (uintptr_t)b->type ? -1 : 1;
    int c = cmp_str(a->file, b->file);
    if (c != 0)
        return c;
    return (a->line > b->line) - (a->line < b->line);
}

static int cmp_report(const void *pa, const void *pb)
{
    const leak_group *a = pa, *b = pb;
    if (a->type_bytes != b->type_bytes)
        return a->type_bytes > b->type_bytes ? -1 : 1;
    if (a->type != b->type) {
        int c = strcmp(tallyM_type_name(a->type), tallyM_type_name(b->type));
        if (c != 0)
            return c;
        return (uintptr_t)a->type < (uintptr_t)b->type ? -1 : 1;
    }
    if (a->bytes != b->bytes)
        return a->bytes > b->bytes ? -1 : 1;
    return cmp_key(pa, pb);
}

static bool is_leak(const tallyM_cell *c)
{
    return !(c->flags & (TALLY_CELL_IMMORTAL | TALLY_CELL_INTERNAL | TALLY_CELL_OWNED));
}

static void print_header(FILE *out, size_t nobj, size_t objbytes, size_t nraw, size_t rawbytes)
{
    fprintf(out, "Tally leak report: %zu object%s (%zu bytes) and %zu raw block%s (%zu bytes) "
                 "still alive\n",
            nobj, nobj == 1 ? "" : "s", objbytes, nraw, nraw == 1 ? "" : "s", rawbytes);
    fprintf(out, "%12s %8s  %s\n", "bytes", "count", "type / allocation site");
}

/* ---- without memory ---------------------------------------------------------------- */

#define FALLBACK_TYPES 32

typedef struct fallback {
    tally_rt *rt;
    struct {
        const tally_type *type; /* NULL: raw blocks (entry 0) */
        size_t count, bytes;
    } t[FALLBACK_TYPES + 1];
    unsigned n;
    size_t other_count, other_bytes; /* types beyond the table */
} fallback;

static int fallback_block(void *block, size_t size, void *arg)
{
    fallback *f = arg;
    void *o = tallyM_object_in(f->rt, block, size);
    if (o != NULL && tally_is_immortal(o))
        return 0;
    const tally_type *t = o ? tally_type_of(o) : NULL;
    size_t bytes = o ? tally_usable_size(block) : size; /* owned buffers show as raw */
    unsigned i = 0;
    while (i < f->n && f->t[i].type != t)
        i++;
    if (i == f->n) {
        if (f->n == FALLBACK_TYPES + 1) {
            f->other_count++;
            f->other_bytes += bytes;
            return 0;
        }
        f->t[f->n++].type = t;
    }
    f->t[i].count++;
    f->t[i].bytes += bytes;
    return 0;
}

static long report_without_memory(tally_rt *rt, FILE *out)
{
    fallback f;
    memset(&f, 0, sizeof f);
    f.rt = rt;
    f.n = 1; /* entry 0: raw blocks */
    tally_heap_visit(rt, fallback_block, &f);
    size_t nobj = f.other_count, objbytes = f.other_bytes;
    for (unsigned i = 1; i < f.n; i++) {
        nobj += f.t[i].count;
        objbytes += f.t[i].bytes;
    }
    print_header(out, nobj, objbytes, f.t[0].count, f.t[0].bytes);
    fprintf(out, "  (incomplete: no memory to group by site; objects counted without the "
                 "buffers they own, which show as raw blocks with the runtime's own tables)\n");
    for (unsigned i = 0; i < f.n; i++)
        if (f.t[i].count > 0)
            fprintf(out, "%12zu %8zu  %s\n", f.t[i].bytes, f.t[i].count,
                    tallyM_type_name(f.t[i].type));
    if (f.other_count > 0)
        fprintf(out, "%12zu %8zu  (other types)\n", f.other_bytes, f.other_count);
    return -1;
}

/* ---- the report ---------------------------------------------------------------------- */

long tally_trace_leaks(tally_rt *rt, FILE *out)
{
    if (rt == NULL || out == NULL) {
        if (rt != NULL)
            tallyB_error_set(&rt->heap.err, TALLY_EINVAL, "tally_trace_leaks: no stream");
        return -1;
    }
    tallyM_census c;
    if (tallyM_census_take(rt, &c) != 0)
        return report_without_memory(rt, out);
    size_t m = 0;
    for (size_t i = 0; i < c.n; i++)
        m += is_leak(&c.cells[i]);
    if (m == 0) {
        tallyM_census_free(rt, &c);
        fprintf(out, "Tally leak report: nothing left alive (immortal objects aside)\n");
        return 0;
    }
    leak_group *g = tallyH_malloc_quiet(&rt->heap, m * sizeof *g);
    if (g == NULL) {
        tallyM_census_free(rt, &c);
        tallyB_error_set(&rt->heap.err, TALLY_ENOMEM, "no memory for the leak report");
        return report_without_memory(rt, out);
    }
    size_t k = 0, nobj = 0, objbytes = 0, nraw = 0, rawbytes = 0;
    for (size_t i = 0; i < c.n; i++) {
        const tallyM_cell *cell = &c.cells[i];
        if (!is_leak(cell))
            continue;
        leak_group e = {cell->type, NULL, 0, 1, 0, 0};
        e.bytes = cell->obj ? tally_sizeof(cell->obj) : cell->size;
        if (!tallyM_cell_site(rt, cell, &e.file, &e.line))
            e.file = NULL;
        if (cell->obj) {
            nobj++;
            objbytes += e.bytes;
        } else {
            nraw++;
            rawbytes += e.bytes;
        }
        g[k++] = e;
    }
    tallyM_census_free(rt, &c);

    qsort(g, k, sizeof *g, cmp_key);
    size_t ng = 0;
    for (size_t i = 0; i < k; i++) {
        if (ng > 0 && cmp_key(&g[ng - 1], &g[i]) == 0) {
            g[ng - 1].count++;
            g[ng - 1].bytes += g[i].bytes;
        } else {
            g[ng++] = g[i];
        }
    }
    /* The groups of one type are adjacent: give each its type's total. */
    for (size_t i = 0; i < ng;) {
        size_t j = i, total = 0;
        while (j < ng && g[j].type == g[i].type)
            total += g[j++].bytes;
        while (i < j)
            g[i++].type_bytes = total;
    }
    qsort(g, ng, sizeof *g, cmp_report);

    print_header(out, nobj, objbytes, nraw, rawbytes);
    for (size_t i = 0; i < ng; i++) {
        if (i == 0 || g[i].type != g[i - 1].type) {
            size_t count = 0;
            for (size_t j = i; j < ng && g[j].type == g[i].type; j++)
                count += g[j].count;
            fprintf(out, "%12zu %8zu  %s\n", g[i].type_bytes, count, tallyM_type_name(g[i].type));
        }
        if (g[i].file != NULL)
            fprintf(out, "%12zu %8zu      %s:%d\n", g[i].bytes, g[i].count, g[i].file, g[i].line);
        else
            fprintf(out, "%12zu %8zu      site unknown (not traced)\n", g[i].bytes, g[i].count);
    }
    tallyH_free_quiet(&rt->heap, g);
    return (long)(nobj + nraw);
}

void tallyM_leaks_at_close(tally_rt *rt)
{
    fflush(stdout); /* the report follows what the program printed */
    tally_trace_leaks(rt, stderr);
    fflush(stderr);
}
