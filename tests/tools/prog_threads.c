/* prog_threads.c - 8 threads each allocating 100 rounds of 1000 blocks from
 * thread_alloc; after each round every thread frees the blocks of its neighbour
 * (cross-thread frees).  Prints "COUNT BYTES": what thread_alloc allocated. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define THREADS 8
#define ROUNDS 100
#define PER 1000

static void *slots[THREADS][PER];
static pthread_barrier_t barrier;

__attribute__((noinline)) static void *thread_alloc(size_t n)
{
    void *p = malloc(n); /* THREAD_LINE */
    if (p == NULL)
        abort();
    memset(p, 1, n < 16 ? n : 16);
    return p;
}

static size_t size_of(long t, long k, long r)
{
    return 16 + (size_t)((t * 31 + k * 7 + r) % 200);
}

static void *worker(void *arg)
{
    long t = (long)arg;
    for (long r = 0; r < ROUNDS; r++) {
        for (long k = 0; k < PER; k++)
            slots[t][k] = thread_alloc(size_of(t, k, r));
        pthread_barrier_wait(&barrier);
        for (long k = 0; k < PER; k++)
            free(slots[(t + 1) % THREADS][k]);
        pthread_barrier_wait(&barrier);
    }
    return NULL;
}

int main(void)
{
    pthread_t th[THREADS];
    pthread_barrier_init(&barrier, NULL, THREADS);
    for (long t = 0; t < THREADS; t++)
        pthread_create(&th[t], NULL, worker, (void *)t);
    for (long t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    pthread_barrier_destroy(&barrier);
    unsigned long long count = 0, bytes = 0;
    for (long t = 0; t < THREADS; t++)
        for (long r = 0; r < ROUNDS; r++)
            for (long k = 0; k < PER; k++) {
                count++;
                bytes += size_of(t, k, r);
            }
    char buf[64];
    int n = snprintf(buf, sizeof buf, "%llu %llu\n", count, bytes);
    return write(1, buf, (size_t)n) == n ? 0 : 1;
}
