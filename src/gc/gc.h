/* gc.h - internal state of the cycle collector and of weak references.
 *
 * Tracked containers live on circular doubly linked lists threaded through their
 * link words (object/object.h): one per generation, one for frozen objects, one
 * for the garbage list of DEBUG_SAVEALL.  Each list has a sentinel link in the
 * runtime.  Invariant: whenever user code runs (finalizers, weak reference and
 * collection callbacks), every list is well formed, prev pointers included; only
 * inside the marking phases of a collection do prev words hold scratch counts.
 *
 * Weak references to an object hang on a doubly linked list, newest first, whose
 * head is found through a hash table keyed by the object's address (the header
 * has no room for it); TALLY_OF_WEAKREFS in the object's header says an entry
 * exists, so objects without weak references never touch the table.
 */
#ifndef TALLY_GC_INTERNAL_H
#define TALLY_GC_INTERNAL_H

#include <stdbool.h>
#include <stdio.h>

#include "object/object.h"
#include "tally/gc.h"

typedef struct tallyG_gen {
    tallyO_link head;  /* list sentinel */
    long threshold;
    long count;        /* see tally_gc_get_count; generation 0's is rt->obj.young */
} tallyG_gen;

typedef struct tallyG_weakref tallyG_weakref;
struct tallyG_weakref {
    void *target;          /* NULL once cleared */
    tallyG_weakref *next;  /* the target's list, newest first */
    tallyG_weakref *prev;
    tally_weakref_cb cb;   /* may be NULL */
    void *arg;
    tallyG_weakref *cbnext; /* callbacks due, while they are being called */
};

typedef struct tallyG_wrslot {
    void *object;          /* NULL: empty */
    tallyG_weakref *first; /* newest weak reference to it */
} tallyG_wrslot;

typedef struct tallyG_callback {
    tally_gc_callback cb;
    void *arg;
} tallyG_callback;

typedef struct tallyG_state {
    tallyG_gen gens[TALLY_GC_GENERATIONS];
    tallyO_link permanent;       /* frozen objects */
    tallyO_link garbage;         /* kept by DEBUG_SAVEALL, one reference each */
    size_t ngarbage;
    bool enabled;
    bool collecting;             /* a collection is running: no other may start */
    unsigned long long user_calls; /* finalizers and weak reference callbacks run */
    unsigned debug;              /* TALLY_GC_DEBUG_* */
    FILE *stream;                /* debug lines; NULL: stderr */
    size_t long_lived_total;     /* objects in generation 2 after the last full run */
    size_t long_lived_pending;   /* objects moved to generation 2 since */
    tally_gc_stats stats[TALLY_GC_GENERATIONS];
    tallyG_callback callbacks[TALLY_GC_MAX_CALLBACKS];
    unsigned ncallbacks;
    tallyG_wrslot *wr_slots;     /* open addressing, linear probing, power of 2 */
    size_t wr_cap;
    size_t wr_used;
} tallyG_state;

/* ---- lists (lists.c would be four lines; they are inline here) ----------------- */

TALLY_INLINE tallyO_link *tallyG_prev(const tallyO_link *l)
{
    return (tallyO_link *)l->prev;
}

TALLY_INLINE void tallyG_list_init(tallyO_link *head)
{
    head->next = head;
    head->prev = (uintptr_t)head;
}

TALLY_INLINE bool tallyG_list_empty(const tallyO_link *head)
{
    return head->next == head;
}

TALLY_INLINE void tallyG_list_append(tallyO_link *l, tallyO_link *head)
{
    tallyO_link *last = tallyG_prev(head);
    l->next = head;
    l->prev = (uintptr_t)last;
    last->next = l;
    head->prev = (uintptr_t)l;
}

TALLY_INLINE void tallyG_list_remove(tallyO_link *l)
{
    tallyO_unlink(l);
}

TALLY_INLINE void tallyG_list_move(tallyO_link *l, tallyO_link *head)
{
    tallyG_list_remove(l);
    tallyG_list_append(l, head);
}

/* Appends every element of `from` to `to`; from becomes empty. */
TALLY_INLINE void tallyG_list_merge(tallyO_link *from, tallyO_link *to)
{
    if (tallyG_list_empty(from))
        return;
    tallyO_link *last = tallyG_prev(to);
    last->next = from->next;
    from->next->prev = (uintptr_t)last;
    to->prev = from->prev;
    tallyG_prev(from)->next = to;
    tallyG_list_init(from);
}

TALLY_INTERNAL size_t tallyG_list_size(const tallyO_link *head);

/* ---- gc.c: state, tracking, control --------------------------------------------- */
TALLY_INTERNAL void tallyG_init(tally_rt *rt);
TALLY_INTERNAL FILE *tallyG_stream(const tallyG_state *g);
/* Collection triggered by allocation: the oldest generation over its threshold. */
TALLY_INTERNAL void tallyG_collect_auto(tally_rt *rt);

/* ---- collect.c ------------------------------------------------------------------ */
/* One collection of generations 0..gen with callbacks, stats and debug output. */
TALLY_INTERNAL long tallyG_collect(tally_rt *rt, int gen);

/* ---- weakref.c ------------------------------------------------------------------ */
TALLY_INTERNAL bool tallyG_is_weakref(tally_rt *rt, const void *o);
/* Refcount death of o: clears its weak references, then runs their callbacks. */
TALLY_INTERNAL void tallyG_weakrefs_die(tally_rt *rt, void *o);
/* The collector's handling of the weak references of the unreachable set
 * (CPython's handle_weakrefs); returns the weak references its callbacks freed. */
TALLY_INTERNAL long tallyG_weakrefs_unreachable(tally_rt *rt, tallyO_link *unreachable);

#endif /* TALLY_GC_INTERNAL_H */
