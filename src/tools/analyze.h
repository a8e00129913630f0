/* analyze.h - replaying a capture's events: totals, peak, leaks, temporary
 * allocations, per-stack figures and a size histogram.  Internal to the tools. */
#ifndef TALLY_TOOLS_ANALYZE_H
#define TALLY_TOOLS_ANALYZE_H

#include "capture_read.h"

#define TALLYX_HIST_BUCKETS 40  /* [0,1), [1,2), [2,4), ... [2^38, inf) bytes */

/* Figures of one stack (index into tallyX_capture.stacks).  Counts and bytes are
 * doubles: exact integers without sampling (below 2^53), estimates with it. */
typedef struct tallyX_stack_stats {
    double alloc_count, alloc_bytes;    /* over the whole run */
    double peak_count, peak_bytes;      /* live at the peak */
    double live_count, live_bytes;      /* live at the end: leaks */
    double temp_count;                  /* temporary allocations */
} tallyX_stack_stats;

typedef struct tallyX_analysis {
    double allocs, frees, bytes_allocated, temporary;
    double kind_count[8];       /* allocations by TALLY_AK_* */
    uint64_t alloc_records, free_records;
    uint64_t unmatched_frees;   /* frees of blocks never seen allocated */
    uint64_t reused_live;       /* allocations of an address still live (a missed free) */
    double peak_bytes, peak_blocks;
    uint64_t peak_seq, peak_ns; /* peak_ns: time of the last TIME mark at or before it */
    double end_bytes, end_blocks;
    uint64_t last_seq, last_ns;
    double hist_count[TALLYX_HIST_BUCKETS], hist_bytes[TALLYX_HIST_BUCKETS];
    tallyX_stack_stats *stacks;  /* cap->nstacks entries */
    size_t nstacks;
} tallyX_analysis;

/* The weight of a recorded allocation of size bytes: 1 without sampling, else the
 * inverse of its probability of being sampled, 1 / (1 - exp(-size/mean)). */
double tallyX_weight(uint64_t sample_mean, uint64_t size);

/* Two replays of the events (the second stops at the peak).  -1: out of memory. */
int tallyX_analyze(const tallyX_capture *cap, tallyX_analysis *a);
void tallyX_analysis_free(tallyX_analysis *a);

/* Loads the capture at path and analyses it, the opening of every command that
 * reads one: 0, or -1 after printing "tally <tool>: <why>" to stderr, with
 * nothing left to free. */
int tallyX_load_analyzed(const char *tool, const char *path, tallyX_capture *cap,
                         tallyX_analysis *a);

/* One replay of the events in sequence order, calling fn after each (ALLOC, FREE,
 * TIME, EXIT) with the live heap in bytes (weighted as above) once it is applied:
 * the memory-over-time curve of `tally plot`.  -1: out of memory. */
typedef void tallyX_replay_fn(void *ctx, const tallyX_event *ev, double live_bytes);
int tallyX_replay(const tallyX_capture *cap, tallyX_replay_fn *fn, void *ctx);

#endif /* TALLY_TOOLS_ANALYZE_H */
