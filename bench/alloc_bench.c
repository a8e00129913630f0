/* alloc_bench.c - one allocator benchmark driver, compiled once per allocator.
 *
 * The same source is built five times (see bench/CMakeLists.txt); a macro picks
 * the allocator under test at compile time:
 *
 *   BENCH_ALLOC_GLIBC     malloc/free from glibc
 *   BENCH_ALLOC_MIMALLOC  mi_malloc/mi_free from <mimalloc.h>
 *   BENCH_ALLOC_JEMALLOC  malloc/free, binary linked with -ljemalloc (it replaces malloc)
 *   BENCH_ALLOC_TCMALLOC  malloc/free, binary linked with -ltcmalloc_minimal
 *   BENCH_ALLOC_TALLY     tally_malloc/tally_free on one runtime from tally_open(NULL)
 *
 * Usage: alloc_bench a|b|c [scale]   (scale defaults to 1; the runner uses 0.1 for
 * --quick).  One test runs per process, so every measurement starts from a fresh
 * heap, and the process prints one line of key=value pairs on stdout, e.g.
 *
 *   alloc=mimalloc test=a scale=1 ops=10000000 ns_per_op=7.91 peak_rss_kb=3456 ...
 *
 * The tests (single thread):
 *   a  10^7 malloc+free pairs of 32 bytes.  ns_per_op: per pair.
 *   b  a live set of 10^6 blocks of uniformly random sizes 16..512 bytes, then
 *      2*10^7 replacements (free a random live block, allocate a new random size in
 *      its slot).  ns_per_op: per replacement (free + malloc); the initial fill and
 *      the final release are timed separately and reported as extra fields.
 *   c  build top-down (recursively) a binary tree of depth 20 (root at depth 0, so
 *      2^21 - 1 nodes of 24 bytes: two child pointers and a long payload), walk it
 *      for a checksum, free it post-order.  ns_per_op: per node, build + free
 *      (the walk is reported separately as walk_ns_per_node).
 * scale multiplies the operation counts of a and b (and b's live set); for c the
 * depth becomes 20 + floor(log2(scale)).
 *
 * Fairness: every allocator sees identical request sequences (a fixed-seed
 * splitmix64 generator, one draw per operation, nothing pre-generated); b's
 * pointer array comes from mmap, not from the allocator under test, and is the
 * same 8 MB for everyone.  Each block gets its first and last byte written, so the
 * pages it spans are really resident; the data is read back into a checksum that
 * is printed (identical for all allocators, the runner checks), and each fresh
 * pointer goes through an empty asm statement, so the compiler cannot elide a
 * malloc/free pair (the build also passes -fno-builtin-malloc/-free).
 *
 * Peak RSS is VmHWM from /proc/self/status (ru_maxrss as a fallback), read at the
 * end: it covers the whole process (binary, libraries, b's pointer array), which
 * is the same baseline for every allocator.  Times come from CLOCK_MONOTONIC.
 */
#define _GNU_SOURCE 1

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>

#include "bench_util.h"

/* ---- allocator selection ---------------------------------------------------- */
/* BENCH_CTX is the handle each test passes down: the runtime for tally, an unused
 * dummy for the others (so no allocator pays for a global load the others skip). */
#if defined(BENCH_ALLOC_TALLY)
#include "tally/tally.h"
#define BENCH_NAME "tally"
typedef tally_rt *bench_ctx;
#define BENCH_MALLOC(ctx, n) tally_malloc((ctx), (n))
#define BENCH_FREE(ctx, p) tally_free((ctx), (p))
#elif defined(BENCH_ALLOC_MIMALLOC)
#include <mimalloc.h>
#define BENCH_NAME "mimalloc"
typedef void *bench_ctx;
#define BENCH_MALLOC(ctx, n) ((void)(ctx), mi_malloc(n))
#define BENCH_FREE(ctx, p) ((void)(ctx), mi_free(p))
#elif defined(BENCH_ALLOC_GLIBC) || defined(BENCH_ALLOC_JEMALLOC) || defined(BENCH_ALLOC_TCMALLOC)
#if defined(BENCH_ALLOC_GLIBC)
#define BENCH_NAME "glibc"
#elif defined(BENCH_ALLOC_JEMALLOC)
#define BENCH_NAME "jemalloc"
#else
#define BENCH_NAME "tcmalloc"
#endif
typedef void *bench_ctx;
#define BENCH_MALLOC(ctx, n) ((void)(ctx), malloc(n))
#define BENCH_FREE(ctx, p) ((void)(ctx), free(p))
#else
#error "define one of BENCH_ALLOC_GLIBC, _MIMALLOC, _JEMALLOC, _TCMALLOC, _TALLY"
#endif

/* ---- helpers ------------------------------------------------------------------ */

/* Maps a 32-bit random value to [0, n) by multiply-shift (no division). */
static inline uint64_t rng_below(uint32_t r32, uint64_t n)
{
    return ((uint64_t)r32 * n) >> 32;
}


static long peak_rss_kb(void)
{
    long v = bench_status_kb("VmHWM");
    if (v < 0) {
        struct rusage ru;
        if (getrusage(RUSAGE_SELF, &ru) == 0)
            v = ru.ru_maxrss; /* kilobytes on Linux */
    }
    return v;
}

static void die(const char *what)
{
    fprintf(stderr, "alloc_bench(%s): %s\n", BENCH_NAME, what);
    exit(2);
}

/* Which shared object the process's global `malloc` symbol resolves to: proves
 * that -ljemalloc / -ltcmalloc_minimal really replaced glibc's malloc. */
static const char *malloc_origin(void)
{
    Dl_info info;
    void *sym = dlsym(RTLD_DEFAULT, "malloc");
    if (sym && dladdr(sym, &info) && info.dli_fname && info.dli_fname[0])
        return info.dli_fname;
    return "unknown";
}

/* ---- test a: malloc+free pairs ------------------------------------------------ */

static void test_a(bench_ctx ctx, double scale)
{
    const uint64_t ops = (uint64_t)(1e7 * scale);
    uint64_t sum = 0;
    double t0, t1;

    t0 = bench_now_ns();
    for (uint64_t i = 0; i < ops; i++) {
        unsigned char *p = BENCH_MALLOC(ctx, 32);
        if (!p)
            die("out of memory");
        p[0] = (unsigned char)i;
        p[31] = (unsigned char)(i >> 8);
        p = bench_launder(p);
        sum += (uint64_t)p[0] + p[31];
        BENCH_FREE(ctx, p);
    }
    t1 = bench_now_ns();

    printf("alloc=%s test=a scale=%g ops=%llu ns_per_op=%.3f total_ms=%.1f "
           "peak_rss_kb=%ld checksum=%llu malloc_from=%s\n",
           BENCH_NAME, scale, (unsigned long long)ops, (t1 - t0) / (double)ops,
           (t1 - t0) / 1e6, peak_rss_kb(), (unsigned long long)sum, malloc_origin());
}

/* ---- test b: random replacement in a large live set ----------------------------- */

/* One draw gives a block size in [16, 512] (low half) and a tag byte. */
static inline size_t b_size(uint64_t r)
{
    return 16 + (size_t)rng_below((uint32_t)r, 512 - 16 + 1);
}

static inline unsigned char *b_new_block(bench_ctx ctx, uint64_t r)
{
    size_t n = b_size(r);
    unsigned char tag = (unsigned char)(r >> 40);
    unsigned char *p = BENCH_MALLOC(ctx, n);
    if (!p)
        die("out of memory");
    p[0] = tag;
    p[n - 1] = tag;
    return bench_launder(p);
}

static void test_b(bench_ctx ctx, double scale)
{
    const uint64_t live = (uint64_t)(1e6 * scale);
    const uint64_t ops = (uint64_t)(2e7 * scale);
    bench_rng r = {0x7A11B0B5EEDull};
    uint64_t sum = 0;
    double t0, t1, t2, t3;
    unsigned char **slot;
    long peak;

    if (live == 0)
        die("scale too small");
    /* The pointer array: outside the allocator under test, same for everyone. */
    slot = mmap(NULL, live * sizeof *slot, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (slot == MAP_FAILED)
        die("mmap of the pointer array failed");

    t0 = bench_now_ns();
    for (uint64_t i = 0; i < live; i++)
        slot[i] = b_new_block(ctx, bench_rng_next(&r));
    t1 = bench_now_ns();
    for (uint64_t i = 0; i < ops; i++) {
        uint64_t x = bench_rng_next(&r);
        uint64_t k = rng_below((uint32_t)(x >> 32), live);
        sum += slot[k][0];
        BENCH_FREE(ctx, slot[k]);
        slot[k] = b_new_block(ctx, x);
    }
    t2 = bench_now_ns();
    peak = peak_rss_kb();
    for (uint64_t i = 0; i < live; i++) {
        sum += slot[i][0];
        BENCH_FREE(ctx, slot[i]);
    }
    t3 = bench_now_ns();

    printf("alloc=%s test=b scale=%g ops=%llu ns_per_op=%.3f total_ms=%.1f "
           "peak_rss_kb=%ld live=%llu fill_ns_per_block=%.3f free_ns_per_block=%.3f "
           "rss_after_free_kb=%ld checksum=%llu malloc_from=%s\n",
           BENCH_NAME, scale, (unsigned long long)ops, (t2 - t1) / (double)ops,
           (t2 - t1) / 1e6, peak, (unsigned long long)live,
           (t1 - t0) / (double)live, (t3 - t2) / (double)live,
           bench_status_kb("VmRSS"), (unsigned long long)sum, malloc_origin());
    munmap(slot, live * sizeof *slot);
}

/* ---- test c: binary tree --------------------------------------------------------- */

struct node {
    struct node *left;
    struct node *right;
    long payload;
}; /* 24 bytes on LP64 */

/* Top-down: the parent is allocated before its children.  Nodes are numbered in
 * heap order (root 1, children 2i and 2i+1). */
static struct node *tree_build(bench_ctx ctx, int depth, long id)
{
    struct node *n = BENCH_MALLOC(ctx, sizeof *n);
    if (!n)
        die("out of memory");
    n->payload = id;
    if (depth > 0) {
        n->left = tree_build(ctx, depth - 1, 2 * id);
        n->right = tree_build(ctx, depth - 1, 2 * id + 1);
    } else {
        n->left = n->right = NULL;
    }
    return n;
}

static uint64_t tree_walk(const struct node *n)
{
    uint64_t s = 0;
    while (n) { /* recurse left, iterate right */
        s += (uint64_t)n->payload;
        s += tree_walk(n->left);
        n = n->right;
    }
    return s;
}

static void tree_free(bench_ctx ctx, struct node *n)
{
    if (!n)
        return;
    tree_free(ctx, n->left);
    tree_free(ctx, n->right);
    BENCH_FREE(ctx, n);
}

static void test_c(bench_ctx ctx, double scale)
{
    int depth = 20;
    uint64_t nodes, sum;
    double t0, t1, t2, t3;
    struct node *root;

    for (double s = scale; s < 1.0 && depth > 1; s *= 2.0)
        depth--;
    for (double s = scale; s >= 2.0 && depth < 26; s /= 2.0)
        depth++;
    nodes = ((uint64_t)1 << (depth + 1)) - 1;

    t0 = bench_now_ns();
    root = tree_build(ctx, depth, 1);
    t1 = bench_now_ns();
    sum = tree_walk(root);
    t2 = bench_now_ns();
    tree_free(ctx, root);
    t3 = bench_now_ns();

    printf("alloc=%s test=c scale=%g ops=%llu ns_per_op=%.3f total_ms=%.1f "
           "peak_rss_kb=%ld depth=%d build_ns_per_node=%.3f walk_ns_per_node=%.3f "
           "free_ns_per_node=%.3f rss_after_free_kb=%ld checksum=%llu malloc_from=%s\n",
           BENCH_NAME, scale, (unsigned long long)nodes,
           ((t1 - t0) + (t3 - t2)) / (double)nodes, ((t1 - t0) + (t3 - t2)) / 1e6,
           peak_rss_kb(), depth, (t1 - t0) / (double)nodes, (t2 - t1) / (double)nodes,
           (t3 - t2) / (double)nodes, bench_status_kb("VmRSS"),
           (unsigned long long)sum, malloc_origin());
}

/* ---- main -------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    double scale = 1.0;
    bench_ctx ctx;
    char test;

    if (argc < 2 || argc > 3 || strlen(argv[1]) != 1 || argv[1][0] < 'a' ||
        argv[1][0] > 'c') {
        fprintf(stderr, "usage: %s a|b|c [scale]\n"
                        "  a: 1e7 malloc+free pairs of 32 bytes\n"
                        "  b: 1e6 live blocks of 16..512 bytes, 2e7 random replacements\n"
                        "  c: binary tree of depth 20 (24-byte nodes): build, walk, free\n"
                        "  scale multiplies the counts (c: depth += floor(log2(scale)))\n",
                argv[0]);
        return 2;
    }
    test = argv[1][0];
    if (argc == 3) {
        char *end;
        scale = strtod(argv[2], &end);
        if (*end != '\0' || !(scale > 0.0) || scale > 64.0)
            die("scale must be a number in (0, 64]");
    }

#if defined(BENCH_ALLOC_TALLY)
    ctx = tally_open(NULL);
    if (!ctx)
        die("tally_open failed");
#else
    ctx = NULL;
#endif

    switch (test) {
    case 'a': test_a(ctx, scale); break;
    case 'b': test_b(ctx, scale); break;
    default: test_c(ctx, scale); break;
    }

#if defined(BENCH_ALLOC_TALLY)
    tally_close(ctx);
#endif
    return fflush(stdout) == 0 ? 0 : 1;
}
