/* gc.h - internal state of the cycle collector and of weak references.
 *
 * Tracked containers live on circular doubly linked lists threaded through their
 * link words (object/object.h): one per generation, one for frozen objects, one
 * for the garbage list of DEBUG_SAVEALL, and the collector's working lists.
 * Links are 32-bit heap handles; each list has a sentinel link in the runtime,
 * in a small area registered with the heap so that sentinels have handles too.  Invariant: whenever user code runs (finalizers, weak reference and
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

/* The lists, by index of their sentinel. */
enum tallyG_list_id {
    TALLY_GC_LIST_GEN0,          /* generations 0, 1, 2: GEN0 + g */
    TALLY_GC_LIST_PERMANENT = TALLY_GC_GENERATIONS, /* frozen objects */
    TALLY_GC_LIST_GARBAGE,       /* kept by DEBUG_SAVEALL, one reference each */
    TALLY_GC_LIST_UNREACHABLE,   /* a collection's working lists */
    TALLY_GC_LIST_SEEN,
    TALLY_GC_LIST_STILL,
    TALLY_GC_LISTS
};

/* A sentinel: a link alone in 16 bytes (handles name 16-byte units). */
typedef struct tallyG_sentinel {
    tallyO_link link;
    uint64_t unused;
} tallyG_sentinel;

/* A list: its sentinel and the sentinel's handle. */
typedef struct tallyG_list {
    tallyO_link *s;
    uint32_t h;
} tallyG_list;

typedef struct tallyG_state {
    _Alignas(16) tallyG_sentinel lists[TALLY_GC_LISTS];
    uint32_t lists_handle;       /* handle of lists[0] */
    tallyG_gen gens[TALLY_GC_GENERATIONS];
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

/* ---- lists ---------------------------------------------------------------------- */

TALLY_INLINE tallyG_list tallyG_list_of(tallyG_state *g, int id)
{
    return (tallyG_list){&g->lists[id].link, g->lists_handle + (uint32_t)id};
}

TALLY_INLINE void tallyG_list_init(tallyG_list list)
{
    list.s->next = list.s->prev = list.h;
}

TALLY_INLINE bool tallyG_list_empty(tallyG_list list)
{
    return list.s->next == list.h;
}

/* Appends l, whose handle is lh. */
TALLY_INLINE void tallyG_list_append(const tallyH_heap *heap, tallyO_link *l, uint32_t lh,
                                     tallyG_list list)
{
    uint32_t lasth = list.s->prev;
    l->next = list.h;
    l->prev = lasth;
    tallyO_at(heap, lasth)->next = lh;
    list.s->prev = lh;
}

TALLY_INLINE void tallyG_list_move(const tallyH_heap *heap, tallyO_link *l, uint32_t lh,
                                   tallyG_list list)
{
    tallyO_unlink(heap, l);
    tallyG_list_append(heap, l, lh, list);
}

/* Appends every element of `from` to `to`; from becomes empty. */
TALLY_INLINE void tallyG_list_merge(const tallyH_heap *heap, tallyG_list from, tallyG_list to)
{
    if (tallyG_list_empty(from))
        return;
    uint32_t first = from.s->next, last = from.s->prev;
    tallyO_at(heap, to.s->prev)->next = first;
    tallyO_at(heap, first)->prev = to.s->prev;
    tallyO_at(heap, last)->next = to.h;
    to.s->prev = last;
    tallyG_list_init(from);
}

TALLY_INTERNAL size_t tallyG_list_size(const tallyH_heap *heap, tallyG_list list);

/* ---- gc.c: state, tracking, control --------------------------------------------- */
/* 0, or -1 if no handle slot is left for the list sentinels. */
TALLY_INTERNAL int tallyG_init(tally_rt *rt);
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
TALLY_INTERNAL long tallyG_weakrefs_unreachable(tally_rt *rt, tallyG_list unreachable);

#endif /* TALLY_GC_INTERNAL_H */
