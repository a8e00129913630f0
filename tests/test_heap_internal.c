/* test_heap_internal.c - invariants of internal machinery that the public API
 * cannot observe directly: exact division by reciprocal for every offset of every
 * size class, the size-class table (alignment, growth, pools without unused
 * tails), the ownership map's answers at arena edges, and handles into a huge
 * block that the backend moved by remapping.  Built with the library's internal
 * headers (TALLY_BUILDING). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "heap/heap.h"
#include "runtime/runtime.h"

static void test_reciprocal_exact_for_every_offset(void **state)
{
    (void)state;
    tally_rt *rt = tally_open(NULL);
    assert_non_null(rt);
    tallyH_heap *h = &rt->heap;
    for (int c = 0; c < h->nclasses; c++) {
        uint32_t b = h->classes[c].bsize, inv = h->classes[c].inv;
        for (uint32_t off = 0; off < (uint32_t)TALLY_POOL_SIZE; off++) {
            if (tallyH_div(off, inv) != off / b)
                fail_msg("class %u: offset %u gives %u, not %u", b, off, tallyH_div(off, inv), off / b);
        }
    }
    tally_close(rt);
}

/* Division by reciprocal holds for every block size a build could have, not only
 * this build's classes: all multiples of 16 up to half the largest pool (64 KiB,
 * TALLY_POOL_SHIFT 16), at every offset inside such a pool. */
static void test_reciprocal_exact_for_every_size(void **state)
{
    (void)state;
    for (uint32_t b = 16; b <= 32768; b += 16) {
        uint32_t inv = tallyH_reciprocal(b);
        for (uint32_t off = 0; off < 65536; off++) {
            if (tallyH_div(off, inv) != off / b)
                fail_msg("block size %u, offset %u: division by reciprocal is wrong", b, off);
        }
    }
}

static void test_class_table(void **state)
{
    (void)state;
    tally_rt *rt = tally_open(NULL);
    tallyH_heap *h = &rt->heap;
    assert_true(h->nclasses > TALLY_SMALL_MAX / 16);
    assert_true(h->nclasses <= TALLY_MAX_CLASSES);
    for (int c = 0; c < h->nclasses; c++) {
        const tallyH_class *k = &h->classes[c];
        assert_int_equal(k->bsize % 16, 0);
        if (c < TALLY_SMALL_MAX / 16)
            assert_int_equal(k->bsize, 16u * (unsigned)(c + 1));
        else
            assert_true(k->bsize > h->classes[c - 1].bsize);
        assert_true(k->cap >= 2);
        assert_true(k->hdr % 16 == 0);
        assert_true((size_t)k->hdr + (size_t)k->cap * k->bsize <= TALLY_POOL_SIZE);
        if (c >= TALLY_SMALL_MAX / 16) /* pool-filling classes: tail under one step */
            assert_true(TALLY_POOL_SIZE - k->hdr - (size_t)k->cap * k->bsize < 16u * k->cap + 16);
    }
    /* Every request maps to the smallest class that holds it. */
    for (size_t n = 1; n <= h->class_max; n++) {
        int c = tallyH_class_index(h, n);
        assert_true(h->classes[c].bsize >= n);
        if (c > 0)
            assert_true(h->classes[c - 1].bsize < n);
    }
    tally_close(rt);
}

static void test_ownership_edges(void **state)
{
    (void)state;
    tally_rt *rt = tally_open(NULL);
    tallyH_heap *h = &rt->heap;
    void *p = tally_malloc(rt, 64);
    uintptr_t arena = TALLY_ALIGN_DOWN((uintptr_t)p, TALLY_ARENA_SIZE);
    assert_true(tallyH_owns(h, arena));
    assert_true(tallyH_owns(h, arena + TALLY_ARENA_SIZE - 1));
    assert_false(tallyH_owns(h, (uintptr_t)rt)); /* the runtime's own mapping is no arena */
    assert_false(tallyH_owns(h, 0));
    assert_false(tallyH_owns(h, UINTPTR_MAX));
    assert_false(tallyH_owns(h, (uintptr_t)&h)); /* the stack */
    tally_free(rt, p);
    tally_close(rt);
}

/* The OS backend's remap(), refusing to resize in place: every growth moves. */
static int (*os_remap)(void *, void *, size_t, size_t, void *);

static int remap_moving(void *ctx, void *old, size_t old_size, size_t new_size, void *target)
{
    return target == NULL ? -1 : os_remap(ctx, old, old_size, new_size, target);
}

/* A huge block moved by remapping keeps its handle slot, re-pointed: handles of
 * addresses in its first arena-size (stored inside it, as the layers above store
 * list links) name the same offsets of the moved block.  The old start is no
 * longer owned, the new one is, and the huge list holds the new header. */
static void test_handles_follow_a_moved_huge_block(void **state)
{
    (void)state;
    tally_rt *rt = tally_open(NULL);
    tallyH_heap *h = &rt->heap;
    if (h->backend.remap == NULL || h->on_valgrind) {
        tally_close(rt);
        skip(); /* huge blocks are copied there: handles into them do not follow */
    }
    os_remap = h->backend.remap;
    h->backend.remap = remap_moving;
    void *other = tally_malloc(rt, 2 * TALLY_ARENA_SIZE); /* a neighbour in the huge list */
    uint8_t *p = tally_malloc(rt, 2 * TALLY_ARENA_SIZE);
    assert_non_null(other);
    assert_non_null(p);
    size_t offs[] = {0, 256, TALLY_POOL_SIZE - TALLY_LARGE_HDR - 16}; /* tallyH_handle: first pool */
    uint32_t hs[3];
    for (int i = 0; i < 3; i++) {
        hs[i] = tallyH_handle(p + offs[i]);
        assert_ptr_equal(tallyH_at(h, hs[i]), p + offs[i]);
        memcpy(p + offs[i], &hs[i], sizeof hs[i]);
    }
    uint8_t *q = tally_realloc(rt, p, 5 * TALLY_ARENA_SIZE);
    assert_non_null(q);
    assert_ptr_not_equal(q, p);
    for (int i = 0; i < 3; i++) {
        uint32_t stored;
        memcpy(&stored, q + offs[i], sizeof stored);
        assert_int_equal(stored, hs[i]);
        assert_ptr_equal(tallyH_at(h, stored), q + offs[i]);
        assert_int_equal(tallyH_handle(q + offs[i]), hs[i]);
    }
    assert_true(tallyH_owns_any(h, (uintptr_t)q));
    assert_false(tallyH_owns_any(h, (uintptr_t)p));
    tallyH_pool *hp = tallyH_pool_of(q);
    assert_ptr_equal(h->huge, hp);
    assert_ptr_equal(hp->next, tallyH_pool_of(other));
    assert_ptr_equal(tallyH_pool_of(other)->prev, hp);
    tally_free(rt, other);
    assert_null(hp->next);
    tally_free(rt, q);
    assert_null(h->huge);
    h->backend.remap = os_remap;
    tally_close(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reciprocal_exact_for_every_offset),
        cmocka_unit_test(test_reciprocal_exact_for_every_size),
        cmocka_unit_test(test_class_table),
        cmocka_unit_test(test_ownership_edges),
        cmocka_unit_test(test_handles_follow_a_moved_huge_block),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
