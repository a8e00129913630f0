/* tour.c - a guided tour of Tally's heap: `make demo` runs it.
 *
 * 1. A hosted runtime: allocate a realistic mix, look at the statistics, free most
 *    of it, look at fragmentation, trim.
 * 2. A runtime in a fixed 256 KiB buffer, as on a device: fill it until it is
 *    exhausted, read the error, see the pool map, free, allocate again.
 * 3. Debug mode catching a buffer overrun, a double free, a write after free and
 *    a foreign pointer, each reported with its address and size, without harm.
 * Then objects and the collector (tour_objects.c), and lazy pipelines in constant
 * memory (tour_types.c).
 */
#include <stdio.h>
#include <string.h>

#include <tally/tally.h>

#include "tour.h"

void tour_section(const char *title)
{
    printf("\n==== %s ====\n", title);
}

void tour_summary(tally_rt *rt, const char *when)
{
    struct tally_heap_stats s;
    tally_heap_stats(rt, &s);
    printf("%-26s %9zu B in %6zu blocks | reserved %9zu B, committed %9zu B | "
           "fragmentation %4.1f%%\n", when, s.bytes_in_use, s.blocks_in_use, s.bytes_reserved,
           s.bytes_committed, 100.0 * s.fragmentation);
}

/* A deterministic mix of sizes: mostly small, some medium, a few large. */
static size_t mix_size(unsigned i)
{
    unsigned r = (i * 2654435761u) >> 7;
    if (r % 100 < 85)
        return 16 + r % 240;
    if (r % 100 < 98)
        return 512 + r % 3000;
    return 20000 + r % 100000;
}

static void hosted_tour(void)
{
    tour_section("1. hosted runtime");
    tally_rt *rt = tally_open(NULL);
    enum { N = 12000 };
    static void *blocks[N];
    for (unsigned i = 0; i < N; i++) {
        blocks[i] = tally_malloc(rt, mix_size(i));
        memset(blocks[i], (int)i, mix_size(i));
    }
    tour_summary(rt, "after 12,000 allocations:");
    for (unsigned i = 0; i < N; i++)
        if (i % 10 != 0) {
            tally_free(rt, blocks[i]);
            blocks[i] = NULL;
        }
    tour_summary(rt, "after freeing 90%:");
    size_t released = tally_heap_trim(rt);
    tour_summary(rt, "after tally_heap_trim:");
    printf("trim gave %zu bytes back to the OS\n\n", released);
    tally_heap_dump(rt, stdout);
    for (unsigned i = 0; i < N; i++)
        tally_free(rt, blocks[i]); /* NULL is ignored */
    tally_close(rt);
}

static void fixed_tour(void)
{
    tour_section("2. a runtime in a fixed 256 KiB buffer");
    static _Alignas(64) unsigned char buffer[256 * 1024];
    tally_config cfg;
    tally_config_init(&cfg);
    cfg.memory = buffer;
    cfg.memory_size = sizeof buffer;
    tally_rt *rt = tally_open(&cfg);
    if (rt == NULL) {
        printf("this build's pools are too large for a 256 KiB buffer\n");
        return;
    }
    void *blocks[4096];
    unsigned n = 0;
    while (n < 4096 && (blocks[n] = tally_malloc(rt, 24 + (n % 7) * 40)) != NULL)
        n++;
    printf("allocated %u blocks, then: %s\n  (\"%s\")\n", n,
           tally_strerror(tally_last_error(rt)), tally_last_error_message(rt));
    for (unsigned i = 0; i < n; i += 2)
        tally_free(rt, blocks[i]);
    printf("freed every other block; the heap is intact (tally_heap_check: %ld problems)\n\n",
           tally_heap_check(rt));
    tally_heap_dump(rt, stdout);
    for (unsigned i = 1; i < n; i += 2)
        tally_free(rt, blocks[i]);
    tour_summary(rt, "after freeing everything:");
    tally_close(rt);
}

static void report(void *arg, const char *message)
{
    (void)arg;
    printf("  caught: %s\n", message);
}

static void debug_tour(void)
{
    tour_section("3. debug mode (like PYTHONMALLOC=debug)");
    tally_config cfg;
    tally_config_init(&cfg);
    cfg.debug = TALLY_DEBUG_GUARDS;
    cfg.report = report;
    tally_rt *rt = tally_open(&cfg);
    tally_rt *other = tally_open(NULL);

    char *name = tally_malloc(rt, 8);
    printf("writing 9 bytes into an 8-byte block, then freeing it:\n");
    memcpy(name, "overflow", 9);
    tally_free(rt, name);

    char *p = tally_malloc(rt, 32);
    printf("freeing a block twice:\n");
    tally_free(rt, p);
    tally_free(rt, p);

    char *q = tally_malloc(rt, 64);
    tally_free(rt, q);
    printf("writing through a dangling pointer, then checking the heap\n"
           "(the damaged block above is kept untouched for inspection, so it shows again):\n");
    q[10] = 'x';
    tally_heap_check(rt);

    void *theirs = tally_malloc(other, 16);
    printf("freeing another runtime's block:\n");
    tally_free(rt, theirs);
    tally_free(other, theirs);

    struct tally_heap_stats s;
    tally_heap_stats(rt, &s);
    printf("errors detected: %llu; the runtime keeps working: ", s.errors_detected);
    void *ok = tally_malloc(rt, 100);
    printf("%s\n", ok ? "a new block was allocated" : "allocation failed");
    tally_free(rt, ok);
    tally_close(other);
    tally_close(rt);
}

int main(void)
{
    printf("Tally %s: a tour of the private heap, objects and the collector\n", tally_version());
    hosted_tour();
    fixed_tour();
    debug_tour();
    tour_objects();
    tour_types();
    return 0;
}
