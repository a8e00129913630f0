/* test_heap_internal.c - invariants of internal machinery that the public API
 * cannot observe directly: exact division by reciprocal for every offset of every
 * size class, the size-class table (alignment, growth, pools without unused
 * tails), and the ownership map's answers at arena edges.  Built with the
 * library's internal headers (TALLY_BUILDING). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reciprocal_exact_for_every_offset),
        cmocka_unit_test(test_reciprocal_exact_for_every_size),
        cmocka_unit_test(test_class_table),
        cmocka_unit_test(test_ownership_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
