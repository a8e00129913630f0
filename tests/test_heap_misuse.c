/* test_heap_misuse.c - misuse is detected in normal (non-debug) mode and changes
 * nothing.
 *
 * Covers double free of small, medium, large and huge blocks (TALLY_EDOUBLEFREE;
 * TALLY_EFOREIGN is also accepted where the block's memory may already have been
 * given back), freeing pointers the runtime never handed out (a stack address, a
 * libc malloc() block, a static object, wild addresses, interior pointers p+8 and
 * p+16 of small blocks, pointers into the middle of large blocks, a pool header, a
 * never-allocated slot) which must give TALLY_EFOREIGN (or TALLY_EDOUBLEFREE for
 * a free slot), the same through tally_realloc, and bad arguments to
 * tally_heap_stats.  After every bad call: exactly one report through the
 * configured callback, naming the pointer as "%p" prints it; errors_detected grew
 * by one; every other statistic is unchanged; tally_heap_check() finds nothing;
 * live blocks keep their contents; the runtime keeps working.  Hosted and
 * fixed-buffer runtimes are both exercised.
 */
#define _GNU_SOURCE
#include "test_util.h"

static int g_static_object[64];

/* ---- fixture ------------------------------------------------------------------- */

typedef struct fixture {
    tally_rt *rt;
    recorder rec;
    unsigned char *live[16]; /* blocks that must survive every misuse */
    size_t live_n[16];
    int nlive;
} fixture;

static _Alignas(4096) unsigned char g_fixed_buf[8 * 1024 * 1024 + 64];

static void add_live(fixture *f, size_t n)
{
    unsigned char *p = tally_malloc(f->rt, n);
    assert_non_null(p);
    fill_pattern(p, n, (uint32_t)(1000 + f->nlive));
    f->live[f->nlive] = p;
    f->live_n[f->nlive] = n;
    f->nlive++;
}

static void setup_common(fixture *f)
{
    add_live(f, 24);
    add_live(f, 100);
    add_live(f, 512);
    add_live(f, 2000);
    add_live(f, 60000);
    add_live(f, 0);
}

static int setup_hosted(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    tally_config cfg;
    tally_config_init(&cfg);
    cfg.report = rec_report;
    cfg.report_arg = &f->rec;
    f->rt = tally_open(&cfg);
    if (f->rt == NULL)
        return -1;
    setup_common(f);
    add_live(f, 3 * MiB);
    *state = f;
    return 0;
}

static int setup_fixed(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    tally_config cfg;
    tally_config_init(&cfg);
    cfg.memory = g_fixed_buf + 5; /* deliberately misaligned */
    /* 2 MiB, or 128 pools if pools are bigger than the default. */
    cfg.memory_size = max_size(2 * MiB, 128 * test_pool_size());
    cfg.report = rec_report;
    cfg.report_arg = &f->rec;
    f->rt = tally_open(&cfg);
    if (f->rt == NULL)
        return -1;
    setup_common(f);
    *state = f;
    return 0;
}

static void check_live(fixture *f)
{
    for (int i = 0; i < f->nlive; i++) {
        assert_ptr_equal(tally_runtime_of(f->live[i]), f->rt);
        assert_true(tally_usable_size(f->live[i]) >= f->live_n[i]);
        assert_int_equal(check_pattern(f->live[i], f->live_n[i], (uint32_t)(1000 + i)),
                         f->live_n[i]);
    }
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f == NULL)
        return 0;
    /* The runtime still works and all live blocks free normally. */
    check_live(f);
    tally_clear_error(f->rt);
    unsigned long reports = f->rec.count;
    for (int i = 0; i < f->nlive; i++)
        tally_free(f->rt, f->live[i]);
    int ok = tally_last_error(f->rt) == TALLY_OK && f->rec.count == reports &&
             tally_heap_check(f->rt) == 0;
    struct tally_heap_stats s;
    ok = ok && tally_heap_stats(f->rt, &s) == 0 && s.bytes_in_use == 0 && s.blocks_in_use == 0;
    tally_close(f->rt);
    free(f);
    return ok ? 0 : -1;
}

/* ---- the core check ------------------------------------------------------------ */

#define EXPECT_FOREIGN 1
#define EXPECT_DOUBLE 2
#define EXPECT_EITHER 3

static void expect_code(tally_error e, int expect)
{
    if (expect == EXPECT_FOREIGN)
        assert_int_equal(e, TALLY_EFOREIGN);
    else if (expect == EXPECT_DOUBLE)
        assert_int_equal(e, TALLY_EDOUBLEFREE);
    else
        assert_true(e == TALLY_EFOREIGN || e == TALLY_EDOUBLEFREE);
}

static void assert_nothing_changed(const struct tally_heap_stats *b,
                                   const struct tally_heap_stats *a)
{
    assert_int_equal(a->bytes_in_use, b->bytes_in_use);
    assert_int_equal(a->blocks_in_use, b->blocks_in_use);
    assert_int_equal(a->large_blocks, b->large_blocks);
    assert_int_equal(a->large_bytes, b->large_bytes);
    assert_int_equal(a->allocs, b->allocs);
    assert_int_equal(a->frees, b->frees);
    assert_int_equal(a->bytes_reserved, b->bytes_reserved);
    assert_int_equal(a->pools_used, b->pools_used);
    assert_int_equal(a->pools_free, b->pools_free);
    assert_int_equal(a->arenas, b->arenas);
    assert_int_equal(a->backend_requests, b->backend_requests);
    assert_int_equal(a->backend_releases, b->backend_releases);
    for (int i = 0; i < a->nclasses && i < TALLY_MAX_CLASSES; i++) {
        assert_int_equal(a->classes[i].blocks_used, b->classes[i].blocks_used);
        assert_int_equal(a->classes[i].blocks_free, b->classes[i].blocks_free);
    }
}

/* Frees p (which must be rejected) and checks that it was only reported. */
static void bad_free(fixture *f, void *p, int expect)
{
    struct tally_heap_stats before = get_stats(f->rt);
    unsigned long reports = f->rec.count;
    tally_clear_error(f->rt);
    tally_free(f->rt, p);
    expect_code(tally_last_error(f->rt), expect);
    assert_true(strlen(tally_last_error_message(f->rt)) > 0);
    assert_int_equal(f->rec.count, reports + 1);
    assert_true(str_has_ptr(f->rec.last, p));
    struct tally_heap_stats after = get_stats(f->rt);
    assert_nothing_changed(&before, &after);
    assert_int_equal(after.errors_detected, before.errors_detected + 1);
    assert_int_equal(tally_heap_check(f->rt), 0);
    check_live(f);
}

/* Same through realloc: NULL, the error, nothing else. */
static void bad_realloc(fixture *f, void *p, int expect)
{
    struct tally_heap_stats before = get_stats(f->rt);
    unsigned long reports = f->rec.count;
    tally_clear_error(f->rt);
    assert_null(tally_realloc(f->rt, p, 64));
    expect_code(tally_last_error(f->rt), expect);
    assert_int_equal(f->rec.count, reports + 1);
    assert_true(str_has_ptr(f->rec.last, p));
    struct tally_heap_stats after = get_stats(f->rt);
    assert_nothing_changed(&before, &after);
    assert_int_equal(tally_heap_check(f->rt), 0);
    check_live(f);
}

/* ---- double free ------------------------------------------------------------- */

static void test_double_free_small(void **state)
{
    fixture *f = *state;
    /* A neighbour in the same pool keeps the pool alive. */
    static const size_t sizes[] = {1, 16, 64, 100, 333, 512};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *a = tally_malloc(f->rt, sizes[i]);
        void *b = tally_malloc(f->rt, sizes[i]);
        assert_non_null(a);
        assert_non_null(b);
        fill_pattern(b, sizes[i], 5);
        tally_free(f->rt, a);
        assert_int_equal(tally_last_error(f->rt), TALLY_OK);
        bad_free(f, a, EXPECT_DOUBLE);
        bad_free(f, a, EXPECT_DOUBLE); /* and again */
        assert_int_equal(check_pattern(b, sizes[i], 5), sizes[i]);
        tally_free(f->rt, b);
        tally_clear_error(f->rt);
    }
}

/* The only block of its class: the pool may be kept or given back. */
static void test_double_free_lone_block(void **state)
{
    fixture *f = *state;
    void *a = tally_malloc(f->rt, 208);
    assert_non_null(a);
    tally_free(f->rt, a);
    bad_free(f, a, EXPECT_DOUBLE);
    /* The slot can be handed out again and freed normally. */
    void *b = tally_malloc(f->rt, 208);
    assert_non_null(b);
    tally_clear_error(f->rt);
    tally_free(f->rt, b);
    assert_int_equal(tally_last_error(f->rt), TALLY_OK);
}

static void test_double_free_medium(void **state)
{
    fixture *f = *state;
    static const size_t sizes[] = {513, 1500, 3000, 5000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *keep = tally_malloc(f->rt, sizes[i]);
        void *a = tally_malloc(f->rt, sizes[i]);
        assert_non_null(keep);
        assert_non_null(a);
        tally_free(f->rt, a);
        bad_free(f, a, EXPECT_DOUBLE);
        tally_free(f->rt, keep);
    }
}

static void test_double_free_large(void **state)
{
    fixture *f = *state;
    static const size_t sizes[] = {20000, 100000, 500000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *a = tally_malloc(f->rt, sizes[i]);
        assert_non_null(a);
        tally_free(f->rt, a);
        bad_free(f, a, EXPECT_EITHER);
    }
}

static void test_double_free_huge(void **state)
{
    fixture *f = *state;
    void *a = tally_malloc(f->rt, 3 * MiB);
    if (a == NULL) { /* the fixed buffer may be too small for it */
        tally_clear_error(f->rt);
        a = tally_malloc(f->rt, 600 * KiB);
    }
    assert_non_null(a);
    tally_free(f->rt, a);
    bad_free(f, a, EXPECT_EITHER);
}

/* Double free after the pool of the block has emptied out completely. */
static void test_double_free_after_pool_emptied(void **state)
{
    fixture *f = *state;
    enum { N = 600 }; /* more than one pool of 272-byte blocks */
    static void *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = tally_malloc(f->rt, 272);
        assert_non_null(p[i]);
    }
    for (int i = 0; i < N; i++)
        tally_free(f->rt, p[i]);
    assert_int_equal(tally_last_error(f->rt), TALLY_OK);
    bad_free(f, p[0], EXPECT_EITHER);
    bad_free(f, p[N / 2], EXPECT_EITHER);
    bad_free(f, p[N - 1], EXPECT_EITHER);
}

/* ---- foreign pointers ---------------------------------------------------------- */

static void test_free_stack_address(void **state)
{
    fixture *f = *state;
    _Alignas(16) char local[64];
    memset(local, 1, sizeof local);
    bad_free(f, local, EXPECT_FOREIGN);
    bad_free(f, local + 16, EXPECT_FOREIGN);
    assert_int_equal(local[0], 1);
}

static void test_free_libc_block(void **state)
{
    fixture *f = *state;
    static const size_t sizes[] = {16, 100, 5000, 200000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *m = malloc(sizes[i]);
        assert_non_null(m);
        memset(m, 0x3c, sizes[i]);
        bad_free(f, m, EXPECT_FOREIGN);
        assert_true(all_bytes_are(m, sizes[i], 0x3c));
        free(m); /* still a fine libc block */
    }
}

static void test_free_static_and_wild(void **state)
{
    fixture *f = *state;
    bad_free(f, g_static_object, EXPECT_FOREIGN);
    bad_free(f, (void *)(uintptr_t)16, EXPECT_FOREIGN);
    bad_free(f, (void *)(uintptr_t)0x1000, EXPECT_FOREIGN);
    bad_free(f, (void *)(uintptr_t)0x7ff000000000ull, EXPECT_FOREIGN);
    bad_free(f, (void *)~(uintptr_t)15, EXPECT_FOREIGN);
    bad_free(f, (void *)(uintptr_t)&test_free_static_and_wild, EXPECT_FOREIGN);
}

static void test_free_interior_small(void **state)
{
    fixture *f = *state;
    /* 100 bytes: class 112, so p+16 is inside the block, not the next block. */
    unsigned char *p = f->live[1];
    bad_free(f, p + 8, EXPECT_FOREIGN);
    bad_free(f, p + 16, EXPECT_FOREIGN);
    bad_free(f, p + 1, EXPECT_FOREIGN);
    bad_free(f, p + 96, EXPECT_FOREIGN);
    unsigned char *q = f->live[2]; /* 512 */
    bad_free(f, q + 256, EXPECT_FOREIGN);
    bad_free(f, q + 8, EXPECT_FOREIGN);
    unsigned char *r = f->live[0]; /* 24 -> 32 */
    bad_free(f, r + 16, EXPECT_FOREIGN);
}

static void test_free_interior_medium_and_large(void **state)
{
    fixture *f = *state;
    unsigned char *m = f->live[3]; /* 2000 */
    bad_free(f, m + 16, EXPECT_FOREIGN);
    bad_free(f, m + 1024, EXPECT_FOREIGN);
    unsigned char *l = f->live[4]; /* 60000: spans pools */
    size_t pool = get_stats(f->rt).pool_size;
    bad_free(f, l + 16, EXPECT_FOREIGN);
    bad_free(f, l + 8, EXPECT_FOREIGN);
    bad_free(f, l + pool, EXPECT_FOREIGN);
    bad_free(f, l + pool + 32, EXPECT_FOREIGN);
    bad_free(f, l + 59984, EXPECT_FOREIGN);
    /* The pool header in front of a block. */
    unsigned char *hdr = (unsigned char *)((uintptr_t)f->live[1] & ~(uintptr_t)(pool - 1));
    if (hdr != f->live[1])
        bad_free(f, hdr, EXPECT_FOREIGN);
}

static void test_free_interior_huge(void **state)
{
    fixture *f = *state;
    if (get_stats(f->rt).fixed)
        skip();
    unsigned char *h = f->live[6]; /* 3 MiB */
    bad_free(f, h + 16, EXPECT_FOREIGN);
    bad_free(f, h + MiB, EXPECT_FOREIGN);
    bad_free(f, h + 3 * MiB - 16, EXPECT_FOREIGN);
}

/* A slot of a live pool that was never handed out. */
static void test_free_never_allocated_slot(void **state)
{
    fixture *f = *state;
    unsigned char *a = tally_malloc(f->rt, 176);
    assert_non_null(a);
    size_t us = tally_usable_size(a);
    /* In a fresh class pool, the block after a is free. */
    bad_free(f, a + us, EXPECT_EITHER);
    bad_free(f, a + 40 * us, EXPECT_EITHER);
    tally_free(f->rt, a);
}

static void test_realloc_foreign(void **state)
{
    fixture *f = *state;
    _Alignas(16) char local[32];
    bad_realloc(f, local, EXPECT_FOREIGN);
    bad_realloc(f, f->live[1] + 16, EXPECT_FOREIGN);
    bad_realloc(f, f->live[4] + 32, EXPECT_FOREIGN);
    void *m = malloc(48);
    assert_non_null(m);
    bad_realloc(f, m, EXPECT_FOREIGN);
    free(m);
    void *a = tally_malloc(f->rt, 80);
    void *keep = tally_malloc(f->rt, 80);
    assert_non_null(a);
    assert_non_null(keep);
    tally_free(f->rt, a);
    bad_realloc(f, a, EXPECT_EITHER); /* realloc of a freed block */
    tally_free(f->rt, keep);
}

static void test_stats_bad_arguments(void **state)
{
    fixture *f = *state;
    struct tally_heap_stats s;
    tally_clear_error(f->rt);
    assert_int_equal(tally_heap_stats(f->rt, NULL), -1);
    assert_int_equal(tally_last_error(f->rt), TALLY_EINVAL);
    assert_int_equal(tally_heap_stats(NULL, &s), -1);
    assert_int_equal(tally_heap_check(f->rt), 0);
}

/* A storm of mixed misuse, then normal work: the heap must be exactly as good. */
static void test_misuse_storm_then_work(void **state)
{
    fixture *f = *state;
    _Alignas(16) char local[64];
    enum { N = 200 };
    void *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = tally_malloc(f->rt, (size_t)(i * 13) % 700);
        assert_non_null(p[i]);
    }
    for (int i = 0; i < N; i += 2)
        tally_free(f->rt, p[i]);
    struct tally_heap_stats before = get_stats(f->rt);
    unsigned long reports = f->rec.count;
    for (int i = 0; i < N; i++) {
        tally_free(f->rt, local);
        tally_free(f->rt, (char *)p[i] + 8);
        if (i % 2 == 0)
            tally_free(f->rt, p[i]); /* double */
    }
    struct tally_heap_stats after = get_stats(f->rt);
    assert_nothing_changed(&before, &after);
    assert_int_equal(f->rec.count, reports + N + N + N / 2);
    assert_int_equal(after.errors_detected, before.errors_detected + N + N + N / 2);
    assert_int_equal(tally_heap_check(f->rt), 0);
    tally_clear_error(f->rt);
    for (int i = 1; i < N; i += 2)
        tally_free(f->rt, p[i]);
    assert_int_equal(tally_last_error(f->rt), TALLY_OK);
    check_live(f);
}

#define BOTH(t)                                                              \
    {#t "/hosted", t, setup_hosted, teardown, NULL},                     \
        {#t "/fixed", t, setup_fixed, teardown, NULL}

int main(void)
{
    unsetenv("TALLY_DEBUG");
    const struct CMUnitTest tests[] = {
        BOTH(test_double_free_small),
        BOTH(test_double_free_lone_block),
        BOTH(test_double_free_medium),
        BOTH(test_double_free_large),
        BOTH(test_double_free_huge),
        BOTH(test_double_free_after_pool_emptied),
        BOTH(test_free_stack_address),
        BOTH(test_free_libc_block),
        BOTH(test_free_static_and_wild),
        BOTH(test_free_interior_small),
        BOTH(test_free_interior_medium_and_large),
        cmocka_unit_test_setup_teardown(test_free_interior_huge, setup_hosted, teardown),
        BOTH(test_free_never_allocated_slot),
        BOTH(test_realloc_foreign),
        BOTH(test_stats_bad_arguments),
        BOTH(test_misuse_storm_then_work),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
