/* tally/trace.h - allocation tracing inside a runtime (Python's tracemalloc).
 *
 * While a runtime traces, every block it hands out (tally_malloc, calloc,
 * realloc, tally_new and every object the built-in types make) is recorded with
 * the size requested and the place that asked for it: the file and line of the
 * call (the allocation calls are macros passing __FILE__ and __LINE__, see
 * tally/heap.h) and, when tracing with nframes > 1, the native call stack.  A
 * traced block that is freed stops being traced; a realloc moves its trace.
 * Blocks allocated before tracing started are not traced.  The figures are the
 * requested sizes, as tracemalloc's: not the size classes the heap rounds to.
 *
 * A library's own allocations are recorded where the library makes them, as
 * tracemalloc shows a library's line: a str made by tally_str() is traced at a
 * line of src/types/str.c (paths are relative to Tally's source root); with
 * nframes > 1 the native stack shows the caller's frames above it.
 *
 * The tracer keeps its tables in the runtime's own heap, through a path that is
 * never traced, so tracing works in a fixed-buffer runtime without the system
 * allocator (except once: the first tally_trace_start with nframes > 1 in a
 * process lets glibc's backtrace() load its unwinder, which may call malloc).
 * If its tables cannot grow, the user's allocation still succeeds and the block
 * is counted as untraced (tally_trace_stats.untraced).  Like the rest of a
 * runtime, the tracer is used by one thread at a time.
 *
 * For production use, tally_trace_start_sampled records only a sample (about one
 * allocation in every N bytes) and reports figures scaled to estimates of the
 * whole: see its comment below for what is scaled and what stays exact.
 *
 * Snapshots copy the traces at one moment; statistics group them by line, file
 * or whole traceback, sorted by size; compare gives what changed between two
 * snapshots; filters keep or drop traces by file pattern and line.  Arrays
 * returned here are released with tally_trace_release(); they point into the
 * snapshot they came from, which must outlive them.
 */
#ifndef TALLY_TRACE_H
#define TALLY_TRACE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tally/object.h"
#include "tally/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Most frames a traceback holds. */
#define TALLY_TRACE_MAX_FRAMES 64

/* Starts tracing with tracebacks of nframes frames (1..TALLY_TRACE_MAX_FRAMES):
 * 1 records the file and line only; more also records the native return
 * addresses of the callers (glibc's backtrace(), or the unwinder set with
 * tally_trace_set_unwinder).  Returns 0, or -1 with
 * TALLY_EINVAL for a bad nframes.  Starting while tracing keeps the traces and
 * sets the limit for the traces recorded from then on (as tracemalloc.start). */
TALLY_API int tally_trace_start(tally_rt *rt, int nframes);

/* Sampling, for production use: tally_trace_start_sampled records about one
 * allocation in every mean_bytes bytes allocated (Poisson sampling by bytes, as
 * tcmalloc and Go do; `tally run --sample` samples the same way).  A countdown
 * drawn from an exponential distribution of mean mean_bytes runs down by the size
 * of each allocation; the allocation that reaches its end is recorded and a new
 * countdown is drawn.  An allocation of n < mean_bytes bytes is thus recorded
 * with probability p = 1 - exp(-n / mean_bytes), independently of the others;
 * one of mean_bytes or more is always recorded (p = 1), without touching the
 * countdown.  The others are not traced at all, which is what makes sampling
 * cheap: an allocation that is not recorded costs a subtraction in the tracer.
 * A realloc is an allocation of its new size: the block is recorded afterwards
 * with the same probability, whether it was before or not.
 *
 * What is scaled: a recorded block of n bytes stands for n / p bytes and 1 / p
 * blocks.  tally_trace_get_traced_memory (current and peak), tally_trace_stats
 * current and peak, and the sizes and counts of tally_trace_statistics and
 * tally_trace_compare are these estimates (unbiased; each block's estimate is
 * rounded to whole bytes, and a free takes off exactly what its allocation added,
 * so current is 0 again once every recorded block is freed).  What is exact:
 * the requested size of each trace (tally_trace_get_traceback,
 * tally_trace_snapshot_get and tally_trace_snapshot_count give the recorded
 * traces as they are), and tally_trace_stats.traces (recorded blocks alive).
 * With mean_bytes 0 every allocation is recorded and nothing is scaled: exactly
 * tally_trace_start.  The relative error of an estimate of B bytes made of
 * blocks far smaller than the mean is about sqrt(mean_bytes / B).
 *
 * mean_bytes is 0 or 1..TALLY_TRACE_MAX_SAMPLE; a larger one, or a bad nframes,
 * gives -1 with TALLY_EINVAL, and nothing changes.  Called while tracing, it sets
 * the traceback limit as tally_trace_start does; if the mean changes (to or from
 * 0 too: tally_trace_start is tally_trace_start_sampled with mean 0), the traces
 * recorded so far are forgotten and current, peak and untraced restart from 0
 * (their weights belong to the old mean: mixing them would bias the estimates).
 * Snapshots taken before stay valid and keep their own mean. */
#define TALLY_TRACE_MAX_SAMPLE ((size_t)1 << 32)
TALLY_API int tally_trace_start_sampled(tally_rt *rt, int nframes, size_t mean_bytes);
/* The sampling mean in bytes (0: every allocation is recorded, or not tracing). */
TALLY_API size_t tally_trace_get_sampling(tally_rt *rt);
/* Seeds rt's sampler (its own generator: no global state), so that a run that
 * makes the same allocations records the same ones: for tests and reproducible
 * measurements.  Without it the seed comes from the clock when sampling first
 * needs it.  Takes effect at once (a new countdown is drawn when sampling); the
 * seed is forgotten by tally_trace_stop. */
TALLY_API void tally_trace_seed(tally_rt *rt, uint64_t seed);
/* Stops tracing: every trace is forgotten and the tracer's memory is freed.
 * Snapshots taken earlier stay valid. */
TALLY_API void tally_trace_stop(tally_rt *rt);
TALLY_API int tally_trace_is_tracing(tally_rt *rt);
/* The traceback limit given to tally_trace_start (0 when not tracing). */
TALLY_API int tally_trace_get_traceback_limit(tally_rt *rt);

/* Bytes requested by the traced blocks alive now, and the most there were at
 * once since tracing started or the peak was reset (0 and 0 when not tracing). */
TALLY_API void tally_trace_get_traced_memory(tally_rt *rt, size_t *current, size_t *peak);
/* Sets the peak to the current figure. */
TALLY_API void tally_trace_reset_peak(tally_rt *rt);
/* Bytes of heap blocks the tracer itself holds (its tables). */
TALLY_API size_t tally_trace_get_overhead(tally_rt *rt);

typedef struct tally_trace_stats {
    size_t current;              /* as tally_trace_get_traced_memory */
    size_t peak;
    size_t traces;               /* traced blocks alive */
    size_t sites;                /* distinct sites (file, line, stack) recorded */
    size_t overhead;             /* as tally_trace_get_overhead */
    unsigned long long untraced; /* allocations left untraced: the tracer's own
                                    tables could not grow (heap exhausted) */
    int nframes;                 /* traceback limit, 0 when not tracing */
    size_t sample;               /* sampling mean (tally_trace_get_sampling); when
                                    nonzero current and peak are estimates and
                                    traces counts the recorded blocks */
} tally_trace_stats;
TALLY_API void tally_trace_get_stats(tally_rt *rt, tally_trace_stats *out);

/* Where a block was allocated.  frames are native return addresses, innermost
 * first: frames[0] lies in the function that made the call at file:line (the
 * call site itself), frames[1] in its caller, and so on.  Without a native
 * stack (nframes 1) nframes is 0 and frames NULL.  file is "<unknown>" and line
 * 0 for calls made through the plain functions (no site macros). */
typedef struct tally_trace_site {
    const char *file;
    int line;
    int nframes;
    void *const *frames;
} tally_trace_site;

/* The site and requested size of the traced block at p (a block, or an object
 * as tally_new returned it), like tracemalloc.get_object_traceback.  The size is
 * the exact size requested, sampled or not; under sampling most blocks are not
 * traced at all (-1).  frames
 * (up to TALLY_TRACE_MAX_FRAMES) are copied to frames_out, which site->frames
 * then points to.  Returns 0, or -1 when p is not traced (no error is set). */
TALLY_API int tally_trace_get_traceback(tally_rt *rt, const void *p, tally_trace_site *site,
                                        size_t *size, void *frames_out[TALLY_TRACE_MAX_FRAMES]);

/* ---- domains: memory the heap does not hand out --------------------------------- */

/* A program can trace memory of its own (a GPU buffer, a mapping, another
 * allocator's blocks) in numbered domains, as PyTraceMalloc_Track does: a tracked
 * block is a trace like the heap's, with the site of the call, in current and peak,
 * snapshots (tally_trace.domain), statistics and compare (which group domains
 * together, as tracemalloc's do) and dumps; filters can select by domain.  Domain 0
 * is the heap's own.  Tracking (domain, ptr) again replaces its trace (a new size
 * and site); when sampling, a tracked block is sampled like an allocation of its
 * size.  Returns 0; -2 when the runtime is not tracing (nothing to do, no error:
 * a library may call these unconditionally); -1 with TALLY_EINVAL for domain 0 or
 * ptr 0, or TALLY_ENOMEM when the tracer's table cannot grow (nothing changes). */
TALLY_API int tally_trace_track_at(tally_rt *rt, unsigned domain, uintptr_t ptr, size_t size,
                                   const char *file, int line);
TALLY_API int tally_trace_track(tally_rt *rt, unsigned domain, uintptr_t ptr, size_t size);
/* Stops tracing (domain, ptr): 0 (whether it was traced or not), -2 when the
 * runtime is not tracing, -1 with TALLY_EINVAL for domain 0. */
TALLY_API int tally_trace_untrack(tally_rt *rt, unsigned domain, uintptr_t ptr);
#ifndef TALLY_NO_SITE_MACROS
#define tally_trace_track(rt, domain, ptr, size) \
    tally_trace_track_at((rt), (domain), (ptr), (size), __FILE__, __LINE__)
#endif

/* ---- native stacks ---------------------------------------------------------------- */

/* An unwinder: stores the return addresses of the calling thread's stack,
 * innermost first, in frames (at most max) and returns how many it stored.
 * glibc's backtrace() has this shape, and so has libunwind's unw_backtrace();
 * both read DWARF unwind tables, about 15-150 ns per frame (docs/tracing.md).
 * A program built with frame pointers throughout (Tally included: configure
 * with CMAKE_C_FLAGS=-fno-omit-frame-pointer) may pass a frame-pointer walk of
 * its own, a few loads per frame. */
typedef int (*tally_trace_unwind_fn)(void **frames, int max);

/* Sets the unwinder the tracer uses for tracebacks of more than one frame (NULL:
 * glibc's backtrace(), the default).  It stays set across tally_trace_stop and
 * start; set while tracing, it applies to the stacks captured from then on.  It
 * is called once right away, to warm it up (a first call may load libraries or
 * allocate).  It runs inside allocation calls, so it must not allocate from this
 * runtime, and a result below 0 or above max is taken as 0 or max. */
TALLY_API void tally_trace_set_unwinder(tally_rt *rt, tally_trace_unwind_fn fn);
/* The unwinder set (NULL: backtrace()). */
TALLY_API tally_trace_unwind_fn tally_trace_get_unwinder(tally_rt *rt);

/* ---- snapshots -------------------------------------------------------------------- */

typedef struct tally_trace_snapshot tally_trace_snapshot;

/* A copy of the traces now, or NULL with the error set (TALLY_EINVAL when not
 * tracing; TALLY_ENOMEM ...).  Its memory comes from rt's heap (never traced);
 * it stays valid after tally_trace_stop, until tally_trace_snapshot_free. */
TALLY_API tally_trace_snapshot *tally_trace_take_snapshot(tally_rt *rt);
TALLY_API void tally_trace_snapshot_free(tally_trace_snapshot *snap);

/* One trace of a snapshot. */
typedef struct tally_trace {
    size_t size;           /* bytes requested */
    tally_trace_site site; /* frames point into the snapshot */
    unsigned domain;       /* 0: a block of the heap; else as tally_trace_track gave */
} tally_trace;
/* Number of traces in snap, and their total size in *total (may be NULL). */
TALLY_API size_t tally_trace_snapshot_count(const tally_trace_snapshot *snap, size_t *total);
/* Trace i (0 <= i < count) in *out; 0, or -1 if i is out of range. */
TALLY_API int tally_trace_snapshot_get(const tally_trace_snapshot *snap, size_t i, tally_trace *out);
/* The traceback limit the traces were recorded with. */
TALLY_API int tally_trace_snapshot_limit(const tally_trace_snapshot *snap);
/* The sampling mean the traces were recorded with (0: every allocation).  Its
 * traces are the recorded blocks with their exact sizes; statistics and compare
 * scale them (see tally_trace_start_sampled). */
TALLY_API size_t tally_trace_snapshot_sampling(const tally_trace_snapshot *snap);

/* Filters (tracemalloc.Filter and DomainFilter): a trace matches when its file
 * matches pattern (fnmatch(3) without flags, so '*' also matches '/'; NULL matches
 * any file), if line is nonzero its line is line, and if by_domain is set its
 * domain is domain.  A trace is kept if it matches at least
 * one inclusive filter (when there are any) and no exclusive filter. */
typedef struct tally_trace_filter {
    int inclusive;       /* nonzero: keep what matches; 0: drop what matches */
    const char *pattern; /* fnmatch pattern for the file */
    int line;            /* 0: any line */
    int by_domain;       /* nonzero: only traces of `domain` match (0: any domain) */
    unsigned domain;     /* with by_domain; {inclusive, NULL, 0, 1, d} is
                            tracemalloc's DomainFilter(inclusive, d) */
} tally_trace_filter;
/* A new snapshot of the traces of snap that pass the n filters (n may be 0:
 * a copy), or NULL with the error set. */
TALLY_API tally_trace_snapshot *tally_trace_snapshot_filter(const tally_trace_snapshot *snap,
                                                            const tally_trace_filter *filters,
                                                            size_t n);

/* ---- dump and load ----------------------------------------------------------------- */
/* A snapshot saved to a file and read back, in another process or later (Python's
 * Snapshot.dump and Snapshot.load).  The file is a Tally capture in its snapshot
 * variant (docs/capture-format.md), which `tally report` and `tally diff` read too:
 * the traceback limit, the sampling mean, each site's file and line and, with a
 * native stack, its return addresses and the modules (executable and shared
 * libraries) they lie in, so that the tools can name their functions later.
 *
 * Writes snap to path: 0, or -1 with the error set on the snapshot's runtime
 * (TALLY_EIO naming the path and the system's reason; TALLY_ENOMEM).  The bytes
 * go to a new file beside path, renamed over path when complete: a failed dump
 * leaves path as it was. */
TALLY_API int tally_trace_snapshot_dump(const tally_trace_snapshot *snap, const char *path);
/* Reads a dump into a new snapshot of rt's heap (never traced), usable with every
 * snapshot function, freed with tally_trace_snapshot_free; its file names belong
 * to it and its frames are the addresses as recorded (they name code only in the
 * process that dumped them).  NULL with the error set: TALLY_EIO (the file cannot
 * be read), TALLY_EFORMAT (not a snapshot dump, another major version, truncated
 * at byte N, a bad record at offset N, counts out of range, ...), TALLY_ENOMEM.
 * No content of the file can make it crash, loop or allocate more than a small
 * multiple of the file's size. */
TALLY_API tally_trace_snapshot *tally_trace_snapshot_load(tally_rt *rt, const char *path);
/* The same from size bytes at data (not kept). */
TALLY_API tally_trace_snapshot *tally_trace_snapshot_load_memory(tally_rt *rt, const void *data,
                                                                 size_t size);

/* ---- statistics ------------------------------------------------------------------- */

/* How traces are grouped (tracemalloc's key_type). */
typedef enum tally_trace_key {
    TALLY_TRACE_BY_LINE = 1,      /* file and line ('lineno') */
    TALLY_TRACE_BY_FILE = 2,      /* file ('filename'); line is 0 */
    TALLY_TRACE_BY_TRACEBACK = 3  /* file, line and native stack ('traceback') */
} tally_trace_key;

/* One group of traces (tracemalloc.Statistic).  site.frames (BY_TRACEBACK only)
 * point into the snapshot. */
typedef struct tally_trace_stat {
    tally_trace_site site;
    size_t count;   /* blocks (estimated for a sampled snapshot) */
    size_t size;    /* bytes requested, in all (estimated likewise) */
    size_t average; /* size / count */
} tally_trace_stat;

/* The traces of snap grouped by key, sorted by size, largest first (then by
 * count, then by file and line): an array of *n entries, released with
 * tally_trace_release.  NULL with the error set on failure (the array comes
 * from the snapshot's runtime's heap). */
TALLY_API tally_trace_stat *tally_trace_statistics(const tally_trace_snapshot *snap,
                                                   tally_trace_key key, size_t *n);

/* One group in two snapshots (tracemalloc.StatisticDiff). */
typedef struct tally_trace_diff {
    tally_trace_site site;
    size_t count;         /* in the newer snapshot */
    size_t size;
    long long count_diff; /* newer - older */
    long long size_diff;
} tally_trace_diff;

/* The groups of now and old (snapshots of one runtime, or of runtimes that are
 * both open) by key, with their differences, sorted by the absolute size
 * difference, largest first (then size, absolute count difference, count), as
 * Snapshot.compare_to does.  *n entries, released with tally_trace_release;
 * NULL with the error set on failure. */
TALLY_API tally_trace_diff *tally_trace_compare(const tally_trace_snapshot *now,
                                                const tally_trace_snapshot *old,
                                                tally_trace_key key, size_t *n);

/* Releases an array returned by tally_trace_statistics or tally_trace_compare
 * (NULL is ignored). */
TALLY_API void tally_trace_release(void *array);

/* ---- objects: what is alive, and why ---------------------------------------------- */
/* These look at the heap itself, so they work whether tracing is on or off;
 * tracing adds the allocation sites.  Objects are found by a walk of the heap's
 * live blocks, told apart from raw blocks by tally_is_object.  Sizes are
 * tally_sizeof's (the heap's rounding, headers and owned buffers included); a
 * buffer an object owns (a list's item array) is counted with its owner and not
 * again as a raw block; the runtime's own tables are not counted.  Their working
 * memory comes from rt's heap, through a path that is never traced and never runs
 * a collection; when it cannot be had they fail with TALLY_ENOMEM and leave
 * nothing behind. */

/* One line of the type summary (pympler's summary). */
typedef struct tally_type_stat {
    const tally_type *type; /* NULL for the line of raw blocks */
    const char *name;       /* type->name, or "(raw blocks)" */
    size_t count;           /* live objects (or raw blocks) */
    size_t bytes;           /* their tally_sizeof (raw blocks: usable sizes) */
} tally_type_stat;

/* For every type with live objects, and one line "(raw blocks)" when there are
 * raw blocks: count and bytes, sorted by bytes, largest first (then count, then
 * name).  An array of *n entries (possibly 0), released with
 * tally_trace_release; NULL with the error set on failure. */
TALLY_API tally_type_stat *tally_trace_type_summary(tally_rt *rt, size_t *n);
/* Prints the summary as a table (at most limit lines, 0: all) to out.  0, or -1
 * with the error set (nothing is printed then). */
TALLY_API int tally_trace_type_summary_print(tally_rt *rt, FILE *out, size_t limit);

/* The leak report: what is still alive, objects and raw blocks, grouped by type
 * and, under each type, by allocation site when tracing recorded one ("site
 * unknown (not traced)" otherwise), with counts and bytes, largest first.
 * Immortal objects are not leaks and are left out.  With nothing alive it prints
 * one line saying so.  Returns the number of objects and raw blocks reported, or
 * -1 when its memory ran out: it then prints per-type totals found without
 * memory and says that the report is incomplete.  tally_close prints this report
 * to stderr before the heap goes when the runtime was opened with
 * tally_config.report_leaks or with TALLY_LEAKS=1 in the environment. */
TALLY_API long tally_trace_leaks(tally_rt *rt, FILE *out);

/* Why is obj alive?  Prints a shortest chain of references from a root to obj
 * (objgraph's show_chain(find_backref_chain(obj, is_root))): a root is an object
 * some of whose references come from outside the heap (its count is larger than
 * the references the heap's objects hold to it, counted with their traverse
 * callbacks, as the collector counts).  Returns the number of references in the
 * chain (0: obj is a root itself), TALLY_WHY_GARBAGE when no root reaches obj
 * (it is kept alive only by a cycle: tally_gc_collect would free it), or -1
 * with the error set (TALLY_EINVAL: obj is not a live object of rt; TALLY_ENOMEM:
 * no memory for the search, with nothing printed). */
#define TALLY_WHY_GARBAGE (-2)
TALLY_API int tally_why_alive(tally_rt *rt, void *obj, FILE *out);

/* Writes a DOT graph (Graphviz) of the objects within depth referrer steps of
 * obj, with the references among them: nodes labelled with type and size, roots
 * drawn doubled and filled, obj drawn as a box.  Returns the number of nodes
 * written, or -1 with the error set as tally_why_alive. */
TALLY_API long tally_trace_graph_dot(tally_rt *rt, void *obj, int depth, FILE *out);

#ifdef __cplusplus
}
#endif
#endif /* TALLY_TRACE_H */
