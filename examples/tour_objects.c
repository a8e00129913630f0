/* tour_objects.c - the tour's second half: objects, the cycle collector, finalizers
 * and weak references (`make demo` runs it after the heap tour).
 *
 * 4. Objects that free themselves by counting, with what each one costs.
 * 5. Reference cycles that counting never frees, found by the collector; a
 *    finalizer that resurrects its object; weak references and their callbacks.
 * 6. A device-sized fixed buffer filled with cyclic garbage: the allocation that
 *    finds the heap full runs a full collection and succeeds.
 */
#include <stdio.h>

#include <tally/tally.h>

#include "tour.h"

/* A binary tree node: two references and a payload. */
typedef struct node {
    struct node *left, *right;
    long value;
} node;

static void node_traverse(void *self, tally_visit_fn visit, void *arg)
{
    node *n = self;
    if (n->left)
        visit(n->left, arg);
    if (n->right)
        visit(n->right, arg);
}

static void node_clear(void *self)
{
    node *n = self;
    tally_setref(&n->left, NULL);
    tally_setref(&n->right, NULL);
}

static const tally_type node_type = {
    .name = "node",
    .size = sizeof(node),
    .flags = TALLY_TYPE_CONTAINER,
    .traverse = node_traverse,
    .clear = node_clear,
};

/* A node whose finalizer saves it once into a global (PEP 442's resurrection). */
static node *lifeboat;
static int finalized;

static void saved_finalize(void *self)
{
    finalized++;
    tally_setref(&lifeboat, self);
}

static const tally_type saved_type = {
    .name = "saved",
    .size = sizeof(node),
    .flags = TALLY_TYPE_CONTAINER,
    .traverse = node_traverse,
    .clear = node_clear,
    .finalize = saved_finalize,
};

static node *tree(tally_rt *rt, int depth)
{
    node *n = tally_new(rt, &node_type);
    if (n == NULL || depth == 0)
        return n;
    n->left = tree(rt, depth - 1);
    n->right = tree(rt, depth - 1);
    return n;
}

static void counting_tour(void)
{
    tour_section("4. objects free themselves when the last reference goes");
    tally_rt *rt = tally_open(NULL);
    printf("header per object: %zu bytes (plain), %zu bytes (container: + 2 list links);"
           " CPython: 16 and 32\n", tally_type_overhead(&(tally_type){.size = 8}),
           tally_type_overhead(&node_type));
    node *t = tree(rt, 16);
    tour_summary(rt, "a tree of 131071 nodes");
    tally_decref(t);
    tour_summary(rt, "after one tally_decref");
    {
        TALLY_AUTO node *scoped = tree(rt, 10);
        printf("TALLY_AUTO: a 2047-node tree lives until the end of its scope\n");
    }
    tour_summary(rt, "after the scope");
    tally_close(rt);
}

static void print_stats(tally_rt *rt)
{
    tally_gc_stats st[TALLY_GC_GENERATIONS];
    tally_gc_get_stats(rt, st);
    for (int g = 0; g < TALLY_GC_GENERATIONS; g++)
        printf("  generation %d: %llu collections, %llu unreachable found, longest %.3f ms\n", g,
               st[g].collections, st[g].collected, (double)st[g].max_ns / 1e6);
}

static void weak_callback(void *weakref, void *arg)
{
    (void)weakref;
    printf("weak reference callback: '%s' is gone\n", (const char *)arg);
}

static void cycles_tour(void)
{
    tour_section("5. cycles, the collector, finalizers, weak references");
    tally_rt *rt = tally_open(NULL);
    for (int i = 0; i < 100000; i++) { /* 100000 two-node cycles, dropped at once */
        node *a = tally_new(rt, &node_type), *b = tally_new(rt, &node_type);
        tally_setref(&a->left, b);
        tally_setref(&b->left, a);
        tally_decref(a);
        tally_decref(b);
    }
    long count[TALLY_GC_GENERATIONS];
    tally_gc_get_count(rt, count);
    printf("automatic collections ran while the cycles were made (threshold 700); "
           "count now %ld %ld %ld\n", count[0], count[1], count[2]);
    print_stats(rt);
    printf("tally_gc_collect(rt, 2) found %ld more\n", tally_gc_collect(rt, 2));

    node *a = tally_new(rt, &saved_type), *b = tally_new(rt, &node_type);
    tally_setref(&a->left, b);
    tally_setref(&b->left, a);
    void *wa = tally_weakref_new(rt, a, weak_callback, "a");
    void *wb = tally_weakref_new(rt, b, weak_callback, "b");
    tally_decref(a);
    tally_decref(b);
    long found = tally_gc_collect(rt, 2);
    printf("a cycle whose finalizer saves itself: %ld unreachable, finalizer ran %d time(s), "
           "resurrected: %s (its partner too: %s)\n", found, finalized, lifeboat ? "yes" : "no",
           lifeboat && lifeboat->left ? "yes" : "no");
    tally_setref(&lifeboat, NULL);
    printf("dropped again: %ld unreachable, finalizer ran %d time(s) (once ever)\n",
           tally_gc_collect(rt, 2), finalized);
    tally_decref(wa);
    tally_decref(wb);
    tally_close(rt);
}

static void exhaustion_tour(void)
{
    tour_section("6. a full fixed buffer: the collector runs before an allocation fails");
    static unsigned char buffer[192 * 1024];
    tally_config cfg;
    tally_config_init(&cfg);
    cfg.memory = buffer;
    cfg.memory_size = sizeof buffer;
    tally_rt *rt = tally_open(&cfg);
    tally_gc_set_threshold(rt, 0, 10, 10); /* no automatic collections: only exhaustion */
    long made = 0;
    for (;;) {
        node *a = tally_new(rt, &node_type);
        node *b = a ? tally_new(rt, &node_type) : NULL;
        if (b == NULL) {
            tally_xdecref(a);
            break;
        }
        tally_setref(&a->left, b);
        tally_setref(&b->left, a);
        tally_decref(a);
        tally_decref(b);
        if (++made == 20000)
            break;
    }
    tally_gc_stats st[TALLY_GC_GENERATIONS];
    tally_gc_get_stats(rt, st);
    printf("%ld cycles made in a %zu KiB buffer that holds about %zu at once: "
           "%llu full collections ran when it was full, no allocation failed\n", made,
           sizeof buffer / 1024, (sizeof buffer - tally_fixed_min()) / 96, st[2].collections);
    tally_close(rt);
}

void tour_objects(void)
{
    counting_tour();
    cycles_tour();
    exhaustion_tour();
}
