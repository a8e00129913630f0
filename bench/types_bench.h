/* types_bench.h - what the two sides of the built-in types benchmark share.
 *
 * types_bench_tally.c and types_bench_cpython.c run the same operations on
 * Tally's built-in types and on CPython's through its C API (run_types.py runs
 * them side by side).  Each driver is `types_bench_<side> TEST [N]` and prints one
 * line: `side=.. test=.. n=.. ns_per_op=.. check=..`; the check is a value both
 * sides must agree on (so that both did the same work).
 *
 *   append   N appends of small ints to one list                 (PyList_Append)
 *   dictset  N inserts of distinct str keys made beforehand      (PyDict_SetItem)
 *   dictget  4N lookups of those str keys, hits                  (PyDict_GetItem)
 *   intern   N C strings interned, each once                     (PyUnicode_InternFromString)
 *   iterate  iteration over a list of N items                    (PyObject_GetIter + PyIter_Next)
 */
#ifndef TALLY_TYPES_BENCH_H
#define TALLY_TYPES_BENCH_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"

#define TYPES_BENCH_N 1000000L

/* The test name and N from the command line; exits with a usage line if wrong. */
static inline const char *tb_args(int argc, char **argv, long *n)
{
    static const char *const tests[] = {"append", "dictset", "dictget", "intern", "iterate"};
    *n = argc > 2 ? atol(argv[2]) : TYPES_BENCH_N;
    if (argc > 1 && *n > 0)
        for (size_t i = 0; i < sizeof tests / sizeof *tests; i++)
            if (strcmp(argv[1], tests[i]) == 0)
                return tests[i];
    fprintf(stderr, "usage: %s append|dictset|dictget|intern|iterate [N]\n", argv[0]);
    exit(2);
}

/* The i-th key's text ("key:<i>"). */
static inline void tb_key(char *buf, size_t size, long i)
{
    snprintf(buf, size, "key:%ld", i);
}

/* The n texts tb_key makes, formatted before the clock starts (as the dict
 * tests make their keys), each at texts + i * TB_TEXT_STRIDE: what is timed is
 * the call, not snprintf. */
#define TB_TEXT_STRIDE 24
static inline char *tb_texts(long n)
{
    char *texts = malloc((size_t)n * TB_TEXT_STRIDE);
    if (texts == NULL)
        exit(2);
    for (long i = 0; i < n; i++)
        tb_key(texts + (size_t)i * TB_TEXT_STRIDE, TB_TEXT_STRIDE, i);
    return texts;
}

static inline void tb_report(const char *side, const char *test, long n, long ops, double ns,
                             long long check)
{
    printf("side=%s test=%s n=%ld ns_per_op=%.3f check=%lld\n", side, test, n, ns / (double)ops,
           check);
}

#endif /* TALLY_TYPES_BENCH_H */
