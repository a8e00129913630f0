/* analyze.c - what a report is made of, computed by replaying a capture's events in
 * sequence order against a table of live blocks (address -> size, stack, weight).
 *
 * Definitions (docs/profiler.md):
 *  - live heap: the sum of the sizes requested for blocks allocated and not yet freed;
 *    the peak is its maximum over the event sequence (the first event reaching it);
 *  - leaks: blocks live after the last event;
 *  - temporary allocation (heaptrack's definition): a block whose free is the very
 *    next event after its allocation in the capture's order;
 *  - a realloc is the free of the old block then the allocation of the new one.
 * Figures at the peak need the live set at that moment: a first replay finds the
 * peak's sequence number, a second replays up to it and sums the live blocks per
 * stack.  With sampling, each recorded allocation counts for tallyX_weight() blocks
 * and that many times its size, so every figure is an unbiased estimate.
 * tallyX_replay is the same replay with a callback after every event (the live heap
 * over time, for `tally plot`).
 */
#include "analyze.h"

#include "trace/capture_format.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

double tallyX_weight(uint64_t mean, uint64_t size)
{
    if (mean == 0 || size == 0)
        return 1.0;
    double p = -expm1(-(double)size / (double)mean);
    return p > 0 ? 1.0 / p : 1.0;
}

/* ---- the live-block table: open addressing on the address ------------------------------ */

struct block {
    uint64_t ptr;               /* 0 = empty slot */
    uint64_t size;
    uint32_t stack;
    double w;
};

struct live {
    struct block *b;
    size_t cap, n;
};

static size_t slot_of(uint64_t p, size_t mask)
{
    uint64_t h = p * 0x9e3779b97f4a7c15u;
    return (size_t)(h ^ (h >> 31)) & mask;
}

static int live_grow(struct live *l)
{
    size_t ncap = l->cap ? l->cap * 2 : 4096;
    struct block *nb = calloc(ncap, sizeof *nb);
    if (nb == NULL)
        return -1;
    for (size_t i = 0; i < l->cap; i++) {
        if (l->b[i].ptr == 0)
            continue;
        size_t j = slot_of(l->b[i].ptr, ncap - 1);
        while (nb[j].ptr != 0)
            j = (j + 1) & (ncap - 1);
        nb[j] = l->b[i];
    }
    free(l->b);
    l->b = nb;
    l->cap = ncap;
    return 0;
}

static struct block *live_find(struct live *l, uint64_t p)
{
    if (l->cap == 0)
        return NULL;
    size_t mask = l->cap - 1;
    for (size_t i = slot_of(p, mask); l->b[i].ptr != 0; i = (i + 1) & mask) {
        if (l->b[i].ptr == p)
            return &l->b[i];
    }
    return NULL;
}

/* Removes the block at slot e (backward-shift deletion, no tombstones). */
static void live_remove(struct live *l, struct block *e)
{
    size_t mask = l->cap - 1, i = (size_t)(e - l->b), j = i;
    l->n--;
    for (;;) {
        l->b[i].ptr = 0;
        for (;;) {
            j = (j + 1) & mask;
            if (l->b[j].ptr == 0)
                return;
            size_t k = slot_of(l->b[j].ptr, mask);
            if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
                continue;
            break;
        }
        l->b[i] = l->b[j];
        i = j;
    }
}

static struct block *live_insert(struct live *l, uint64_t p)
{
    if ((l->n + 1) * 2 > l->cap && live_grow(l) != 0)
        return NULL;
    size_t mask = l->cap - 1, i = slot_of(p, mask);
    while (l->b[i].ptr != 0)
        i = (i + 1) & mask;
    l->n++;
    l->b[i].ptr = p;
    return &l->b[i];
}

static int hist_bucket(uint64_t size)
{
    int b = 0;
    while (size > 0 && b < TALLYX_HIST_BUCKETS - 1) {
        size >>= 1;
        b++;
    }
    return b;
}

/* ---- replay ------------------------------------------------------------------------------ */

struct replay {
    struct live live;
    double cur_bytes, cur_blocks;
    uint64_t last_alloc_ptr;    /* the previous event was the allocation of this */
    uint64_t time_ns;           /* latest TIME mark */
};

/* Applies one event.  full: the first replay (totals); else only the live set. */
static int apply(const tallyX_capture *cap, tallyX_analysis *a, struct replay *r,
                 const tallyX_event *ev, int full)
{
    uint64_t prev_alloc = r->last_alloc_ptr;
    r->last_alloc_ptr = 0;
    switch (ev->type) {
    case TALLY_REC_TIME:
    case TALLY_REC_EXIT:
        r->time_ns = ev->ns;
        r->last_alloc_ptr = prev_alloc;     /* marks do not separate events */
        return 0;
    case TALLY_REC_ALLOC: {
        struct block *old = live_find(&r->live, ev->ptr);
        if (old != NULL) {  /* its free was not seen: drop it */
            r->cur_bytes -= (double)old->size * old->w;
            r->cur_blocks -= old->w;
            if (full) {
                a->reused_live++;
                a->stacks[old->stack].live_count -= old->w;
                a->stacks[old->stack].live_bytes -= (double)old->size * old->w;
            }
            live_remove(&r->live, old);
        }
        struct block *b = live_insert(&r->live, ev->ptr);
        if (b == NULL)
            return -1;
        double w = tallyX_weight(cap->sample, ev->size);
        b->size = ev->size;
        b->stack = ev->stack;
        b->w = w;
        r->cur_bytes += (double)ev->size * w;
        r->cur_blocks += w;
        r->last_alloc_ptr = ev->ptr;
        if (full) {
            a->alloc_records++;
            a->allocs += w;
            a->bytes_allocated += (double)ev->size * w;
            a->kind_count[ev->kind & 7] += w;
            tallyX_stack_stats *s = &a->stacks[ev->stack];
            s->alloc_count += w;
            s->alloc_bytes += (double)ev->size * w;
            s->live_count += w;
            s->live_bytes += (double)ev->size * w;
            int hb = hist_bucket(ev->size);
            a->hist_count[hb] += w;
            a->hist_bytes[hb] += (double)ev->size * w;
            if (r->cur_bytes > a->peak_bytes) {
                a->peak_bytes = r->cur_bytes;
                a->peak_blocks = r->cur_blocks;
                a->peak_seq = ev->seq;
                a->peak_ns = r->time_ns;
            }
        }
        return 0;
    }
    case TALLY_REC_FREE: {
        struct block *b = live_find(&r->live, ev->ptr);
        if (b == NULL) {
            if (full)
                a->unmatched_frees++;
            return 0;
        }
        r->cur_bytes -= (double)b->size * b->w;
        r->cur_blocks -= b->w;
        if (full) {
            tallyX_stack_stats *s = &a->stacks[b->stack];
            a->free_records++;
            a->frees += b->w;
            s->live_count -= b->w;
            s->live_bytes -= (double)b->size * b->w;
            if (prev_alloc == ev->ptr) {
                a->temporary += b->w;
                s->temp_count += b->w;
            }
        }
        live_remove(&r->live, b);
        return 0;
    }
    default:
        return 0;
    }
}

int tallyX_analyze(const tallyX_capture *cap, tallyX_analysis *a)
{
    memset(a, 0, sizeof *a);
    a->nstacks = cap->nstacks;
    a->stacks = calloc(cap->nstacks ? cap->nstacks : 1, sizeof *a->stacks);
    if (a->stacks == NULL)
        return -1;
    tallyX_iter it;
    tallyX_event ev;
    struct replay r;

    /* 1: totals, per-stack totals and leaks, the peak's position. */
    memset(&r, 0, sizeof r);
    if (tallyX_iter_begin(&it, cap) != 0)
        goto oom;
    int any = 0;
    while (tallyX_iter_next(&it, &ev)) {
        if (apply(cap, a, &r, &ev, 1) != 0) {
            tallyX_iter_end(&it);
            goto oom;
        }
        a->last_seq = ev.seq;
        a->last_ns = r.time_ns;
        any = 1;
    }
    tallyX_iter_end(&it);
    (void)any;
    a->end_bytes = r.cur_bytes;
    a->end_blocks = r.cur_blocks;
    free(r.live.b);

    /* 2: the live set at the peak. */
    memset(&r, 0, sizeof r);
    if (a->peak_bytes > 0) {
        if (tallyX_iter_begin(&it, cap) != 0)
            goto oom;
        while (tallyX_iter_next(&it, &ev)) {
            if (apply(cap, a, &r, &ev, 0) != 0) {
                tallyX_iter_end(&it);
                goto oom;
            }
            if (ev.type == TALLY_REC_ALLOC && ev.seq == a->peak_seq)
                break;
        }
        tallyX_iter_end(&it);
        for (size_t i = 0; i < r.live.cap; i++) {
            struct block *b = &r.live.b[i];
            if (b->ptr == 0)
                continue;
            a->stacks[b->stack].peak_count += b->w;
            a->stacks[b->stack].peak_bytes += (double)b->size * b->w;
        }
        free(r.live.b);
    }
    return 0;
oom:
    free(r.live.b);
    tallyX_analysis_free(a);
    return -1;
}

int tallyX_replay(const tallyX_capture *cap, tallyX_replay_fn *fn, void *ctx)
{
    struct replay r;
    tallyX_iter it;
    tallyX_event ev;
    memset(&r, 0, sizeof r);
    if (tallyX_iter_begin(&it, cap) != 0)
        return -1;
    int rc = 0;
    while (tallyX_iter_next(&it, &ev)) {
        if (apply(cap, NULL, &r, &ev, 0) != 0) {
            rc = -1;
            break;
        }
        fn(ctx, &ev, r.cur_bytes);
    }
    tallyX_iter_end(&it);
    free(r.live.b);
    return rc;
}

void tallyX_analysis_free(tallyX_analysis *a)
{
    free(a->stacks);
    a->stacks = NULL;
}

int tallyX_load_analyzed(const char *tool, const char *path, tallyX_capture *cap,
                         tallyX_analysis *a)
{
    char err[512];
    if (tallyX_capture_load(path, cap, err, sizeof err) != 0) {
        fprintf(stderr, "tally %s: %s\n", tool, err);
        return -1;
    }
    if (tallyX_analyze(cap, a) != 0) {
        fprintf(stderr, "tally %s: %s: out of memory\n", tool, path);
        tallyX_capture_free(cap);
        return -1;
    }
    return 0;
}
