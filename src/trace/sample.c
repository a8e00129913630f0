/* sample.c - Poisson sampling by bytes for the tracer, and the weights that scale
 * the sampled traces back to estimates of the whole.
 *
 * Sample points fall on the stream of allocated bytes as a Poisson process of mean
 * spacing R (the sampling mean): the runtime counts down an exponentially
 * distributed number of bytes, and an allocation of n bytes that reaches the end
 * of the count (n >= countdown) is recorded, after which a fresh count is drawn;
 * the others take n off the count.  The countdown is the exponential draw E rounded
 * up, so "n < countdown" is exactly "n < E" for whole n: an allocation of n bytes
 * escapes with probability exp(-n/R), and, the exponential law being memoryless,
 * independently of what came before.  It is therefore recorded with probability
 * p(n) = 1 - exp(-n/R) and stands for 1/p(n) blocks and n/p(n) bytes
 * (Horvitz-Thompson: unbiased).  Blocks of R bytes or more are always recorded and
 * stand for themselves (p = 1): they are few, and their figures stay exact; they
 * leave the countdown alone, so the others still see the same process.
 *
 * Because n < R whenever a weight is computed, x = n/R lies in [0, 1), where the
 * Taylor series of 1 - exp(-x) converges fast and without cancellation (the core
 * library links libc alone: no libm).  The draw needs -log(u) for u uniform in
 * (0, 1]: u is split into 2^e * m with m in [sqrt(1/2), sqrt(2)), and log m
 * comes from the series of 2 atanh((m - 1) / (m + 1)).
 *
 * The generator is splitmix64 (any 64-bit state is valid), one per runtime: no
 * global state.  Its seed is the clock and the runtime's address, or what
 * tally_trace_seed gave, for reproducible runs.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "trace/trace.h"

#include <string.h>
#include <time.h>

static uint64_t next_random(tallyM_state *s)
{
    uint64_t z = (s->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A uniform double in (0, 1]: 53 random bits, plus one. */
static double uniform(tallyM_state *s)
{
    return (double)((next_random(s) >> 11) + 1) * 0x1p-53;
}

/* log(u) for u in (0, 1], without libm (see the top). */
static double log_unit(double u)
{
    uint64_t bits;
    memcpy(&bits, &u, sizeof bits);
    int e = (int)((bits >> 52) & 0x7ff) - 1023; /* u is normal: u >= 2^-53 */
    bits = (bits & 0x000fffffffffffffull) | 0x3ff0000000000000ull;
    double m;
    memcpy(&m, &bits, sizeof m); /* u = 2^e * m, m in [1, 2) */
    if (m > 1.4142135623730951) {
        m /= 2;
        e++;
    }
    double t = (m - 1) / (m + 1), t2 = t * t, term = t, sum = 0; /* |t| < 0.172 */
    for (int k = 1; k < 40; k += 2) {
        sum += term / k;
        term *= t2;
    }
    return 2 * sum + e * 0.6931471805599453;
}

/* 1 - exp(-x) for x in [0, 1): x - x^2/2! + x^3/3! - ..., 20 terms (error below
 * 1/21!, relative error below 1e-16 even for tiny x). */
static double one_minus_exp_neg(double x)
{
    double term = x, sum = 0;
    for (int k = 1; k <= 20; k++) {
        sum += term;
        term *= -x / (k + 1);
    }
    return sum;
}

void tallyM_sample_seed(tallyM_state *s, uint64_t seed)
{
    s->rng = seed;
    s->seeded = true;
}

void tallyM_sample_draw(tallyM_state *s)
{
    if (!s->seeded) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        tallyM_sample_seed(s, (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 30 ^
                                  (uint64_t)(uintptr_t)s);
    }
    double e = -log_unit(uniform(s)) * (double)s->sample; /* at most 37 R < 2^38 R */
    uint64_t c = (uint64_t)e;
    if ((double)c < e) /* rounded up: see the top */
        c++;
    s->countdown = c ? c : 1;
}

size_t tallyM_sample_bytes(size_t n, uint64_t mean)
{
    if (mean == 0 || n >= mean)
        return n;
    if (n == 0)
        return 0;
    return (size_t)((double)n / one_minus_exp_neg((double)n / (double)mean) + 0.5);
}

uint64_t tallyM_sample_blocks(size_t n, uint64_t mean)
{
    if (mean == 0 || n >= mean)
        return TALLY_SAMPLE_UNIT;
    if (n == 0)
        return TALLY_SAMPLE_UNIT;
    return (uint64_t)(TALLY_SAMPLE_UNIT / one_minus_exp_neg((double)n / (double)mean) + 0.5);
}
