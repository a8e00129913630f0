/* test_trace_sample.c - sampled tracing (tally_trace_start_sampled): the estimates
 * against the truth, blocks of the mean or more, exact frees, scaled statistics
 * and compare, mean 0 as plain tracing, bad arguments, restarts, and allocation
 * failure at every point while sampling.
 *
 * Statistical bounds.  With mean R, a block of n < R bytes is recorded with
 * probability p = 1 - exp(-n/R), independently of the others (the sample points
 * form a Poisson process on the byte stream, and blocks are disjoint stretches of
 * it), and then counts n/p bytes and 1/p blocks.  The estimate of the bytes of a
 * set of blocks is a sum of independent terms with mean n and variance
 * n^2 (1-p)/p, so its standard deviation is sqrt(sum n^2 (1-p)/p), computed below
 * from the known sizes; the tests allow 6 of them (a miss once in 10^9 seeds),
 * plus half a byte per recorded block for the tracer's rounding.  The seed is
 * fixed (tally_trace_seed), so each run is the same run anyway.
 */
#define _GNU_SOURCE
#include <math.h>

#include "test_objects.h"
#include "tally/tally.h"
#include "test_trace_util.h"

#define SEED 12345u

static tally_rt *open_sampled(size_t mean)
{
    tally_rt *rt = open_hosted(NULL, 0);
    tally_trace_seed(rt, SEED);
    assert_int_equal(tally_trace_start_sampled(rt, 1, mean), 0);
    return rt;
}

/* What a recorded block of n bytes must add to current under mean R. */
static size_t weight(size_t n, size_t R)
{
    if (n >= R)
        return n;
    return (size_t)llround((double)n / -expm1(-(double)n / (double)R));
}

/* Expected value and variance of the estimates for a set of blocks. */
typedef struct truth {
    double bytes, blocks;         /* the true figures */
    double var_bytes, var_blocks; /* variance of their estimates */
} truth;

static void truth_add(truth *t, size_t n, size_t R)
{
    t->bytes += (double)n;
    t->blocks += 1;
    if (n >= R)
        return; /* always recorded: exact */
    double p = -expm1(-(double)n / (double)R);
    t->var_bytes += (double)n * (double)n * (1 - p) / p;
    t->var_blocks += (1 - p) / p;
}

/* Asserts |estimate - truth| <= 6 sigma + slack. */
static void assert_near(double estimate, double expect, double var, double slack)
{
    double bound = 6 * sqrt(var) + slack;
    if (fabs(estimate - expect) > bound)
        fail_msg("estimate %.0f, truth %.0f: off by %.0f, bound %.0f", estimate, expect,
                 fabs(estimate - expect), bound);
}

/* Size of the i-th block of the workloads: 8..1031 bytes, spread evenly. */
static size_t size_of(size_t i)
{
    return 8 + (i * 7919) % 1024;
}

/* ---- the estimates ------------------------------------------------------------------ */

static void test_estimate_of_many_blocks(void **state)
{
    (void)state;
    const size_t R = 4096, N = test_scale(100000, 10);
    tally_rt *rt = open_sampled(R);
    assert_int_equal(tally_trace_get_sampling(rt), R);
    void **p = malloc(N * sizeof *p);
    assert_non_null(p);
    truth t = {0};
    for (size_t i = 0; i < N; i++) {
        p[i] = tally_malloc(rt, size_of(i));
        assert_non_null(p[i]);
        truth_add(&t, size_of(i), R);
    }
    tally_trace_stats st;
    tally_trace_get_stats(rt, &st);
    assert_int_equal(st.sample, R);
    assert_true(st.traces > 0);
    assert_true(st.traces < N / 4); /* sampled: p(1031) < 0.23 */
    assert_near((double)st.current, t.bytes, t.var_bytes, 0.5 * (double)st.traces);
    assert_int_equal(st.peak, st.current);

    /* statistics: the same figure in all, and the count too */
    tally_trace_snapshot *snap = tally_trace_take_snapshot(rt);
    assert_non_null(snap);
    assert_int_equal(tally_trace_snapshot_sampling(snap), R);
    size_t exact_total, ntr = tally_trace_snapshot_count(snap, &exact_total);
    assert_int_equal(ntr, st.traces);
    assert_true(exact_total < st.current); /* the recorded traces, unscaled */
    size_t n;
    tally_trace_stat *s = tally_trace_statistics(snap, TALLY_TRACE_BY_FILE, &n);
    assert_non_null(s);
    assert_int_equal(n, 1);
    assert_int_equal(s[0].size, st.current);
    assert_near((double)s[0].count, t.blocks, t.var_blocks, 1);
    assert_int_equal(s[0].average, s[0].size / s[0].count);
    tally_trace_release(s);
    tally_trace_snapshot_free(snap);

    size_t top = st.current;
    for (size_t i = 0; i < N; i++)
        tally_free(rt, p[i]);
    tally_trace_get_stats(rt, &st);
    assert_int_equal(st.current, 0); /* every free took off what its block added */
    assert_int_equal(st.traces, 0);
    assert_int_equal(peak(rt), top);
    free(p);
    tally_close(rt);
}

static void test_blocks_of_the_mean_or_more_always_recorded(void **state)
{
    (void)state;
    const size_t R = 4096;
    tally_rt *rt = open_sampled(R);
    void *p[64];
    size_t total = 0;
    for (int i = 0; i < 64; i++) {
        size_t n = i % 4 == 3 ? 3 * MiB + (size_t)i : R + (size_t)i * 97; /* large and huge */
        p[i] = tally_malloc(rt, n); const int line = __LINE__;
        assert_non_null(p[i]);
        size_t got = 0;
        tally_trace_site site;
        void *frames[TALLY_TRACE_MAX_FRAMES];
        assert_int_equal(tally_trace_get_traceback(rt, p[i], &site, &got, frames), 0);
        assert_int_equal(got, n); /* the exact requested size */
        assert_int_equal(site.line, line);
        total += n;
        assert_int_equal(cur(rt), total); /* weighed 1: exact */
    }
    /* realloc to the mean or more: recorded again, at the realloc */
    p[0] = tally_realloc(rt, p[0], 2 * R);
    assert_non_null(p[0]);
    size_t got = 0;
    assert_int_equal(tally_trace_get_traceback(rt, p[0], NULL, &got, NULL), 0);
    assert_int_equal(got, 2 * R);
    total += 2 * R - R;
    assert_int_equal(cur(rt), total);
    for (int i = 0; i < 64; i++)
        tally_free(rt, p[i]);
    assert_int_equal(cur(rt), 0);
    tally_close(rt);
}

static void test_free_restores_exact_current(void **state)
{
    (void)state;
    const size_t R = 2048;
    tally_rt *rt = open_sampled(R);
    void *keep[256] = {0};
    test_rng rng = {99};
    size_t recorded = 0;
    for (size_t i = 0; i < test_scale(20000, 10); i++) {
        size_t n = 1 + rng_below(&rng, 1500);
        size_t before = cur(rt);
        void *b = tally_malloc(rt, n);
        assert_non_null(b);
        /* A recorded block adds at least its n >= 1 bytes; an unrecorded one adds
         * nothing (tally_trace_get_traceback is not asked about those: for a
         * block without a trace it looks for an object header before it, which
         * reads a neighbour's unwritten tail, and Valgrind says so). */
        size_t got = 0;
        if (cur(rt) != before) {
            recorded++;
            assert_int_equal(tally_trace_get_traceback(rt, b, NULL, &got, NULL), 0);
            assert_int_equal(got, n);
            assert_int_equal(cur(rt) - before, weight(n, R)); /* n / (1 - exp(-n/R)) */
        }
        if (rng_below(&rng, 2)) { /* freed at once: back to the exact prior value */
            tally_free(rt, b);
            assert_int_equal(cur(rt), before);
        } else { /* or kept for a while: the background changes under it */
            size_t k = rng_below(&rng, 256);
            tally_free(rt, keep[k]);
            keep[k] = b;
        }
    }
    assert_true(recorded > 0);
    for (int k = 0; k < 256; k++)
        tally_free(rt, keep[k]);
    assert_int_equal(cur(rt), 0);
    tally_close(rt);
}

/* ---- statistics and compare ---------------------------------------------------------- */

static void *alloc_at_a(tally_rt *rt, size_t n)
{
    return tally_malloc(rt, n);
}

static void *alloc_at_b(tally_rt *rt, size_t n)
{
    return tally_malloc(rt, n);
}

/* The line where fn allocates (a block of the mean or more is always recorded). */
static int line_of(tally_rt *rt, void *(*fn)(tally_rt *, size_t))
{
    void *p = fn(rt, tally_trace_get_sampling(rt));
    tally_trace_site site;
    void *frames[TALLY_TRACE_MAX_FRAMES];
    assert_int_equal(tally_trace_get_traceback(rt, p, &site, NULL, frames), 0);
    tally_free(rt, p);
    return site.line;
}

static const tally_trace_stat *stat_of_line(const tally_trace_stat *s, size_t n, int line)
{
    for (size_t i = 0; i < n; i++)
        if (s[i].site.line == line)
            return &s[i];
    return NULL;
}

static void test_statistics_and_compare_scale(void **state)
{
    (void)state;
    const size_t R = 8192, N = test_scale(60000, 10), A = 64, B = 700;
    tally_rt *rt = open_sampled(R);
    const int line_a = line_of(rt, alloc_at_a), line_b = line_of(rt, alloc_at_b);
    assert_int_not_equal(line_a, line_b);
    tally_trace_snapshot *old = tally_trace_take_snapshot(rt);
    assert_non_null(old);
    void **p = malloc(2 * N * sizeof *p);
    assert_non_null(p);
    truth ta = {0}, tb = {0};
    for (size_t i = 0; i < N; i++) {
        p[2 * i] = alloc_at_a(rt, A);
        p[2 * i + 1] = alloc_at_b(rt, B);
        assert_true(p[2 * i] && p[2 * i + 1]);
        truth_add(&ta, A, R);
        truth_add(&tb, B, R);
    }
    tally_trace_snapshot *now = tally_trace_take_snapshot(rt);
    assert_non_null(now);
    size_t n, recorded = tally_trace_snapshot_count(now, NULL);
    tally_trace_stat *s = tally_trace_statistics(now, TALLY_TRACE_BY_LINE, &n);
    assert_non_null(s);
    assert_int_equal(n, 2);
    const tally_trace_stat *a = stat_of_line(s, n, line_a), *b = stat_of_line(s, n, line_b);
    assert_non_null(a);
    assert_non_null(b);
    assert_ptr_equal(b, &s[0]); /* sorted by the estimated size */
    assert_near((double)a->size, ta.bytes, ta.var_bytes, 0.5 * (double)recorded);
    assert_near((double)b->size, tb.bytes, tb.var_bytes, 0.5 * (double)recorded);
    assert_near((double)a->count, ta.blocks, ta.var_blocks, 1);
    assert_near((double)b->count, tb.blocks, tb.var_blocks, 1);
    assert_int_equal(a->size + b->size, cur(rt));

    size_t m;
    tally_trace_diff *d = tally_trace_compare(now, old, TALLY_TRACE_BY_LINE, &m);
    assert_non_null(d);
    assert_int_equal(m, 2);
    for (size_t i = 0; i < m; i++) {
        const tally_trace_stat *x = stat_of_line(s, n, d[i].site.line);
        assert_non_null(x);
        assert_int_equal(d[i].size, x->size);
        assert_int_equal(d[i].count, x->count);
        assert_int_equal(d[i].size_diff, (long long)x->size);
        assert_int_equal(d[i].count_diff, (long long)x->count);
    }
    tally_trace_release(d);
    d = tally_trace_compare(now, now, TALLY_TRACE_BY_LINE, &m);
    assert_non_null(d);
    for (size_t i = 0; i < m; i++)
        assert_true(d[i].size_diff == 0 && d[i].count_diff == 0 && d[i].size == s[i].size);
    tally_trace_release(d);

    /* a filtered copy keeps the mean, so it scales alike */
    tally_trace_filter f = {1, NULL, line_a, 0, 0};
    tally_trace_snapshot *fa = tally_trace_snapshot_filter(now, &f, 1);
    assert_non_null(fa);
    assert_int_equal(tally_trace_snapshot_sampling(fa), R);
    tally_trace_stat *sa = tally_trace_statistics(fa, TALLY_TRACE_BY_LINE, &m);
    assert_non_null(sa);
    assert_int_equal(m, 1);
    assert_int_equal(sa[0].size, a->size);
    assert_int_equal(sa[0].count, a->count);
    tally_trace_release(sa);
    tally_trace_snapshot_free(fa);

    tally_trace_release(s);
    tally_trace_snapshot_free(now);
    tally_trace_snapshot_free(old);
    for (size_t i = 0; i < 2 * N; i++)
        tally_free(rt, p[i]);
    assert_int_equal(cur(rt), 0);
    free(p);
    tally_close(rt);
}

/* ---- mean 0 is plain tracing ---------------------------------------------------------- */

/* A deterministic mix: raw blocks, reallocs, strs, lists growing in place. */
static void workload(tally_rt *rt, void **keep, size_t nkeep)
{
    test_rng rng = {5};
    for (size_t i = 0; i < 4000; i++) {
        size_t k = rng_below(&rng, nkeep);
        switch (rng_below(&rng, 4)) {
        case 0: tally_free(rt, keep[k]); keep[k] = tally_malloc(rt, 1 + rng_below(&rng, 3000)); break;
        case 1: if (keep[k]) keep[k] = tally_realloc(rt, keep[k], 1 + rng_below(&rng, 6000)); break;
        case 2: {
            void *l = tally_list(rt, 0);
            for (int j = 0; l && j < 20; j++) {
                void *x = tally_str(rt, "abc");
                assert_int_equal(tally_list_append(l, x), 0);
                tally_decref(x);
            }
            tally_decref(l);
            break;
        }
        default: tally_free(rt, keep[k]); keep[k] = NULL; break;
        }
    }
}

static void release_all(tally_rt *rt, void **keep, size_t nkeep)
{
    for (size_t k = 0; k < nkeep; k++) {
        tally_free(rt, keep[k]);
        keep[k] = NULL;
    }
}

static void test_mean_zero_is_plain_tracing(void **state)
{
    (void)state;
    tally_rt *x = open_hosted(NULL, 0), *y = open_hosted(NULL, 0);
    assert_int_equal(tally_trace_start(x, 1), 0);
    assert_int_equal(tally_trace_start_sampled(y, 1, 0), 0);
    assert_int_equal(tally_trace_get_sampling(y), 0);
    void *kx[64] = {0}, *ky[64] = {0};
    workload(x, kx, 64);
    workload(y, ky, 64);
    tally_trace_stats sx, sy;
    tally_trace_get_stats(x, &sx);
    tally_trace_get_stats(y, &sy);
    assert_int_equal(sx.current, sy.current);
    assert_int_equal(sx.peak, sy.peak);
    assert_int_equal(sx.traces, sy.traces);
    assert_int_equal(sx.sites, sy.sites);
    assert_int_equal(sy.sample, 0);
    tally_trace_snapshot *a = tally_trace_take_snapshot(x), *b = tally_trace_take_snapshot(y);
    assert_true(a && b);
    assert_int_equal(tally_trace_snapshot_sampling(b), 0);
    size_t na, nb, ta, tb;
    assert_int_equal(tally_trace_snapshot_count(a, &ta), tally_trace_snapshot_count(b, &tb));
    assert_int_equal(ta, tb);
    assert_int_equal(ta, sy.current); /* unscaled */
    tally_trace_stat *s = tally_trace_statistics(a, TALLY_TRACE_BY_LINE, &na);
    tally_trace_stat *t = tally_trace_statistics(b, TALLY_TRACE_BY_LINE, &nb);
    assert_true(s && t);
    assert_int_equal(na, nb);
    for (size_t i = 0; i < na; i++) {
        assert_int_equal(s[i].size, t[i].size);
        assert_int_equal(s[i].count, t[i].count);
        assert_int_equal(s[i].site.line, t[i].site.line);
        assert_string_equal(s[i].site.file, t[i].site.file);
    }
    tally_trace_release(s);
    tally_trace_release(t);
    tally_trace_snapshot_free(a);
    tally_trace_snapshot_free(b);
    release_all(x, kx, 64);
    release_all(y, ky, 64);
    assert_int_equal(cur(x), 0);
    assert_int_equal(cur(y), 0);
    tally_close(x);
    tally_close(y);
}

/* ---- the API: bad arguments, restarts, seeds -------------------------------------------- */

static void test_bad_arguments(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    assert_int_equal(tally_trace_get_sampling(rt), 0);
    assert_int_equal(tally_trace_start_sampled(rt, 0, 4096), -1);
    assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
    assert_int_equal(tally_trace_start_sampled(rt, TALLY_TRACE_MAX_FRAMES + 1, 4096), -1);
    assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
    assert_int_equal(tally_trace_start_sampled(rt, 1, TALLY_TRACE_MAX_SAMPLE + 1), -1);
    assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
    assert_int_equal(tally_trace_start_sampled(rt, 1, SIZE_MAX), -1);
    assert_false(tally_trace_is_tracing(rt));

    /* while tracing: a bad call changes nothing */
    tally_clear_error(rt);
    assert_int_equal(tally_trace_start_sampled(rt, 1, TALLY_TRACE_MAX_SAMPLE), 0);
    void *big = tally_malloc(rt, 5 * MiB); /* recorded only if the draw allows: not asserted */
    assert_non_null(big);
    size_t c = cur(rt), t;
    tally_trace_stats st;
    tally_trace_get_stats(rt, &st);
    t = st.traces;
    assert_int_equal(tally_trace_start_sampled(rt, 1, TALLY_TRACE_MAX_SAMPLE + 1), -1);
    assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
    assert_int_equal(tally_trace_start_sampled(rt, -3, 0), -1);
    assert_int_equal(tally_trace_get_sampling(rt), TALLY_TRACE_MAX_SAMPLE);
    assert_int_equal(tally_trace_get_traceback_limit(rt), 1);
    assert_int_equal(cur(rt), c);
    tally_trace_get_stats(rt, &st);
    assert_int_equal(st.traces, t);
    tally_free(rt, big);
    assert_int_equal(cur(rt), 0);
    tally_trace_stop(rt);
    assert_int_equal(tally_trace_get_sampling(rt), 0);
    tally_close(rt);
}

static void test_restart_changes_the_mean(void **state)
{
    (void)state;
    const size_t R = 1024;
    tally_rt *rt = open_sampled(R);
    void *p[2000];
    for (int i = 0; i < 2000; i++)
        assert_non_null(p[i] = tally_malloc(rt, 100));
    tally_trace_stats st;
    tally_trace_get_stats(rt, &st);
    assert_true(st.traces > 0 && st.traces < 2000);
    tally_trace_snapshot *before = tally_trace_take_snapshot(rt);
    assert_non_null(before);

    /* the same mean: the traces stay (only the limit changes) */
    assert_int_equal(tally_trace_start_sampled(rt, 3, R), 0);
    tally_trace_stats again;
    tally_trace_get_stats(rt, &again);
    assert_int_equal(again.traces, st.traces);
    assert_int_equal(again.current, st.current);
    assert_int_equal(again.nframes, 3);

    /* another mean (here 0, as tally_trace_start): the old traces are forgotten */
    assert_int_equal(tally_trace_start(rt, 1), 0);
    assert_int_equal(tally_trace_get_sampling(rt), 0);
    tally_trace_get_stats(rt, &st);
    assert_int_equal(st.traces, 0);
    assert_int_equal(st.current, 0);
    assert_int_equal(st.peak, 0);
    assert_int_equal(tally_trace_get_traceback(rt, p[0], NULL, NULL, NULL), -1);
    void *q[100];
    for (int i = 0; i < 100; i++) /* every allocation is recorded, exactly */
        assert_non_null(q[i] = tally_malloc(rt, 100));
    assert_int_equal(cur(rt), 100 * 100);
    for (int i = 0; i < 2000; i++) /* frees of the forgotten traces count nothing */
        tally_free(rt, p[i]);
    assert_int_equal(cur(rt), 100 * 100);

    /* and back to sampling: later allocations are sampled */
    assert_int_equal(tally_trace_start_sampled(rt, 1, R), 0);
    assert_int_equal(cur(rt), 0);
    for (int i = 0; i < 2000; i++)
        assert_non_null(p[i] = tally_malloc(rt, 100));
    tally_trace_get_stats(rt, &st);
    assert_true(st.traces > 0 && st.traces < 2000);
    assert_int_equal(st.sample, R);

    /* the snapshot taken before keeps its own mean */
    assert_int_equal(tally_trace_snapshot_sampling(before), R);
    tally_trace_snapshot_free(before);
    for (int i = 0; i < 100; i++)
        tally_free(rt, q[i]);
    for (int i = 0; i < 2000; i++)
        tally_free(rt, p[i]);
    assert_int_equal(cur(rt), 0);
    tally_close(rt);
}

/* Which of n blocks of `size` bytes are recorded, as a bit string. */
static void sampled_pattern(tally_rt *rt, size_t size, char *out, size_t n)
{
    void **p = malloc(n * sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) {
        p[i] = tally_malloc(rt, size);
        assert_non_null(p[i]);
        out[i] = tally_trace_get_traceback(rt, p[i], NULL, NULL, NULL) == 0 ? '1' : '0';
    }
    for (size_t i = 0; i < n; i++)
        tally_free(rt, p[i]);
    free(p);
}

static void test_seed_makes_runs_reproducible(void **state)
{
    (void)state;
    enum { N = 3000 };
    static char a[N + 1], b[N + 1], c[N + 1];
    tally_rt *x = open_sampled(2000), *y = open_sampled(2000);
    sampled_pattern(x, 40, a, N);
    sampled_pattern(y, 40, b, N);
    assert_memory_equal(a, b, N);
    tally_trace_seed(y, SEED + 1); /* takes effect at once */
    sampled_pattern(y, 40, c, N);
    assert_memory_not_equal(a, c, N);
    tally_trace_seed(x, SEED); /* the same seed again: the same decisions */
    sampled_pattern(x, 40, c, N);
    assert_memory_equal(a, c, N);
    /* about N * (1 - exp(-40/2000)) = 59.4 recorded, sd 7.6 */
    size_t ones = 0;
    for (int i = 0; i < N; i++)
        ones += a[i] == '1';
    assert_in_range(ones, 14, 105);
    tally_close(x);
    tally_close(y);
}

/* ---- allocation failure at every point --------------------------------------------- */

#define FSLOTS 24
#define FOPS 160

typedef struct fault_run {
    unsigned long total;   /* requests made by the ops (counting run) */
    unsigned long fired;   /* failures injected */
    int user_failures;     /* ops that returned failure */
    unsigned long long untraced; /* blocks the tracer could not record */
} fault_run;

static void fill(void *p, size_t n, int tag)
{
    memset(p, tag & 0xff, n);
}

static int intact(const void *p, size_t n, int tag)
{
    return all_bytes_are(p, n, (uint8_t)(tag & 0xff));
}

/* Runs the scripted ops with the nth allocation request failing (0: none), checks
 * that nothing is lost, frees all and checks that current returns to 0. */
static void fault_scenario(unsigned long nth, fault_run *out)
{
    tally_rt *rt = open_hosted(NULL, 0);
    tally_trace_seed(rt, SEED);
    assert_int_equal(tally_trace_start_sampled(rt, 1, 300), 0);
    void *slot[FSLOTS] = {0};
    size_t size[FSLOTS] = {0};
    int tag[FSLOTS] = {0};
    test_rng rng = {11};
    tally_fault_inject(rt, TALLY_FAULT_ALLOC, nth ? nth : ULONG_MAX, 0);
    unsigned long req0 = tally_fault_requests(rt, TALLY_FAULT_ALLOC);
    out->user_failures = 0;
    for (int i = 0; i < FOPS; i++) {
        int k = (int)rng_below(&rng, FSLOTS);
        size_t n = rng_below(&rng, 5) == 0 ? 300 + rng_below(&rng, 40000) : 1 + rng_below(&rng, 299);
        unsigned kind = (unsigned)rng_below(&rng, 4);
        tally_clear_error(rt);
        if (kind == 0 || slot[k] == NULL) { /* malloc */
            void *p = tally_malloc(rt, n);
            if (p == NULL) {
                assert_int_equal(tally_last_error(rt), TALLY_EFAULT);
                out->user_failures++;
                continue;
            }
            tally_free(rt, slot[k]);
            fill(p, n, i);
            slot[k] = p, size[k] = n, tag[k] = i;
        } else if (kind == 1) { /* realloc: on failure the old block is intact */
            void *p = tally_realloc(rt, slot[k], n);
            if (p == NULL) {
                assert_int_equal(tally_last_error(rt), TALLY_EFAULT);
                assert_true(intact(slot[k], size[k], tag[k]));
                out->user_failures++;
                continue;
            }
            assert_true(intact(p, n < size[k] ? n : size[k], tag[k]));
            fill(p, n, i);
            slot[k] = p, size[k] = n, tag[k] = i;
        } else if (kind == 2) { /* a list growing in place */
            void *l = tally_list(rt, 0);
            if (l == NULL) {
                out->user_failures++;
                continue;
            }
            for (int j = 0; j < 12; j++)
                if (tally_list_append(l, l) != 0) {
                    out->user_failures++;
                    break;
                }
            tally_list_clear(l);
            tally_decref(l);
        } else { /* free */
            tally_free(rt, slot[k]);
            slot[k] = NULL;
        }
        assert_int_equal(tally_last_error(rt) == TALLY_OK || tally_last_error(rt) == TALLY_EFAULT, 1);
    }
    out->total = tally_fault_requests(rt, TALLY_FAULT_ALLOC) - req0;
    out->fired = tally_fault_failures(rt, TALLY_FAULT_ALLOC);
    tally_fault_inject(rt, TALLY_FAULT_ALLOC, 0, 0);

    /* the figures agree: statistics sum to current, traces to the snapshot */
    tally_trace_stats st;
    tally_trace_get_stats(rt, &st);
    out->untraced = st.untraced;
    tally_trace_snapshot *snap = tally_trace_take_snapshot(rt);
    assert_non_null(snap);
    assert_int_equal(tally_trace_snapshot_count(snap, NULL), st.traces);
    size_t n, sum = 0;
    tally_trace_stat *s = tally_trace_statistics(snap, TALLY_TRACE_BY_LINE, &n);
    assert_non_null(s);
    for (size_t i = 0; i < n; i++)
        sum += s[i].size;
    assert_int_equal(sum, st.current);
    tally_trace_release(s);
    tally_trace_snapshot_free(snap);
    for (int k = 0; k < FSLOTS; k++) {
        if (slot[k] != NULL)
            assert_true(intact(slot[k], size[k], tag[k]));
        tally_free(rt, slot[k]);
    }
    tally_trace_get_stats(rt, &st);
    assert_int_equal(st.current, 0);
    assert_int_equal(st.traces, 0);
    tally_close(rt);
}

static void test_fault_at_every_point_while_sampling(void **state)
{
    (void)state;
    fault_run ref;
    fault_scenario(0, &ref);
    assert_int_equal(ref.fired, 0);
    assert_int_equal(ref.user_failures, 0);
    assert_true(ref.total > FOPS);
    assert_int_equal(ref.untraced, 0);
    unsigned long fired = 0, lost_traces = 0;
    for (unsigned long nth = 1; nth <= ref.total + 2; nth++) {
        fault_run r;
        fault_scenario(nth, &r);
        fired += r.fired;
        lost_traces += r.untraced != 0;
        assert_true(r.user_failures <= 1); /* one failure at most, and only if it was the op's */
        assert_true(r.untraced <= 1);      /* a tracer's failure costs one trace, no more */
        assert_true(r.user_failures + (r.untraced != 0) <= 1);
    }
    assert_true(fired >= ref.total);
    assert_true(lost_traces > 0); /* the tracer's own requests were failed too */
}

int main(void)
{
    unsetenv("TALLY_DEBUG");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_estimate_of_many_blocks),
        cmocka_unit_test(test_blocks_of_the_mean_or_more_always_recorded),
        cmocka_unit_test(test_free_restores_exact_current),
        cmocka_unit_test(test_statistics_and_compare_scale),
        cmocka_unit_test(test_mean_zero_is_plain_tracing),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_restart_changes_the_mean),
        cmocka_unit_test(test_seed_makes_runs_reproducible),
        cmocka_unit_test(test_fault_at_every_point_while_sampling),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
