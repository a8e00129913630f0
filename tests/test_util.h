/* test_util.h - helpers shared by the Tally test programs (header-only, all static).
 *
 * - A report recorder: a tally_report_fn that counts misuse reports and keeps the
 *   last few messages, so that tests provoking misuse keep stderr clean and can
 *   assert on what was said (the block address as %p, the size).
 * - Scaling: test_quick() is true under TALLY_TEST_QUICK or Valgrind, and
 *   test_scale() shrinks loop counts accordingly.
 * - Deliberate corruption under sanitizers: Tally marks guard bytes and freed blocks
 *   inaccessible for ASan and Valgrind; the debug-mode tests must still be able to
 *   scribble there on purpose, so test_make_accessible() lifts that marking first.
 * - Small utilities: a deterministic PRNG, pattern fill/check, stats snapshots.
 */
#ifndef TALLY_TEST_UTIL_H
#define TALLY_TEST_UTIL_H

#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tally/tally.h"

#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#ifndef TEST_ASAN
#define TEST_ASAN 0
#endif

#if TEST_ASAN
#include <sanitizer/asan_interface.h>
#endif

#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define TEST_HAVE_VALGRIND 1
#endif
#endif
#ifndef TEST_HAVE_VALGRIND
#define TEST_HAVE_VALGRIND 0
#endif

#define KiB ((size_t)1024)
#define MiB ((size_t)1024 * 1024)

/* ---- environment ------------------------------------------------------------- */

static inline int test_on_valgrind(void)
{
#if TEST_HAVE_VALGRIND
    if (RUNNING_ON_VALGRIND)
        return 1;
#endif
    const char *pre = getenv("LD_PRELOAD");
    return pre != NULL && strstr(pre, "vgpreload") != NULL;
}

static inline int test_quick(void)
{
    const char *q = getenv("TALLY_TEST_QUICK");
    if (q != NULL && *q != '\0' && strcmp(q, "0") != 0)
        return 1;
    return test_on_valgrind();
}

/* n normally, n / div (at least 1) in quick mode. */
static inline size_t test_scale(size_t n, size_t div)
{
    if (!test_quick())
        return n;
    n /= div;
    return n ? n : 1;
}

/* Makes [p, p + n) writable and readable for the test, although Tally marked it
 * inaccessible (guards, freed blocks) or undefined (fresh blocks) for ASan and
 * Valgrind.  Used only right before a deliberate misuse. */
static inline void test_make_accessible(void *p, size_t n)
{
#if TEST_ASAN
    ASAN_UNPOISON_MEMORY_REGION(p, n);
#endif
#if TEST_HAVE_VALGRIND
    (void)VALGRIND_MAKE_MEM_DEFINED(p, n);
#endif
    (void)p;
    (void)n;
}

/* ---- aligned mappings for test backends ----------------------------------------------- */

#include <sys/mman.h>

/* size bytes aligned to align (a power of two), zero-filled, straight from mmap:
 * what a custom tally_backend is expected to provide.  (Not posix_memalign: glibc
 * places small and large requests in address ranges terabytes apart.) */
static inline void *test_map_aligned(size_t size, size_t align)
{
    if (align < 4096)
        align = 4096;
    size = (size + 4095) & ~(size_t)4095;
    size_t total = size + align;
    unsigned char *raw = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                              -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    uintptr_t start = (uintptr_t)raw;
    uintptr_t aligned = (start + align - 1) & ~(uintptr_t)(align - 1);
    if (aligned > start)
        munmap(raw, aligned - start);
    uintptr_t end = start + total;
    if (end > aligned + size)
        munmap((void *)(aligned + size), end - (aligned + size));
    return (void *)aligned;
}

static inline void test_unmap(void *addr, size_t size)
{
    munmap(addr, (size + 4095) & ~(size_t)4095);
}

/* ---- report recorder ----------------------------------------------------------- */

#define REC_KEEP 8
#define REC_MSG 512

typedef struct recorder {
    unsigned long count;
    char last[REC_MSG];
    char msgs[REC_KEEP][REC_MSG]; /* the first REC_KEEP messages since reset */
} recorder;

static inline void rec_report(void *arg, const char *message)
{
    recorder *r = arg;
    if (message == NULL)
        message = "(null)";
    snprintf(r->last, sizeof r->last, "%s", message);
    if (r->count < REC_KEEP)
        snprintf(r->msgs[r->count], sizeof r->msgs[0], "%s", message);
    r->count++;
}

static inline void rec_reset(recorder *r)
{
    memset(r, 0, sizeof *r);
}

/* Does any recorded message (or the last one) contain needle? */
static inline int rec_any_contains(const recorder *r, const char *needle)
{
    if (strstr(r->last, needle))
        return 1;
    unsigned long n = r->count < REC_KEEP ? r->count : REC_KEEP;
    for (unsigned long i = 0; i < n; i++)
        if (strstr(r->msgs[i], needle))
            return 1;
    return 0;
}

/* The address of p exactly as "%p" prints it. */
static inline void fmt_ptr(char *buf, size_t n, const void *p)
{
    snprintf(buf, n, "%p", p);
}

static inline int str_has_ptr(const char *s, const void *p)
{
    char buf[64];
    fmt_ptr(buf, sizeof buf, p);
    return strstr(s, buf) != NULL;
}

/* Does s contain the decimal number v as a whole word (not inside a longer run of
 * letters or digits, such as a hex address)? */
static inline int str_has_number(const char *s, size_t v)
{
    char num[32];
    snprintf(num, sizeof num, "%zu", v);
    size_t len = strlen(num);
    for (const char *q = strstr(s, num); q; q = strstr(q + 1, num)) {
        int before_ok = q == s || !isalnum((unsigned char)q[-1]);
        int after_ok = !isalnum((unsigned char)q[len]);
        if (before_ok && after_ok)
            return 1;
    }
    return 0;
}

static inline int str_contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] &&
               tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n)
            return 1;
    }
    return n == 0;
}

/* ---- geometry of this build ------------------------------------------------------------ */

/* Pool size (TALLY_POOL_SHIFT is a build option, 12..16) and the bytes a fresh
 * hosted runtime reserves for itself, read once from a probe runtime. */
static inline void test_probe(size_t *pool, size_t *overhead)
{
    static size_t ps, ov;
    if (ps == 0) {
        tally_rt *rt = tally_open(NULL);
        assert_non_null(rt);
        struct tally_heap_stats s;
        assert_int_equal(tally_heap_stats(rt, &s), 0);
        ps = s.pool_size;
        ov = s.bytes_reserved;
        tally_close(rt);
    }
    if (pool)
        *pool = ps;
    if (overhead)
        *overhead = ov;
}

static inline size_t test_pool_size(void)
{
    size_t ps;
    test_probe(&ps, NULL);
    return ps;
}

/* Hosted arenas hold 64 pools (1 MiB with the default 16 KiB pools). */
static inline size_t test_arena_size(void)
{
    return 64 * test_pool_size();
}

static inline size_t test_hosted_overhead(void)
{
    size_t ov;
    test_probe(NULL, &ov);
    return ov;
}

static inline size_t max_size(size_t a, size_t b)
{
    return a > b ? a : b;
}

/* ---- opening runtimes ------------------------------------------------------------ */

/* A hosted runtime reporting into rec (which may be NULL: discard). */
/* Opens a runtime from cfg with the given debug level; reports go to rec, or are
 * discarded when rec is NULL. */
static inline tally_rt *open_with(tally_config *cfg, recorder *rec, int debug)
{
    cfg->debug = debug;
    if (rec) {
        rec_reset(rec);
        cfg->report = rec_report;
        cfg->report_arg = rec;
    } else {
        cfg->report = tally_report_discard;
    }
    tally_rt *rt = tally_open(cfg);
    assert_non_null(rt);
    return rt;
}

static inline tally_rt *open_hosted(recorder *rec, int debug)
{
    tally_config cfg;
    tally_config_init(&cfg);
    return open_with(&cfg, rec, debug);
}

static inline tally_rt *open_fixed(void *mem, size_t size, recorder *rec, int debug)
{
    tally_config cfg;
    tally_config_init(&cfg);
    cfg.memory = mem;
    cfg.memory_size = size;
    return open_with(&cfg, rec, debug);
}

static inline struct tally_heap_stats get_stats(tally_rt *rt)
{
    struct tally_heap_stats s;
    memset(&s, 0xa5, sizeof s);
    assert_int_equal(tally_heap_stats(rt, &s), 0);
    return s;
}

/* ---- patterns and randomness ----------------------------------------------------- */

static inline uint8_t pattern_byte(uint32_t seed, size_t i)
{
    return (uint8_t)(seed * 131u + (uint32_t)i * 7u + (uint32_t)(i >> 8) + 1u);
}

static inline void fill_pattern(void *p, size_t n, uint32_t seed)
{
    uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        b[i] = pattern_byte(seed, i);
}

/* Index of the first byte that differs from the pattern, or n if none. */
static inline size_t check_pattern(const void *p, size_t n, uint32_t seed)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != pattern_byte(seed, i))
            return i;
    return n;
}

static inline int all_bytes_are(const void *p, size_t n, uint8_t v)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != v)
            return 0;
    return 1;
}

typedef struct test_rng {
    uint64_t s;
} test_rng;

static inline uint64_t rng_next(test_rng *r)
{
    /* splitmix64 */
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline size_t rng_below(test_rng *r, size_t n)
{
    return n ? (size_t)(rng_next(r) % n) : 0;
}

static inline int is_aligned16(const void *p)
{
    return ((uintptr_t)p & (TALLY_ALIGNMENT - 1)) == 0;
}

#endif /* TALLY_TEST_UTIL_H */
