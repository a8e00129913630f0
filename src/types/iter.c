/* iter.c - generators and lazy pipelines: range, map, filter, zip, enumerate, take.
 *
 * A range is an immutable, re-iterable sequence (below).  Every other object here
 * is an iterator (its ops have `next` and no `iter`, so
 * tally_iter returns the object itself) that produces one item per call and keeps
 * no buffer of items: a pipeline of any length runs in constant memory.  Sources
 * are taken with tally_iter at creation, so any iterable (a list, a range, another
 * pipeline) may be passed, and are held as strong references: the iterators are
 * containers whose traverse and clear cover them, so cycles through an iterator
 * (a generator whose state refers back to it, say) are collected.
 *
 * Once an iterator has reported its end or an error, it is exhausted: it drops
 * what it holds (sources, a generator's state) at once and every later call
 * reports the end again without touching anything.  A cleared iterator (the
 * collector broke a cycle through it) is exhausted the same way.
 */
#include "types/types.h"

#include <stdbool.h>
#include <stdio.h>

#include "runtime/runtime.h"

/* ---- shared helpers -------------------------------------------------------------- */

static void set_error(tally_rt *rt, tally_error code, const char *what)
{
    tallyB_error_set(tallyT_err(rt), code, "%s", what);
}

/* A callback returned failure: keep its error, or record one if it set none, so
 * that callers never mistake the failure for the end of the iteration. */
static int callback_failed(tally_rt *rt, const char *who)
{
    if (tally_last_error(rt) == TALLY_OK)
        tallyB_error_set(tallyT_err(rt), TALLY_EINVAL, "%s failed without setting an error", who);
    return -1;
}

/* Map, filter, enumerate and take hold their one source in their first member, as
 * the generator holds its state, so one traverse (and, but for the generator, one
 * clear) serves them all: a pointer to a struct is a pointer to its first member. */
static void first_traverse(void *self, tally_visit_fn visit, void *arg)
{
    void **first = self;
    if (*first != NULL)
        visit(*first, arg);
}

static void first_clear(void *self)
{
    tally_setref((void **)self, NULL);
}

/* ---- generators ------------------------------------------------------------------ */

typedef struct gen {
    void *state;         /* first: see first_traverse; NULL once exhausted */
    tally_gen_step step;
    bool done;           /* step reported the end or an error */
    bool running;        /* inside step: a nested next is refused */
} gen;

/* The collector breaking a cycle: the generator ends, as if step had. */
static void gen_clear(void *self)
{
    gen *g = self;
    g->done = true;
    tally_setref(&g->state, NULL);
}

static int gen_next(void *self, void **out)
{
    gen *g = self;
    if (g->done)
        return 0;
    tally_rt *rt = tally_runtime_of(g);
    if (g->running) { /* step asked its own generator for an item */
        set_error(rt, TALLY_EINVAL, "generator already running");
        return -1;
    }
    /* A reference of our own: the state survives a clear of g during step. */
    void *state = g->state;
    tally_xincref(state);
    g->running = true;
    int r = g->step(state, out);
    g->running = false;
    tally_xdecref(state);
    if (r == 1 && *out != NULL)
        return 1;
    if (r == 1) { /* an item that is not there: a broken step, reported as one */
        set_error(rt, TALLY_EINVAL, "generator step returned 1 without an item");
        r = -1;
    }
    *out = NULL;
    gen_clear(g);
    return r < 0 ? callback_failed(rt, "generator step") : 0;
}

static const tally_type_ops gen_ops = {.next = gen_next};

static const tally_type gen_type = {
    .name = "generator",
    .size = sizeof(gen),
    .flags = TALLY_TYPE_CONTAINER,
    .traverse = first_traverse,
    .clear = gen_clear,
    .ops = &gen_ops,
};

void *tally_gen_new(tally_rt *rt, tally_gen_step step, void *state)
{
    if (step == NULL) {
        set_error(rt, TALLY_EINVAL, "generator without a step function");
        return NULL;
    }
    gen *g = tally_new(rt, &gen_type);
    if (g == NULL)
        return NULL;
    tally_setref(&g->state, state);
    g->step = step;
    return g;
}

/* ---- range ----------------------------------------------------------------------- */

/* A range is an immutable sequence, as in Python: iterating it makes a fresh
 * range_iterator each time, so one range can be walked any number of times.
 * Neither holds references: both are plain objects.  The iterator's `next` is
 * only advanced while items remain, so it never steps past stop and cannot
 * overflow, whatever the int64 bounds. */
typedef struct range {
    int64_t start;
    int64_t step;
    uint64_t len; /* Python's len(range(...)) */
    int64_t stop; /* as given, for repr */
} range;

typedef struct range_iter {
    int64_t next;
    int64_t step;
    uint64_t left; /* items still to produce */
} range_iter;

static int range_iter_next(void *self, void **out)
{
    range_iter *r = self;
    if (r->left == 0)
        return 0;
    void *item = tally_int(tally_runtime_of(r), r->next);
    if (item == NULL) {
        r->left = 0; /* an error ends the iteration, as everywhere here */
        return -1;
    }
    if (--r->left > 0)
        r->next += r->step;
    *out = item;
    return 1;
}

static const tally_type_ops range_iter_ops = {.next = range_iter_next};

static const tally_type range_iter_type = {
    .name = "range_iterator",
    .size = sizeof(range_iter),
    .ops = &range_iter_ops,
};

static void *range_iter_new(void *self)
{
    const range *r = self;
    range_iter *it = tally_new(tally_runtime_of(self), &range_iter_type);
    if (it == NULL)
        return NULL;
    it->next = r->start;
    it->step = r->step;
    it->left = r->len;
    return it;
}

/* Two ranges are equal when they produce the same ints (Python's rule): same
 * length, and the same first item and step where they matter. */
static int range_eq(void *self, void *other)
{
    if (!tally_is_range(other))
        return 0;
    const range *a = self, *b = other;
    if (a->len != b->len)
        return 0;
    return a->len == 0 || (a->start == b->start && (a->len == 1 || a->step == b->step));
}

/* Consistent with range_eq: what eq ignores is normalised away first. */
static int range_hash(void *self, uint64_t *out)
{
    const range *r = self;
    uint64_t start = r->len > 0 ? (uint64_t)r->start : 0;
    uint64_t step = r->len > 1 ? (uint64_t)r->step : 1;
    uint64_t h = r->len * 0x9E3779B97F4A7C15ull;
    h = (h ^ (h >> 29) ^ start) * 0xBF58476D1CE4E5B9ull;
    h = (h ^ (h >> 31) ^ step) * 0x94D049BB133111EBull;
    *out = h ^ (h >> 32);
    return 0;
}

/* "range(0, 10)" or "range(0, 10, 2)", as Python prints it. */
static int range_repr(void *self, tally_strbuf *out)
{
    const range *r = self;
    char buf[96];
    int n = r->step == 1
                ? snprintf(buf, sizeof buf, "range(%lld, %lld)", (long long)r->start,
                           (long long)r->stop)
                : snprintf(buf, sizeof buf, "range(%lld, %lld, %lld)", (long long)r->start,
                           (long long)r->stop, (long long)r->step);
    return tally_strbuf_append(out, buf, (size_t)n);
}

static const tally_type_ops range_ops = {
    .hash = range_hash,
    .eq = range_eq,
    .repr = range_repr,
    .iter = range_iter_new,
};

const tally_type tally_range_type = {
    .name = "range",
    .size = sizeof(range),
    .ops = &range_ops,
};

/* Python's len(range(start, stop, step)), computed in unsigned arithmetic: the
 * distance between two int64 values always fits in a uint64. */
static uint64_t range_length(int64_t start, int64_t stop, int64_t step)
{
    if (step > 0 && start < stop)
        return ((uint64_t)stop - (uint64_t)start - 1) / (uint64_t)step + 1;
    if (step < 0 && start > stop)
        return ((uint64_t)start - (uint64_t)stop - 1) / (0 - (uint64_t)step) + 1;
    return 0;
}

void *tally_range(tally_rt *rt, int64_t start, int64_t stop, int64_t step)
{
    if (step == 0) {
        set_error(rt, TALLY_EINVAL, "range() step must not be zero");
        return NULL;
    }
    range *r = tally_new(rt, &tally_range_type);
    if (r == NULL)
        return NULL;
    r->start = start;
    r->stop = stop;
    r->step = step;
    r->len = range_length(start, stop, step);
    return r;
}

int tally_is_range(const void *o)
{
    return tallyT_is(o, &tally_range_type);
}

uint64_t tally_range_size(const void *r)
{
    return tally_is_range(r) ? ((const range *)r)->len : 0;
}

int tally_range_get(const void *r, int64_t i, int64_t *out)
{
    if (!tally_is_range(r)) {
        if (r != NULL)
            set_error(tally_runtime_of(r), TALLY_EINVAL, "tally_range_get: not a range");
        return -1;
    }
    const range *rg = r;
    uint64_t k = i >= 0 ? (uint64_t)i : rg->len - (0 - (uint64_t)i); /* Python's r[-1] */
    if (i < 0 ? (0 - (uint64_t)i) > rg->len : k >= rg->len) {
        set_error(tally_runtime_of(r), TALLY_EINVAL, "range index out of range");
        return -1;
    }
    /* start + k * step stays between start and the last item: wrapping arithmetic
     * in uint64 gives the exact int64. */
    *out = (int64_t)((uint64_t)rg->start + k * (uint64_t)rg->step);
    return 0;
}

/* ---- map, filter, enumerate, take -------------------------------------------------- */

typedef struct stage {
    void *src; /* first: see first_traverse; NULL once exhausted */
    union {
        struct { tally_map_fn fn; void *arg; } map;
        struct { tally_pred_fn pred; void *arg; } filter;
        struct { int64_t index; bool spent; } enumerate; /* spent: index passed INT64_MAX */
        size_t take_left;
    } u;
} stage;

/* The next item of p's source, as tally_iter_next; the end or an error exhausts p
 * (the source is released, and later calls report the end). */
static int stage_pull(stage *p, void **item)
{
    *item = NULL;
    if (p->src == NULL)
        return 0;
    int r = tally_iter_next(p->src, item);
    if (r != 1)
        tally_setref(&p->src, NULL);
    return r;
}

/* A callback or an allocation of p failed: p is exhausted, the error stands. */
static int stage_fail(stage *p, const char *who)
{
    tally_setref(&p->src, NULL);
    return who != NULL ? callback_failed(tally_runtime_of(p), who) : -1;
}

/* A new iterator of `type` over tally_iter(iterable), or NULL with the error set. */
static stage *stage_new(tally_rt *rt, const tally_type *type, void *iterable)
{
    if (iterable == NULL) {
        set_error(rt, TALLY_EINVAL, "NULL iterable");
        return NULL;
    }
    void *src = tally_iter(iterable);
    if (src == NULL)
        return NULL;
    stage *p = tally_new(rt, type);
    if (p == NULL) {
        tally_decref(src);
        return NULL;
    }
    p->src = src; /* the reference tally_iter returned */
    return p;
}

static int map_next(void *self, void **out)
{
    stage *p = self;
    void *item;
    int r = stage_pull(p, &item);
    if (r != 1)
        return r;
    *out = p->u.map.fn(item, p->u.map.arg);
    tally_decref(item);
    return *out != NULL ? 1 : stage_fail(p, "map function");
}

static int filter_next(void *self, void **out)
{
    stage *p = self;
    for (;;) {
        void *item;
        int r = stage_pull(p, &item);
        if (r != 1)
            return r;
        int keep = p->u.filter.pred(item, p->u.filter.arg);
        if (keep > 0) {
            *out = item;
            return 1;
        }
        tally_decref(item);
        if (keep < 0)
            return stage_fail(p, "filter predicate");
    }
}

static int enumerate_next(void *self, void **out)
{
    stage *p = self;
    tally_rt *rt = tally_runtime_of(p);
    if (p->src != NULL && p->u.enumerate.spent) {
        set_error(rt, TALLY_EOVERFLOW, "enumerate() index past INT64_MAX");
        return stage_fail(p, NULL);
    }
    void *item;
    int r = stage_pull(p, &item);
    if (r != 1)
        return r;
    void *index = tally_int(rt, p->u.enumerate.index);
    void *pair = index != NULL ? tally_tuple_of(rt, 2, index, item) : NULL;
    tally_xdecref(index);
    tally_decref(item);
    if (pair == NULL)
        return stage_fail(p, NULL);
    if (p->u.enumerate.index == INT64_MAX)
        p->u.enumerate.spent = true;
    else
        p->u.enumerate.index++;
    *out = pair;
    return 1;
}

static int take_next(void *self, void **out)
{
    stage *p = self;
    if (p->u.take_left == 0) { /* never pull more than n from the source */
        tally_setref(&p->src, NULL);
        return 0;
    }
    int r = stage_pull(p, out);
    if (r == 1 && --p->u.take_left == 0)
        tally_setref(&p->src, NULL); /* done: let the source go now */
    return r;
}

static const tally_type_ops map_ops = {.next = map_next};
static const tally_type_ops filter_ops = {.next = filter_next};
static const tally_type_ops enumerate_ops = {.next = enumerate_next};
static const tally_type_ops take_ops = {.next = take_next};

#define STAGE_TYPE(ident, label, operations)                                             \
    static const tally_type ident = {                                                   \
        .name = label, .size = sizeof(stage), .flags = TALLY_TYPE_CONTAINER,              \
        .traverse = first_traverse, .clear = first_clear, .ops = &operations,          \
    }
STAGE_TYPE(map_type, "map", map_ops);
STAGE_TYPE(filter_type, "filter", filter_ops);
STAGE_TYPE(enumerate_type, "enumerate", enumerate_ops);
STAGE_TYPE(take_type, "take", take_ops);

void *tally_map(tally_rt *rt, tally_map_fn fn, void *arg, void *iterable)
{
    if (fn == NULL) {
        set_error(rt, TALLY_EINVAL, "map() without a function");
        return NULL;
    }
    stage *p = stage_new(rt, &map_type, iterable);
    if (p != NULL) {
        p->u.map.fn = fn;
        p->u.map.arg = arg;
    }
    return p;
}

void *tally_filter(tally_rt *rt, tally_pred_fn pred, void *arg, void *iterable)
{
    if (pred == NULL) {
        set_error(rt, TALLY_EINVAL, "filter() without a predicate");
        return NULL;
    }
    stage *p = stage_new(rt, &filter_type, iterable);
    if (p != NULL) {
        p->u.filter.pred = pred;
        p->u.filter.arg = arg;
    }
    return p;
}

void *tally_enumerate(tally_rt *rt, void *iterable, int64_t start)
{
    stage *p = stage_new(rt, &enumerate_type, iterable);
    if (p != NULL)
        p->u.enumerate.index = start;
    return p;
}

void *tally_take(tally_rt *rt, void *iterable, size_t n)
{
    stage *p = stage_new(rt, &take_type, iterable);
    if (p != NULL) {
        p->u.take_left = n;
        if (n == 0)
            tally_setref(&p->src, NULL); /* nothing will ever be pulled */
    }
    return p;
}

/* ---- zip --------------------------------------------------------------------------- */

/* n sources, then n scratch slots where one round of items is gathered for the
 * tuple.  Scratch items are owned only inside zip_next, which leaves the slots
 * NULL; traverse reports the sources alone. */
typedef struct zip {
    size_t n;
    bool done;    /* a source ended or failed: every source was released */
    bool running; /* inside zip_next: a nested call would reuse the scratch slots */
    void *slot[]; /* slot[0..n): sources; slot[n..2n): scratch */
} zip;

static void zip_traverse(void *self, tally_visit_fn visit, void *arg)
{
    zip *z = self;
    for (size_t i = 0; i < z->n; i++)
        if (z->slot[i] != NULL)
            visit(z->slot[i], arg);
}

/* Releases every source (and marks the zip exhausted). */
static void zip_clear(void *self)
{
    zip *z = self;
    z->done = true;
    for (size_t i = 0; i < z->n; i++)
        tally_setref(&z->slot[i], NULL);
}

/* Fills the scratch slots with one item per source: 1, or 0 / -1 with the items
 * gathered so far released (Python's zip drops them too). */
static int zip_gather(zip *z)
{
    void **items = z->slot + z->n;
    for (size_t i = 0; i < z->n; i++) {
        int r = z->slot[i] != NULL ? tally_iter_next(z->slot[i], &items[i]) : 0;
        if (r != 1) {
            for (size_t k = 0; k < i; k++)
                tally_setref(&items[k], NULL);
            items[i] = NULL;
            return r;
        }
    }
    return 1;
}

static int zip_next(void *self, void **out)
{
    zip *z = self;
    if (z->done)
        return 0;
    tally_rt *rt = tally_runtime_of(z);
    if (z->running) {
        set_error(rt, TALLY_EINVAL, "zip already running");
        return -1;
    }
    z->running = true;
    int r = zip_gather(z);
    z->running = false;
    if (r != 1) {
        zip_clear(z);
        return r;
    }
    void **items = z->slot + z->n;
    *out = tally_tuple(rt, z->n, items);
    for (size_t i = 0; i < z->n; i++)
        tally_setref(&items[i], NULL);
    return *out != NULL ? 1 : -1;
}

static const tally_type_ops zip_ops = {.next = zip_next};

static const tally_type zip_type = {
    .name = "zip",
    .size = sizeof(zip),
    .item_size = 2 * sizeof(void *),
    .flags = TALLY_TYPE_CONTAINER,
    .traverse = zip_traverse,
    .clear = zip_clear,
    .ops = &zip_ops,
};

void *tally_zip(tally_rt *rt, size_t n, void *const iterables[])
{
    if (n > 0 && iterables == NULL) {
        set_error(rt, TALLY_EINVAL, "zip() of NULL iterables");
        return NULL;
    }
    zip *z = tally_new_var(rt, &zip_type, n); /* overflow of n is checked there */
    if (z == NULL)
        return NULL;
    z->n = n;
    z->done = n == 0; /* zip() of nothing is empty */
    for (size_t i = 0; i < n; i++) {
        z->slot[i] = iterables[i] != NULL ? tally_iter(iterables[i]) : NULL;
        if (z->slot[i] == NULL) {
            if (iterables[i] == NULL)
                set_error(rt, TALLY_EINVAL, "NULL iterable");
            tally_decref(z); /* releases the sources taken so far */
            return NULL;
        }
    }
    return z;
}
