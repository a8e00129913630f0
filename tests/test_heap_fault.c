/* test_heap_fault.c - every failure path, through fault injection (SQLite's idea).
 *
 * Covers cfg.fail_backend_request = N for N = 1, 2, 3, ... until a run completes
 * with no injected failure: if tally_open fails, errno says ENOMEM and nothing stays
 * mapped (a counting custom backend checks that every mapping was returned with its
 * size; once more with a remap() for huge blocks); otherwise a fixed workload of mallocs, callocs and reallocs over every size
 * regime (small, medium, large, huge) runs, every call may fail (NULL with
 * TALLY_EFAULT or TALLY_ENOMEM, statistics unchanged, a realloc'ed block left
 * intact) but tally_heap_check() stays 0, every block that was handed out keeps its
 * contents, and closing returns every mapping.  The same for fixed-buffer runtimes
 * (backend requests are pool carve-outs there), for tally_fault_inject(rt,
 * TALLY_FAULT_ALLOC, N, 0) failing exactly the Nth allocation call with
 * TALLY_EFAULT, and for TALLY_FAULT_PERSIST (every call from the Nth on fails until
 * disarmed with nth == 0).  tally_fault_requests() / tally_fault_failures() are
 * checked against the calls made.
 */
#define _GNU_SOURCE
#include "test_util.h"

#include <errno.h>

/* ---- a counting backend ------------------------------------------------------------ */

#define MAXMAPS 512

typedef struct counting_backend {
    void *addr[MAXMAPS];
    size_t size[MAXMAPS];
    unsigned long maps, unmaps, purges, remaps;
    unsigned long bad_align, bad_unmap;
    size_t outstanding;
} counting_backend;

static void *cb_map(void *ctx, size_t size, size_t align)
{
    counting_backend *b = ctx;
    if (align < 4096 || (align & (align - 1)) != 0)
        b->bad_align++;
    void *p = test_map_aligned(size, align);
    if (p == NULL)
        return NULL;
    for (int i = 0; i < MAXMAPS; i++)
        if (b->addr[i] == NULL) {
            b->addr[i] = p;
            b->size[i] = size;
            b->maps++;
            b->outstanding++;
            return p;
        }
    test_unmap(p, size);
    return NULL;
}

static void cb_unmap(void *ctx, void *addr, size_t size)
{
    counting_backend *b = ctx;
    for (int i = 0; i < MAXMAPS; i++)
        if (b->addr[i] == addr) {
            if (b->size[i] != size)
                b->bad_unmap++;
            b->addr[i] = NULL;
            b->unmaps++;
            b->outstanding--;
            test_unmap(addr, size);
            return;
        }
    b->bad_unmap++;
}

static void cb_purge(void *ctx, void *addr, size_t size)
{
    counting_backend *b = ctx;
    b->purges++;
    memset(addr, 0, size);
}

static int cb_find(const counting_backend *b, const void *addr, size_t size)
{
    for (int i = 0; i < MAXMAPS; i++)
        if (b->addr[i] == addr && addr != NULL)
            return b->size[i] == size ? i : -2;
    return -1;
}

/* mremap, checking that old (and target) are whole mappings of the sizes given. */
static int cb_remap(void *ctx, void *old, size_t old_size, size_t new_size, void *target)
{
    counting_backend *b = ctx;
    int i = cb_find(b, old, old_size);
    int t = target ? cb_find(b, target, new_size) : 0;
    if (i < 0 || t < 0) {
        b->bad_unmap++;
        return -1;
    }
    int flags = target ? MREMAP_MAYMOVE | MREMAP_FIXED : 0;
    if (mremap(old, old_size, new_size, flags, target) == MAP_FAILED)
        return -1;
    b->remaps++;
    if (target) {
        b->addr[i] = NULL;
        b->unmaps++;
        b->outstanding--;
    } else {
        b->size[i] = new_size;
    }
    return 0;
}

/* ---- the workload ----------------------------------------------------------------------- */

#define SLOTS 16

typedef struct workload {
    tally_rt *rt;
    unsigned char *p[SLOTS];
    size_t n[SLOTS];
    uint32_t seed[SLOTS];
    uint32_t next_seed;
    unsigned long calls;      /* allocation calls made */
    unsigned long fails;      /* of which returned NULL */
    unsigned long first_fail; /* 1-based index of the first failed call */
    int check_each;           /* tally_heap_check after every call */
} workload;

/* Pattern over the start, the end and every 4 KiB: cheap for huge blocks. */
static void fill_sparse(unsigned char *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i = (i < 256 || i + 256 >= n) ? i + 1 : i + 4096)
        p[i] = pattern_byte(seed, i);
    if (n > 512)
        for (size_t i = n - 256; i < n; i++)
            p[i] = pattern_byte(seed, i);
}

static void check_sparse(const unsigned char *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i = (i < 256 || i + 256 >= n) ? i + 1 : i + 4096)
        assert_int_equal(p[i], pattern_byte(seed, i));
    if (n > 512)
        for (size_t i = n - 256; i < n; i++)
            assert_int_equal(p[i], pattern_byte(seed, i));
}

static void check_all(workload *w)
{
    for (int s = 0; s < SLOTS; s++)
        if (w->p[s]) {
            assert_ptr_equal(tally_runtime_of(w->p[s]), w->rt);
            assert_true(tally_usable_size(w->p[s]) >= w->n[s]);
            check_sparse(w->p[s], w->n[s], w->seed[s]);
        }
}

static void on_failure(workload *w, const struct tally_heap_stats *before)
{
    tally_error e = tally_last_error(w->rt);
    assert_true(e == TALLY_EFAULT || e == TALLY_ENOMEM);
    assert_true(strlen(tally_last_error_message(w->rt)) > 0);
    struct tally_heap_stats after = get_stats(w->rt);
    assert_int_equal(after.bytes_in_use, before->bytes_in_use);
    assert_int_equal(after.blocks_in_use, before->blocks_in_use);
    assert_int_equal(after.allocs, before->allocs);
    w->fails++;
    if (w->first_fail == 0)
        w->first_fail = w->calls;
}

static void after_call(workload *w)
{
    if (w->check_each)
        assert_int_equal(tally_heap_check(w->rt), 0);
}

static void w_free(workload *w, int s)
{
    if (w->p[s]) {
        check_sparse(w->p[s], w->n[s], w->seed[s]);
        tally_free(w->rt, w->p[s]);
        w->p[s] = NULL;
    }
}

static void w_malloc(workload *w, int s, size_t n)
{
    w_free(w, s);
    struct tally_heap_stats before = get_stats(w->rt);
    tally_clear_error(w->rt);
    w->calls++;
    unsigned char *p = tally_malloc(w->rt, n);
    if (p == NULL) {
        on_failure(w, &before);
    } else {
        assert_true(is_aligned16(p));
        w->p[s] = p;
        w->n[s] = n;
        w->seed[s] = ++w->next_seed;
        fill_sparse(p, n, w->seed[s]);
    }
    after_call(w);
}

static void w_calloc(workload *w, int s, size_t count, size_t size)
{
    w_free(w, s);
    struct tally_heap_stats before = get_stats(w->rt);
    tally_clear_error(w->rt);
    w->calls++;
    unsigned char *p = tally_calloc(w->rt, count, size);
    if (p == NULL) {
        on_failure(w, &before);
    } else {
        size_t n = count * size;
        assert_true(all_bytes_are(p, n, 0));
        w->p[s] = p;
        w->n[s] = n;
        w->seed[s] = ++w->next_seed;
        fill_sparse(p, n, w->seed[s]);
    }
    after_call(w);
}

static void w_realloc(workload *w, int s, size_t n)
{
    struct tally_heap_stats before = get_stats(w->rt);
    unsigned char *old = w->p[s];
    size_t old_us = old ? tally_usable_size(old) : 0;
    tally_clear_error(w->rt);
    w->calls++;
    unsigned char *p = tally_realloc(w->rt, old, n);
    if (p == NULL) {
        on_failure(w, &before);
        if (old) { /* untouched */
            assert_int_equal(tally_usable_size(old), old_us);
            check_sparse(old, w->n[s], w->seed[s]);
        }
    } else {
        if (old) {
            size_t keep = w->n[s] < n ? w->n[s] : n;
            /* The prefix survived (sparse check over the kept part). */
            for (size_t i = 0; i < keep && i < 256; i++)
                assert_int_equal(p[i], pattern_byte(w->seed[s], i));
        }
        w->p[s] = p;
        w->n[s] = n;
        w->seed[s] = ++w->next_seed;
        fill_sparse(p, n, w->seed[s]);
    }
    after_call(w);
}

static void run_workload(workload *w)
{
    w_malloc(w, 0, 24);
    w_malloc(w, 1, 100);
    w_calloc(w, 2, 10, 51);
    w_malloc(w, 3, 600);
    w_malloc(w, 4, 3000);
    w_malloc(w, 5, 20000);
    w_malloc(w, 6, 100000);
    w_malloc(w, 7, 500000);
    w_malloc(w, 8, 3 * MiB);
    w_realloc(w, 0, 200);
    w_realloc(w, 1, 5000);
    w_realloc(w, 3, 40);
    w_realloc(w, 5, 300000);
    w_realloc(w, 8, 4 * MiB + MiB / 2);
    w_free(w, 2);
    w_calloc(w, 2, 1000, 3);
    w_malloc(w, 9, 0);
    w_realloc(w, 7, 1000);
    w_malloc(w, 10, 70000);
    w_malloc(w, 11, 16);
    for (int i = 0; i < 40; i++)
        w_malloc(w, 12 + i % 4, (size_t)(i * 97) % 2000);
    for (int i = 0; i < 30; i++) /* many pools of one class */
        w_calloc(w, 12 + i % 4, 1, 16000 + (size_t)i);
    w_free(w, 9);
    w_free(w, 4);
    w_malloc(w, 4, 7000);
    w_realloc(w, 10, 2 * MiB);
    w_realloc(w, 6, 20);
    w_malloc(w, 9, 1200 * 1024);
    check_all(w);
    assert_int_equal(tally_heap_check(w->rt), 0);
}

static void finish_workload(workload *w)
{
    check_all(w);
    for (int s = 0; s < SLOTS; s++)
        w_free(w, s);
    struct tally_heap_stats st = get_stats(w->rt);
    assert_int_equal(st.bytes_in_use, 0);
    assert_int_equal(st.blocks_in_use, 0);
    assert_int_equal(tally_heap_check(w->rt), 0);
}

/* The number of allocation calls the workload makes. */
static unsigned long workload_calls(void)
{
    tally_rt *rt = tally_open(NULL);
    assert_non_null(rt);
    workload w;
    memset(&w, 0, sizeof w);
    w.rt = rt;
    run_workload(&w);
    assert_int_equal(w.fails, 0);
    finish_workload(&w);
    tally_close(rt);
    return w.calls;
}

/* ---- fail_backend_request = N ------------------------------------------------------ */

static _Alignas(65536) unsigned char g_buf[8 * 1024 * 1024 + 64];

enum { HOSTED_OS, HOSTED_COUNTING, HOSTED_COUNTING_REMAP, FIXED };

static void backend_fault_loop(int mode)
{
    unsigned long n;
    int done = 0;
    unsigned long open_failures = 0, runs_with_failures = 0;
    for (n = 1; n <= 400 && !done; n++) {
        static counting_backend cb;
        memset(&cb, 0, sizeof cb);
        tally_backend be = {cb_map, cb_unmap, cb_purge, &cb,
                            mode == HOSTED_COUNTING_REMAP ? cb_remap : NULL};
        recorder rec;
        rec_reset(&rec);
        tally_config cfg;
        tally_config_init(&cfg);
        cfg.fail_backend_request = n;
        cfg.report = rec_report;
        cfg.report_arg = &rec;
        if (mode == HOSTED_COUNTING || mode == HOSTED_COUNTING_REMAP)
            cfg.backend = &be;
        if (mode == FIXED) {
            cfg.memory = g_buf + 11;
            cfg.memory_size = 4 * MiB;
        }
        errno = 0;
        tally_rt *rt = tally_open(&cfg);
        if (rt == NULL) {
            assert_int_equal(errno, ENOMEM);
            assert_int_equal(cb.outstanding, 0); /* nothing leaked */
            assert_int_equal(cb.bad_unmap, 0);
            open_failures++;
            continue;
        }
        assert_int_equal(tally_fault_failures(rt, TALLY_FAULT_BACKEND), 0);
        workload w;
        memset(&w, 0, sizeof w);
        w.rt = rt;
        w.check_each = 1;
        run_workload(&w);
        unsigned long failures = tally_fault_failures(rt, TALLY_FAULT_BACKEND);
        unsigned long requests = tally_fault_requests(rt, TALLY_FAULT_BACKEND);
        assert_true(failures <= 1); /* only the Nth request fails */
        if (failures == 1)
            assert_true(requests >= n);
        else
            assert_true(requests < n);
        if (failures > 0)
            runs_with_failures++;
        if (mode != FIXED && failures == 0)
            assert_int_equal(w.fails, 0); /* nothing else may fail */
        if (mode == HOSTED_COUNTING_REMAP && failures == 0 && !test_on_valgrind())
            assert_true(cb.remaps >= 1); /* the huge block grew by remapping */
        assert_int_equal(rec.count, 0); /* failing is not misuse */
        finish_workload(&w);
        /* After the injected failure, the heap is fully usable again.  (With no
         * failure yet, the countdown is still armed: disarm it first.) */
        if (failures == 0)
            tally_fault_inject(rt, TALLY_FAULT_BACKEND, 0, 0);
        void *q = tally_malloc(rt, mode == FIXED ? 100000 : 3 * MiB);
        assert_non_null(q);
        tally_free(rt, q);
        tally_close(rt);
        assert_int_equal(cb.outstanding, 0);
        assert_int_equal(cb.bad_unmap, 0);
        assert_int_equal(cb.bad_align, 0);
        if (failures == 0)
            done = 1;
    }
    assert_true(done);
    /* The loop did hit real failure paths. */
    assert_true(runs_with_failures + open_failures >= 3);
}

static void test_fail_backend_request_os(void **state)
{
    (void)state;
    backend_fault_loop(HOSTED_OS);
}

static void test_fail_backend_request_counting_backend(void **state)
{
    (void)state;
    backend_fault_loop(HOSTED_COUNTING);
}

/* The same with remap(): huge blocks grow by remapping, and a failed remap or map
 * of a move's target leaves no mapping behind. */
static void test_fail_backend_request_counting_remap(void **state)
{
    (void)state;
    backend_fault_loop(HOSTED_COUNTING_REMAP);
}

static void test_fail_backend_request_fixed(void **state)
{
    (void)state;
    backend_fault_loop(FIXED);
}

/* ---- tally_fault_inject(BACKEND) after open ------------------------------------------- */

static void test_inject_backend_once(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    unsigned long req0 = tally_fault_requests(rt, TALLY_FAULT_BACKEND);
    struct tally_heap_stats before = get_stats(rt);
    tally_fault_inject(rt, TALLY_FAULT_BACKEND, 1, 0);
    tally_clear_error(rt);
    assert_null(tally_malloc(rt, 3 * MiB)); /* needs a mapping of its own */
    assert_int_equal(tally_last_error(rt), TALLY_EFAULT);
    assert_int_equal(tally_fault_failures(rt, TALLY_FAULT_BACKEND), 1);
    assert_true(tally_fault_requests(rt, TALLY_FAULT_BACKEND) >= req0 + 1);
    struct tally_heap_stats after = get_stats(rt);
    assert_int_equal(after.bytes_in_use, before.bytes_in_use);
    assert_int_equal(after.blocks_in_use, before.blocks_in_use);
    assert_int_equal(after.bytes_reserved, before.bytes_reserved);
    /* One-shot: the next one succeeds. */
    void *p = tally_malloc(rt, 3 * MiB);
    assert_non_null(p);
    assert_int_equal(tally_fault_failures(rt, TALLY_FAULT_BACKEND), 1);
    assert_true(tally_fault_requests(rt, TALLY_FAULT_BACKEND) >= req0 + 2);
    assert_true(get_stats(rt).backend_requests > before.backend_requests);
    tally_free(rt, p);
    assert_int_equal(tally_heap_check(rt), 0);
    tally_close(rt);
}

/* Huge blocks each take a handle slot (heap/handle.c); past the slots kept in
 * the heap struct, the slot table is mapped from the backend.  Failing each
 * backend request in turn, while 40 huge blocks are made, must fail only the
 * allocation at hand, keep every block made so far intact, and let the next
 * attempt succeed. */
static void test_handle_table_growth_fails_cleanly(void **state)
{
    (void)state;
    enum { NBLOCKS = 40 };
    unsigned long failures = 0;
    for (unsigned long n = 1; n <= NBLOCKS + 8; n++) { /* every request of the run */
        tally_rt *rt = open_hosted(NULL, 0);
        unsigned char *blocks[NBLOCKS];
        int failed = 0;
        tally_fault_inject(rt, TALLY_FAULT_BACKEND, n, 0);
        for (int i = 0; i < NBLOCKS; i++) {
            tally_clear_error(rt);
            blocks[i] = tally_malloc(rt, 2 * MiB);
            if (blocks[i] == NULL) {
                assert_int_equal(tally_last_error(rt), TALLY_EFAULT);
                failed++;
                blocks[i] = tally_malloc(rt, 2 * MiB); /* one-shot: this one works */
                assert_non_null(blocks[i]);
            }
            blocks[i][0] = (unsigned char)i;
            blocks[i][2 * MiB - 1] = (unsigned char)i;
        }
        assert_true(failed <= 1);
        failures += (unsigned long)failed;
        for (int i = 0; i < NBLOCKS; i++) {
            assert_int_equal(blocks[i][0], (unsigned char)i);
            assert_int_equal(blocks[i][2 * MiB - 1], (unsigned char)i);
            tally_free(rt, blocks[i]);
        }
        assert_int_equal(tally_heap_check(rt), 0);
        assert_int_equal(get_stats(rt).bytes_in_use, 0);
        tally_close(rt);
    }
    /* 40 mappings and one table growth: every one of them was failed once. */
    assert_int_equal(failures, NBLOCKS + 1);
}

/* Backend requests the workload makes on a fresh hosted runtime. */
static unsigned long workload_backend_requests(void)
{
    tally_rt *rt = open_hosted(NULL, 0);
    unsigned long r0 = tally_fault_requests(rt, TALLY_FAULT_BACKEND);
    workload w;
    memset(&w, 0, sizeof w);
    w.rt = rt;
    run_workload(&w);
    unsigned long r = tally_fault_requests(rt, TALLY_FAULT_BACKEND) - r0;
    finish_workload(&w);
    tally_close(rt);
    return r;
}

static void test_inject_backend_persist(void **state)
{
    (void)state;
    unsigned long total = workload_backend_requests();
    assert_true(total >= 2);
    const unsigned long ns[] = {1, 2, total / 2, total};
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
        unsigned long n = ns[k] ? ns[k] : 1;
        tally_rt *rt = open_hosted(NULL, 0);
        tally_fault_inject(rt, TALLY_FAULT_BACKEND, n, TALLY_FAULT_PERSIST);
        workload w;
        memset(&w, 0, sizeof w);
        w.rt = rt;
        w.check_each = 1;
        run_workload(&w);
        unsigned long failures = tally_fault_failures(rt, TALLY_FAULT_BACKEND);
        assert_true(failures >= 1);
        assert_true(w.fails >= 1);
        /* Persisting: once it started, every request for new memory fails. */
        tally_clear_error(rt);
        assert_null(tally_malloc(rt, 2 * test_arena_size()));
        assert_int_equal(tally_last_error(rt), TALLY_EFAULT);
        assert_true(tally_fault_failures(rt, TALLY_FAULT_BACKEND) > failures);
        /* Disarmed: works again. */
        tally_fault_inject(rt, TALLY_FAULT_BACKEND, 0, 0);
        unsigned long f = tally_fault_failures(rt, TALLY_FAULT_BACKEND);
        void *p = tally_malloc(rt, 2 * test_arena_size());
        assert_non_null(p);
        assert_int_equal(tally_fault_failures(rt, TALLY_FAULT_BACKEND), f);
        tally_free(rt, p);
        finish_workload(&w);
        tally_close(rt);
    }
}

/* ---- tally_fault_inject(ALLOC) ----------------------------------------------------- */

static void test_alloc_requests_counted(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    unsigned long r0 = tally_fault_requests(rt, TALLY_FAULT_ALLOC);
    void *a = tally_malloc(rt, 10);
    assert_int_equal(tally_fault_requests(rt, TALLY_FAULT_ALLOC), r0 + 1);
    void *b = tally_calloc(rt, 3, 10);
    assert_int_equal(tally_fault_requests(rt, TALLY_FAULT_ALLOC), r0 + 2);
    a = tally_realloc(rt, a, 5000);
    assert_int_equal(tally_fault_requests(rt, TALLY_FAULT_ALLOC), r0 + 3);
    void *c = tally_malloc(rt, 2 * MiB);
    assert_int_equal(tally_fault_requests(rt, TALLY_FAULT_ALLOC), r0 + 4);
    /* A realloc that can stay in place is an allocation call too. */
    a = tally_realloc(rt, a, 4990);
    assert_int_equal(tally_fault_requests(rt, TALLY_FAULT_ALLOC), r0 + 5);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    tally_free(rt, a); /* releasing is not an allocation call */
    tally_free(rt, b);
    tally_free(rt, c);
    assert_int_equal(tally_fault_requests(rt, TALLY_FAULT_ALLOC), r0 + 5);
    assert_int_equal(tally_fault_failures(rt, TALLY_FAULT_ALLOC), 0);
    tally_close(rt);
}

static void test_inject_alloc_every_call(void **state)
{
    (void)state;
    unsigned long calls = workload_calls();
    assert_true(calls > 50);
    for (unsigned long n = 1; n <= calls + 1; n++) {
        recorder rec;
        tally_rt *rt = open_hosted(&rec, 0);
        tally_fault_inject(rt, TALLY_FAULT_ALLOC, n, 0);
        unsigned long r0 = tally_fault_requests(rt, TALLY_FAULT_ALLOC);
        workload w;
        memset(&w, 0, sizeof w);
        w.rt = rt;
        w.check_each = n % 8 == 0;
        run_workload(&w);
        assert_int_equal(w.calls, calls);
        assert_int_equal(tally_fault_requests(rt, TALLY_FAULT_ALLOC) - r0, calls);
        if (n <= calls) {
            /* Exactly the Nth call failed, with TALLY_EFAULT. */
            assert_int_equal(w.fails, 1);
            assert_int_equal(w.first_fail, n);
            assert_int_equal(tally_fault_failures(rt, TALLY_FAULT_ALLOC), 1);
        } else {
            assert_int_equal(w.fails, 0);
            assert_int_equal(tally_fault_failures(rt, TALLY_FAULT_ALLOC), 0);
        }
        assert_int_equal(rec.count, 0);
        finish_workload(&w);
        tally_close(rt);
    }
}

static void test_inject_alloc_code_is_efault(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    void *keep = tally_malloc(rt, 300);
    assert_non_null(keep);
    fill_pattern(keep, 300, 3);
    tally_fault_inject(rt, TALLY_FAULT_ALLOC, 1, 0);
    tally_clear_error(rt);
    assert_null(tally_malloc(rt, 8));
    assert_int_equal(tally_last_error(rt), TALLY_EFAULT);
    assert_true(strlen(tally_last_error_message(rt)) > 0);
    tally_fault_inject(rt, TALLY_FAULT_ALLOC, 2, 0);
    void *ok = tally_calloc(rt, 1, 8);
    assert_non_null(ok);
    tally_clear_error(rt);
    assert_null(tally_realloc(rt, keep, 100000));
    assert_int_equal(tally_last_error(rt), TALLY_EFAULT);
    assert_int_equal(check_pattern(keep, 300, 3), 300);
    /* Re-arming replaces the countdown; nth == 0 disarms. */
    tally_fault_inject(rt, TALLY_FAULT_ALLOC, 3, 0);
    tally_fault_inject(rt, TALLY_FAULT_ALLOC, 0, 0);
    for (int i = 0; i < 10; i++) {
        void *p = tally_malloc(rt, 64);
        assert_non_null(p);
        tally_free(rt, p);
    }
    assert_int_equal(tally_fault_failures(rt, TALLY_FAULT_ALLOC), 2);
    tally_free(rt, ok);
    tally_free(rt, keep);
    tally_close(rt);
}

static void test_inject_alloc_persist(void **state)
{
    (void)state;
    unsigned long calls = workload_calls();
    static const unsigned long ns[] = {1, 2, 5, 17, 40, 77};
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
        unsigned long n = ns[k];
        if (n > calls)
            continue;
        tally_rt *rt = open_hosted(NULL, 0);
        tally_fault_inject(rt, TALLY_FAULT_ALLOC, n, TALLY_FAULT_PERSIST);
        workload w;
        memset(&w, 0, sizeof w);
        w.rt = rt;
        w.check_each = 1;
        run_workload(&w);
        /* Calls 1..n-1 succeeded, n..calls all failed. */
        assert_int_equal(w.first_fail, n);
        assert_int_equal(w.fails, calls - n + 1);
        assert_int_equal(tally_fault_failures(rt, TALLY_FAULT_ALLOC), calls - n + 1);
        tally_clear_error(rt);
        assert_null(tally_malloc(rt, 1));
        assert_int_equal(tally_last_error(rt), TALLY_EFAULT);
        /* Disarm: allocation works again. */
        tally_fault_inject(rt, TALLY_FAULT_ALLOC, 0, 0);
        void *p = tally_malloc(rt, 1);
        assert_non_null(p);
        tally_free(rt, p);
        finish_workload(&w);
        tally_close(rt);
    }
}

/* Fault injection on a fixed-buffer runtime: ALLOC kind. */
static void test_inject_alloc_fixed(void **state)
{
    (void)state;
    tally_rt *rt = open_fixed(g_buf + 1, 2 * MiB, NULL, 0);
    tally_fault_inject(rt, TALLY_FAULT_ALLOC, 2, 0);
    void *a = tally_malloc(rt, 10);
    assert_non_null(a);
    tally_clear_error(rt);
    assert_null(tally_malloc(rt, 10));
    assert_int_equal(tally_last_error(rt), TALLY_EFAULT);
    void *b = tally_malloc(rt, 10);
    assert_non_null(b);
    tally_free(rt, a);
    tally_free(rt, b);
    assert_int_equal(tally_fault_failures(rt, TALLY_FAULT_ALLOC), 1);
    assert_int_equal(get_stats(rt).bytes_in_use, 0);
    tally_close(rt);
}

int main(void)
{
    unsetenv("TALLY_DEBUG");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_requests_counted),
        cmocka_unit_test(test_inject_alloc_code_is_efault),
        cmocka_unit_test(test_inject_backend_once),
        cmocka_unit_test(test_handle_table_growth_fails_cleanly),
        cmocka_unit_test(test_fail_backend_request_os),
        cmocka_unit_test(test_fail_backend_request_counting_backend),
        cmocka_unit_test(test_fail_backend_request_counting_remap),
        cmocka_unit_test(test_fail_backend_request_fixed),
        cmocka_unit_test(test_inject_backend_persist),
        cmocka_unit_test(test_inject_alloc_every_call),
        cmocka_unit_test(test_inject_alloc_persist),
        cmocka_unit_test(test_inject_alloc_fixed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
