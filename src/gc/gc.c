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

size_t tallyG_list_size(const tallyO_link *head)
{
    size_t n = 0;
    for (const tallyO_link *l = head->next; l != head; l = l->next)
        n++;
    return n;
}

FILE *tallyG_stream(const tallyG_state *g)
{
    return g->stream ? g->stream : stderr;
}

static void track(tally_rt *rt, void *o)
{
    tallyG_list_append(tallyO_link_of(o), &rt->gc.gens[0].head);
    uint32_t *info = &tallyO_head(o)->info;
    *info = (*info & ~TALLY_OF_GEN_MASK) | TALLY_OF_TRACKED; /* generation 0 */
}

/* Sets the generation number of every object of a list. */
static void set_generation(tallyO_link *head, uint32_t gen)
{
    for (tallyO_link *l = head->next; l != head; l = l->next) {
        uint32_t *info = &tallyO_head(tallyO_from_link(l))->info;
        *info = (*info & ~TALLY_OF_GEN_MASK) | (gen << TALLY_OF_GEN_SHIFT);
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
    tallyO_untrack(o);
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
    tallyG_list_append(tallyO_link_of(o), &rt->gc.gens[0].head);
    return o;
}

static TALLY_NOINLINE void *no_type(tally_rt *rt)
{
    tallyB_error_set(&rt->heap.err, TALLY_EINVAL, "tally_new: the type is NULL");
    return NULL;
}

void *tally_new(tally_rt *rt, const tally_type *type)
{
    if (TALLY_UNLIKELY(type == NULL))
        return no_type(rt);
    const tallyO_typeinfo *ti = tallyO_type_entry(rt, type);
    if (TALLY_UNLIKELY(ti == NULL))
        return NULL;
    if (!(ti->traits & TALLY_TI_CONTAINER))
        return tallyO_new(rt, ti);
    if (TALLY_UNLIKELY(birth_count(rt)))
        ti = tallyO_type_entry(rt, type); /* registered: found without allocating */
    return born(rt, tallyO_new(rt, ti));
}

void *tally_new_var(tally_rt *rt, const tally_type *type, size_t nitems)
{
    if (TALLY_UNLIKELY(type == NULL))
        return no_type(rt);
    const tallyO_typeinfo *ti = tallyO_type_entry(rt, type);
    if (TALLY_UNLIKELY(ti == NULL))
        return NULL;
    if (!(ti->traits & TALLY_TI_CONTAINER))
        return tallyO_new_slow(rt, ti, nitems);
    if (TALLY_UNLIKELY(birth_count(rt)))
        ti = tallyO_type_entry(rt, type);
    return born(rt, tallyO_new_slow(rt, ti, nitems));
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
        set_generation(&g->gens[i].head, TALLY_OF_GEN_OUT);
        tallyG_list_merge(&g->gens[i].head, &g->permanent);
    }
    rt->obj.young = 0;
}

void tally_gc_unfreeze(tally_rt *rt)
{
    set_generation(&rt->gc.permanent, TALLY_GC_GENERATIONS - 1);
    tallyG_list_merge(&rt->gc.permanent, &rt->gc.gens[TALLY_GC_GENERATIONS - 1].head);
}

size_t tally_gc_get_freeze_count(const tally_rt *rt)
{
    return tallyG_list_size(&rt->gc.permanent);
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

static size_t visit_list(tallyO_link *head, tally_visit_fn visit, void *arg)
{
    size_t n = 0;
    for (tallyO_link *l = head->next, *next; l != head; l = next, n++) {
        next = l->next;
        visit(tallyO_from_link(l), arg);
    }
    return n;
}

size_t tally_gc_get_objects(tally_rt *rt, int generation, tally_visit_fn visit, void *arg)
{
    if (generation >= 0 && generation < TALLY_GC_GENERATIONS)
        return visit_list(&rt->gc.gens[generation].head, visit, arg);
    size_t n = 0;
    for (int i = 0; i < TALLY_GC_GENERATIONS; i++)
        n += visit_list(&rt->gc.gens[i].head, visit, arg);
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
    if (t->traverse != NULL)
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
        tallyO_link *head = &rt->gc.gens[i].head;
        for (tallyO_link *l = head->next; l != head; l = l->next) {
            void *r = tallyO_from_link(l);
            match m = {o, false};
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
        visit_list(&rt->gc.garbage, visit, arg);
    return rt->gc.ngarbage;
}

void tally_gc_garbage_clear(tally_rt *rt)
{
    tallyG_state *g = &rt->gc;
    while (!tallyG_list_empty(&g->garbage)) {
        tallyO_link *l = g->garbage.next;
        uint32_t *info = &tallyO_head(tallyO_from_link(l))->info;
        *info = (*info & ~TALLY_OF_GEN_MASK) | ((TALLY_GC_GENERATIONS - 1u) << TALLY_OF_GEN_SHIFT);
        tallyG_list_move(l, &g->gens[TALLY_GC_GENERATIONS - 1].head);
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

void tallyG_init(tally_rt *rt)
{
    tallyG_state *g = &rt->gc;
    memset(g, 0, sizeof *g);
    static const long thresholds[TALLY_GC_GENERATIONS] = {700, 10, 10};
    for (int i = 0; i < TALLY_GC_GENERATIONS; i++) {
        tallyG_list_init(&g->gens[i].head);
        g->gens[i].threshold = thresholds[i];
    }
    tallyG_list_init(&g->permanent);
    tallyG_list_init(&g->garbage);
    g->enabled = true;
    rt->obj.weakrefs_die = tallyG_weakrefs_die;
    rt->heap.exhausted = exhausted;
    rt->heap.exhausted_arg = rt;
}
