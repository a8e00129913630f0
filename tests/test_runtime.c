/* test_runtime.c - runtime handles: configuration, errors, reports, isolation.
 *
 * Covers tally_version(), tally_strerror(), tally_config_init() defaults, bad
 * configurations refused with EINVAL (and a report), the default report going to
 * stderr (captured) while tally_report_discard() stays silent, the sticky last
 * error and tally_clear_error(); two runtimes in one process sharing nothing (a
 * block of A freed or realloc'ed through B is TALLY_EFOREIGN in B and leaves A's
 * block, statistics and error state alone - hosted/hosted, fixed/hosted, two fixed
 * runtimes in two halves of one buffer); runtimes used from several threads at
 * once; a custom backend (alignment requests, every mapping returned at close, a
 * refusing backend giving TALLY_ENOMEM); retain_arenas; and opening and closing
 * 200 runtimes in a row, hosted and fixed, with blocks left allocated at close
 * (leak checkers running the suite verify nothing is lost), plus many runtimes open
 * at the same time closed in a shuffled order.
 */
#define _GNU_SOURCE
#include "test_util.h"

#include <errno.h>
#include <pthread.h>
#include <unistd.h>

static void test_version(void **state)
{
    (void)state;
    assert_non_null(tally_version());
    assert_string_equal(tally_version(), TALLY_VERSION_STRING);
    char buf[32];
    snprintf(buf, sizeof buf, "%d.%d.%d", TALLY_VERSION_MAJOR, TALLY_VERSION_MINOR,
             TALLY_VERSION_PATCH);
    assert_string_equal(tally_version(), buf);
}

static void test_strerror(void **state)
{
    (void)state;
    const char *names[TALLY_EFAULT + 1];
    for (int c = TALLY_OK; c <= TALLY_EFAULT; c++) {
        names[c] = tally_strerror((tally_error)c);
        assert_non_null(names[c]);
        assert_true(strlen(names[c]) > 0);
        for (int d = 0; d < c; d++)
            assert_string_not_equal(names[c], names[d]);
    }
    assert_true(str_contains_ci(tally_strerror(TALLY_EDOUBLEFREE), "double free"));
}

static void test_config_init_defaults(void **state)
{
    (void)state;
    tally_config cfg;
    memset(&cfg, 0xAB, sizeof cfg);
    tally_config_init(&cfg);
    assert_null(cfg.memory);
    assert_int_equal(cfg.memory_size, 0);
    assert_int_equal(cfg.max_bytes, 0);
    assert_int_equal(cfg.debug, TALLY_DEBUG_OFF);
    assert_null(cfg.report);
    assert_null(cfg.report_arg);
    assert_null(cfg.backend);
    assert_int_equal(cfg.fail_backend_request, 0);
    /* And it opens a working hosted runtime, like a zeroed struct does. */
    tally_rt *a = tally_open(&cfg);
    assert_non_null(a);
    tally_config zero;
    memset(&zero, 0, sizeof zero);
    tally_rt *b = tally_open(&zero);
    assert_non_null(b);
    assert_int_equal(get_stats(a).fixed, 0);
    assert_int_equal(get_stats(b).fixed, 0);
    assert_int_equal(get_stats(b).bytes_limit, 0);
    tally_close(a);
    tally_close(b);
}

static void expect_bad_config(tally_config *cfg)
{
    recorder rec;
    rec_reset(&rec);
    cfg->report = rec_report;
    cfg->report_arg = &rec;
    errno = 0;
    assert_null(tally_open(cfg));
    assert_int_equal(errno, EINVAL);
    assert_true(rec.count >= 1);
    assert_true(strlen(rec.last) > 0);
}

static void test_bad_configs(void **state)
{
    (void)state;
    tally_config cfg;
    tally_config_init(&cfg);
    cfg.debug = 3;
    expect_bad_config(&cfg);
    tally_config_init(&cfg);
    cfg.debug = -1;
    expect_bad_config(&cfg);
    /* A backend without a map function. */
    tally_backend nomap = {NULL, NULL, NULL, NULL, NULL};
    tally_config_init(&cfg);
    cfg.backend = &nomap;
    expect_bad_config(&cfg);
    /* A fixed buffer of no size. */
    static _Alignas(16) unsigned char small[64];
    tally_config_init(&cfg);
    cfg.memory = small;
    cfg.memory_size = 0;
    expect_bad_config(&cfg);
}

/* ---- reports and errors --------------------------------------------------------------- */

/* Runs fn with stderr redirected to a temporary file; returns what was written. */
static char *capture_stderr(void (*fn)(void *), void *arg)
{
    fflush(stderr);
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(tmp), 2) >= 0);
    fn(arg);
    fflush(stderr);
    assert_true(dup2(saved, 2) >= 0);
    close(saved);
    assert_int_equal(fseek(tmp, 0, SEEK_END), 0);
    long len = ftell(tmp);
    assert_true(len >= 0);
    rewind(tmp);
    char *buf = calloc(1, (size_t)len + 1);
    assert_non_null(buf);
    size_t got = fread(buf, 1, (size_t)len, tmp);
    buf[got] = '\0';
    fclose(tmp);
    return buf;
}

typedef struct misuse_arg {
    int discard;
    void *freed; /* the pointer freed twice */
} misuse_arg;

static void do_double_free(void *arg)
{
    misuse_arg *m = arg;
    tally_config cfg;
    tally_config_init(&cfg);
    if (m->discard)
        cfg.report = tally_report_discard;
    tally_rt *rt = tally_open(&cfg);
    if (rt == NULL)
        return;
    void *keep = tally_malloc(rt, 40);
    void *p = tally_malloc(rt, 40);
    m->freed = p;
    tally_free(rt, p);
    tally_free(rt, p);
    _Alignas(16) char local[16];
    tally_free(rt, local);
    tally_free(rt, keep);
    tally_close(rt);
}

static void test_default_report_goes_to_stderr(void **state)
{
    (void)state;
    misuse_arg m = {0, NULL};
    char *out = capture_stderr(do_double_free, &m);
    assert_non_null(m.freed);
    assert_true(strlen(out) > 0);
    assert_true(str_has_ptr(out, m.freed));
    /* One line per report. */
    size_t lines = 0;
    for (const char *c = out; *c; c++)
        lines += *c == '\n';
    assert_int_equal(lines, 2);
    free(out);
}

static void test_report_discard_is_silent(void **state)
{
    (void)state;
    misuse_arg m = {1, NULL};
    char *out = capture_stderr(do_double_free, &m);
    assert_string_equal(out, "");
    free(out);
    tally_report_discard(NULL, "nothing"); /* callable directly */
}

static void test_report_messages_have_no_newline(void **state)
{
    (void)state;
    recorder rec;
    tally_rt *rt = open_hosted(&rec, 0);
    void *p = tally_malloc(rt, 10);
    void *keep = tally_malloc(rt, 10);
    tally_free(rt, p);
    tally_free(rt, p);
    assert_int_equal(rec.count, 1);
    assert_null(strchr(rec.last, '\n'));
    assert_true(strlen(rec.last) > 0);
    /* The last-error sentence describes the same event. */
    assert_int_equal(tally_last_error(rt), TALLY_EDOUBLEFREE);
    assert_true(str_has_ptr(tally_last_error_message(rt), p));
    tally_clear_error(rt);
    assert_int_equal(tally_last_error(rt), TALLY_OK);
    assert_string_equal(tally_last_error_message(rt), "");
    tally_free(rt, keep);
    tally_close(rt);
}

/* ---- two runtimes ------------------------------------------------------------------------ */

static void cross_free(tally_rt *a, recorder *ra, tally_rt *b, recorder *rb, size_t n)
{
    unsigned char *p = tally_malloc(a, n);
    assert_non_null(p);
    fill_pattern(p, n, 77);
    size_t us = tally_usable_size(p);
    struct tally_heap_stats sa = get_stats(a);
    struct tally_heap_stats sb = get_stats(b);
    unsigned long ca = ra->count, cb = rb->count;
    tally_clear_error(a);
    tally_clear_error(b);

    tally_free(b, p);
    assert_int_equal(tally_last_error(b), TALLY_EFOREIGN);
    assert_int_equal(rb->count, cb + 1);
    assert_true(str_has_ptr(rb->last, p));
    assert_null(tally_realloc(b, p, n + 100));
    assert_int_equal(tally_last_error(b), TALLY_EFOREIGN);
    assert_int_equal(rb->count, cb + 2);

    /* A saw nothing and lost nothing. */
    assert_int_equal(tally_last_error(a), TALLY_OK);
    assert_int_equal(ra->count, ca);
    struct tally_heap_stats sa2 = get_stats(a);
    assert_int_equal(sa2.bytes_in_use, sa.bytes_in_use);
    assert_int_equal(sa2.blocks_in_use, sa.blocks_in_use);
    assert_int_equal(sa2.frees, sa.frees);
    assert_int_equal(sa2.allocs, sa.allocs);
    assert_int_equal(sa2.errors_detected, sa.errors_detected);
    struct tally_heap_stats sb2 = get_stats(b);
    assert_int_equal(sb2.bytes_in_use, sb.bytes_in_use);
    assert_int_equal(sb2.blocks_in_use, sb.blocks_in_use);
    assert_int_equal(sb2.errors_detected, sb.errors_detected + 2);
    assert_ptr_equal(tally_runtime_of(p), a);
    assert_int_equal(tally_usable_size(p), us);
    assert_int_equal(check_pattern(p, n, 77), n);
    assert_int_equal(tally_heap_check(a), 0);
    assert_int_equal(tally_heap_check(b), 0);

    /* Still usable in A. */
    unsigned char *q = tally_realloc(a, p, n + 100);
    assert_non_null(q);
    assert_int_equal(check_pattern(q, n, 77), n);
    tally_free(a, q);
    assert_int_equal(tally_last_error(a), TALLY_OK);
}

static void cross_all_sizes(tally_rt *a, recorder *ra, tally_rt *b, recorder *rb, int huge)
{
    static const size_t sizes[] = {0, 16, 100, 512, 2000, 9000, 40000, 300000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        cross_free(a, ra, b, rb, sizes[i]);
        cross_free(b, rb, a, ra, sizes[i]);
    }
    if (huge)
        cross_free(a, ra, b, rb, 3 * MiB);
}

static void test_two_hosted_runtimes(void **state)
{
    (void)state;
    recorder ra, rb;
    tally_rt *a = open_hosted(&ra, 0);
    tally_rt *b = open_hosted(&rb, 0);
    assert_ptr_not_equal(a, b);
    /* Interleaved allocations first, so that both heaps are busy. */
    enum { N = 500 };
    static unsigned char *pa[N], *pb[N];
    for (int i = 0; i < N; i++) {
        pa[i] = tally_malloc(a, (size_t)i * 3);
        pb[i] = tally_malloc(b, (size_t)i * 3);
        assert_non_null(pa[i]);
        assert_non_null(pb[i]);
        memset(pa[i], 0xA0, (size_t)i * 3);
        memset(pb[i], 0xB0, (size_t)i * 3);
    }
    cross_all_sizes(a, &ra, b, &rb, 1);
    for (int i = 0; i < N; i++) {
        assert_true(all_bytes_are(pa[i], (size_t)i * 3, 0xA0));
        assert_true(all_bytes_are(pb[i], (size_t)i * 3, 0xB0));
        assert_ptr_equal(tally_runtime_of(pa[i]), a);
        assert_ptr_equal(tally_runtime_of(pb[i]), b);
        tally_free(a, pa[i]);
        tally_free(b, pb[i]);
    }
    assert_int_equal(get_stats(a).bytes_in_use, 0);
    assert_int_equal(get_stats(b).bytes_in_use, 0);
    /* Closing one leaves the other working. */
    tally_close(b);
    void *p = tally_malloc(a, 1000);
    assert_non_null(p);
    tally_free(a, p);
    tally_close(a);
}

/* Room for 8 fixed runtimes of 16 pools of the largest pool size (64 KiB). */
static _Alignas(65536) unsigned char g_buf[8 * 1024 * 1024 + 64 * 1024];

static void test_fixed_and_hosted(void **state)
{
    (void)state;
    recorder ra, rb;
    tally_rt *a = open_fixed(g_buf + 3, 1024 * 1024, &ra, 0);
    tally_rt *b = open_hosted(&rb, 0);
    cross_all_sizes(a, &ra, b, &rb, 0);
    cross_free(b, &rb, a, &ra, 3 * MiB);
    tally_close(a);
    tally_close(b);
}

static void test_two_fixed_halves(void **state)
{
    (void)state;
    recorder ra, rb;
    tally_rt *a = open_fixed(g_buf, 1024 * 1024, &ra, 0);
    tally_rt *b = open_fixed(g_buf + 1024 * 1024, 1024 * 1024, &rb, 0);
    cross_all_sizes(a, &ra, b, &rb, 0);
    tally_close(a);
    tally_close(b);
}

/* ---- threads: one runtime per thread ------------------------------------------------------- */

typedef struct thread_arg {
    int id;
    int fixed;
    int ok;
    unsigned char *buf;
} thread_arg;

static void *thread_main(void *argp)
{
    thread_arg *t = argp;
    tally_config cfg;
    tally_config_init(&cfg);
    cfg.report = tally_report_discard;
    if (t->fixed) {
        cfg.memory = t->buf;
        cfg.memory_size = 512 * 1024;
    }
    tally_rt *rt = tally_open(&cfg);
    if (rt == NULL)
        return NULL;
    enum { S = 64 };
    unsigned char *p[S] = {0};
    size_t n[S] = {0};
    test_rng rng = {(uint64_t)t->id * 7919 + 1};
    int ok = 1;
    size_t ops = test_scale(30000, 10);
    for (size_t op = 0; op < ops && ok; op++) {
        size_t s = rng_below(&rng, S);
        if (p[s]) {
            for (size_t i = 0; i < n[s]; i++)
                if (p[s][i] != (unsigned char)(t->id + s))
                    ok = 0;
            if (tally_runtime_of(p[s]) != rt)
                ok = 0;
            tally_free(rt, p[s]);
            p[s] = NULL;
        } else {
            n[s] = rng_below(&rng, 8) == 0 ? rng_below(&rng, 20000) : rng_below(&rng, 400);
            p[s] = tally_malloc(rt, n[s]);
            if (p[s] == NULL) {
                if (!t->fixed || tally_last_error(rt) != TALLY_ENOMEM)
                    ok = 0;
                tally_clear_error(rt);
                continue;
            }
            memset(p[s], (unsigned char)(t->id + s), n[s]);
        }
    }
    for (int s = 0; s < S; s++)
        tally_free(rt, p[s]);
    struct tally_heap_stats st;
    if (tally_heap_stats(rt, &st) != 0 || st.bytes_in_use != 0 || tally_heap_check(rt) != 0 ||
        tally_last_error(rt) != TALLY_OK)
        ok = 0;
    tally_close(rt);
    t->ok = ok;
    return NULL;
}

static void test_threads_own_runtimes(void **state)
{
    (void)state;
    enum { T = 4 };
    pthread_t th[T];
    thread_arg args[T];
    for (int i = 0; i < T; i++) {
        args[i].id = i;
        args[i].fixed = i % 2;
        args[i].ok = 0;
        args[i].buf = g_buf + (size_t)i * 512 * 1024 + 1;
        assert_int_equal(pthread_create(&th[i], NULL, thread_main, &args[i]), 0);
    }
    for (int i = 0; i < T; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < T; i++)
        assert_int_equal(args[i].ok, 1);
}

/* ---- custom backend ------------------------------------------------------------------- */

typedef struct my_backend {
    unsigned long maps, unmaps, purges;
    unsigned long refuse_after; /* 0: never refuse */
    unsigned long bad_align;
    size_t outstanding_bytes;
    long outstanding;
} my_backend;

static void *my_map(void *ctx, size_t size, size_t align)
{
    my_backend *b = ctx;
    long page = sysconf(_SC_PAGESIZE);
    if (align < (size_t)(page > 0 ? page : 4096) || (align & (align - 1)) != 0)
        b->bad_align++;
    if (b->refuse_after && b->maps >= b->refuse_after)
        return NULL;
    void *p = test_map_aligned(size, align);
    if (p == NULL)
        return NULL;
    b->maps++;
    b->outstanding++;
    b->outstanding_bytes += size;
    return p;
}

static void my_unmap(void *ctx, void *addr, size_t size)
{
    my_backend *b = ctx;
    b->unmaps++;
    b->outstanding--;
    b->outstanding_bytes -= size;
    test_unmap(addr, size);
}

static void my_purge(void *ctx, void *addr, size_t size)
{
    my_backend *b = ctx;
    b->purges++;
    memset(addr, 0, size);
}

/* A runtime on a fresh counting backend (reports discarded). */
static tally_rt *open_on_counting_backend(my_backend *mb, tally_backend *be)
{
    memset(mb, 0, sizeof *mb);
    *be = (tally_backend){my_map, my_unmap, my_purge, mb, NULL};
    tally_config cfg;
    tally_config_init(&cfg);
    cfg.backend = be;
    cfg.report = tally_report_discard;
    tally_rt *rt = tally_open(&cfg);
    assert_non_null(rt);
    return rt;
}

/* After close: every mapping went back, with the size it was mapped with. */
static void assert_all_returned(const my_backend *mb)
{
    assert_int_equal(mb->outstanding, 0);
    assert_int_equal(mb->outstanding_bytes, 0);
    assert_int_equal(mb->maps, mb->unmaps);
}

static void test_custom_backend(void **state)
{
    (void)state;
    my_backend mb;
    tally_backend be;
    tally_rt *rt = open_on_counting_backend(&mb, &be);
    enum { N = 300 };
    void *p[N];
    for (int i = 0; i < N; i++) {
        size_t n = (i % 10 == 0) ? 100000 : (size_t)i * 17;
        p[i] = tally_malloc(rt, n);
        assert_non_null(p[i]);
        memset(p[i], 0x5c, n);
    }
    void *huge = tally_malloc(rt, 3 * MiB);
    assert_non_null(huge);
    assert_true(mb.maps >= 2);
    assert_int_equal(mb.bad_align, 0);
    struct tally_heap_stats s = get_stats(rt);
    assert_int_equal(s.bytes_reserved, mb.outstanding_bytes);
    assert_true(s.backend_requests >= mb.maps - 1); /* the runtime's own mapping aside */
    for (int i = 0; i < N; i++)
        tally_free(rt, p[i]);
    tally_free(rt, huge);
    tally_heap_trim(rt);
    s = get_stats(rt);
    assert_int_equal(s.bytes_reserved, mb.outstanding_bytes);
    tally_close(rt);
    assert_all_returned(&mb);
}

/* Blocks still live at close, huge ones included, go back to the backend whole:
 * every mapping is unmapped with the size it was mapped with. */
static void test_close_returns_everything(void **state)
{
    (void)state;
    my_backend mb;
    tally_backend be;
    tally_rt *rt = open_on_counting_backend(&mb, &be);
    void *huge = tally_malloc(rt, 3 * MiB + 123);
    void *large = tally_malloc(rt, 100000);
    void *small = tally_malloc(rt, 40);
    assert_non_null(huge);
    assert_non_null(large);
    assert_non_null(small);
    memset(huge, 7, 3 * MiB + 123);
    tally_close(rt); /* all three still live */
    assert_all_returned(&mb);
}

static void test_refusing_backend(void **state)
{
    (void)state;
    for (unsigned long k = 1; k <= 6; k++) {
        my_backend mb;
        memset(&mb, 0, sizeof mb);
        mb.refuse_after = k;
        tally_backend be = {my_map, my_unmap, my_purge, &mb, NULL};
        tally_config cfg;
        tally_config_init(&cfg);
        cfg.backend = &be;
        cfg.report = tally_report_discard;
        errno = 0;
        tally_rt *rt = tally_open(&cfg);
        if (rt == NULL) {
            assert_int_equal(errno, ENOMEM);
            assert_int_equal(mb.outstanding, 0);
            continue;
        }
        /* Allocate until the backend says no. */
        void *blocks[64];
        int n = 0;
        void *p;
        while (n < 64 && (p = tally_malloc(rt, 400000)) != NULL)
            blocks[n++] = p;
        assert_true(n < 64);
        assert_int_equal(tally_last_error(rt), TALLY_ENOMEM);
        assert_int_equal(tally_heap_check(rt), 0);
        for (int i = 0; i < n; i++)
            tally_free(rt, blocks[i]);
        assert_int_equal(get_stats(rt).bytes_in_use, 0);
        tally_close(rt);
        assert_int_equal(mb.outstanding, 0);
    }
}

/* A backend whose memory lies far apart: every other mapping comes from a static
 * pool in .bss (next to the program, like a malloc-based backend's brk heap), the
 * rest from mmap (tens of TiB away).  The runtime must track both. */
#define SPLIT_POOL (24u << 20)
static _Alignas(16) unsigned char g_split_pool[SPLIT_POOL + (4u << 20)];

typedef struct split_backend {
    size_t used;          /* bytes handed out from g_split_pool */
    unsigned long calls;
    unsigned long from_pool, from_mmap;
} split_backend;

static void *split_map(void *ctx, size_t size, size_t align)
{
    split_backend *b = ctx;
    if (b->calls++ % 2 == 0) {
        uintptr_t base = (uintptr_t)g_split_pool;
        uintptr_t at = (base + b->used + align - 1) & ~(uintptr_t)(align - 1);
        if (at + size <= base + sizeof g_split_pool) {
            b->used = at + size - base;
            b->from_pool++;
            memset((void *)at, 0, size); /* the contract: zero-filled */
            return (void *)at;
        }
    }
    b->from_mmap++;
    return test_map_aligned(size, align);
}

static void split_unmap(void *ctx, void *addr, size_t size)
{
    (void)ctx;
    uintptr_t a = (uintptr_t)addr, base = (uintptr_t)g_split_pool;
    if (a >= base && a < base + sizeof g_split_pool)
        return; /* pool memory is simply abandoned */
    test_unmap(addr, size);
}

static void test_backend_far_apart(void **state)
{
    (void)state;
    split_backend sb;
    memset(&sb, 0, sizeof sb);
    tally_backend be = {split_map, split_unmap, NULL, &sb, NULL};
    recorder rec;
    tally_config cfg;
    tally_config_init(&cfg);
    cfg.backend = &be;
    cfg.report = rec_report;
    cfg.report_arg = &rec;
    rec_reset(&rec);
    tally_rt *rt = tally_open(&cfg);
    assert_non_null(rt);
    enum { N = 6000 };
    static void *p[N];
    for (int i = 0; i < N; i++) { /* about 12 MiB: arenas from both sources */
        size_t n = (i % 50 == 0) ? 150000 : 100 + (size_t)(i % 7) * 300;
        p[i] = tally_malloc(rt, n);
        assert_non_null(p[i]);
        memset(p[i], i & 0xff, n < 64 ? n : 64);
    }
    assert_true(sb.from_pool >= 2);
    assert_true(sb.from_mmap >= 2);
    /* A .bss address near the pool but never handed out is still foreign. */
    tally_free(rt, g_split_pool + sizeof g_split_pool - 64);
    assert_int_equal(tally_last_error(rt), TALLY_EFOREIGN);
    tally_clear_error(rt);
    assert_int_equal(tally_heap_check(rt), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(((unsigned char *)p[i])[0], i & 0xff);
        tally_free(rt, p[i]);
    }
    assert_int_equal(tally_last_error(rt), TALLY_OK);
    assert_int_equal(rec.count, 1); /* only the deliberate foreign free */
    assert_int_equal(get_stats(rt).bytes_in_use, 0);
    tally_close(rt);
}

static size_t cached_after_shrink(unsigned retain)
{
    tally_config cfg;
    tally_config_init(&cfg);
    cfg.retain_arenas = retain;
    tally_rt *rt = tally_open(&cfg);
    assert_non_null(rt);
    /* Blocks of four pools (64 KiB by default): 12 to an arena, 200 of them fill
     * about 17 arenas. */
    enum { N = 200 };
    void *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = tally_malloc(rt, 4 * test_pool_size());
        assert_non_null(p[i]);
    }
    for (int i = 0; i < N; i++)
        tally_free(rt, p[i]);
    /* Run on, so that the surplus beyond what is retained decays away. */
    for (int round = 0; round < 100; round++) {
        void *batch[1000];
        for (int i = 0; i < 1000; i++)
            batch[i] = tally_malloc(rt, 48);
        for (int i = 0; i < 1000; i++)
            tally_free(rt, batch[i]);
    }
    struct tally_heap_stats s = get_stats(rt);
    assert_int_equal(s.bytes_in_use, 0);
    assert_true(s.arenas_cached <= s.arenas);
    tally_heap_trim(rt);
    assert_int_equal(get_stats(rt).arenas_cached, 0);
    tally_close(rt);
    return s.arenas_cached;
}

static void test_retain_arenas(void **state)
{
    (void)state;
    size_t def = cached_after_shrink(0);
    size_t eight = cached_after_shrink(8);
    assert_true(def >= 1); /* some are kept by default (2) */
    assert_true(eight > def);
    assert_true(eight >= 8);
}

/* ---- many runtimes ---------------------------------------------------------------------- */

static void test_many_runtimes_sequential(void **state)
{
    (void)state;
    size_t rounds = test_scale(200, 4);
    for (size_t i = 0; i < rounds; i++) {
        tally_rt *rt = open_hosted(NULL, (int)(i % 7 == 0));
        for (int k = 0; k < 20; k++) {
            void *p = tally_malloc(rt, (size_t)(k * 131 + i) % 5000);
            assert_non_null(p);
            if (k % 2)
                tally_free(rt, p); /* the others stay allocated at close */
        }
        if (i % 10 == 0)
            assert_non_null(tally_malloc(rt, 2 * MiB));
        tally_close(rt);
    }
    for (size_t i = 0; i < rounds; i++) {
        size_t off = (i * 13) % 64;
        tally_rt *rt = open_fixed(g_buf + off, max_size(512 * KiB, 32 * test_pool_size()), NULL, 0);
        for (int k = 0; k < 20; k++) {
            void *p = tally_malloc(rt, (size_t)(k * 97 + i) % 9000);
            assert_non_null(p);
            if (k % 3 == 0)
                tally_free(rt, p);
        }
        tally_close(rt);
    }
}

static void test_many_runtimes_at_once(void **state)
{
    (void)state;
    enum { R = 24 };
    const size_t stride = max_size(256 * KiB, 16 * test_pool_size());
    tally_rt *rt[R];
    void *blk[R][8];
    for (int i = 0; i < R; i++) {
        if (i % 3 == 2)
            rt[i] = open_fixed(g_buf + (size_t)(i / 3) * stride + 5, stride - 6 * KiB, NULL, 0);
        else
            rt[i] = open_hosted(NULL, 0);
        for (int k = 0; k < 8; k++) {
            blk[i][k] = tally_malloc(rt[i], (size_t)(k + 1) * 100 + (size_t)i);
            assert_non_null(blk[i][k]);
            memset(blk[i][k], i, (size_t)(k + 1) * 100 + (size_t)i);
        }
    }
    for (int i = 0; i < R; i++)
        for (int k = 0; k < 8; k++) {
            assert_ptr_equal(tally_runtime_of(blk[i][k]), rt[i]);
            assert_true(all_bytes_are(blk[i][k], (size_t)(k + 1) * 100 + (size_t)i, (uint8_t)i));
        }
    /* Close in a shuffled order; the rest keep working. */
    int order[R];
    for (int i = 0; i < R; i++)
        order[i] = (i * 7) % R;
    for (int j = 0; j < R; j++) {
        tally_close(rt[order[j]]);
        rt[order[j]] = NULL;
        for (int i = 0; i < R; i++)
            if (rt[i]) {
                assert_int_equal(blk[i][0] != NULL, 1);
                assert_true(all_bytes_are(blk[i][0], 100 + (size_t)i, (uint8_t)i));
            }
    }
}

int main(void)
{
    unsetenv("TALLY_DEBUG");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_strerror),
        cmocka_unit_test(test_config_init_defaults),
        cmocka_unit_test(test_bad_configs),
        cmocka_unit_test(test_default_report_goes_to_stderr),
        cmocka_unit_test(test_report_discard_is_silent),
        cmocka_unit_test(test_report_messages_have_no_newline),
        cmocka_unit_test(test_two_hosted_runtimes),
        cmocka_unit_test(test_fixed_and_hosted),
        cmocka_unit_test(test_two_fixed_halves),
        cmocka_unit_test(test_threads_own_runtimes),
        cmocka_unit_test(test_custom_backend),
        cmocka_unit_test(test_close_returns_everything),
        cmocka_unit_test(test_refusing_backend),
        cmocka_unit_test(test_backend_far_apart),
        cmocka_unit_test(test_retain_arenas),
        cmocka_unit_test(test_many_runtimes_sequential),
        cmocka_unit_test(test_many_runtimes_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
