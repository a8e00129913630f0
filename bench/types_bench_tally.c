/* types_bench_tally.c - Tally's side of the built-in types benchmark
 * (types_bench.h lists the tests; run_types.py runs both sides). */
#define _POSIX_C_SOURCE 200809L
#include <tally/tally.h>

#include "types_bench.h"

#define SIDE "tally"

static tally_rt *rt;

static void *check(void *o, const char *what)
{
    if (o == NULL) {
        fprintf(stderr, "types_bench(tally): %s: %s\n", what, tally_last_error_message(rt));
        exit(2);
    }
    return o;
}

/* N distinct str keys, made before the clock starts. */
static void **make_keys(long n)
{
    void **keys = check(malloc((size_t)n * sizeof *keys), "malloc");
    char buf[32];
    for (long i = 0; i < n; i++) {
        tb_key(buf, sizeof buf, i);
        keys[i] = check(tally_str(rt, buf), "tally_str");
    }
    return keys;
}

static void release_keys(void **keys, long n)
{
    for (long i = 0; i < n; i++)
        tally_decref(keys[i]);
    free(keys);
}

/* Makes the shared small ints (made on first request in Tally; CPython makes
 * its own at start-up), so that neither side's clock counts their creation. */
static void warm_small_ints(void)
{
    for (int64_t i = 0; i < 256; i++)
        tally_decref(check(tally_int(rt, i), "tally_int"));
}

static void test_append(long n)
{
    warm_small_ints();
    void *l = check(tally_list(rt, 0), "tally_list");
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        /* A new reference, as PyLong_FromLong's: the list takes its own, so this one
         * is released (the small ints are immortal, so that writes nothing). */
        void *v = check(tally_int(rt, i & 255), "tally_int");
        if (tally_list_append(l, v) != 0)
            check(NULL, "append");
        tally_decref(v);
    }
    double t1 = bench_now_ns();
    tb_report(SIDE, "append", n, n, t1 - t0, (long long)tally_list_size(l));
    tally_decref(l);
}

static void *fill_dict(void **keys, long n, double *ns)
{
    void *d = check(tally_dict(rt), "tally_dict");
    void *one = check(tally_int(rt, 1), "tally_int");
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++)
        if (tally_dict_set(d, keys[i], one) != 0)
            check(NULL, "dict_set");
    *ns = bench_now_ns() - t0;
    return d;
}

static void test_dictset(long n)
{
    void **keys = make_keys(n);
    double ns;
    void *d = fill_dict(keys, n, &ns);
    tb_report(SIDE, "dictset", n, n, ns, (long long)tally_dict_size(d));
    tally_decref(d);
    release_keys(keys, n);
}

static void test_dictget(long n)
{
    void **keys = make_keys(n);
    double ns;
    void *d = fill_dict(keys, n, &ns);
    long long hits = 0;
    bench_rng r = {0x5EEDull};
    double t0 = bench_now_ns();
    for (long i = 0; i < 4 * n; i++)
        hits += tally_dict_get(d, keys[bench_rng_next(&r) % (uint64_t)n]) != NULL;
    double t1 = bench_now_ns();
    tb_report(SIDE, "dictget", n, 4 * n, t1 - t0, hits);
    tally_decref(d);
    release_keys(keys, n);
}

static void test_intern(long n)
{
    void **out = check(malloc((size_t)n * sizeof *out), "malloc");
    char *texts = tb_texts(n);
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++)
        out[i] = check(tally_str_intern_c(rt, texts + (size_t)i * TB_TEXT_STRIDE), "intern");
    double t1 = bench_now_ns();
    free(texts);
    long long distinct = 0;
    for (long i = 0; i < n; i++)
        distinct += i == 0 || out[i] != out[i - 1];
    tb_report(SIDE, "intern", n, n, t1 - t0, distinct);
    for (long i = 0; i < n; i++)
        tally_decref(out[i]);
    free(out);
}

static void test_iterate(long n)
{
    void *l = check(tally_list(rt, (size_t)n), "tally_list");
    for (long i = 0; i < n; i++)
        if (tally_list_append(l, check(tally_int(rt, i & 255), "tally_int")) != 0)
            check(NULL, "append");
    long long sum = 0;
    double t0 = bench_now_ns();
    void *it = check(tally_iter(l), "tally_iter");
    for (void *x; (x = tally_next(it)) != NULL; tally_decref(x))
        sum += tally_int_value(x);
    double t1 = bench_now_ns();
    tally_decref(it);
    tb_report(SIDE, "iterate", n, n, t1 - t0, sum);
    tally_decref(l);
}

int main(int argc, char **argv)
{
    long n;
    const char *test = tb_args(argc, argv, &n);
    rt = tally_open(NULL);
    if (rt == NULL)
        return 2;
    if (strcmp(test, "append") == 0)
        test_append(n);
    else if (strcmp(test, "dictset") == 0)
        test_dictset(n);
    else if (strcmp(test, "dictget") == 0)
        test_dictget(n);
    else if (strcmp(test, "intern") == 0)
        test_intern(n);
    else
        test_iterate(n);
    tally_close(rt);
    return 0;
}
