/* gc_bench_cpython.c - CPython's side of the objects-and-collector benchmark.
 *
 * Embeds the CPython found by python3-config at build time (libpython, called
 * through the PLT like libtally.so on the other side) and builds the graphs of
 * gc_bench.h out of Python objects, through the C API only: no Python code runs
 * in the timed parts.  The shapes match gc_bench_tally.c one for one:
 *
 *   test 1-4   lists made with PyList_New / PyList_SET_ITEM: one-element lists
 *              holding None (1, 4a), each other (2, 3) or themselves (4)
 *   test 5     PyTuple_New(1) + Py_DECREF;  5n: PyFloat_FromDouble + Py_DECREF
 *   test 6     complex (16-byte payload, not tracked) and instances of a class
 *              with __slots__ = ('a', 'b') (16-byte payload, tracked)
 *
 * Collections are PyGC_Collect() (gc.collect(): the full collection); automatic
 * collection keeps CPython's defaults (700, 10, 10).  The interpreter starts
 * isolated (no site, no environment variables, so pymalloc and default GC
 * settings), then gc.freeze() moves the objects start-up made to the permanent
 * generation, which collections ignore: both sides then collect only the
 * benchmark's objects.  CPython has no pause statistics, so test 4 runs its
 * loop twice: once timed with nothing else attached, then once more with a
 * gc.callbacks entry (a C function) that times each collection from its
 * "start" to its "stop" call, for the collection counts and the longest pauses.
 * Test 6 reads heap bytes with tracemalloc in a pass of its own, after the
 * resident-set pass, so that tracemalloc's own tables do not inflate the RSS.
 * Usage and output: see gc_bench.h.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "gc_bench.h"

#include <stdio.h>
#include <string.h>

#define SIDE "cpython"

static PyObject *gc_module; /* the gc module (a new reference, kept) */

/* ---- helpers ---------------------------------------------------------------------- */

static void py_die(const char *what)
{
    if (PyErr_Occurred())
        PyErr_Print();
    gcb_die(SIDE, what);
}

static PyObject *check(PyObject *o, const char *what)
{
    if (!o)
        py_die(what);
    return o;
}

/* gc.<name>(), result released. */
static void gc_call(const char *name)
{
    Py_DECREF(check(PyObject_CallMethod(gc_module, name, NULL), name));
}

static void py_start(void)
{
    PyConfig config;
    PyStatus st;

    PyConfig_InitIsolatedConfig(&config);
    config.site_import = 0;
    config.install_signal_handlers = 0;
#ifdef BENCH_PYTHON_HOME
    st = PyConfig_SetBytesString(&config, &config.home, BENCH_PYTHON_HOME);
    if (PyStatus_Exception(st))
        Py_ExitStatusException(st);
#endif
    st = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(st))
        Py_ExitStatusException(st);

    gc_module = check(PyImport_ImportModule("gc"), "import gc");
    gc_call("collect");
    gc_call("freeze"); /* start-up's objects: out of every later collection */
}

static long long full_collect(void)
{
    Py_ssize_t c = PyGC_Collect(); /* 0 without collecting if gc is disabled */
    if (PyErr_Occurred())
        py_die("PyGC_Collect");
    return (long long)c;
}

static PyObject *new_list(Py_ssize_t n)
{
    return check(PyList_New(n), "PyList_New");
}

/* [item], with a new reference to item. */
static PyObject *new_list1(PyObject *item)
{
    PyObject *l = new_list(1);
    Py_INCREF(item);
    PyList_SET_ITEM(l, 0, item);
    return l;
}

/* l = [l] (count 2: the caller's and its own). */
static PyObject *new_self(void)
{
    PyObject *l = new_list(1);
    Py_INCREF(l);
    PyList_SET_ITEM(l, 0, l);
    return l;
}

static void print_head(const gcb_args *a, size_t n)
{
    printf("side=%s test=%s scale=%g n=%zu pyver=%d.%d.%d", SIDE, a->test, a->scale, n,
           PY_MAJOR_VERSION, PY_MINOR_VERSION, PY_MICRO_VERSION);
}

/* ---- tests 1-3: one full collection ------------------------------------------------- */

/* 1: a list of n lists [None]. */
static void test_reachable(const gcb_args *a)
{
    size_t n = a->n;
    PyObject *outer;
    double t0, t1, t2, t3;
    long long c1, c2;

    PyGC_Disable(); /* no automatic collection while building */
    outer = new_list((Py_ssize_t)n);
    for (size_t i = 0; i < n; i++)
        PyList_SET_ITEM(outer, (Py_ssize_t)i, new_list1(Py_None));
    PyGC_Enable();

    t0 = bench_now_ns();
    c1 = full_collect(); /* moves everything to the oldest generation */
    gcb_profile(1);
    t1 = bench_now_ns();
    c2 = full_collect(); /* the one measured */
    t2 = bench_now_ns();
    gcb_profile(0);
    Py_DECREF(outer);
    t3 = bench_now_ns();

    print_head(a, n);
    printf(" ns_per_op=%.3f total_ms=%.2f first_ns_per_obj=%.3f free_ns_per_obj=%.3f "
           "collected=%lld\n",
           (t2 - t1) / (double)n, (t2 - t1) / 1e6, (t1 - t0) / (double)n,
           (t3 - t2) / (double)n, c1 + c2);
}

/* 2: n/2 unreachable 2-cycles; 3: one unreachable cycle of n. */
static void test_garbage(const gcb_args *a, int one_cycle)
{
    size_t n = a->n;
    double t0, t1;
    long long c;

    PyGC_Disable();
    if (one_cycle) {
        PyObject *first = new_list(1), *prev = first;
        for (size_t i = 1; i < n; i++) {
            PyObject *l = new_list(1);
            PyList_SET_ITEM(prev, 0, l); /* prev takes our reference to l */
            prev = l;
        }
        PyList_SET_ITEM(prev, 0, first); /* closes the cycle with our reference */
    } else {
        for (size_t i = 0; i < n / 2; i++) {
            PyObject *x = new_list(1), *y = new_list(1);
            PyList_SET_ITEM(x, 0, y); /* each takes our reference to the other */
            PyList_SET_ITEM(y, 0, x);
        }
    }
    PyGC_Enable();

    gcb_profile(1);
    t0 = bench_now_ns();
    c = full_collect();
    t1 = bench_now_ns();
    gcb_profile(0);

    print_head(a, n);
    printf(" ns_per_op=%.3f total_ms=%.2f collected=%lld\n", (t1 - t0) / (double)n,
           (t1 - t0) / 1e6, c);
}

/* ---- test 4, 4a: steady allocation with automatic collection ------------------------ */

/* gc.get_stats(): per generation, collections and collected so far. */
static void gc_stats(unsigned long long coll[3], unsigned long long *collected)
{
    PyObject *stats = check(PyObject_CallMethod(gc_module, "get_stats", NULL), "get_stats");
    *collected = 0;
    for (Py_ssize_t g = 0; g < 3; g++) {
        PyObject *d = PyList_GetItem(stats, g);
        PyObject *c = d ? PyDict_GetItemString(d, "collections") : NULL;
        PyObject *k = d ? PyDict_GetItemString(d, "collected") : NULL;
        if (!c || !k)
            py_die("gc.get_stats() has an unexpected form");
        coll[g] = PyLong_AsUnsignedLongLong(c);
        *collected += PyLong_AsUnsignedLongLong(k);
    }
    Py_DECREF(stats);
}

/* The gc.callbacks entry of the pause pass: times start -> stop per generation. */
static struct {
    double t_start;          /* when the current collection started */
    double max_ns;           /* longest collection */
    int max_gen;             /* its generation */
    double total_ns;         /* all collections */
    unsigned long long n[3]; /* collections per generation */
} pauses;

static PyObject *pause_callback(PyObject *self, PyObject *args)
{
    double t = bench_now_ns();
    PyObject *phase, *info, *gen;
    (void)self;
    if (!PyArg_ParseTuple(args, "UO!", &phase, &PyDict_Type, &info))
        return NULL;
    if (PyUnicode_CompareWithASCIIString(phase, "start") == 0) {
        pauses.t_start = bench_now_ns(); /* after this call's own work */
    } else {
        long g;
        double d = t - pauses.t_start;
        gen = PyDict_GetItemString(info, "generation");
        g = gen ? PyLong_AsLong(gen) : -1;
        if (g < 0 || g > 2) {
            PyErr_SetString(PyExc_RuntimeError, "gc callback: bad generation");
            return NULL;
        }
        pauses.n[g]++;
        pauses.total_ns += d;
        if (d > pauses.max_ns) {
            pauses.max_ns = d;
            pauses.max_gen = (int)g;
        }
    }
    Py_RETURN_NONE;
}

static PyMethodDef pause_def = {"gc_bench_pause", pause_callback, METH_VARARGS, NULL};

/* One pass of the churn loop: iters random replacements in ring. */
static void churn(PyObject *ring, bench_rng *r, size_t iters, int cyclic)
{
    for (size_t i = 0; i < iters; i++) {
        Py_ssize_t k = (Py_ssize_t)gcb_below(bench_rng_next(r), GC_BENCH_RING);
        PyObject *old = PyList_GET_ITEM(ring, k);
        PyList_SET_ITEM(ring, k, cyclic ? new_self() : new_list1(Py_None));
        Py_DECREF(old);
    }
}

static void test_churn(const gcb_args *a, int cyclic)
{
    size_t iters = a->iters;
    unsigned long long c0[3], c1[3], k0, k1, checksum;
    long th[3];
    bench_rng r = {GCB_SEED};
    PyObject *ring, *callbacks, *cb, *t;
    double t0, t1, t2, t3;

    t = check(PyObject_CallMethod(gc_module, "get_threshold", NULL), "get_threshold");
    if (!PyArg_ParseTuple(t, "lll", &th[0], &th[1], &th[2]))
        py_die("gc.get_threshold()");
    Py_DECREF(t);

    ring = new_list((Py_ssize_t)GC_BENCH_RING);
    for (Py_ssize_t k = 0; k < (Py_ssize_t)GC_BENCH_RING; k++)
        PyList_SET_ITEM(ring, k, cyclic ? new_self() : new_list1(Py_None));

    /* The timed pass: nothing attached to the collector. */
    gc_stats(c0, &k0);
    gcb_profile(1);
    t0 = bench_now_ns();
    churn(ring, &r, iters, cyclic);
    t1 = bench_now_ns();
    gcb_profile(0);
    gc_stats(c1, &k1);
    checksum = r.s;

    /* The pause pass: the same loop continued, with the timing callback. */
    callbacks = check(PyObject_GetAttrString(gc_module, "callbacks"), "gc.callbacks");
    cb = check(PyCFunction_New(&pause_def, NULL), "PyCFunction_New");
    pauses.max_gen = -1;
    if (PyList_Append(callbacks, cb) < 0)
        py_die("gc.callbacks.append");
    t2 = bench_now_ns();
    churn(ring, &r, iters, cyclic);
    t3 = bench_now_ns();
    if (PySequence_DelSlice(callbacks, 0, PyList_GET_SIZE(callbacks)) < 0)
        py_die("del gc.callbacks[:]");
    Py_DECREF(cb);
    Py_DECREF(callbacks);

    Py_DECREF(ring);
    full_collect();

    print_head(a, iters);
    printf(" ns_per_op=%.3f total_ms=%.2f threshold=%ld,%ld,%ld coll0=%llu coll1=%llu "
           "coll2=%llu collected=%llu gc_ms=%.2f max_pause_us=%.1f max_pause_gen=%d "
           "pause_pass_ms=%.2f pause_pass_coll=%llu/%llu/%llu checksum=%llu\n",
           (t1 - t0) / (double)iters, (t1 - t0) / 1e6, th[0], th[1], th[2], c1[0] - c0[0],
           c1[1] - c0[1], c1[2] - c0[2], k1 - k0, pauses.total_ns / 1e6, pauses.max_ns / 1e3,
           pauses.max_gen, (t3 - t2) / 1e6, pauses.n[0], pauses.n[1], pauses.n[2], checksum);
}

/* ---- test 5, 5n: create + release --------------------------------------------------- */

static void test_tuples(const gcb_args *a)
{
    size_t iters = a->iters;
    double t0, t1;

    gcb_profile(1);
    t0 = bench_now_ns();
    for (size_t i = 0; i < iters; i++) {
        PyObject *o = PyTuple_New(1);
        if (__builtin_expect(o == NULL, 0))
            py_die("PyTuple_New");
        Py_DECREF((PyObject *)bench_launder(o));
    }
    t1 = bench_now_ns();
    gcb_profile(0);

    print_head(a, iters);
    printf(" ns_per_op=%.3f total_ms=%.2f type=tuple1\n", (t1 - t0) / (double)iters,
           (t1 - t0) / 1e6);
}

static void test_floats(const gcb_args *a)
{
    size_t iters = a->iters;
    double t0, t1;

    gcb_profile(1);
    t0 = bench_now_ns();
    for (size_t i = 0; i < iters; i++) {
        PyObject *o = PyFloat_FromDouble((double)i);
        if (__builtin_expect(o == NULL, 0))
            py_die("PyFloat_FromDouble");
        Py_DECREF((PyObject *)bench_launder(o));
    }
    t1 = bench_now_ns();
    gcb_profile(0);

    print_head(a, iters);
    printf(" ns_per_op=%.3f total_ms=%.2f type=float\n", (t1 - t0) / (double)iters,
           (t1 - t0) / 1e6);
}

/* ---- test 6: bytes per object ------------------------------------------------------- */

/* sys.getsizeof(o): object size including the GC header for tracked types. */
static size_t getsizeof(PyObject *o)
{
    PyObject *sys = check(PyImport_ImportModule("sys"), "import sys");
    PyObject *r = check(PyObject_CallMethod(sys, "getsizeof", "O", o), "sys.getsizeof");
    size_t s = PyLong_AsSize_t(r);
    Py_DECREF(r);
    Py_DECREF(sys);
    return s;
}

/* _tracemalloc.get_traced_memory()[0]: bytes currently traced. */
static size_t traced(PyObject *tm)
{
    PyObject *r = check(PyObject_CallMethod(tm, "get_traced_memory", NULL), "get_traced_memory");
    size_t cur = PyLong_AsSize_t(PyTuple_GetItem(r, 0));
    Py_DECREF(r);
    return cur;
}

/* n complex numbers in plain[], n instances of cls in cont[]; fills the three
 * readings before, between and after (VmRSS in kB, or traced bytes). */
static void fill(PyObject *cls, PyObject **plain, PyObject **cont, size_t n, PyObject *tm,
                 double m[3])
{
    m[0] = tm ? (double)traced(tm) : (double)bench_status_kb("VmRSS") * 1024.0;
    for (size_t i = 0; i < n; i++)
        plain[i] = check(PyComplex_FromDoubles((double)i, 1.0), "complex");
    m[1] = tm ? (double)traced(tm) : (double)bench_status_kb("VmRSS") * 1024.0;
    for (size_t i = 0; i < n; i++)
        cont[i] = check(PyObject_CallNoArgs(cls), "P()");
    m[2] = tm ? (double)traced(tm) : (double)bench_status_kb("VmRSS") * 1024.0;
}

static void release(PyObject **plain, PyObject **cont, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        Py_DECREF(plain[i]);
        Py_DECREF(cont[i]);
    }
}

static void test_overhead(const gcb_args *a)
{
    size_t n = a->n, size_plain, size_cont;
    PyObject **plain = (PyObject **)gcb_ptr_array(SIDE, n);
    PyObject **cont = (PyObject **)gcb_ptr_array(SIDE, n);
    PyObject *main_dict, *cls, *r, *tm, *probe;
    double rss[3], heap[3];

    main_dict = PyModule_GetDict(check(PyImport_AddModule("__main__"), "__main__"));
    r = check(PyRun_String("class P:\n    __slots__ = ('a', 'b')\n", Py_file_input,
                           main_dict, main_dict),
              "class P");
    Py_DECREF(r);
    cls = check(PyDict_GetItemString(main_dict, "P"), "P");
    probe = check(PyObject_CallNoArgs(cls), "P()");
    size_cont = getsizeof(probe);
    Py_DECREF(probe);
    probe = check(PyComplex_FromDoubles(1.0, 1.0), "complex");
    size_plain = getsizeof(probe);
    Py_DECREF(probe);

    PyGC_Disable();
    fill(cls, plain, cont, n, NULL, rss); /* resident set, nothing else running */
    release(plain, cont, n);

    tm = check(PyImport_ImportModule("_tracemalloc"), "import _tracemalloc");
    Py_DECREF(check(PyObject_CallMethod(tm, "start", NULL), "tracemalloc.start"));
    fill(cls, plain, cont, n, tm, heap);
    release(plain, cont, n);
    Py_DECREF(check(PyObject_CallMethod(tm, "stop", NULL), "tracemalloc.stop"));
    Py_DECREF(tm);
    gcb_ptr_array_free((void **)plain, n);
    gcb_ptr_array_free((void **)cont, n);

    print_head(a, n);
    printf(" payload=16 header_plain=%zu header_container=%zu heap_plain=%.2f "
           "heap_container=%.2f rss_plain=%.2f rss_container=%.2f\n",
           size_plain - 16, size_cont - 16, (heap[1] - heap[0]) / (double)n,
           (heap[2] - heap[1]) / (double)n, (rss[1] - rss[0]) / (double)n,
           (rss[2] - rss[1]) / (double)n);
}

/* ---- main ---------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    gcb_args a = gcb_parse(SIDE, argc, argv);
    py_start();

    if (gcb_is(&a, "1"))
        test_reachable(&a);
    else if (gcb_is(&a, "2"))
        test_garbage(&a, 0);
    else if (gcb_is(&a, "3"))
        test_garbage(&a, 1);
    else if (gcb_is(&a, "4"))
        test_churn(&a, 1);
    else if (gcb_is(&a, "4a"))
        test_churn(&a, 0);
    else if (gcb_is(&a, "5"))
        test_tuples(&a);
    else if (gcb_is(&a, "5n"))
        test_floats(&a);
    else
        test_overhead(&a);

    Py_DECREF(gc_module);
    if (Py_FinalizeEx() < 0)
        return 1;
    return fflush(stdout) == 0 ? 0 : 1;
}
