/* collect.c - the cycle collector: CPython's trial deletion over generations.
 *
 * To collect generations 0..g, their lists are merged into one set S, then two
 * passes over S decide what is garbage:
 *  1. each object's scratch count gc_refs (kept in its prev word) starts as its
 *     reference count, and drops by one for every reference from another object
 *     of S: what is left counts the references from outside S (pass 1 below);
 *  2. objects with gc_refs > 0 are reachable from outside, and so is everything
 *     they reach; one scan of S, which needs no stack and never recurses, keeps
 *     those (they move to generation g+1) and moves the rest to the unreachable
 *     list (pass 2 below).  CPython takes three passes (update_refs, subtract_refs,
 *     move_unreachable) for the same; the generation number kept in each header
 *     lets pass 1 recognise members of S without a pass of its own.
 * Then, as CPython does: weak references to unreachable objects are cleared and the
 * callbacks of the live ones run; finalizers run once each (PEP 442); if any user
 * code ran, both passes are repeated on the unreachable list alone, and objects now
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
    return rt->obj.types[*info_of(l) & TALLY_OF_TYPE_MASK].type;
}

/* Reports l's references to visit; an object whose references were released
 * through traverse (RELEASED) holds stale pointers and reports none. */
TALLY_INLINE void traverse(tally_rt *rt, tallyO_link *l, tally_visit_fn visit, void *arg)
{
    uint32_t info = *info_of(l);
    if (TALLY_LIKELY(!(info & TALLY_OF_RELEASED)))
        rt->obj.types[info & TALLY_OF_TYPE_MASK].traverse(tallyO_from_link(l), visit, arg);
}

TALLY_INLINE uint32_t state_of(uint32_t info)
{
    return info & TALLY_OF_STATE_MASK;
}

TALLY_INLINE void set_state(uint32_t *info, uint32_t state)
{
    *info = (*info & ~TALLY_OF_STATE_MASK) | state;
}

/* ---- pass 1: scratch counts ------------------------------------------------------ *
 * The set is the objects of one list: the merged generations 0..gen (the main
 * run: members are the tracked objects of generation <= gen) or the unreachable
 * list (the re-check after finalizers: members are the UNREACHED objects).  A
 * member's scratch count is initialised the first time it is met, as a list
 * element or as a referent, so one walk both initialises and subtracts. */

/* Set membership of a header, by kind of set: generation 0 alone, 0 and 1, all
 * three (tracked objects with those generation numbers), or the re-check (objects
 * found unreachable).  Members met before are COLLECTING already. */
enum set_kind { SET_GEN0, SET_GEN01, SET_ALL, SET_RECHECK };

TALLY_INLINE bool is_new_member(uint32_t i, enum set_kind kind)
{
    const uint32_t tracked = TALLY_OF_TRACKED | TALLY_OF_STATE_MASK;
    switch (kind) {
    case SET_GEN0:
        return (i & (tracked | TALLY_OF_GEN_MASK)) == TALLY_OF_TRACKED;
    case SET_GEN01:
        return (i & (tracked | (2u << TALLY_OF_GEN_SHIFT))) == TALLY_OF_TRACKED;
    case SET_ALL:
        return (i & tracked) == TALLY_OF_TRACKED &&
               (i & TALLY_OF_GEN_MASK) != (TALLY_OF_GEN_OUT << TALLY_OF_GEN_SHIFT);
    case SET_RECHECK:
        return state_of(i) == TALLY_OF_UNREACHED;
    }
    return false;
}

/* The scratch word in prev: the count of outside references (bits 0..29), and
 * LEAF, set by pass 1 on an object that refers to no member, which pass 2 then
 * need not traverse.  Counts start below 2^30 (saturated counts are clipped), so
 * a traverse that reports more references than the object holds makes bit 31
 * appear and the object count as a root that is traversed: never as a leaf. */
#define SCRATCH_LEAF (1u << 30)
#define SCRATCH_COUNT_MAX (SCRATCH_LEAF - 1)

TALLY_INLINE bool has_outside_refs(uint32_t scratch)
{
    return (scratch & ~SCRATCH_LEAF) != 0;
}

TALLY_INLINE bool is_leaf(uint32_t scratch)
{
    return (scratch & (SCRATCH_LEAF | 0x80000000u)) == SCRATCH_LEAF;
}

/* l's scratch count starts as its reference count. */
TALLY_INLINE void meet(tallyO_link *l, uint32_t *info)
{
    set_state(info, TALLY_OF_COLLECTING);
    uint32_t rc = ((const tally_head *)(const void *)(l + 1))->rc;
    l->prev = rc < SCRATCH_COUNT_MAX ? rc : SCRATCH_COUNT_MAX;
}

/* Visits referent r of the object being traversed; *found records that it
 * referred to a member. */
TALLY_INLINE void subtract(void *r, enum set_kind kind, bool *found)
{
    if (r == NULL)
        return;
    tallyO_link *l = tallyO_link_of(r);
    uint32_t *info = &tallyO_head(r)->info;
    if (state_of(*info) == TALLY_OF_COLLECTING) {
        l->prev--;
        *found = true;
    } else if (is_new_member(*info, kind)) {
        meet(l, info);
        l->prev--;
        *found = true;
    }
}

/* One visitor per kind of set, so that membership is a constant mask test. */
static void subtract_gen0(void *r, void *arg)
{
    subtract(r, SET_GEN0, arg);
}

static void subtract_gen01(void *r, void *arg)
{
    subtract(r, SET_GEN01, arg);
}

static void subtract_all(void *r, void *arg)
{
    subtract(r, SET_ALL, arg);
}

static void subtract_recheck(void *r, void *arg)
{
    subtract(r, SET_RECHECK, arg);
}

/* Pass 1 over set; returns its size. */
static size_t count_external(tally_rt *rt, tallyG_list set, enum set_kind kind)
{
    static const tally_visit_fn visitors[] = {subtract_gen0, subtract_gen01, subtract_all,
                                              subtract_recheck};
    tally_visit_fn visit = visitors[kind];
    const tallyH_heap *heap = &rt->heap;
    size_t n = 0;
    for (uint32_t h = set.s->next; h != set.h; n++) {
        tallyO_link *l = tallyO_at(heap, h);
        h = l->next;
        uint32_t *info = info_of(l);
        if (state_of(*info) != TALLY_OF_COLLECTING)
            meet(l, info);
        bool found = false;
        traverse(rt, l, visit, &found);
        if (!found)
            l->prev |= SCRATCH_LEAF;
    }
    return n;
}

/* ---- pass 2: one scan splits the set --------------------------------------------- *
 * A cursor walks the set.  An object with external references (scratch count > 0)
 * or already reached stays, and is traversed: members it refers to ahead of the
 * cursor are marked REACHED; members behind it, which were moved to the unreachable
 * list, come back to the end of the set, to be scanned in turn.  Any other object
 * moves to the unreachable list (for now).  Each object moves back at most once,
 * so the scan is linear and needs no stack.  Ahead of the cursor prev words hold
 * counts; behind it they are relinked as the cursor passes, and objects on the
 * unreachable list have exact links. */

typedef struct pass2 {
    const tallyH_heap *heap;
    tallyG_list set;   /* its sentinel's prev is the true last element */
} pass2;

static void visit_reach(void *r, void *arg)
{
    if (r == NULL)
        return;
    uint32_t *info = &tallyO_head(r)->info;
    uint32_t st = state_of(*info);
    if (st == TALLY_OF_COLLECTING) {
        set_state(info, TALLY_OF_REACHED);
    } else if (st == TALLY_OF_UNREACHED) { /* behind the cursor: to the end */
        pass2 *p = arg;
        tallyO_link *l = tallyO_link_of(r);
        uint32_t lh = tallyH_handle(l);
        tallyO_unlink(p->heap, l);
        tallyO_at(p->heap, p->set.s->prev)->next = lh;
        l->next = p->set.h;
        l->prev = 0; /* its scratch word was a list link: no LEAF, so it is traversed */
        p->set.s->prev = lh;
        set_state(info, TALLY_OF_REACHED);
    }
}

/* Pass 2: returns the objects kept in set; the rest is appended to unreachable. */
static size_t scan(tally_rt *rt, tallyG_list set, tallyG_list unreachable, uint32_t gen_bits)
{
    pass2 p = {&rt->heap, set};
    size_t kept = 0;
    tallyO_link *last = set.s;
    uint32_t lasth = set.h;
    for (uint32_t h = set.s->next; h != set.h;) {
        tallyO_link *l = tallyO_at(p.heap, h);
        uint32_t *info = info_of(l);
        uint32_t scratch = l->prev;
        if (has_outside_refs(scratch) || state_of(*info) == TALLY_OF_REACHED) {
            *info = (*info & ~(TALLY_OF_STATE_MASK | TALLY_OF_GEN_MASK)) | gen_bits;
            l->prev = lasth;
            last = l;
            lasth = h;
            if (!is_leaf(scratch))
                traverse(rt, l, visit_reach, &p);
            kept++;
            h = l->next; /* read after the traversal: it may have appended */
        } else {
            uint32_t next = l->next;
            last->next = next;
            if (next == set.h)
                set.s->prev = lasth;
            set_state(info, TALLY_OF_UNREACHED);
            tallyG_list_append(p.heap, l, h, unreachable);
            h = next;
        }
    }
    last->next = set.h;
    set.s->prev = lasth;
    return kept;
}

TALLY_INLINE uint32_t gen_bits(int gen)
{
    return (uint32_t)gen << TALLY_OF_GEN_SHIFT;
}

/* ---- after the marking --------------------------------------------------------- */

/* Back to an ordinary tracked object of generation gen. */
static void unmark(tallyO_link *l, int gen)
{
    uint32_t *info = info_of(l);
    *info = (*info & ~(TALLY_OF_STATE_MASK | TALLY_OF_GEN_MASK)) | gen_bits(gen);
}

/* Runs each unreachable object's finalizer once (PEP 442).  Finalizers may free
 * or untrack objects of the list, so the first one is always taken next. */
static void finalize_all(tally_rt *rt, tallyG_list unreachable)
{
    const tallyH_heap *heap = &rt->heap;
    tallyG_list seen = tallyG_list_of(&rt->gc, TALLY_GC_LIST_SEEN);
    tallyG_list_init(seen);
    while (!tallyG_list_empty(unreachable)) {
        uint32_t h = unreachable.s->next;
        tallyO_link *l = tallyO_at(heap, h);
        tallyG_list_move(heap, l, h, seen);
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
    tallyG_list_merge(heap, seen, unreachable);
}

/* Objects of `unreachable` that user code made reachable again go to generation
 * `old` with everything they reach; the rest stays. */
static void resurrect(tally_rt *rt, tallyG_list unreachable, tallyG_list old, int old_gen)
{
    tallyG_list still = tallyG_list_of(&rt->gc, TALLY_GC_LIST_STILL);
    tallyG_list_init(still);
    count_external(rt, unreachable, SET_RECHECK);
    scan(rt, unreachable, still, gen_bits(old_gen));
    tallyG_list_merge(&rt->heap, unreachable, old);
    tallyG_list_merge(&rt->heap, still, unreachable);
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
static long delete_garbage(tally_rt *rt, tallyG_list final, tallyG_list old, int old_gen)
{
    tallyG_state *g = &rt->gc;
    const tallyH_heap *heap = &rt->heap;
    long saved = 0;
    while (!tallyG_list_empty(final)) {
        uint32_t h = final.s->next;
        tallyO_link *l = tallyO_at(heap, h);
        void *o = tallyO_from_link(l);
        if (g->debug & TALLY_GC_DEBUG_SAVEALL) {
            if (g->debug & TALLY_GC_DEBUG_UNCOLLECTABLE)
                print_object(rt, "uncollectable", l);
            unmark(l, TALLY_OF_GEN_OUT);
            tally_incref(o);
            tallyG_list_move(heap, l, h, tallyG_list_of(g, TALLY_GC_LIST_GARBAGE));
            g->ngarbage++;
            saved++;
            continue;
        }
        tally_incref(o);
        tallyO_release_refs(rt, o);
        tally_decref(o);
        if (final.s->next == h) { /* still alive: it may die later */
            unmark(l, old_gen);
            tallyG_list_move(heap, l, h, old);
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
    rt->obj.young = 0;
    tallyG_list young = tallyG_list_of(g, TALLY_GC_LIST_GEN0 + gen);
    for (int i = 0; i < gen; i++)
        tallyG_list_merge(&rt->heap, tallyG_list_of(g, TALLY_GC_LIST_GEN0 + i), young);
    int old_gen = gen + 1 < TALLY_GC_GENERATIONS ? gen + 1 : gen;
    tallyG_list old = tallyG_list_of(g, TALLY_GC_LIST_GEN0 + old_gen);

    tallyG_list unreachable = tallyG_list_of(g, TALLY_GC_LIST_UNREACHABLE);
    tallyG_list_init(unreachable);
    size_t total = count_external(rt, young, (enum set_kind)gen);
    size_t kept = scan(rt, young, unreachable, gen_bits(old_gen));
    if (young.h != old.h) {
        if (gen == TALLY_GC_GENERATIONS - 2)
            g->long_lived_pending += kept;
        tallyG_list_merge(&rt->heap, young, old);
    } else {
        g->long_lived_pending = 0;
        g->long_lived_total = kept;
    }
    outcome out = {0, 0};
    if (tallyG_list_empty(unreachable))
        return out;
    if (g->debug & TALLY_GC_DEBUG_COLLECTABLE)
        for (uint32_t h = unreachable.s->next; h != unreachable.h;) {
            tallyO_link *l = tallyO_at(&rt->heap, h);
            print_object(rt, "collectable", l);
            h = l->next;
        }

    /* The passes over the unreachable set that can find nothing are skipped: weak
     * references when none exists, finalizers when no type has one, and the
     * re-check when no user code ran (no count can have changed then). */
    unsigned long long calls = g->user_calls;
    long freed_refs = g->wr_used != 0 ? tallyG_weakrefs_unreachable(rt, unreachable) : 0;
    if (rt->obj.finalizer_types != 0)
        finalize_all(rt, unreachable);
    size_t found = total - kept;
    if (g->user_calls != calls) {
        resurrect(rt, unreachable, old, old_gen);
        found = tallyG_list_size(&rt->heap, unreachable);
    }
    out.collected = (long)found + freed_refs;
    out.uncollectable = delete_garbage(rt, unreachable, old, old_gen);
    return out;
}

static unsigned long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

static bool registered(const tallyG_state *g, tallyG_callback c)
{
    for (unsigned i = 0; i < g->ncallbacks; i++)
        if (g->callbacks[i].cb == c.cb && g->callbacks[i].arg == c.arg)
            return true;
    return false;
}

/* Calls the callbacks registered when the phase began; a callback may remove
 * itself or others: removed ones are not called any more, added ones wait for
 * the next phase. */
static void run_callbacks(tally_rt *rt, tally_gc_phase phase, const tally_gc_info *info)
{
    tallyG_state *g = &rt->gc;
    tallyG_callback cbs[TALLY_GC_MAX_CALLBACKS];
    unsigned n = g->ncallbacks;
    for (unsigned i = 0; i < n; i++)
        cbs[i] = g->callbacks[i];
    for (unsigned i = 0; i < n; i++)
        if (registered(g, cbs[i]))
            cbs[i].cb(rt, phase, info, cbs[i].arg);
}

static void print_start(tally_rt *rt, int gen)
{
    tallyG_state *g = &rt->gc;
    FILE *f = tallyG_stream(g);
    fprintf(f, "gc: collecting generation %d...\n", gen);
    size_t n[TALLY_GC_LISTS];
    for (int i = 0; i <= TALLY_GC_LIST_PERMANENT; i++)
        n[i] = tallyG_list_size(&rt->heap, tallyG_list_of(g, i));
    fprintf(f, "gc: objects in each generation: %zu %zu %zu\n", n[0], n[1], n[2]);
    fprintf(f, "gc: objects in permanent generation: %zu\n", n[TALLY_GC_LIST_PERMANENT]);
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
