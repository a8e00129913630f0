/* snapshot.c - snapshots of the traces, and filters that make new snapshots.
 *
 * A snapshot is one block of the runtime's heap (from tallyH_malloc_quiet, so
 * never traced and usable in a fixed-buffer runtime):
 *
 *   | header | traces: {size, site id} ... | sites ... | frames ... | strings |
 *
 * The sites and frames are copies of the tracer's tables, so a snapshot outlives
 * them (tally_trace_stop, later growth); file names are the __FILE__ literals of
 * the program, which live as long as it does, except in a snapshot loaded from a
 * dump (load.c), whose names lie in its strings section.  A filter copies the
 * traces that pass, every site (ids stay the same; unused sites cost a few bytes
 * and never show in statistics, which start from the traces) and the strings,
 * moving the file pointers that lie in them to its own copy.
 *
 * The layout keeps every section aligned for its type: the header, the traces
 * ({size_t, uint32_t}), the sites (pointer-aligned) and the frames are all
 * multiples of 8 bytes on the platforms Tally runs on; the asserts below hold it.
 */
#include "trace/trace.h"

#include <fnmatch.h>
#include <string.h>

#include "runtime/runtime.h"

_Static_assert(sizeof(struct tally_trace_snapshot) % sizeof(void *) == 0, "aligned sections");
_Static_assert(sizeof(tallyM_strace) % sizeof(void *) == 0, "aligned sections");
_Static_assert(sizeof(tallyM_site) % sizeof(void *) == 0, "aligned sections");

tally_trace_snapshot *tallyM_snap_alloc(tally_rt *rt, size_t ntraces, size_t nsites,
                                        size_t nframes, size_t nstrings)
{
    size_t bytes = sizeof(struct tally_trace_snapshot), part;
    bool overflow = __builtin_mul_overflow(ntraces, sizeof(tallyM_strace), &part) ||
                    __builtin_add_overflow(bytes, part, &bytes) ||
                    __builtin_mul_overflow(nsites, sizeof(tallyM_site), &part) ||
                    __builtin_add_overflow(bytes, part, &bytes) ||
                    __builtin_mul_overflow(nframes, sizeof(void *), &part) ||
                    __builtin_add_overflow(bytes, part, &bytes) ||
                    __builtin_add_overflow(bytes, nstrings, &bytes);
    tally_trace_snapshot *snap = overflow ? NULL : tallyH_malloc_quiet(&rt->heap, bytes);
    if (snap == NULL) {
        tallyB_error_set(&rt->heap.err, TALLY_ENOMEM,
                         "trace snapshot: no memory for %zu traces and %zu sites", ntraces, nsites);
        return NULL;
    }
    snap->rt = rt;
    snap->limit = 0;
    snap->loaded = false;
    snap->sample = 0;
    snap->ntraces = ntraces;
    snap->nsites = nsites;
    snap->nframes = nframes;
    snap->nstrings = nstrings;
    snap->traces = (tallyM_strace *)(void *)(snap + 1);
    snap->sites = (tallyM_site *)(void *)(snap->traces + ntraces);
    snap->frames = (void **)(void *)(snap->sites + nsites);
    snap->strings = (char *)(snap->frames + nframes);
    return snap;
}

static void copy_trace(void *arg, size_t size, uint32_t site, uint32_t domain)
{
    tally_trace_snapshot *snap = arg;
    snap->traces[snap->ntraces++] = (tallyM_strace){size, site, domain};
}

tally_trace_snapshot *tally_trace_take_snapshot(tally_rt *rt)
{
    const tallyM_state *s = &rt->trace;
    if (!s->tracing) {
        tallyB_error_set(&rt->heap.err, TALLY_EINVAL,
                         "tally_trace_take_snapshot: the runtime is not tracing (tally_trace_start)");
        return NULL;
    }
    tally_trace_snapshot *snap = tallyM_snap_alloc(rt, s->ntraces, s->nsites, s->nframes_used, 0);
    if (snap == NULL)
        return NULL;
    snap->limit = s->limit;
    snap->sample = s->sample;
    snap->ntraces = 0;
    tallyM_each(s, copy_trace, snap);
    if (s->nsites)
        memcpy(snap->sites, s->sites, s->nsites * sizeof *s->sites);
    if (s->nframes_used)
        memcpy(snap->frames, s->frames, s->nframes_used * sizeof *s->frames);
    return snap;
}

void tally_trace_snapshot_free(tally_trace_snapshot *snap)
{
    if (snap != NULL)
        tallyH_free_quiet(&snap->rt->heap, snap);
}

void tallyM_snap_site(const tally_trace_snapshot *snap, uint32_t site, tally_trace_site *out)
{
    const tallyM_site *x = &snap->sites[site];
    out->file = x->file ? x->file : TALLY_TRACE_UNKNOWN;
    out->line = x->line;
    out->nframes = (int)x->nframes;
    out->frames = x->nframes ? snap->frames + x->frames : NULL;
}

size_t tally_trace_snapshot_count(const tally_trace_snapshot *snap, size_t *total)
{
    if (total) {
        size_t sum = 0;
        for (size_t i = 0; i < snap->ntraces; i++)
            sum += snap->traces[i].size;
        *total = sum;
    }
    return snap->ntraces;
}

int tally_trace_snapshot_get(const tally_trace_snapshot *snap, size_t i, tally_trace *out)
{
    if (i >= snap->ntraces)
        return -1;
    out->size = snap->traces[i].size;
    tallyM_snap_site(snap, snap->traces[i].site, &out->site);
    out->domain = snap->traces[i].domain;
    return 0;
}

int tally_trace_snapshot_limit(const tally_trace_snapshot *snap)
{
    return snap->limit;
}

/* ---- filters ---------------------------------------------------------------------- */

/* Does filter f match the file and line of site?  (Its domain is checked per
 * trace: a site's traces may lie in several domains.) */
static bool site_matches(const tally_trace_filter *f, const tally_trace_site *site)
{
    if (f->line != 0 && site->line != f->line)
        return false;
    return f->pattern == NULL || fnmatch(f->pattern, site->file, 0) == 0;
}

/* tracemalloc's rule: at least one inclusive filter matches (if there are any),
 * and no exclusive filter does.  at[f] says whether filter f matches the trace's
 * site; the domain is the trace's. */
static bool passes(const tally_trace_filter *filters, size_t n, const uint8_t *at, uint32_t domain)
{
    bool any_inclusive = false, included = false;
    for (size_t i = 0; i < n; i++) {
        bool m = at[i] && (!filters[i].by_domain || filters[i].domain == domain);
        if (filters[i].inclusive) {
            any_inclusive = true;
            included = included || m;
        } else if (m) {
            return false;
        }
    }
    return !any_inclusive || included;
}

/* Copies the strings of src to dst (same size) and points dst's sites, copied from
 * src's, at dst's copy wherever they pointed into src's. */
static void copy_strings(tally_trace_snapshot *dst, const tally_trace_snapshot *src)
{
    if (src->nstrings == 0)
        return;
    memcpy(dst->strings, src->strings, src->nstrings);
    uintptr_t lo = (uintptr_t)src->strings, hi = lo + src->nstrings;
    for (size_t i = 0; i < dst->nsites; i++) {
        uintptr_t f = (uintptr_t)dst->sites[i].file;
        if (f >= lo && f < hi)
            dst->sites[i].file = dst->strings + (f - lo);
    }
}

tally_trace_snapshot *tally_trace_snapshot_filter(const tally_trace_snapshot *snap,
                                                  const tally_trace_filter *filters, size_t n)
{
    tally_rt *rt = snap->rt;
    if (n != 0 && filters == NULL) {
        tallyB_error_set(&rt->heap.err, TALLY_EINVAL, "tally_trace_snapshot_filter: no filters");
        return NULL;
    }
    /* Each filter's verdict on each site's file and line once, in a scratch array
     * of the heap (nsites x n bytes); the domain is a trace's own. */
    size_t cells;
    if (__builtin_mul_overflow(snap->nsites ? snap->nsites : 1, n ? n : 1, &cells)) {
        tallyB_error_set(&rt->heap.err, TALLY_ENOMEM, "tally_trace_snapshot_filter: too many filters");
        return NULL;
    }
    uint8_t *at = tallyH_malloc_quiet(&rt->heap, cells);
    if (at == NULL) {
        tallyB_error_set(&rt->heap.err, TALLY_ENOMEM, "tally_trace_snapshot_filter: no memory");
        return NULL;
    }
    for (size_t i = 0; i < snap->nsites; i++) {
        tally_trace_site site;
        tallyM_snap_site(snap, (uint32_t)i, &site);
        for (size_t f = 0; f < n; f++)
            at[i * n + f] = site_matches(&filters[f], &site);
    }
    size_t kept = 0;
    for (size_t i = 0; i < snap->ntraces; i++) {
        const tallyM_strace *t = &snap->traces[i];
        kept += passes(filters, n, at + (size_t)t->site * n, t->domain);
    }
    tally_trace_snapshot *out =
        tallyM_snap_alloc(rt, kept, snap->nsites, snap->nframes, snap->nstrings);
    if (out != NULL) {
        out->limit = snap->limit;
        out->loaded = snap->loaded;
        out->sample = snap->sample;
        size_t k = 0;
        for (size_t i = 0; i < snap->ntraces; i++) {
            const tallyM_strace *t = &snap->traces[i];
            if (passes(filters, n, at + (size_t)t->site * n, t->domain))
                out->traces[k++] = *t;
        }
        if (snap->nsites)
            memcpy(out->sites, snap->sites, snap->nsites * sizeof *snap->sites);
        if (snap->nframes)
            memcpy(out->frames, snap->frames, snap->nframes * sizeof *snap->frames);
        copy_strings(out, snap);
    }
    tallyH_free_quiet(&rt->heap, at);
    return out;
}
