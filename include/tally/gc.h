/* tally/gc.h - the cycle collector, finalizers and weak references.
 *
 * Reference counting frees an object when its last reference goes, but never
 * frees a cycle.  The collector finds cycles among tracked containers with
 * CPython's algorithm and semantics (Python's `gc` module is the model for every
 * call here): three generations, thresholds (700, 10, 10) and counts, automatic
 * collection triggered by container allocations, and PEP 442 finalizers that run
 * exactly once even in cycles and may resurrect.  Collection never allocates and
 * never recurses on the C stack, so it works when the heap is full, and a full
 * collection is tried before an allocation fails for lack of memory.
 *
 * Visitors passed to the walking calls (get_objects, get_referrers, garbage)
 * receive borrowed pointers and must not create, release, track or untrack
 * objects during the walk: take a reference with tally_incref() to keep one.
 */
#ifndef TALLY_GC_H
#define TALLY_GC_H

#include <stdio.h>

#include "tally/object.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TALLY_GC_GENERATIONS 3

/* Collects generations 0..generation (2 = full; -1 or larger values mean 2) and
 * returns the number of unreachable objects found, as gc.collect() does, or -1
 * if a collection is already running (from a finalizer or callback).  A full
 * collection also gives back the blocks of the object free stacks, as CPython's
 * clears its free lists. */
TALLY_API long tally_gc_collect(tally_rt *rt, int generation);

TALLY_API void tally_gc_enable(tally_rt *rt);
TALLY_API void tally_gc_disable(tally_rt *rt);
TALLY_API int tally_gc_is_enabled(const tally_rt *rt);

/* count[0]: container allocations minus deallocations since the last collection;
 * count[1], count[2]: collections of the younger generation since the last
 * collection of this one. */
TALLY_API void tally_gc_get_count(const tally_rt *rt, long count[TALLY_GC_GENERATIONS]);
/* A threshold of 0 for generation 0 disables automatic collection. */
TALLY_API void tally_gc_set_threshold(tally_rt *rt, long t0, long t1, long t2);
TALLY_API void tally_gc_get_threshold(const tally_rt *rt, long threshold[TALLY_GC_GENERATIONS]);

typedef struct tally_gc_stats {
    unsigned long long collections;   /* times this generation was collected */
    unsigned long long collected;     /* unreachable objects found */
    unsigned long long uncollectable; /* of those, kept (in the garbage list) */
    unsigned long long total_ns;      /* time spent in those collections */
    unsigned long long max_ns;        /* the longest of them */
} tally_gc_stats;
TALLY_API void tally_gc_get_stats(const tally_rt *rt, tally_gc_stats stats[TALLY_GC_GENERATIONS]);

/* Tracking: containers start tracked; untrack one that can never be part of a
 * cycle to spare the collector (tuples of ints, say).  track fails (-1,
 * TALLY_EINVAL) for an object that is not a container. */
TALLY_API int tally_gc_track(void *o);
TALLY_API void tally_gc_untrack(void *o);
TALLY_API int tally_gc_is_tracked(const void *o);
/* Has o's finalizer run (by count or by the collector)? */
TALLY_API int tally_gc_is_finalized(const void *o);

/* Visits every tracked object of a generation (-1: all generations, not the
 * frozen ones); returns how many were visited. */
TALLY_API size_t tally_gc_get_objects(tally_rt *rt, int generation, tally_visit_fn visit, void *arg);
/* Visits each object o refers to (as its traverse reports them). */
TALLY_API size_t tally_gc_get_referents(void *o, tally_visit_fn visit, void *arg);
/* Visits, once each, every tracked object that refers to o. */
TALLY_API size_t tally_gc_get_referrers(tally_rt *rt, void *o, tally_visit_fn visit, void *arg);

/* Moves every tracked object to a permanent generation that collections ignore
 * (for a program's long-lived start-up state); unfreeze moves them back to the
 * oldest generation. */
TALLY_API void tally_gc_freeze(tally_rt *rt);
TALLY_API void tally_gc_unfreeze(tally_rt *rt);
TALLY_API size_t tally_gc_get_freeze_count(const tally_rt *rt);

/* Debug flags, with the gc module's values. */
#define TALLY_GC_DEBUG_STATS 1u         /* a line per collection on the debug stream */
#define TALLY_GC_DEBUG_COLLECTABLE 2u   /* a line per unreachable object found */
#define TALLY_GC_DEBUG_UNCOLLECTABLE 4u /* a line per object kept in the garbage list */
#define TALLY_GC_DEBUG_SAVEALL 32u      /* keep unreachable objects in the garbage list */
#define TALLY_GC_DEBUG_LEAK 38u         /* COLLECTABLE | UNCOLLECTABLE | SAVEALL */
TALLY_API void tally_gc_set_debug(tally_rt *rt, unsigned flags);
TALLY_API unsigned tally_gc_get_debug(const tally_rt *rt);
/* Where the debug lines go (default stderr). */
TALLY_API void tally_gc_set_debug_stream(tally_rt *rt, FILE *stream);

/* The garbage list (gc.garbage): objects that DEBUG_SAVEALL kept alive.  Visits
 * each and returns how many there are; clear releases them (a later collection
 * then frees them). */
TALLY_API size_t tally_gc_garbage(tally_rt *rt, tally_visit_fn visit, void *arg);
TALLY_API void tally_gc_garbage_clear(tally_rt *rt);

/* Callbacks at the start and stop of each collection (gc.callbacks). */
typedef enum tally_gc_phase { TALLY_GC_START, TALLY_GC_STOP } tally_gc_phase;
typedef struct tally_gc_info {
    int generation;     /* the oldest generation collected */
    long collected;     /* stop: unreachable objects found */
    long uncollectable; /* stop: of those, kept in the garbage list */
} tally_gc_info;
typedef void (*tally_gc_callback)(tally_rt *rt, tally_gc_phase phase, const tally_gc_info *info,
                                  void *arg);
#define TALLY_GC_MAX_CALLBACKS 8
/* 0, or -1 (TALLY_ELIMIT) when TALLY_GC_MAX_CALLBACKS are registered already. */
TALLY_API int tally_gc_callback_add(tally_rt *rt, tally_gc_callback cb, void *arg);
/* 0, or -1 (TALLY_EINVAL) when (cb, arg) is not registered. */
TALLY_API int tally_gc_callback_remove(tally_rt *rt, tally_gc_callback cb, void *arg);

/* ---- weak references ---------------------------------------------------------- */

typedef void (*tally_weakref_cb)(void *weakref, void *arg);

/* A new weak reference to target (an object, which may not be a weak reference's
 * own callback argument): itself an object, released with tally_decref().  cb (may
 * be NULL) runs once when the target dies, by count or by the collector, unless the
 * weak reference died first.  Without cb and arg, the same weak reference is
 * shared by every caller (Python's `ref(o) is ref(o)`).  NULL with the error set
 * on failure. */
TALLY_API void *tally_weakref_new(tally_rt *rt, void *target, tally_weakref_cb cb, void *arg);
/* A new strong reference to the target, or NULL once it is gone. */
TALLY_API void *tally_weakref_get(void *weakref);
/* The callback argument given to tally_weakref_new. */
TALLY_API void *tally_weakref_arg(const void *weakref);
TALLY_API int tally_is_weakref(const void *o);
/* Weak references currently pointing at o (weakref.getweakrefcount). */
TALLY_API size_t tally_weakref_count(const void *o);

#ifdef __cplusplus
}
#endif

#endif /* TALLY_GC_H */
