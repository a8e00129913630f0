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
 * Sampling (tally_trace_start_sampled; sample.c has the process and the weights):
 * every hook that hands out a block asks `sampled` first, a comparison and a
 * subtraction; a block not sampled gets no site and no table work, and a block
 * that had a trace loses it (a realloc is an allocation of its new size).  current
 * counts each trace's weighed size (tallyM_sample_bytes, the size itself when not
 * sampling), recomputed from the trace's exact size when it goes: a function of
 * that size and of the mean, which is fixed while traces exist (a new mean
 * forgets them), so a free takes off exactly what the allocation added.
 *
 * Most frees under sampling are of blocks without a trace, and looking in the
 * trace table reads the cache of recent records and a record (cache misses, 9% of
 * the sampled run of bench/trace_bench.c).  A filter rejects most of them with one
 * load from a small array in the state: counters of traces per bucket, the bucket
 * a hash of the block's pool number (p >> TALLY_POOL_SHIFT: the blocks of a pool
 * share one), counted up when a trace is made and down when it goes.  A zero
 * counter proves that p has no trace.  A counter that reaches UINT16_MAX stays
 * there (it only stops filtering).  The filter is kept only while sampling (with
 * every block traced it would reject nothing) and emptied with the traces.
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

/* The bytes a trace of n bytes counts for in current. */
static size_t weigh(const tallyM_state *s, size_t n)
{
    return s->sample ? tallyM_sample_bytes(n, s->sample) : n;
}

static void add_current(tallyM_state *s, size_t n)
{
    s->current += weigh(s, n);
    if (s->current > s->peak)
        s->peak = s->current;
}

static void sub_current(tallyM_state *s, size_t n)
{
    s->current -= weigh(s, n);
}

/* Whether a block of n bytes handed out now is recorded (sample.c): always when
 * not sampling and for blocks of the mean or more, else when n reaches the end of
 * the countdown, which the others shorten. */
static inline bool sampled(tallyM_state *s, size_t n)
{
    if (s->sample == 0 || n >= s->sample)
        return true;
    if (n < s->countdown) {
        s->countdown -= n;
        return false;
    }
    tallyM_sample_draw(s);
    return true;
}

static uint16_t *bucket(tallyM_state *s, uintptr_t p)
{
    uint64_t x = (uint64_t)(p >> TALLY_POOL_SHIFT) * 0x9E3779B97F4A7C15ull;
    return &s->filter[x >> (64 - TALLY_TRACE_FILTER_BITS)];
}

/* False when p surely has no trace (see the top); true when it may. */
static bool may_be_traced(tallyM_state *s, uintptr_t p)
{
    return s->ntraces != 0 && (s->sample == 0 || *bucket(s, p) != 0);
}

static void filter_add(tallyM_state *s, uintptr_t p)
{
    if (s->sample == 0) /* not kept: no hash */
        return;
    uint16_t *c = bucket(s, p);
    if (*c != UINT16_MAX)
        ++*c;
}

static void filter_sub(tallyM_state *s, uintptr_t p)
{
    if (s->sample == 0)
        return;
    uint16_t *c = bucket(s, p);
    if (*c != UINT16_MAX)
        --*c;
}

/* Removes the trace ref found for p. */
static void drop(tallyM_state *s, uintptr_t p, const tallyM_ref *ref)
{
    sub_current(s, ref->size);
    tallyM_drop(s, ref);
    filter_sub(s, p);
}

/* Drops the trace of p, if it has one. */
static void forget(tallyH_heap *h, tallyM_state *s, uintptr_t p)
{
    tallyM_ref ref;
    if (may_be_traced(s, p) && tallyM_lookup(h, s, p, &ref))
        drop(s, p, &ref);
}

/* Records block p of n bytes at site; counts it untraced if that fails.  Any
 * stale trace at p is replaced (no path frees a traced block unseen, but the
 * figures must stay exact even so). */
static void record(tallyH_heap *h, tallyM_state *s, uintptr_t p, size_t n, uint32_t site)
{
    size_t replaced = 0, before = s->ntraces;
    if (site != TALLY_SITE_NONE && tallyM_put(h, s, p, n, site, &replaced)) {
        sub_current(s, replaced);
        add_current(s, n);
        if (s->ntraces != before)
            filter_add(s, p);
        return;
    }
    forget(h, s, p); /* not recorded: a stale trace at p must go too */
    s->untraced++;
}

/* alloc for every block, and for a small one whose pool the heap hands over
 * live when on_alloc_small's common case does not hold (sampling, native stacks,
 * a site not in the cache, a pool not yet linked to its record, a stale trace):
 * out of line, so that on_alloc_small needs no stack frame. */
static TALLY_NOINLINE void on_alloc(void *arg, void *p, size_t n, const char *file, int line,
                                    const void *caller)
{
    tally_rt *rt = rt_of_arg(arg);
    tallyM_state *s = &rt->trace;
    if (!sampled(s, n))
        return; /* a block just handed out has no trace to drop */
    uint32_t site = tallyM_site_of(&rt->heap, s, file, line, caller);
    record(&rt->heap, s, (uintptr_t)p, n, site);
}

/* The common case of a small allocation: every block traced (no sampling), one
 * frame, a site in the cache, the pool linked to its record (the slot is found
 * in two loads, no search) and the slot free.  It makes no call, so it needs no
 * stack frame; anything else goes to on_alloc. */
static void on_alloc_small(void *arg, tallyH_pool *pool, void *p, size_t n, const char *file,
                           int line, const void *caller)
{
    tally_rt *rt = rt_of_arg(arg);
    tallyM_state *s = &rt->trace;
    uint32_t site = 0; /* id + 1 */
    if (s->sample == 0 && s->limit <= 1 && pool->aux != 0)
        site = tallyM_site_cached(s, file, line);
    tallyM_pooltrace *r = site != 0 ? tallyM_rec_of(&rt->heap, pool) : NULL;
    tallyM_slot *slot = r != NULL ? tallyM_slot_of(r, pool, (uintptr_t)p) : NULL;
    if (slot == NULL || slot->site != 0) {
        on_alloc(arg, p, n, file, line, caller);
        return;
    }
    tallyM_slot_fill(s, r, slot, n, site - 1);
    add_current(s, n); /* not sampling: weighs n */
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
    sub_current(s, slot->size);
    filter_sub(s, (uintptr_t)p);
    tallyM_slot_clear(s, r, slot);
}

static void on_free(void *arg, void *p)
{
    tally_rt *rt = rt_of_arg(arg);
    forget(&rt->heap, &rt->trace, (uintptr_t)p);
}

static void on_resize(void *arg, void *p, void *q, size_t n, const char *file, int line,
                      const void *caller)
{
    tally_rt *rt = rt_of_arg(arg);
    tallyM_state *s = &rt->trace;
    if (!sampled(s, n)) {
        forget(&rt->heap, s, (uintptr_t)p);
        return;
    }
    tallyM_ref ref;
    bool traced = may_be_traced(s, (uintptr_t)p) &&
                  (p == q ? tallyM_lookup_live(&rt->heap, s, (uintptr_t)p, &ref) /* in place */
                          : tallyM_lookup(&rt->heap, s, (uintptr_t)p, &ref)); /* p is gone */
    uint32_t site;
    if (file == NULL && caller == NULL) { /* tallyH_resize_nocopy: keeps its site */
        if (traced)
            site = ref.site;
        else if (s->sample == 0)
            return; /* not traced before tracing started: stays so */
        else        /* sampled now, with no site to tell: "<unknown>" */
            site = tallyM_site_of(&rt->heap, s, NULL, 0, NULL);
    } else {
        site = tallyM_site_of(&rt->heap, s, file, line, caller); /* ref stays valid */
    }
    if (traced) {
        if (p == q && site != TALLY_SITE_NONE) { /* in place: no table changes shape */
            sub_current(s, ref.size);
            tallyM_set(&ref, n, site);
            add_current(s, n);
            return;
        }
        drop(s, (uintptr_t)p, &ref);
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

static bool start_args_valid(tally_rt *rt, int nframes, size_t mean, const char *fn)
{
    if (nframes < 1 || nframes > TALLY_TRACE_MAX_FRAMES) {
        tallyB_error_set(&rt->heap.err, TALLY_EINVAL, "%s: nframes must be 1..%d, not %d", fn,
                         TALLY_TRACE_MAX_FRAMES, nframes);
        return false;
    }
    if (mean > TALLY_TRACE_MAX_SAMPLE) {
        tallyB_error_set(&rt->heap.err, TALLY_EINVAL,
                         "%s: the sampling mean must be 0..%zu bytes, not %zu", fn,
                         (size_t)TALLY_TRACE_MAX_SAMPLE, mean);
        return false;
    }
    return true;
}

/* Forgets every trace and site and restarts the figures (tracing goes on). */
static void forget_all(tally_rt *rt)
{
    tallyM_state *s = &rt->trace;
    const tallyH_tracer *installed = rt->heap.tracer;
    tallyH_set_tracer(&rt->heap, NULL); /* clears the pools' links to the records */
    tallyM_table_free(&rt->heap, s);
    tallyM_sites_free(&rt->heap, s);
    s->current = s->peak = 0;
    s->untraced = 0;
    memset(s->filter, 0, sizeof s->filter);
    tallyH_set_tracer(&rt->heap, installed);
}

static int start(tally_rt *rt, int nframes, size_t mean, const char *fn)
{
    tallyM_state *s = &rt->trace;
    if (!start_args_valid(rt, nframes, mean, fn))
        return -1;
    if (nframes > 1)
        warm_up(s->unwind);
    if (s->tracing && s->sample != mean)
        forget_all(rt); /* their weights belong to the old mean */
    s->limit = nframes;
    s->sample = mean;
    if (mean != 0)
        tallyM_sample_draw(s);
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

int tally_trace_start(tally_rt *rt, int nframes)
{
    return start(rt, nframes, 0, "tally_trace_start");
}

int tally_trace_start_sampled(tally_rt *rt, int nframes, size_t mean_bytes)
{
    return start(rt, nframes, mean_bytes, "tally_trace_start_sampled");
}

size_t tally_trace_get_sampling(tally_rt *rt)
{
    return rt->trace.tracing ? (size_t)rt->trace.sample : 0;
}

void tally_trace_seed(tally_rt *rt, uint64_t seed)
{
    tallyM_state *s = &rt->trace;
    tallyM_sample_seed(s, seed);
    if (s->tracing && s->sample != 0)
        tallyM_sample_draw(s);
}

void tally_trace_stop(tally_rt *rt)
{
    tallyM_state *s = &rt->trace;
    if (!s->tracing)
        return;
    tallyH_set_tracer(&rt->heap, NULL);
    forget_all(rt);
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
    out->sample = tally_trace_get_sampling(rt);
}

/* ---- domains --------------------------------------------------------------------- */

/* Drops the trace of (ptr, domain), if any. */
static void untrack_one(tallyM_state *s, unsigned domain, uintptr_t ptr)
{
    tallyM_ref ref;
    if (tallyM_lookup_domain(s, ptr, domain, &ref)) {
        sub_current(s, ref.size);
        tallyM_drop(s, &ref);
    }
}

static int track(tally_rt *rt, unsigned domain, uintptr_t ptr, size_t size, const char *file,
                 int line, const void *caller)
{
    tallyM_state *s = &rt->trace;
    if (!s->tracing)
        return -2;
    if (domain == 0 || ptr == 0) {
        tallyB_error_set(&rt->heap.err, TALLY_EINVAL,
                         "tally_trace_track: %s 0 is not a block of a domain of the program's",
                         domain == 0 ? "domain" : "address");
        return -1;
    }
    if (!sampled(s, size)) { /* a new size, not sampled this time: the old trace goes */
        untrack_one(s, domain, ptr);
        return 0;
    }
    uint32_t site = tallyM_site_of(&rt->heap, s, file, line, caller);
    size_t replaced = 0;
    if (site == TALLY_SITE_NONE ||
        !tallyM_put_domain(&rt->heap, s, ptr, domain, size, site, &replaced)) {
        tallyB_error_set(&rt->heap.err, TALLY_ENOMEM,
                         "tally_trace_track: no memory for the trace of %#lx in domain %u",
                         (unsigned long)ptr, domain);
        return -1;
    }
    sub_current(s, replaced);
    add_current(s, size);
    return 0;
}

int tally_trace_track_at(tally_rt *rt, unsigned domain, uintptr_t ptr, size_t size,
                         const char *file, int line)
{
    return track(rt, domain, ptr, size, file, line, __builtin_return_address(0));
}

int (tally_trace_track)(tally_rt *rt, unsigned domain, uintptr_t ptr, size_t size)
{
    return track(rt, domain, ptr, size, NULL, 0, __builtin_return_address(0));
}

int tally_trace_untrack(tally_rt *rt, unsigned domain, uintptr_t ptr)
{
    tallyM_state *s = &rt->trace;
    if (!s->tracing)
        return -2;
    if (domain == 0) {
        tallyB_error_set(&rt->heap.err, TALLY_EINVAL,
                         "tally_trace_untrack: domain 0 is the heap's (tally_free untraces)");
        return -1;
    }
    untrack_one(s, domain, ptr);
    return 0;
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
