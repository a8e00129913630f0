/* test_trace_objects.c - the object side of tracing (tally/trace.h): the type
 * summary, the leak report (on demand and at tally_close), why-alive chains and
 * the referrer graph in DOT.
 *
 * Every figure is known in advance: the summary's bytes are the tally_sizeof of
 * the objects made (checked as differences from a baseline, so the runtime's own
 * objects do not matter), the leak report is parsed back from a tmpfile, and the
 * chains are built so that exactly one answer is right.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_objects.h"
#include "tally/tally.h"

/* Everything written to f, as a string (f is rewound and left at its end). */
static char *slurp(FILE *f)
{
    long n = ftell(f);
    assert_true(n >= 0);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    rewind(f);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    return s;
}

/* The summary line of type t (NULL: raw blocks), or zeros. */
static tally_type_stat stat_of(tally_rt *rt, const tally_type *t)
{
    size_t n;
    tally_type_stat *s = tally_trace_type_summary(rt, &n);
    assert_non_null(s);
    tally_type_stat r = {t, NULL, 0, 0};
    for (size_t i = 0; i < n; i++) {
        if (i > 0) /* sorted by bytes, largest first */
            assert_true(s[i - 1].bytes >= s[i].bytes);
        if (s[i].type == t)
            r = s[i];
    }
    tally_trace_release(s);
    return r;
}

/* ---- the type summary ---------------------------------------------------------------- */

#define NLISTS 3
#define NDICTS 2
#define NSTRS 4
#define NNODES 5
#define NRAW 3

typedef struct population {
    void *lists[NLISTS], *dicts[NDICTS], *strs[NSTRS];
    node *nodes[NNODES];
    void *raw[NRAW];
    size_t list_bytes, dict_bytes, str_bytes, node_bytes, raw_bytes;
} population;

/* Lists with item arrays and dicts with tables (buffers they own), strs, user
 * objects and raw blocks; the lists and dicts hold the nodes. */
static void populate(tally_rt *rt, population *p)
{
    memset(p, 0, sizeof *p);
    for (int i = 0; i < NNODES; i++)
        p->nodes[i] = mk(rt, &NODE, i);
    for (int i = 0; i < NSTRS; i++) {
        char text[32];
        snprintf(text, sizeof text, "a str that is not interned %d", i);
        p->strs[i] = tally_str(rt, text);
        assert_non_null(p->strs[i]);
    }
    for (int i = 0; i < NLISTS; i++) {
        p->lists[i] = tally_list(rt, 0);
        assert_non_null(p->lists[i]);
        for (int k = 0; k < 7; k++)
            assert_int_equal(tally_list_append(p->lists[i], p->nodes[k % NNODES]), 0);
    }
    for (int i = 0; i < NDICTS; i++) {
        p->dicts[i] = tally_dict(rt);
        assert_non_null(p->dicts[i]);
        assert_int_equal(tally_dict_set(p->dicts[i], p->strs[i], p->nodes[i]), 0);
    }
    for (int i = 0; i < NRAW; i++) {
        p->raw[i] = tally_malloc(rt, 100 + 300 * (size_t)i);
        assert_non_null(p->raw[i]);
        p->raw_bytes += tally_usable_size(p->raw[i]);
    }
    for (int i = 0; i < NLISTS; i++)
        p->list_bytes += tally_sizeof(p->lists[i]);
    for (int i = 0; i < NDICTS; i++)
        p->dict_bytes += tally_sizeof(p->dicts[i]);
    for (int i = 0; i < NSTRS; i++)
        p->str_bytes += tally_sizeof(p->strs[i]);
    for (int i = 0; i < NNODES; i++)
        p->node_bytes += tally_sizeof(p->nodes[i]);
    /* The lists and dicts own buffers outside their blocks: counted in their
     * tally_sizeof, so the summary must not count them again as raw blocks. */
    assert_true(p->list_bytes > NLISTS * tally_usable_size((char *)p->lists[0] - 16));
}

static void depopulate(tally_rt *rt, population *p)
{
    for (int i = 0; i < NLISTS; i++)
        tally_decref(p->lists[i]);
    for (int i = 0; i < NDICTS; i++)
        tally_decref(p->dicts[i]);
    for (int i = 0; i < NSTRS; i++)
        tally_decref(p->strs[i]);
    for (int i = 0; i < NNODES; i++)
        tally_decref(p->nodes[i]);
    for (int i = 0; i < NRAW; i++)
        tally_free(rt, p->raw[i]);
}

static void check_population(tally_rt *rt, int tracing)
{
    tally_rt *r = rt;
    if (tracing)
        assert_int_equal(tally_trace_start(r, 1), 0);
    tally_type_stat l0 = stat_of(r, &tally_list_type), d0 = stat_of(r, &tally_dict_type);
    tally_type_stat s0 = stat_of(r, &tally_str_type), n0 = stat_of(r, &NODE);
    tally_type_stat r0 = stat_of(r, NULL);
    population p;
    populate(r, &p);
    tally_type_stat l1 = stat_of(r, &tally_list_type), d1 = stat_of(r, &tally_dict_type);
    tally_type_stat s1 = stat_of(r, &tally_str_type), n1 = stat_of(r, &NODE);
    tally_type_stat r1 = stat_of(r, NULL);
    assert_int_equal(l1.count - l0.count, NLISTS);
    assert_int_equal(l1.bytes - l0.bytes, p.list_bytes);
    assert_int_equal(d1.count - d0.count, NDICTS);
    assert_int_equal(d1.bytes - d0.bytes, p.dict_bytes);
    assert_int_equal(s1.count - s0.count, NSTRS);
    assert_int_equal(s1.bytes - s0.bytes, p.str_bytes);
    assert_int_equal(n1.count - n0.count, NNODES);
    assert_int_equal(n1.bytes - n0.bytes, p.node_bytes);
    assert_string_equal(n1.name, "node");
    assert_int_equal(r1.count - r0.count, NRAW);
    assert_int_equal(r1.bytes - r0.bytes, p.raw_bytes);
    assert_string_equal(r1.name, "(raw blocks)");

    depopulate(r, &p);
    tally_type_stat l2 = stat_of(r, &tally_list_type), d2 = stat_of(r, &tally_dict_type);
    tally_type_stat s2 = stat_of(r, &tally_str_type), n2 = stat_of(r, &NODE);
    tally_type_stat r2 = stat_of(r, NULL);
    assert_int_equal(l2.count, l0.count);
    assert_int_equal(l2.bytes, l0.bytes);
    assert_int_equal(d2.count, d0.count);
    assert_int_equal(s2.count, s0.count);
    assert_int_equal(n2.count, n0.count);
    assert_int_equal(r2.count, r0.count);
    assert_int_equal(r2.bytes, r0.bytes);
    if (tracing)
        tally_trace_stop(r);
}

static void test_summary_exact(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    check_population(rt, 0);
    check_population(rt, 1); /* the tracer's tables are not raw blocks */
    tally_close(rt);
}

static void test_summary_debug_mode(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, TALLY_DEBUG_GUARDS);
    check_population(rt, 1);
    tally_close(rt);
}

static void test_summary_print(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    size_t n = 99;
    tally_type_stat *s = tally_trace_type_summary(rt, &n);
    assert_non_null(s);
    assert_int_equal(n, 0); /* a new runtime holds nothing */
    tally_trace_release(s);
    population p;
    populate(rt, &p);
    FILE *f = tmpfile();
    assert_non_null(f);
    assert_int_equal(tally_trace_type_summary_print(rt, f, 0), 0);
    char *text = slurp(f);
    char want[128];
    snprintf(want, sizeof want, "\nnode %*s %10d %12zu\n", 19, "", NNODES, p.node_bytes);
    assert_non_null(strstr(text, want));
    snprintf(want, sizeof want, "\n(raw blocks) %*s %10d %12zu\n", 11, "", NRAW, p.raw_bytes);
    assert_non_null(strstr(text, want));
    assert_true(strncmp(text, "type", 4) == 0);
    assert_non_null(strstr(text, "\ntotal "));
    free(text);
    fclose(f);
    depopulate(rt, &p);
    tally_close(rt);
}

/* ---- the leak report ------------------------------------------------------------------- */

/* The line of the report naming `what` (a type line, or a site line "file:line"):
 * its bytes and count; 0 if there is none. */
static int report_line(const char *text, const char *what, size_t *bytes, size_t *count)
{
    for (const char *line = text; *line; ) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char name[256];
        if (sscanf(line, "%zu %zu %255[^\n]", bytes, count, name) == 3 && strlen(name) < len &&
            strcmp(name, what) == 0)
            return 1;
        if (!end)
            break;
        line = end + 1;
    }
    return 0;
}

static void test_leak_report(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    assert_int_equal(tally_trace_start(rt, 1), 0);
    /* Immortal objects, which are no leaks. */
    void *small = tally_int(rt, 7);
    void *interned = tally_str_intern_c(rt, "interned");
    void *empty = tally_tuple(rt, 0, NULL);
    assert_non_null(small);
    assert_non_null(interned);
    assert_non_null(empty);
    assert_true(tally_is_immortal(small) && tally_is_immortal(empty));
    node *nodes[3];
    int node_line = __LINE__ + 2;
    for (int i = 0; i < 3; i++)
        nodes[i] = tally_new(rt, &LEAF_NOFIN);
    int list_line = __LINE__ + 1;
    void *list = tally_list(rt, 0);
    assert_int_equal(tally_list_append(list, nodes[0]), 0);
    int raw_line = __LINE__ + 1;
    void *raw = tally_malloc(rt, 200);
    assert_non_null(raw);

    FILE *f = tmpfile();
    assert_non_null(f);
    assert_int_equal(tally_trace_leaks(rt, f), 5);
    char *text = slurp(f);
    assert_non_null(strstr(text, "Tally leak report: 4 objects"));
    assert_non_null(strstr(text, "and 1 raw block ("));
    size_t bytes, count;
    char site[512];
    assert_true(report_line(text, "leaf_nofin", &bytes, &count));
    assert_int_equal(count, 3);
    assert_int_equal(bytes, 3 * tally_sizeof(nodes[0]));
    snprintf(site, sizeof site, "%s:%d", __FILE__, node_line);
    assert_true(report_line(text, site, &bytes, &count));
    assert_int_equal(count, 3);
    assert_true(report_line(text, "list", &bytes, &count));
    assert_int_equal(count, 1);
    assert_int_equal(bytes, tally_sizeof(list));
    /* The library records its own line for what it allocates (tally/trace.h). */
    (void)list_line;
    assert_non_null(strstr(text, "      src/types/list.c:"));
    assert_true(report_line(text, "(raw blocks)", &bytes, &count));
    assert_int_equal(count, 1);
    assert_int_equal(bytes, tally_usable_size(raw));
    snprintf(site, sizeof site, "%s:%d", __FILE__, raw_line);
    assert_true(report_line(text, site, &bytes, &count));
    assert_int_equal(bytes, tally_usable_size(raw));
    /* Types in order of their bytes, largest first. */
    const char *a = strstr(text, " leaf_nofin\n"), *b = strstr(text, " list\n");
    assert_true(3 * tally_sizeof(nodes[0]) >= tally_sizeof(list) ? a < b : b < a);
    /* Immortal objects are absent: no int, str or tuple line. */
    assert_false(report_line(text, "int", &bytes, &count));
    assert_false(report_line(text, "str", &bytes, &count));
    assert_false(report_line(text, "tuple", &bytes, &count));
    assert_null(strstr(text, "site unknown"));
    free(text);
    fclose(f);

    /* A leak made before tracing started has no site. */
    tally_trace_stop(rt);
    f = tmpfile();
    assert_int_equal(tally_trace_leaks(rt, f), 5);
    text = slurp(f);
    assert_true(report_line(text, "site unknown (not traced)", &bytes, &count));
    free(text);
    fclose(f);

    tally_decref(list);
    for (int i = 0; i < 3; i++)
        tally_decref(nodes[i]);
    tally_free(rt, raw);
    tally_decref(interned);
    f = tmpfile();
    assert_int_equal(tally_trace_leaks(rt, f), 0);
    text = slurp(f);
    assert_string_equal(text, "Tally leak report: nothing left alive (immortal objects aside)\n");
    free(text);
    fclose(f);
    tally_close(rt);
}

/* Runs a runtime to its close in a child whose stderr is a file; returns what it
 * wrote there.  how: 1 config flag, 2 TALLY_LEAKS=1, 0 neither. */
static char *leaks_at_close(int how)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fileno(f), 2);
        if (how == 2)
            setenv("TALLY_LEAKS", "1", 1);
        tally_config cfg;
        tally_config_init(&cfg);
        cfg.report_leaks = how == 1;
        tally_rt *rt = tally_open(&cfg);
        if (rt == NULL)
            _exit(2);
        tally_trace_start(rt, 1);
        void *l = tally_list(rt, 4);
        (void)l; /* leaked on purpose */
        tally_close(rt);
        fflush(stderr);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    fseek(f, 0, SEEK_END);
    char *text = slurp(f);
    fclose(f);
    return text;
}

static void test_leak_report_at_close(void **state)
{
    (void)state;
    for (int how = 0; how <= 2; how++) {
        char *text = leaks_at_close(how);
        if (how == 0) {
            assert_string_equal(text, "");
        } else {
            assert_non_null(strstr(text, "Tally leak report: 1 object"));
            size_t bytes, count;
            assert_true(report_line(text, "list", &bytes, &count));
            assert_int_equal(count, 1);
            assert_non_null(strstr(text, "      src/types/list.c:"));
        }
        free(text);
    }
}

/* In a fixed buffer with its last block taken, the report still prints what it
 * can and says that it is incomplete. */
static void test_leak_report_exhausted(void **state)
{
    (void)state;
    static _Alignas(4096) unsigned char buf[256 * 1024];
    tally_rt *rt = open_fixed(buf, sizeof buf, NULL, 0);
    assert_non_null(rt);
    node *keep = mk(rt, &LEAF_NOFIN, -1);
    size_t taken = 0;
    for (size_t n = 64 * 1024; n >= 16; n /= 2)
        while (tally_malloc(rt, n) != NULL)
            taken++;
    assert_true(taken > 0);
    FILE *f = tmpfile();
    assert_int_equal(tally_trace_leaks(rt, f), -1);
    char *text = slurp(f);
    assert_non_null(strstr(text, "incomplete"));
    size_t bytes, count;
    assert_true(report_line(text, "leaf_nofin", &bytes, &count));
    assert_int_equal(count, 1);
    assert_true(report_line(text, "(raw blocks)", &bytes, &count));
    assert_int_equal(count, taken);
    free(text);
    fclose(f);
    (void)keep;
    tally_close(rt); /* the whole buffer goes back */
}

/* ---- why alive ----------------------------------------------------------------------- */

static char *why(tally_rt *rt, void *o, int *rc)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    *rc = tally_why_alive(rt, o, f);
    char *text = slurp(f);
    fclose(f);
    return text;
}

static int contains_ptr(const char *text, const void *p)
{
    char s[64];
    snprintf(s, sizeof s, " at %p (", p);
    return strstr(text, s) != NULL;
}

static void test_why_chain_list_dict(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    tally_gc_disable(rt);
    void *list = tally_list(rt, 0);
    void *dict = tally_dict(rt);
    node *obj = mk(rt, &NODE, 1);
    assert_int_equal(tally_list_append(list, dict), 0);
    assert_int_equal(tally_dict_set_c(dict, "key", obj), 0);
    tally_decref(dict);
    tally_decref(obj);
    int rc;
    char *text = why(rt, obj, &rc);
    assert_int_equal(rc, 2);
    /* Exactly: root list -> dict -> node, in that order. */
    const char *l = strstr(text, "root: list at "), *d = strstr(text, "\ndict at "),
               *n = strstr(text, "\nnode at ");
    assert_non_null(l);
    assert_non_null(d);
    assert_non_null(n);
    assert_true(l < d && d < n);
    assert_true(contains_ptr(text, list) && contains_ptr(text, dict) && contains_ptr(text, obj));
    assert_non_null(strstr(text, "[1 reference from outside the heap]"));
    assert_non_null(strstr(text, "<- the object"));
    free(text);

    /* The list itself is a root. */
    text = why(rt, list, &rc);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(text, "is itself a root"));
    free(text);

    /* Not an object. */
    void *raw = tally_malloc(rt, 64);
    assert_int_equal(tally_why_alive(rt, raw, stderr), -1);
    assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
    tally_free(rt, raw);
    tally_decref(list);
    tally_close(rt);
}

static void test_why_shortest(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    tally_gc_disable(rt);
    assert_int_equal(tally_trace_start(rt, 1), 0);
    node *root = mk(rt, &NODE, 0), *a = mk(rt, &NODE, 1), *b = mk(rt, &NODE, 2),
         *c = mk(rt, &NODE, 3), *x = mk(rt, &NODE, 4);
    /* root -> a -> b -> x (3 references) and root -> c -> x (2). */
    link_to(&root->next, a);
    link_to(&a->next, b);
    link_to(&b->next, x);
    link_to(&root->other, c);
    link_to(&c->next, x);
    tally_decref(a);
    tally_decref(b);
    tally_decref(c);
    tally_decref(x);
    int rc;
    char *text = why(rt, x, &rc);
    assert_int_equal(rc, 2);
    assert_true(contains_ptr(text, root) && contains_ptr(text, c) && contains_ptr(text, x));
    assert_false(contains_ptr(text, a) || contains_ptr(text, b));
    assert_non_null(strstr(text, "allocated at ")); /* traced sites: mk() */
    assert_non_null(strstr(text, "test_objects.h:"));
    free(text);
    tally_decref(root);
    tally_close(rt);
}

static void test_why_garbage(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    tally_gc_disable(rt);
    node *ring = mk_ring(rt, &NODE_NOFIN, 3, 10);
    node *member = ring->next;
    tally_decref(ring); /* only the cycle keeps it now */
    int rc;
    char *text = why(rt, member, &rc);
    assert_int_equal(rc, TALLY_WHY_GARBAGE);
    assert_non_null(strstr(text, "reachable from no root"));
    assert_non_null(strstr(text, "tally_gc_collect"));
    free(text);
    assert_int_equal(tally_gc_collect(rt, 2), 3);
    tally_close(rt);
}

typedef struct deep_job {
    tally_rt *rt;
    void *target;
    FILE *out;
    int rc;
} deep_job;

static void deep_run(void *arg)
{
    deep_job *j = arg;
    j->rc = tally_why_alive(j->rt, j->target, j->out);
}

static void test_why_deep_chain_small_stack(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    tally_gc_disable(rt);
    size_t n = test_scale(100000, 10);
    node *target = mk(rt, &NODE_NOFIN, -1);
    node *head = target;
    tally_incref(target);
    for (size_t i = 1; i < n; i++) {
        node *x = mk(rt, &NODE_NOFIN, -1);
        x->next = head; /* the reference moves into x */
        head = x;
    }
    tally_decref(target); /* only the chain holds it */
    deep_job j = {rt, target, tmpfile(), 0};
    assert_non_null(j.out);
    run_on_small_stack(deep_run, &j, 64 * KiB);
    assert_int_equal(j.rc, (int)(n - 1));
    char *text = slurp(j.out);
    size_t arrows = 0;
    /* Line by line with bounded compares: string functions over the rest of the
     * text each time would be quadratic under ASan's strict string checks, which
     * measure the whole string on every call. */
    static const char arrow[] = "  -> holds a reference to\n";
    size_t len = strlen(text), alen = sizeof arrow - 1;
    for (size_t i = 0; i < len;) {
        if (len - i >= alen && memcmp(text + i, arrow, alen) == 0)
            arrows++;
        while (i < len && text[i] != '\n')
            i++;
        i++;
    }
    assert_int_equal(arrows, n - 1);
    assert_true(contains_ptr(text, head));
    free(text);
    fclose(j.out);
    tally_decref(head);
    tally_close(rt);
}

static void test_why_alloc_failure(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    tally_gc_disable(rt);
    void *list = tally_list(rt, 0);
    node *obj = mk(rt, &NODE, 1);
    assert_int_equal(tally_list_append(list, obj), 0);
    tally_decref(obj);
    size_t base = blocks_in_use(rt);
    unsigned long runs = 0;
    for (unsigned long k = 1;; k++) {
        unsigned long before = tally_fault_failures(rt, TALLY_FAULT_ALLOC);
        tally_fault_inject(rt, TALLY_FAULT_ALLOC, k, 0);
        FILE *f = tmpfile();
        int rc = tally_why_alive(rt, obj, f);
        long written = ftell(f);
        fclose(f);
        tally_fault_inject(rt, TALLY_FAULT_ALLOC, 0, 0);
        assert_int_equal(blocks_in_use(rt), base); /* nothing left behind */
        if (tally_fault_failures(rt, TALLY_FAULT_ALLOC) == before) {
            assert_int_equal(rc, 1);
            break;
        }
        assert_int_equal(rc, -1);
        assert_int_equal(tally_last_error(rt), TALLY_ENOMEM);
        assert_non_null(strstr(tally_last_error_message(rt), "no memory"));
        assert_int_equal(written, 0); /* nothing printed */
        runs++;
        /* The graph fails the same way. */
        tally_fault_inject(rt, TALLY_FAULT_ALLOC, k, 0);
        f = tmpfile();
        assert_int_equal(tally_trace_graph_dot(rt, obj, 2, f), -1);
        fclose(f);
        tally_fault_inject(rt, TALLY_FAULT_ALLOC, 0, 0);
        assert_int_equal(blocks_in_use(rt), base);
    }
    assert_int_equal(runs, 4); /* census, offsets, referrers, search */
    tally_decref(list);
    tally_close(rt);
}

/* ---- the graph ---------------------------------------------------------------------- */

static void test_graph_dot(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    tally_gc_disable(rt);
    node *root = mk(rt, &NODE, 0), *a = mk(rt, &NODE, 1), *b = mk(rt, &NODE, 2),
         *x = mk(rt, &LEAF_NOFIN, 3), *far = mk(rt, &NODE, 4);
    link_to(&far->next, root);  /* far -> root -> a -> x, root -> b -> x */
    link_to(&root->next, a);
    link_to(&root->other, b);
    link_to(&a->extra, x);
    link_to(&b->extra, x);
    link_to(&a->next, b);
    tally_decref(a);
    tally_decref(b);
    tally_decref(x); /* root stays held here: a root; far is one too */
    FILE *f = tmpfile();
    long nodes = tally_trace_graph_dot(rt, x, 2, f);
    char *text = slurp(f);
    fclose(f);
    assert_int_equal(nodes, 4); /* x, a, b, root; far is 3 steps away */
    assert_true(strncmp(text, "digraph", 7) == 0);
    long depth = 0;
    for (const char *p = text; *p; p++) {
        depth += *p == '{';
        depth -= *p == '}';
        assert_true(depth >= 0);
    }
    assert_int_equal(depth, 0);
    /* Every node declared once; every edge between declared nodes. */
    unsigned declared[64];
    size_t ndecl = 0, nedges = 0;
    for (const char *line = text; (line = strchr(line, '\n')) != NULL;) {
        line++;
        unsigned u, v;
        char c;
        if (sscanf(line, " n%u -> n%u%c", &u, &v, &c) == 3 && c == ';') {
            int fu = 0, fv = 0;
            for (size_t i = 0; i < ndecl; i++) {
                fu |= declared[i] == u;
                fv |= declared[i] == v;
            }
            assert_true(fu && fv);
            nedges++;
        } else if (sscanf(line, " n%u [label=%c", &u, &c) == 2) {
            assert_true(ndecl < 64);
            declared[ndecl++] = u;
        }
    }
    assert_int_equal(ndecl, 4);
    assert_int_equal(nedges, 5); /* root->a, root->b, a->b, a->x, b->x */
    assert_non_null(strstr(text, "peripheries=2")); /* root */
    assert_non_null(strstr(text, "label=\"leaf_nofin\\n"));
    assert_non_null(strstr(text, "shape=box"));
    free(text);
    tally_decref(root);
    tally_decref(far);
    tally_close(rt);
}

int main(void)
{
    unsetenv("TALLY_DEBUG");
    unsetenv("TALLY_LEAKS");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_summary_exact),
        cmocka_unit_test(test_summary_debug_mode),
        cmocka_unit_test(test_summary_print),
        cmocka_unit_test(test_leak_report),
        cmocka_unit_test(test_leak_report_at_close),
        cmocka_unit_test(test_leak_report_exhausted),
        cmocka_unit_test(test_why_chain_list_dict),
        cmocka_unit_test(test_why_shortest),
        cmocka_unit_test(test_why_garbage),
        cmocka_unit_test(test_why_deep_chain_small_stack),
        cmocka_unit_test(test_why_alloc_failure),
        cmocka_unit_test(test_graph_dot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
