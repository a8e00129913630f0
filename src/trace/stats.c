/* stats.c - statistics of a snapshot, and the comparison of two snapshots.
 *
 * Grouping (tracemalloc's Snapshot.statistics): every site of the snapshot gets a
 * slot of a result array; one pass over the traces adds each to its site's slot;
 * empty slots are dropped; the rest are sorted by the grouping key (file name by
 * strcmp: the same file may come as different literals from different
 * translation units; then line; then the frames) and equal neighbours merged.
 * That costs O(traces + sites log sites) and one array, with no hash table.
 * Statistics are then sorted by size; a comparison merges the key-sorted groups
 * of two snapshots (a merge join) before sorting by the size difference.
 *
 * A sampled snapshot (snap->sample > 0) is scaled here, trace by trace: a trace
 * of n bytes adds tallyM_sample_bytes(n) to its group's size, the very figure it
 * added to the tracer's current, and tallyM_sample_blocks(n) to its count, which
 * is summed in fixed point (units of 1/TALLY_SAMPLE_UNIT block) and rounded once
 * per site (before sites merge into groups), so that fractional weights do not
 * each round up.  Every weight is at
 * least one block, so a group that has a trace has a count.
 *
 * Result arrays come from the snapshot's runtime's heap (tallyH_malloc_quiet: not
 * traced) and are released with tally_trace_release, which finds the runtime from
 * the block.  Their sites point into the snapshots.
 */
#include "trace/trace.h"

#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h"

static int cmp_frames(const tally_trace_site *a, const tally_trace_site *b)
{
    int n = a->nframes < b->nframes ? a->nframes : b->nframes;
    for (int i = 0; i < n; i++)
        if (a->frames[i] != b->frames[i])
            return (uintptr_t)a->frames[i] < (uintptr_t)b->frames[i] ? -1 : 1;
    return (a->nframes > b->nframes) - (a->nframes < b->nframes);
}

static int cmp_site(const tally_trace_site *a, const tally_trace_site *b)
{
    int c = strcmp(a->file, b->file);
    if (c != 0)
        return c;
    if (a->line != b->line)
        return a->line < b->line ? -1 : 1;
    return cmp_frames(a, b);
}

static int cmp_stat_key(const void *x, const void *y)
{
    return cmp_site(&((const tally_trace_stat *)x)->site, &((const tally_trace_stat *)y)->site);
}

#define DESC(a, b)                    \
    do {                              \
        if ((a) != (b))               \
            return (a) > (b) ? -1 : 1; \
    } while (0)

static int cmp_stat_size(const void *x, const void *y)
{
    const tally_trace_stat *a = x, *b = y;
    DESC(a->size, b->size);
    DESC(a->count, b->count);
    return cmp_site(&a->site, &b->site);
}

static unsigned long long magnitude(long long v)
{
    return v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
}

static int cmp_diff(const void *x, const void *y)
{
    const tally_trace_diff *a = x, *b = y;
    DESC(magnitude(a->size_diff), magnitude(b->size_diff));
    DESC(a->size, b->size);
    DESC(magnitude(a->count_diff), magnitude(b->count_diff));
    DESC(a->count, b->count);
    return cmp_site(&a->site, &b->site);
}

static bool key_valid(tally_rt *rt, tally_trace_key key, const char *fn)
{
    if (key == TALLY_TRACE_BY_LINE || key == TALLY_TRACE_BY_FILE || key == TALLY_TRACE_BY_TRACEBACK)
        return true;
    tallyB_error_set(&rt->heap.err, TALLY_EINVAL, "%s: unknown key %d", fn, (int)key);
    return false;
}

static void *result_alloc(tally_rt *rt, size_t n, size_t size, const char *fn)
{
    size_t bytes;
    void *p = NULL;
    if (!__builtin_mul_overflow(n ? n : 1, size, &bytes))
        p = tallyH_malloc_quiet(&rt->heap, bytes);
    if (p == NULL)
        tallyB_error_set(&rt->heap.err, TALLY_ENOMEM, "%s: no memory for %zu entries", fn, n);
    return p;
}

/* Adds the estimates of snap's traces (sampled) to their sites' slots of g. */
static void scale(const tally_trace_snapshot *snap, tally_trace_stat *g)
{
    for (size_t i = 0; i < snap->ntraces; i++) {
        const tallyM_strace *t = &snap->traces[i];
        g[t->site].count += tallyM_sample_blocks(t->size, snap->sample); /* fixed point */
        g[t->site].size += tallyM_sample_bytes(t->size, snap->sample);
    }
    for (size_t i = 0; i < snap->nsites; i++)
        g[i].count = (g[i].count + TALLY_SAMPLE_UNIT / 2) / TALLY_SAMPLE_UNIT;
}

/* The groups of snap by key, sorted by key: an array of *n entries (average not
 * set), or NULL with the error set. */
static tally_trace_stat *group(const tally_trace_snapshot *snap, tally_trace_key key, size_t *n,
                               const char *fn)
{
    tally_trace_stat *g = result_alloc(snap->rt, snap->nsites, sizeof *g, fn);
    if (g == NULL)
        return NULL;
    for (size_t i = 0; i < snap->nsites; i++) {
        tally_trace_stat *x = &g[i];
        tallyM_snap_site(snap, (uint32_t)i, &x->site);
        if (key != TALLY_TRACE_BY_TRACEBACK) {
            x->site.nframes = 0;
            x->site.frames = NULL;
        }
        if (key == TALLY_TRACE_BY_FILE)
            x->site.line = 0;
        x->count = x->size = x->average = 0;
    }
    if (snap->sample == 0) {
        for (size_t i = 0; i < snap->ntraces; i++) {
            g[snap->traces[i].site].count++;
            g[snap->traces[i].site].size += snap->traces[i].size;
        }
    } else {
        scale(snap, g);
    }
    size_t k = 0;
    for (size_t i = 0; i < snap->nsites; i++)
        if (g[i].count != 0)
            g[k++] = g[i];
    qsort(g, k, sizeof *g, cmp_stat_key);
    size_t m = 0;
    for (size_t i = 0; i < k; i++) {
        if (m != 0 && cmp_site(&g[m - 1].site, &g[i].site) == 0) {
            g[m - 1].count += g[i].count;
            g[m - 1].size += g[i].size;
        } else {
            g[m++] = g[i];
        }
    }
    *n = m;
    return g;
}

tally_trace_stat *tally_trace_statistics(const tally_trace_snapshot *snap, tally_trace_key key,
                                         size_t *n)
{
    static const char fn[] = "tally_trace_statistics";
    size_t m;
    if (!key_valid(snap->rt, key, fn))
        return NULL;
    tally_trace_stat *g = group(snap, key, &m, fn);
    if (g == NULL)
        return NULL;
    for (size_t i = 0; i < m; i++)
        g[i].average = g[i].size / g[i].count;
    qsort(g, m, sizeof *g, cmp_stat_size);
    if (n)
        *n = m;
    return g;
}

static void diff_set(tally_trace_diff *d, const tally_trace_stat *now, const tally_trace_stat *old)
{
    d->site = now ? now->site : old->site;
    d->count = now ? now->count : 0;
    d->size = now ? now->size : 0;
    d->count_diff = (long long)d->count - (long long)(old ? old->count : 0);
    d->size_diff = (long long)d->size - (long long)(old ? old->size : 0);
}

tally_trace_diff *tally_trace_compare(const tally_trace_snapshot *now,
                                      const tally_trace_snapshot *old, tally_trace_key key,
                                      size_t *n)
{
    static const char fn[] = "tally_trace_compare";
    tally_rt *rt = now->rt;
    if (!key_valid(rt, key, fn))
        return NULL;
    size_t na, nb;
    tally_trace_stat *a = group(now, key, &na, fn);
    tally_trace_stat *b = a ? group(old, key, &nb, fn) : NULL;
    tally_trace_diff *d = b ? result_alloc(rt, na + nb, sizeof *d, fn) : NULL;
    size_t m = 0;
    if (d != NULL) {
        size_t i = 0, j = 0;
        while (i < na || j < nb) {
            int c = i == na ? 1 : j == nb ? -1 : cmp_site(&a[i].site, &b[j].site);
            if (c < 0)
                diff_set(&d[m++], &a[i++], NULL);
            else if (c > 0)
                diff_set(&d[m++], NULL, &b[j++]);
            else
                diff_set(&d[m++], &a[i++], &b[j++]);
        }
        qsort(d, m, sizeof *d, cmp_diff);
    }
    if (a)
        tallyH_free_quiet(&rt->heap, a);
    if (b)
        tallyH_free_quiet(&old->rt->heap, b);
    if (d != NULL && n)
        *n = m;
    return d;
}

size_t tally_trace_snapshot_sampling(const tally_trace_snapshot *snap)
{
    return (size_t)snap->sample;
}

void tally_trace_release(void *array)
{
    if (array != NULL)
        tallyH_free_quiet(&tally_runtime_of(array)->heap, array);
}
