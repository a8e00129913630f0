/* sample.c - Poisson sampling by bytes (--sample BYTES), as tcmalloc and Go do.
 *
 * Sample points fall on the stream of allocated bytes as a Poisson process of mean
 * spacing S: each thread counts down an exponentially distributed number of bytes
 * (mean S), and the allocation during which the count runs out is recorded, after
 * which a fresh interval is drawn (the process is memoryless, so restarting at the
 * end of the sampled allocation is exact enough).  An allocation of s bytes is thus
 * recorded with probability 1 - exp(-s/S), and the reader weighs it by the inverse.
 *
 * Frees must be recorded only for sampled blocks, and the block may be freed by any
 * thread: sampled live pointers are kept in a global hash set under a mutex.  Most
 * frees are of unsampled blocks, so a lock-free filter comes first: an array of
 * counters indexed by a hash of the pointer, incremented on insertion and decremented
 * on removal (under the mutex, read without it).  A zero counter proves the pointer is
 * not in the set; the filter has 65536 counters, so with a few thousand sampled live
 * blocks almost every unsampled free costs one load.  A pointer is inserted before
 * the allocation returns to the program, so no thread can free it earlier.
 */
#define _GNU_SOURCE
#include "preload.h"

#include <math.h>
#include <sys/mman.h>
#include <time.h>

#define FILTER_BITS 16

static _Atomic uint32_t filter[1u << FILTER_BITS];

static struct {
    pthread_mutex_t lock;
    uintptr_t *slot;            /* open addressing, 0 = empty; cap entries, mmap'd */
    size_t cap, n;
} set = { .lock = PTHREAD_MUTEX_INITIALIZER };

static inline uint64_t ptr_hash(uintptr_t p)
{
    uint64_t h = (uint64_t)p * 0x9e3779b97f4a7c15u;
    return h ^ (h >> 29);
}

static inline size_t filter_index(uintptr_t p)
{
    return (size_t)(ptr_hash(p) >> (64 - FILTER_BITS));
}

/* A uniform double in (0, 1] from the thread's xorshift64* generator. */
static double uniform(struct tallyP_tls *tl)
{
    if (tl->rng == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        tl->rng = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)(uintptr_t)tl ^ 0x2545f4914f6cdd1du;
        if (tl->rng == 0)
            tl->rng = 1;
    }
    uint64_t x = tl->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    tl->rng = x;
    return (double)((x * 0x2545f4914f6cdd1du) >> 11 | 1) / 9007199254740992.0;
}

static uint64_t draw_interval(struct tallyP_tls *tl)
{
    double v = -log(uniform(tl)) * (double)tallyP_g.sample;
    if (v < 1.0)
        return 1;
    if (v > 9.0e18)
        return UINT64_MAX;
    return (uint64_t)v;
}

/* The countdown ran out (or was never drawn): decides for an allocation of n bytes. */
int tallyP_sample_slow(size_t n)
{
    struct tallyP_tls *tl = &tallyP_tls;
    if (tl->countdown == 0) {   /* the thread's first allocation */
        tl->countdown = draw_interval(tl);
        if (n < tl->countdown) {
            tl->countdown -= n;
            return 0;
        }
    }
    tl->countdown = draw_interval(tl);
    return 1;
}

static int set_grow(void)
{
    size_t ncap = set.cap ? set.cap * 2 : 4096;
    uintptr_t *ns = mmap(NULL, ncap * sizeof *ns, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ns == MAP_FAILED)
        return -1;
    for (size_t i = 0; i < set.cap; i++) {
        uintptr_t p = set.slot[i];
        if (p == 0)
            continue;
        size_t j = ptr_hash(p) & (ncap - 1);
        while (ns[j] != 0)
            j = (j + 1) & (ncap - 1);
        ns[j] = p;
    }
    if (set.slot != NULL)
        munmap(set.slot, set.cap * sizeof *set.slot);
    set.slot = ns;
    set.cap = ncap;
    return 0;
}

void tallyP_sample_insert(void *ptr)
{
    uintptr_t p = (uintptr_t)ptr;
    pthread_mutex_lock(&set.lock);
    if ((set.n + 1) * 2 > set.cap && set_grow() != 0) {
        pthread_mutex_unlock(&set.lock);
        return;     /* not remembered: its free will not be recorded */
    }
    size_t mask = set.cap - 1, i = ptr_hash(p) & mask;
    while (set.slot[i] != 0 && set.slot[i] != p)
        i = (i + 1) & mask;
    if (set.slot[i] == 0) {
        set.slot[i] = p;
        set.n++;
        atomic_fetch_add_explicit(&filter[filter_index(p)], 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&set.lock);
}

/* Removes ptr if it was sampled; returns whether it was. */
int tallyP_sample_remove(void *ptr)
{
    uintptr_t p = (uintptr_t)ptr;
    if (TALLYP_LIKELY(atomic_load_explicit(&filter[filter_index(p)], memory_order_relaxed) == 0))
        return 0;
    int found = 0;
    pthread_mutex_lock(&set.lock);
    if (set.cap != 0) {
        size_t mask = set.cap - 1, i = ptr_hash(p) & mask;
        for (; set.slot[i] != 0; i = (i + 1) & mask) {
            if (set.slot[i] == p)
                break;
        }
        if (set.slot[i] == p) {
            found = 1;
            set.n--;
            atomic_fetch_sub_explicit(&filter[filter_index(p)], 1, memory_order_relaxed);
            /* Backward-shift deletion keeps probe chains intact without tombstones. */
            size_t j = i;
            for (;;) {
                set.slot[i] = 0;
                for (;;) {
                    j = (j + 1) & mask;
                    if (set.slot[j] == 0)
                        goto done;
                    size_t k = ptr_hash(set.slot[j]) & mask;
                    /* Move slot j to i unless its home k lies cyclically in (i, j]. */
                    if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
                        continue;
                    break;
                }
                set.slot[i] = set.slot[j];
                i = j;
            }
        }
    }
done:
    pthread_mutex_unlock(&set.lock);
    return found;
}
