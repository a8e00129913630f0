/* tuple.c - the built-in tuple: a fixed-size, immutable sequence of objects.
 *
 * A tuple is one var-size container object (tally_new_var): its size, then its
 * items inline, each a strong reference.  Users never change a tuple after
 * tally_tuple() returns it, but the collector may clear one to break a cycle
 * (a tuple holding a list that holds the tuple), after which its slots are NULL:
 * every reader below skips or reports NULL slots instead of following them.
 *
 * The empty tuple is one immortal object per runtime (rt->types.empty_tuple),
 * made on the first request, as CPython shares its empty tuple.
 *
 * The tuple iterator is a small container holding the tuple and an index; at the
 * end it lets go of the tuple early, as CPython's does.
 */
#include "types/types.h"

#include <stdarg.h>
#include <string.h>

#include "runtime/runtime.h"

typedef struct tuple {
    size_t size;
    void *items[]; /* size strong references (NULL only after a collector clear) */
} tuple;

typedef struct tuple_iter {
    tuple *seq;   /* NULL once exhausted */
    size_t index; /* next item to hand out */
} tuple_iter;


/* ---- the tuple type ---------------------------------------------------------------- */

static void tuple_traverse(void *self, tally_visit_fn visit, void *arg)
{
    tuple *t = self;
    for (size_t i = 0; i < t->size; i++)
        if (t->items[i] != NULL)
            visit(t->items[i], arg);
}

/* Only the collector (and death) clears a tuple: each slot becomes NULL before
 * its old value is released, so finalizers that run meanwhile see a valid tuple. */
/* Items go last to first, as CPython's tupledealloc releases them: the order in
 * which they die shows through finalizers and weak references (the differential
 * test against python3 checks it). */
static void tuple_clear(void *self)
{
    tuple *t = self;
    for (size_t i = t->size; i-- > 0;)
        tally_setref(&t->items[i], NULL);
}

/* The constants and the lane step of xxHash64 (public domain constants), used the
 * way CPython's tuplehash uses them: each item's hash is one lane. */
#define XXH_P1 0x9E3779B185EBCA87ull
#define XXH_P2 0xC2B2AE3D27D4EB4Full
#define XXH_P5 0x27D4EB2F165667C5ull

static uint64_t rotl64(uint64_t x, unsigned r)
{
    return (x << r) | (x >> (64u - r));
}

static int tuple_hash(void *self, uint64_t *out)
{
    tuple *t = self;
    uint64_t acc = XXH_P5;
    for (size_t i = 0; i < t->size; i++) {
        uint64_t lane;
        if (t->items[i] == NULL || tally_hash(t->items[i], &lane) != 0)
            return -1; /* an unhashable item (its error is set) */
        acc += lane * XXH_P2;
        acc = rotl64(acc, 31);
        acc *= XXH_P1;
    }
    /* The length goes in last, so that () and (x,) with x hashing to 0 differ. */
    acc += (uint64_t)t->size ^ (XXH_P5 ^ 3527539u);
    *out = acc;
    return 0;
}

static int tuple_eq(void *self, void *other)
{
    if (!tallyT_is(other, &tally_tuple_type))
        return 0;
    tuple *a = self, *b = other;
    if (a->size != b->size)
        return 0;
    for (size_t i = 0; i < a->size; i++) {
        int r = tally_eq(a->items[i], b->items[i]);
        if (r != 1)
            return r; /* 0 (differ) or -1 (error) */
    }
    return 1;
}

/* "(a, b)", "(a,)" for one item, "()" for none. */
static int tuple_repr(void *self, tally_strbuf *out)
{
    tuple *t = self;
    if (tally_strbuf_append(out, "(", 1) != 0)
        return -1;
    for (size_t i = 0; i < t->size; i++) {
        if (i > 0 && tally_strbuf_append(out, ", ", 2) != 0)
            return -1;
        if (tally_strbuf_append_repr(out, t->items[i]) != 0)
            return -1;
    }
    if (t->size == 1 && tally_strbuf_append(out, ",", 1) != 0)
        return -1;
    return tally_strbuf_append(out, ")", 1);
}

static void *tuple_iter_new(void *self)
{
    tally_rt *rt = tally_runtime_of(self);
    tuple_iter *it = tally_new(rt, &tallyT_tuple_iter_type);
    if (it == NULL)
        return NULL;
    tally_setref(&it->seq, self);
    return it;
}

static size_t tuple_owned_bytes(const void *self)
{
    (void)self;
    return 0; /* the items live in the tuple's own block */
}

static const tally_type_ops tuple_ops = {
    .hash = tuple_hash,
    .eq = tuple_eq,
    .repr = tuple_repr,
    .iter = tuple_iter_new,
    .owned_bytes = tuple_owned_bytes,
};

const tally_type tally_tuple_type = {
    .name = "tuple",
    .size = offsetof(tuple, items),
    .item_size = sizeof(void *),
    .flags = TALLY_TYPE_CONTAINER,
    .traverse = tuple_traverse,
    .clear = tuple_clear,
    .ops = &tuple_ops,
};

/* ---- the tuple iterator ---------------------------------------------------------- */

static void tuple_iter_traverse(void *self, tally_visit_fn visit, void *arg)
{
    tuple_iter *it = self;
    if (it->seq != NULL)
        visit(it->seq, arg);
}

static void tuple_iter_clear(void *self)
{
    tally_setref(&((tuple_iter *)self)->seq, NULL);
}

static int tuple_iter_next(void *self, void **out)
{
    tuple_iter *it = self;
    tuple *t = it->seq;
    while (t != NULL && it->index < t->size) {
        void *item = t->items[it->index++];
        if (item != NULL) { /* NULL only in a tuple the collector cleared */
            tally_incref(item);
            *out = item;
            return 1;
        }
    }
    tuple_iter_clear(it); /* exhausted: the tuple may go now */
    return 0;
}

static const tally_type_ops tuple_iter_ops = {.next = tuple_iter_next};

const tally_type tallyT_tuple_iter_type = {
    .name = "tuple_iterator",
    .size = sizeof(tuple_iter),
    .flags = TALLY_TYPE_CONTAINER,
    .traverse = tuple_iter_traverse,
    .clear = tuple_iter_clear,
    .ops = &tuple_iter_ops,
};

/* ---- construction and access ------------------------------------------------------- */

/* The runtime's empty tuple, made immortal on the first request. */
static void *empty_tuple(tally_rt *rt)
{
    if (rt->types.empty_tuple == NULL) {
        tuple *t = tally_new_var(rt, &tally_tuple_type, 0);
        if (t == NULL)
            return NULL;
        tally_immortalize(t); /* also untracks it: it holds nothing */
        rt->types.empty_tuple = t;
    }
    return rt->types.empty_tuple;
}

static void *null_item(tally_rt *rt, size_t i)
{
    tallyB_error_set(tallyT_err(rt), TALLY_EINVAL, "tally_tuple: item %zu is NULL", i);
    return NULL;
}

void *tally_tuple(tally_rt *rt, size_t n, void *const items[])
{
    if (n == 0)
        return empty_tuple(rt);
    for (size_t i = 0; i < n; i++)
        if (items[i] == NULL)
            return null_item(rt, i);
    tuple *t = tally_new_var(rt, &tally_tuple_type, n);
    if (t == NULL)
        return NULL;
    /* Nothing below allocates, so no collection sees the tuple half filled. */
    t->size = n;
    for (size_t i = 0; i < n; i++) {
        tally_incref(items[i]);
        t->items[i] = items[i];
    }
    return t;
}

/* Checks the n variable arguments of ap for NULL (ap is consumed). */
static bool va_items_ok(tally_rt *rt, size_t n, va_list ap)
{
    for (size_t i = 0; i < n; i++)
        if (va_arg(ap, void *) == NULL) {
            null_item(rt, i);
            return false;
        }
    return true;
}

void *tally_tuple_of(tally_rt *rt, size_t n, ...)
{
    va_list ap, check;
    va_start(ap, n);
    va_copy(check, ap);
    bool ok = va_items_ok(rt, n, check);
    va_end(check);
    tuple *t = NULL;
    if (ok)
        t = n == 0 ? empty_tuple(rt) : tally_new_var(rt, &tally_tuple_type, n);
    if (t != NULL && n != 0) {
        t->size = n;
        for (size_t i = 0; i < n; i++) {
            void *o = va_arg(ap, void *);
            tally_incref(o);
            t->items[i] = o;
        }
    }
    va_end(ap);
    return t;
}

int tally_is_tuple(const void *o)
{
    return tallyT_is(o, &tally_tuple_type);
}

/* t as a tuple, or NULL with the error set (when there is a runtime to set it in). */
static const tuple *as_tuple(const void *t, const char *fn)
{
    if (tallyT_is(t, &tally_tuple_type))
        return t;
    if (t != NULL)
        tallyB_error_set(tallyT_err(tally_runtime_of(t)), TALLY_EINVAL, "%s: not a tuple", fn);
    return NULL;
}

size_t tally_tuple_size(const void *t)
{
    const tuple *tp = as_tuple(t, "tally_tuple_size");
    return tp != NULL ? tp->size : 0;
}

void *tally_tuple_get(const void *t, size_t i)
{
    const tuple *tp = as_tuple(t, "tally_tuple_get");
    if (tp == NULL)
        return NULL;
    if (i >= tp->size) {
        tallyB_error_set(tallyT_err(tally_runtime_of(t)), TALLY_EINVAL,
                         "tuple index %zu out of range (size %zu)", i, tp->size);
        return NULL;
    }
    return tp->items[i];
}
