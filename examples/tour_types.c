/* tour_types.c - the tour's section on the built-in types' lazy iteration.
 *
 * 7. A pipeline range -> filter -> map over the first 10^8 ints, iterated to sum
 *    the squares of the odd ones.  Each stage asks the one before it for a single
 *    item at a time, so the heap never holds more than a few iterators and ints:
 *    its peak stays in kilobytes, where a list of the ints would take gigabytes.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <time.h>

#include <tally/tally.h>

#include "tour.h"

static int odd(void *item, void *arg)
{
    (void)arg;
    return tally_int_value(item) % 2 != 0;
}

static void *square(void *item, void *arg)
{
    (void)arg;
    int64_t v = tally_int_value(item);
    return tally_int(tally_runtime_of(item), v * v);
}

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The sum exceeds 64 bits (about 1.7e23): 128-bit arithmetic, printed in decimal. */
__extension__ typedef unsigned __int128 u128;

static void print_u128(u128 v)
{
    char digits[40];
    int n = 0;
    do {
        digits[n++] = (char)('0' + (int)(v % 10));
        v /= 10;
    } while (v != 0);
    while (n > 0)
        putchar(digits[--n]);
}

/* Runs the pipeline; returns 0, or -1 (with the runtime's error) if a stage failed. */
static int sum_odd_squares(tally_rt *rt, int64_t n, u128 *sum)
{
    void *numbers = tally_range(rt, 0, n, 1);
    void *odds = numbers ? tally_filter(rt, odd, NULL, numbers) : NULL;
    void *squares = odds ? tally_map(rt, square, NULL, odds) : NULL;
    *sum = 0;
    void *item;
    while (squares != NULL && (item = tally_next(squares)) != NULL) {
        *sum += (u128)tally_int_value(item);
        tally_decref(item);
    }
    int rc = squares != NULL && tally_last_error(rt) == TALLY_OK ? 0 : -1;
    /* Each stage holds its source: our references can go in any order. */
    tally_xdecref(numbers);
    tally_xdecref(odds);
    tally_xdecref(squares);
    return rc;
}

void tour_types(void)
{
    tour_section("7. lazy pipelines in constant memory");
    tally_rt *rt = tally_open(NULL);
    const int64_t n = 100000000;
    printf("sum of x*x for the odd x in range(10^8), via range -> filter -> map:\n");
    double t0 = seconds_now();
    u128 sum;
    int rc = sum_odd_squares(rt, n, &sum);
    double elapsed = seconds_now() - t0;
    if (rc != 0) {
        printf("  failed: %s\n", tally_last_error_message(rt));
        tally_close(rt);
        return;
    }
    u128 k = (u128)(n / 2); /* odd numbers below n; their squares sum to k(2k-1)(2k+1)/3 */
    printf("  result   ");
    print_u128(sum);
    printf(" (%s the closed form k(2k-1)(2k+1)/3)\n",
           sum == k * (2 * k - 1) * (2 * k + 1) / 3 ? "matches" : "DIFFERS FROM");
    printf("  time     %.2f s for %lld items (%.1f ns each)\n", elapsed, (long long)n,
           elapsed * 1e9 / (double)n);
    struct tally_heap_stats s;
    tally_heap_stats(rt, &s);
    printf("  heap     peak %zu bytes in use (%.1f KiB), %zu now; a list of the 10^8 ints\n"
           "           would have needed over %zu MiB\n", s.bytes_in_use_peak,
           (double)s.bytes_in_use_peak / 1024.0, s.bytes_in_use,
           (size_t)(n * (16 + 8) / (1024 * 1024)));
    tally_close(rt);
}
