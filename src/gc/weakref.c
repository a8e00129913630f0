/* weakref.c - weak references: objects that point at a target without keeping
 * it alive, cleared (and their callback run) when the target dies.
 *
 * A weak reference is an object of the built-in type "weakref".  It is a tracked
 * container that reports no references, as in CPython, so that a weak reference
 * that only garbage refers to is itself garbage and counted by the collector.
 * The weak references of one target form a list, newest first, reached through a
 * hash table keyed by the target's address (gc.h); the table grows only when a
 * weak reference is created, never while the collector or a death removes
 * entries, so clearing never allocates.
 *
 * Order, as CPython: on death by count, the finalizer has run already; every weak
 * reference is cleared first, then the callbacks run, newest first.  In the
 * collector, weak references that are themselves unreachable are cleared without
 * their callback, and the callbacks of the others run before any finalizer.
 */
#include "gc/gc.h"

#include <string.h>

#include "runtime/runtime.h"

static void wr_traverse(void *self, tally_visit_fn visit, void *arg)
{
    (void)self;
    (void)visit;
    (void)arg;
}

static void wr_destroy(void *self);

/* The descriptor of weak references (shared by every runtime). */
static const tally_type weakref_type = {
    .name = "weakref",
    .size = sizeof(tallyG_weakref),
    .flags = TALLY_TYPE_CONTAINER,
    .traverse = wr_traverse,
    .destroy = wr_destroy,
};

/* ---- the table: object -> newest weak reference ---------------------------------- */

static size_t wr_hash(const void *o, size_t cap)
{
    return (size_t)(((uintptr_t)o >> 3) * 0x9E3779B97F4A7C15ull >> 20) & (cap - 1);
}

static tallyG_wrslot *slot_find(tallyG_state *g, const void *o)
{
    if (g->wr_cap == 0)
        return NULL;
    for (size_t i = wr_hash(o, g->wr_cap);; i = (i + 1) & (g->wr_cap - 1)) {
        tallyG_wrslot *s = &g->wr_slots[i];
        if (s->object == o)
            return s;
        if (s->object == NULL)
            return NULL;
    }
}

static void slot_put(tallyG_state *g, void *o, tallyG_weakref *first)
{
    size_t i = wr_hash(o, g->wr_cap);
    while (g->wr_slots[i].object != NULL)
        i = (i + 1) & (g->wr_cap - 1);
    g->wr_slots[i] = (tallyG_wrslot){o, first};
}

/* Removes slot s, shifting back the entries of its probe run (no tombstones). */
static void slot_remove(tallyG_state *g, tallyG_wrslot *s)
{
    size_t mask = g->wr_cap - 1, hole = (size_t)(s - g->wr_slots);
    for (size_t i = (hole + 1) & mask; g->wr_slots[i].object != NULL; i = (i + 1) & mask) {
        size_t home = wr_hash(g->wr_slots[i].object, g->wr_cap);
        /* Move entry i into the hole unless its home lies cyclically in (hole, i]. */
        if (((i - home) & mask) >= ((i - hole) & mask)) {
            g->wr_slots[hole] = g->wr_slots[i];
            hole = i;
        }
    }
    g->wr_slots[hole] = (tallyG_wrslot){NULL, NULL};
    g->wr_used--;
}

/* Room for one more entry (at most half full), or false with the error set.  The
 * allocation may run a collection whose finalizers make weak references (and
 * grow the table) meanwhile: the table is read again once it returns. */
static bool table_reserve(tally_rt *rt)
{
    tallyG_state *g = &rt->gc;
    if ((g->wr_used + 1) * 2 <= g->wr_cap)
        return true;
    size_t cap = g->wr_cap ? g->wr_cap * 2 : 64;
    tallyG_wrslot *slots = tally_calloc(rt, cap, sizeof *slots);
    if (slots == NULL)
        return false;
    if ((g->wr_used + 1) * 2 <= g->wr_cap || g->wr_cap >= cap) { /* grown meanwhile */
        tally_free(rt, slots);
        return table_reserve(rt);
    }
    tallyG_wrslot *old = g->wr_slots;
    size_t oldcap = g->wr_cap;
    g->wr_slots = slots;
    g->wr_cap = cap;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].object != NULL)
            slot_put(g, old[i].object, old[i].first);
    tally_free(rt, old);
    return true;
}

/* ---- lists of one target --------------------------------------------------------- */

/* Takes wr off its target's list; the target loses its table entry with its last
 * weak reference.  wr->target becomes NULL. */
static void wr_detach(tally_rt *rt, tallyG_weakref *wr)
{
    void *target = wr->target;
    if (target == NULL)
        return;
    if (wr->prev != NULL) {
        wr->prev->next = wr->next;
    } else {
        tallyG_wrslot *s = slot_find(&rt->gc, target);
        if (wr->next != NULL) {
            s->first = wr->next;
        } else {
            slot_remove(&rt->gc, s);
            tallyO_head(target)->info &= ~TALLY_OF_WEAKREFS;
        }
    }
    if (wr->next != NULL)
        wr->next->prev = wr->prev;
    wr->next = wr->prev = NULL;
    wr->target = NULL;
}

static void wr_destroy(void *self)
{
    wr_detach(tally_runtime_of(self), self);
}

/* Detaches every weak reference of o; returns the list (still linked by next). */
static tallyG_weakref *detach_all(tally_rt *rt, void *o)
{
    tallyG_wrslot *s = slot_find(&rt->gc, o);
    tallyG_weakref *first = s->first;
    slot_remove(&rt->gc, s);
    tallyO_head(o)->info &= ~TALLY_OF_WEAKREFS;
    for (tallyG_weakref *wr = first; wr != NULL; wr = wr->next)
        wr->target = NULL;
    return first;
}

/* Calls the callbacks queued on `due` (each holding a reference to its weak
 * reference); returns how many weak references died when it was dropped. */
static long call_due(tally_rt *rt, tallyG_weakref *due)
{
    long freed = 0;
    while (due != NULL) {
        tallyG_weakref *wr = due;
        due = wr->cbnext;
        wr->cbnext = NULL;
        rt->gc.user_calls++;
        wr->cb(wr, wr->arg);
        if (tallyO_head(wr)->rc == 1)
            freed++;
        tally_decref(wr);
    }
    return freed;
}

static bool unreachable(const void *o)
{
    return (tallyO_info(o) & TALLY_OF_STATE_MASK) == TALLY_OF_UNREACHED;
}

/* Detaches every weak reference of o and appends to the queue at *tail those
 * whose callback is due: the ones with a callback that are neither dying (count
 * 0, waiting for their own destruction) nor, in a collection, garbage. */
static tallyG_weakref **queue_due(tally_rt *rt, void *o, tallyG_weakref **tail)
{
    tallyG_weakref *wr = detach_all(rt, o);
    while (wr != NULL) {
        tallyG_weakref *next = wr->next;
        wr->next = wr->prev = NULL;
        if (wr->cb != NULL && tallyO_head(wr)->rc != 0 && !unreachable(wr)) {
            tally_incref(wr);
            *tail = wr;
            tail = &wr->cbnext;
        }
        wr = next;
    }
    return tail;
}

void tallyG_weakrefs_die(tally_rt *rt, void *o)
{
    tallyG_weakref *due = NULL;
    queue_due(rt, o, &due);
    call_due(rt, due);
}

long tallyG_weakrefs_unreachable(tally_rt *rt, tallyG_list set)
{
    tallyG_weakref *due = NULL, **tail = &due;
    for (uint32_t h = set.s->next; h != set.h;) {
        tallyO_link *l = tallyO_at(&rt->heap, h);
        h = l->next;
        void *o = tallyO_from_link(l);
        if (tallyG_is_weakref(rt, o)) /* garbage itself: cleared, no callback */
            wr_detach(rt, o);
        if (tallyO_info(o) & TALLY_OF_WEAKREFS)
            tail = queue_due(rt, o, tail);
    }
    return call_due(rt, due);
}

/* ---- the public calls ------------------------------------------------------------ */

bool tallyG_is_weakref(tally_rt *rt, const void *o)
{
    return tallyO_type(rt, o) == &weakref_type;
}

int tally_is_weakref(const void *o)
{
    return o != NULL && tallyG_is_weakref(tally_runtime_of(o), o);
}

/* A weak reference without callback or argument already pointing at target. */
static tallyG_weakref *shared_ref(tally_rt *rt, void *target)
{
    if (!(tallyO_info(target) & TALLY_OF_WEAKREFS))
        return NULL;
    for (tallyG_weakref *wr = slot_find(&rt->gc, target)->first; wr != NULL; wr = wr->next)
        if (wr->cb == NULL && wr->arg == NULL)
            return wr;
    return NULL;
}

void *tally_weakref_new(tally_rt *rt, void *target, tally_weakref_cb cb, void *arg)
{
    const tally_head *th = tallyO_head(target);
    if (th->rc == 0 || (th->info & TALLY_OF_DYING)) {
        tallyO_misuse(rt, target, TALLY_EDEAD, "weak reference");
        return NULL;
    }
    if (cb == NULL && arg == NULL) {
        tallyG_weakref *wr = shared_ref(rt, target);
        if (wr != NULL) {
            tally_incref(wr);
            return wr;
        }
    }
    if (!(th->info & TALLY_OF_WEAKREFS) && !table_reserve(rt))
        return NULL;
    tallyG_weakref *wr = tally_new(rt, &weakref_type);
    if (wr == NULL)
        return NULL;
    wr->target = target;
    wr->cb = cb;
    wr->arg = arg;
    if (tallyO_info(target) & TALLY_OF_WEAKREFS) {
        tallyG_wrslot *s = slot_find(&rt->gc, target);
        wr->next = s->first;
        s->first->prev = wr;
        s->first = wr;
    } else {
        slot_put(&rt->gc, target, wr);
        rt->gc.wr_used++;
        tallyO_head(target)->info |= TALLY_OF_WEAKREFS;
    }
    return wr;
}

void *tally_weakref_get(void *weakref)
{
    tallyG_weakref *wr = weakref;
    if (wr->target == NULL)
        return NULL;
    tally_incref(wr->target);
    return wr->target;
}

void *tally_weakref_arg(const void *weakref)
{
    return ((const tallyG_weakref *)weakref)->arg;
}

size_t tally_weakref_count(const void *o)
{
    if (!(tallyO_info(o) & TALLY_OF_WEAKREFS))
        return 0;
    size_t n = 0;
    for (tallyG_weakref *wr = slot_find(&tally_runtime_of(o)->gc, o)->first; wr; wr = wr->next)
        n++;
    return n;
}
