/* trace.h - internal state of the allocation tracer (layer 5, above the types).
 *
 * The tracer installs hooks into the heap (tallyH_tracer): while they are
 * installed every allocation call takes the heap's slow path, which reports
 * each block handed out, released or resized.  The tracer keeps:
 *
 *   traces  which live blocks are traced, with {requested size, site id}: for
 *           small blocks a record per pool with a slot per block (found by the
 *           block's index: no hashing, and neighbouring blocks share cache
 *           lines), for large ones a hash table by address (table.c).  Holds
 *           exactly the live blocks allocated (or resized) while tracing.
 *   sites   site id -> {file, line, native frames}: an array indexed by id,
 *           interned through an open-addressing table keyed by (file pointer,
 *           line, frames).  With nframes > 1 the frames start at the call site's
 *           own return address, so a site is its stack: the stack table and the
 *           site table are one.  Sites are never removed while tracing
 *           (tracemalloc keeps its tracebacks the same way).
 *   frames  the frames of all sites, one array; a site names its run by offset.
 *
 * Every table is a block of the runtime's heap from tallyH_malloc_quiet, which
 * runs no hook: the tracer never traces itself and never re-enters.  A table that
 * cannot grow costs a trace, never the user's allocation: the block is counted in
 * `untraced` instead.  Invariant: current == sum of the traced sizes, each weighed
 * by tallyM_sample_bytes (the size itself when not sampling).
 */
#ifndef TALLY_TRACE_INTERNAL_H
#define TALLY_TRACE_INTERNAL_H

#include <stdbool.h>

#include "base/base.h"
#include "heap/heap.h"
#include "tally/trace.h"

/* One traced large block (hash table).  addr 0 marks an empty slot. */
typedef struct tallyM_entry {
    uintptr_t addr;          /* the block's address (the user pointer) */
    size_t size;             /* bytes requested */
    uint32_t site;           /* index into sites */
    uint32_t domain;         /* 0: a block of the heap; else tally_trace_track's */
} tallyM_entry;

/* One small block's slot in its pool's record.  site 0: not traced. */
typedef struct tallyM_slot {
    uint32_t size;           /* bytes requested (a small block is below 4 GiB) */
    uint32_t site;           /* site id + 1 */
} tallyM_slot;

/* The traces of one small pool, with the pool's geometry when it was made. */
typedef struct tallyM_pooltrace {
    uintptr_t pool;          /* the pool header's address (the key) */
    uintptr_t data;          /* its first block */
    uint32_t bsize;          /* block size */
    uint32_t inv;            /* reciprocal of bsize (tallyH_div) */
    uint32_t cap;            /* blocks, and slots below */
    uint32_t count;          /* slots in use */
    tallyM_slot slot[];
} tallyM_pooltrace;

/* One allocation site.  file NULL means unknown (plain functions). */
typedef struct tallyM_site {
    const char *file;
    int line;
    uint32_t nframes;        /* native frames (0 with a traceback limit of 1) */
    size_t frames;           /* offset of the first one in the frames array */
    uint64_t hash;
} tallyM_site;

/* An entry of the table of pool records (rec NULL: empty). */
typedef struct tallyM_poolref {
    uintptr_t pool;
    tallyM_pooltrace *rec;
} tallyM_poolref;

/* Entries of the caches of recent sites and pool records (powers of two).  A
 * program allocates from a few dozen hot lines at a time (the library's own
 * lines among them): the site cache holds them all. */
#define TALLY_TRACE_RECENT 16
#define TALLY_TRACE_RECENT_SITES 64
/* Buckets of the filter of sampled traces (log2, and the count). */
#define TALLY_TRACE_FILTER_BITS 10
#define TALLY_TRACE_FILTER (1u << TALLY_TRACE_FILTER_BITS)

typedef struct tallyM_state {
    tallyH_tracer hooks;     /* what the heap calls; arg is the runtime */
    bool tracing;
    int limit;               /* traceback limit (nframes) */
    tally_trace_unwind_fn unwind; /* the unwinder for limit > 1; NULL: backtrace().
                                     Kept across stop and start. */
    uint64_t sample;         /* sampling: mean bytes between recorded allocations;
                                0 records every allocation */
    uint64_t countdown;      /* sampling: bytes until the next recorded allocation */
    uint64_t rng;            /* sampling: the generator's state (sample.c) */
    bool seeded;             /* rng was seeded (tally_trace_seed, or at the first draw) */
    uint16_t filter[TALLY_TRACE_FILTER]; /* sampling: traces per bucket of pools (trace.c);
                                            0 proves a block untraced; UINT16_MAX sticks */
    size_t current;          /* bytes requested by traced live blocks, each weighed
                                by tallyM_sample_bytes (exact when not sampling) */
    size_t peak;             /* high-water mark of current */
    unsigned long long untraced; /* blocks left untraced (tables could not grow) */

    size_t ntraces;          /* traced blocks: slots in use + large entries */
    tallyM_poolref *pools;   /* records by pool address; power-of-two capacity */
    size_t pools_cap;
    size_t npools;
    tallyM_pooltrace *recent_pools[TALLY_TRACE_RECENT]; /* records found lately, by pool */
    size_t pool_bytes;       /* usable bytes of the records */
    tallyM_entry *traces;    /* large blocks; power-of-two capacity, or NULL */
    size_t traces_cap;
    size_t nlarge;

    tallyM_site *sites;      /* by id */
    uint32_t nsites;
    uint32_t sites_cap;
    uint32_t *site_index;    /* id + 1 by hash, 0 empty; power-of-two capacity */
    uint32_t site_index_cap;
    struct {                 /* nframes 1: sites found lately, by (file, line) hash */
        const char *file;
        int line;
        uint32_t id;
    } recent[TALLY_TRACE_RECENT_SITES];

    void **frames;           /* frames of all sites */
    size_t nframes_used;
    size_t frames_cap;
} tallyM_state;

struct tally_rt;
TALLY_INTERNAL void tallyM_init(struct tally_rt *rt);

/* ---- table.c: the trace table ------------------------------------------------- */
/* A trace found: where it lives and what it says. */
typedef struct tallyM_ref {
    tallyM_pooltrace *rec;   /* small block: its record and slot */
    tallyM_slot *slot;
    tallyM_entry *entry;     /* large block: its hash entry */
    size_t size;
    uint32_t site;
} tallyM_ref;
/* The trace of block p (a user pointer), found without reading p's pool (it may
 * be gone); false if p is not traced. */
TALLY_INTERNAL bool tallyM_lookup(const tallyH_heap *h, tallyM_state *s, uintptr_t p,
                                  tallyM_ref *ref);
/* The same for p, a live block: its pool is read, and its link followed. */
TALLY_INTERNAL bool tallyM_lookup_live(const tallyH_heap *h, tallyM_state *s, uintptr_t p,
                                       tallyM_ref *ref);
/* Removes a trace found by tallyM_lookup. */
TALLY_INTERNAL void tallyM_drop(tallyM_state *s, const tallyM_ref *ref);
/* Changes a trace found by tallyM_lookup (no table changes shape). */
TALLY_INTERNAL void tallyM_set(const tallyM_ref *ref, size_t size, uint32_t site);
/* Traces live block p (its pool is read); *replaced is the size of a trace p had
 * already (else 0).  False if the tables could not make room (p had no trace). */
TALLY_INTERNAL bool tallyM_put(tallyH_heap *h, tallyM_state *s, uintptr_t p, size_t size,
                               uint32_t site, size_t *replaced);
/* The record for live small pool p, made or remade when needed and linked from
 * p->aux; NULL when there is no memory for it. */
TALLY_INTERNAL tallyM_pooltrace *tallyM_rec_for(tallyH_heap *h, tallyM_state *s, tallyH_pool *p);
/* The record linked from live small pool p, or NULL: p holds no trace. */
TALLY_INLINE tallyM_pooltrace *tallyM_rec_of(const tallyH_heap *h, const tallyH_pool *p)
{
    return p->aux ? (tallyM_pooltrace *)tallyH_at(h, p->aux) : NULL;
}
/* Fills free slot of record r with a trace of size bytes at site id. */
TALLY_INLINE void tallyM_slot_fill(tallyM_state *s, tallyM_pooltrace *r, tallyM_slot *slot,
                                   size_t size, uint32_t site)
{
    slot->size = (uint32_t)size; /* a small block: below 4 GiB */
    slot->site = site + 1;
    r->count++;
    s->ntraces++;
}
/* Empties slot of record r: its trace goes. */
TALLY_INLINE void tallyM_slot_clear(tallyM_state *s, tallyM_pooltrace *r, tallyM_slot *slot)
{
    slot->site = 0;
    slot->size = 0;
    r->count--;
    s->ntraces--;
}
/* The slot of block b of live small pool p in p's record r. */
TALLY_INLINE tallyM_slot *tallyM_slot_of(tallyM_pooltrace *r, const tallyH_pool *p, uintptr_t b)
{
    return &r->slot[tallyH_div((uint32_t)(b - (uintptr_t)p->data), p->inv)];
}
typedef void (*tallyM_visit_fn)(void *arg, size_t size, uint32_t site, uint32_t domain);
/* The trace of (p, domain) tracked with tally_trace_track (domain > 0); false if
 * there is none. */
TALLY_INTERNAL bool tallyM_lookup_domain(tallyM_state *s, uintptr_t p, uint32_t domain,
                                         tallyM_ref *ref);
/* Traces (p, domain) (domain > 0) with size and site; *replaced is the size of the
 * trace it had (else 0).  False if the table could not make room (nothing changed). */
TALLY_INTERNAL bool tallyM_put_domain(tallyH_heap *h, tallyM_state *s, uintptr_t p,
                                      uint32_t domain, size_t size, uint32_t site,
                                      size_t *replaced);
/* Calls fn for every trace. */
TALLY_INTERNAL void tallyM_each(const tallyM_state *s, tallyM_visit_fn fn, void *arg);
/* Usable bytes of the trace table's blocks. */
TALLY_INTERNAL size_t tallyM_table_bytes(const tallyM_state *s);
TALLY_INTERNAL void tallyM_table_free(tallyH_heap *h, tallyM_state *s);

/* ---- site.c: sites and stacks ---------------------------------------------------- */
#define TALLY_SITE_NONE UINT32_MAX
/* tallyM_site_of's slow path: a site not in the cache of recent sites, or one
 * with its native stack. */
TALLY_INTERNAL uint32_t tallyM_site_miss(tallyH_heap *h, tallyM_state *s, const char *file,
                                         int line, const void *caller);
/* The first way of the set of (file, line) in the cache of recent sites: two ways
 * per set, so that two hot sites of one set do not evict each other. */
TALLY_INLINE unsigned tallyM_recent_set(const char *file, int line)
{
    uint64_t key = ((uint64_t)(uintptr_t)file ^ (uint64_t)(unsigned)line << 40) *
                   0x9E3779B97F4A7C15ull;
    return (unsigned)(key >> (64 - __builtin_ctz(TALLY_TRACE_RECENT_SITES))) & ~1u;
}
/* The id of the site of an allocation made now from (file, line), called from
 * caller; TALLY_SITE_NONE if the tables could not grow.  With a traceback limit
 * of 1 a site found lately costs a look in the cache (inline); the rest is
 * tallyM_site_miss. */
/* The id + 1 of (file, line) in the cache of recent sites, or 0 when it is not
 * there (an empty entry holds id 0, so it never matches). */
TALLY_INLINE uint32_t tallyM_site_cached(const tallyM_state *s, const char *file, int line)
{
    unsigned k = tallyM_recent_set(file, line);
    if (s->recent[k].file == file && s->recent[k].line == line)
        return s->recent[k].id;
    if (s->recent[k | 1].file == file && s->recent[k | 1].line == line)
        return s->recent[k | 1].id;
    return 0;
}
TALLY_INLINE uint32_t tallyM_site_of(tallyH_heap *h, tallyM_state *s, const char *file, int line,
                                     const void *caller)
{
    uint32_t cached = s->limit <= 1 ? tallyM_site_cached(s, file, line) : 0;
    return cached != 0 ? cached - 1 : tallyM_site_miss(h, s, file, line, caller);
}
/* The public view of site id. */
TALLY_INTERNAL void tallyM_site_get(const tallyM_state *s, uint32_t id, tally_trace_site *out);
/* Frees the site tables. */
TALLY_INTERNAL void tallyM_sites_free(tallyH_heap *h, tallyM_state *s);

/* The file name reported for an unknown file. */
#define TALLY_TRACE_UNKNOWN "<unknown>"

/* ---- sample.c: Poisson sampling by bytes ------------------------------------------ */
/* Fixed-point unit of the estimated block counts (tallyM_sample_blocks). */
#define TALLY_SAMPLE_UNIT 65536u
/* Seeds s's generator. */
TALLY_INTERNAL void tallyM_sample_seed(tallyM_state *s, uint64_t seed);
/* Draws the next countdown (s->sample > 0); seeds from the clock if unseeded. */
TALLY_INTERNAL void tallyM_sample_draw(tallyM_state *s);
/* The bytes a recorded block of n bytes stands for under sampling mean `mean`
 * (n itself when mean is 0 or n >= mean), rounded to whole bytes. */
TALLY_INTERNAL size_t tallyM_sample_bytes(size_t n, uint64_t mean);
/* The blocks it stands for, in units of 1/TALLY_SAMPLE_UNIT. */
TALLY_INTERNAL uint64_t tallyM_sample_blocks(size_t n, uint64_t mean);

/* ---- snapshot.c ------------------------------------------------------------------ */
/* A snapshot: one heap block holding the header, the traces, the sites and
 * their frames (so it outlives the tracer's tables). */
typedef struct tallyM_strace {
    size_t size;
    uint32_t site;
    uint32_t domain;         /* 0: the heap's; else as tracked */
} tallyM_strace;

struct tally_trace_snapshot {
    struct tally_rt *rt;     /* whose heap holds this block */
    int limit;               /* traceback limit */
    bool loaded;             /* read from a dump: the frames are another process's
                                addresses (no modules of this process describe them) */
    uint64_t sample;         /* the tracer's sampling mean when taken (0: none) */
    size_t ntraces;
    size_t nsites;
    size_t nframes;
    size_t nstrings;         /* bytes of strings (file names of a loaded snapshot) */
    tallyM_strace *traces;
    tallyM_site *sites;      /* frames offsets index frames below; a file lies in
                                strings or is a literal of the program */
    void **frames;
    char *strings;
};

/* A snapshot block with room for the given counts (strings: bytes), its section
 * pointers set and its counts filled in; NULL with the error set (TALLY_ENOMEM). */
TALLY_INTERNAL tally_trace_snapshot *tallyM_snap_alloc(struct tally_rt *rt, size_t ntraces,
                                                       size_t nsites, size_t nframes,
                                                       size_t nstrings);

/* The site of trace i of a snapshot, in public form. */
TALLY_INTERNAL void tallyM_snap_site(const tally_trace_snapshot *snap, uint32_t site,
                                     tally_trace_site *out);

/* ---- census.c: every live block, sorted, told apart ------------------------------ */
/* One live block of the heap as the object-side reports see it. */
typedef struct tallyM_cell {
    uintptr_t addr;          /* the block as tally_heap_visit gives it (user pointer) */
    size_t size;             /* its usable bytes (as the heap rounds) */
    void *obj;               /* the object living in it, or NULL for a raw block */
    const tally_type *type;  /* obj's type, or NULL */
    uint32_t flags;          /* TALLY_CELL_* */
} tallyM_cell;

#define TALLY_CELL_IMMORTAL 1u  /* an immortal object: never a leak */
#define TALLY_CELL_INTERNAL 2u  /* a table of the runtime itself (tracer, intern, ...) */
#define TALLY_CELL_OWNED 4u     /* a buffer an object owns (counted in its tally_sizeof) */

/* The census: the cells of every live block except its own array, sorted by
 * address, from one block of the heap (tallyH_malloc_quiet). */
typedef struct tallyM_census {
    tallyM_cell *cells;
    size_t n;
} tallyM_census;
/* Takes the census: 0, or -1 when its array cannot be had (the runtime's error
 * is then set to TALLY_ENOMEM, or TALLY_EFAULT under fault injection). */
TALLY_INTERNAL int tallyM_census_take(struct tally_rt *rt, tallyM_census *c);
TALLY_INTERNAL void tallyM_census_free(struct tally_rt *rt, tallyM_census *c);
/* The object living in the live block at block (size bytes, as tally_heap_visit
 * gives them), or NULL for a raw block. */
TALLY_INTERNAL void *tallyM_object_in(struct tally_rt *rt, void *block, size_t size);
/* The index of the cell whose object is o, or SIZE_MAX. */
TALLY_INTERNAL size_t tallyM_census_find(const tallyM_census *c, const void *o);
/* The site recorded for the block of cell c, or false when it was not traced. */
TALLY_INTERNAL bool tallyM_cell_site(struct tally_rt *rt, const tallyM_cell *c, const char **file,
                                     int *line);
/* A printable name for a type (or "(raw blocks)" for NULL). */
TALLY_INTERNAL const char *tallyM_type_name(const tally_type *t);

/* ---- leaks.c --------------------------------------------------------------------- */
/* The report tally_close prints to stderr when asked for (config or TALLY_LEAKS). */
TALLY_INTERNAL void tallyM_leaks_at_close(struct tally_rt *rt);

#endif /* TALLY_TRACE_INTERNAL_H */
