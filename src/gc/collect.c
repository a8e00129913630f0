/* collect.c - the cycle collector: CPython's trial deletion over generations.
 *
 * To collect generations 0..g, their lists are merged into one set S and:
 *  1. each object's scratch count gc_refs (kept in its prev word) = its count;
 *  2. for every reference between two objects of S, the referent's gc_refs drops
 *     by one: what is left counts the references from outside S;
 *  3. objects with gc_refs > 0 are roots; everything they reach in S is marked
 *     reachable.  The mark stack is threaded through the prev words of marked
 *     objects (their gc_refs is no longer needed), so marking never allocates and
 *     never recurses, whatever the depth of the graph;
 *  4. one pass relinks S: marked objects stay (they move to generation g+1), the
 *     others form the unreachable list.
 * Then, as CPython does: weak references to unreachable objects are cleared and the
 * callbacks of the live ones run; finalizers run once each (PEP 442); if any user
 * code ran, steps 1-4 are repeated on the unreachable list alone, and objects now
 * referenced from outside it are resurrected with everything they reach; the rest
 * has its references cleared, which frees it by counting.
 *
 * The collector allocates nothing: lists are intrusive and the state is in the
 * runtime.  So it runs when the heap is exhausted, which is when the heap's
 * exhaustion hook calls it.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "gc/gc.h"

#include <time.h>

#include "runtime/runtime.h"

TALLY_INLINE uint32_t *info_of(const tallyO_link *l)
{
    return &((tally_head *)(void *)(l + 1))->info;
}

TALLY_INLINE const tally_type *type_of(tally_rt *rt, const tallyO_link *l)
{
    return rt->obj.types[*info_of(l) & TALLY_OF_TYPE_MASK];
}

/* ---- steps 1 to 4 ---------------------------------------------------------------- */

static void refs_copy(tallyO_link *set)
{
    for (tallyO_link *l = set->next; l != set; l = l->next) {
        const tally_head *h = (const tally_head *)(void *)(l + 1);
        l->prev = h->rc;
        *info_of(l) |= TALLY_OF_COLLECTING;
    }
}

static void visit_subtract(void *r, void *arg)
{
    (void)arg;
    if (r != NULL && (tallyO_info(r) & TALLY_OF_COLLECTING))
        tallyO_link_of(r)->prev--;
}

static void refs_subtract(tally_rt *rt, tallyO_link *set)
{
    for (tallyO_link *l = set->next; l != set; l = l->next)
        type_of(rt, l)->traverse(tallyO_from_link(l), visit_subtract, NULL);
}

/* The mark stack: marked objects linked through their prev words. */
typedef struct mark_stack {
    tallyO_link *top;
} mark_stack;

static void visit_mark(void *r, void *arg)
{
    if (r == NULL)
        return;
    uint32_t *info = &tallyO_head(r)->info;
    if ((*info & (TALLY_OF_COLLECTING | TALLY_OF_REACHED)) != TALLY_OF_COLLECTING)
        return;
    mark_stack *ms = arg;
    tallyO_link *l = tallyO_link_of(r);
    *info |= TALLY_OF_REACHED;
    l->prev = (uintptr_t)ms->top;
    ms->top = l;
}

static void mark_reachable(tally_rt *rt, tallyO_link *set)
{
    mark_stack ms = {NULL};
    for (tallyO_link *l = set->next; l != set; l = l->next) {
        if (l->prev == 0 || (*info_of(l) & TALLY_OF_REACHED))
            continue;
        visit_mark(tallyO_from_link(l), &ms);
        while (ms.top != NULL) {
            tallyO_link *m = ms.top;
            ms.top = tallyG_prev(m);
            type_of(rt, m)->traverse(tallyO_from_link(m), visit_mark, &ms);
        }
    }
}

/* Relinks set: reachable objects stay (flags cleared), the others are appended to
 * `unreachable` (still COLLECTING, now UNREACHED).  Returns the objects kept. */
static size_t split(tallyO_link *set, tallyO_link *unreachable)
{
    size_t kept = 0;
    tallyO_link *last = set;
    for (tallyO_link *l = set->next, *next; l != set; l = next) {
        next = l->next;
        uint32_t *info = info_of(l);
        if (*info & TALLY_OF_REACHED) {
            *info &= ~(TALLY_OF_COLLECTING | TALLY_OF_REACHED);
            l->prev = (uintptr_t)last;
            last->next = l;
            last = l;
            kept++;
        } else {
            *info |= TALLY_OF_UNREACHED;
            tallyG_list_append(l, unreachable);
        }
    }
    last->next = set;
    set->prev = (uintptr_t)last;
    return kept;
}

/* Steps 1-4 on set; returns the objects kept in it. */
static size_t find_unreachable(tally_rt *rt, tallyO_link *set, tallyO_link *unreachable)
{
    refs_copy(set);
    refs_subtract(rt, set);
    mark_reachable(rt, set);
    return split(set, unreachable);
}

/* ---- after the marking --------------------------------------------------------- */

static void unmark(tallyO_link *l)
{
    *info_of(l) &= ~(TALLY_OF_COLLECTING | TALLY_OF_UNREACHED | TALLY_OF_REACHED);
}

/* Runs each unreachable object's finalizer once (PEP 442).  Finalizers may free
 * or untrack objects of the list, so the first one is always taken next. */
static void finalize_all(tally_rt *rt, tallyO_link *unreachable)
{
    tallyO_link seen;
    tallyG_list_init(&seen);
    while (!tallyG_list_empty(unreachable)) {
        tallyO_link *l = unreachable->next;
        tallyG_list_move(l, &seen);
        const tally_type *t = type_of(rt, l);
        if (t->finalize == NULL || (*info_of(l) & TALLY_OF_FINALIZED))
            continue;
        void *o = tallyO_from_link(l);
        *info_of(l) |= TALLY_OF_FINALIZED;
        rt->gc.user_calls++;
        tally_incref(o);
        t->finalize(o);
        tally_decref(o);
    }
    tallyG_list_merge(&seen, unreachable);
}

/* Objects of `unreachable` that user code made reachable again go to `old` with
 * everything they reach; the rest stays. */
static void resurrect(tally_rt *rt, tallyO_link *unreachable, tallyO_link *old)
{
    tallyO_link still;
    tallyG_list_init(&still);
    for (tallyO_link *l = unreachable->next; l != unreachable; l = l->next)
        *info_of(l) &= ~TALLY_OF_UNREACHED;
    find_unreachable(rt, unreachable, &still);
    tallyG_list_merge(unreachable, old);
    tallyG_list_merge(&still, unreachable);
}

static void print_object(tally_rt *rt, const char *what, tallyO_link *l)
{
    const char *name = type_of(rt, l)->name;
    fprintf(tallyG_stream(&rt->gc), "gc: %s <%s %p>\n", what, name ? name : "object",
            tallyO_from_link(l));
}

/* Breaks the cycles of `final`: each object's references are cleared, which frees
 * the set by counting.  DEBUG_SAVEALL keeps the objects in the garbage list
 * instead.  Objects that survive their clearing go to `old`.  Returns the objects
 * kept in the garbage list. */
static long delete_garbage(tally_rt *rt, tallyO_link *final, tallyO_link *old)
{
    tallyG_state *g = &rt->gc;
    long saved = 0;
    while (!tallyG_list_empty(final)) {
        tallyO_link *l = final->next;
        void *o = tallyO_from_link(l);
        if (g->debug & TALLY_GC_DEBUG_SAVEALL) {
            if (g->debug & TALLY_GC_DEBUG_UNCOLLECTABLE)
                print_object(rt, "uncollectable", l);
            unmark(l);
            tally_incref(o);
            tallyG_list_move(l, &g->garbage);
            g->ngarbage++;
            saved++;
            continue;
        }
        tally_incref(o);
        tallyO_release_refs(rt, o);
        tally_decref(o);
        if (final->next == l) { /* still alive: it may die later */
            unmark(l);
            tallyG_list_move(l, old);
        }
    }
    return saved;
}

/* ---- one collection -------------------------------------------------------------- */

typedef struct outcome {
    long collected;
    long uncollectable;
} outcome;

static outcome collect_main(tally_rt *rt, int gen)
{
    tallyG_state *g = &rt->gc;
    if (gen + 1 < TALLY_GC_GENERATIONS)
        g->gens[gen + 1].count++;
    for (int i = 0; i <= gen; i++)
        g->gens[i].count = 0;
    tallyO_link *young = &g->gens[gen].head;
    for (int i = 0; i < gen; i++)
        tallyG_list_merge(&g->gens[i].head, young);
    tallyO_link *old = gen + 1 < TALLY_GC_GENERATIONS ? &g->gens[gen + 1].head : young;

    tallyO_link unreachable;
    tallyG_list_init(&unreachable);
    size_t kept = find_unreachable(rt, young, &unreachable);
    if (young != old) {
        if (gen == TALLY_GC_GENERATIONS - 2)
            g->long_lived_pending += kept;
        tallyG_list_merge(young, old);
    } else {
        g->long_lived_pending = 0;
        g->long_lived_total = kept;
    }
    outcome out = {0, 0};
    if (tallyG_list_empty(&unreachable))
        return out;
    if (g->debug & TALLY_GC_DEBUG_COLLECTABLE)
        for (tallyO_link *l = unreachable.next; l != &unreachable; l = l->next)
            print_object(rt, "collectable", l);

    unsigned long long calls = g->user_calls;
    long freed_refs = tallyG_weakrefs_unreachable(rt, &unreachable);
    finalize_all(rt, &unreachable);
    /* Without user code having run, no count can have changed: skip the re-check. */
    if (g->user_calls != calls)
        resurrect(rt, &unreachable, old);
    out.collected = (long)tallyG_list_size(&unreachable) + freed_refs;
    out.uncollectable = delete_garbage(rt, &unreachable, old);
    return out;
}

static unsigned long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

static void run_callbacks(tally_rt *rt, tally_gc_phase phase, const tally_gc_info *info)
{
    tallyG_state *g = &rt->gc;
    /* A callback may remove itself: walk a copy. */
    tallyG_callback cbs[TALLY_GC_MAX_CALLBACKS];
    unsigned n = g->ncallbacks;
    for (unsigned i = 0; i < n; i++)
        cbs[i] = g->callbacks[i];
    for (unsigned i = 0; i < n; i++)
        cbs[i].cb(rt, phase, info, cbs[i].arg);
}

static void print_start(tally_rt *rt, int gen)
{
    tallyG_state *g = &rt->gc;
    FILE *f = tallyG_stream(g);
    fprintf(f, "gc: collecting generation %d...\n", gen);
    fprintf(f, "gc: objects in each generation: %zu %zu %zu\n", tallyG_list_size(&g->gens[0].head),
            tallyG_list_size(&g->gens[1].head), tallyG_list_size(&g->gens[2].head));
    fprintf(f, "gc: objects in permanent generation: %zu\n", tallyG_list_size(&g->permanent));
}

long tallyG_collect(tally_rt *rt, int gen)
{
    tallyG_state *g = &rt->gc;
    g->collecting = true;
    tally_gc_info info = {gen, 0, 0};
    if (g->ncallbacks)
        run_callbacks(rt, TALLY_GC_START, &info);
    if (g->debug & TALLY_GC_DEBUG_STATS)
        print_start(rt, gen);
    unsigned long long t0 = now_ns();
    outcome out = collect_main(rt, gen);
    unsigned long long dt = now_ns() - t0;
    tally_gc_stats *st = &g->stats[gen];
    st->collections++;
    st->collected += (unsigned long long)out.collected;
    st->uncollectable += (unsigned long long)out.uncollectable;
    st->total_ns += dt;
    if (dt > st->max_ns)
        st->max_ns = dt;
    if (g->debug & TALLY_GC_DEBUG_STATS)
        fprintf(tallyG_stream(g), "gc: done, %ld unreachable, %ld uncollectable, %.4fs elapsed\n",
                out.collected, out.uncollectable, (double)dt / 1e9);
    info.collected = out.collected;
    info.uncollectable = out.uncollectable;
    if (g->ncallbacks)
        run_callbacks(rt, TALLY_GC_STOP, &info);
    g->collecting = false;
    return out.collected;
}
