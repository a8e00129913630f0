/* test_heap_debug.c - debug mode (cfg.debug, TALLY_DEBUG): guards, poison,
 * quarantine.
 *
 * Covers: tally_usable_size() == the requested size exactly, alignment kept; fresh
 * blocks are poisoned (a 64-byte block is not all zeros) while calloc still zeroes;
 * one byte written past the end (p[n]) or before the start (p[-1]) is reported as
 * TALLY_ECORRUPT on free and by tally_heap_check(), for small, medium, large and
 * huge blocks and for n == 0, and the report names the block as "%p" prints it and
 * its size; a write after free is found by tally_heap_check() and when the block
 * leaves quarantine; realloc keeps contents and the old block is poisoned; double
 * free (TALLY_EDOUBLEFREE, also after the quarantine let go of the block) and
 * foreign pointers (TALLY_EFOREIGN) are caught; after every misuse the heap check
 * only ever complains about the damaged block itself, statistics stay exact and the
 * runtime keeps working; heap walks skip quarantined blocks; TALLY_DEBUG_FULL
 * notices damage without an explicit check; debug mode over a fixed buffer; and
 * the environment variable TALLY_DEBUG=1/2 switching tally_open(NULL) to debug.
 *
 * Deliberate scribbles go to memory that Tally marked inaccessible for ASan and
 * Valgrind; test_make_accessible() lifts that first so the sanitizer builds stay
 * clean.
 */
#define _GNU_SOURCE
#include "test_util.h"

static tally_rt *open_debug(recorder *rec, int level)
{
    tally_rt *rt = open_hosted(rec, level);
    assert_int_equal(get_stats(rt).debug, level);
    return rt;
}

/* Scribbles one byte at p + off (off may be -1 or past the end). */
static void scribble(unsigned char *p, long off, unsigned char v)
{
    test_make_accessible(p + off, 1);
    p[off] = v;
}

/* Every report recorded since the reset names address p. */
static void all_reports_name(const recorder *rec, const void *p)
{
    unsigned long n = rec->count < REC_KEEP ? rec->count : REC_KEEP;
    for (unsigned long i = 0; i < n; i++)
        assert_true(str_has_ptr(rec->msgs[i], p));
}

/* A quick workout: the runtime still works and keeps contents. */
static void workout(tally_rt *rt)
{
    enum { N = 150 };
    unsigned char *p[N];
    for (int i = 0; i < N; i++) {
        size_t n = (size_t)(i * 53) % 3000;
        p[i] = tally_malloc(rt, n);
        assert_non_null(p[i]);
        assert_int_equal(tally_usable_size(p[i]), n);
        fill_pattern(p[i], n, (uint32_t)i);
    }
    for (int i = 0; i < N; i++) {
        size_t n = (size_t)(i * 53) % 3000;
        assert_int_equal(check_pattern(p[i], n, (uint32_t)i), n);
        tally_free(rt, p[i]);
    }
}

/* ---- plain use ------------------------------------------------------------------ */

static void test_usable_size_exact(void **state)
{
    (void)state;
    recorder rec;
    tally_rt *rt = open_debug(&rec, TALLY_DEBUG_GUARDS);
    static const size_t sizes[] = {0, 1, 15, 16, 17, 100, 496, 497, 512, 513, 1000, 5000,
                                   16000, 40000, 200000, 2 * 1024 * 1024};
    enum { N = sizeof sizes / sizeof sizes[0] };
    unsigned char *p[N];
    size_t total = 0;
    for (size_t i = 0; i < N; i++) {
        p[i] = tally_malloc(rt, sizes[i]);
        assert_non_null(p[i]);
        assert_true(is_aligned16(p[i]));
        assert_int_equal(tally_usable_size(p[i]), sizes[i]);
        assert_ptr_equal(tally_runtime_of(p[i]), rt);
        fill_pattern(p[i], sizes[i], (uint32_t)i);
        total += sizes[i];
    }
    struct tally_heap_stats s = get_stats(rt);
    assert_int_equal(s.blocks_in_use, N);
    assert_true(s.bytes_in_use >= total);
    assert_int_equal(tally_heap_check(rt), 0);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(check_pattern(p[i], sizes[i], (uint32_t)i), sizes[i]);
        tally_free(rt, p[i]);
    }
    s = get_stats(rt);
    assert_int_equal(s.bytes_in_use, 0);
    assert_int_equal(s.blocks_in_use, 0);
    assert_int_equal(tally_heap_check(rt), 0);
    assert_int_equal(rec.count, 0);
    assert_int_equal(tally_last_error(rt), TALLY_OK);
    tally_close(rt);
}

/* bytes_in_use is "usable bytes of live blocks", and a debug block's usable size is
 * exactly what was asked for: guards and headers are not in use by the program. */
static void test_bytes_in_use_counts_user_bytes(void **state)
{
    (void)state;
    tally_rt *rt = open_debug(NULL, TALLY_DEBUG_GUARDS);
    static const size_t sizes[] = {1, 10, 100, 1000, 10000, 100000};
    void *p[6];
    size_t total = 0;
    for (int i = 0; i < 6; i++) {
        struct tally_heap_stats b = get_stats(rt);
        p[i] = tally_malloc(rt, sizes[i]);
        assert_non_null(p[i]);
        total += tally_usable_size(p[i]);
        struct tally_heap_stats a = get_stats(rt);
        assert_int_equal(a.bytes_in_use - b.bytes_in_use, sizes[i]);
    }
    assert_int_equal(get_stats(rt).bytes_in_use, total);
    for (int i = 0; i < 6; i++)
        tally_free(rt, p[i]);
    assert_int_equal(get_stats(rt).bytes_in_use, 0);
    tally_close(rt);
}

static void test_fresh_memory_poisoned(void **state)
{
    (void)state;
    tally_rt *rt = open_debug(NULL, TALLY_DEBUG_GUARDS);
    for (int round = 0; round < 3; round++) {
        unsigned char *p = tally_malloc(rt, 64);
        assert_non_null(p);
        test_make_accessible(p, 64); /* Valgrind: reading undefined bytes on purpose */
        assert_false(all_bytes_are(p, 64, 0));
        unsigned char *z = tally_calloc(rt, 8, 8);
        assert_non_null(z);
        assert_true(all_bytes_are(z, 64, 0));
        unsigned char *big = tally_malloc(rt, 100000);
        assert_non_null(big);
        test_make_accessible(big, 100000);
        assert_false(all_bytes_are(big, 100000, 0));
        tally_free(rt, p);
        tally_free(rt, z);
        tally_free(rt, big);
    }
    tally_close(rt);
}

static void test_realloc_debug(void **state)
{
    (void)state;
    recorder rec;
    tally_rt *rt = open_debug(&rec, TALLY_DEBUG_GUARDS);
    unsigned char *p = tally_malloc(rt, 10);
    assert_non_null(p);
    fill_pattern(p, 10, 1);
    static const size_t chain[] = {100, 3000, 70000, 20, 0, 33};
    size_t old = 10;
    for (size_t i = 0; i < sizeof chain / sizeof chain[0]; i++) {
        unsigned char *q = tally_realloc(rt, p, chain[i]);
        assert_non_null(q);
        assert_int_equal(tally_usable_size(q), chain[i]);
        size_t keep = old < chain[i] ? old : chain[i];
        assert_int_equal(check_pattern(q, keep, (uint32_t)i + 1), keep);
        fill_pattern(q, chain[i], (uint32_t)i + 2);
        old = chain[i];
        p = q;
    }
    tally_free(rt, p);
    assert_int_equal(rec.count, 0);
    assert_int_equal(tally_heap_check(rt), 0);
    assert_int_equal(get_stats(rt).bytes_in_use, 0);
    tally_close(rt);
}

/* ---- overruns and underruns -------------------------------------------------------- */

static void overrun_on_free(size_t n, long off)
{
    recorder rec;
    tally_rt *rt = open_debug(&rec, TALLY_DEBUG_GUARDS);
    unsigned char *keep = tally_malloc(rt, n);
    unsigned char *p = tally_malloc(rt, n);
    assert_non_null(keep);
    assert_non_null(p);
    fill_pattern(keep, n, 3);
    memset(p, 0x11, n);
    struct tally_heap_stats before = get_stats(rt);
    scribble(p, off, 'x');

    rec_reset(&rec);
    tally_clear_error(rt);
    tally_free(rt, p);
    assert_int_equal(tally_last_error(rt), TALLY_ECORRUPT);
    assert_true(rec.count >= 1);
    assert_true(str_has_ptr(rec.msgs[0], p));
    assert_true(str_has_number(rec.msgs[0], n));
    assert_true(strlen(tally_last_error_message(rt)) > 0);
    assert_true(get_stats(rt).errors_detected > before.errors_detected);

    /* Only the damaged block can still be complained about. */
    rec_reset(&rec);
    long problems = tally_heap_check(rt);
    assert_true(problems <= 1);
    assert_true(rec.count <= 2);
    all_reports_name(&rec, p);

    /* Nothing else was disturbed and the runtime works. */
    assert_int_equal(check_pattern(keep, n, 3), n);
    workout(rt);
    tally_free(rt, keep);
    tally_close(rt);
}

static void test_overrun_small(void **state)
{
    (void)state;
    overrun_on_free(37, 37);
    overrun_on_free(48, 48);
    overrun_on_free(1, 1);
    overrun_on_free(37, 40); /* a few bytes further */
}

static void test_overrun_zero_size(void **state)
{
    (void)state;
    overrun_on_free(0, 0);
}

static void test_overrun_medium_large(void **state)
{
    (void)state;
    overrun_on_free(1000, 1000);
    overrun_on_free(5003, 5003);
    overrun_on_free(50000, 50000);
}

static void test_underrun(void **state)
{
    (void)state;
    overrun_on_free(37, -1);
    overrun_on_free(2000, -1);
    overrun_on_free(50000, -3);
}

/* The heap check finds damage to live blocks, without freeing them. */
static void check_finds_overrun(size_t n, long off)
{
    recorder rec;
    tally_rt *rt = open_debug(&rec, TALLY_DEBUG_GUARDS);
    unsigned char *p = tally_malloc(rt, n);
    assert_non_null(p);
    assert_int_equal(tally_heap_check(rt), 0);
    scribble(p, off, 0x42);
    rec_reset(&rec);
    long problems = tally_heap_check(rt);
    assert_true(problems >= 1);
    assert_true(rec.count >= 1);
    assert_true(rec_any_contains(&rec, "") && str_has_ptr(rec.msgs[0], p));
    assert_true(str_has_number(rec.msgs[0], n));
    assert_int_equal(tally_last_error(rt), TALLY_ECORRUPT);
    tally_close(rt);
}

static void test_heap_check_finds_overrun(void **state)
{
    (void)state;
    check_finds_overrun(37, 37);
    check_finds_overrun(512, 512);
    check_finds_overrun(3000, 3000);
    check_finds_overrun(100000, 100000);
    check_finds_overrun(3 * MiB, (long)(3 * MiB));
    check_finds_overrun(64, -1);
}

/* ---- write after free -------------------------------------------------------------- */

static void test_write_after_free_heap_check(void **state)
{
    (void)state;
    static const size_t sizes[] = {100, 2000, 30000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        recorder rec;
        tally_rt *rt = open_debug(&rec, TALLY_DEBUG_GUARDS);
        unsigned char *p = tally_malloc(rt, sizes[i]);
        assert_non_null(p);
        memset(p, 0x22, sizes[i]);
        tally_free(rt, p);
        assert_int_equal(tally_heap_check(rt), 0);
        scribble(p, 10, 'w'); /* through the dangling pointer */
        rec_reset(&rec);
        assert_true(tally_heap_check(rt) > 0);
        assert_true(rec.count >= 1);
        assert_true(str_has_ptr(rec.msgs[0], p));
        assert_int_equal(tally_last_error(rt), TALLY_ECORRUPT);
        workout(rt);
        assert_int_equal(get_stats(rt).bytes_in_use, 0);
        tally_close(rt);
    }
}

/* Without a heap check, the damage is found when the block leaves quarantine or
 * is handed out again. */
static void test_write_after_free_found_on_reuse(void **state)
{
    (void)state;
    recorder rec;
    tally_rt *rt = open_debug(&rec, TALLY_DEBUG_GUARDS);
    unsigned char *p = tally_malloc(rt, 48);
    assert_non_null(p);
    tally_free(rt, p);
    scribble(p, 3, 'w');
    rec_reset(&rec);
    /* Churn the same size class: the quarantine must let p go at some point. */
    for (int i = 0; i < 2000 && rec.count == 0; i++) {
        void *q = tally_malloc(rt, 48);
        assert_non_null(q);
        tally_free(rt, q);
    }
    assert_true(rec.count >= 1);
    assert_true(rec_any_contains(&rec, "") && str_has_ptr(rec.msgs[0], p));
    assert_int_equal(tally_last_error(rt), TALLY_ECORRUPT);
    workout(rt);
    assert_int_equal(tally_heap_check(rt), 0);
    tally_close(rt);
}

/* ---- double free and foreign pointers ------------------------------------------------ */

static void test_double_free_debug(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 24, 700, 40000, 3 * 1024 * 1024};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        recorder rec;
        tally_rt *rt = open_debug(&rec, TALLY_DEBUG_GUARDS);
        void *keep = tally_malloc(rt, sizes[i]);
        void *p = tally_malloc(rt, sizes[i]);
        assert_non_null(keep);
        assert_non_null(p);
        tally_free(rt, p);
        struct tally_heap_stats before = get_stats(rt);
        rec_reset(&rec);
        tally_clear_error(rt);
        tally_free(rt, p);
        if (sizes[i] < 16384)
            assert_int_equal(tally_last_error(rt), TALLY_EDOUBLEFREE);
        else
            assert_true(tally_last_error(rt) == TALLY_EDOUBLEFREE ||
                        tally_last_error(rt) == TALLY_EFOREIGN);
        assert_int_equal(rec.count, 1);
        assert_true(str_has_ptr(rec.last, p));
        struct tally_heap_stats after = get_stats(rt);
        assert_int_equal(after.bytes_in_use, before.bytes_in_use);
        assert_int_equal(after.blocks_in_use, before.blocks_in_use);
        assert_int_equal(after.frees, before.frees);
        assert_int_equal(tally_heap_check(rt), 0);
        workout(rt);
        tally_free(rt, keep);
        assert_int_equal(get_stats(rt).bytes_in_use, 0);
        tally_close(rt);
    }
}

/* The block has left quarantine (flushed by frees of another class). */
static void test_double_free_after_quarantine(void **state)
{
    (void)state;
    recorder rec;
    tally_rt *rt = open_debug(&rec, TALLY_DEBUG_GUARDS);
    void *keep = tally_malloc(rt, 80);
    void *p = tally_malloc(rt, 80);
    assert_non_null(keep);
    assert_non_null(p);
    tally_free(rt, p);
    for (int i = 0; i < 300; i++) {
        void *q = tally_malloc(rt, 1000);
        assert_non_null(q);
        tally_free(rt, q);
    }
    rec_reset(&rec);
    tally_clear_error(rt);
    tally_free(rt, p);
    assert_true(tally_last_error(rt) == TALLY_EDOUBLEFREE ||
                tally_last_error(rt) == TALLY_EFOREIGN);
    assert_int_equal(rec.count, 1);
    assert_true(str_has_ptr(rec.last, p));
    assert_int_equal(tally_heap_check(rt), 0);
    tally_free(rt, keep);
    assert_int_equal(get_stats(rt).bytes_in_use, 0);
    tally_close(rt);
}

static void test_foreign_debug(void **state)
{
    (void)state;
    recorder rec;
    tally_rt *rt = open_debug(&rec, TALLY_DEBUG_GUARDS);
    unsigned char *p = tally_malloc(rt, 100);
    unsigned char *l = tally_malloc(rt, 60000);
    assert_non_null(p);
    assert_non_null(l);
    fill_pattern(p, 100, 8);
    _Alignas(16) char local[64];
    void *m = malloc(64);
    assert_non_null(m);
    void *bad[] = {local, m, p + 8, p + 16, p + 32, l + 16, l + 32768, p - 16};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct tally_heap_stats before = get_stats(rt);
        rec_reset(&rec);
        tally_clear_error(rt);
        tally_free(rt, bad[i]);
        assert_int_equal(tally_last_error(rt), TALLY_EFOREIGN);
        assert_int_equal(rec.count, 1);
        assert_true(str_has_ptr(rec.last, bad[i]));
        struct tally_heap_stats after = get_stats(rt);
        assert_int_equal(after.bytes_in_use, before.bytes_in_use);
        assert_int_equal(after.blocks_in_use, before.blocks_in_use);
        assert_int_equal(after.frees, before.frees);
        assert_int_equal(tally_heap_check(rt), 0);
        assert_int_equal(check_pattern(p, 100, 8), 100);
    }
    free(m);
    tally_clear_error(rt);
    tally_free(rt, p);
    tally_free(rt, l);
    assert_int_equal(tally_last_error(rt), TALLY_OK);
    tally_close(rt);
}

/* ---- walks, full mode, fixed buffer, environment -------------------------------------- */

typedef struct seen {
    size_t n;
    size_t bytes;
    void *ptrs[64];
} seen;

static int count_visit(void *block, size_t size, void *arg)
{
    seen *s = arg;
    if (s->n < 64)
        s->ptrs[s->n] = block;
    s->n++;
    s->bytes += size;
    return 0;
}

static void test_visit_skips_quarantine(void **state)
{
    (void)state;
    tally_rt *rt = open_debug(NULL, TALLY_DEBUG_GUARDS);
    void *p[10];
    size_t live_bytes = 0;
    for (int i = 0; i < 10; i++) {
        p[i] = tally_malloc(rt, (size_t)(i + 1) * 10);
        assert_non_null(p[i]);
    }
    for (int i = 0; i < 10; i += 2)
        tally_free(rt, p[i]); /* quarantined */
    for (int i = 1; i < 10; i += 2)
        live_bytes += (size_t)(i + 1) * 10;
    seen s;
    memset(&s, 0, sizeof s);
    assert_int_equal(tally_heap_visit(rt, count_visit, &s), 0);
    assert_int_equal(s.n, 5);
    assert_int_equal(s.bytes, live_bytes);
    for (size_t k = 0; k < s.n; k++) {
        int found = 0;
        for (int i = 1; i < 10; i += 2)
            found += s.ptrs[k] == p[i];
        assert_int_equal(found, 1);
    }
    struct tally_heap_stats st = get_stats(rt);
    assert_int_equal(st.blocks_in_use, 5);
    size_t used = st.large_blocks;
    for (int c = 0; c < st.nclasses; c++)
        used += st.classes[c].blocks_used;
    assert_int_equal(used, 5);
    for (int i = 1; i < 10; i += 2)
        tally_free(rt, p[i]);
    tally_close(rt);
}

static void test_full_mode_notices_damage(void **state)
{
    (void)state;
    recorder rec;
    tally_rt *rt = open_debug(&rec, TALLY_DEBUG_FULL);
    workout(rt);
    assert_int_equal(rec.count, 0);
    unsigned char *victim = tally_malloc(rt, 77);
    assert_non_null(victim);
    scribble(victim, 77, 'o');
    rec_reset(&rec);
    /* No explicit check: the validation on later calls must notice. */
    for (int i = 0; i < 200 && rec.count == 0; i++) {
        void *q = tally_malloc(rt, (size_t)(i % 5) * 900 + 30);
        assert_non_null(q);
        tally_free(rt, q);
    }
    assert_true(rec.count >= 1);
    assert_true(str_has_ptr(rec.msgs[0], victim));
    assert_int_equal(tally_last_error(rt), TALLY_ECORRUPT);
    tally_close(rt);
}

static _Alignas(65536) unsigned char g_buf[1024 * 1024 + 64];

static void test_debug_fixed_buffer(void **state)
{
    (void)state;
    recorder rec;
    tally_rt *rt = open_fixed(g_buf + 3, 1024 * 1024, &rec, TALLY_DEBUG_GUARDS);
    struct tally_heap_stats s = get_stats(rt);
    assert_int_equal(s.debug, TALLY_DEBUG_GUARDS);
    assert_int_equal(s.fixed, 1);
    unsigned char *p = tally_malloc(rt, 21);
    assert_non_null(p);
    assert_int_equal(tally_usable_size(p), 21);
    scribble(p, 21, 'z');
    rec_reset(&rec);
    tally_free(rt, p);
    assert_int_equal(tally_last_error(rt), TALLY_ECORRUPT);
    assert_true(rec.count >= 1);
    assert_true(str_has_ptr(rec.msgs[0], p));
    assert_true(str_has_number(rec.msgs[0], 21));
    /* Fill the buffer in debug mode: ENOMEM, not a crash or a false alarm. */
    rec_reset(&rec);
    void *blocks[4096];
    int n = 0;
    while (n < 4096) {
        void *q = tally_malloc(rt, 700);
        if (q == NULL)
            break;
        blocks[n++] = q;
    }
    assert_true(n > 0 && n < 4096);
    assert_int_equal(tally_last_error(rt), TALLY_ENOMEM);
    assert_int_equal(rec.count, 0);
    for (int i = 0; i < n; i++)
        tally_free(rt, blocks[i]);
    assert_int_equal(rec.count, 0);
    tally_close(rt);
}

static void test_env_debug(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        int level;
    } cases[] = {{"1", 1}, {"2", 2}, {"0", 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(setenv("TALLY_DEBUG", cases[i].value, 1), 0);
        tally_rt *rt = tally_open(NULL);
        assert_non_null(rt);
        struct tally_heap_stats s = get_stats(rt);
        assert_int_equal(s.debug, cases[i].level);
        void *p = tally_malloc(rt, 33);
        assert_non_null(p);
        if (cases[i].level)
            assert_int_equal(tally_usable_size(p), 33);
        else
            assert_true(tally_usable_size(p) >= 33);
        tally_free(rt, p);
        tally_close(rt);
    }
    assert_int_equal(unsetenv("TALLY_DEBUG"), 0);
    tally_rt *rt = tally_open(NULL);
    assert_non_null(rt);
    assert_int_equal(get_stats(rt).debug, 0);
    tally_close(rt);
}

/* Debug mode over a random workload: no false alarms, exact accounting. */
static void test_debug_random_clean(void **state)
{
    (void)state;
    recorder rec;
    tally_rt *rt = open_debug(&rec, TALLY_DEBUG_GUARDS);
    enum { SLOTS = 256 };
    unsigned char *p[SLOTS] = {0};
    size_t n[SLOTS] = {0};
    test_rng rng = {1234};
    size_t ops = test_scale(20000, 10);
    for (size_t op = 0; op < ops; op++) {
        size_t s = rng_below(&rng, SLOTS);
        if (p[s]) {
            assert_int_equal(check_pattern(p[s], n[s], (uint32_t)s), n[s]);
            if (rng_below(&rng, 3) == 0) {
                size_t m = rng_below(&rng, 3000);
                unsigned char *q = tally_realloc(rt, p[s], m);
                assert_non_null(q);
                size_t keep = n[s] < m ? n[s] : m;
                assert_int_equal(check_pattern(q, keep, (uint32_t)s), keep);
                fill_pattern(q, m, (uint32_t)s);
                p[s] = q;
                n[s] = m;
                continue;
            }
            tally_free(rt, p[s]);
            p[s] = NULL;
        } else {
            n[s] = rng_below(&rng, 8) == 0 ? rng_below(&rng, 40000) : rng_below(&rng, 300);
            p[s] = tally_malloc(rt, n[s]);
            assert_non_null(p[s]);
            assert_int_equal(tally_usable_size(p[s]), n[s]);
            fill_pattern(p[s], n[s], (uint32_t)s);
        }
        if (op % 2000 == 0)
            assert_int_equal(tally_heap_check(rt), 0);
    }
    size_t live = 0, nlive = 0;
    for (int s = 0; s < SLOTS; s++) {
        live += p[s] ? n[s] : 0;
        nlive += p[s] != NULL;
    }
    struct tally_heap_stats st = get_stats(rt);
    assert_int_equal(st.blocks_in_use, nlive);
    assert_true(st.bytes_in_use >= live);
    for (int s = 0; s < SLOTS; s++)
        tally_free(rt, p[s]);
    assert_int_equal(tally_heap_check(rt), 0);
    assert_int_equal(rec.count, 0);
    assert_int_equal(get_stats(rt).bytes_in_use, 0);
    tally_close(rt);
}

int main(void)
{
    unsetenv("TALLY_DEBUG");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usable_size_exact),
        cmocka_unit_test(test_bytes_in_use_counts_user_bytes),
        cmocka_unit_test(test_fresh_memory_poisoned),
        cmocka_unit_test(test_realloc_debug),
        cmocka_unit_test(test_overrun_small),
        cmocka_unit_test(test_overrun_zero_size),
        cmocka_unit_test(test_overrun_medium_large),
        cmocka_unit_test(test_underrun),
        cmocka_unit_test(test_heap_check_finds_overrun),
        cmocka_unit_test(test_write_after_free_heap_check),
        cmocka_unit_test(test_write_after_free_found_on_reuse),
        cmocka_unit_test(test_double_free_debug),
        cmocka_unit_test(test_double_free_after_quarantine),
        cmocka_unit_test(test_foreign_debug),
        cmocka_unit_test(test_visit_skips_quarantine),
        cmocka_unit_test(test_full_mode_notices_damage),
        cmocka_unit_test(test_debug_fixed_buffer),
        cmocka_unit_test(test_env_debug),
        cmocka_unit_test(test_debug_random_clean),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
