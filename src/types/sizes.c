/* sizes.c - tally_deep_sizeof: the memory an object owns, shared objects left out.
 *
 * Three steps, none recursive on the C stack:
 *   1. Walk: from the root, every object reached through the types' traverse
 *      callbacks is entered once in a scratch hash set (open addressing keyed by
 *      address), with the number of references to it that come from reached
 *      objects; a work stack holds the objects whose referents are still to be
 *      visited.  Immortal objects are neither entered nor traversed: they never
 *      count, so neither do the references they hold.
 *   2. Decide: an object counts if the root is it, or if every one of its
 *      references (its reference count) comes from a counting object.  Starting
 *      from "counts if all its references come from reached objects", each
 *      object that does not count takes the objects it refers to out of the
 *      count, transitively (the stack again), until nothing changes: the
 *      largest set that satisfies the rule, so cycles owned by the root count.
 *   3. Sum tally_sizeof of the counting objects.
 * The scratch memory (set and stack) comes from the runtime's heap and is freed
 * before returning.  No object is written to: the counts live in the set.
 */
#include "types/types.h"

#include <string.h>

#include "tally/gc.h"
#include "tally/heap.h"

/* One reached object: how many references to it come from reached objects, and
 * whether it counts (step 2). */
typedef struct reached {
    const void *obj;  /* NULL: empty slot */
    uint32_t refs;    /* saturates: a real count is below 2^31 */
    uint32_t counts;
} reached;

typedef struct walk {
    tally_rt *rt;
    const void *root;
    reached *set;     /* cap slots, a power of two, at most half full */
    size_t cap;
    size_t used;
    const void **stack;
    size_t depth;
    size_t stack_cap;
    int failed;       /* scratch memory ran out: the error is set */
} walk;

#define SET_MIN 64
#define STACK_MIN 64

/* Slot index for an address: objects are 8- or 16-byte aligned, so the low bits
 * carry nothing; a multiplicative hash spreads the rest. */
static size_t slot_of(const void *obj, size_t cap)
{
    uint64_t h = ((uint64_t)(uintptr_t)obj >> 3) * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 32) & (cap - 1);
}

/* The slot holding obj, or the empty slot where it would go. */
static reached *probe(reached *set, size_t cap, const void *obj)
{
    size_t i = slot_of(obj, cap);
    while (set[i].obj != NULL && set[i].obj != obj)
        i = (i + 1) & (cap - 1);
    return &set[i];
}

static bool grow_set(walk *w)
{
    size_t cap = w->cap ? w->cap * 2 : SET_MIN;
    reached *set = tally_calloc(w->rt, cap, sizeof *set);
    if (set == NULL)
        return false;
    for (size_t i = 0; i < w->cap; i++)
        if (w->set[i].obj != NULL)
            *probe(set, cap, w->set[i].obj) = w->set[i];
    tally_free(w->rt, w->set);
    w->set = set;
    w->cap = cap;
    return true;
}

static bool push(walk *w, const void *obj)
{
    if (w->depth == w->stack_cap) {
        size_t cap = w->stack_cap ? w->stack_cap * 2 : STACK_MIN;
        const void **s = tally_realloc(w->rt, w->stack, cap * sizeof *s);
        if (s == NULL)
            return false;
        w->stack = s;
        w->stack_cap = cap;
    }
    w->stack[w->depth++] = obj;
    return true;
}

/* Enters obj in the set (a new entry is queued for its own walk); NULL if the
 * scratch memory ran out. */
static reached *enter(walk *w, const void *obj)
{
    reached *r = w->cap ? probe(w->set, w->cap, obj) : NULL;
    if (r != NULL && r->obj != NULL)
        return r;
    if ((w->used + 1) * 2 > w->cap) {
        if (!grow_set(w))
            return NULL;
        r = probe(w->set, w->cap, obj);
    }
    if (!push(w, obj))
        return NULL;
    r->obj = obj;
    w->used++;
    return r;
}

/* Step 1's visitor: one more reference to referent from a reached object. */
static void count_ref(void *referent, void *arg)
{
    walk *w = arg;
    if (w->failed || referent == NULL || tally_is_immortal(referent))
        return;
    reached *r = enter(w, referent);
    if (r == NULL)
        w->failed = 1;
    else if (r->refs < UINT32_MAX)
        r->refs++;
}

/* Calls visit for each reference obj holds (none for non-containers). */
static void traverse(const void *obj, tally_visit_fn visit, walk *w)
{
    const tally_type *t = tally_type_of(obj);
    if (t->traverse != NULL)
        t->traverse((void *)obj, visit, w);
}

static bool walk_all(walk *w)
{
    if (enter(w, w->root) == NULL)
        return false;
    while (w->depth > 0 && !w->failed) {
        traverse(w->stack[--w->depth], count_ref, w);
    }
    return !w->failed;
}

/* Step 2's visitor: referent is held by an object that does not count, so it
 * does not count either (the root always does). */
static void uncount(void *referent, void *arg)
{
    walk *w = arg;
    if (w->failed || referent == NULL || referent == w->root || tally_is_immortal(referent))
        return;
    reached *r = probe(w->set, w->cap, referent);
    if (r->obj == NULL || !r->counts)
        return;
    r->counts = 0;
    if (!push(w, referent))
        w->failed = 1;
}

static bool decide(walk *w)
{
    for (size_t i = 0; i < w->cap; i++) {
        reached *r = &w->set[i];
        if (r->obj == NULL)
            continue;
        r->counts = r->obj == w->root || r->refs == tally_refcount(r->obj);
        if (!r->counts && !push(w, r->obj))
            return false;
    }
    while (w->depth > 0 && !w->failed)
        traverse(w->stack[--w->depth], uncount, w);
    return !w->failed;
}

static size_t sum(const walk *w)
{
    size_t total = 0;
    for (size_t i = 0; i < w->cap; i++)
        if (w->set[i].obj != NULL && w->set[i].counts)
            total += tally_sizeof(w->set[i].obj);
    return total;
}

size_t tally_deep_sizeof(void *o)
{
    walk w;
    memset(&w, 0, sizeof w);
    w.rt = tally_runtime_of(o);
    w.root = o;
    /* An exhausted heap may run a collection before failing an allocation, and
     * with it finalizers that could change or free objects in the set: with the
     * collector disabled for the walk, scratch allocations run no user code. */
    bool enabled = tally_gc_is_enabled(w.rt);
    tally_gc_disable(w.rt);
    size_t total = walk_all(&w) && decide(&w) ? sum(&w) : 0;
    if (enabled)
        tally_gc_enable(w.rt);
    tally_free(w.rt, w.stack);
    tally_free(w.rt, w.set);
    return total;
}
