/* alloc_heavy.c - the allocation-heavy program of the profiler benchmark
 * (bench/preload/run.py): N mallocs (default 5*10^6) of 16-256 bytes, random sizes
 * from a fixed seed, through a ring of 10^5 live blocks (each allocation replaces
 * the oldest block), through three call paths of different depths; every 5000th
 * block is leaked.  Prints a checksum so that nothing is optimised away.
 *
 *   alloc_heavy [N]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RING 100000

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

__attribute__((noinline)) static void *alloc_leaf(size_t n)
{
    unsigned char *p = malloc(n);
    if (p == NULL)
        abort();
    p[0] = (unsigned char)n;
    return p;
}

__attribute__((noinline)) static void *alloc_mid(size_t n)
{
    return alloc_leaf(n);
}

__attribute__((noinline)) static void *alloc_deep(size_t n, int depth)
{
    return depth == 0 ? alloc_mid(n) : alloc_deep(n, depth - 1);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 5000000;
    static void *ring[RING];
    uint64_t sum = 0;
    long leaked = 0;
    for (long i = 0; i < n; i++) {
        size_t sz = 16 + (size_t)(next() % 241);
        void *p;
        switch (i % 3) {
        case 0: p = alloc_leaf(sz); break;
        case 1: p = alloc_mid(sz); break;
        default: p = alloc_deep(sz, (int)(i % 7)); break;
        }
        size_t k = (size_t)(i % RING);
        if (ring[k] != NULL) {
            sum += *(unsigned char *)ring[k];
            if (i % 5000 == 0)
                leaked++;       /* dropped without a free: a leak */
            else
                free(ring[k]);
        }
        ring[k] = p;
    }
    for (size_t k = 0; k < RING; k++)
        free(ring[k]);
    printf("%lu %ld\n", (unsigned long)sum, leaked);
    return 0;
}
