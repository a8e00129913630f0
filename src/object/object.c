/* object.c - objects: allocation, the type table, reference counts, death.
 *
 * Types.  The 8-byte header has no room for a type pointer, so each runtime keeps
 * a table of the descriptors it has seen and headers hold an index into it (22
 * bits).  tally_new finds the index through a 64-entry direct-mapped cache keyed
 * by the descriptor's address, then a scan of the table; a descriptor is checked
 * once, when first seen.
 *
 * Death.  tallyO_dealloc runs when the last reference goes (see object.h for the
 * order of steps and the queue that keeps long chains off the C stack).  The count
 * of a dead object is 0, so a later incref or decref through a dangling pointer
 * reaches the slow paths here and is reported (in debug mode the freed block is
 * poisoned instead, which the slow paths recognise as well).
 */
#include "object/object.h"

#include "object/object_inline.h"

#include <string.h>

#include "heap/heap.h"

static tally_rt *rt_of(const void *o)
{
    return (tally_rt *)(void *)tallyH_pool_of(o)->heap;
}

/* ---- the type table ------------------------------------------------------------ */

static bool type_valid(tally_rt *rt, const tally_type *t)
{
    const char *why = NULL;
    if (t->size > TALLY_MAX_REQUEST)
        why = "its size is absurd";
    else if ((t->flags & TALLY_TYPE_CONTAINER) && t->traverse == NULL)
        why = "a container type needs a traverse callback";
    else if (t->flags & ~(unsigned)TALLY_TYPE_CONTAINER)
        why = "unknown flags";
    if (why == NULL)
        return true;
    tallyB_error_set(&rt->heap.err, TALLY_EINVAL, "type '%s' refused: %s",
                     t->name ? t->name : "(unnamed)", why);
    return false;
}

/* The table grows into a new block; the old one stays (until the runtime closes)
 * because entries must never move (object.h).  The allocation may run a
 * collection whose finalizers register types (and grow the table) meanwhile:
 * the state is read again once it returns. */
static bool types_grow(tally_rt *rt)
{
    tallyO_state *s = &rt->obj;
    uint32_t cap = s->types_cap * 2;
    tallyO_typeinfo *t = tally_malloc(rt, cap * sizeof *t);
    if (t == NULL)
        return false;
    if (s->ntypes < s->types_cap || s->types_cap >= cap) { /* grown meanwhile */
        tally_free(rt, t);
        return s->ntypes < s->types_cap || types_grow(rt);
    }
    if (s->ntypes)
        memcpy(t, s->types, s->ntypes * sizeof *t);
    s->types = t;
    s->types_cap = cap;
    return true;
}

/* Objects whose type may hold references carry link words: the collector's
 * lists for containers, the queue of deaths for all of them. */
static bool type_linked(const tally_type *t)
{
    return (t->flags & TALLY_TYPE_CONTAINER) || t->traverse != NULL || t->clear != NULL;
}

size_t tally_type_overhead(const tally_type *type)
{
    return sizeof(tally_head) + (type_linked(type) ? sizeof(tallyO_link) : 0);
}

static tallyO_typeinfo describe(tally_rt *rt, const tally_type *t, uint32_t index)
{
    bool container = (t->flags & TALLY_TYPE_CONTAINER) != 0;
    tallyO_typeinfo ti = {.type = t, .traverse = t->traverse};
    ti.info = index | (type_linked(t) ? TALLY_OF_LINKED : 0) | (container ? TALLY_OF_TRACKED : 0);
    ti.prefix = (uint16_t)tallyO_prefix(ti.info);
    size_t total = t->size + ti.prefix;
    ti.total = total <= UINT32_MAX ? (uint32_t)total : 0;
    if (t->item_size == 0 && total <= TALLY_OBJ_CACHE_MAX)
        ti.stack = &rt->obj.free[(total - 1) / 16];
    ti.traits = (uint16_t)((container ? TALLY_TI_CONTAINER : 0) | (t->finalize ? TALLY_TI_FINALIZE : 0) |
                           (t->clear ? TALLY_TI_CLEAR : 0) | (t->destroy ? TALLY_TI_DESTROY : 0));
    if (!type_linked(t) && !t->finalize && !t->destroy)
        ti.traits |= TALLY_TI_PLAIN;
    return ti;
}

static uint32_t type_find(const tallyO_state *s, const tally_type *t)
{
    uint32_t i = 0;
    while (i < s->ntypes && s->types[i].type != t)
        i++;
    return i;
}

const tallyO_typeinfo *tallyO_type_lookup(tally_rt *rt, const tally_type *t)
{
    tallyO_state *s = &rt->obj;
    uint32_t i = type_find(s, t);
    if (i == s->ntypes) {
        if (!type_valid(rt, t))
            return NULL;
        if (s->ntypes == TALLY_MAX_TYPES) {
            tallyB_error_set(&rt->heap.err, TALLY_ELIMIT, "more than %u types", TALLY_MAX_TYPES);
            return NULL;
        }
        if (s->ntypes == s->types_cap && !types_grow(rt))
            return NULL;
        i = type_find(s, t); /* user code may have run, registering types, even t */
    }
    if (i == s->ntypes) {
        s->types[s->ntypes++] = describe(rt, t, i);
        if (t->finalize)
            s->finalizer_types++;
    }
    tallyO_typeinfo *c = &s->cache[((uintptr_t)t >> 4) & (TALLY_TYPECACHE - 1)];
    *c = s->types[i];
    return c;
}

const tally_type *tallyO_type(tally_rt *rt, const void *o)
{
    return rt->obj.types[tallyO_info(o) & TALLY_OF_TYPE_MASK].type;
}

/* ---- allocation ---------------------------------------------------------------- */

void *tallyO_new_slow(tally_rt *rt, const tallyO_typeinfo *tip, size_t nitems)
{
    return tallyO_new_slow_at(rt, tip, nitems, NULL, 0, NULL);
}

/* Are the free stacks in use?  Not while the heap checks every call (debug mode,
 * fault injection, Valgrind), which must see every block; while it only traces,
 * they are, and the tracer hears of each block a stack takes or hands out as of
 * a release or an allocation, with the heap's hooks for live small blocks. */
static bool stacks_on(const tally_rt *rt)
{
    return !(rt->heap.slow & TALLY_SLOW_CHECKS);
}

static void report_alloc(tally_rt *rt, uint8_t *b, size_t n, const char *file, int line,
                         const void *caller)
{
    const tallyH_tracer *t = rt->heap.tracer;
    t->alloc_small(t->arg, tallyH_pool_of(b), b, n, file, line, caller);
}

static void report_free(tally_rt *rt, uint8_t *b)
{
    const tallyH_tracer *t = rt->heap.tracer;
    t->free_small(t->arg, tallyH_pool_of(b), b);
}

void *tallyO_new_slow_at(tally_rt *rt, const tallyO_typeinfo *tip, size_t nitems,
                         const char *file, int line, const void *caller)
{
    /* A copy: the heap may run a collection, and user code may evict the entry. */
    const tallyO_typeinfo ti = *tip;
    const tally_type *t = ti.type;
    size_t items, total;
    if (TALLY_UNLIKELY(__builtin_mul_overflow(nitems, t->item_size, &items) ||
                       __builtin_add_overflow(items, t->size + ti.prefix, &total))) {
        tallyB_error_set(&rt->heap.err, TALLY_EOVERFLOW,
                         "object of type '%s' with %zu items of %zu bytes overflows",
                         t->name ? t->name : "(unnamed)", nitems, t->item_size);
        return NULL;
    }
    uint8_t *b = NULL;
    if (total <= TALLY_OBJ_CACHE_MAX && stacks_on(rt)) { /* the stack of its block size */
        tallyO_freestack *fs = &rt->obj.free[(total - 1) / 16];
        if (fs->n != 0) {
            b = fs->block[--fs->n];
            if (rt->heap.slow) /* tracing: the block is handed out again */
                report_alloc(rt, b, total, file, line, caller);
        }
    }
    if (b == NULL && (b = tallyH_malloc_at(&rt->heap, total, file, line, caller)) == NULL)
        return NULL;
    memset(b, 0, total);
    void *o = b + ti.prefix;
    tallyO_head_init(o, ti.info);
    rt->obj.live++;
    return o;
}

/* The free stack for block b of an object with items: by the size of its block
 * (small pools only), or NULL. */
static tallyO_freestack *var_stack(tally_rt *rt, const uint8_t *b)
{
    const tallyH_pool *p = tallyH_pool_of(b);
    if (p->tag != tallyH_tag(&rt->heap, p, TALLY_POOL_SMALL) || p->bsize > TALLY_OBJ_CACHE_MAX)
        return NULL;
    return &rt->obj.free[(p->bsize - 1) / 16];
}

/* Gives o's block back: to its free stack if it has room, else to the heap. */
static void free_object(tally_rt *rt, void *o, const tallyO_typeinfo *ti)
{
    uint8_t *b = (uint8_t *)o - ti->prefix;
    rt->obj.live--;
    tallyO_freestack *fs = ti->stack;
    if (!stacks_on(rt)) {
        tally_free(rt, b);
        return;
    }
    if (fs == NULL && ti->type->item_size != 0)
        fs = var_stack(rt, b);
    if (fs != NULL && fs->n < TALLY_OBJ_CACHE_DEPTH) {
        if (rt->heap.slow) /* tracing: for the tracer, the block is released */
            report_free(rt, b);
        fs->block[fs->n++] = b;
        return;
    }
    tally_free(rt, b);
}

void tallyO_cache_flush(tally_rt *rt)
{
    for (size_t c = 0; c < TALLY_OBJ_CACHE_MAX / 16; c++) {
        tallyO_freestack *fs = &rt->obj.free[c];
        while (fs->n != 0)
            tally_free(rt, fs->block[--fs->n]);
    }
}

/* ---- death --------------------------------------------------------------------- */

static void decref_visit(void *referent, void *arg)
{
    (void)arg;
    if (referent != NULL)
        tally_decref(referent);
}

static void release_refs(void *o, const tallyO_typeinfo *ti)
{
    tally_head *h = tallyO_head(o);
    if (h->info & TALLY_OF_RELEASED)
        return;
    if (ti->traits & TALLY_TI_CLEAR) {
        ti->type->clear(o);
    } else if (ti->traverse != NULL) {
        h->info |= TALLY_OF_RELEASED;
        ti->traverse(o, decref_visit, NULL);
    }
}

void tallyO_release_refs(tally_rt *rt, void *o)
{
    release_refs(o, &rt->obj.types[tallyO_info(o) & TALLY_OF_TYPE_MASK]);
}

static void finish(tally_rt *rt, void *o, const tallyO_typeinfo *ti)
{
    release_refs(o, ti);
    if (ti->traits & TALLY_TI_DESTROY)
        ti->type->destroy(o);
    free_object(rt, o, ti);
}

/* Finishes the deaths queued while the C stack was deep (object.h). */
static TALLY_NOINLINE void drain_pending(tally_rt *rt)
{
    tallyO_state *s = &rt->obj;
    s->depth++;
    while (s->pending != TALLY_HANDLE_NONE) {
        tallyO_link *l = tallyO_at(&rt->heap, s->pending);
        void *p = tallyO_from_link(l);
        s->pending = l->next;
        finish(rt, p, &s->types[tallyO_info(p) & TALLY_OF_TYPE_MASK]);
    }
    s->depth--;
}

/* Releases what o holds and frees it: depth-first while the C stack allows, else
 * queued for the outermost death to finish (object.h). */
static void finish_linked(tally_rt *rt, void *o, const tallyO_typeinfo *ti)
{
    tallyO_state *s = &rt->obj;
    if (TALLY_UNLIKELY(s->depth >= TALLY_DEALLOC_DEPTH)) {
        tallyO_link *l = tallyO_link_of(o);
        l->next = s->pending;
        s->pending = tallyH_handle(l);
        return;
    }
    s->depth++;
    finish(rt, o, ti);
    s->depth--;
    if (TALLY_UNLIKELY(s->pending != TALLY_HANDLE_NONE) && s->depth == 0)
        drain_pending(rt);
}

/* Runs o's finalizer, which has not run yet; false if o was resurrected. */
static TALLY_NOINLINE bool finalize(tally_rt *rt, void *o, const tallyO_typeinfo *ti)
{
    tally_head *h = tallyO_head(o);
    const tally_type *t = ti->type;
    if (ti->traits & TALLY_TI_CONTAINER)
        rt->obj.to_young(rt, o);
    h->info |= TALLY_OF_FINALIZED | TALLY_OF_FINALIZING;
    h->rc = 1; /* the runtime's reference for the finalizer's duration */
    t->finalize(o);
    h->info &= ~TALLY_OF_FINALIZING;
    return --h->rc == 0;
}

static void dealloc(tally_rt *rt, void *o)
{
    tally_head *h = tallyO_head(o);
    uint32_t info = h->info;
    const tallyO_typeinfo *ti = &rt->obj.types[info & TALLY_OF_TYPE_MASK]; /* stable */
    if (TALLY_UNLIKELY(ti->traits & TALLY_TI_FINALIZE) && !(info & TALLY_OF_FINALIZED)) {
        if (!finalize(rt, o, ti))
            return;
        info = h->info;
    }
    h->rc = 0;
    tallyO_untrack(&rt->heap, o);
    info = h->info |= TALLY_OF_DYING;
    if ((ti->traits & TALLY_TI_CONTAINER) && rt->obj.young > 0)
        rt->obj.young--;
    if (TALLY_UNLIKELY(info & TALLY_OF_WEAKREFS))
        rt->obj.weakrefs_die(rt, o);
    if (ti->traits & TALLY_TI_PLAIN)
        free_object(rt, o, ti);
    else if (info & TALLY_OF_LINKED)
        finish_linked(rt, o, ti);
    else
        finish(rt, o, ti);
}

/* ---- the slow halves of incref and decref -------------------------------------- */

void tallyO_misuse(tally_rt *rt, const void *o, tally_error code, const char *what)
{
    const tally_head *h = tallyO_head(o);
    const char *why = h->rc == 0 ? "the object is dead (freed, or being destroyed)"
                      : (h->info & TALLY_OF_FINALIZING)
                          ? "the count would drop below zero (a finalizer released its own object)"
                          : "the header is not an object's (freed and poisoned, or overwritten)";
    tallyB_error_report(&rt->heap.err, code, "%s of object %p (count %#x): %s", what, o, h->rc, why);
}

static bool immortal(const tally_head *h)
{
    return h->rc == TALLY_RC_IMMORTAL && (h->info & TALLY_OF_IMMORTAL);
}

void tally_incref_slow(void *o)
{
    tally_head *h = tallyO_head(o);
    if (immortal(h))
        return;
    if (h->rc == TALLY_RC_IMMORTAL_MIN - 1) { /* saturated: never freed (PEP 683) */
        h->rc = TALLY_RC_IMMORTAL;
        h->info |= TALLY_OF_IMMORTAL;
        return;
    }
    tallyO_misuse(rt_of(o), o, TALLY_EDEAD, "incref");
}

void tally_decref_slow(void *o)
{
    tally_head *h = tallyO_head(o);
    if (TALLY_LIKELY(h->rc == 1 && !(h->info & TALLY_OF_FINALIZING))) {
        dealloc(rt_of(o), o);
        return;
    }
    if (immortal(h))
        return;
    tallyO_misuse(rt_of(o), o, TALLY_EDEAD, "decref");
}

/* ---- queries ------------------------------------------------------------------- */

size_t tally_refcount(const void *o)
{
    return tallyO_head(o)->rc;
}

const tally_type *tally_type_of(const void *o)
{
    return tallyO_type(rt_of(o), o);
}

void tally_immortalize(void *o)
{
    tally_head *h = tallyO_head(o);
    if (immortal(h))
        return;
    tallyO_untrack(&rt_of(o)->heap, o);
    h->rc = TALLY_RC_IMMORTAL;
    h->info |= TALLY_OF_IMMORTAL;
}

int tally_is_immortal(const void *o)
{
    return immortal(tallyO_head(o));
}

int tally_is_object(tally_rt *rt, const void *p)
{
    if (p == NULL || ((uintptr_t)p & 7) != 0)
        return 0;
    uintptr_t a = (uintptr_t)p;
    /* Either layout: the block starts 8 or 16 bytes before p. */
    for (size_t pre = sizeof(tally_head); pre <= sizeof(tally_head) + sizeof(tallyO_link);
         pre += sizeof(tallyO_link)) {
        const uint8_t *block = (const uint8_t *)p - pre;
        /* Not live, or p is past its end: a neighbour, not a header. */
        if (a < pre + TALLY_DEBUG_HEAD || tallyH_user_block_size(&rt->heap, block) <= pre)
            continue;
        const tally_head *hd = tallyO_head(p);
        bool linked = (hd->info & TALLY_OF_LINKED) != 0;
        if (hd->rc != 0 && linked == (pre != sizeof(tally_head)) &&
            (hd->info & TALLY_OF_TYPE_MASK) < rt->obj.ntypes)
            return 1;
    }
    return 0;
}

/* ---- the runtime's object state ------------------------------------------------ */

static void no_hook(tally_rt *rt, void *o)
{
    (void)rt;
    (void)o;
}

int tallyO_init(tally_rt *rt)
{
    tallyO_state *s = &rt->obj;
    memset(s, 0, sizeof *s);
    s->types = s->inline_types;
    s->types_cap = TALLY_TYPES_INLINE;
    s->weakrefs_die = no_hook;
    s->to_young = no_hook;
    s->pending = TALLY_HANDLE_NONE;
    return 0;
}

void tallyO_destroy(tally_rt *rt)
{
    (void)rt; /* the type table lives in the heap, which goes as a whole */
}
