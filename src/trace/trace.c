/* trace.c - the tracer: start and stop, the heap's hooks, current and peak.
 *
 * tally_trace_start installs hooks into the heap (tallyH_tracer, see
 * heap/heap.h).  From then on the heap takes its slow path for every call, and
 * reports:
 *
 *   alloc(p, n, site)       p now holds n requested bytes: a trace {n, site}
 *   free(p)                 p was released: its trace goes, if it had one
 *   resize(p, q, n, site)   p became q (maybe p itself) holding n bytes: the trace
 *                           moves to q with the new size and the realloc's site,
 *                           as tracemalloc does; a block that had no trace gets
 *                           one.  tallyH_resize_nocopy (containers growing in
 *                           place) gives no site (file and caller NULL): a traced
 *                           block keeps its site, an untraced one stays untraced.
 *
 * A small block (nearly every block) is reported with its pool, which is live
 * while the hook runs: its trace is found through the pool's link to its record
 * (on_alloc_small, on_free_small), without a search.  The object layer's free
 * stacks stay in use, and report the blocks they take and hand out the same way,
 * so a traced program keeps the memory behaviour it has untraced.
 *
 * Sizes are the sizes requested, so current is what the program asked for, not
 * what the size classes made of it.  The hooks run inside the heap's slow path
 * after the block is consistent; they allocate only through tallyH_malloc_quiet
 * (no hook, no collection, no user code), so they never re-enter.  A hook whose
 * tables cannot grow leaves the block untraced and counts it (untraced): current
 * then stays the sum of the traces it has.
 *
 * Threads: the state is the runtime's, used by one thread at a time like the rest
 * of the runtime; nothing is global.  The unwinder (backtrace() unless the
 * program set another) is warmed up at start, once per start with nframes > 1
 * (backtrace()'s first call in a process loads libgcc_s, which may call malloc;
 * later calls allocate nothing).
 */
#include "trace/trace.h"

#include <execinfo.h>
#include <string.h>

#include "runtime/runtime.h"

static tally_rt *rt_of_arg(void *arg)
{
    return arg;
}

static void add_current(tallyM_state *s, size_t n)
{
    s->current += n;
    if (s->current > s->peak)
        s->peak = s->current;
}

/* Records block p of n bytes at site; counts it untraced if that fails.  Any
 * stale trace at p is replaced (no path frees a traced block unseen, but the
 * figures must stay exact even so). */
static void record(tallyH_heap *h, tallyM_state *s, uintptr_t p, size_t n, uint32_t site)
{
    size_t replaced = 0;
    if (site != TALLY_SITE_NONE && tallyM_put(h, s, p, n, site, &replaced)) {
        s->current -= replaced;
        add_current(s, n);
        return;
    }
    tallyM_ref ref; /* not recorded: a stale trace at p must go too */
    if (tallyM_lookup(h, s, p, &ref)) {
        s->current -= ref.size;
        tallyM_drop(s, &ref);
    }
    s->untraced++;
}

static void on_alloc(void *arg, void *p, size_t n, const char *file, int line, const void *caller)
{
    tally_rt *rt = rt_of_arg(arg);
    tallyM_state *s = &rt->trace;
    uint32_t site = tallyM_site_of(&rt->heap, s, file, line, caller);
    record(&rt->heap, s, (uintptr_t)p, n, site);
}

/* alloc for a small block whose pool the heap hands over live: the slot is
 * found from the pool's link to its record, without a search. */
static void on_alloc_small(void *arg, tallyH_pool *pool, void *p, size_t n, const char *file,
                           int line, const void *caller)
{
    tally_rt *rt = rt_of_arg(arg);
    tallyM_state *s = &rt->trace;
    uint32_t site = tallyM_site_of(&rt->heap, s, file, line, caller);
    tallyM_pooltrace *r = tallyM_rec_of(&rt->heap, pool);
    if (r == NULL && site != TALLY_SITE_NONE)
        r = tallyM_rec_for(&rt->heap, s, pool);
    if (r == NULL || site == TALLY_SITE_NONE) {
        record(&rt->heap, s, (uintptr_t)p, n, site); /* counts it untraced */
        return;
    }
    tallyM_slot *slot = tallyM_slot_of(r, pool, (uintptr_t)p);
    if (slot->site != 0) { /* stale: see record() */
        s->current -= slot->size;
    } else {
        r->count++;
        s->ntraces++;
    }
    slot->size = (uint32_t)n; /* a small block: below 4 GiB */
    slot->site = site + 1;
    add_current(s, n);
}

/* free for a small block, called before the heap gives it back. */
static void on_free_small(void *arg, tallyH_pool *pool, void *p)
{
    tally_rt *rt = rt_of_arg(arg);
    tallyM_pooltrace *r = tallyM_rec_of(&rt->heap, pool);
    if (r == NULL)
        return;
    tallyM_slot *slot = tallyM_slot_of(r, pool, (uintptr_t)p);
    if (slot->site == 0)
        return;
    tallyM_state *s = &rt->trace;
    s->current -= slot->size;
    slot->site = 0;
    slot->size = 0;
    r->count--;
    s->ntraces--;
}

static void on_free(void *arg, void *p)
{
    tally_rt *rt = rt_of_arg(arg);
    tallyM_state *s = &rt->trace;
    tallyM_ref ref;
    if (tallyM_lookup(&rt->heap, s, (uintptr_t)p, &ref)) {
        s->current -= ref.size;
        tallyM_drop(s, &ref);
    }
}

static void on_resize(void *arg, void *p, void *q, size_t n, const char *file, int line,
                      const void *caller)
{
    tally_rt *rt = rt_of_arg(arg);
    tallyM_state *s = &rt->trace;
    tallyM_ref ref;
    bool traced = p == q ? tallyM_lookup_live(&rt->heap, s, (uintptr_t)p, &ref) /* in place */
                         : tallyM_lookup(&rt->heap, s, (uintptr_t)p, &ref); /* p is gone */
    uint32_t site;
    if (file == NULL && caller == NULL) { /* tallyH_resize_nocopy: keeps its site */
        if (!traced)
            return;
        site = ref.site;
    } else {
        site = tallyM_site_of(&rt->heap, s, file, line, caller); /* ref stays valid */
    }
    if (traced) {
        s->current -= ref.size;
        if (p == q && site != TALLY_SITE_NONE) { /* in place: no table changes shape */
            tallyM_set(&ref, n, site);
            add_current(s, n);
            return;
        }
        tallyM_drop(s, &ref);
    }
    record(&rt->heap, s, (uintptr_t)q, n, site);
}

/* ---- the public API ---------------------------------------------------------- */

void tallyM_init(tally_rt *rt)
{
    tally_trace_unwind_fn unwind = rt->trace.unwind; /* a setting, not tracing state */
    memset(&rt->trace, 0, sizeof rt->trace);
    rt->trace.unwind = unwind;
}

/* Lets an unwinder load what it loads on its first call now, not inside an
 * allocation (see the top). */
static void warm_up(tally_trace_unwind_fn unwind)
{
    void *warm[4];
    (void)(unwind ? unwind : backtrace)(warm, 4);
}

void tally_trace_set_unwinder(tally_rt *rt, tally_trace_unwind_fn fn)
{
    warm_up(fn);
    rt->trace.unwind = fn;
}

tally_trace_unwind_fn tally_trace_get_unwinder(tally_rt *rt)
{
    return rt->trace.unwind;
}

int tally_trace_start(tally_rt *rt, int nframes)
{
    tallyM_state *s = &rt->trace;
    if (nframes < 1 || nframes > TALLY_TRACE_MAX_FRAMES) {
        tallyB_error_set(&rt->heap.err, TALLY_EINVAL,
                         "tally_trace_start: nframes must be 1..%d, not %d", TALLY_TRACE_MAX_FRAMES,
                         nframes);
        return -1;
    }
    if (nframes > 1)
        warm_up(s->unwind);
    s->limit = nframes;
    if (s->tracing)
        return 0;
    s->current = s->peak = 0;
    s->untraced = 0;
    s->hooks = (tallyH_tracer){.alloc = on_alloc, .free = on_free, .alloc_small = on_alloc_small,
                               .free_small = on_free_small, .resize = on_resize, .arg = rt};
    s->tracing = true;
    tallyH_set_tracer(&rt->heap, &s->hooks);
    return 0;
}

void tally_trace_stop(tally_rt *rt)
{
    tallyM_state *s = &rt->trace;
    if (!s->tracing)
        return;
    tallyH_set_tracer(&rt->heap, NULL);
    tallyM_table_free(&rt->heap, s);
    tallyM_sites_free(&rt->heap, s);
    tallyM_init(rt);
}

int tally_trace_is_tracing(tally_rt *rt)
{
    return rt->trace.tracing;
}

int tally_trace_get_traceback_limit(tally_rt *rt)
{
    return rt->trace.tracing ? rt->trace.limit : 0;
}

void tally_trace_get_traced_memory(tally_rt *rt, size_t *current, size_t *peak)
{
    const tallyM_state *s = &rt->trace;
    if (current)
        *current = s->current;
    if (peak)
        *peak = s->peak;
}

void tally_trace_reset_peak(tally_rt *rt)
{
    rt->trace.peak = rt->trace.current;
}

static size_t usable(const void *p)
{
    return p ? tally_usable_size(p) : 0;
}

size_t tally_trace_get_overhead(tally_rt *rt)
{
    const tallyM_state *s = &rt->trace;
    return tallyM_table_bytes(s) + usable(s->sites) + usable(s->site_index) + usable(s->frames);
}

void tally_trace_get_stats(tally_rt *rt, tally_trace_stats *out)
{
    const tallyM_state *s = &rt->trace;
    out->current = s->current;
    out->peak = s->peak;
    out->traces = s->ntraces;
    out->sites = s->nsites;
    out->overhead = tally_trace_get_overhead(rt);
    out->untraced = s->untraced;
    out->nframes = tally_trace_get_traceback_limit(rt);
}

int tally_trace_get_traceback(tally_rt *rt, const void *p, tally_trace_site *site, size_t *size,
                              void *frames_out[TALLY_TRACE_MAX_FRAMES])
{
    tallyM_state *s = &rt->trace;
    if (p == NULL || !s->tracing)
        return -1;
    tallyM_ref ref;
    bool found = tallyM_lookup(&rt->heap, s, (uintptr_t)p, &ref);
    if (!found && tally_is_object(rt, p)) /* an object: its block starts before it */
        found = tallyM_lookup(&rt->heap, s, (uintptr_t)p - tally_type_overhead(tally_type_of(p)),
                              &ref);
    if (!found)
        return -1;
    tally_trace_site x;
    tallyM_site_get(s, ref.site, &x);
    if (x.nframes != 0)
        memcpy(frames_out, x.frames, (size_t)x.nframes * sizeof *frames_out);
    x.frames = x.nframes ? frames_out : NULL;
    if (site)
        *site = x;
    if (size)
        *size = ref.size;
    return 0;
}
