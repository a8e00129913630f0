/* types_bench_cpython.c - CPython's side of the built-in types benchmark
 * (types_bench.h lists the tests; run_types.py runs both sides).  The interpreter
 * starts isolated and its start-up objects are frozen, as in gc_bench_cpython.c;
 * the operations are CPython's C API calls, as an extension module would make. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "types_bench.h"

#define SIDE "cpython"

static PyObject *check(PyObject *o, const char *what)
{
    if (o == NULL) {
        PyErr_Print();
        fprintf(stderr, "types_bench(cpython): %s failed\n", what);
        exit(2);
    }
    return o;
}

static void py_start(void)
{
    PyConfig config;
    PyConfig_InitIsolatedConfig(&config);
    config.site_import = 0;
    config.install_signal_handlers = 0;
#ifdef BENCH_PYTHON_HOME
    PyStatus st = PyConfig_SetBytesString(&config, &config.home, BENCH_PYTHON_HOME);
    if (PyStatus_Exception(st))
        Py_ExitStatusException(st);
#endif
    PyStatus s = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(s))
        Py_ExitStatusException(s);
    PyObject *gc = check(PyImport_ImportModule("gc"), "import gc");
    Py_DECREF(check(PyObject_CallMethod(gc, "freeze", NULL), "gc.freeze"));
    Py_DECREF(gc);
}

static PyObject **make_keys(long n)
{
    PyObject **keys = malloc((size_t)n * sizeof *keys);
    char buf[32];
    if (keys == NULL)
        exit(2);
    for (long i = 0; i < n; i++) {
        tb_key(buf, sizeof buf, i);
        keys[i] = check(PyUnicode_FromString(buf), "PyUnicode_FromString");
    }
    return keys;
}

static void release_keys(PyObject **keys, long n)
{
    for (long i = 0; i < n; i++)
        Py_DECREF(keys[i]);
    free(keys);
}

static void test_append(long n)
{
    PyObject *l = check(PyList_New(0), "PyList_New");
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        PyObject *v = check(PyLong_FromLong(i & 255), "PyLong_FromLong");
        if (PyList_Append(l, v) != 0)
            check(NULL, "PyList_Append");
        Py_DECREF(v);
    }
    double t1 = bench_now_ns();
    tb_report(SIDE, "append", n, n, t1 - t0, (long long)PyList_GET_SIZE(l));
    Py_DECREF(l);
}

static PyObject *fill_dict(PyObject **keys, long n, double *ns)
{
    PyObject *d = check(PyDict_New(), "PyDict_New");
    PyObject *one = check(PyLong_FromLong(1), "PyLong_FromLong");
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++)
        if (PyDict_SetItem(d, keys[i], one) != 0)
            check(NULL, "PyDict_SetItem");
    *ns = bench_now_ns() - t0;
    Py_DECREF(one);
    return d;
}

static void test_dictset(long n)
{
    PyObject **keys = make_keys(n);
    double ns;
    PyObject *d = fill_dict(keys, n, &ns);
    tb_report(SIDE, "dictset", n, n, ns, (long long)PyDict_GET_SIZE(d));
    Py_DECREF(d);
    release_keys(keys, n);
}

static void test_dictget(long n)
{
    PyObject **keys = make_keys(n);
    double ns;
    PyObject *d = fill_dict(keys, n, &ns);
    long long hits = 0;
    bench_rng r = {0x5EEDull};
    double t0 = bench_now_ns();
    for (long i = 0; i < 4 * n; i++)
        hits += PyDict_GetItem(d, keys[bench_rng_next(&r) % (uint64_t)n]) != NULL;
    double t1 = bench_now_ns();
    tb_report(SIDE, "dictget", n, 4 * n, t1 - t0, hits);
    Py_DECREF(d);
    release_keys(keys, n);
}

static void test_intern(long n)
{
    PyObject **out = malloc((size_t)n * sizeof *out);
    if (out == NULL)
        exit(2);
    char *texts = tb_texts(n);
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++)
        out[i] = check(PyUnicode_InternFromString(texts + (size_t)i * TB_TEXT_STRIDE),
                       "PyUnicode_InternFromString");
    double t1 = bench_now_ns();
    free(texts);
    long long distinct = 0;
    for (long i = 0; i < n; i++)
        distinct += i == 0 || out[i] != out[i - 1];
    tb_report(SIDE, "intern", n, n, t1 - t0, distinct);
    for (long i = 0; i < n; i++)
        Py_DECREF(out[i]);
    free(out);
}

static void test_iterate(long n)
{
    PyObject *l = check(PyList_New(0), "PyList_New");
    for (long i = 0; i < n; i++) {
        PyObject *v = check(PyLong_FromLong(i & 255), "PyLong_FromLong");
        if (PyList_Append(l, v) != 0)
            check(NULL, "PyList_Append");
        Py_DECREF(v);
    }
    long long sum = 0;
    double t0 = bench_now_ns();
    PyObject *it = check(PyObject_GetIter(l), "PyObject_GetIter");
    for (PyObject *x; (x = PyIter_Next(it)) != NULL; Py_DECREF(x))
        sum += PyLong_AsLong(x);
    double t1 = bench_now_ns();
    Py_DECREF(it);
    tb_report(SIDE, "iterate", n, n, t1 - t0, sum);
    Py_DECREF(l);
}

int main(int argc, char **argv)
{
    long n;
    const char *test = tb_args(argc, argv, &n);
    py_start();
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
    Py_FinalizeEx();
    return 0;
}
