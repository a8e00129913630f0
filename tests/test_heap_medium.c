/* test_heap_medium.c - medium blocks: containers' buffers in 256-byte units.
 *
 * White-box (built with the library's internal headers, like test_heap_internal)
 * since tallyH_buf_* is internal.  Covers allocation, release and usable sizes;
 * resizing in place (growth into free units, shrinking) and refused (a block
 * after it, sizes outside the medium range); first-fit reuse of a freed run;
 * arenas: a second one when the first is full, the one empty arena kept and the
 * rest given back, tally_heap_trim giving back everything; the statistics and
 * tally_heap_check agreeing with the blocks (bytes in use equal the sum of usable
 * sizes) through random allocations, releases and resizes checked against a
 * shadow model (contents kept, no overlaps); fault injection at every allocation
 * point of an array built by append, and at the arena's backend request; the
 * memory limit; tracing (a snapshot lists an array's buffer, with its site); a
 * medium block passed to tally_free or tally_realloc (TALLY_EFOREIGN, nothing
 * changes); debug mode and the fixed-buffer heap falling back to ordinary blocks;
 * the size an array of 10^4 int32 built by append takes (docs/sizes.md); and a
 * list growing past the medium range in place in an arena of its own.
 */
#define _GNU_SOURCE
#include "test_util.h"

#include "heap/heap.h"
#include "runtime/runtime.h"

static tallyH_heap *heap(tally_rt *rt)
{
    return &rt->heap;
}

/* Bytes in use now, from the statistics. */
static size_t in_use(tally_rt *rt)
{
    return get_stats(rt).bytes_in_use;
}

static size_t unit_round(size_t n)
{
    return (n + 255) & ~(size_t)255;
}

/* A request certainly in the medium range (above the largest class). */
static size_t medium_size(tally_rt *rt, size_t n)
{
    size_t min = heap(rt)->class_max + 1;
    return n < min ? min : n;
}

/* ---- basics ------------------------------------------------------------------- */

static void test_alloc_free_usable(void **state)
{
    (void)state;
    recorder rec;
    tally_rt *rt = open_hosted(&rec, 0);
    tallyH_heap *h = heap(rt);
    size_t base = in_use(rt), n = medium_size(rt, 10000);
    uint8_t *p = tallyH_buf_alloc(h, n);
    assert_non_null(p);
    assert_true(tallyH_is_medium(h, p));
    assert_int_equal((uintptr_t)p % 256, 0);
    assert_int_equal(tallyH_buf_usable(h, p), unit_round(n));
    fill_pattern(p, tallyH_buf_usable(h, p), 1);
    struct tally_heap_stats s = get_stats(rt);
    assert_int_equal(s.medium_blocks, 1);
    assert_int_equal(s.medium_bytes, unit_round(n));
    assert_int_equal(s.medium_arenas, 1);
    assert_int_equal(s.bytes_in_use - base, unit_round(n));
    assert_int_equal(tally_heap_check(rt), 0);
    tallyH_buf_free(h, p);
    s = get_stats(rt);
    assert_int_equal(s.medium_blocks, 0);
    assert_int_equal(s.bytes_in_use, base);
    assert_int_equal(s.medium_arenas, 1); /* the one empty arena is kept */
    size_t reserved = s.bytes_reserved;
    assert_true(tally_heap_trim(rt) >= test_arena_size());
    s = get_stats(rt);
    assert_int_equal(s.medium_arenas, 0);
    assert_true(s.bytes_reserved <= reserved - test_arena_size());
    /* Sizes outside the range are ordinary blocks. */
    void *small = tallyH_buf_alloc(h, 100);
    void *large = tallyH_buf_alloc(h, TALLY_MEDIUM_MAX + 1);
    assert_non_null(small);
    assert_non_null(large);
    assert_false(tallyH_is_medium(h, small));
    assert_false(tallyH_is_medium(h, large));
    assert_int_equal(tallyH_buf_usable(h, small), tally_usable_size(small));
    assert_int_equal(tallyH_buf_usable(h, large), tally_usable_size(large));
    assert_int_equal(get_stats(rt).medium_arenas, 0);
    tallyH_buf_free(h, small);
    tallyH_buf_free(h, large);
    tallyH_buf_free(h, NULL);
    assert_int_equal(tally_heap_check(rt), 0);
    assert_int_equal(rec.count, 0);
    tally_close(rt);
}

static void test_resize_in_place(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    tallyH_heap *h = heap(rt);
    size_t n = medium_size(rt, 10000), base = in_use(rt);
    uint8_t *a = tallyH_buf_alloc(h, n), *b = tallyH_buf_alloc(h, n);
    assert_non_null(a);
    assert_non_null(b);
    assert_ptr_equal(b, a + unit_round(n)); /* first fit: right after a */
    fill_pattern(a, n, 2);
    fill_pattern(b, n, 3);
    /* a cannot grow (b follows), b can, into the free units after it. */
    assert_null(tallyH_buf_resize_nocopy(h, a, n + 256));
    assert_int_equal(tallyH_buf_usable(h, a), unit_round(n));
    assert_ptr_equal(tallyH_buf_resize_nocopy(h, b, 100000), b);
    assert_int_equal(tallyH_buf_usable(h, b), unit_round(100000));
    assert_int_equal(check_pattern(b, n, 3), n);
    assert_int_equal(in_use(rt) - base, unit_round(n) + unit_round(100000));
    /* Shrinking stays in place and gives the tail back. */
    assert_ptr_equal(tallyH_buf_resize_nocopy(h, b, n), b);
    assert_int_equal(tallyH_buf_usable(h, b), unit_round(n));
    assert_int_equal(check_pattern(b, n, 3), n);
    /* Outside the medium range: refused, the caller moves the block. */
    assert_null(tallyH_buf_resize_nocopy(h, b, 100));
    assert_null(tallyH_buf_resize_nocopy(h, b, TALLY_MEDIUM_MAX + 1));
    assert_null(tallyH_buf_resize_nocopy(h, b, 0));
    assert_int_equal(tallyH_buf_usable(h, b), unit_round(n));
    tallyH_buf_free(h, b);
    assert_ptr_equal(tallyH_buf_resize_nocopy(h, a, 3 * n), a);
    assert_int_equal(check_pattern(a, n, 2), n);
    assert_int_equal(in_use(rt) - base, unit_round(3 * n));
    assert_int_equal(tally_heap_check(rt), 0);
    tallyH_buf_free(h, a);
    assert_int_equal(in_use(rt), base);
    tally_close(rt);
}

static void test_first_fit_reuse(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    tallyH_heap *h = heap(rt);
    size_t n = medium_size(rt, 20000);
    void *a = tallyH_buf_alloc(h, n), *b = tallyH_buf_alloc(h, n), *c = tallyH_buf_alloc(h, n);
    assert_non_null(c);
    tallyH_buf_free(h, b);
    void *d = tallyH_buf_alloc(h, n - 1000); /* fits b's run: the first that does */
    assert_ptr_equal(d, b);
    void *e = tallyH_buf_alloc(h, n); /* b's run is taken: after c */
    assert_ptr_equal(e, (uint8_t *)c + unit_round(n));
    tallyH_buf_free(h, a);
    tallyH_buf_free(h, c);
    tallyH_buf_free(h, d);
    tallyH_buf_free(h, e);
    assert_int_equal(tally_heap_check(rt), 0);
    tally_close(rt);
}

static void test_arenas_given_back(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    tallyH_heap *h = heap(rt);
    struct tally_heap_stats s0 = get_stats(rt);
    enum { N = 8 };
    void *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = tallyH_buf_alloc(h, TALLY_MEDIUM_MAX); /* one per arena */
        assert_non_null(p[i]);
    }
    struct tally_heap_stats s = get_stats(rt);
    assert_int_equal(s.medium_arenas, N);
    assert_int_equal(s.arenas, s0.arenas + N);
    assert_int_equal(s.bytes_reserved, s0.bytes_reserved + N * test_arena_size());
    for (int i = 0; i < N; i++)
        tallyH_buf_free(h, p[i]);
    s = get_stats(rt);
    assert_int_equal(s.medium_arenas, 1); /* one kept, the others unmapped at once */
    assert_int_equal(s.arenas_cached, s0.arenas_cached + 1);
    assert_int_equal(s.bytes_reserved, s0.bytes_reserved + test_arena_size());
    tally_heap_trim(rt);
    s = get_stats(rt);
    assert_int_equal(s.medium_arenas, 0);
    assert_int_equal(s.bytes_reserved, s0.bytes_reserved);
    /* tally_close gives back arenas that still hold blocks (checked by the
     * sanitizers and Valgrind: no leak). */
    assert_non_null(tallyH_buf_alloc(h, 30000));
    tally_close(rt);
}

/* ---- random operations against a shadow model ------------------------------------ */

#define SLOTS 48

typedef struct shadow {
    uint8_t *p;
    size_t n;      /* bytes filled with the pattern */
    uint32_t seed;
} shadow;

static void check_model(tally_rt *rt, const shadow *sh, size_t base)
{
    tallyH_heap *h = heap(rt);
    size_t sum = 0;
    for (int i = 0; i < SLOTS; i++) {
        if (sh[i].p == NULL)
            continue;
        size_t u = tallyH_buf_usable(h, sh[i].p);
        assert_true(u >= sh[i].n);
        assert_int_equal(check_pattern(sh[i].p, sh[i].n, sh[i].seed), sh[i].n);
        sum += u;
        for (int j = 0; j < SLOTS; j++) { /* no two blocks overlap */
            if (j == i || sh[j].p == NULL)
                continue;
            assert_true(sh[j].p >= sh[i].p + u || sh[j].p + tallyH_buf_usable(h, sh[j].p) <= sh[i].p);
        }
    }
    assert_int_equal(in_use(rt) - base, sum);
    assert_int_equal(tally_heap_check(rt), 0);
}

static void test_random_against_model(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    tallyH_heap *h = heap(rt);
    shadow sh[SLOTS] = {{0}};
    test_rng rng = {12345};
    size_t base = in_use(rt), steps = test_scale(20000, 20);
    for (size_t step = 0; step < steps; step++) {
        shadow *s = &sh[rng_below(&rng, SLOTS)];
        size_t n = 1 + rng_below(&rng, rng_below(&rng, 4) == 0 ? TALLY_MEDIUM_MAX + 4096 : 40000);
        if (s->p == NULL) {
            s->p = tallyH_buf_alloc(h, n);
            assert_non_null(s->p);
            s->n = n;
            s->seed = (uint32_t)step;
            fill_pattern(s->p, n, s->seed);
        } else if (rng_below(&rng, 2) == 0) {
            tallyH_buf_free(h, s->p);
            s->p = NULL;
        } else {
            uint8_t *q = tallyH_buf_resize_nocopy(h, s->p, n);
            if (q != NULL) {
                assert_ptr_equal(q, s->p); /* medium and large blocks stay put */
                if (n < s->n)
                    s->n = n;
                assert_true(tallyH_buf_usable(h, q) >= n);
            }
        }
        if (step % 256 == 0)
            check_model(rt, sh, base);
    }
    check_model(rt, sh, base);
    for (int i = 0; i < SLOTS; i++)
        tallyH_buf_free(h, sh[i].p);
    assert_int_equal(in_use(rt), base);
    assert_int_equal(get_stats(rt).medium_blocks, 0);
    assert_int_equal(tally_heap_check(rt), 0);
    tally_close(rt);
}

/* ---- faults and limits ---------------------------------------------------------------- */

/* An array of n int32 built by append, or NULL (the error set). */
static void *build_array(tally_rt *rt, size_t n)
{
    void *a = tally_array(rt, TALLY_INT32, 0);
    if (a == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (tally_array_append_i64(a, (int64_t)i) != 0) {
            assert_int_equal(tally_array_size(a), i); /* a failed append changes nothing */
            tally_decref(a);
            return NULL;
        }
    }
    return a;
}

static void check_array(void *a, size_t n)
{
    assert_int_equal(tally_array_size(a), n);
    const int32_t *d = tally_array_data(a);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(d[i], (int32_t)i);
}

static void test_fault_at_every_allocation(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    size_t n = 20000, base = in_use(rt);
    void *a = build_array(rt, n); /* warm-up: types registered, arena mapped */
    assert_non_null(a);
    tally_decref(a);
    base = in_use(rt);
    unsigned long before = tally_fault_requests(rt, TALLY_FAULT_ALLOC);
    a = build_array(rt, n);
    unsigned long points = tally_fault_requests(rt, TALLY_FAULT_ALLOC) - before;
    tally_decref(a);
    assert_true(points >= 3); /* the object, small blocks, medium blocks */
    for (unsigned long k = 1; k <= points; k++) {
        unsigned long failures = tally_fault_failures(rt, TALLY_FAULT_ALLOC);
        tally_fault_inject(rt, TALLY_FAULT_ALLOC, k, 0);
        a = build_array(rt, n);
        assert_null(a);
        assert_int_equal(tally_last_error(rt), TALLY_EFAULT);
        assert_int_equal(tally_fault_failures(rt, TALLY_FAULT_ALLOC), failures + 1);
        assert_int_equal(in_use(rt), base);
        assert_int_equal(tally_heap_check(rt), 0);
        tally_fault_inject(rt, TALLY_FAULT_ALLOC, 0, 0);
    }
    a = build_array(rt, n);
    check_array(a, n);
    tally_decref(a);
    tally_close(rt);
}

static void test_fault_direct_and_backend(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    tallyH_heap *h = heap(rt);
    size_t n = medium_size(rt, 30000), base = in_use(rt);
    tally_fault_inject(rt, TALLY_FAULT_ALLOC, 1, 0);
    assert_null(tallyH_buf_alloc(h, n));
    assert_int_equal(tally_last_error(rt), TALLY_EFAULT);
    tally_clear_error(rt);
    /* The arena's mapping fails: nothing is left behind. */
    tally_fault_inject(rt, TALLY_FAULT_BACKEND, 1, TALLY_FAULT_PERSIST);
    assert_null(tallyH_buf_alloc(h, n));
    assert_int_equal(tally_last_error(rt), TALLY_EFAULT);
    tally_fault_inject(rt, TALLY_FAULT_BACKEND, 0, 0);
    assert_int_equal(get_stats(rt).medium_arenas, 0);
    assert_int_equal(in_use(rt), base);
    void *p = tallyH_buf_alloc(h, n);
    assert_non_null(p);
    tallyH_buf_free(h, p);
    tally_close(rt);
}

static void test_memory_limit(void **state)
{
    (void)state;
    tally_config cfg;
    tally_config_init(&cfg);
    cfg.max_bytes = 8 * test_arena_size();
    recorder rec;
    tally_rt *rt = open_with(&cfg, &rec, 0);
    tallyH_heap *h = heap(rt);
    void *p[64];
    int got = 0;
    while (got < 64 && (p[got] = tallyH_buf_alloc(h, TALLY_MEDIUM_MAX)) != NULL)
        got++;
    assert_true(got > 0 && got < 64);
    assert_int_equal(tally_last_error(rt), TALLY_ELIMIT);
    assert_true(get_stats(rt).bytes_reserved <= cfg.max_bytes);
    for (int i = 0; i < got; i++)
        tallyH_buf_free(h, p[i]);
    assert_int_equal(tally_heap_check(rt), 0);
    tally_close(rt);
}

/* ---- tracing, misuse, fallbacks ----------------------------------------------------------- */

static void test_traced(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    assert_int_equal(tally_trace_start(rt, 1), 0);
    void *a = build_array(rt, 10000);
    assert_non_null(a);
    const void *items = tally_array_data(a);
    assert_true(tallyH_is_medium(heap(rt), items));
    tally_trace_site site;
    size_t size = 0;
    void *frames[TALLY_TRACE_MAX_FRAMES];
    assert_int_equal(tally_trace_get_traceback(rt, items, &site, &size, frames), 0);
    assert_true(size >= 10000 * 4);
    assert_non_null(strstr(site.file, "array.c"));
    tally_trace_snapshot *snap = tally_trace_take_snapshot(rt);
    assert_non_null(snap);
    size_t total = 0, count = tally_trace_snapshot_count(snap, &total);
    int found = 0;
    for (size_t i = 0; i < count; i++) {
        tally_trace t;
        assert_int_equal(tally_trace_snapshot_get(snap, i, &t), 0);
        if (t.size == size && t.domain == 0 && strstr(t.site.file, "array.c") != NULL)
            found = 1;
    }
    assert_true(found);
    tally_trace_snapshot_free(snap);
    size_t cur, peak;
    tally_trace_get_traced_memory(rt, &cur, &peak);
    tally_decref(a);
    size_t after;
    tally_trace_get_traced_memory(rt, &after, &peak);
    assert_true(cur - after >= size); /* the release was seen */
    assert_int_equal(tally_trace_get_traceback(rt, items, &site, &size, frames), -1);
    /* The tracer looks for a pool header below a block: for a medium block that
     * word may lie in freed units (no-access to the tools) or in a neighbour. */
    tallyH_heap *h = heap(rt);
    size_t n = medium_size(rt, 20000);
    void *p[6];
    for (int i = 0; i < 6; i++)
        assert_non_null(p[i] = tallyH_buf_alloc(h, n));
    for (int i = 0; i < 6; i += 2)
        tallyH_buf_free(h, p[i]);
    for (int i = 1; i < 6; i += 2) {
        assert_int_equal(tally_trace_get_traceback(rt, p[i], &site, &size, frames), 0);
        assert_int_equal(size, n);
        assert_ptr_equal(tallyH_buf_resize_nocopy(h, p[i], n - 300), p[i]); /* shrinks */
        assert_int_equal(tally_trace_get_traceback(rt, p[i], &site, &size, frames), 0);
        assert_int_equal(size, n - 300);
        tallyH_buf_free(h, p[i]);
        assert_int_equal(tally_trace_get_traceback(rt, p[i], &site, &size, frames), -1);
    }
    tally_trace_stop(rt);
    tally_close(rt);
}

static void test_free_of_medium_refused(void **state)
{
    (void)state;
    recorder rec;
    tally_rt *rt = open_hosted(&rec, 0);
    tallyH_heap *h = heap(rt);
    size_t n = medium_size(rt, 12345);
    uint8_t *p = tallyH_buf_alloc(h, n);
    assert_non_null(p);
    fill_pattern(p, n, 7);
    struct tally_heap_stats s0 = get_stats(rt);
    tally_free(rt, p);
    assert_int_equal(tally_last_error(rt), TALLY_EFOREIGN);
    assert_int_equal(rec.count, 1);
    assert_true(rec_any_contains(&rec, "container's buffer"));
    assert_true(rec_any_contains(&rec, "not a block from tally_malloc"));
    tally_clear_error(rt);
    assert_null(tally_realloc(rt, p, 100));
    assert_int_equal(tally_last_error(rt), TALLY_EFOREIGN);
    assert_int_equal(rec.count, 2);
    assert_null(tally_realloc(rt, p + 256, 100)); /* inside one: refused too */
    assert_int_equal(tally_last_error(rt), TALLY_EFOREIGN);
    struct tally_heap_stats s = get_stats(rt);
    assert_int_equal(s.bytes_in_use, s0.bytes_in_use);
    assert_int_equal(s.medium_blocks, s0.medium_blocks);
    assert_int_equal(s.allocs, s0.allocs);
    assert_int_equal(check_pattern(p, n, 7), n);
    assert_int_equal(tally_heap_check(rt), 0);
    tallyH_buf_free(h, p);
    assert_int_equal(get_stats(rt).medium_blocks, 0);
    tally_close(rt);
}

/* The same refusal when the pool header the fast path would read lies in freed
 * units (poisoned under AddressSanitizer): the buffer's own first bytes are
 * past a 16 KiB boundary whose units were another buffer's. */
static void test_free_of_medium_refused_after_neighbour_freed(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    tallyH_heap *h = heap(rt);
    uint8_t *a = tallyH_buf_alloc(h, 40000), *b = tallyH_buf_alloc(h, 40000);
    assert_non_null(a);
    assert_non_null(b);
    assert_true(tallyH_is_medium(h, a) && tallyH_is_medium(h, b));
    tallyH_buf_free(h, a);
    /* b's pool-aligned base is inside a's freed units unless b starts on it. */
    uint8_t *base = (uint8_t *)((uintptr_t)b & ~(uintptr_t)(TALLY_POOL_SIZE - 1));
    uint8_t *p = base == b ? b + TALLY_POOL_SIZE / 2 : b;
    tally_free(rt, p);
    assert_int_equal(tally_last_error(rt), TALLY_EFOREIGN);
    tally_clear_error(rt);
    assert_null(tally_realloc(rt, p, 100));
    assert_int_equal(tally_last_error(rt), TALLY_EFOREIGN);
    assert_int_equal(get_stats(rt).medium_blocks, 1);
    assert_int_equal(tally_heap_check(rt), 0);
    tallyH_buf_free(h, b);
    tally_close(rt);
}

static void test_debug_mode_falls_back(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 1);
    tallyH_heap *h = heap(rt);
    void *p = tallyH_buf_alloc(h, 20000);
    assert_non_null(p);
    assert_false(tallyH_is_medium(h, p));
    assert_true(tallyH_buf_usable(h, p) >= 20000);
    assert_null(tallyH_buf_resize_nocopy(h, p, 30000)); /* debug blocks never stay put */
    void *a = build_array(rt, 10000);
    check_array(a, 10000);
    assert_int_equal(get_stats(rt).medium_arenas, 0);
    tally_decref(a);
    tallyH_buf_free(h, p);
    assert_int_equal(tally_heap_check(rt), 0);
    tally_close(rt);
}

static void test_fixed_heap_falls_back(void **state)
{
    (void)state;
    size_t size = 8 * MiB;
    void *mem = test_map_aligned(size, 4096);
    assert_non_null(mem);
    tally_rt *rt = open_fixed(mem, size, NULL, 0);
    tallyH_heap *h = heap(rt);
    void *p = tallyH_buf_alloc(h, 20000);
    assert_non_null(p);
    assert_false(tallyH_is_medium(h, p));
    void *a = build_array(rt, 10000);
    check_array(a, 10000);
    assert_int_equal(get_stats(rt).medium_arenas, 0);
    tally_decref(a);
    tallyH_buf_free(h, p);
    tally_close(rt);
    test_unmap(mem, size);
}

/* The size row of docs/sizes.md: the items take whole 256-byte units, and growth
 * in place asks for little slack. */
static void test_array_size_by_append(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    void *a = build_array(rt, 10000);
    check_array(a, 10000);
    assert_true(tallyH_is_medium(heap(rt), tally_array_data(a)));
    size_t bytes = tally_sizeof(a);
    assert_true(bytes <= 40500);
    assert_true(bytes >= 40000);
    /* Lists and bytearrays keep their buffers there too. */
    void *l = tally_list(rt, 0);
    for (int i = 0; i < 3000; i++)
        assert_int_equal(tally_list_append(l, a), 0);
    void *b = tally_bytearray(rt, NULL, 0);
    char chunk[1000];
    memset(chunk, 'x', sizeof chunk);
    for (int i = 0; i < 30; i++)
        assert_int_equal(tally_bytearray_append(b, chunk, sizeof chunk), 0);
    assert_int_equal(get_stats(rt).medium_blocks, 3);
    assert_int_equal(tally_heap_check(rt), 0);
    tally_decref(l);
    tally_decref(b);
    tally_decref(a);
    assert_int_equal(get_stats(rt).medium_blocks, 0);
    tally_close(rt);
}

/* A bytearray grows in place while the units after its data are free (the
 * pointer stays, nothing is copied), and moves with its contents when another
 * block is in the way. */
static void test_bytearray_grows_in_place(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    void *b = tally_bytearray(rt, NULL, 0);
    char chunk[4096];
    size_t n = 0;
    const void *first = NULL;
    int i = 0;
    /* Up to where the growth's slack (an eighth) would leave the medium range:
     * 240 KiB with 16 KiB pools, 112 KiB with 4 KiB pools. */
    for (; (n + sizeof chunk) / 8 * 9 + 4096 <= TALLY_MEDIUM_MAX; i++) {
        memset(chunk, 'a' + i % 26, sizeof chunk);
        assert_int_equal(tally_bytearray_append(b, chunk, sizeof chunk), 0);
        n += sizeof chunk;
        const void *d = tally_bytearray_data(b);
        if (tallyH_is_medium(heap(rt), d) && first == NULL)
            first = d;
        if (first != NULL)
            assert_ptr_equal(d, first);
    }
    assert_non_null(first);
    assert_true(n >= TALLY_MEDIUM_MAX / 2);
    assert_int_equal(get_stats(rt).medium_blocks, 1);
    /* Another buffer right after it: the next growth must move. */
    void *a = build_array(rt, 5000);
    assert_non_null(a);
    assert_int_equal(get_stats(rt).medium_blocks, 2);
    size_t usable = tally_sizeof(b);
    for (; n + sizeof chunk <= usable + 4 * sizeof chunk; i++) {
        memset(chunk, 'a' + i % 26, sizeof chunk);
        assert_int_equal(tally_bytearray_append(b, chunk, sizeof chunk), 0);
        n += sizeof chunk;
    }
    assert_ptr_not_equal(tally_bytearray_data(b), first);
    const uint8_t *d = tally_bytearray_data(b);
    assert_int_equal(tally_bytearray_size(b), n);
    for (size_t k = 0; k < n; k++)
        assert_int_equal(d[k], 'a' + (int)(k / sizeof chunk) % 26);
    assert_int_equal(tally_heap_check(rt), 0);
    tally_decref(a);
    tally_decref(b);
    assert_int_equal(get_stats(rt).medium_blocks, 0);
    tally_close(rt);
}

/* A list appended to from the medium range to nearly an arena's worth of items
 * moves once, out of its medium block: its run of pools then grows in place (it
 * took an empty arena). */
static void test_list_grows_in_place_past_medium(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    void *l = tally_list(rt, 0);
    void *one = tally_int(rt, 1);
    const tally_list_view *v = (const tally_list_view *)l;
    size_t limit = test_arena_size() / 8 * 7 / sizeof(void *); /* its next growth fits */
    void **last = NULL;
    int moves = 0;
    while (v->size < limit) {
        assert_int_equal(tally_list_append(l, one), 0);
        if (v->cap * sizeof(void *) > TALLY_MEDIUM_MAX && v->items != last) {
            moves++;
            last = v->items;
        }
    }
    assert_int_equal(moves, 1);
    assert_true(v->cap * sizeof(void *) < test_arena_size()); /* still a run of pools */
    assert_int_equal(tally_heap_check(rt), 0);
    tally_decref(l);
    tally_close(rt);
}

int main(void)
{
    unsetenv("TALLY_DEBUG"); /* the tests choose their debug level */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_free_usable),
        cmocka_unit_test(test_resize_in_place),
        cmocka_unit_test(test_first_fit_reuse),
        cmocka_unit_test(test_arenas_given_back),
        cmocka_unit_test(test_random_against_model),
        cmocka_unit_test(test_fault_at_every_allocation),
        cmocka_unit_test(test_fault_direct_and_backend),
        cmocka_unit_test(test_memory_limit),
        cmocka_unit_test(test_traced),
        cmocka_unit_test(test_free_of_medium_refused),
        cmocka_unit_test(test_free_of_medium_refused_after_neighbour_freed),
        cmocka_unit_test(test_debug_mode_falls_back),
        cmocka_unit_test(test_fixed_heap_falls_back),
        cmocka_unit_test(test_array_size_by_append),
        cmocka_unit_test(test_bytearray_grows_in_place),
        cmocka_unit_test(test_list_grows_in_place_past_medium),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
