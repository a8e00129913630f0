/* test_heap_huge.c - huge blocks (bigger than an arena) resized by remapping.
 *
 * Covers tally_realloc of huge blocks on hosted runtimes: growth through many
 * sizes keeping the contents (pattern), with tally_usable_size() and the
 * statistics (bytes_in_use, large_bytes, bytes_reserved, arenas, allocs/frees)
 * agreeing after each step; growth by a page staying in place; growth that must
 * move (a backend whose in-place remap always fails) moving the pages without a
 * copy; shrinking in place, and to an arena-sized block (copied into an arena);
 * every mapping returned after the block is freed; a backend without remap() and
 * one whose remap() always fails (the copy path); failures injected into each
 * backend request of a moving growth (the target's map, the remaps) and the memory
 * limit, leaving the old block intact and nothing leaked; and a fixed-buffer heap
 * unaffected.  Under Valgrind huge blocks are copied (heap.c): expectations about
 * remapping are checked only outside it.
 *
 * Huge pages (tally_config.huge_pages): by default a huge block's mapping, read
 * back from /proc/self/smaps, starts on 2 MiB, spans whole 2 MiB stretches and
 * carries the kernel's MADV_HUGEPAGE flag ("hg"), also after growing in place and
 * after moving; off (the setting, TALLY_HUGE_PAGES=0, or a max_bytes cap on the
 * default setting) it is not advised.  Growth inside the last stretch stays in
 * place.
 */
#define _GNU_SOURCE
#include "test_util.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- a backend that counts mappings and remaps --------------------------------- */

#define MAXMAPS 64

typedef struct remap_backend {
    void *addr[MAXMAPS];
    size_t size[MAXMAPS];
    size_t outstanding;          /* mappings held by the heap */
    unsigned long maps, moves, resizes, remap_calls, bad_unmap;
    int refuse_in_place;         /* remap(target NULL) always fails */
    int refuse_all;              /* every remap fails */
} remap_backend;

static int rb_find(remap_backend *b, void *addr)
{
    for (int i = 0; i < MAXMAPS; i++)
        if (b->addr[i] == addr)
            return i;
    return -1;
}

static void *rb_map(void *ctx, size_t size, size_t align)
{
    remap_backend *b = ctx;
    int i = rb_find(b, NULL);
    if (i < 0)
        return NULL;
    void *p = test_map_aligned(size, align);
    if (p == NULL)
        return NULL;
    b->addr[i] = p;
    b->size[i] = size;
    b->maps++;
    b->outstanding++;
    return p;
}

static void rb_unmap(void *ctx, void *addr, size_t size)
{
    remap_backend *b = ctx;
    int i = rb_find(b, addr);
    if (i < 0 || b->size[i] != size) {
        b->bad_unmap++;
        return;
    }
    test_unmap(addr, size);
    b->addr[i] = NULL;
    b->outstanding--;
}

static int rb_remap(void *ctx, void *old, size_t old_size, size_t new_size, void *target)
{
    remap_backend *b = ctx;
    b->remap_calls++;
    int i = rb_find(b, old);
    if (i < 0 || b->size[i] != old_size) {
        b->bad_unmap++;
        return -1;
    }
    if (b->refuse_all || (target == NULL && b->refuse_in_place))
        return -1;
    if (target == NULL) {
        if (mremap(old, old_size, new_size, 0) == MAP_FAILED)
            return -1;
        b->size[i] = new_size;
        b->resizes++;
        return 0;
    }
    int t = rb_find(b, target);
    if (t < 0 || b->size[t] != new_size) {
        b->bad_unmap++;
        return -1;
    }
    if (mremap(old, old_size, new_size, MREMAP_MAYMOVE | MREMAP_FIXED, target) == MAP_FAILED)
        return -1;
    b->addr[i] = NULL;
    b->outstanding--;
    b->moves++;
    return 0;
}

static tally_rt *open_on(remap_backend *b, tally_backend *be, int with_remap, size_t limit)
{
    memset(b, 0, sizeof *b);
    *be = (tally_backend){rb_map, rb_unmap, NULL, b, with_remap ? rb_remap : NULL};
    tally_config cfg;
    tally_config_init(&cfg);
    cfg.backend = be;
    cfg.max_bytes = limit;
    return open_with(&cfg, NULL, 0);
}

/* ---- helpers ------------------------------------------------------------------- */

static int remapping(void)
{
    return !test_on_valgrind(); /* heap.c copies huge blocks under Valgrind */
}

/* The statistics agree with the one huge block p of n requested bytes held on top
 * of what `base` describes. */
static void check_one_huge(tally_rt *rt, const struct tally_heap_stats *base, void *p, size_t n)
{
    size_t usable = tally_usable_size(p);
    assert_true(usable >= n);
    assert_true(usable < n + 4096 + 16); /* the mapping is n + header, page-rounded */
    struct tally_heap_stats s = get_stats(rt);
    assert_int_equal(s.bytes_in_use, base->bytes_in_use + usable);
    assert_true(s.bytes_in_use_peak >= s.bytes_in_use);
    assert_int_equal(s.large_blocks, base->large_blocks + 1);
    assert_int_equal(s.large_bytes, base->large_bytes + usable);
    assert_int_equal(s.blocks_in_use, base->blocks_in_use + 1);
    assert_int_equal(s.arenas, base->arenas + 1);
    /* Reserved: the baseline plus the block's one mapping (usable + header). */
    assert_true(s.bytes_reserved > base->bytes_reserved + usable);
    assert_true(s.bytes_reserved <= base->bytes_reserved + usable + 4096);
    assert_true(s.bytes_reserved_peak >= s.bytes_reserved);
    assert_int_equal(s.backend_requests - s.backend_releases,
                     base->backend_requests - base->backend_releases + 1);
    assert_int_equal(tally_heap_check(rt), 0);
}

/* Everything given back: the statistics are the baseline's again. */
static void check_back_to(tally_rt *rt, const struct tally_heap_stats *base)
{
    struct tally_heap_stats s = get_stats(rt);
    assert_int_equal(s.bytes_in_use, base->bytes_in_use);
    assert_int_equal(s.blocks_in_use, base->blocks_in_use);
    assert_int_equal(s.large_blocks, 0);
    assert_int_equal(s.large_bytes, 0);
    assert_int_equal(s.arenas, base->arenas);
    assert_int_equal(s.bytes_reserved, base->bytes_reserved);
    assert_int_equal(s.backend_requests - s.backend_releases,
                     base->backend_requests - base->backend_releases);
    assert_int_equal(tally_heap_check(rt), 0);
}

/* ---- growth and shrinking --------------------------------------------------------- */

/* Grows a huge block by 1/8 at a time from 2 MiB to past 60 MiB (every step a
 * remap in place or a move), on the OS backend and on a counting remap backend;
 * the contents, the usable size and the statistics follow every step. */
static void grow_many_sizes(tally_rt *rt, remap_backend *b)
{
    struct tally_heap_stats base = get_stats(rt);
    size_t n = 2 * MiB;
    uint8_t *p = tally_malloc(rt, n);
    assert_non_null(p);
    fill_pattern(p, n, 7);
    unsigned long long allocs = get_stats(rt).allocs;
    size_t steps = 0, limit = test_quick() ? 12 * MiB : 60 * MiB;
    while (n < limit) {
        size_t m = n + n / 8;
        uint8_t *q = tally_realloc(rt, p, m);
        assert_non_null(q);
        assert_int_equal(check_pattern(q, n, 7), n);
        fill_pattern(q, m, 7); /* the grown tail too */
        check_one_huge(rt, &base, q, m);
        struct tally_heap_stats s = get_stats(rt);
        /* A move counts as an allocation (and a free), as the copy path does. */
        allocs += q != p;
        assert_int_equal(s.allocs, allocs);
        assert_int_equal(s.frees, allocs - 1);
        p = q;
        n = m;
        steps++;
    }
    assert_true(steps >= 10);
    if (b != NULL) {
        assert_int_equal(b->bad_unmap, 0);
        if (remapping()) /* no copy: each step was a remap (in place or a move) */
            assert_int_equal(b->moves + b->resizes, steps);
        else
            assert_int_equal(b->remap_calls, 0);
    }
    tally_free(rt, p);
    check_back_to(rt, &base);
}

static void test_grow_through_many_sizes_os(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    grow_many_sizes(rt, NULL);
    tally_close(rt);
}

static void test_grow_through_many_sizes_remap_backend(void **state)
{
    (void)state;
    remap_backend b;
    tally_backend be;
    tally_rt *rt = open_on(&b, &be, 1, 0);
    grow_many_sizes(rt, &b);
    tally_close(rt);
    assert_int_equal(b.outstanding, 0);
    assert_int_equal(b.bad_unmap, 0);
}

/* The OS backend maps an arena-aligned range and unmaps the excess after it, so a
 * fresh huge block has at least a page free after it: growing by a page stays. */
static void test_growth_by_a_page_stays_in_place(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    struct tally_heap_stats base = get_stats(rt);
    uint8_t *p = tally_malloc(rt, 3 * MiB);
    assert_non_null(p);
    size_t u = tally_usable_size(p);
    fill_pattern(p, u, 3);
    struct tally_heap_stats before = get_stats(rt);
    uint8_t *q = tally_realloc(rt, p, u + 4096);
    assert_non_null(q);
    assert_int_equal(check_pattern(q, u, 3), u);
    check_one_huge(rt, &base, q, u + 4096);
    struct tally_heap_stats s = get_stats(rt);
    if (remapping()) {
        assert_ptr_equal(q, p);
        assert_int_equal(tally_usable_size(q), u + 4096);
        assert_int_equal(s.bytes_reserved, before.bytes_reserved + 4096);
        assert_int_equal(s.backend_requests, before.backend_requests); /* no new mapping */
        assert_int_equal(s.allocs, before.allocs);                     /* stayed: not counted */
    }
    q[u + 4095] = 1; /* the grown page is usable */
    tally_free(rt, q);
    check_back_to(rt, &base);
    tally_close(rt);
}

/* A backend whose in-place remap always fails: growth moves the pages to a new
 * arena-aligned mapping; the old one is gone, the new one is the only one. */
static void test_growth_that_must_move(void **state)
{
    (void)state;
    remap_backend b;
    tally_backend be;
    tally_rt *rt = open_on(&b, &be, 1, 0);
    b.refuse_in_place = 1;
    struct tally_heap_stats base = get_stats(rt);
    uint8_t *p = tally_malloc(rt, 5 * MiB);
    assert_non_null(p);
    fill_pattern(p, 5 * MiB, 11);
    size_t held = b.outstanding;
    uint8_t *q = tally_realloc(rt, p, 9 * MiB);
    assert_non_null(q);
    assert_ptr_not_equal(q, p);
    assert_true(((uintptr_t)q & (test_arena_size() - 1)) < 4096); /* arena-aligned mapping */
    assert_int_equal(check_pattern(q, 5 * MiB, 11), 5 * MiB);
    check_one_huge(rt, &base, q, 9 * MiB);
    assert_int_equal(b.outstanding, held); /* one mapping replaced the other */
    if (remapping())
        assert_int_equal(b.moves, 1);
    /* The old address is no block any more; the new one is. */
    assert_ptr_equal(tally_runtime_of(q), rt);
    memset(q + 5 * MiB, 0x5a, 4 * MiB);
    /* Shrinking the moved block, in place now allowed. */
    b.refuse_in_place = 0;
    uint8_t *r = tally_realloc(rt, q, 6 * MiB);
    assert_ptr_equal(r, q); /* in place (without remapping: two thirds kept, stays) */
    assert_int_equal(check_pattern(r, 5 * MiB, 11), 5 * MiB);
    assert_true(all_bytes_are(r + 5 * MiB, MiB, 0x5a));
    if (remapping()) {
        check_one_huge(rt, &base, r, 6 * MiB); /* the tail was given back */
        assert_int_equal(b.resizes, 1);
    }
    tally_free(rt, r);
    check_back_to(rt, &base);
    assert_int_equal(b.outstanding, held - 1);
    assert_int_equal(b.bad_unmap, 0);
    tally_close(rt);
    assert_int_equal(b.outstanding, 0);
}

static void test_shrink(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    /* A small block keeps an arena (and its header's page) for the large block. */
    void *keep = tally_malloc(rt, 64);
    struct tally_heap_stats base = get_stats(rt);
    size_t large = test_arena_size() * 3 / 10;
    uint8_t *p = tally_malloc(rt, 40 * MiB);
    assert_non_null(p);
    fill_pattern(p, 40 * MiB, 5);
    /* To a tenth: in place, the tail given back. */
    uint8_t *q = tally_realloc(rt, p, 4 * MiB);
    assert_non_null(q);
    assert_int_equal(check_pattern(q, 4 * MiB, 5), 4 * MiB);
    check_one_huge(rt, &base, q, 4 * MiB);
    if (remapping())
        assert_ptr_equal(q, p);
    assert_true(get_stats(rt).bytes_reserved < base.bytes_reserved + 5 * MiB);
    /* By a few pages (more than half kept): stays, usable size exact. */
    uint8_t *r = tally_realloc(rt, q, 4 * MiB - 3 * 4096);
    assert_ptr_equal(r, q);
    assert_int_equal(check_pattern(r, 4 * MiB - 3 * 4096, 5), 4 * MiB - 3 * 4096);
    if (remapping())
        check_one_huge(rt, &base, r, 4 * MiB - 3 * 4096);
    /* Below an arena: a large block in an arena (copied). */
    uint8_t *s = tally_realloc(rt, r, large);
    assert_non_null(s);
    assert_int_equal(check_pattern(s, large, 5), large);
    struct tally_heap_stats st = get_stats(rt);
    assert_int_equal(st.large_blocks, 1);
    assert_int_equal(st.bytes_in_use, base.bytes_in_use + tally_usable_size(s));
    assert_int_equal(st.arenas, base.arenas);
    assert_true(tally_usable_size(s) < test_arena_size());
    /* And back up to huge (copied out of the arena). */
    uint8_t *t = tally_realloc(rt, s, 3 * MiB);
    assert_non_null(t);
    assert_int_equal(check_pattern(t, large, 5), large);
    assert_int_equal(get_stats(rt).large_bytes, tally_usable_size(t));
    tally_free(rt, t);
    check_back_to(rt, &base);
    tally_free(rt, keep);
    tally_close(rt);
}

/* ---- backends without remapping ------------------------------------------------------ */

static void copy_path(int with_remap)
{
    remap_backend b;
    tally_backend be;
    tally_rt *rt = open_on(&b, &be, with_remap, 0);
    b.refuse_all = with_remap; /* with one that always fails */
    struct tally_heap_stats base = get_stats(rt);
    uint8_t *p = tally_malloc(rt, 2 * MiB);
    assert_non_null(p);
    fill_pattern(p, 2 * MiB, 9);
    size_t n = 2 * MiB;
    for (int i = 0; i < 6; i++) {
        size_t m = n * 3 / 2;
        uint8_t *q = tally_realloc(rt, p, m);
        assert_non_null(q);
        assert_ptr_not_equal(q, p); /* copied to a new block every time */
        assert_int_equal(check_pattern(q, n, 9), n);
        fill_pattern(q, m, 9);
        check_one_huge(rt, &base, q, m);
        p = q;
        n = m;
    }
    uint8_t *q = tally_realloc(rt, p, n / 3); /* less than half: copied too */
    assert_ptr_not_equal(q, p);
    assert_int_equal(check_pattern(q, n / 3, 9), n / 3);
    tally_free(rt, q);
    check_back_to(rt, &base);
    assert_int_equal(b.moves + b.resizes, 0);
    assert_int_equal(b.bad_unmap, 0);
    tally_close(rt);
    assert_int_equal(b.outstanding, 0);
}

static void test_backend_without_remap_copies(void **state)
{
    (void)state;
    copy_path(0);
}

static void test_backend_remap_failing_copies(void **state)
{
    (void)state;
    copy_path(1);
}

/* ---- failures ---------------------------------------------------------------------------- */

/* Fails each backend request of a growth that must move in turn, for good
 * (persist: the copy path's own mapping fails too): the realloc fails with
 * TALLY_EFAULT, the block is intact and the statistics unchanged; after disarming,
 * the growth works and every mapping is returned in the end. */
static void test_injected_failures_keep_block(void **state)
{
    (void)state;
    unsigned long failed = 0;
    for (unsigned long n = 1; n <= 4; n++) {
        remap_backend b;
        tally_backend be;
        tally_rt *rt = open_on(&b, &be, 1, 0);
        b.refuse_in_place = 1;
        struct tally_heap_stats base = get_stats(rt);
        uint8_t *p = tally_malloc(rt, 3 * MiB);
        assert_non_null(p);
        fill_pattern(p, 3 * MiB, 13);
        struct tally_heap_stats before = get_stats(rt);
        size_t held = b.outstanding;
        unsigned long r0 = tally_fault_requests(rt, TALLY_FAULT_BACKEND);
        tally_fault_inject(rt, TALLY_FAULT_BACKEND, n, TALLY_FAULT_PERSIST);
        tally_clear_error(rt);
        uint8_t *q = tally_realloc(rt, p, 7 * MiB);
        unsigned long used = tally_fault_requests(rt, TALLY_FAULT_BACKEND) - r0;
        tally_fault_inject(rt, TALLY_FAULT_BACKEND, 0, 0);
        if (q == NULL) {
            failed++;
            assert_int_equal(tally_last_error(rt), TALLY_EFAULT);
            assert_int_equal(check_pattern(p, 3 * MiB, 13), 3 * MiB);
            struct tally_heap_stats s = get_stats(rt);
            assert_int_equal(s.bytes_in_use, before.bytes_in_use);
            assert_int_equal(s.bytes_reserved, before.bytes_reserved);
            assert_int_equal(s.arenas, before.arenas);
            assert_int_equal(b.outstanding, held);
            q = tally_realloc(rt, p, 7 * MiB);
            assert_non_null(q);
        } else {
            assert_true(used < n); /* no request was failed */
        }
        assert_int_equal(check_pattern(q, 3 * MiB, 13), 3 * MiB);
        check_one_huge(rt, &base, q, 7 * MiB);
        tally_free(rt, q);
        check_back_to(rt, &base);
        assert_int_equal(b.bad_unmap, 0);
        tally_close(rt);
        assert_int_equal(b.outstanding, 0);
    }
    /* Requests 1..3 (remap in place, the target's map, the move; or, copying, the
     * new block's map) each failed the call. */
    assert_true(failed >= (remapping() ? 3 : 1));
}

/* Fails one request (not persisting): a failed remap path falls back to copying,
 * which then succeeds, and nothing leaks. */
static void test_injected_single_failure_falls_back(void **state)
{
    (void)state;
    if (!remapping())
        skip(); /* copying: the one failure is the copy's, and the call's */
    for (unsigned long n = 1; n <= 3; n++) {
        remap_backend b;
        tally_backend be;
        tally_rt *rt = open_on(&b, &be, 1, 0);
        b.refuse_in_place = 1;
        struct tally_heap_stats base = get_stats(rt);
        uint8_t *p = tally_malloc(rt, 3 * MiB);
        fill_pattern(p, 3 * MiB, 17);
        tally_fault_inject(rt, TALLY_FAULT_BACKEND, n, 0);
        tally_clear_error(rt);
        uint8_t *q = tally_realloc(rt, p, 7 * MiB);
        assert_non_null(q);
        assert_int_equal(tally_last_error(rt), TALLY_OK); /* the fallback's failure is no error */
        if (remapping())
            assert_int_equal(tally_fault_failures(rt, TALLY_FAULT_BACKEND), 1);
        assert_int_equal(check_pattern(q, 3 * MiB, 17), 3 * MiB);
        check_one_huge(rt, &base, q, 7 * MiB);
        tally_free(rt, q);
        check_back_to(rt, &base);
        tally_close(rt);
        assert_int_equal(b.outstanding, 0);
        assert_int_equal(b.bad_unmap, 0);
    }
}

/* Under a memory limit that the old block and a target together exceed, a move is
 * impossible (as a copy is): the realloc fails with TALLY_ELIMIT, block intact.  A
 * growth in place needs only the difference and works. */
static void test_limit(void **state)
{
    (void)state;
    remap_backend b;
    tally_backend be;
    tally_rt *rt = open_on(&b, &be, 1, 32 * MiB);
    b.refuse_in_place = 1;
    uint8_t *p = tally_malloc(rt, 20 * MiB);
    assert_non_null(p);
    fill_pattern(p, 20 * MiB, 19);
    struct tally_heap_stats before = get_stats(rt);
    tally_clear_error(rt);
    assert_null(tally_realloc(rt, p, 24 * MiB));
    assert_int_equal(tally_last_error(rt), TALLY_ELIMIT);
    assert_int_equal(check_pattern(p, 20 * MiB, 19), 20 * MiB);
    assert_int_equal(get_stats(rt).bytes_reserved, before.bytes_reserved);
    assert_int_equal(b.moves, 0);
    b.refuse_in_place = 0;
    tally_clear_error(rt);
    uint8_t *q = tally_realloc(rt, p, 24 * MiB);
    if (remapping()) { /* may fail to grow in place if something follows the block */
        if (q != NULL) {
            assert_ptr_equal(q, p);
            assert_int_equal(b.resizes, 1);
            p = q;
        } else {
            assert_int_equal(tally_last_error(rt), TALLY_ELIMIT);
        }
    } else {
        assert_null(q);
    }
    assert_int_equal(check_pattern(p, 20 * MiB, 19), 20 * MiB);
    assert_true(get_stats(rt).bytes_reserved <= 32 * MiB);
    tally_free(rt, p);
    tally_close(rt);
    assert_int_equal(b.outstanding, 0);
}

/* ---- fixed buffer ---------------------------------------------------------------------- */

static _Alignas(65536) unsigned char g_buf[6 * 1024 * 1024];

/* ---- huge pages ---------------------------------------------------------------------- */

typedef struct mapping_info {
    uintptr_t lo, hi;
    int advised; /* VmFlags has "hg" */
} mapping_info;

/* The mapping of /proc/self/smaps that contains p: true if found. */
static bool find_mapping(const void *p, mapping_info *m)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    if (f == NULL)
        return false;
    char line[512];
    bool inside = false, found = false;
    while (fgets(line, sizeof line, f) != NULL) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            if (found)
                break;
            inside = (uintptr_t)p >= lo && (uintptr_t)p < hi;
            if (inside) {
                m->lo = lo;
                m->hi = hi;
                m->advised = 0;
            }
        } else if (inside && strncmp(line, "VmFlags:", 8) == 0) {
            m->advised = strstr(line, " hg") != NULL;
            found = true;
        }
    }
    fclose(f);
    return found;
}

/* A kernel built without transparent huge pages refuses the advice (EINVAL). */
static bool kernel_has_thp(void)
{
    return access("/sys/kernel/mm/transparent_hugepage/enabled", R_OK) == 0;
}

static void expect_huge_pages(const void *p, bool on)
{
    mapping_info m;
    assert_true(find_mapping(p, &m));
    assert_int_equal(m.advised, on && kernel_has_thp());
    if (on) {
        assert_int_equal(m.lo % (2 * MiB), 0);
        assert_int_equal((m.hi - m.lo) % (2 * MiB), 0);
    }
}

static tally_rt *open_thp(int setting, size_t max_bytes)
{
    tally_config cfg;
    tally_config_init(&cfg);
    cfg.huge_pages = setting;
    cfg.max_bytes = max_bytes;
    tally_rt *rt = tally_open(&cfg);
    assert_non_null(rt);
    return rt;
}

static void test_huge_pages_by_default(void **state)
{
    (void)state;
    if (!remapping())
        skip();
    tally_rt *rt = open_thp(TALLY_HUGE_PAGES_AUTO, 0);
    uint8_t *p = tally_malloc(rt, 3 * MiB);
    assert_non_null(p);
    fill_pattern(p, 3 * MiB, 41);
    expect_huge_pages(p, true);
    /* Inside the last 2 MiB stretch: the same block, nothing remapped. */
    struct tally_heap_stats before = get_stats(rt);
    uint8_t *q = tally_realloc(rt, p, 3 * MiB + 512 * KiB);
    assert_ptr_equal(q, p);
    assert_int_equal(get_stats(rt).backend_requests, before.backend_requests);
    expect_huge_pages(q, true);
    /* Across stretches, in place or moved: still advised, contents kept. */
    for (size_t n = 5 * MiB; n <= 21 * MiB; n += 4 * MiB) {
        q = tally_realloc(rt, q, n);
        assert_non_null(q);
        assert_int_equal(check_pattern(q, 3 * MiB, 41), 3 * MiB);
        expect_huge_pages(q, true);
        memset(q + n - 4096, 7, 4096);
    }
    /* A block just over an arena is huge and advised too; arenas are not. */
    uint8_t *r = tally_malloc(rt, 1 * MiB + 1);
    assert_non_null(r);
    expect_huge_pages(r, true);
    uint8_t *small = tally_malloc(rt, 64 * KiB);
    expect_huge_pages(small, false);
    tally_free(rt, small);
    tally_free(rt, r);
    tally_free(rt, q);
    assert_int_equal(tally_heap_check(rt), 0);
    tally_close(rt);
}

static void test_huge_pages_off(void **state)
{
    (void)state;
    if (!remapping())
        skip();
    tally_rt *off = open_thp(TALLY_HUGE_PAGES_OFF, 0);
    tally_rt *capped = open_thp(TALLY_HUGE_PAGES_AUTO, 256 * MiB);
    tally_rt *forced = open_thp(TALLY_HUGE_PAGES_ON, 256 * MiB);
    setenv("TALLY_HUGE_PAGES", "0", 1);
    tally_rt *env = open_thp(TALLY_HUGE_PAGES_AUTO, 0);
    unsetenv("TALLY_HUGE_PAGES");
    tally_rt *rts[] = {off, capped, forced, env};
    for (int i = 0; i < 4; i++) {
        uint8_t *p = tally_malloc(rts[i], 3 * MiB);
        assert_non_null(p);
        expect_huge_pages(p, rts[i] == forced);
        p = tally_realloc(rts[i], p, 7 * MiB);
        assert_non_null(p);
        expect_huge_pages(p, rts[i] == forced);
        tally_free(rts[i], p);
        tally_close(rts[i]);
    }
}

static void test_fixed_heap_unaffected(void **state)
{
    (void)state;
    tally_rt *rt = open_fixed(g_buf, sizeof g_buf, NULL, 0);
    struct tally_heap_stats base = get_stats(rt);
    size_t n = 100 * KiB;
    uint8_t *p = tally_malloc(rt, n);
    assert_non_null(p);
    fill_pattern(p, n, 23);
    while (n < 2 * MiB) {
        size_t m = n * 3 / 2;
        uint8_t *q = tally_realloc(rt, p, m);
        assert_non_null(q);
        assert_int_equal(check_pattern(q, n, 23), n);
        fill_pattern(q, m, 23);
        assert_true(q >= g_buf && q + m <= g_buf + sizeof g_buf);
        assert_int_equal(get_stats(rt).bytes_in_use, tally_usable_size(q));
        p = q;
        n = m;
    }
    assert_int_equal(get_stats(rt).bytes_reserved, base.bytes_reserved);
    tally_free(rt, p);
    assert_int_equal(get_stats(rt).bytes_in_use, 0);
    assert_int_equal(tally_heap_check(rt), 0);
    tally_close(rt);
}

int main(void)
{
    unsetenv("TALLY_DEBUG");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grow_through_many_sizes_os),
        cmocka_unit_test(test_grow_through_many_sizes_remap_backend),
        cmocka_unit_test(test_growth_by_a_page_stays_in_place),
        cmocka_unit_test(test_growth_that_must_move),
        cmocka_unit_test(test_shrink),
        cmocka_unit_test(test_backend_without_remap_copies),
        cmocka_unit_test(test_backend_remap_failing_copies),
        cmocka_unit_test(test_injected_failures_keep_block),
        cmocka_unit_test(test_injected_single_failure_falls_back),
        cmocka_unit_test(test_limit),
        cmocka_unit_test(test_huge_pages_by_default),
        cmocka_unit_test(test_huge_pages_off),
        cmocka_unit_test(test_fixed_heap_unaffected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
