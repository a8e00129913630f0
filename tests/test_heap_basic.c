/* test_heap_basic.c - the raw allocation API used correctly.
 *
 * Covers tally_malloc / tally_calloc / tally_realloc / tally_free /
 * tally_usable_size / tally_runtime_of on hosted runtimes: 16-byte alignment for
 * every size class (small, medium, large, huge), usable sizes (16-byte steps up to
 * TALLY_SMALL_MAX, exactly n in debug mode), malloc(0) giving unique blocks, that
 * every usable byte may be written (ASan/Valgrind builds check this), calloc
 * zero-filling even recycled dirty blocks, calloc overflow (TALLY_EOVERFLOW),
 * absurd sizes failing cleanly, realloc keeping the common prefix when growing and
 * shrinking across every size regime, realloc failure leaving the old block intact,
 * realloc(p, 0), free(NULL), the sticky last-error record, and a run of more than
 * half an arena taking an empty arena (growing in place to all of it, reused),
 * or a gap when no new arena can be had.
 *
 * The program honours TALLY_DEBUG from the environment (CTest runs it a second time
 * with TALLY_DEBUG=1), so every expectation that differs in debug mode reads the
 * debug level from the statistics.
 */
#define _GNU_SOURCE
#include "test_util.h"

#include <stdint.h>

static const size_t k_sizes[] = {
    0,    1,    2,    7,    8,     15,    16,    17,    31,     32,     33,      48,
    63,   64,   65,   100,  127,   128,   129,   255,   256,    257,    500,     511,
    512,  513,  600,  1000, 1024,  2000,  4000,  4096,  5000,   8000,   8192,    9000,
    12000, 16000, 16384, 20000, 40000, 65536, 100000, 300000, 1000000, 3 * 1024 * 1024,
};
#define NSIZES (sizeof k_sizes / sizeof k_sizes[0])

static int rt_debug(tally_rt *rt)
{
    return get_stats(rt).debug;
}

static size_t round16(size_t n)
{
    if (n == 0)
        n = 1;
    return (n + 15) & ~(size_t)15;
}

/* ---- tests ------------------------------------------------------------------- */

static void test_open_null_and_close(void **state)
{
    (void)state;
    tally_rt *rt = tally_open(NULL);
    assert_non_null(rt);
    assert_int_equal(tally_last_error(rt), TALLY_OK);
    assert_string_equal(tally_last_error_message(rt), "");
    assert_int_equal(tally_heap_check(rt), 0);
    void *p = tally_malloc(rt, 10);
    assert_non_null(p);
    assert_ptr_equal(tally_runtime_of(p), rt);
    tally_free(rt, p);
    tally_close(rt);
    tally_close(NULL); /* ignored */
}

static void test_alignment_usable_and_owner(void **state)
{
    (void)state;
    recorder rec;
    tally_rt *rt = open_hosted(&rec, 0);
    int dbg = rt_debug(rt);
    void *ptrs[NSIZES];

    for (size_t i = 0; i < NSIZES; i++) {
        size_t n = k_sizes[i];
        void *p = tally_malloc(rt, n);
        assert_non_null(p);
        assert_true(is_aligned16(p));
        size_t us = tally_usable_size(p);
        assert_true(us >= n);
        if (dbg)
            assert_int_equal(us, n);
        else if (n <= TALLY_SMALL_MAX)
            assert_int_equal(us, round16(n)); /* 16-byte size-class steps */
        assert_ptr_equal(tally_runtime_of(p), rt);
        /* Every usable byte is ours to write (checked by ASan / Valgrind builds). */
        fill_pattern(p, us, (uint32_t)i);
        ptrs[i] = p;
    }
    for (size_t i = 0; i < NSIZES; i++) {
        size_t us = tally_usable_size(ptrs[i]);
        assert_int_equal(check_pattern(ptrs[i], us, (uint32_t)i), us);
        for (size_t j = 0; j < i; j++)
            assert_ptr_not_equal(ptrs[i], ptrs[j]);
    }
    for (size_t i = 0; i < NSIZES; i++)
        tally_free(rt, ptrs[i]);
    assert_int_equal(tally_last_error(rt), TALLY_OK);
    assert_int_equal(rec.count, 0);
    assert_int_equal(tally_heap_check(rt), 0);
    assert_int_equal(get_stats(rt).bytes_in_use, 0);
    assert_int_equal(get_stats(rt).blocks_in_use, 0);
    tally_close(rt);
}

/* Every size from 0 to 1100 (all small classes and the first medium ones). */
static void test_alignment_every_small_size(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    int dbg = rt_debug(rt);
    enum { N = 1100 };
    static void *ptrs[N + 1];
    for (size_t n = 0; n <= N; n++) {
        void *p = tally_malloc(rt, n);
        assert_non_null(p);
        assert_true(is_aligned16(p));
        size_t us = tally_usable_size(p);
        assert_true(us >= n);
        if (dbg)
            assert_int_equal(us, n);
        if (us)
            ((unsigned char *)p)[us - 1] = (unsigned char)n;
        ptrs[n] = p;
    }
    for (size_t n = 0; n <= N; n++) {
        size_t us = tally_usable_size(ptrs[n]);
        if (us)
            assert_int_equal(((unsigned char *)ptrs[n])[us - 1], (unsigned char)n);
        tally_free(rt, ptrs[n]);
    }
    assert_int_equal(tally_heap_check(rt), 0);
    assert_int_equal(get_stats(rt).blocks_in_use, 0);
    tally_close(rt);
}

static void test_malloc_zero_unique(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    enum { N = 100 };
    void *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = tally_malloc(rt, 0);
        assert_non_null(p[i]);
        assert_true(is_aligned16(p[i]));
        assert_ptr_equal(tally_runtime_of(p[i]), rt);
        for (int j = 0; j < i; j++)
            assert_ptr_not_equal(p[i], p[j]);
    }
    struct tally_heap_stats s = get_stats(rt);
    assert_int_equal(s.blocks_in_use, N);
    for (int i = 0; i < N; i++)
        tally_free(rt, p[i]);
    assert_int_equal(tally_last_error(rt), TALLY_OK);
    s = get_stats(rt);
    assert_int_equal(s.blocks_in_use, 0);
    assert_int_equal(s.bytes_in_use, 0);
    tally_close(rt);
}

static void test_blocks_do_not_overlap(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    enum { N = 3000 };
    static void *p[N];
    static size_t sz[N];
    test_rng rng = {42};
    for (int i = 0; i < N; i++) {
        sz[i] = rng_below(&rng, 8) == 0 ? 600 + rng_below(&rng, 20000) : rng_below(&rng, 520);
        p[i] = tally_malloc(rt, sz[i]);
        assert_non_null(p[i]);
        fill_pattern(p[i], tally_usable_size(p[i]), (uint32_t)i);
    }
    /* Each block still holds its own pattern over its whole usable size: any
     * overlap would have let a later block overwrite an earlier one. */
    for (int i = 0; i < N; i++) {
        size_t us = tally_usable_size(p[i]);
        assert_true(us >= sz[i]);
        assert_int_equal(check_pattern(p[i], us, (uint32_t)i), us);
    }
    for (int i = 0; i < N; i += 2)
        tally_free(rt, p[i]);
    for (int i = 1; i < N; i += 2)
        assert_int_equal(check_pattern(p[i], tally_usable_size(p[i]), (uint32_t)i),
                         tally_usable_size(p[i]));
    for (int i = 1; i < N; i += 2)
        tally_free(rt, p[i]);
    assert_int_equal(tally_heap_check(rt), 0);
    assert_int_equal(get_stats(rt).bytes_in_use, 0);
    tally_close(rt);
}

static void test_calloc_zero_fills(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    static const size_t sizes[] = {1, 16, 64, 100, 512, 700, 3000, 9000, 40000, 200000,
                                   3 * 1024 * 1024};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        /* Dirty a block of the same size, free it, then calloc: the recycled block
         * (non-debug mode reuses it at once) must come back zeroed. */
        for (int round = 0; round < 3; round++) {
            unsigned char *d = tally_malloc(rt, n);
            assert_non_null(d);
            memset(d, 0xEE, tally_usable_size(d));
            tally_free(rt, d);
            unsigned char *z = tally_calloc(rt, 1, n);
            assert_non_null(z);
            assert_true(is_aligned16(z));
            assert_true(tally_usable_size(z) >= n);
            assert_true(all_bytes_are(z, n, 0));
            tally_free(rt, z);
        }
        /* count * size spelling. */
        unsigned char *z = tally_calloc(rt, n, 1);
        assert_non_null(z);
        assert_true(all_bytes_are(z, n, 0));
        tally_free(rt, z);
    }
    unsigned char *a = tally_calloc(rt, 37, 24);
    assert_non_null(a);
    assert_true(tally_usable_size(a) >= 37 * 24);
    assert_true(all_bytes_are(a, 37 * 24, 0));
    tally_free(rt, a);

    /* Zero elements or zero-sized elements: a valid minimal block. */
    void *e1 = tally_calloc(rt, 0, 8);
    void *e2 = tally_calloc(rt, 8, 0);
    assert_non_null(e1);
    assert_non_null(e2);
    assert_ptr_not_equal(e1, e2);
    tally_free(rt, e1);
    tally_free(rt, e2);
    assert_int_equal(tally_last_error(rt), TALLY_OK);
    assert_int_equal(tally_heap_check(rt), 0);
    tally_close(rt);
}

static void test_calloc_overflow(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    struct tally_heap_stats before = get_stats(rt);

    tally_clear_error(rt);
    assert_null(tally_calloc(rt, SIZE_MAX / 2, 4));
    assert_int_equal(tally_last_error(rt), TALLY_EOVERFLOW);
    assert_true(strlen(tally_last_error_message(rt)) > 0);

    tally_clear_error(rt);
    assert_null(tally_calloc(rt, SIZE_MAX, SIZE_MAX));
    assert_int_equal(tally_last_error(rt), TALLY_EOVERFLOW);

    tally_clear_error(rt);
    assert_null(tally_calloc(rt, ((size_t)1 << (sizeof(size_t) * 4)) + 1,
                             (size_t)1 << (sizeof(size_t) * 4)));
    assert_int_equal(tally_last_error(rt), TALLY_EOVERFLOW);

    struct tally_heap_stats after = get_stats(rt);
    assert_int_equal(after.bytes_in_use, before.bytes_in_use);
    assert_int_equal(after.blocks_in_use, before.blocks_in_use);
    assert_int_equal(after.allocs, before.allocs);
    assert_int_equal(tally_heap_check(rt), 0);

    /* Still works. */
    void *p = tally_calloc(rt, 4, 4);
    assert_non_null(p);
    tally_free(rt, p);
    tally_close(rt);
}

static void test_malloc_absurd_sizes(void **state)
{
    (void)state;
    recorder rec;
    tally_rt *rt = open_hosted(&rec, 0);
    void *keep = tally_malloc(rt, 200);
    assert_non_null(keep);
    fill_pattern(keep, 200, 9);
    struct tally_heap_stats before = get_stats(rt);
    static const size_t absurd[] = {SIZE_MAX, SIZE_MAX - 100, SIZE_MAX - 4096, SIZE_MAX / 2 + 1,
                                    SIZE_MAX / 2, SIZE_MAX / 4};
    for (size_t i = 0; i < sizeof absurd / sizeof absurd[0]; i++) {
        tally_clear_error(rt);
        assert_null(tally_malloc(rt, absurd[i]));
        tally_error e = tally_last_error(rt);
        assert_int_not_equal(e, TALLY_OK);
        assert_true(e == TALLY_EINVAL || e == TALLY_ENOMEM || e == TALLY_ELIMIT ||
                    e == TALLY_EOVERFLOW);
        assert_true(strlen(tally_last_error_message(rt)) > 0);
        tally_clear_error(rt);
        assert_null(tally_calloc(rt, 1, absurd[i]));
        assert_int_not_equal(tally_last_error(rt), TALLY_OK);
    }
    struct tally_heap_stats after = get_stats(rt);
    assert_int_equal(after.bytes_in_use, before.bytes_in_use);
    assert_int_equal(after.blocks_in_use, before.blocks_in_use);
    assert_int_equal(after.allocs, before.allocs);
    assert_int_equal(tally_heap_check(rt), 0);
    assert_int_equal(check_pattern(keep, 200, 9), 200);
    /* Failing for lack of memory is not misuse: nothing is reported. */
    assert_int_equal(rec.count, 0);
    tally_free(rt, keep);
    void *p = tally_malloc(rt, 1000);
    assert_non_null(p);
    tally_free(rt, p);
    tally_close(rt);
}

static void test_realloc_null_is_malloc(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    unsigned long long allocs = get_stats(rt).allocs;
    void *p = tally_realloc(rt, NULL, 300);
    assert_non_null(p);
    assert_true(is_aligned16(p));
    assert_true(tally_usable_size(p) >= 300);
    assert_ptr_equal(tally_runtime_of(p), rt);
    struct tally_heap_stats s = get_stats(rt);
    assert_int_equal(s.blocks_in_use, 1);
    assert_true(s.allocs > allocs);
    memset(p, 1, 300);
    tally_free(rt, p);
    assert_int_equal(get_stats(rt).blocks_in_use, 0);
    tally_close(rt);
}

/* Walks one block through every size regime up and down; the common prefix must
 * survive each move (in place or not). */
static void test_realloc_keeps_prefix(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    int dbg = rt_debug(rt);
    static const size_t chain[] = {1,      16,    17,     100,   512,   513,
                                   2000,   8000,  16384,  20000, 100000, 3 * 1024 * 1024,
                                   5 * 1024 * 1024, 200000, 40000, 9000, 700, 512,
                                   30,     1,     0,      64,    3 * 1024 * 1024, 10,
                                   70000,  70001, 69000,  4 * 1024 * 1024 + 1};
    size_t old = 0;
    uint32_t seed = 1;
    unsigned char *p = NULL;
    /* A neighbour that must not be disturbed. */
    unsigned char *nb = tally_malloc(rt, 48);
    assert_non_null(nb);
    fill_pattern(nb, 48, 777);
    for (size_t i = 0; i < sizeof chain / sizeof chain[0]; i++) {
        size_t n = chain[i];
        unsigned char *q = tally_realloc(rt, p, n);
        assert_non_null(q);
        assert_true(is_aligned16(q));
        size_t us = tally_usable_size(q);
        assert_true(us >= n);
        if (dbg)
            assert_int_equal(us, n);
        assert_ptr_equal(tally_runtime_of(q), rt);
        size_t keep = old < n ? old : n;
        assert_int_equal(check_pattern(q, keep, seed), keep);
        seed++;
        fill_pattern(q, us, seed);
        old = us;
        p = q;
        assert_int_equal(get_stats(rt).blocks_in_use, 2);
    }
    assert_int_equal(check_pattern(nb, 48, 777), 48);
    tally_free(rt, p);
    tally_free(rt, nb);
    assert_int_equal(tally_last_error(rt), TALLY_OK);
    assert_int_equal(tally_heap_check(rt), 0);
    struct tally_heap_stats s = get_stats(rt);
    assert_int_equal(s.blocks_in_use, 0);
    assert_int_equal(s.bytes_in_use, 0);
    tally_close(rt);
}

/* Growing a small block in small steps exercises in-place growth paths. */
/* A large block grown in place (the pools after it are free) is writable to its
 * new end, its old bytes kept: under Valgrind this checks that the grown tail is
 * addressable, not still marked as the free pools it was. */
static void test_realloc_large_grows_in_place(void **state)
{
    (void)state;
    tally_rt *rt = tally_open(NULL);
    assert_non_null(rt);
    unsigned char *p = tally_malloc(rt, 20000);
    assert_non_null(p);
    memset(p, 7, 20000);
    void *after = tally_malloc(rt, 40000); /* the pools after p, used then freed */
    assert_non_null(after);
    assert_true((unsigned char *)after > p);
    tally_free(rt, after);
    unsigned char *q = tally_realloc(rt, p, 60000);
    assert_non_null(q);
    int debug = getenv("TALLY_DEBUG") != NULL; /* debug mode always copies */
    if (!debug)
        assert_ptr_equal(q, p); /* a fresh arena: the pools after it are free */
    for (size_t i = 0; i < 20000; i++)
        assert_int_equal(q[i], 7);
    memset(q + 20000, 9, 40000);
    assert_int_equal(q[59999], 9);
    unsigned char *grown = q;
    q = tally_realloc(rt, q, 17000); /* and shrunk in place */
    assert_non_null(q);
    if (!debug)
        assert_ptr_equal(q, grown);
    assert_int_equal(q[16999], 7);
    assert_int_equal(tally_heap_check(rt), 0);
    tally_free(rt, q);
    tally_close(rt);
}

/* A run of more than half an arena takes an empty arena, at its start, even
 * where an arena holding other pools has room for it: it can then grow in place
 * to the whole arena, and once freed, the next such run gets the same (kept)
 * arena without a new mapping. */
static void test_big_run_takes_empty_arena(void **state)
{
    (void)state;
    tally_rt *rt = tally_open(NULL);
    assert_non_null(rt);
    if (rt_debug(rt)) { /* debug blocks have a layout of their own */
        tally_close(rt);
        skip();
    }
    size_t arena = test_arena_size(), pool = test_pool_size(), n = arena / 2 + pool;
    uintptr_t mask = ~(uintptr_t)(arena - 1);
    void *small = tally_malloc(rt, 64); /* the first arena holds a pool */
    unsigned char *p = tally_malloc(rt, n);
    assert_non_null(small);
    assert_non_null(p);
    uintptr_t base = (uintptr_t)p & mask;
    assert_true(((uintptr_t)small & mask) != base);
    assert_true((uintptr_t)p - base < pool); /* the run starts the arena */
    memset(p, 5, n);
    unsigned char *q = tally_realloc(rt, p, arena - pool);
    assert_ptr_equal(q, p);
    assert_int_equal(q[n - 1], 5);
    tally_free(rt, q);
    struct tally_heap_stats before = get_stats(rt);
    unsigned char *r = tally_malloc(rt, n);
    assert_ptr_equal(r, p);
    assert_int_equal(get_stats(rt).backend_requests, before.backend_requests);
    /* Half an arena or less still goes first-fit, beside the small block's pool. */
    unsigned char *half = tally_malloc(rt, arena / 4);
    assert_non_null(half);
    assert_int_equal((uintptr_t)half & mask, (uintptr_t)small & mask);
    assert_int_equal(tally_heap_check(rt), 0);
    tally_free(rt, half);
    tally_free(rt, r);
    tally_free(rt, small);
    tally_close(rt);
}

/* Where no new arena can be had (the memory limit, a failing backend), a run of
 * more than half an arena takes a gap after all: it does not fail while an arena
 * has room, and the call leaves no error behind. */
static void test_big_run_falls_back_to_a_gap(void **state)
{
    (void)state;
    size_t arena = test_arena_size(), pool = test_pool_size(), n = arena / 2 + pool;
    tally_rt *probe = tally_open(NULL);
    assert_non_null(probe);
    if (rt_debug(probe)) {
        tally_close(probe);
        skip();
    }
    void *one = tally_malloc(probe, 64);
    assert_non_null(one);
    size_t reserved = get_stats(probe).bytes_reserved;
    tally_close(probe);
    for (int limit = 0; limit < 2; limit++) {
        tally_config cfg;
        tally_config_init(&cfg);
        cfg.max_bytes = limit ? reserved + arena / 2 : 0;
        tally_rt *rt = tally_open(&cfg);
        assert_non_null(rt);
        void *small = tally_malloc(rt, 64);
        assert_non_null(small);
        if (!limit)
            tally_fault_inject(rt, TALLY_FAULT_BACKEND, 1, TALLY_FAULT_PERSIST);
        tally_clear_error(rt);
        unsigned char *p = tally_malloc(rt, n);
        assert_non_null(p);
        assert_int_equal(tally_last_error(rt), TALLY_OK);
        uintptr_t mask = ~(uintptr_t)(arena - 1);
        assert_int_equal((uintptr_t)p & mask, (uintptr_t)small & mask);
        memset(p, 3, n);
        assert_int_equal(tally_heap_check(rt), 0);
        tally_fault_inject(rt, TALLY_FAULT_BACKEND, 0, 0);
        tally_free(rt, p);
        tally_free(rt, small);
        tally_close(rt);
    }
}

static void test_realloc_small_steps(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    unsigned char *p = NULL;
    size_t n;
    size_t top = test_scale(300000, 4);
    size_t step = 1;
    for (n = 1; n < top; n += step) {
        p = tally_realloc(rt, p, n);
        assert_non_null(p);
        p[n - 1] = (unsigned char)n;
        if (n > 1)
            assert_int_equal(p[0], 1);
        if (n == 1)
            p[0] = 1;
        step = n < 2048 ? 7 : n / 9;
    }
    for (; n > 1; n = n * 2 / 3) {
        p = tally_realloc(rt, p, n);
        assert_non_null(p);
        assert_int_equal(p[0], 1);
    }
    tally_free(rt, p);
    assert_int_equal(tally_heap_check(rt), 0);
    assert_int_equal(get_stats(rt).bytes_in_use, 0);
    tally_close(rt);
}

static void test_realloc_zero(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    static const size_t sizes[] = {100, 5000, 300000};
    for (size_t i = 0; i < 3; i++) {
        void *p = tally_malloc(rt, sizes[i]);
        assert_non_null(p);
        void *q = tally_realloc(rt, p, 0);
        assert_non_null(q);
        assert_true(is_aligned16(q));
        assert_ptr_equal(tally_runtime_of(q), rt);
        struct tally_heap_stats s = get_stats(rt);
        assert_int_equal(s.blocks_in_use, 1); /* p was released, q is live */
        tally_free(rt, q);
        assert_int_equal(tally_last_error(rt), TALLY_OK);
        assert_int_equal(get_stats(rt).blocks_in_use, 0);
    }
    tally_close(rt);
}

static void check_realloc_failure(tally_rt *rt, unsigned char *p, size_t n, uint32_t seed,
                                  size_t request)
{
    size_t us = tally_usable_size(p);
    struct tally_heap_stats before = get_stats(rt);
    tally_clear_error(rt);
    assert_null(tally_realloc(rt, p, request));
    assert_int_not_equal(tally_last_error(rt), TALLY_OK);
    /* The old block is untouched and still ours. */
    assert_int_equal(tally_usable_size(p), us);
    assert_ptr_equal(tally_runtime_of(p), rt);
    assert_int_equal(check_pattern(p, n, seed), n);
    struct tally_heap_stats after = get_stats(rt);
    assert_int_equal(after.bytes_in_use, before.bytes_in_use);
    assert_int_equal(after.blocks_in_use, before.blocks_in_use);
    assert_int_equal(tally_heap_check(rt), 0);
}

static void test_realloc_failure_keeps_old_block(void **state)
{
    (void)state;
    tally_config cfg;
    tally_config_init(&cfg);
    /* Room for the runtime itself and four arenas (4 MiB with default pools). */
    cfg.max_bytes = test_hosted_overhead() + 4 * test_arena_size();
    cfg.report = tally_report_discard;
    tally_rt *rt = tally_open(&cfg);
    assert_non_null(rt);

    static const size_t sizes[] = {40, 3000, 100000};
    for (size_t i = 0; i < 3; i++) {
        size_t n = sizes[i];
        unsigned char *p = tally_malloc(rt, n);
        assert_non_null(p);
        fill_pattern(p, n, (uint32_t)(50 + i));

        /* Over the limit. */
        check_realloc_failure(rt, p, n, (uint32_t)(50 + i), cfg.max_bytes + 1);
        assert_int_equal(tally_last_error(rt), TALLY_ELIMIT);
        /* Absurd. */
        check_realloc_failure(rt, p, n, (uint32_t)(50 + i), SIZE_MAX);
        check_realloc_failure(rt, p, n, (uint32_t)(50 + i), SIZE_MAX - 64);
        /* Injected failure of the next allocation call. */
        tally_fault_inject(rt, TALLY_FAULT_ALLOC, 1, 0);
        check_realloc_failure(rt, p, n, (uint32_t)(50 + i), n * 3 + 100000);
        assert_int_equal(tally_last_error(rt), TALLY_EFAULT);

        /* Still usable and resizable afterwards. */
        unsigned char *q = tally_realloc(rt, p, n + 10);
        assert_non_null(q);
        assert_int_equal(check_pattern(q, n, (uint32_t)(50 + i)), n);
        tally_clear_error(rt);
        tally_free(rt, q);
        assert_int_equal(tally_last_error(rt), TALLY_OK);
    }
    assert_int_equal(get_stats(rt).blocks_in_use, 0);
    tally_close(rt);
}

static void test_free_null_is_noop(void **state)
{
    (void)state;
    recorder rec;
    tally_rt *rt = open_hosted(&rec, 0);
    void *p = tally_malloc(rt, 64);
    assert_non_null(p);
    struct tally_heap_stats before = get_stats(rt);
    tally_free(rt, NULL);
    tally_free(rt, NULL);
    struct tally_heap_stats after = get_stats(rt);
    assert_int_equal(tally_last_error(rt), TALLY_OK);
    assert_int_equal(rec.count, 0);
    assert_int_equal(after.frees, before.frees);
    assert_int_equal(after.blocks_in_use, before.blocks_in_use);
    assert_int_equal(after.errors_detected, before.errors_detected);
    tally_free(rt, p);
    tally_close(rt);
}

static void test_last_error_sticky_until_clear(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    assert_int_equal(tally_last_error(rt), TALLY_OK);
    assert_null(tally_calloc(rt, SIZE_MAX / 2, 4));
    assert_int_equal(tally_last_error(rt), TALLY_EOVERFLOW);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", tally_last_error_message(rt));
    assert_true(strlen(msg) > 0);
    /* A later success records no error: the last one is still there. */
    void *p = tally_malloc(rt, 10);
    assert_non_null(p);
    tally_free(rt, p);
    assert_int_equal(tally_last_error(rt), TALLY_EOVERFLOW);
    tally_clear_error(rt);
    assert_int_equal(tally_last_error(rt), TALLY_OK);
    assert_string_equal(tally_last_error_message(rt), "");
    tally_close(rt);
}

static void test_owner_of_every_regime(void **state)
{
    (void)state;
    tally_rt *a = open_hosted(NULL, 0);
    tally_rt *b = open_hosted(NULL, 0);
    static const size_t sizes[] = {0, 16, 512, 513, 6000, 16384, 50000, 400000, 2 * 1024 * 1024};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *pa = tally_malloc(a, sizes[i]);
        void *pb = tally_malloc(b, sizes[i]);
        assert_non_null(pa);
        assert_non_null(pb);
        assert_ptr_equal(tally_runtime_of(pa), a);
        assert_ptr_equal(tally_runtime_of(pb), b);
        tally_free(a, pa);
        tally_free(b, pb);
    }
    assert_int_equal(tally_last_error(a), TALLY_OK);
    assert_int_equal(tally_last_error(b), TALLY_OK);
    tally_close(a);
    tally_close(b);
}

/* Closing a runtime with blocks still allocated releases them (leak checkers
 * running the suite would complain otherwise). */
static void test_close_with_live_blocks(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    for (int i = 0; i < 500; i++)
        assert_non_null(tally_malloc(rt, (size_t)(i * 37) % 3000));
    assert_non_null(tally_malloc(rt, 3 * MiB));
    assert_non_null(tally_malloc(rt, 300 * KiB));
    tally_close(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_null_and_close),
        cmocka_unit_test(test_realloc_large_grows_in_place),
        cmocka_unit_test(test_alignment_usable_and_owner),
        cmocka_unit_test(test_alignment_every_small_size),
        cmocka_unit_test(test_malloc_zero_unique),
        cmocka_unit_test(test_blocks_do_not_overlap),
        cmocka_unit_test(test_calloc_zero_fills),
        cmocka_unit_test(test_calloc_overflow),
        cmocka_unit_test(test_malloc_absurd_sizes),
        cmocka_unit_test(test_realloc_null_is_malloc),
        cmocka_unit_test(test_realloc_keeps_prefix),
        cmocka_unit_test(test_realloc_small_steps),
        cmocka_unit_test(test_big_run_takes_empty_arena),
        cmocka_unit_test(test_big_run_falls_back_to_a_gap),
        cmocka_unit_test(test_realloc_zero),
        cmocka_unit_test(test_realloc_failure_keeps_old_block),
        cmocka_unit_test(test_free_null_is_noop),
        cmocka_unit_test(test_last_error_sticky_until_clear),
        cmocka_unit_test(test_owner_of_every_regime),
        cmocka_unit_test(test_close_with_live_blocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
