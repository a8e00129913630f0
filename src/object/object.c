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

#include <string.h>

#include "heap/heap.h"
#include "runtime/runtime.h"

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

static bool types_grow(tally_rt *rt)
{
    tallyO_state *s = &rt->obj;
    uint32_t cap = s->types_cap ? s->types_cap * 2 : 16;
    const tally_type **t = tally_realloc(rt, (void *)s->types, cap * sizeof *t);
    if (t == NULL)
        return false;
    s->types = t;
    s->types_cap = cap;
    return true;
}

/* Index of type t in the table (registered on first sight), or UINT32_MAX. */
static TALLY_NOINLINE uint32_t type_lookup(tally_rt *rt, const tally_type *t, tallyO_typecache *c)
{
    tallyO_state *s = &rt->obj;
    uint32_t i = 0;
    while (i < s->ntypes && s->types[i] != t)
        i++;
    if (i == s->ntypes) {
        if (!type_valid(rt, t))
            return UINT32_MAX;
        if (s->ntypes == TALLY_MAX_TYPES) {
            tallyB_error_set(&rt->heap.err, TALLY_ELIMIT, "more than %u types", TALLY_MAX_TYPES);
            return UINT32_MAX;
        }
        if (s->ntypes == s->types_cap && !types_grow(rt))
            return UINT32_MAX;
        s->types[s->ntypes++] = t;
    }
    c->type = t;
    c->index = i;
    return i;
}

TALLY_INLINE uint32_t type_index(tally_rt *rt, const tally_type *t)
{
    tallyO_typecache *c = &rt->obj.cache[((uintptr_t)t >> 4) & (TALLY_TYPECACHE - 1)];
    if (TALLY_LIKELY(c->type == t))
        return c->index;
    return type_lookup(rt, t, c);
}

const tally_type *tallyO_type(tally_rt *rt, const void *o)
{
    return rt->obj.types[tallyO_info(o) & TALLY_OF_TYPE_MASK];
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

/* ---- allocation ---------------------------------------------------------------- */

void *tallyO_alloc(tally_rt *rt, const tally_type *t, size_t nitems)
{
    uint32_t index = type_index(rt, t);
    if (TALLY_UNLIKELY(index == UINT32_MAX))
        return NULL;
    bool linked = type_linked(t);
    size_t pre = sizeof(tally_head) + (linked ? sizeof(tallyO_link) : 0);
    size_t items, total;
    if (TALLY_UNLIKELY(__builtin_mul_overflow(nitems, t->item_size, &items) ||
                       __builtin_add_overflow(items, t->size + pre, &total))) {
        tallyB_error_set(&rt->heap.err, TALLY_EOVERFLOW,
                         "object of type '%s' with %zu items of %zu bytes overflows",
                         t->name ? t->name : "(unnamed)", nitems, t->item_size);
        return NULL;
    }
    uint8_t *b = tally_malloc(rt, total);
    if (TALLY_UNLIKELY(b == NULL))
        return NULL;
    memset(b, 0, total);
    void *o = b + pre;
    tally_head *h = tallyO_head(o);
    h->rc = 1;
    h->info = index | (linked ? TALLY_OF_LINKED : 0);
    rt->obj.live++;
    return o;
}

static void free_object(tally_rt *rt, void *o)
{
    tally_head *h = tallyO_head(o);
    size_t pre = sizeof(tally_head) + ((h->info & TALLY_OF_LINKED) ? sizeof(tallyO_link) : 0);
    h->rc = 0;
    rt->obj.live--;
    tally_free(rt, (uint8_t *)o - pre);
}

/* ---- death --------------------------------------------------------------------- */

static void decref_visit(void *referent, void *arg)
{
    (void)arg;
    if (referent != NULL)
        tally_decref(referent);
}

void tallyO_release_refs(tally_rt *rt, void *o)
{
    tally_head *h = tallyO_head(o);
    if (h->info & TALLY_OF_RELEASED)
        return;
    const tally_type *t = tallyO_type(rt, o);
    if (t->clear != NULL) {
        t->clear(o);
    } else if (t->traverse != NULL) {
        h->info |= TALLY_OF_RELEASED;
        t->traverse(o, decref_visit, NULL);
    }
}

static void finish(tally_rt *rt, void *o)
{
    tallyO_release_refs(rt, o);
    const tally_type *t = tallyO_type(rt, o);
    if (t->destroy != NULL)
        t->destroy(o);
    free_object(rt, o);
}

/* Releases what o holds and frees it: depth-first while the C stack allows, else
 * queued for the outermost death to finish (object.h). */
static void finish_linked(tally_rt *rt, void *o)
{
    tallyO_state *s = &rt->obj;
    if (s->depth >= TALLY_DEALLOC_DEPTH) {
        tallyO_link *l = tallyO_link_of(o);
        l->next = s->pending;
        s->pending = l;
        return;
    }
    s->depth++;
    finish(rt, o);
    if (s->depth == 1) {
        while (s->pending != NULL) {
            tallyO_link *l = s->pending;
            s->pending = l->next;
            finish(rt, tallyO_from_link(l));
        }
    }
    s->depth--;
}

/* Runs o's finalizer if it has one that has not run; false if o was resurrected. */
static bool finalize(tally_rt *rt, void *o)
{
    tally_head *h = tallyO_head(o);
    const tally_type *t = tallyO_type(rt, o);
    if (t->finalize == NULL || (h->info & TALLY_OF_FINALIZED))
        return true;
    h->info |= TALLY_OF_FINALIZED;
    h->rc = 1; /* a live reference for the finalizer's duration */
    t->finalize(o);
    return --h->rc == 0;
}

static void dealloc(tally_rt *rt, void *o)
{
    tally_head *h = tallyO_head(o);
    if (!finalize(rt, o))
        return;
    h->rc = 0;
    h->info |= TALLY_OF_DYING;
    if (h->info & (TALLY_OF_LINKED | TALLY_OF_WEAKREFS))
        rt->obj.hooks.dying(rt, o);
    if (h->info & TALLY_OF_LINKED)
        finish_linked(rt, o);
    else
        finish(rt, o);
}

/* ---- the slow halves of incref and decref -------------------------------------- */

void tallyO_misuse(tally_rt *rt, const void *o, tally_error code, const char *what)
{
    const tally_head *h = tallyO_head(o);
    tallyB_error_report(&rt->heap.err, code, "%s of object %p (count %#x): %s", what, o, h->rc,
                        h->rc == 0 ? "the object is dead (freed, or being destroyed)"
                                   : "the header is not an object's (freed and poisoned, or overwritten)");
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
    if (TALLY_LIKELY(h->rc == 1)) {
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
    if (h->info & TALLY_OF_TRACKED)
        rt_of(o)->obj.hooks.untrack(rt_of(o), o);
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
    /* Either layout: the block starts 8 or 24 bytes before p. */
    for (size_t pre = sizeof(tally_head); pre <= sizeof(tally_head) + sizeof(tallyO_link); pre += 16) {
        if (a < pre + TALLY_DEBUG_HEAD || !tallyH_user_block_live(&rt->heap, (const uint8_t *)p - pre))
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
    s->hooks.dying = no_hook;
    s->hooks.untrack = no_hook;
    return 0;
}

void tallyO_destroy(tally_rt *rt)
{
    (void)rt; /* the type table lives in the heap, which goes as a whole */
}
