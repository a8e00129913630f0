/* gc.c - the collector's state and control surface: object creation with
 * automatic collection, tracking, generations and thresholds, freezing, walks,
 * debug flags, the garbage list and collection callbacks.
 *
 * Automatic collection follows CPython 3.11: each container allocation adds one
 * to generation 0's count (each container death takes one off); when it passes
 * threshold 0, the oldest generation whose count passed its threshold is
 * collected, except that a full collection waits until the objects that reached
 * generation 2 since the last one are a quarter of those it kept (so building a
 * large structure stays linear).  When the heap runs out of memory, it asks for a
 * full collection before failing (the exhaustion hook below).
 */
#include "gc/gc.h"

#include <string.h>

#include "heap/heap.h"
#include "object/object_inline.h"
#include "runtime/runtime.h"

/* ---- lists, tracking ----------------------------------------------------------- */

size_t tallyG_list_size(const tallyH_heap *heap, tallyG_list list)
{
    size_t n = 0;
    for (uint32_t h = list.s->next; h != list.h; h = tallyO_at(heap, h)->next)
        n++;
    return n;
}

static tallyG_list gen_list(tally_rt *rt, int gen)
{
    return tallyG_list_of(&rt->gc, TALLY_GC_LIST_GEN0 + gen);
}

/* Joins generation 0. */
static void link_young(tally_rt *rt, void *o)
{
    tallyO_link *l = tallyO_link_of(o);
    tallyG_list_append(&rt->heap, l, tallyH_handle(l), gen_list(rt, 0));
}

FILE *tallyG_stream(const tallyG_state *g)
{
    return g->stream ? g->stream : stderr;
}

static void track(tally_rt *rt, void *o)
{
    link_young(rt, o);
    uint32_t *info = &tallyO_head(o)->info;
    *info = (*info & ~TALLY_OF_GEN_MASK) | TALLY_OF_TRACKED; /* generation 0 */
}

/* The object layer's hook before a finalizer runs on a death by count: o joins
 * generation 0 (from an older one, the frozen list, or untracked), as CPython's
 * subtype_dealloc re-tracks the object it finalizes. */
static void to_young(tally_rt *rt, void *o)
{
    tallyO_untrack(&rt->heap, o);
    if (!(tallyO_info(o) & TALLY_OF_IMMORTAL))
        track(rt, o);
}

/* Sets the generation number of every object of a list. */
static void set_generation(tally_rt *rt, tallyG_list list, uint32_t gen)
{
    for (uint32_t h = list.s->next; h != list.h;) {
        tallyO_link *l = tallyO_at(&rt->heap, h);
        uint32_t *info = &tallyO_head(tallyO_from_link(l))->info;
        *info = (*info & ~TALLY_OF_GEN_MASK) | (gen << TALLY_OF_GEN_SHIFT);
        h = l->next;
    }
}

int tally_gc_track(void *o)
{
    tally_rt *rt = tally_runtime_of(o);
    uint32_t info = tallyO_info(o);
    if (!(info & TALLY_OF_LINKED) || tallyO_type(rt, o)->traverse == NULL) {
        tallyB_error_set(&rt->heap.err, TALLY_EINVAL,
                         "tally_gc_track: objects of type '%s' hold no references to track",
                         tallyO_type(rt, o)->name ? tallyO_type(rt, o)->name : "(unnamed)");
        return -1;
    }
    if (!(info & (TALLY_OF_TRACKED | TALLY_OF_IMMORTAL | TALLY_OF_DYING)))
        track(rt, o);
    return 0;
}

void tally_gc_untrack(void *o)
{
    tallyO_untrack(&tally_runtime_of(o)->heap, o);
}

int tally_gc_is_tracked(const void *o)
{
    return (tallyO_info(o) & TALLY_OF_TRACKED) != 0;
}

int tally_gc_is_finalized(const void *o)
{
    return (tallyO_info(o) & TALLY_OF_FINALIZED) != 0;
}

/* ---- creation and automatic collection ------------------------------------------ */

void tallyG_collect_auto(tally_rt *rt)
{
    tallyG_state *g = &rt->gc;
    g->gens[0].count = rt->obj.young;
    for (int i = TALLY_GC_GENERATIONS - 1; i >= 0; i--) {
        if (g->gens[i].count <= g->gens[i].threshold)
            continue;
        if (i == TALLY_GC_GENERATIONS - 1 && g->long_lived_pending < g->long_lived_total / 4)
            continue;
        tallyG_collect(rt, i);
        return;
    }
}

/* A container is about to be born: count it and maybe collect (CPython does it
 * at this point, while the new object is not tracked yet).  True if a collection
 * ran (user code may have evicted type cache entries). */
TALLY_INLINE bool birth_count(tally_rt *rt)
{
    tallyG_state *g = &rt->gc;
    if (TALLY_LIKELY(++rt->obj.young <= g->gens[0].threshold) || !g->enabled ||
        g->gens[0].threshold == 0 || g->collecting)
        return false;
    tallyG_collect_auto(rt);
    return true;
}

/* The container o (TRACKED already set in its header) joins generation 0, or
 * was never born: its birth is taken back. */
TALLY_INLINE void *born(tally_rt *rt, void *o)
{
    if (TALLY_UNLIKELY(o == NULL)) {
        rt->obj.young--;
        return NULL;
    }
    link_young(rt, o);
    return o;
}

static TALLY_NOINLINE void *no_type(tally_rt *rt)
{
    tallyB_error_set(&rt->heap.err, TALLY_EINVAL, "tally_new: the type is NULL");
    return NULL;
}

/* Both creation calls: var says whether nitems is used (a constant, so that
 * tally_new keeps the inline fast path). */
TALLY_INLINE void *new_object(tally_rt *rt, const tally_type *type, size_t nitems, bool var,
                              const char *file, int line, const void *caller)
{
    if (TALLY_UNLIKELY(type == NULL))
        return no_type(rt);
    const tallyO_typeinfo *ti = tallyO_type_entry(rt, type);
    if (TALLY_UNLIKELY(ti == NULL))
        return NULL;
    bool container = (ti->traits & TALLY_TI_CONTAINER) != 0;
    if (container && TALLY_UNLIKELY(birth_count(rt)))
        ti = tallyO_type_entry(rt, type); /* registered: found without allocating */
    void *o = var ? tallyO_new_slow_at(rt, ti, nitems, file, line, caller)
                  : tallyO_new_at(rt, ti, file, line, caller);
    return container ? born(rt, o) : o;
}

/* The plain functions are written in parentheses: tally/object.h makes their
 * names macros for the _at calls (sites for the tracer). */
void *(tally_new)(tally_rt *rt, const tally_type *type)
{
    return new_object(rt, type, 0, false, NULL, 0, __builtin_return_address(0));
}

void *(tally_new_var)(tally_rt *rt, const tally_type *type, size_t nitems)
{
    return new_object(rt, type, nitems, true, NULL, 0, __builtin_return_address(0));
}

void *tally_new_at(tally_rt *rt, const tally_type *type, const char *file, int line)
{
    return new_object(rt, type, 0, false, file, line, __builtin_return_address(0));
}

void *tally_new_var_at(tally_rt *rt, const tally_type *type, size_t nitems, const char *file,
                       int line)
{
    return new_object(rt, type, nitems, true, file, line, __builtin_return_address(0));
}

/* The heap's exhaustion hook: a full collection, then a retry if it found any. */
static int exhausted(tallyH_heap *h, size_t request, void *arg)
{
    (void)h;
    (void)request;
    tally_rt *rt = arg;
    tallyO_cache_flush(rt);
    if (!rt->gc.enabled || rt->gc.collecting)
        return 1; /* the flush may have made room */
    tallyG_collect(rt, TALLY_GC_GENERATIONS - 1);
    return 1;
}

/* ---- control -------------------------------------------------------------------- */

long tally_gc_collect(tally_rt *rt, int generation)
{
    if (rt->gc.collecting) {
        tallyB_error_set(&rt->heap.err, TALLY_EBUSY, "tally_gc_collect: a collection is running");
        return -1;
    }
    if (generation < 0 || generation >= TALLY_GC_GENERATIONS)
        generation = TALLY_GC_GENERATIONS - 1;
    long n = tallyG_collect(rt, generation);
    if (generation == TALLY_GC_GENERATIONS - 1) /* as CPython clears its free lists */
        tallyO_cache_flush(rt);
    return n;
}

void tally_gc_enable(tally_rt *rt)
{
    rt->gc.enabled = true;
}

void tally_gc_disable(tally_rt *rt)
{
    rt->gc.enabled = false;
}

int tally_gc_is_enabled(const tally_rt *rt)
{
    return rt->gc.enabled;
}

void tally_gc_get_count(const tally_rt *rt, long count[TALLY_GC_GENERATIONS])
{
    count[0] = rt->obj.young;
    for (int i = 1; i < TALLY_GC_GENERATIONS; i++)
        count[i] = rt->gc.gens[i].count;
}

void tally_gc_set_threshold(tally_rt *rt, long t0, long t1, long t2)
{
    rt->gc.gens[0].threshold = t0 < 0 ? 0 : t0;
    rt->gc.gens[1].threshold = t1 < 0 ? 0 : t1;
    rt->gc.gens[2].threshold = t2 < 0 ? 0 : t2;
}

void tally_gc_get_threshold(const tally_rt *rt, long threshold[TALLY_GC_GENERATIONS])
{
    for (int i = 0; i < TALLY_GC_GENERATIONS; i++)
        threshold[i] = rt->gc.gens[i].threshold;
}

void tally_gc_get_stats(const tally_rt *rt, tally_gc_stats stats[TALLY_GC_GENERATIONS])
{
    for (int i = 0; i < TALLY_GC_GENERATIONS; i++)
        stats[i] = rt->gc.stats[i];
}

void tally_gc_freeze(tally_rt *rt)
{
    tallyG_state *g = &rt->gc;
    for (int i = 0; i < TALLY_GC_GENERATIONS; i++) {
        set_generation(rt, gen_list(rt, i), TALLY_OF_GEN_OUT);
        tallyG_list_merge(&rt->heap, gen_list(rt, i), tallyG_list_of(g, TALLY_GC_LIST_PERMANENT));
    }
    rt->obj.young = 0;
}

void tally_gc_unfreeze(tally_rt *rt)
{
    tallyG_list frozen = tallyG_list_of(&rt->gc, TALLY_GC_LIST_PERMANENT);
    set_generation(rt, frozen, TALLY_GC_GENERATIONS - 1);
    tallyG_list_merge(&rt->heap, frozen, gen_list(rt, TALLY_GC_GENERATIONS - 1));
}

size_t tally_gc_get_freeze_count(const tally_rt *rt)
{
    return tallyG_list_size(&rt->heap, tallyG_list_of((tallyG_state *)&rt->gc, TALLY_GC_LIST_PERMANENT));
}

void tally_gc_set_debug(tally_rt *rt, unsigned flags)
{
    rt->gc.debug = flags;
}

unsigned tally_gc_get_debug(const tally_rt *rt)
{
    return rt->gc.debug;
}

void tally_gc_set_debug_stream(tally_rt *rt, FILE *stream)
{
    rt->gc.stream = stream;
}

/* ---- walks ---------------------------------------------------------------------- */

static size_t visit_list(tally_rt *rt, tallyG_list list, tally_visit_fn visit, void *arg)
{
    size_t n = 0;
    for (uint32_t h = list.s->next; h != list.h; n++) {
        tallyO_link *l = tallyO_at(&rt->heap, h);
        h = l->next;
        visit(tallyO_from_link(l), arg);
    }
    return n;
}

size_t tally_gc_get_objects(tally_rt *rt, int generation, tally_visit_fn visit, void *arg)
{
    if (generation >= 0 && generation < TALLY_GC_GENERATIONS)
        return visit_list(rt, gen_list(rt, generation), visit, arg);
    size_t n = 0;
    for (int i = 0; i < TALLY_GC_GENERATIONS; i++)
        n += visit_list(rt, gen_list(rt, i), visit, arg);
    return n;
}

typedef struct count_visit {
    tally_visit_fn visit;
    void *arg;
    size_t n;
} count_visit;

static void referent_visit(void *r, void *arg)
{
    count_visit *cv = arg;
    if (r == NULL)
        return;
    cv->visit(r, cv->arg);
    cv->n++;
}

size_t tally_gc_get_referents(void *o, tally_visit_fn visit, void *arg)
{
    const tally_type *t = tally_type_of(o);
    count_visit cv = {visit, arg, 0};
    if (t->traverse != NULL && !(tallyO_info(o) & TALLY_OF_RELEASED))
        t->traverse(o, referent_visit, &cv);
    return cv.n;
}

typedef struct match {
    const void *target;
    bool found;
} match;

static void match_visit(void *r, void *arg)
{
    match *m = arg;
    if (r == m->target)
        m->found = true;
}

size_t tally_gc_get_referrers(tally_rt *rt, void *o, tally_visit_fn visit, void *arg)
{
    size_t n = 0;
    for (int i = 0; i < TALLY_GC_GENERATIONS; i++) {
        tallyG_list list = gen_list(rt, i);
        for (uint32_t h = list.s->next; h != list.h;) {
            tallyO_link *l = tallyO_at(&rt->heap, h);
            h = l->next;
            void *r = tallyO_from_link(l);
            match m = {o, false};
            if (!(tallyO_info(r) & TALLY_OF_RELEASED))
                tallyO_type(rt, r)->traverse(r, match_visit, &m);
            if (m.found) {
                visit(r, arg);
                n++;
            }
        }
    }
    return n;
}

/* ---- the garbage list and callbacks ------------------------------------------------ */

size_t tally_gc_garbage(tally_rt *rt, tally_visit_fn visit, void *arg)
{
    if (visit != NULL)
        visit_list(rt, tallyG_list_of(&rt->gc, TALLY_GC_LIST_GARBAGE), visit, arg);
    return rt->gc.ngarbage;
}

void tally_gc_garbage_clear(tally_rt *rt)
{
    tallyG_state *g = &rt->gc;
    tallyG_list garbage = tallyG_list_of(g, TALLY_GC_LIST_GARBAGE);
    while (!tallyG_list_empty(garbage)) {
        uint32_t h = garbage.s->next;
        tallyO_link *l = tallyO_at(&rt->heap, h);
        uint32_t *info = &tallyO_head(tallyO_from_link(l))->info;
        *info = (*info & ~TALLY_OF_GEN_MASK) | ((TALLY_GC_GENERATIONS - 1u) << TALLY_OF_GEN_SHIFT);
        tallyG_list_move(&rt->heap, l, h, gen_list(rt, TALLY_GC_GENERATIONS - 1));
        g->ngarbage--;
        tally_decref(tallyO_from_link(l));
    }
}

int tally_gc_callback_add(tally_rt *rt, tally_gc_callback cb, void *arg)
{
    tallyG_state *g = &rt->gc;
    if (g->ncallbacks == TALLY_GC_MAX_CALLBACKS) {
        tallyB_error_set(&rt->heap.err, TALLY_ELIMIT, "tally_gc_callback_add: %d callbacks already",
                         TALLY_GC_MAX_CALLBACKS);
        return -1;
    }
    g->callbacks[g->ncallbacks++] = (tallyG_callback){cb, arg};
    return 0;
}

int tally_gc_callback_remove(tally_rt *rt, tally_gc_callback cb, void *arg)
{
    tallyG_state *g = &rt->gc;
    for (unsigned i = 0; i < g->ncallbacks; i++) {
        if (g->callbacks[i].cb == cb && g->callbacks[i].arg == arg) {
            for (unsigned j = i + 1; j < g->ncallbacks; j++)
                g->callbacks[j - 1] = g->callbacks[j];
            g->ncallbacks--;
            return 0;
        }
    }
    tallyB_error_set(&rt->heap.err, TALLY_EINVAL, "tally_gc_callback_remove: not registered");
    return -1;
}

/* ---- state -------------------------------------------------------------------------- */

int tallyG_init(tally_rt *rt)
{
    tallyG_state *g = &rt->gc;
    memset(g, 0, sizeof *g);
    uint32_t slot = tallyH_slot_take(&rt->heap, (uint8_t *)g->lists);
    if (slot == UINT32_MAX)
        return -1;
    g->lists_handle = slot << TALLY_HANDLE_SHIFT;
    for (int i = 0; i < TALLY_GC_LISTS; i++)
        tallyG_list_init(tallyG_list_of(g, i));
    static const long thresholds[TALLY_GC_GENERATIONS] = {700, 10, 10};
    for (int i = 0; i < TALLY_GC_GENERATIONS; i++)
        g->gens[i].threshold = thresholds[i];
    g->enabled = true;
    rt->obj.weakrefs_die = tallyG_weakrefs_die;
    rt->obj.to_young = to_young;
    rt->heap.exhausted = exhausted;
    rt->heap.exhausted_arg = rt;
    return 0;
}
