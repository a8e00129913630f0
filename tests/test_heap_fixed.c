/* test_heap_fixed.c - the fixed-buffer backend (cfg.memory).
 *
 * Covers: buffers below tally_fixed_min() are refused (NULL, errno EINVAL, a report
 * saying why) and a buffer of exactly tally_fixed_min() bytes is accepted; aligned
 * and deliberately misaligned (buf + 3) buffers of 256 KiB and 1 MiB are filled
 * until allocation fails with TALLY_ENOMEM and a message, with every block inside
 * the buffer, 16-byte aligned, owned by the runtime and keeping its pattern; the
 * heap stays valid; freeing everything brings bytes_in_use back to 0 and the same
 * sequence of allocations succeeds again; realloc failing in a full buffer keeps
 * the old block; requests bigger than the buffer fail with TALLY_ENOMEM; the
 * statistics say fixed == 1 and stay within the buffer; and the runtime never
 * calls malloc, calloc, realloc, posix_memalign, aligned_alloc or mmap (this
 * program is linked with --wrap for those symbols and counts calls made while a
 * fixed runtime is in use).
 */
#define _GNU_SOURCE
#include "test_util.h"

#include <errno.h>
#include <sys/mman.h>
#include <sys/types.h>

/* ---- libc call counting (linked with -Wl,--wrap=...) ---------------------------- */

#include "libc_wrap.h"

/* ---- buffers ------------------------------------------------------------------- */

/* Big enough for 64 pools of the largest pool size (64 KiB). */
#define BIG (4 * 1024 * 1024 + 65536)
static _Alignas(65536) unsigned char g_buf[BIG];

typedef struct layout {
    size_t offset; /* from g_buf */
    size_t bytes;  /* size with the default 16 KiB pools ... */
    size_t pools;  /* ... or at least this many pools of this build */
    size_t size;   /* what is used: filled in by layout_size() */
} layout;

static layout k_layouts[] = {
    {0, 256 * 1024, 16, 0},
    {0, 1024 * 1024, 64, 0},
    {3, 256 * 1024, 16, 0},
    {3, 1024 * 1024, 64, 0},
    {4096 + 16, 300 * 1024, 19, 0},
};
#define NLAYOUTS (sizeof k_layouts / sizeof k_layouts[0])

static void layout_sizes(void)
{
    for (size_t i = 0; i < NLAYOUTS; i++)
        k_layouts[i].size = max_size(k_layouts[i].bytes, k_layouts[i].pools * test_pool_size());
}

static tally_rt *open_layout(const layout *l, recorder *rec)
{
    assert_true(l->size > 0 && l->offset + l->size <= BIG);
    return open_fixed(g_buf + l->offset, l->size, rec, 0);
}

static int in_buffer(const layout *l, const void *p, size_t n)
{
    uintptr_t lo = (uintptr_t)(g_buf + l->offset), hi = lo + l->size;
    uintptr_t a = (uintptr_t)p;
    return a >= lo && a + n <= hi && a + n >= a;
}

/* ---- refusing small buffers ------------------------------------------------------ */

static void test_fixed_min_sane(void **state)
{
    (void)state;
    size_t min = tally_fixed_min();
    assert_int_equal(min, TALLY_FIXED_MIN);
    assert_true(min > 0);
    assert_true(min <= 1024 * 1024); /* "a few pools plus the runtime itself" */
}

static void expect_refused(void *mem, size_t size)
{
    recorder rec;
    rec_reset(&rec);
    tally_config cfg;
    tally_config_init(&cfg);
    cfg.memory = mem;
    cfg.memory_size = size;
    cfg.report = rec_report;
    cfg.report_arg = &rec;
    errno = 0;
    tally_rt *rt = tally_open(&cfg);
    assert_null(rt);
    assert_int_equal(errno, EINVAL);
    /* With a report callback, a sentence says why. */
    assert_true(rec.count >= 1);
    assert_true(strlen(rec.last) > 0);
}

static void test_too_small_refused(void **state)
{
    (void)state;
    size_t min = tally_fixed_min();
    expect_refused(g_buf, min - 1);
    expect_refused(g_buf + 3, min - 1);
    expect_refused(g_buf, min / 2);
    expect_refused(g_buf, 64);
    expect_refused(g_buf, 1);
    expect_refused(g_buf, 0);
    /* The buffer was not written to beyond what was given (a canary after it). */
    memset(g_buf, 0, 4096);
    g_buf[100] = 0x5a;
    expect_refused(g_buf, 100);
    assert_int_equal(g_buf[100], 0x5a);
}

static void test_exactly_min_accepted(void **state)
{
    (void)state;
    size_t min = tally_fixed_min();
    static const size_t offsets[] = {0, 3, 16, 4096 + 8};
    for (size_t i = 0; i < sizeof offsets / sizeof offsets[0]; i++) {
        recorder rec;
        tally_rt *rt = open_fixed(g_buf + offsets[i], min, &rec, 0);
        struct tally_heap_stats s = get_stats(rt);
        assert_int_equal(s.fixed, 1);
        assert_true(s.bytes_limit <= min);
        void *p = tally_malloc(rt, 16);
        assert_non_null(p);
        assert_true(is_aligned16(p));
        assert_ptr_equal(tally_runtime_of(p), rt);
        assert_true((uintptr_t)p >= (uintptr_t)(g_buf + offsets[i]) &&
                    (uintptr_t)p + 16 <= (uintptr_t)(g_buf + offsets[i] + min));
        tally_free(rt, p);
        assert_int_equal(tally_heap_check(rt), 0);
        tally_close(rt);
    }
}

/* ---- filling a buffer --------------------------------------------------------------- */

#define MAXBLK 270000

typedef struct blk {
    unsigned char *p;
    size_t n;
} blk;

static blk g_blocks[MAXBLK];
static size_t g_sizes[MAXBLK];

static size_t workload_size(test_rng *r)
{
    size_t k = rng_below(r, 100);
    if (k < 70)
        return rng_below(r, 513);
    if (k < 90)
        return 513 + rng_below(r, 7000);
    if (k < 98)
        return 8000 + rng_below(r, 30000);
    return 40000 + rng_below(r, 80000);
}

/* Allocates sizes[0..n) (or, when sizes is NULL, a random sequence recorded into
 * g_sizes, followed by 16-byte blocks) until the first failure.  Returns how many
 * succeeded.  Every block gets a pattern; every failure must be TALLY_ENOMEM. */
static size_t fill(tally_rt *rt, const layout *l, test_rng *rng, size_t nsizes)
{
    size_t count = 0;
    for (;;) {
        assert_true(count < MAXBLK);
        size_t n;
        if (rng == NULL) {
            if (count == nsizes)
                break;
            n = g_sizes[count];
        } else {
            n = workload_size(rng);
        }
        tally_clear_error(rt);
        unsigned char *p = tally_malloc(rt, n);
        if (p == NULL) {
            assert_non_null(rng); /* a replay must not fail */
            assert_int_equal(tally_last_error(rt), TALLY_ENOMEM);
            assert_true(strlen(tally_last_error_message(rt)) > 0);
            break;
        }
        assert_true(is_aligned16(p));
        size_t us = tally_usable_size(p);
        assert_true(us >= n);
        assert_true(in_buffer(l, p, us));
        assert_ptr_equal(tally_runtime_of(p), rt);
        fill_pattern(p, us, (uint32_t)count);
        g_blocks[count].p = p;
        g_blocks[count].n = us;
        g_sizes[count] = n;
        count++;
    }
    return count;
}

static void verify_all(size_t count)
{
    for (size_t i = 0; i < count; i++)
        assert_int_equal(check_pattern(g_blocks[i].p, g_blocks[i].n, (uint32_t)i), g_blocks[i].n);
}

static void free_all_shuffled(tally_rt *rt, size_t count, uint64_t seed)
{
    test_rng r = {seed};
    for (size_t i = count; i > 1; i--) {
        size_t j = rng_below(&r, i);
        blk t = g_blocks[i - 1];
        g_blocks[i - 1] = g_blocks[j];
        g_blocks[j] = t;
    }
    for (size_t i = 0; i < count; i++)
        tally_free(rt, g_blocks[i].p);
}

static void fill_layout(const layout *l, uint64_t seed)
{
    recorder rec;
    g_counting = 1;
    g_libc_calls = 0;
    tally_rt *rt = open_layout(l, &rec);
    struct tally_heap_stats s0 = get_stats(rt);
    assert_int_equal(s0.fixed, 1);
    assert_int_equal(s0.bytes_in_use, 0);
    assert_true(s0.bytes_limit > 0 && s0.bytes_limit <= l->size);
    assert_true(s0.bytes_reserved <= l->size);

    /* Phase 1: random sizes until the first failure. */
    test_rng rng = {seed};
    size_t n1 = fill(rt, l, &rng, 0);
    assert_true(n1 > 0);
    /* Phase 2: small blocks into whatever is left, until that fails too. */
    size_t total = n1;
    for (;;) {
        assert_true(total < MAXBLK);
        tally_clear_error(rt);
        unsigned char *p = tally_malloc(rt, 16);
        if (p == NULL) {
            assert_int_equal(tally_last_error(rt), TALLY_ENOMEM);
            assert_true(strlen(tally_last_error_message(rt)) > 0);
            break;
        }
        assert_true(in_buffer(l, p, 16));
        fill_pattern(p, tally_usable_size(p), (uint32_t)total);
        g_blocks[total].p = p;
        g_blocks[total].n = tally_usable_size(p);
        g_sizes[total] = 16;
        total++;
    }
    assert_int_equal(rec.count, 0); /* running out is not misuse */
    assert_int_equal(tally_heap_check(rt), 0);
    verify_all(total);

    struct tally_heap_stats full = get_stats(rt);
    assert_int_equal(full.blocks_in_use, total);
    assert_true(full.bytes_in_use <= l->size);
    assert_true(full.bytes_reserved <= l->size);
    assert_true(full.bytes_in_use <= full.bytes_reserved);
    /* Even a 16-byte request failed: no pool is left free. */
    assert_int_equal(full.pools_free, 0);
    assert_true(full.bytes_in_use > 0);

    /* A request bigger than the whole buffer fails cleanly. */
    tally_clear_error(rt);
    assert_null(tally_malloc(rt, l->size + 1));
    assert_int_equal(tally_last_error(rt), TALLY_ENOMEM);

    /* Realloc failing in a full buffer leaves the block alone. */
    tally_clear_error(rt);
    assert_null(tally_realloc(rt, g_blocks[0].p, l->size / 2));
    assert_int_not_equal(tally_last_error(rt), TALLY_OK);
    verify_all(total);

    free_all_shuffled(rt, total, seed + 1);
    assert_int_equal(tally_heap_check(rt), 0);
    struct tally_heap_stats empty = get_stats(rt);
    assert_int_equal(empty.bytes_in_use, 0);
    assert_int_equal(empty.blocks_in_use, 0);
    assert_int_equal(empty.large_blocks, 0);

    /* The same allocations succeed again. */
    size_t again = fill(rt, l, NULL, total);
    assert_int_equal(again, total);
    verify_all(total);
    assert_int_equal(tally_heap_check(rt), 0);
    for (size_t i = 0; i < total; i++)
        tally_free(rt, g_blocks[i].p);
    assert_int_equal(get_stats(rt).bytes_in_use, 0);
    assert_int_equal(tally_last_error(rt), TALLY_OK); /* the replay and frees were clean */
    tally_close(rt);
    g_counting = 0;
    assert_int_equal(g_libc_calls, 0);
}

static void test_fill_aligned_256k(void **state)
{
    (void)state;
    fill_layout(&k_layouts[0], 11);
}

static void test_fill_aligned_1m(void **state)
{
    (void)state;
    fill_layout(&k_layouts[1], 12);
}

static void test_fill_misaligned_256k(void **state)
{
    (void)state;
    fill_layout(&k_layouts[2], 13);
}

static void test_fill_misaligned_1m(void **state)
{
    (void)state;
    fill_layout(&k_layouts[3], 14);
}

static void test_fill_odd_size(void **state)
{
    (void)state;
    fill_layout(&k_layouts[4], 15);
}

/* Several seeds over the 1 MiB misaligned buffer: different size mixes. */
static void test_fill_many_seeds(void **state)
{
    (void)state;
    size_t seeds = test_scale(6, 3);
    for (size_t i = 0; i < seeds; i++)
        fill_layout(&k_layouts[i % NLAYOUTS], 100 + i);
}

/* One request that takes (nearly) the whole buffer, then small ones. */
static void test_one_big_block(void **state)
{
    (void)state;
    const layout *l = &k_layouts[3];
    g_counting = 1;
    g_libc_calls = 0;
    tally_rt *rt = open_layout(l, NULL);
    struct tally_heap_stats s = get_stats(rt);
    size_t n = s.largest_free;
    assert_true(n > 0 && n <= l->size);
    unsigned char *p = tally_malloc(rt, n);
    assert_non_null(p);
    assert_true(in_buffer(l, p, tally_usable_size(p)));
    memset(p, 0x77, n);
    tally_free(rt, p);
    /* After freeing, the same big request fits again. */
    p = tally_malloc(rt, n);
    assert_non_null(p);
    tally_free(rt, p);
    assert_int_equal(tally_heap_check(rt), 0);
    tally_close(rt);
    g_counting = 0;
    assert_int_equal(g_libc_calls, 0);
}

/* calloc in a buffer that was full of garbage: still zero-filled. */
static void test_calloc_in_dirty_buffer(void **state)
{
    (void)state;
    const layout *l = &k_layouts[2];
    memset(g_buf, 0xCD, sizeof g_buf);
    tally_rt *rt = open_layout(l, NULL);
    static const size_t sizes[] = {1, 48, 512, 3000, 20000, 70000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = tally_calloc(rt, 1, sizes[i]);
        assert_non_null(p);
        assert_true(all_bytes_are(p, sizes[i], 0));
        memset(p, 0xAB, sizes[i]);
        tally_free(rt, p);
        p = tally_calloc(rt, sizes[i], 1);
        assert_non_null(p);
        assert_true(all_bytes_are(p, sizes[i], 0));
        tally_free(rt, p);
    }
    tally_close(rt);
}

/* Reopening the same buffer after close starts from scratch. */
static void test_reopen_same_buffer(void **state)
{
    (void)state;
    const layout *l = &k_layouts[2];
    g_counting = 1;
    g_libc_calls = 0;
    for (int round = 0; round < 5; round++) {
        tally_rt *rt = open_layout(l, NULL);
        struct tally_heap_stats s = get_stats(rt);
        assert_int_equal(s.bytes_in_use, 0);
        assert_int_equal(s.blocks_in_use, 0);
        /* Few size classes: each class in use takes a pool of its own. */
        for (int i = 0; i < 50; i++)
            assert_non_null(tally_malloc(rt, (size_t)(i % 4) * 64 + (size_t)round));
        assert_int_equal(get_stats(rt).blocks_in_use, 50);
        tally_close(rt); /* with live blocks */
    }
    g_counting = 0;
    assert_int_equal(g_libc_calls, 0);
}

/* Sanity of the counting wrappers themselves: they do see calls. */
static void test_wrappers_count(void **state)
{
    (void)state;
    g_counting = 1;
    g_libc_calls = 0;
    void *volatile p = malloc(10);
    g_counting = 0;
    free(p);
    assert_int_equal(g_libc_calls, 1);
}

int main(void)
{
    unsetenv("TALLY_DEBUG");
    layout_sizes();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wrappers_count),
        cmocka_unit_test(test_fixed_min_sane),
        cmocka_unit_test(test_too_small_refused),
        cmocka_unit_test(test_exactly_min_accepted),
        cmocka_unit_test(test_fill_aligned_256k),
        cmocka_unit_test(test_fill_aligned_1m),
        cmocka_unit_test(test_fill_misaligned_256k),
        cmocka_unit_test(test_fill_misaligned_1m),
        cmocka_unit_test(test_fill_odd_size),
        cmocka_unit_test(test_fill_many_seeds),
        cmocka_unit_test(test_one_big_block),
        cmocka_unit_test(test_calloc_in_dirty_buffer),
        cmocka_unit_test(test_reopen_same_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
