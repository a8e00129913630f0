/* bench_util.h - what every benchmark driver needs: a monotonic clock, resident
 * set readings, a fixed-seed generator, and a way to keep the compiler from
 * optimising an allocation away.  Header-only (static inline). */
#ifndef TALLY_BENCH_UTIL_H
#define TALLY_BENCH_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Hides where p came from: the compiler must keep the allocation (its result is
 * used by the asm), the stores made before (a later load through the laundered
 * pointer may read them) and the release (it gets a pointer it cannot trace). */
static inline void *bench_launder(void *p)
{
    __asm__ volatile("" : "+r"(p));
    return p;
}

/* splitmix64: a fixed-seed, fast, good-quality generator. */
typedef struct bench_rng {
    uint64_t s;
} bench_rng;

static inline uint64_t bench_rng_next(bench_rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Monotonic clock in nanoseconds. */
static inline double bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* One "Key:   N kB" line of /proc/self/status (VmRSS, VmHWM); -1 if unavailable. */
static inline long bench_status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t klen = strlen(key);
    long v = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            v = strtol(line + klen + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

#endif /* TALLY_BENCH_UTIL_H */
