/* test_heap_stats.c - statistics, the dump, the heap walk, trim and arena reuse.
 *
 * Covers struct tally_heap_stats on fresh and busy runtimes: bytes_in_use moving by
 * tally_usable_size() on every malloc/free, the peaks, block and call counters,
 * bytes_reserved >= bytes_in_use, per-class figures adding up (sum of
 * classes[i].blocks_used + large_blocks == blocks_in_use), the size-class table
 * (16-byte steps up to TALLY_SMALL_MAX, increasing, nclasses <= TALLY_MAX_CLASSES),
 * pool_size a power of two >= 4096, ratios within [0, 1]; tally_heap_dump() writing
 * a readable report with the totals and a pool map (hosted and fixed); 
 * tally_heap_visit() visiting exactly the live blocks with their usable sizes, in
 * address order within a pool (and over the whole fixed buffer), and stopping early
 * with the visitor's value; max_bytes (TALLY_ELIMIT, bytes_reserved never above the
 * limit, recovery after freeing); arenas given back with hysteresis after a big
 * heap shrinks (arenas_cached bounded), tally_heap_trim() releasing memory; and
 * alloc/free loops around pool and arena boundaries not mapping and unmapping on
 * every iteration.
 */
#define _GNU_SOURCE
#include "test_util.h"

static int is_pow2(size_t x)
{
    return x != 0 && (x & (x - 1)) == 0;
}

/* General invariants that hold at any moment. */
static void check_invariants(const struct tally_heap_stats *s)
{
    assert_true(s->bytes_in_use <= s->bytes_in_use_peak);
    assert_true(s->bytes_reserved <= s->bytes_reserved_peak);
    assert_true(s->bytes_in_use <= s->bytes_reserved);
    if (s->bytes_limit)
        assert_true(s->bytes_reserved <= s->bytes_limit);
    assert_true(s->large_blocks <= s->blocks_in_use);
    assert_true(s->large_bytes <= s->bytes_in_use);
    assert_true(is_pow2(s->pool_size));
    assert_true(s->pool_size >= 4096);
    assert_true(s->pools_used + s->pools_free <= s->pools_total);
    assert_true(s->arenas <= s->arenas_peak);
    assert_true(s->arenas_cached <= s->arenas);
    assert_true(s->nclasses > 0 && s->nclasses <= TALLY_MAX_CLASSES);
    assert_true(s->fragmentation >= 0.0 && s->fragmentation <= 1.0);
    assert_true(s->overhead >= 0.0 && s->overhead <= 1.0);
    assert_true(s->frees <= s->allocs);
    assert_true(s->backend_releases <= s->backend_requests);
    size_t used = 0;
    for (int i = 0; i < s->nclasses; i++) {
        const tally_class_stats *c = &s->classes[i];
        used += c->blocks_used;
        assert_true(c->pools_full <= c->pools);
        if (c->pools == 0) {
            assert_int_equal(c->blocks_used, 0);
            assert_int_equal(c->blocks_free, 0);
        } else {
            assert_true(c->blocks_used + c->blocks_free > 0);
        }
        if (i > 0)
            assert_true(c->block_size > s->classes[i - 1].block_size);
        assert_true(c->block_size % TALLY_ALIGNMENT == 0);
        assert_true(c->block_size <= s->pool_size);
    }
    assert_int_equal(used + s->large_blocks, s->blocks_in_use);
}

static void test_fresh_runtime(void **state)
{
    (void)state;
    tally_rt *rt = tally_open(NULL);
    assert_non_null(rt);
    struct tally_heap_stats s = get_stats(rt);
    check_invariants(&s);
    assert_int_equal(s.bytes_in_use, 0);
    assert_int_equal(s.bytes_in_use_peak, 0);
    assert_int_equal(s.blocks_in_use, 0);
    assert_int_equal(s.large_blocks, 0);
    assert_int_equal(s.large_bytes, 0);
    assert_int_equal(s.allocs, 0);
    assert_int_equal(s.frees, 0);
    assert_int_equal(s.errors_detected, 0);
    assert_int_equal(s.bytes_limit, 0);
    assert_int_equal(s.debug, 0);
    assert_int_equal(s.fixed, 0);
    /* The size-class table: 16, 32, ..., 512, then coarser classes. */
    int nsmall = TALLY_SMALL_MAX / 16;
    assert_true(s.nclasses > nsmall);
    for (int i = 0; i < nsmall; i++)
        assert_int_equal(s.classes[i].block_size, (size_t)(i + 1) * 16);
    assert_true(s.classes[nsmall].block_size > TALLY_SMALL_MAX);
    tally_close(rt);
}

static void test_in_use_tracks_usable_size(void **state)
{
    (void)state;
    tally_rt *rt = tally_open(NULL);
    assert_non_null(rt);
    static const size_t sizes[] = {0, 1, 16, 17, 100, 512, 513, 1000, 4000, 9000, 16384,
                                   50000, 200000, 1000000, 3 * 1024 * 1024};
    enum { N = sizeof sizes / sizeof sizes[0] };
    void *p[N];
    size_t expect = 0, peak = 0;
    for (size_t i = 0; i < N; i++) {
        struct tally_heap_stats b = get_stats(rt);
        p[i] = tally_malloc(rt, sizes[i]);
        assert_non_null(p[i]);
        struct tally_heap_stats a = get_stats(rt);
        size_t us = tally_usable_size(p[i]);
        assert_int_equal(a.bytes_in_use, b.bytes_in_use + us);
        assert_int_equal(a.blocks_in_use, b.blocks_in_use + 1);
        assert_int_equal(a.allocs, b.allocs + 1);
        assert_int_equal(a.frees, b.frees);
        assert_true(a.bytes_reserved >= a.bytes_in_use);
        expect += us;
        if (expect > peak)
            peak = expect;
        assert_int_equal(a.bytes_in_use, expect);
        assert_int_equal(a.bytes_in_use_peak, peak);
        check_invariants(&a);
    }
    /* Free the big ones first: the peak must stay. */
    for (size_t k = N; k-- > 0;) {
        struct tally_heap_stats b = get_stats(rt);
        size_t us = tally_usable_size(p[k]);
        tally_free(rt, p[k]);
        struct tally_heap_stats a = get_stats(rt);
        assert_int_equal(a.bytes_in_use, b.bytes_in_use - us);
        assert_int_equal(a.blocks_in_use, b.blocks_in_use - 1);
        assert_int_equal(a.frees, b.frees + 1);
        assert_int_equal(a.allocs, b.allocs);
        assert_int_equal(a.bytes_in_use_peak, peak);
        check_invariants(&a);
    }
    struct tally_heap_stats s = get_stats(rt);
    assert_int_equal(s.bytes_in_use, 0);
    assert_int_equal(s.blocks_in_use, 0);
    assert_int_equal(s.allocs, N);
    assert_int_equal(s.frees, N);
    assert_true(s.bytes_reserved_peak >= 3 * MiB);
    tally_close(rt);
}

static void test_realloc_and_calloc_counted(void **state)
{
    (void)state;
    tally_rt *rt = tally_open(NULL);
    assert_non_null(rt);
    void *p = tally_calloc(rt, 10, 10);
    assert_non_null(p);
    assert_int_equal(get_stats(rt).bytes_in_use, tally_usable_size(p));
    static const size_t sizes[] = {1000, 20, 70000, 300, 4 * 1024 * 1024, 5};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        p = tally_realloc(rt, p, sizes[i]);
        assert_non_null(p);
        struct tally_heap_stats s = get_stats(rt);
        assert_int_equal(s.bytes_in_use, tally_usable_size(p));
        assert_int_equal(s.blocks_in_use, 1);
        check_invariants(&s);
    }
    tally_free(rt, p);
    assert_int_equal(get_stats(rt).bytes_in_use, 0);
    tally_close(rt);
}

static void test_per_class_figures(void **state)
{
    (void)state;
    tally_rt *rt = tally_open(NULL);
    assert_non_null(rt);
    enum { N = 4000 };
    static void *p[N];
    test_rng rng = {7};
    for (int i = 0; i < N; i++) {
        size_t k = rng_below(&rng, 100);
        size_t n = k < 80 ? rng_below(&rng, 513) : k < 97 ? 513 + rng_below(&rng, 8000)
                                                           : 9000 + rng_below(&rng, 300000);
        p[i] = tally_malloc(rt, n);
        assert_non_null(p[i]);
    }
    for (int i = 0; i < N; i += 3) {
        tally_free(rt, p[i]);
        p[i] = NULL;
    }
    struct tally_heap_stats s = get_stats(rt);
    check_invariants(&s);
    /* Recount from the blocks themselves. */
    size_t per_class[TALLY_MAX_CLASSES] = {0};
    size_t large = 0, large_bytes = 0, live = 0, bytes = 0;
    size_t class_max = s.classes[s.nclasses - 1].block_size;
    for (int i = 0; i < N; i++) {
        if (p[i] == NULL)
            continue;
        size_t us = tally_usable_size(p[i]);
        live++;
        bytes += us;
        if (us > class_max) {
            large++;
            large_bytes += us;
            continue;
        }
        int found = -1;
        for (int c = 0; c < s.nclasses; c++)
            if (s.classes[c].block_size == us)
                found = c;
        assert_true(found >= 0); /* a pool block's usable size is its class size */
        per_class[found]++;
    }
    assert_int_equal(s.blocks_in_use, live);
    assert_int_equal(s.bytes_in_use, bytes);
    assert_int_equal(s.large_blocks, large);
    assert_int_equal(s.large_bytes, large_bytes);
    for (int c = 0; c < s.nclasses; c++) {
        assert_int_equal(s.classes[c].blocks_used, per_class[c]);
        if (per_class[c])
            assert_true(s.classes[c].pools > 0);
    }
    assert_true(s.bytes_free > 0);
    assert_true(s.largest_free > 0 && s.largest_free <= s.bytes_free);
    for (int i = 0; i < N; i++)
        tally_free(rt, p[i]);
    s = get_stats(rt);
    check_invariants(&s);
    assert_int_equal(s.blocks_in_use, 0);
    for (int c = 0; c < s.nclasses; c++)
        assert_int_equal(s.classes[c].blocks_used, 0);
    tally_close(rt);
}

/* A full class pool shows up in pools_full. */
static void test_pools_full(void **state)
{
    (void)state;
    tally_rt *rt = tally_open(NULL);
    assert_non_null(rt);
    enum { N = 3000 };
    static void *p[N];
    int cls = 63 / 16; /* 64-byte class */
    for (int i = 0; i < N; i++) {
        p[i] = tally_malloc(rt, 64);
        assert_non_null(p[i]);
    }
    struct tally_heap_stats s = get_stats(rt);
    assert_int_equal(s.classes[cls].block_size, 64);
    assert_int_equal(s.classes[cls].blocks_used, N);
    assert_true(s.classes[cls].pools >= (N * 64) / s.pool_size);
    assert_true(s.classes[cls].pools_full >= 1);
    assert_true(s.classes[cls].pools_full <= s.classes[cls].pools);
    /* Capacity: used + free blocks fit in the class's pools. */
    assert_true((s.classes[cls].blocks_used + s.classes[cls].blocks_free) * 64 <=
                s.classes[cls].pools * s.pool_size);
    for (int i = 0; i < N; i++)
        tally_free(rt, p[i]);
    s = get_stats(rt);
    assert_int_equal(s.classes[cls].blocks_used, 0);
    assert_int_equal(s.classes[cls].pools_full, 0);
    tally_close(rt);
}

/* ---- dump ---------------------------------------------------------------------- */

/* Not inlined: GCC 12 at -O3 then takes the returned text for a dangling pointer
 * to the local that open_memstream filled. */
static __attribute__((noinline)) char *dump_to_string(tally_rt *rt, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    assert_non_null(f);
    tally_heap_dump(rt, f);
    assert_int_equal(fclose(f), 0);
    assert_non_null(buf);
    *len = n;
    return buf;
}

/* A line with a whitespace-separated token of exactly `width` characters that is
 * not a plain word (the pool map: one character per pool), with at least two
 * different characters when `mixed`. */
static int has_map_token(const char *text, size_t width, int mixed)
{
    const char *s = text;
    while (*s) {
        while (*s && isspace((unsigned char)*s))
            s++;
        const char *t = s;
        while (*s && !isspace((unsigned char)*s))
            s++;
        size_t len = (size_t)(s - t);
        if (len != width || len == 0)
            continue;
        int alpha = 1, distinct = 0;
        for (size_t i = 0; i < len; i++) {
            if (!isalpha((unsigned char)t[i]))
                alpha = 0;
            if (t[i] != t[0])
                distinct = 1;
        }
        if (!alpha && (!mixed || distinct))
            return 1;
    }
    return 0;
}

static void test_dump_hosted(void **state)
{
    (void)state;
    tally_rt *rt = tally_open(NULL);
    assert_non_null(rt);
    void *a = tally_malloc(rt, 100);
    void *b = tally_malloc(rt, 100000);
    void *c = tally_malloc(rt, 3 * MiB);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    size_t len;
    char *text = dump_to_string(rt, &len);
    assert_true(len > 100);
    assert_int_equal(strlen(text), len); /* text, no NULs */
    for (size_t i = 0; i < len; i++)
        assert_true(isprint((unsigned char)text[i]) || text[i] == '\n' || text[i] == '\t');
    assert_true(str_contains_ci(text, "in use"));
    assert_true(str_contains_ci(text, "reserved"));
    assert_true(str_contains_ci(text, "map"));
    struct tally_heap_stats s = get_stats(rt);
    assert_true(str_has_number(text, s.bytes_in_use));
    assert_true(text[len - 1] == '\n');
    free(text);
    tally_free(rt, a);
    tally_free(rt, b);
    tally_free(rt, c);
    /* After freeing, the numbers in the dump follow. */
    text = dump_to_string(rt, &len);
    assert_true(len > 0);
    assert_true(str_contains_ci(text, "in use"));
    free(text);
    tally_close(rt);
}

static _Alignas(65536) unsigned char g_fixed[1024 * 1024 + 100];

static void test_dump_fixed_has_map(void **state)
{
    (void)state;
    tally_rt *rt = open_fixed(g_fixed + 7, max_size(256 * KiB, 16 * test_pool_size()), NULL, 0);
    void *a = tally_malloc(rt, 40);
    void *b = tally_malloc(rt, 30000);
    assert_non_null(a);
    assert_non_null(b);
    struct tally_heap_stats s = get_stats(rt);
    assert_int_equal(s.fixed, 1);
    assert_true(s.pools_total > 2);
    assert_true(s.pools_used >= 2);
    assert_true(s.pools_free >= 1);
    size_t len;
    char *text = dump_to_string(rt, &len);
    assert_true(len > 100);
    assert_true(str_contains_ci(text, "in use"));
    assert_true(str_contains_ci(text, "reserved"));
    assert_true(str_contains_ci(text, "map"));
    /* The map: one character per pool, used and free pools told apart. */
    size_t width = s.pools_total < 64 ? s.pools_total : 64;
    assert_true(has_map_token(text, width, 1));
    free(text);
    tally_free(rt, a);
    tally_free(rt, b);
    tally_close(rt);
}

/* ---- visit --------------------------------------------------------------------- */

#define VMAX 5000

typedef struct visit_rec {
    void *ptr[VMAX];
    size_t size[VMAX];
    size_t n;
    size_t stop_at; /* return 42 on this call (1-based); 0: never */
} visit_rec;

static int visitor(void *block, size_t size, void *arg)
{
    visit_rec *v = arg;
    if (v->n < VMAX) {
        v->ptr[v->n] = block;
        v->size[v->n] = size;
    }
    v->n++;
    if (v->stop_at && v->n == v->stop_at)
        return 42;
    return 0;
}

static void check_visit_matches(tally_rt *rt, void **live, size_t nlive, int whole_order)
{
    static visit_rec v;
    memset(&v, 0, sizeof v);
    assert_int_equal(tally_heap_visit(rt, visitor, &v), 0);
    size_t count = 0;
    for (size_t i = 0; i < nlive; i++)
        count += live[i] != NULL;
    assert_int_equal(v.n, count);
    size_t pool = get_stats(rt).pool_size;
    for (size_t k = 0; k < v.n; k++) {
        /* Each visited block is one of ours, with its usable size, visited once. */
        size_t hits = 0;
        for (size_t i = 0; i < nlive; i++)
            if (live[i] == v.ptr[k]) {
                hits++;
                assert_int_equal(v.size[k], tally_usable_size(live[i]));
            }
        assert_int_equal(hits, 1);
        if (k > 0) {
            uintptr_t a = (uintptr_t)v.ptr[k - 1], b = (uintptr_t)v.ptr[k];
            assert_true(a != b);
            if (whole_order || (a & ~(uintptr_t)(pool - 1)) == (b & ~(uintptr_t)(pool - 1)))
                assert_true(a < b);
        }
    }
}

static void visit_scenario(tally_rt *rt, int fixed)
{
    enum { N = 1500 };
    static void *p[N];
    test_rng rng = {99};
    memset(p, 0, sizeof p);
    /* Empty heap: nothing visited. */
    check_visit_matches(rt, p, 0, fixed);
    for (int i = 0; i < N; i++) {
        size_t k = rng_below(&rng, 100);
        size_t n = k < 85 ? rng_below(&rng, 600) : k < 98 ? rng_below(&rng, 9000)
                                                          : 20000 + rng_below(&rng, 40000);
        if (!fixed && i % 500 == 0)
            n = 2 * MiB + 3;
        p[i] = tally_malloc(rt, n);
        assert_non_null(p[i]);
    }
    check_visit_matches(rt, p, N, fixed);
    for (int i = 0; i < N; i += 2) {
        tally_free(rt, p[i]);
        p[i] = NULL;
    }
    check_visit_matches(rt, p, N, fixed);

    /* Early stop: the walk returns the visitor's value after exactly that call. */
    static visit_rec v;
    memset(&v, 0, sizeof v);
    v.stop_at = 5;
    assert_int_equal(tally_heap_visit(rt, visitor, &v), 42);
    assert_int_equal(v.n, 5);
    memset(&v, 0, sizeof v);
    v.stop_at = 1;
    assert_int_equal(tally_heap_visit(rt, visitor, &v), 42);
    assert_int_equal(v.n, 1);

    for (int i = 1; i < N; i += 2)
        tally_free(rt, p[i]);
    memset(p, 0, sizeof p);
    check_visit_matches(rt, p, 0, fixed);
}

static void test_visit_hosted(void **state)
{
    (void)state;
    tally_rt *rt = tally_open(NULL);
    assert_non_null(rt);
    visit_scenario(rt, 0);
    tally_close(rt);
}

static _Alignas(65536) unsigned char g_fixed_big[8 * 1024 * 1024 + 64];

static void test_visit_fixed(void **state)
{
    (void)state;
    tally_rt *rt = open_fixed(g_fixed_big + 3, 8 * MiB, NULL, 0);
    visit_scenario(rt, 1);
    tally_close(rt);
}

/* ---- max_bytes ------------------------------------------------------------------- */

static void test_max_bytes(void **state)
{
    (void)state;
    /* The runtime's own footprint plus four arenas (about 4.5 MiB by default). */
    const size_t arena = test_arena_size();
    const size_t limit = test_hosted_overhead() + 4 * arena;
    tally_config cfg;
    tally_config_init(&cfg);
    cfg.max_bytes = limit;
    cfg.report = tally_report_discard;
    tally_rt *rt = tally_open(&cfg);
    assert_non_null(rt);
    struct tally_heap_stats s = get_stats(rt);
    assert_int_equal(s.bytes_limit, limit);
    assert_true(s.bytes_reserved <= limit);
    const size_t base = s.bytes_reserved;

    /* Bigger than the limit on its own. */
    tally_clear_error(rt);
    assert_null(tally_malloc(rt, limit));
    assert_int_equal(tally_last_error(rt), TALLY_ELIMIT);
    assert_true(strlen(tally_last_error_message(rt)) > 0);

    enum { N = 4000 };
    static void *p[N];
    const size_t pattern[] = {arena / 16, 1000, arena * 3 / 10, 40, 5000, arena * 3 / 2};
    for (int round = 0; round < 2; round++) {
        int count = 0;
        for (int attempt = 0;; attempt++) {
            assert_true(count < N && attempt < 4 * N);
            size_t n = pattern[attempt % 6];
            tally_clear_error(rt);
            p[count] = tally_malloc(rt, n);
            s = get_stats(rt);
            assert_true(s.bytes_reserved <= limit);
            assert_true(s.bytes_reserved_peak <= limit);
            if (p[count] == NULL) {
                assert_int_equal(tally_last_error(rt), TALLY_ELIMIT);
                if (n <= 1000)
                    break; /* even small ones fail: the limit is reached */
                continue;  /* go on with the other sizes */
            }
            memset(p[count], count & 0xff, n);
            count++;
        }
        assert_true(count > 0);
        s = get_stats(rt);
        check_invariants(&s);
        /* The limit was reached, not just approached: a good share is in use. */
        assert_true(s.bytes_in_use >= (limit - base) / 4);
        assert_int_equal(tally_heap_check(rt), 0);
        for (int i = 0; i < count; i++) {
            assert_int_equal(((unsigned char *)p[i])[0], i & 0xff);
            tally_free(rt, p[i]);
        }
        s = get_stats(rt);
        assert_int_equal(s.bytes_in_use, 0);
        /* Freeing lets us allocate again. */
        void *q = tally_malloc(rt, arena / 2);
        assert_non_null(q);
        tally_free(rt, q);
    }
    tally_close(rt);
}

/* Empty arenas kept for reuse are unused memory: under max_bytes they must not make
 * a request fail that fits once they are given back.  A block of nearly two arenas
 * fits in a fresh runtime; it must fit again after other blocks came and went. */
static void test_max_bytes_cache_gives_way(void **state)
{
    (void)state;
    const size_t arena = test_arena_size(), pool = test_pool_size();
    const size_t limit = test_hosted_overhead() + 3 * arena + arena / 2;
    tally_config cfg;
    tally_config_init(&cfg);
    cfg.max_bytes = limit;
    cfg.report = tally_report_discard;
    tally_rt *rt = tally_open(&cfg);
    assert_non_null(rt);
    const size_t big = 2 * arena - 4 * pool;

    void *b = tally_malloc(rt, big);
    assert_non_null(b);
    tally_free(rt, b);

    /* Three blocks of most of an arena each: three arenas, emptied again. */
    void *p[3];
    for (int i = 0; i < 3; i++) {
        p[i] = tally_malloc(rt, arena - 8 * pool);
        assert_non_null(p[i]);
    }
    for (int i = 0; i < 3; i++)
        tally_free(rt, p[i]);
    struct tally_heap_stats s = get_stats(rt);
    assert_int_equal(s.bytes_in_use, 0);

    tally_clear_error(rt);
    b = tally_malloc(rt, big);
    if (b == NULL)
        print_error("malloc(%zu) failed with %d (%s); %zu reserved, %zu arenas cached, "
                    "limit %zu\n", big, tally_last_error(rt), tally_last_error_message(rt),
                    s.bytes_reserved, s.arenas_cached, limit);
    assert_non_null(b);
    tally_free(rt, b);
    assert_true(get_stats(rt).bytes_reserved <= limit);
    tally_close(rt);
}

/* ---- arenas: hysteresis and trim ----------------------------------------------------- */

static void test_shrink_releases_arenas(void **state)
{
    (void)state;
    tally_rt *rt = tally_open(NULL);
    assert_non_null(rt);
    const size_t bsize = 256;
    size_t total = test_scale(20 * MiB, 2); /* 10 MiB when quick */
    size_t n = total / bsize;
    void **p = malloc(n * sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) {
        p[i] = tally_malloc(rt, bsize);
        assert_non_null(p[i]);
    }
    struct tally_heap_stats full = get_stats(rt);
    check_invariants(&full);
    assert_true(full.bytes_reserved >= total);
    assert_true(full.arenas >= 4);
    for (size_t i = 0; i < n; i++)
        tally_free(rt, p[i]);
    free(p);
    struct tally_heap_stats s = get_stats(rt);
    check_invariants(&s);
    assert_int_equal(s.bytes_in_use, 0);
    assert_int_equal(s.blocks_in_use, 0);
    assert_true(s.arenas_peak >= full.arenas);
    /* Right after a burst of frees, empty arenas are kept (nothing is unmapped in
     * the middle of the burst)... */
    assert_true(s.arenas_cached >= 2);
    /* ...and the surplus goes back as the program runs on: a workload of batches
     * (pools fill and empty) gives back one arena per 1024 allocations. */
    for (int round = 0; round < 300; round++) {
        void *batch[1000];
        for (int i = 0; i < 1000; i++) {
            batch[i] = tally_malloc(rt, 200 + (size_t)(i % 3) * 16);
            assert_non_null(batch[i]);
        }
        for (int i = 0; i < 1000; i++)
            tally_free(rt, batch[i]);
    }
    s = get_stats(rt);
    check_invariants(&s);
    assert_true(s.arenas_cached <= s.arenas_peak / 4 + 2);
    assert_true(s.arenas < s.arenas_peak);
    assert_true(s.bytes_reserved < full.bytes_reserved);
    assert_true(s.backend_releases > 0);

    size_t released = tally_heap_trim(rt);
    struct tally_heap_stats t = get_stats(rt);
    check_invariants(&t);
    assert_true(released > 0 || t.bytes_reserved < s.bytes_reserved);
    assert_true(t.bytes_reserved <= s.bytes_reserved);
    assert_int_equal(t.arenas_cached, 0);
    assert_int_equal(tally_heap_check(rt), 0);
    /* A second trim has little or nothing left to give. */
    size_t again = tally_heap_trim(rt);
    struct tally_heap_stats t2 = get_stats(rt);
    assert_true(again <= released);
    assert_int_equal(t2.bytes_reserved, t.bytes_reserved);

    /* The heap still works after trimming. */
    void *q = tally_malloc(rt, 100);
    void *r = tally_malloc(rt, 200000);
    assert_non_null(q);
    assert_non_null(r);
    memset(q, 1, 100);
    memset(r, 2, 200000);
    tally_free(rt, q);
    tally_free(rt, r);
    tally_close(rt);
}

/* Trim with live blocks: nothing live is lost. */
static void test_trim_keeps_live_blocks(void **state)
{
    (void)state;
    tally_rt *rt = tally_open(NULL);
    assert_non_null(rt);
    enum { N = 2000 };
    static unsigned char *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = tally_malloc(rt, (size_t)(i % 7) * 700 + 16);
        assert_non_null(p[i]);
        fill_pattern(p[i], (size_t)(i % 7) * 700 + 16, (uint32_t)i);
    }
    for (int i = 0; i < N; i++)
        if (i % 4 != 0) {
            tally_free(rt, p[i]);
            p[i] = NULL;
        }
    struct tally_heap_stats before = get_stats(rt);
    tally_heap_trim(rt);
    struct tally_heap_stats after = get_stats(rt);
    assert_int_equal(after.bytes_in_use, before.bytes_in_use);
    assert_int_equal(after.blocks_in_use, before.blocks_in_use);
    assert_true(after.bytes_reserved <= before.bytes_reserved);
    assert_int_equal(tally_heap_check(rt), 0);
    for (int i = 0; i < N; i += 4) {
        size_t n = (size_t)(i % 7) * 700 + 16;
        assert_int_equal(check_pattern(p[i], n, (uint32_t)i), n);
        tally_free(rt, p[i]);
    }
    tally_close(rt);
}

/* An alloc/free loop must not map and unmap every time, also when the block is the
 * one that needed a new pool or a new arena. */
static void loop_alloc_free(tally_rt *rt, size_t n, size_t iters)
{
    struct tally_heap_stats b = get_stats(rt);
    unsigned long req = tally_fault_requests(rt, TALLY_FAULT_BACKEND);
    for (size_t i = 0; i < iters; i++) {
        void *p = tally_malloc(rt, n);
        assert_non_null(p);
        ((unsigned char *)p)[0] = 1;
        tally_free(rt, p);
    }
    struct tally_heap_stats a = get_stats(rt);
    assert_true(a.backend_requests - b.backend_requests <= 3);
    assert_true(a.backend_releases - b.backend_releases <= 3);
    assert_true(tally_fault_requests(rt, TALLY_FAULT_BACKEND) - req <= 3);
}

static void straddle(size_t bsize)
{
    tally_rt *rt = tally_open(NULL);
    assert_non_null(rt);
    size_t iters = test_scale(10000, 5);
    /* Plain loop on an empty heap. */
    loop_alloc_free(rt, bsize, iters);

    /* Fill until a block needs a new arena, free that block, loop right there. */
    const size_t N = 2 * test_arena_size() / bsize + 1000;
    void **p = malloc(N * sizeof *p);
    assert_non_null(p);
    size_t count = 0;
    unsigned long maps = tally_fault_requests(rt, TALLY_FAULT_BACKEND);
    int crossings = 0;
    while (crossings < 2) {
        assert_true(count < N);
        p[count] = tally_malloc(rt, bsize);
        assert_non_null(p[count]);
        count++;
        unsigned long now = tally_fault_requests(rt, TALLY_FAULT_BACKEND);
        if (now != maps) {
            maps = now;
            crossings++;
            /* This block opened fresh memory: free it and loop on the boundary. */
            tally_free(rt, p[--count]);
            loop_alloc_free(rt, bsize, iters);
            /* Take it back to go on filling. */
            p[count] = tally_malloc(rt, bsize);
            assert_non_null(p[count]);
            count++;
            maps = tally_fault_requests(rt, TALLY_FAULT_BACKEND);
        }
    }
    /* Also oscillate around the boundary with a few blocks at once. */
    for (size_t i = 0; i < iters / 10; i++) {
        void *x = tally_malloc(rt, bsize);
        void *y = tally_malloc(rt, bsize);
        assert_non_null(x);
        assert_non_null(y);
        tally_free(rt, y);
        tally_free(rt, x);
    }
    for (size_t i = 0; i < count; i++)
        tally_free(rt, p[i]);
    free(p);
    assert_int_equal(get_stats(rt).bytes_in_use, 0);
    assert_int_equal(tally_heap_check(rt), 0);
    tally_close(rt);
}

static void test_no_thrash_small(void **state)
{
    (void)state;
    /* 4000-byte blocks reach an arena boundary quickly (4 per 16 KiB pool). */
    straddle(32);
    straddle(4000);
}

static void test_no_thrash_large(void **state)
{
    (void)state;
    straddle(200 * 1024);
}

int main(void)
{
    unsetenv("TALLY_DEBUG");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fresh_runtime),
        cmocka_unit_test(test_in_use_tracks_usable_size),
        cmocka_unit_test(test_realloc_and_calloc_counted),
        cmocka_unit_test(test_per_class_figures),
        cmocka_unit_test(test_pools_full),
        cmocka_unit_test(test_dump_hosted),
        cmocka_unit_test(test_dump_fixed_has_map),
        cmocka_unit_test(test_visit_hosted),
        cmocka_unit_test(test_visit_fixed),
        cmocka_unit_test(test_max_bytes),
        cmocka_unit_test(test_max_bytes_cache_gives_way),
        cmocka_unit_test(test_shrink_releases_arenas),
        cmocka_unit_test(test_trim_keeps_live_blocks),
        cmocka_unit_test(test_no_thrash_small),
        cmocka_unit_test(test_no_thrash_large),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
