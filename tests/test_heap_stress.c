/* test_heap_stress.c - long random workloads with content checks.
 *
 * A deterministic random mix of malloc, calloc, realloc and free over sizes 0 to
 * 70000 bytes (skewed towards small sizes), 200k operations (20k under
 * TALLY_TEST_QUICK or Valgrind).  Every block is filled with a byte derived from
 * its slot and generation and verified before it is resized or released, calloc
 * blocks are checked to be zero, alignment and ownership are checked on every
 * block, tally_heap_check() runs at intervals, and at the end bytes_in_use and
 * blocks_in_use are back to 0.  Runs on a hosted runtime, a hosted runtime under
 * an 8 MiB max_bytes (where TALLY_ELIMIT failures are allowed and must leave
 * everything intact), a misaligned 4 MiB fixed buffer (TALLY_ENOMEM allowed), and
 * in debug mode (shorter).  Also an "all sizes" sweep and a LIFO/FIFO pattern.
 * TALLY_DEBUG is honoured, so the whole program can run in debug mode too.
 */
#define _GNU_SOURCE
#include "test_util.h"

#define SLOTS 4096

typedef struct slot {
    unsigned char *p;
    size_t n;
    uint8_t fill;
} slot;

static slot g_slots[SLOTS];

typedef struct stress_cfg {
    size_t ops;
    size_t check_every;
    int allow_fail;        /* 0, or the one error code allowed on failure */
    int allow_fail2;
    size_t max_size;
} stress_cfg;

static size_t pick_size(test_rng *r, size_t max)
{
    size_t k = rng_below(r, 1000);
    size_t n;
    if (k < 650)
        n = rng_below(r, 257);
    else if (k < 900)
        n = 257 + rng_below(r, 4096 - 257);
    else if (k < 990)
        n = 4096 + rng_below(r, 30000);
    else
        n = 30000 + rng_below(r, 40001);
    return n > max ? max : n;
}

static int verify_fill(const unsigned char *p, size_t n, uint8_t v)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != v)
            return 0;
    return 1;
}

static void check_block(tally_rt *rt, const slot *s)
{
    assert_true(is_aligned16(s->p));
    assert_ptr_equal(tally_runtime_of(s->p), rt);
    assert_true(tally_usable_size(s->p) >= s->n);
    assert_true(verify_fill(s->p, s->n, s->fill));
}

static void failed(tally_rt *rt, const stress_cfg *c, size_t *fails)
{
    tally_error e = tally_last_error(rt);
    assert_true(c->allow_fail != 0);
    assert_true((int)e == c->allow_fail || (c->allow_fail2 && (int)e == c->allow_fail2));
    (*fails)++;
}

static size_t run_stress(tally_rt *rt, const stress_cfg *c, uint64_t seed)
{
    test_rng rng = {seed};
    memset(g_slots, 0, sizeof g_slots);
    size_t fails = 0;
    uint8_t gen = 0;
    for (size_t op = 0; op < c->ops; op++) {
        slot *s = &g_slots[rng_below(&rng, SLOTS)];
        size_t action = rng_below(&rng, 100);
        tally_clear_error(rt);
        if (s->p == NULL) {
            size_t n = pick_size(&rng, c->max_size);
            int zero = action < 15;
            unsigned char *p = zero ? tally_calloc(rt, 1, n) : tally_malloc(rt, n);
            if (p == NULL) {
                failed(rt, c, &fails);
                continue;
            }
            if (zero)
                assert_true(verify_fill(p, n, 0));
            s->p = p;
            s->n = n;
            s->fill = (uint8_t)(++gen | 1);
            memset(p, s->fill, n);
            check_block(rt, s);
        } else if (action < 55) {
            check_block(rt, s);
            tally_free(rt, s->p);
            s->p = NULL;
        } else if (action < 90) {
            check_block(rt, s);
            size_t n = action < 70 ? pick_size(&rng, c->max_size) : s->n + rng_below(&rng, 200);
            if (n > c->max_size)
                n = c->max_size;
            unsigned char *q = tally_realloc(rt, s->p, n);
            if (q == NULL) {
                failed(rt, c, &fails);
                check_block(rt, s); /* left untouched */
                continue;
            }
            size_t keep = s->n < n ? s->n : n;
            assert_true(verify_fill(q, keep, s->fill));
            s->p = q;
            s->n = n;
            s->fill = (uint8_t)(++gen | 1);
            memset(q, s->fill, n);
            check_block(rt, s);
        } else {
            check_block(rt, s);
        }
        if (c->check_every && op % c->check_every == 0)
            assert_int_equal(tally_heap_check(rt), 0);
    }
    /* Account, then free everything (the accounting is asserted last, so that a
     * miscount does not hide other problems). */
    struct tally_heap_stats st = get_stats(rt);
    size_t live = 0, bytes = 0;
    for (int i = 0; i < SLOTS; i++)
        if (g_slots[i].p) {
            live++;
            bytes += tally_usable_size(g_slots[i].p);
        }
    assert_int_equal(tally_heap_check(rt), 0);
    for (int i = 0; i < SLOTS; i++)
        if (g_slots[i].p) {
            check_block(rt, &g_slots[i]);
            tally_free(rt, g_slots[i].p);
            g_slots[i].p = NULL;
        }
    struct tally_heap_stats end = get_stats(rt);
    assert_int_equal(tally_heap_check(rt), 0);
    assert_int_equal(end.blocks_in_use, 0);
    assert_int_equal(st.blocks_in_use, live);
    assert_int_equal(end.bytes_in_use, 0);
    assert_int_equal(st.bytes_in_use, bytes); /* usable bytes of the live blocks */
    return fails;
}

static void test_stress_hosted(void **state)
{
    (void)state;
    recorder rec;
    tally_rt *rt = open_hosted(&rec, 0);
    stress_cfg c = {test_scale(200000, 10), 10000, 0, 0, 70000};
    assert_int_equal(run_stress(rt, &c, 1), 0);
    assert_int_equal(rec.count, 0);
    assert_int_equal(tally_last_error(rt), TALLY_OK);
    /* Once more on the same (now warm) runtime, another seed. */
    c.ops = test_scale(50000, 10);
    assert_int_equal(run_stress(rt, &c, 2), 0);
    tally_heap_trim(rt);
    assert_int_equal(tally_heap_check(rt), 0);
    tally_close(rt);
}

static void test_stress_limited(void **state)
{
    (void)state;
    recorder rec;
    rec_reset(&rec);
    tally_config cfg;
    tally_config_init(&cfg);
    cfg.max_bytes = 8 * MiB;
    cfg.report = rec_report;
    cfg.report_arg = &rec;
    tally_rt *rt = tally_open(&cfg);
    assert_non_null(rt);
    stress_cfg c = {test_scale(100000, 10), 5000, TALLY_ELIMIT, 0, 70000};
    run_stress(rt, &c, 3);
    struct tally_heap_stats s = get_stats(rt);
    assert_true(s.bytes_reserved_peak <= 8 * MiB);
    assert_int_equal(rec.count, 0);
    tally_close(rt);
}

static _Alignas(65536) unsigned char g_buf[4 * 1024 * 1024 + 64];

static void test_stress_fixed(void **state)
{
    (void)state;
    recorder rec;
    tally_rt *rt = open_fixed(g_buf + 9, 4 * MiB, &rec, 0);
    stress_cfg c = {test_scale(100000, 10), 5000, TALLY_ENOMEM, 0, 70000};
    run_stress(rt, &c, 4);
    assert_int_equal(rec.count, 0);
    tally_close(rt);
}

/* A small fixed buffer that is full most of the time. */
static void test_stress_fixed_tight(void **state)
{
    (void)state;
    size_t size = tally_fixed_min() + 256 * KiB;
    if (size > sizeof g_buf - 64)
        size = sizeof g_buf - 64;
    tally_rt *rt = open_fixed(g_buf + 1, size, NULL, 0);
    stress_cfg c = {test_scale(50000, 10), 2000, TALLY_ENOMEM, 0, 20000};
    size_t fails = run_stress(rt, &c, 5);
    assert_true(fails > 0); /* it really was tight */
    tally_close(rt);
}

static void test_stress_debug(void **state)
{
    (void)state;
    recorder rec;
    tally_rt *rt = open_hosted(&rec, TALLY_DEBUG_GUARDS);
    stress_cfg c = {test_scale(40000, 10), 5000, 0, 0, 70000};
    assert_int_equal(run_stress(rt, &c, 6), 0);
    assert_int_equal(rec.count, 0);
    tally_close(rt);
}

/* Every size from 0 to 20000 once, all live at the same time, then freed in an
 * interleaved order. */
static void test_all_sizes_sweep(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    size_t top = test_scale(20000, 4);
    unsigned char **p = malloc((top + 1) * sizeof *p);
    assert_non_null(p);
    for (size_t n = 0; n <= top; n++) {
        p[n] = tally_malloc(rt, n);
        assert_non_null(p[n]);
        assert_true(is_aligned16(p[n]));
        if (n) {
            p[n][0] = (unsigned char)n;
            p[n][n - 1] = (unsigned char)(n >> 3);
        }
    }
    for (size_t step = 0; step < 3; step++)
        for (size_t n = step; n <= top; n += 3) {
            if (n >= 2)
                assert_int_equal(p[n][0], (unsigned char)n);
            if (n >= 1)
                assert_int_equal(p[n][n - 1], (unsigned char)(n >> 3));
            tally_free(rt, p[n]);
        }
    free(p);
    assert_int_equal(get_stats(rt).bytes_in_use, 0);
    assert_int_equal(tally_heap_check(rt), 0);
    tally_close(rt);
}

/* Stack-like and queue-like lifetimes. */
static void test_lifo_fifo(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    enum { N = 5000 };
    static unsigned char *p[N];
    size_t rounds = test_scale(4, 2);
    for (size_t r = 0; r < rounds; r++) {
        for (int i = 0; i < N; i++) {
            size_t n = (size_t)(i % 97) * 11 + (i % 500 == 0 ? 40000 : 0);
            p[i] = tally_malloc(rt, n);
            assert_non_null(p[i]);
            memset(p[i], i & 0xff, n);
        }
        if (r % 2 == 0) {
            for (int i = N - 1; i >= 0; i--) {
                size_t n = (size_t)(i % 97) * 11 + (i % 500 == 0 ? 40000 : 0);
                assert_true(verify_fill(p[i], n, (uint8_t)(i & 0xff)));
                tally_free(rt, p[i]);
            }
        } else {
            for (int i = 0; i < N; i++) {
                size_t n = (size_t)(i % 97) * 11 + (i % 500 == 0 ? 40000 : 0);
                assert_true(verify_fill(p[i], n, (uint8_t)(i & 0xff)));
                tally_free(rt, p[i]);
            }
        }
        assert_int_equal(get_stats(rt).bytes_in_use, 0);
    }
    assert_int_equal(tally_heap_check(rt), 0);
    tally_close(rt);
}

int main(void)
{
    /* TALLY_DEBUG is honoured: CTest runs this program a second time in debug mode. */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stress_hosted),
        cmocka_unit_test(test_stress_limited),
        cmocka_unit_test(test_stress_fixed),
        cmocka_unit_test(test_stress_fixed_tight),
        cmocka_unit_test(test_stress_debug),
        cmocka_unit_test(test_all_sizes_sweep),
        cmocka_unit_test(test_lifo_fifo),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
