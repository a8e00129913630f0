/* test_trace.c - allocation tracing (tally/trace.h): the API, exact current and
 * peak for known sequences, sites and native stacks, objects (freed by count and
 * by the collector), containers that grow in place, start/stop/restart, debug
 * mode, statistics, compare and filters.
 *
 * Sizes are the sizes requested, so every figure below is known in advance.  The
 * independent check of the trace table is debug mode, where the heap itself
 * counts requested sizes: there, the heap's bytes in use grow by exactly the
 * traced bytes plus the tracer's own tables.
 */
#define _GNU_SOURCE
#include "test_objects.h"
#include "tally/tally.h"
#include "test_trace_util.h"

/* Helpers whose frames the stack tests look for must stay functions of their own. */
#define TALLY_NOINLINE_TEST __attribute__((noinline, noclone))

static tally_rt *open_traced(int nframes)
{
    tally_rt *rt = open_hosted(NULL, 0);
    assert_int_equal(tally_trace_start(rt, nframes), 0);
    return rt;
}

/* ---- the API --------------------------------------------------------------------- */

static void test_api_errors(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    assert_false(tally_trace_is_tracing(rt));
    assert_int_equal(tally_trace_get_traceback_limit(rt), 0);
    assert_int_equal(tally_trace_start(rt, 0), -1);
    assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
    assert_int_equal(tally_trace_start(rt, TALLY_TRACE_MAX_FRAMES + 1), -1);
    assert_false(tally_trace_is_tracing(rt));
    void *p = tally_malloc(rt, 100); /* not traced: tracing is off */
    assert_int_equal(cur(rt), 0);
    assert_null(tally_trace_take_snapshot(rt));
    assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
    assert_int_equal(tally_trace_get_traceback(rt, p, NULL, NULL, NULL), -1);
    assert_int_equal(tally_trace_start(rt, TALLY_TRACE_MAX_FRAMES), 0);
    assert_true(tally_trace_is_tracing(rt));
    assert_int_equal(tally_trace_get_traceback_limit(rt), TALLY_TRACE_MAX_FRAMES);
    assert_int_equal(tally_trace_start(rt, 3), 0); /* while tracing: a new limit */
    assert_int_equal(tally_trace_get_traceback_limit(rt), 3);
    tally_free(rt, p);
    tally_trace_stop(rt);
    tally_trace_stop(rt); /* twice: nothing */
    tally_close(rt);
}

/* ---- exact current and peak --------------------------------------------------------- */

static void test_malloc_calloc_realloc_exact(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    char *before = tally_malloc(rt, 50); /* allocated before tracing: never traced */
    assert_int_equal(tally_trace_start(rt, 1), 0);
    assert_int_equal(cur(rt), 0);
    char *a = tally_malloc(rt, 100);
    assert_int_equal(cur(rt), 100);
    assert_int_equal(peak(rt), 100);
    int *b = tally_calloc(rt, 10, 30);
    assert_int_equal(cur(rt), 400);
    tally_free(rt, a);
    assert_int_equal(cur(rt), 300);
    assert_int_equal(peak(rt), 400);
    b = tally_realloc(rt, b, 1000); /* grows out of its class: moves */
    assert_non_null(b);
    assert_int_equal(cur(rt), 1000);
    assert_int_equal(peak(rt), 1000);
    b = tally_realloc(rt, b, 990); /* stays in place */
    assert_int_equal(cur(rt), 990);
    b = tally_realloc(rt, b, 10); /* shrinks: moves to a small class */
    assert_int_equal(cur(rt), 10);
    assert_int_equal(peak(rt), 1000);
    tally_free(rt, before); /* untraced block freed: nothing changes */
    assert_int_equal(cur(rt), 10);
    void *z = tally_malloc(rt, 0); /* a zero-byte request counts one block, 0 bytes */
    assert_non_null(z);
    tally_trace_stats st;
    tally_trace_get_stats(rt, &st);
    assert_int_equal(st.traces, 2);
    assert_int_equal(st.current, 10);
    assert_int_equal(st.untraced, 0);
    assert_int_equal(st.nframes, 1);
    assert_true(st.overhead > 0);
    tally_free(rt, z);
    tally_free(rt, b);
    assert_int_equal(cur(rt), 0);
    assert_int_equal(peak(rt), 1000);
    tally_trace_reset_peak(rt);
    assert_int_equal(peak(rt), 0);
    void *r = tally_realloc(rt, NULL, 77); /* realloc(NULL) allocates */
    assert_int_equal(cur(rt), 77);
    tally_free(rt, r);
    /* A block allocated before tracing and realloc'ed while tracing is traced from
     * then on (tracemalloc does the same: a realloc is an allocation). */
    tally_trace_stop(rt);
    char *old = tally_malloc(rt, 40);
    assert_int_equal(tally_trace_start(rt, 1), 0);
    old = tally_realloc(rt, old, 4000);
    assert_int_equal(cur(rt), 4000);
    tally_free(rt, old);
    assert_int_equal(cur(rt), 0);
    /* An overflowing calloc, a failed realloc and a double free change nothing. */
    assert_null(tally_calloc(rt, SIZE_MAX / 2, 4));
    void *keep = tally_malloc(rt, 64);
    assert_null(tally_realloc(rt, keep, SIZE_MAX / 2));
    assert_int_equal(cur(rt), 64);
    tally_free(rt, keep);
    tally_free(rt, keep); /* reported, discarded */
    assert_int_equal(cur(rt), 0);
    assert_consistent(rt);
    tally_close(rt);
}

static void test_large_and_huge_exact(void **state)
{
    (void)state;
    tally_rt *rt = open_traced(1);
    size_t arena = test_arena_size();
    char *l = tally_malloc(rt, 100 * KiB);
    assert_int_equal(cur(rt), 100 * KiB);
    l = tally_realloc(rt, l, 200 * KiB); /* large: in place if the pools after are free */
    assert_int_equal(cur(rt), 200 * KiB);
    l = tally_realloc(rt, l, 150 * KiB);
    assert_int_equal(cur(rt), 150 * KiB);
    char *hg = tally_malloc(rt, 2 * arena);
    assert_int_equal(cur(rt), 150 * KiB + 2 * arena);
    for (size_t n = 3; n < 12; n += 2) { /* huge: remapped in place or moved */
        hg = tally_realloc(rt, hg, n * arena + 123);
        assert_non_null(hg);
        assert_int_equal(cur(rt), 150 * KiB + n * arena + 123);
    }
    assert_int_equal(peak(rt), 150 * KiB + 11 * arena + 123);
    hg = tally_realloc(rt, hg, 1000); /* back to a small block */
    assert_int_equal(cur(rt), 150 * KiB + 1000);
    size_t sz;
    tally_trace_site site;
    void *frames[TALLY_TRACE_MAX_FRAMES];
    assert_int_equal(tally_trace_get_traceback(rt, hg, &site, &sz, frames), 0);
    assert_int_equal(sz, 1000);
    tally_free(rt, hg);
    tally_free(rt, l);
    assert_int_equal(cur(rt), 0);
    assert_consistent(rt);
    tally_close(rt);
}

/* ---- sites ---------------------------------------------------------------------- */

static void test_sites(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    to_register(rt, &LEAF_NOFIN);
    void *warm = tally_str(rt, "warm-up"); /* interning tables etc. made before tracing */
    tally_decref(warm);
    assert_int_equal(tally_trace_start(rt, 1), 0);
    tally_trace_site site;
    size_t size;
    void *frames[TALLY_TRACE_MAX_FRAMES];

    void *p = tally_malloc(rt, 24); int line_p = __LINE__;
    assert_int_equal(tally_trace_get_traceback(rt, p, &site, &size, frames), 0);
    assert_string_equal(site.file, __FILE__);
    assert_int_equal(site.line, line_p);
    assert_int_equal(site.nframes, 0);
    assert_null(site.frames);
    assert_int_equal(size, 24);

    void *q = (tally_malloc)(rt, 24); /* the plain function: no site */
    assert_int_equal(tally_trace_get_traceback(rt, q, &site, &size, frames), 0);
    assert_string_equal(site.file, "<unknown>");
    assert_int_equal(site.line, 0);

    node *o = tally_new(rt, &LEAF_NOFIN); int line_o = __LINE__;
    assert_non_null(o);
    assert_int_equal(tally_trace_get_traceback(rt, o, &site, &size, frames), 0); /* by object */
    assert_string_equal(site.file, __FILE__);
    assert_int_equal(site.line, line_o);
    assert_int_equal(size, sizeof(node) + tally_type_overhead(&LEAF_NOFIN));
    assert_int_equal(cur(rt), 48 + size);

    /* A str made by the library is traced where the library makes it. */
    void *s = tally_str(rt, "hello, tracing");
    assert_non_null(s);
    assert_int_equal(tally_trace_get_traceback(rt, s, &site, &size, frames), 0);
    assert_string_equal(site.file, "src/types/str.c");
    assert_true(site.line > 0);
    assert_true(size >= strlen("hello, tracing") + 1); /* the request, not the block */
    assert_true(size <= tally_sizeof(s));

    assert_int_equal(tally_trace_get_traceback(rt, &site, &site, &size, frames), -1); /* foreign */
    void *gone = tally_malloc(rt, 8);
    tally_free(rt, gone);
    assert_int_equal(tally_trace_get_traceback(rt, gone, &site, &size, frames), -1); /* freed */
    tally_decref(s);
    tally_decref(o);
    tally_free(rt, q);
    tally_free(rt, p);
    assert_int_equal(cur(rt), 0);
    tally_close(rt);
}

/* Allocates n bytes from here and returns the address it returns to: frames[0] of
 * the block's stack lies in this function, frames[1] is *ret. */
static TALLY_NOINLINE_TEST void *alloc_here(tally_rt *rt, size_t n, void **ret);

static void *alloc_here(tally_rt *rt, size_t n, void **ret)
{
    void *volatile p = tally_malloc(rt, n);
    *ret = __builtin_return_address(0);
    return p;
}

static TALLY_NOINLINE_TEST void *str_here(tally_rt *rt, void **ret);

static void *str_here(tally_rt *rt, void **ret)
{
    void *volatile s = tally_str(rt, "a str with a stack");
    *ret = __builtin_return_address(0);
    return s;
}

static int in_function(const void *addr, void *fn)
{
    uintptr_t a = (uintptr_t)addr, f = (uintptr_t)fn;
    return a > f && a < f + 512; /* the helpers are a few dozen instructions */
}

static void test_stacks(void **state)
{
    (void)state;
    tally_rt *rt = open_traced(8);
    void *ret1, *ret2;
    void *p = alloc_here(rt, 40, &ret1);
    void *q = alloc_here(rt, 40, &ret2); /* another call: another stack, another site */
    tally_trace_site site;
    size_t size;
    void *frames[TALLY_TRACE_MAX_FRAMES];
    assert_int_equal(tally_trace_get_traceback(rt, p, &site, &size, frames), 0);
    assert_string_equal(site.file, __FILE__);
    assert_true(site.nframes >= 2 && site.nframes <= 8);
    assert_ptr_equal(site.frames, frames);
    assert_true(in_function(frames[0], (void *)alloc_here));
    assert_ptr_equal(frames[1], ret1); /* then the test function that called it */
    void *f0 = frames[0];
    assert_int_equal(tally_trace_get_traceback(rt, q, &site, &size, frames), 0);
    assert_ptr_equal(frames[0], f0);
    assert_ptr_equal(frames[1], ret2);
    tally_trace_stats st;
    tally_trace_get_stats(rt, &st);
    assert_int_equal(st.sites, 2);

    /* Through the library: the site is str.c, the stack shows the caller. */
    void *s = str_here(rt, &ret1);
    assert_int_equal(tally_trace_get_traceback(rt, s, &site, &size, frames), 0);
    assert_string_equal(site.file, "src/types/str.c");
    int found = 0;
    for (int i = 0; i + 1 < site.nframes; i++)
        found |= in_function(frames[i], (void *)str_here) && frames[i + 1] == ret1;
    assert_true(found);

    /* Same stack again: deduplicated. */
    for (volatile int i = 0; i < 10; i++) {
        void *x = alloc_here(rt, 8, &ret2);
        tally_free(rt, x);
    }
    tally_trace_get_stats(rt, &st);
    assert_int_equal(st.sites, 4); /* p, q, the str, the loop's one */
    /* A limit of 1 records no native stack. */
    tally_trace_stop(rt);
    assert_int_equal(tally_trace_start(rt, 1), 0);
    void *r = alloc_here(rt, 8, &ret1);
    assert_int_equal(tally_trace_get_traceback(rt, r, &site, &size, frames), 0);
    assert_int_equal(site.nframes, 0);
    tally_free(rt, r);
    tally_decref(s);
    tally_free(rt, p);
    tally_free(rt, q);
    tally_close(rt);
}

/* An unwinder of the test's own: a fixed stack of made-up addresses, or whatever
 * count it is told to claim (to see that a bad count is clamped). */
static int fake_calls;
static int fake_claim = -2; /* -2: the true count */

static int fake_unwind(void **frames, int max)
{
    static char code[16];
    fake_calls++;
    int n = max < 5 ? max : 5;
    for (int i = 0; i < n; i++)
        frames[i] = code + i;
    for (int i = n; fake_claim > max && i < max; i++) /* a claim above max: all filled */
        frames[i] = code + n;
    return fake_claim == -2 ? n : fake_claim;
}

static void test_unwinder(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    assert_null(tally_trace_get_unwinder(rt));
    fake_calls = 0;
    tally_trace_set_unwinder(rt, fake_unwind);
    assert_int_equal(fake_calls, 1); /* warmed up at once */
    assert_ptr_equal(tally_trace_get_unwinder(rt), fake_unwind);
    assert_int_equal(tally_trace_start(rt, 8), 0);
    void *p = tally_malloc(rt, 24);
    tally_trace_site site;
    size_t size;
    void *frames[TALLY_TRACE_MAX_FRAMES];
    assert_int_equal(tally_trace_get_traceback(rt, p, &site, &size, frames), 0);
    assert_int_equal(site.nframes, 5); /* the caller is not among them: all kept */
    assert_ptr_equal(frames[0], (char *)frames[1] - 1);
    /* Counts out of range are clamped: below 0 is none, above max is max. */
    fake_claim = -7;
    void *q = tally_malloc(rt, 25);
    assert_int_equal(tally_trace_get_traceback(rt, q, &site, &size, frames), 0);
    assert_int_equal(site.nframes, 0);
    fake_claim = 1 << 20;
    void *r = tally_malloc(rt, 26);
    assert_int_equal(tally_trace_get_traceback(rt, r, &site, &size, frames), 0);
    assert_int_equal(site.nframes, 8);
    fake_claim = -2;
    /* Kept across stop and start; NULL brings backtrace() back. */
    tally_trace_stop(rt);
    assert_ptr_equal(tally_trace_get_unwinder(rt), fake_unwind);
    tally_trace_set_unwinder(rt, NULL);
    assert_int_equal(tally_trace_start(rt, 8), 0);
    void *ret;
    void *t = alloc_here(rt, 40, &ret);
    assert_int_equal(tally_trace_get_traceback(rt, t, &site, &size, frames), 0);
    assert_true(in_function(frames[0], (void *)alloc_here));
    assert_ptr_equal(frames[1], ret);
    tally_free(rt, p);
    tally_free(rt, q);
    tally_free(rt, r);
    tally_free(rt, t);
    tally_close(rt);
}

/* ---- objects ------------------------------------------------------------------------- */

static void test_objects_and_collector(void **state)
{
    (void)state;
    to_reset();
    tally_rt *rt = open_hosted(NULL, 0);
    size_t base = to_baseline(rt); /* types registered, weakref table made */
    (void)base;
    assert_int_equal(tally_trace_start(rt, 1), 0);
    size_t leaf = sizeof(node) + tally_type_overhead(&LEAF_NOFIN);
    size_t cont = sizeof(node) + tally_type_overhead(&NODE_NOFIN);
    assert_int_equal(cont, leaf + 8);
    node *l = mk(rt, &LEAF_NOFIN, 1);
    assert_int_equal(cur(rt), leaf);
    tally_decref(l); /* freed by count: its block goes to a free stack, which reports it */
    assert_int_equal(cur(rt), 0);
    node *a = mk(rt, &NODE_NOFIN, 2), *b = mk(rt, &NODE_NOFIN, 3);
    link_to(&a->next, b);
    link_to(&b->next, a);
    tally_decref(a);
    tally_decref(b);
    assert_int_equal(cur(rt), 2 * cont); /* a cycle: alive until collected */
    assert_int_equal(tally_gc_collect(rt, 2), 2);
    assert_int_equal(cur(rt), 0);
    assert_int_equal(peak(rt), 2 * cont);
    /* A ring of 100 with finalizers, collected. */
    node *ring = mk_ring(rt, &NODE, 100, 10);
    assert_int_equal(cur(rt), 100 * cont);
    tally_decref(ring);
    assert_true(tally_gc_collect(rt, 2) >= 100);
    assert_int_equal(cur(rt), 0);
    assert_consistent(rt);
    tally_close(rt);
}

/* While tracing, the object free stacks stay in use: a block pushed is reported
 * freed, a block popped is reported allocated at the new object's site, whether
 * it was pushed before tracing started or after. */
static void test_free_stacks_while_tracing(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    enum { PRE = 8, N = 40 };
    void *o[N];
    for (int i = 0; i < PRE; i++)
        o[i] = tally_int(rt, 100000 + i);
    void *last_pushed = o[PRE - 1];
    for (int i = 0; i < PRE; i++)
        tally_decref(o[i]); /* onto a free stack, untraced */
    assert_int_equal(tally_trace_start(rt, 1), 0);
    o[0] = tally_int(rt, 200000);
    if (!test_on_valgrind()) /* where the heap checks every call, the stacks are off */
        assert_ptr_equal(o[0], last_pushed); /* popped from the stack */
    size_t each = cur(rt);
    assert_true(each > 0);
    for (int i = 1; i < N; i++) /* PRE - 1 more from the stack, then from the heap */
        o[i] = tally_int(rt, 200000 + i);
    tally_trace_stats st;
    tally_trace_get_stats(rt, &st);
    assert_int_equal(st.traces, N);
    assert_int_equal(st.current, N * each);
    tally_trace_site first, last;
    size_t size;
    void *frames[TALLY_TRACE_MAX_FRAMES];
    assert_int_equal(tally_trace_get_traceback(rt, o[0], &first, &size, frames), 0);
    assert_int_equal(size, each);
    assert_int_equal(tally_trace_get_traceback(rt, o[N - 1], &last, &size, frames), 0);
    assert_string_equal(first.file, last.file); /* one site, by either road */
    assert_int_equal(first.line, last.line);
    assert_consistent(rt);
    for (int i = 0; i < N; i++) /* some onto the stack, the rest to the heap */
        tally_decref(o[i]);
    tally_trace_get_stats(rt, &st);
    assert_int_equal(st.traces, 0);
    assert_int_equal(st.current, 0);
    assert_int_equal(st.peak, N * each);
    for (int i = 0; i < N; i++)
        o[i] = tally_int(rt, 300000 + i);
    assert_int_equal(cur(rt), N * each);
    assert_consistent(rt);
    tally_trace_stop(rt); /* traces gone; blocks keep their place in stacks and pools */
    for (int i = 0; i < N / 2; i++)
        tally_decref(o[i]);
    assert_int_equal(tally_trace_start(rt, 1), 0); /* links to old records were cleared */
    for (int i = 0; i < N / 2; i++)
        o[i] = tally_int(rt, 400000 + i);
    assert_int_equal(cur(rt), N / 2 * each);
    assert_consistent(rt);
    for (int i = 0; i < N; i++)
        tally_decref(o[i]);
    assert_int_equal(cur(rt), 0);
    tally_close(rt);
}

static void test_list_growth(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    void *seven = tally_int(rt, 7); /* a small int: immortal, never allocated */
    void *warm = tally_list(rt, 0);
    tally_decref(warm);
    assert_int_equal(tally_trace_start(rt, 1), 0);
    void *l = tally_list(rt, 0);
    assert_non_null(l);
    size_t obj = cur(rt), empty = tally_sizeof(l); /* no item array yet */
    assert_true(obj > 0);
    size_t n = test_scale(400000, 4); /* the array becomes large, then huge (3.2 MB) */
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(tally_list_append(l, seven), 0);
        if ((i & (i + 1)) == 0 || i + 1 == n) /* at powers of two, and at the end */
            assert_consistent(rt);
    }
    /* The item array's trace follows it as it grows in place or moves: its size
     * is the last one requested, within a pool of the array's usable size (the
     * growth steps are 1/8: a stale trace would be several pools short). */
    tally_trace_snapshot *snap = tally_trace_take_snapshot(rt);
    size_t ns;
    tally_trace_stat *st = tally_trace_statistics(snap, TALLY_TRACE_BY_LINE, &ns);
    assert_non_null(st);
    assert_int_equal(ns, 2); /* the list object, its array */
    assert_string_equal(st[0].site.file, "src/types/list.c");
    assert_int_equal(st[0].count, 1);
    size_t array = tally_sizeof(l) - empty; /* the array's usable bytes */
    assert_true(array >= n * sizeof(void *));
    assert_true(st[0].size <= array);
    assert_true(st[0].size + test_pool_size() > array);
    assert_int_equal(cur(rt), obj + st[0].size);
    tally_trace_release(st);
    tally_trace_snapshot_free(snap);
    tally_decref(l);
    assert_int_equal(cur(rt), 0);
    tally_close(rt);
}

/* ---- start, stop, restart ------------------------------------------------------------- */

static void test_start_stop_restart(void **state)
{
    (void)state;
    tally_rt *rt = open_traced(1);
    void *a = tally_malloc(rt, 1000);
    void *b = tally_malloc(rt, 500);
    assert_int_equal(cur(rt), 1500);
    struct tally_heap_stats hs = get_stats(rt);
    size_t with_tables = hs.bytes_in_use;
    assert_true(tally_trace_get_overhead(rt) > 0);
    tally_trace_stop(rt);
    assert_false(tally_trace_is_tracing(rt));
    assert_int_equal(cur(rt), 0);
    assert_int_equal(peak(rt), 0);
    assert_int_equal(tally_trace_get_overhead(rt), 0);
    hs = get_stats(rt);
    assert_true(hs.bytes_in_use < with_tables); /* the tables went back to the heap */
    tally_free(rt, a); /* freed while stopped */
    assert_int_equal(tally_trace_start(rt, 4), 0);
    assert_int_equal(cur(rt), 0); /* a fresh start: b is not traced */
    tally_free(rt, b);
    assert_int_equal(cur(rt), 0);
    void *c = tally_malloc(rt, 33);
    assert_int_equal(cur(rt), 33);
    tally_trace_snapshot *snap = tally_trace_take_snapshot(rt);
    tally_trace_stop(rt);
    /* A snapshot outlives the tracer. */
    tally_trace t;
    assert_int_equal(tally_trace_snapshot_count(snap, NULL), 1);
    assert_int_equal(tally_trace_snapshot_get(snap, 0, &t), 0);
    assert_int_equal(t.size, 33);
    assert_string_equal(t.site.file, __FILE__);
    assert_true(t.site.nframes >= 1);
    assert_int_equal(tally_trace_snapshot_get(snap, 1, &t), -1);
    assert_int_equal(tally_trace_snapshot_limit(snap), 4);
    tally_trace_snapshot_free(snap);
    tally_free(rt, c);
    /* Closing a runtime that traces releases everything. */
    assert_int_equal(tally_trace_start(rt, 2), 0);
    for (int i = 0; i < 1000; i++)
        (void)tally_malloc(rt, 16 + (size_t)i);
    tally_close(rt);
}

/* ---- debug mode: the heap's own count of requested sizes agrees ---------------------- */

static void debug_mix(tally_rt *rt)
{
    size_t base = bytes_in_use(rt);
    assert_int_equal(tally_trace_start(rt, 1), 0);
    void *v[64] = {0};
    test_rng rng = {42};
    for (int i = 0; i < 3000; i++) {
        size_t k = rng_below(&rng, 64);
        size_t n = rng_below(&rng, 3000);
        switch (rng_below(&rng, 4)) {
        case 0:
            tally_free(rt, v[k]);
            v[k] = tally_malloc(rt, n);
            break;
        case 1: {
            void *q = tally_realloc(rt, v[k], n);
            if (q)
                v[k] = q;
            break;
        }
        case 2:
            tally_free(rt, v[k]);
            v[k] = tally_calloc(rt, n, 3);
            break;
        default:
            tally_free(rt, v[k]);
            v[k] = NULL;
        }
        /* Debug mode counts requested bytes: heap growth = traces + tables. */
        assert_int_equal(bytes_in_use(rt) - base, cur(rt) + tally_trace_get_overhead(rt));
    }
    assert_consistent(rt);
    for (int k = 0; k < 64; k++)
        tally_free(rt, v[k]);
    assert_int_equal(cur(rt), 0);
    tally_trace_stop(rt);
    assert_int_equal(bytes_in_use(rt), base);
}

static void test_debug_mode(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, TALLY_DEBUG_GUARDS);
    debug_mix(rt);
    assert_int_equal(tally_heap_check(rt), 0);
    tally_close(rt);
    /* The same through the environment, as a user would set it. */
    setenv("TALLY_DEBUG", "1", 1);
    tally_rt *env = tally_open(NULL);
    unsetenv("TALLY_DEBUG");
    assert_non_null(env);
    assert_int_equal(get_stats(env).debug, 1);
    debug_mix(env);
    tally_close(env);
}

/* ---- statistics, compare, filters ----------------------------------------------------- */

static int line_a, line_b, line_c;

static void *alloc_a(tally_rt *rt) { line_a = __LINE__; return tally_malloc(rt, 100); }
static void *alloc_b(tally_rt *rt) { line_b = __LINE__; return tally_malloc(rt, 1000); }
static void *alloc_c(tally_rt *rt) { line_c = __LINE__; return tally_malloc(rt, 10); }

static const tally_trace_stat *find_stat(const tally_trace_stat *st, size_t n, int line)
{
    for (size_t i = 0; i < n; i++)
        if (st[i].site.line == line)
            return &st[i];
    return NULL;
}

static void test_statistics(void **state)
{
    (void)state;
    tally_rt *rt = open_traced(1);
    void *a[3], *b, *c[2];
    for (int i = 0; i < 3; i++)
        a[i] = alloc_a(rt);
    b = alloc_b(rt);
    for (int i = 0; i < 2; i++)
        c[i] = alloc_c(rt);
    void *s = tally_str(rt, "stats"); /* another file */
    size_t str_size;
    assert_int_equal(tally_trace_get_traceback(rt, s, NULL, &str_size, NULL), 0);
    tally_trace_snapshot *s1 = tally_trace_take_snapshot(rt);
    assert_non_null(s1);

    size_t n;
    tally_trace_stat *st = tally_trace_statistics(s1, TALLY_TRACE_BY_LINE, &n);
    assert_non_null(st);
    assert_int_equal(n, 4);
    assert_int_equal(st[0].site.line, line_b);
    assert_int_equal(st[0].size, 1000);
    assert_int_equal(st[0].count, 1);
    assert_int_equal(st[1].site.line, line_a);
    assert_int_equal(st[1].size, 300);
    assert_int_equal(st[1].count, 3);
    assert_int_equal(st[1].average, 100);
    for (size_t i = 1; i < n; i++) /* sorted by size, largest first */
        assert_true(st[i - 1].size >= st[i].size);
    const tally_trace_stat *sc = find_stat(st, n, line_c);
    assert_non_null(sc);
    assert_int_equal(sc->size, 20);
    assert_int_equal(sc->count, 2);
    tally_trace_release(st);

    st = tally_trace_statistics(s1, TALLY_TRACE_BY_FILE, &n);
    assert_int_equal(n, 2);
    assert_string_equal(st[0].site.file, __FILE__);
    assert_int_equal(st[0].site.line, 0);
    assert_int_equal(st[0].size, 1320);
    assert_int_equal(st[0].count, 6);
    assert_int_equal(st[0].average, 220);
    assert_string_equal(st[1].site.file, "src/types/str.c");
    assert_int_equal(st[1].size, str_size);
    tally_trace_release(st);
    st = tally_trace_statistics(s1, TALLY_TRACE_BY_TRACEBACK, &n);
    assert_int_equal(n, 4); /* one frame: the same groups as by line */
    tally_trace_release(st);
    assert_null(tally_trace_statistics(s1, (tally_trace_key)9, &n));
    assert_int_equal(tally_last_error(rt), TALLY_EINVAL);

    /* compare: two more at a, b freed, one c freed. */
    void *a2[2];
    for (int i = 0; i < 2; i++)
        a2[i] = alloc_a(rt);
    tally_free(rt, b);
    tally_free(rt, c[0]);
    tally_trace_snapshot *s2 = tally_trace_take_snapshot(rt);
    tally_trace_diff *d = tally_trace_compare(s2, s1, TALLY_TRACE_BY_LINE, &n);
    assert_non_null(d);
    assert_int_equal(n, 4);
    assert_int_equal(d[0].site.line, line_b); /* |-1000| first */
    assert_int_equal(d[0].size, 0);
    assert_int_equal(d[0].count, 0);
    assert_int_equal(d[0].size_diff, -1000);
    assert_int_equal(d[0].count_diff, -1);
    assert_int_equal(d[1].site.line, line_a);
    assert_int_equal(d[1].size, 500);
    assert_int_equal(d[1].size_diff, 200);
    assert_int_equal(d[1].count_diff, 2);
    /* Then the unchanged str (size_diff 0, larger) and c (-10)... sorted by |diff|. */
    assert_int_equal(d[2].site.line, line_c);
    assert_int_equal(d[2].size_diff, -10);
    assert_int_equal(d[2].count_diff, -1);
    assert_int_equal(d[3].size_diff, 0);
    tally_trace_release(d);
    d = tally_trace_compare(s2, s1, TALLY_TRACE_BY_FILE, &n);
    assert_int_equal(n, 2);
    assert_int_equal(d[0].size_diff, 200 - 1000 - 10);
    tally_trace_release(d);

    /* filters */
    tally_trace_filter only_b = {1, "*test_trace.c", 0, 0, 0};
    tally_trace_snapshot *f = tally_trace_snapshot_filter(s1, &only_b, 1);
    size_t total;
    assert_int_equal(tally_trace_snapshot_count(f, &total), 6);
    assert_int_equal(total, 1320);
    tally_trace_snapshot_free(f);
    tally_trace_filter line_only = {1, __FILE__, line_b, 0, 0};
    f = tally_trace_snapshot_filter(s1, &line_only, 1);
    assert_int_equal(tally_trace_snapshot_count(f, &total), 1);
    assert_int_equal(total, 1000);
    tally_trace_snapshot_free(f);
    tally_trace_filter two[2] = {{1, "src/types/*", 0, 0, 0}, {1, NULL, line_c, 0, 0}}; /* either */
    f = tally_trace_snapshot_filter(s1, two, 2);
    assert_int_equal(tally_trace_snapshot_count(f, &total), 3);
    assert_int_equal(total, str_size + 20);
    tally_trace_snapshot_free(f);
    tally_trace_filter excl[2] = {{0, "src/*", 0, 0, 0}, {0, "*test_trace.c", line_a, 0, 0}};
    f = tally_trace_snapshot_filter(s1, excl, 2);
    assert_int_equal(tally_trace_snapshot_count(f, &total), 3);
    assert_int_equal(total, 1020);
    st = tally_trace_statistics(f, TALLY_TRACE_BY_LINE, &n); /* stats of a filtered one */
    assert_int_equal(n, 2);
    assert_int_equal(st[0].size, 1000);
    tally_trace_release(st);
    tally_trace_snapshot_free(f);
    tally_trace_filter mixed[2] = {{1, "*test_trace.c", 0, 0, 0}, {0, NULL, line_a, 0, 0}};
    f = tally_trace_snapshot_filter(s1, mixed, 2);
    assert_int_equal(tally_trace_snapshot_count(f, &total), 3);
    tally_trace_snapshot_free(f);
    f = tally_trace_snapshot_filter(s1, NULL, 0); /* no filters: a copy */
    assert_int_equal(tally_trace_snapshot_count(f, &total), 7);
    tally_trace_snapshot_free(f);

    tally_trace_snapshot_free(s1);
    tally_trace_snapshot_free(s2);
    tally_decref(s);
    for (int i = 0; i < 3; i++)
        tally_free(rt, a[i]);
    for (int i = 0; i < 2; i++)
        tally_free(rt, a2[i]);
    tally_free(rt, c[1]);
    assert_int_equal(cur(rt), 0);
    tally_close(rt);
}

/* Statistics by traceback: the same line reached from two callers are two groups. */
static TALLY_NOINLINE_TEST void *via_one(tally_rt *rt);
static TALLY_NOINLINE_TEST void *via_two(tally_rt *rt);
static void *via_one(tally_rt *rt)
{
    void *volatile p = alloc_a(rt);
    return p;
}
static void *via_two(tally_rt *rt)
{
    void *volatile p = alloc_a(rt);
    return p;
}

static void test_statistics_by_traceback(void **state)
{
    (void)state;
    tally_rt *rt = open_traced(6);
    void *p[5];
    /* One call site each (volatile: the loops are not unrolled into five). */
    for (volatile int i = 0; i < 2; i++)
        p[i] = via_one(rt);
    for (volatile int i = 2; i < 5; i++)
        p[i] = via_two(rt);
    tally_trace_snapshot *snap = tally_trace_take_snapshot(rt);
    size_t n;
    tally_trace_stat *st = tally_trace_statistics(snap, TALLY_TRACE_BY_LINE, &n);
    assert_int_equal(n, 1);
    assert_int_equal(st[0].count, 5);
    tally_trace_release(st);
    st = tally_trace_statistics(snap, TALLY_TRACE_BY_TRACEBACK, &n);
    assert_int_equal(n, 2);
    assert_int_equal(st[0].count, 3);
    assert_int_equal(st[0].size, 300);
    assert_int_equal(st[1].count, 2);
    assert_true(st[0].site.nframes >= 2);
    int saw_two = 0;
    for (int i = 0; i < st[0].site.nframes; i++)
        saw_two |= in_function(st[0].site.frames[i], (void *)via_two);
    assert_true(saw_two);
    tally_trace_release(st);
    tally_trace_snapshot_free(snap);
    for (int i = 0; i < 5; i++)
        tally_free(rt, p[i]);
    tally_close(rt);
}

/* ---- threads: runtimes traced on several threads at once ------------------------------ */

typedef struct thread_job {
    int nframes;
    int ok;
} thread_job;

static void *thread_main(void *arg)
{
    thread_job *j = arg;
    tally_rt *rt = tally_open(NULL);
    if (rt == NULL || tally_trace_start(rt, j->nframes) != 0)
        return NULL;
    void *v[128] = {0};
    size_t live[128] = {0};
    size_t expect = 0, max = 0;
    test_rng rng = {(uint64_t)j->nframes};
    int ok = 1;
    for (int i = 0; i < 20000; i++) {
        size_t k = rng_below(&rng, 128), n = 1 + rng_below(&rng, 2000);
        tally_free(rt, v[k]);
        expect -= live[k];
        v[k] = tally_malloc(rt, n);
        live[k] = v[k] ? n : 0;
        expect += live[k];
        max = expect > max ? expect : max;
        size_t c, p;
        tally_trace_get_traced_memory(rt, &c, &p);
        ok &= c == expect && p == max;
    }
    j->ok = ok;
    tally_close(rt);
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    pthread_t th[4];
    thread_job jobs[4] = {{1, 0}, {8, 0}, {1, 0}, {16, 0}};
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, thread_main, &jobs[i]), 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(jobs[i].ok, 1);
    }
}

int main(void)
{
    unsetenv("TALLY_DEBUG");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_api_errors),
        cmocka_unit_test(test_malloc_calloc_realloc_exact),
        cmocka_unit_test(test_large_and_huge_exact),
        cmocka_unit_test(test_sites),
        cmocka_unit_test(test_stacks),
        cmocka_unit_test(test_unwinder),
        cmocka_unit_test(test_objects_and_collector),
        cmocka_unit_test(test_free_stacks_while_tracing),
        cmocka_unit_test(test_list_growth),
        cmocka_unit_test(test_start_stop_restart),
        cmocka_unit_test(test_debug_mode),
        cmocka_unit_test(test_statistics),
        cmocka_unit_test(test_statistics_by_traceback),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
