/* sizes.c - bytes per element of Tally's containers, for the size table
 * (docs/sizes.md; bench/sizes.py runs this and the same structures in CPython).
 *
 * For each structure and each N given on the command line, a fresh runtime is
 * warmed up (the structure built once at a small size and released, so that the
 * types are registered and the small ints exist), the heap is settled (a full
 * collection also hands back the object free stacks, which the heap counts as in
 * use), and the structure is built by appending one element at a time, as the
 * Python code does.  The figure is the growth of the heap's bytes in use
 * (tally_heap_stats: usable bytes of live blocks, so class rounding is included),
 * every int and str made for it counted.  tally_deep_sizeof of the result is
 * printed too, as a cross-check: nothing is shared, so the two must agree.
 *
 * Output, one line per measurement:  <structure> <N> <bytes> <deep_sizeof bytes>
 * Structures whose type is not in the library yet are left out: sizes.py
 * defines SIZES_HAVE_<TYPE> for each type that libtally.a defines.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tally/tally.h>

typedef void *(*build_fn)(tally_rt *rt, size_t n);

typedef struct structure {
    const char *name;
    build_fn build;
} structure;

static void die(tally_rt *rt, const char *what)
{
    fprintf(stderr, "sizes: %s failed: %s\n", what, rt ? tally_last_error_message(rt) : "");
    exit(1);
}

static void *checked(tally_rt *rt, void *o, const char *what)
{
    if (o == NULL)
        die(rt, what);
    return o;
}

/* A list of n ints first, first + 1, ..., appended one at a time. */
static void *list_from(tally_rt *rt, size_t n, int64_t first)
{
    void *l = checked(rt, tally_list(rt, 0), "tally_list");
    for (size_t i = 0; i < n; i++) {
        void *x = checked(rt, tally_int(rt, first + (int64_t)i), "tally_int");
        if (tally_list_append(l, x) != 0)
            die(rt, "tally_list_append");
        tally_decref(x);
    }
    return l;
}

/* Values from 1000: every one a distinct int object. */
static void *build_list_big(tally_rt *rt, size_t n)
{
    return list_from(rt, n, 1000);
}

/* Values 0..n-1, Python's list(range(n)): the first 257 are cached ints. */
static void *build_list_range(tally_rt *rt, size_t n)
{
    return list_from(rt, n, 0);
}

/* The items array is the C library's, not the heap's: only the tuple and its
 * ints are measured. */
static void *build_tuple(tally_rt *rt, size_t n)
{
    void **items = calloc(n ? n : 1, sizeof *items);
    if (items == NULL)
        die(NULL, "malloc");
    for (size_t i = 0; i < n; i++)
        items[i] = checked(rt, tally_int(rt, 1000 + (int64_t)i), "tally_int");
    void *t = checked(rt, tally_tuple(rt, n, items), "tally_tuple");
    for (size_t i = 0; i < n; i++)
        tally_decref(items[i]);
    free(items);
    return t;
}

#ifdef SIZES_HAVE_DICT
/* {"k0": 0, "k1": 1, ...} */
static void *build_dict(tally_rt *rt, size_t n)
{
    void *d = checked(rt, tally_dict(rt), "tally_dict");
    for (size_t i = 0; i < n; i++) {
        void *k = checked(rt, tally_str_format(rt, "k%zu", i), "tally_str_format");
        void *v = checked(rt, tally_int(rt, (int64_t)i), "tally_int");
        if (tally_dict_set(d, k, v) != 0)
            die(rt, "tally_dict_set");
        tally_decref(k);
        tally_decref(v);
    }
    return d;
}
#endif

#ifdef SIZES_HAVE_SET
/* {1000, 1001, ...} */
static void *build_set(tally_rt *rt, size_t n)
{
    void *s = checked(rt, tally_set(rt), "tally_set");
    for (size_t i = 0; i < n; i++) {
        void *x = checked(rt, tally_int(rt, 1000 + (int64_t)i), "tally_int");
        if (tally_set_add(s, x) < 0)
            die(rt, "tally_set_add");
        tally_decref(x);
    }
    return s;
}
#endif

#ifdef SIZES_HAVE_ARRAY
/* array('i'), appended one item at a time. */
static void *build_array(tally_rt *rt, size_t n)
{
    void *a = checked(rt, tally_array(rt, TALLY_INT32, 0), "tally_array");
    for (size_t i = 0; i < n; i++)
        if (tally_array_append_i64(a, (int64_t)i) != 0)
            die(rt, "tally_array_append_i64");
    return a;
}
#endif

static const structure structures[] = {
    {"list_int", build_list_big},
    {"list_range", build_list_range},
#ifdef SIZES_HAVE_DICT
    {"dict_str_int", build_dict},
#endif
#ifdef SIZES_HAVE_SET
    {"set_int", build_set},
#endif
    {"tuple_int", build_tuple},
#ifdef SIZES_HAVE_ARRAY
    {"array_int32", build_array},
#endif
};

static size_t bytes_in_use(tally_rt *rt)
{
    struct tally_heap_stats st;
    if (tally_heap_stats(rt, &st) != 0)
        die(rt, "tally_heap_stats");
    return st.bytes_in_use;
}

/* Bytes in use once the collector has run and the free stacks are handed back. */
static size_t settled(tally_rt *rt)
{
    tally_gc_collect(rt, 2);
    return bytes_in_use(rt);
}

static void measure(const structure *s, size_t n)
{
    tally_rt *rt = tally_open(NULL);
    if (rt == NULL)
        die(NULL, "tally_open");
    tally_decref(s->build(rt, 300)); /* warm-up: types, small ints */
    size_t before = settled(rt);
    void *o = s->build(rt, n);
    size_t bytes = bytes_in_use(rt) - before;
    size_t deep = tally_deep_sizeof(o);
    printf("%s %zu %zu %zu\n", s->name, n, bytes, deep);
    tally_decref(o);
    tally_close(rt);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s N...\n", argv[0]);
        return 2;
    }
    for (size_t i = 0; i < sizeof structures / sizeof structures[0]; i++)
        for (int a = 1; a < argc; a++)
            measure(&structures[i], strtoull(argv[a], NULL, 10));
    return 0;
}
