/* site.c - allocation sites: (file, line) and, with nframes > 1, the native stack.
 *
 * A site is interned once and named by its index (the id the trace table
 * stores).  The interning table is open addressing over ids (id + 1; 0 empty),
 * keyed by the file pointer (the __FILE__ literal of the call: comparing pointers
 * is enough to intern, statistics compare the strings), the line and the frames.
 *
 * Stacks.  With a traceback limit above 1 the stack is captured with glibc's
 * backtrace() (libgcc's unwinder, reading .eh_frame: no frame pointers needed),
 * or the unwinder the program set (tally_trace_set_unwinder: libunwind's
 * unw_backtrace, or a frame-pointer walk where the program has frame pointers).
 * The first frames are the tracer's and the heap's own; they are skipped up to
 * the return address the public allocation call saw (__builtin_return_address in
 * tally_malloc_at and friends, passed down as `caller`), so a stack starts at the
 * call site itself: frames[0] is the return address into the function that called
 * the allocator, at the line the site records.  Since the first frame is the call
 * site, a stack determines its site, and stacks are deduplicated by interning
 * sites with their frames.  backtrace() loads libgcc_s on its first call, which
 * may call malloc; tally_trace_start makes that first call (trace.c).
 *
 * Allocation failure of these tables returns TALLY_SITE_NONE; what was interned
 * before stays valid.
 */
#include "trace/trace.h"

#include <execinfo.h>
#include <string.h>

/* Frames of the tracer and the heap above the call site, at most (the search for
 * the caller's return address looks this far). */
#define SKIP_MAX 24

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
    return h * 0xBF58476D1CE4E5B9ull;
}

static uint64_t site_hash(const char *file, int line, void *const *frames, uint32_t n)
{
    uint64_t h = mix((uint64_t)(uintptr_t)file, (uint64_t)(unsigned)line);
    for (uint32_t i = 0; i < n; i++)
        h = mix(h, (uint64_t)(uintptr_t)frames[i]);
    return h ^ (h >> 29);
}

static bool site_equal(const tallyM_state *s, const tallyM_site *x, const char *file, int line,
                       void *const *frames, uint32_t n)
{
    return x->file == file && x->line == line && x->nframes == n &&
           (n == 0 || memcmp(s->frames + x->frames, frames, n * sizeof *frames) == 0);
}

/* buf (elements of `size` bytes, *cap of them) with room for `need`: buf itself,
 * or a larger copy (buf is then freed), or NULL if the heap has no block for it
 * (buf is kept). */
static void *ensure(tallyH_heap *h, void *buf, size_t *cap, size_t need, size_t size, size_t min)
{
    if (need <= *cap)
        return buf;
    size_t ncap = *cap ? *cap : min;
    while (ncap < need)
        ncap *= 2;
    if (ncap > SIZE_MAX / size)
        return NULL;
    void *b = tallyH_malloc_quiet(h, ncap * size);
    if (b == NULL)
        return NULL;
    if (*cap)
        memcpy(b, buf, *cap * size);
    tallyH_free_quiet(h, buf);
    *cap = ncap;
    return b;
}

/* Rebuilds the interning table with room for twice the sites. */
static bool index_grow(tallyH_heap *h, tallyM_state *s)
{
    uint32_t cap = s->site_index_cap ? s->site_index_cap * 2 : 64;
    if (cap == 0 || cap > UINT32_MAX / 2)
        return false;
    uint32_t *t = tallyH_malloc_quiet(h, (size_t)cap * sizeof *t);
    if (t == NULL)
        return false;
    memset(t, 0, (size_t)cap * sizeof *t);
    for (uint32_t id = 0; id < s->nsites; id++) {
        uint32_t i = (uint32_t)s->sites[id].hash & (cap - 1);
        while (t[i] != 0)
            i = (i + 1) & (cap - 1);
        t[i] = id + 1;
    }
    tallyH_free_quiet(h, s->site_index);
    s->site_index = t;
    s->site_index_cap = cap;
    return true;
}

static uint32_t intern(tallyH_heap *h, tallyM_state *s, const char *file, int line,
                       void *const *frames, uint32_t n)
{
    uint64_t hash = site_hash(file, line, frames, n);
    if (s->site_index != NULL) {
        uint32_t mask = s->site_index_cap - 1;
        for (uint32_t i = (uint32_t)hash & mask; s->site_index[i] != 0; i = (i + 1) & mask) {
            uint32_t id = s->site_index[i] - 1;
            if (s->sites[id].hash == hash && site_equal(s, &s->sites[id], file, line, frames, n))
                return id;
        }
    }
    /* A new site: room in every table first, so that a failure changes nothing. */
    if (s->nsites >= UINT32_MAX - 1)
        return TALLY_SITE_NONE;
    if ((s->nsites + 1) * 2 > s->site_index_cap && !index_grow(h, s))
        return TALLY_SITE_NONE;
    size_t cap = s->sites_cap;
    tallyM_site *sites = ensure(h, s->sites, &cap, (size_t)s->nsites + 1, sizeof *sites, 32);
    if (sites == NULL)
        return TALLY_SITE_NONE;
    s->sites = sites;
    s->sites_cap = (uint32_t)cap;
    if (n != 0) {
        void **all = ensure(h, s->frames, &s->frames_cap, s->nframes_used + n, sizeof *all, 256);
        if (all == NULL)
            return TALLY_SITE_NONE;
        s->frames = all;
    }
    uint32_t id = s->nsites++;
    tallyM_site *x = &s->sites[id];
    *x = (tallyM_site){file, line, n, s->nframes_used, hash};
    if (n != 0) {
        memcpy(s->frames + s->nframes_used, frames, n * sizeof *frames);
        s->nframes_used += n;
    }
    uint32_t mask = s->site_index_cap - 1, i = (uint32_t)hash & mask;
    while (s->site_index[i] != 0)
        i = (i + 1) & mask;
    s->site_index[i] = id + 1;
    return id;
}

/* Captures the native stack from the call site on (see the top of the file);
 * returns the number of frames stored in out (at most limit). */
static TALLY_NOINLINE uint32_t capture(tally_trace_unwind_fn unwind, int limit,
                                       const void *caller, void **out)
{
    void *buf[TALLY_TRACE_MAX_FRAMES + SKIP_MAX] = {0}; /* what an unwinder claims but
                                                           leaves unwritten reads as 0 */
    int max = limit + SKIP_MAX;
    int n = (unwind ? unwind : backtrace)(buf, max);
    n = n < 0 ? 0 : n > max ? max : n; /* a foreign unwinder is not trusted */
    int from = 0;
    while (from < n && from < SKIP_MAX && buf[from] != caller)
        from++;
    if (from == n || from == SKIP_MAX)
        from = 0; /* caller not found (an unusual unwind): keep everything */
    int k = n - from < limit ? n - from : limit;
    memcpy(out, buf + from, (size_t)k * sizeof *out);
    return (uint32_t)k;
}

/* The site of a call with its native stack (kept out of tallyM_site_of, whose
 * one-frame path then needs no stack frame of its own). */
static TALLY_NOINLINE uint32_t site_with_stack(tallyH_heap *h, tallyM_state *s, const char *file,
                                               int line, const void *caller)
{
    void *frames[TALLY_TRACE_MAX_FRAMES];
    uint32_t n = capture(s->unwind, s->limit, caller, frames);
    return intern(h, s, file, line, frames, n);
}

uint32_t tallyM_site_miss(tallyH_heap *h, tallyM_state *s, const char *file, int line,
                          const void *caller)
{
    if (s->limit > 1)
        return site_with_stack(h, s, file, line, caller);
    uint32_t id = intern(h, s, file, line, NULL, 0);
    if (id != TALLY_SITE_NONE) { /* the new site takes the first way, pushing its entry on */
        unsigned k = tallyM_recent_set(file, line);
        s->recent[k | 1] = s->recent[k];
        s->recent[k].file = file;
        s->recent[k].line = line;
        s->recent[k].id = id + 1;
    }
    return id;
}

void tallyM_site_get(const tallyM_state *s, uint32_t id, tally_trace_site *out)
{
    const tallyM_site *x = &s->sites[id];
    out->file = x->file ? x->file : TALLY_TRACE_UNKNOWN;
    out->line = x->line;
    out->nframes = (int)x->nframes;
    out->frames = x->nframes ? s->frames + x->frames : NULL;
}

void tallyM_sites_free(tallyH_heap *h, tallyM_state *s)
{
    tallyH_free_quiet(h, s->sites);
    tallyH_free_quiet(h, s->site_index);
    tallyH_free_quiet(h, s->frames);
    s->sites = NULL;
    s->site_index = NULL;
    s->frames = NULL;
    s->nsites = s->sites_cap = s->site_index_cap = 0;
    s->nframes_used = s->frames_cap = 0;
    memset(s->recent, 0, sizeof s->recent);
}
