/* whyalive.c - why is an object alive: a shortest chain of references from a
 * root (objgraph's show_chain(find_backref_chain(obj, is_root))), and the graph
 * of its referrers in DOT.
 *
 * The reference graph.  From the census (census.c: every live block, objects
 * told apart), every object with a traverse callback is traversed once (tracked
 * or not: an untracked tuple still holds its items; objects without traverse and
 * raw blocks hold no references anyone can see) and each reference is recorded
 * against its referent, giving a referrer index in compressed form (CSR): off[i]
 * .. off[i + 1] are the positions in src of the referrers of cell i, one per
 * reference (a list holding x twice refers to it twice).  Built in two passes,
 * count then fill, so nothing grows: off is counted per referent, turned into
 * running ends, and filling decrements them into starts.
 *
 * Roots.  The count of an object is the number of references to it; off[i + 1] -
 * off[i] is the number the heap's objects hold.  When the count is larger, the
 * rest come from outside the heap (C variables, the runtime itself: immortal
 * objects, whose count is a constant, are always roots).  This is the
 * collector's own test (collect.c subtracts internal references from the counts:
 * what stays above zero is referenced from outside), made over every object
 * rather than one generation.
 *
 * The search.  Breadth first from obj over referrers, with an explicit queue and a
 * parent per cell, so the first root reached is at the least distance and no
 * chain length can overflow the C stack; the chain is then read back through the
 * parents from the root to obj.  If the queue empties without a root, obj is kept
 * alive by a cycle no root reaches: garbage a collection would free.
 *
 * Memory: the census (40 bytes per live block), off (8 per block), src (4 per
 * reference) and 8 per block for the search (12 for the graph), all from the
 * runtime's heap through tallyH_malloc_quiet; if any is refused the call fails
 * with TALLY_ENOMEM, prints nothing and leaves nothing behind.  Nothing here runs
 * user code except the types' traverse callbacks, which must not allocate.
 */
#include "trace/trace.h"

#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h"
#include "tally/types.h"

#define NONE UINT32_MAX

typedef struct refgraph {
    tallyM_census c;
    size_t *off;             /* n + 1: referrers of cell i are src[off[i] .. off[i + 1]) */
    uint32_t *src;           /* referring cells */
    size_t nrefs;
} refgraph;

typedef struct edge_ctx {
    const tallyM_census *c;
    size_t *off;
    uint32_t *src;           /* NULL while counting */
    uint32_t from;           /* the cell being traversed */
    size_t nrefs;
} edge_ctx;

static void edge_visit(void *referent, void *arg)
{
    edge_ctx *e = arg;
    if (referent == NULL)
        return;
    size_t i = tallyM_census_find(e->c, referent);
    if (i == SIZE_MAX)
        return; /* not an object of this heap: no node to attach it to */
    if (e->src == NULL) {
        e->off[i]++;
        e->nrefs++;
    } else {
        e->src[--e->off[i]] = e->from;
    }
}

static void traverse_all(const tallyM_census *c, edge_ctx *e)
{
    for (size_t i = 0; i < c->n; i++) {
        const tallyM_cell *cell = &c->cells[i];
        if (cell->obj == NULL || cell->type->traverse == NULL)
            continue;
        e->from = (uint32_t)i;
        cell->type->traverse(cell->obj, edge_visit, e);
    }
}

static void graph_free(tally_rt *rt, refgraph *g)
{
    if (g->src)
        tallyH_free_quiet(&rt->heap, g->src);
    if (g->off)
        tallyH_free_quiet(&rt->heap, g->off);
    tallyM_census_free(rt, &g->c);
    memset(g, 0, sizeof *g);
}

static int no_memory(tally_rt *rt, const char *what)
{
    tallyB_error_set(&rt->heap.err, TALLY_ENOMEM, "no memory for %s", what);
    return -1;
}

static int graph_build(tally_rt *rt, refgraph *g)
{
    memset(g, 0, sizeof *g);
    if (tallyM_census_take(rt, &g->c) != 0)
        return -1;
    size_t n = g->c.n;
    if (n >= NONE) {
        graph_free(rt, g);
        return no_memory(rt, "a reference graph of more than 2^32 blocks");
    }
    g->off = tallyH_malloc_quiet(&rt->heap, (n + 1) * sizeof *g->off);
    if (g->off == NULL) {
        graph_free(rt, g);
        return no_memory(rt, "the referrer index");
    }
    memset(g->off, 0, (n + 1) * sizeof *g->off);
    edge_ctx e = {&g->c, g->off, NULL, 0, 0};
    traverse_all(&g->c, &e); /* off[i] = references to i */
    g->src = tallyH_malloc_quiet(&rt->heap, (e.nrefs ? e.nrefs : 1) * sizeof *g->src);
    if (g->src == NULL) {
        graph_free(rt, g);
        return no_memory(rt, "the referrer index");
    }
    size_t run = 0;
    for (size_t i = 0; i < n; i++) { /* off[i] = end of i's run */
        run += g->off[i];
        g->off[i] = run;
    }
    g->off[n] = run;
    e.src = g->src;
    traverse_all(&g->c, &e); /* decrements each end down to its start */
    g->nrefs = run;
    return 0;
}

/* References to cell i held by the heap's objects. */
static size_t inner_refs(const refgraph *g, size_t i)
{
    return g->off[i + 1] - g->off[i];
}

static bool is_root(const refgraph *g, size_t i)
{
    const tallyM_cell *cell = &g->c.cells[i];
    return (cell->flags & TALLY_CELL_IMMORTAL) || tally_refcount(cell->obj) > inner_refs(g, i);
}

/* "type at 0xADDR (size B, allocated at file:line)" */
static void print_object(tally_rt *rt, FILE *out, const tallyM_cell *cell)
{
    fprintf(out, "%s at %p (%zu B", tallyM_type_name(cell->type), cell->obj,
            tally_sizeof(cell->obj));
    const char *file;
    int line;
    if (tallyM_cell_site(rt, cell, &file, &line))
        fprintf(out, ", allocated at %s:%d", file, line);
    fputc(')', out);
}

static void print_root_why(const refgraph *g, size_t i, FILE *out)
{
    const tallyM_cell *cell = &g->c.cells[i];
    if (cell->flags & TALLY_CELL_IMMORTAL) {
        fprintf(out, " [immortal]");
        return;
    }
    size_t outside = tally_refcount(cell->obj) - inner_refs(g, i);
    fprintf(out, " [%zu reference%s from outside the heap]", outside, outside == 1 ? "" : "s");
}

/* Finds obj's cell, checking that obj is a live object of rt. */
static size_t target_of(tally_rt *rt, const refgraph *g, const void *obj)
{
    size_t t = tallyM_census_find(&g->c, obj);
    if (t == SIZE_MAX)
        tallyB_error_set(&rt->heap.err, TALLY_EINVAL, "%p is not a live object of this runtime",
                         obj);
    return t;
}

/* The reference graph of the heap in g, and obj's cell in it; SIZE_MAX (with the
 * error set and nothing left to free) when either cannot be had. */
static size_t graph_around(tally_rt *rt, void *obj, refgraph *g)
{
    if (graph_build(rt, g) != 0)
        return SIZE_MAX;
    size_t t = target_of(rt, g, obj);
    if (t == SIZE_MAX)
        graph_free(rt, g);
    return t;
}

int tally_why_alive(tally_rt *rt, void *obj, FILE *out)
{
    if (rt == NULL || out == NULL || !tally_is_object(rt, obj)) {
        if (rt != NULL)
            tallyB_error_set(&rt->heap.err, TALLY_EINVAL,
                             "tally_why_alive: %p is not a live object of this runtime", obj);
        return -1;
    }
    refgraph g;
    size_t t = graph_around(rt, obj, &g);
    if (t == SIZE_MAX)
        return -1;
    const tallyM_cell *cells = g.c.cells;
    if (is_root(&g, t)) {
        fprintf(out, "root: ");
        print_object(rt, out, &cells[t]);
        print_root_why(&g, t, out);
        fprintf(out, "\n  is itself a root: a chain of 0 references\n");
        graph_free(rt, &g);
        return 0;
    }
    size_t n = g.c.n;
    uint32_t *parent = tallyH_malloc_quiet(&rt->heap, 2 * n * sizeof *parent);
    if (parent == NULL) {
        graph_free(rt, &g);
        return no_memory(rt, "the search of tally_why_alive");
    }
    uint32_t *queue = parent + n;
    for (size_t i = 0; i < n; i++)
        parent[i] = NONE;
    parent[t] = (uint32_t)t; /* seen; the chain ends here */
    size_t head = 0, tail = 0, root = SIZE_MAX;
    queue[tail++] = (uint32_t)t;
    while (head < tail && root == SIZE_MAX) {
        uint32_t v = queue[head++];
        for (size_t k = g.off[v]; k < g.off[v + 1]; k++) {
            uint32_t u = g.src[k];
            if (parent[u] != NONE)
                continue;
            parent[u] = v;
            if (is_root(&g, u)) {
                root = u;
                break;
            }
            queue[tail++] = u;
        }
    }
    int links;
    if (root == SIZE_MAX) {
        print_object(rt, out, &cells[t]);
        fprintf(out, "\n  is reachable from no root: it is kept alive only by a reference cycle "
                     "(%zu other object%s %s to it), garbage the collector has not freed yet; "
                     "tally_gc_collect(rt, 2) would free it\n",
                tail - 1, tail == 2 ? "" : "s", tail == 2 ? "leads" : "lead");
        links = TALLY_WHY_GARBAGE;
    } else {
        links = 0;
        for (size_t v = root; v != t; v = parent[v])
            links++;
        fprintf(out, "a chain of %d reference%s from a root:\n", links, links == 1 ? "" : "s");
        fprintf(out, "root: ");
        print_object(rt, out, &cells[root]);
        print_root_why(&g, root, out);
        fputc('\n', out);
        for (size_t v = parent[root];; v = parent[v]) {
            fprintf(out, "  -> holds a reference to\n");
            print_object(rt, out, &cells[v]);
            fputs(v == t ? "  <- the object\n" : "\n", out);
            if (v == t)
                break;
        }
    }
    tallyH_free_quiet(&rt->heap, parent);
    graph_free(rt, &g);
    return links;
}

/* ---- the graph in DOT ------------------------------------------------------------------ */

/* A type name as a DOT string's contents: quotes and backslashes escaped. */
static void put_escaped(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', out);
        fputc(*s, out);
    }
}

long tally_trace_graph_dot(tally_rt *rt, void *obj, int depth, FILE *out)
{
    if (rt == NULL || out == NULL || depth < 0 || !tally_is_object(rt, obj)) {
        if (rt != NULL)
            tallyB_error_set(&rt->heap.err, TALLY_EINVAL,
                             "tally_trace_graph_dot: %p is not a live object of this runtime, "
                             "or depth %d is negative", obj, depth);
        return -1;
    }
    refgraph g;
    size_t t = graph_around(rt, obj, &g);
    if (t == SIZE_MAX)
        return -1;
    size_t n = g.c.n;
    uint32_t *dist = tallyH_malloc_quiet(&rt->heap, 3 * n * sizeof *dist);
    if (dist == NULL) {
        graph_free(rt, &g);
        return no_memory(rt, "tally_trace_graph_dot");
    }
    uint32_t *queue = dist + n, *stamp = dist + 2 * n;
    for (size_t i = 0; i < n; i++)
        dist[i] = stamp[i] = NONE;
    size_t head = 0, tail = 0;
    dist[t] = 0;
    queue[tail++] = (uint32_t)t;
    while (head < tail) { /* the set: within depth referrer steps of obj */
        uint32_t v = queue[head++];
        if (dist[v] >= (uint32_t)depth)
            continue;
        for (size_t k = g.off[v]; k < g.off[v + 1]; k++) {
            uint32_t u = g.src[k];
            if (dist[u] == NONE) {
                dist[u] = dist[v] + 1;
                queue[tail++] = u;
            }
        }
    }
    const tallyM_cell *cells = g.c.cells;
    fprintf(out, "digraph tally_referrers {\n");
    fprintf(out, "  node [shape=ellipse, fontname=\"monospace\"];\n");
    for (size_t q = 0; q < tail; q++) {
        uint32_t v = queue[q];
        fprintf(out, "  n%u [label=\"", v);
        put_escaped(out, tallyM_type_name(cells[v].type));
        fprintf(out, "\\n%zu B\"", tally_sizeof(cells[v].obj));
        if (v == t)
            fprintf(out, ", shape=box");
        if (is_root(&g, v))
            fprintf(out, ", peripheries=2, style=filled, fillcolor=lightgrey");
        fprintf(out, "];\n");
    }
    /* The references among the set: each referrer of each member, once. */
    for (size_t q = 0; q < tail; q++) {
        uint32_t v = queue[q];
        for (size_t k = g.off[v]; k < g.off[v + 1]; k++) {
            uint32_t u = g.src[k];
            if (dist[u] == NONE || stamp[u] == v)
                continue;
            stamp[u] = v;
            fprintf(out, "  n%u -> n%u;\n", u, v);
        }
    }
    fprintf(out, "}\n");
    tallyH_free_quiet(&rt->heap, dist);
    graph_free(rt, &g);
    return (long)tail;
}
