/* table.c - the trace table: which live blocks are traced, with their size and site.
 *
 * Small blocks (the pool classes, nearly every block) are traced in per-pool
 * arrays: the tracer keeps, for each pool that holds a traced block, a record
 * with one {size, site + 1} slot per block of the pool, indexed by the block's
 * index (its offset divided by the block size, a multiplication by the pool's
 * reciprocal).  Finding a trace is then two loads near each other, and blocks
 * allocated one after another use neighbouring slots: a hash table keyed by
 * address, the obvious design, costs a cache miss per allocation and per free
 * once the traces outgrow the cache (2.5 to 3.9x the untraced time on
 * bench/trace_bench.c, against about 1.6x with the records, and 7x the memory).  Records are found
 * through a small open-addressing table keyed by pool address, behind a 16-entry
 * direct-mapped cache of recent pools; the table holds each key beside its
 * record, so a probe reads no record.
 *
 * A record keeps the pool's geometry (first block, block size, capacity), so that
 * a trace is found and removed without reading the pool header: a free or a
 * realloc reports the old block after the heap may already have given its pool
 * back.  The record of a released pool holds no trace (its blocks were all freed,
 * and every free reaches the tracer); when the pool is reused for another class,
 * the next allocation there finds the geometry changed and makes a new record.
 * Records stay until tracing stops: a pool that empties and fills again reuses it.
 *
 * While a pool is live the heap keeps the handle of its record in the pool's aux
 * word (0 until the tracer links one, and zeroed when the pool is made again or
 * the tracer goes): the hooks of the heap's tracing branch, which see the live
 * pool, reach the slot in two loads, with no search (tallyM_rec_of).  A pool with
 * no record linked holds no trace.
 *
 * Large and huge blocks (whole pools; few), and the blocks a program tracks in
 * domains of its own (tally_trace_track), are traced in an open-addressing hash
 * table keyed by address and domain (0 for the heap's blocks): linear probing, a
 * Fibonacci hash of the address's 16-byte unit (one address in several domains
 * shares a run), deletion by backward shift (Knuth's Algorithm R: no tombstones, so a removal
 * never allocates), grown by doubling at 1/2 full; if it cannot grow it takes
 * entries up to 7/8 full before an insertion fails.
 *
 * Every block comes from tallyH_malloc_quiet.  When one cannot be had the trace
 * is not recorded and the caller counts the block as untraced; nothing recorded
 * is lost.  Invariant: ntraces and the sizes summed over the slots in use and the
 * hash entries are what trace.c counts (current).
 */
#include "trace/trace.h"

#include <string.h>

#include "heap/heap_inline.h"

/* ---- the hash table of large blocks -------------------------------------------- */

static size_t home(uintptr_t p, size_t cap)
{
    uint64_t x = (uint64_t)(p >> 4) * 0x9E3779B97F4A7C15ull;
    return (size_t)(x >> (64 - __builtin_ctzll((unsigned long long)cap))); /* cap >= 2 */
}

/* The entry of (p, domain): domain 0 for the heap's large blocks. */
static tallyM_entry *large_find(const tallyM_state *s, uintptr_t p, uint32_t domain)
{
    if (s->traces == NULL)
        return NULL;
    size_t mask = s->traces_cap - 1;
    for (size_t i = home(p, s->traces_cap);; i = (i + 1) & mask) {
        tallyM_entry *e = &s->traces[i];
        if (e->addr == p && e->domain == domain)
            return e;
        if (e->addr == 0)
            return NULL;
    }
}

/* Places an entry known to be absent into a table with room. */
static void place(tallyM_entry *t, size_t cap, const tallyM_entry *e)
{
    size_t i = home(e->addr, cap);
    while (t[i].addr != 0)
        i = (i + 1) & (cap - 1);
    t[i] = *e;
}

static bool large_grow(tallyH_heap *h, tallyM_state *s)
{
    size_t cap = s->traces_cap ? s->traces_cap * 2 : 16;
    if (cap > SIZE_MAX / sizeof(tallyM_entry))
        return false;
    tallyM_entry *t = tallyH_malloc_quiet(h, cap * sizeof *t);
    if (t == NULL)
        return false;
    memset(t, 0, cap * sizeof *t);
    for (size_t i = 0; i < s->traces_cap; i++)
        if (s->traces[i].addr != 0)
            place(t, cap, &s->traces[i]);
    tallyH_free_quiet(h, s->traces);
    s->traces = t;
    s->traces_cap = cap;
    return true;
}

static void large_remove(tallyM_state *s, tallyM_entry *e)
{
    size_t mask = s->traces_cap - 1;
    size_t i = (size_t)(e - s->traces);
    /* Backward shift: an entry further along the run moves into the hole unless
     * its home lies cyclically in (hole, its slot], where it must stay. */
    for (size_t j = (i + 1) & mask; s->traces[j].addr != 0; j = (j + 1) & mask) {
        size_t k = home(s->traces[j].addr, s->traces_cap);
        bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            s->traces[i] = s->traces[j];
            i = j;
        }
    }
    s->traces[i].addr = 0;
    s->nlarge--;
}

/* The entry for (p, domain), existing or new (size 0); NULL if there is no room. */
static tallyM_entry *large_claim(tallyH_heap *h, tallyM_state *s, uintptr_t p, uint32_t domain)
{
    size_t cap = s->traces_cap;
    if ((s->nlarge + 1) * 2 > cap && !large_grow(h, s) && (s->nlarge + 1) * 8 > cap * 7)
        return large_find(s, p, domain);
    size_t mask = s->traces_cap - 1;
    for (size_t i = home(p, s->traces_cap);; i = (i + 1) & mask) {
        tallyM_entry *e = &s->traces[i];
        if (e->addr == p && e->domain == domain)
            return e;
        if (e->addr == 0) {
            *e = (tallyM_entry){p, 0, 0, domain};
            s->nlarge++;
            return e;
        }
    }
}

/* ---- pool records ---------------------------------------------------------------- */

static size_t pool_home(uintptr_t pool, size_t cap)
{
    uint64_t x = (uint64_t)(pool >> TALLY_POOL_SHIFT) * 0x9E3779B97F4A7C15ull;
    return (size_t)(x >> (64 - __builtin_ctzll((unsigned long long)cap)));
}

/* The record of the pool at address pool, or NULL.  The table holds the keys
 * beside the record pointers: probing reads no record. */
static tallyM_pooltrace *rec_find(tallyM_state *s, uintptr_t pool)
{
    tallyM_pooltrace **hint = &s->recent_pools[(pool >> TALLY_POOL_SHIFT) & (TALLY_TRACE_RECENT - 1)];
    if (*hint != NULL && (*hint)->pool == pool)
        return *hint;
    if (s->pools == NULL)
        return NULL;
    size_t mask = s->pools_cap - 1;
    for (size_t i = pool_home(pool, s->pools_cap); s->pools[i].rec != NULL; i = (i + 1) & mask) {
        if (s->pools[i].pool == pool)
            return *hint = s->pools[i].rec;
    }
    return NULL;
}

/* Puts r into a table with room (r's pool is not there yet). */
static void rec_place(tallyM_poolref *t, size_t cap, tallyM_pooltrace *r)
{
    size_t j = pool_home(r->pool, cap);
    while (t[j].rec != NULL)
        j = (j + 1) & (cap - 1);
    t[j] = (tallyM_poolref){r->pool, r};
}

static bool pools_grow(tallyH_heap *h, tallyM_state *s)
{
    size_t cap = s->pools_cap ? s->pools_cap * 2 : 16;
    tallyM_poolref *t = tallyH_malloc_quiet(h, cap * sizeof *t);
    if (t == NULL)
        return false;
    memset(t, 0, cap * sizeof *t);
    for (size_t i = 0; i < s->pools_cap; i++)
        if (s->pools[i].rec != NULL)
            rec_place(t, cap, s->pools[i].rec);
    tallyH_free_quiet(h, s->pools);
    s->pools = t;
    s->pools_cap = cap;
    return true;
}

static tallyM_pooltrace *rec_new(tallyH_heap *h, tallyM_state *s, const tallyH_pool *p)
{
    size_t bytes = sizeof(tallyM_pooltrace) + (size_t)p->cap * sizeof(tallyM_slot);
    tallyM_pooltrace *r = tallyH_malloc_quiet(h, bytes);
    if (r == NULL)
        return NULL;
    memset(r, 0, bytes);
    r->pool = (uintptr_t)p;
    r->data = (uintptr_t)p->data;
    r->bsize = p->bsize;
    r->inv = p->inv;
    r->cap = p->cap;
    s->pool_bytes += tally_usable_size(r);
    return r;
}

/* Links live small pool p to its record r through the pool's aux word. */
static tallyM_pooltrace *rec_link(tallyH_pool *p, tallyM_pooltrace *r)
{
    p->aux = tallyH_handle(r);
    return r;
}

/* The record for live small pool p, made (or remade, if the pool now serves
 * another class) when needed, and linked from the pool; NULL if there is no
 * memory for it. */
tallyM_pooltrace *tallyM_rec_for(tallyH_heap *h, tallyM_state *s, tallyH_pool *p)
{
    uintptr_t key = (uintptr_t)p;
    tallyM_pooltrace *r = rec_find(s, key);
    if (r != NULL && r->data == (uintptr_t)p->data && r->bsize == p->bsize && r->cap == p->cap)
        return rec_link(p, r);
    if (r != NULL) { /* the pool was given back and now serves another class */
        tallyM_pooltrace *n = rec_new(h, s, p);
        if (n == NULL)
            return NULL;
        size_t mask = s->pools_cap - 1, i = pool_home(key, s->pools_cap);
        while (s->pools[i].rec != r)
            i = (i + 1) & mask;
        s->pools[i].rec = n;
        s->pool_bytes -= tally_usable_size(r);
        tallyH_free_quiet(h, r); /* it holds no trace, and no pool links to it: see the top */
        return rec_link(p, s->recent_pools[(key >> TALLY_POOL_SHIFT) & (TALLY_TRACE_RECENT - 1)] = n);
    }
    if ((s->npools + 1) * 2 > s->pools_cap && !pools_grow(h, s))
        return NULL;
    r = rec_new(h, s, p);
    if (r == NULL)
        return NULL;
    rec_place(s->pools, s->pools_cap, r);
    s->npools++;
    return rec_link(p, s->recent_pools[(key >> TALLY_POOL_SHIFT) & (TALLY_TRACE_RECENT - 1)] = r);
}

/* The slot of the block at raw address a in record r, or NULL if a is not one of
 * its block starts (from the record's geometry: the pool is not read). */
static tallyM_slot *rec_slot(tallyM_pooltrace *r, uintptr_t a)
{
    uintptr_t off = a - r->data;
    if (off >= (uintptr_t)r->cap * r->bsize)
        return NULL;
    uint32_t idx = tallyH_div((uint32_t)off, r->inv);
    if ((uintptr_t)idx * r->bsize != off)
        return NULL;
    return &r->slot[idx];
}

/* ---- the interface ----------------------------------------------------------------- */

/* The raw heap block behind user pointer p (debug blocks start before it). */
static uintptr_t raw_of(const tallyH_heap *h, uintptr_t p)
{
    return p - (h->debug ? TALLY_DEBUG_HEAD : 0);
}

bool tallyM_lookup(const tallyH_heap *h, tallyM_state *s, uintptr_t p, tallyM_ref *ref)
{
    uintptr_t a = raw_of(h, p);
    tallyM_pooltrace *r = rec_find(s, (uintptr_t)tallyH_pool_of((void *)a));
    if (r != NULL) {
        tallyM_slot *slot = rec_slot(r, a);
        if (slot != NULL && slot->site != 0) {
            *ref = (tallyM_ref){r, slot, NULL, slot->size, slot->site - 1};
            return true;
        }
    }
    return tallyM_lookup_domain(s, p, 0, ref);
}

bool tallyM_lookup_domain(tallyM_state *s, uintptr_t p, uint32_t domain, tallyM_ref *ref)
{
    tallyM_entry *e = large_find(s, p, domain);
    if (e == NULL)
        return false;
    *ref = (tallyM_ref){NULL, NULL, e, e->size, e->site};
    return true;
}

/* Traces (p, domain) in the large table: tallyM_put's large branch, and tracking. */
bool tallyM_put_domain(tallyH_heap *h, tallyM_state *s, uintptr_t p, uint32_t domain,
                       size_t size, uint32_t site, size_t *replaced)
{
    size_t before = s->nlarge;
    tallyM_entry *e = large_claim(h, s, p, domain);
    if (e == NULL)
        return false;
    if (s->nlarge != before)
        s->ntraces++;
    *replaced = e->size;
    e->size = size;
    e->site = site;
    return true;
}

bool tallyM_lookup_live(const tallyH_heap *h, tallyM_state *s, uintptr_t p, tallyM_ref *ref)
{
    uintptr_t a = raw_of(h, p);
    tallyH_pool *pool = tallyH_pool_of((void *)a);
    /* Peeked: below a medium block (a container's buffer) that word may lie in
     * freed units, no-access to the tools, or in a neighbour's unwritten bytes. */
    if (tallyB_peek_word(pool) != tallyH_tag(h, pool, TALLY_POOL_SMALL))
        return tallyM_lookup(h, s, p, ref); /* large or medium: by address */
    tallyM_pooltrace *r = tallyM_rec_of(h, pool);
    if (r == NULL)
        return false;
    tallyM_slot *slot = tallyM_slot_of(r, pool, a);
    if (slot->site == 0)
        return false;
    *ref = (tallyM_ref){r, slot, NULL, slot->size, slot->site - 1};
    return true;
}

void tallyM_drop(tallyM_state *s, const tallyM_ref *ref)
{
    if (ref->slot != NULL) {
        tallyM_slot_clear(s, ref->rec, ref->slot);
    } else {
        large_remove(s, ref->entry);
        s->ntraces--;
    }
}

void tallyM_set(const tallyM_ref *ref, size_t size, uint32_t site)
{
    if (ref->slot != NULL) {
        ref->slot->size = (uint32_t)size;
        ref->slot->site = site + 1;
    } else {
        ref->entry->size = size;
        ref->entry->site = site;
    }
}

bool tallyM_put(tallyH_heap *h, tallyM_state *s, uintptr_t p, size_t size, uint32_t site,
                size_t *replaced)
{
    *replaced = 0;
    uintptr_t a = raw_of(h, p);
    tallyH_pool *pool = tallyH_pool_of((void *)a);
    /* p is live, so its pool is if it is small; peeked as in tallyM_lookup_live. */
    if (tallyB_peek_word(pool) == tallyH_tag(h, pool, TALLY_POOL_SMALL)) {
        tallyM_pooltrace *r = tallyM_rec_for(h, s, pool);
        tallyM_slot *slot = r ? rec_slot(r, a) : NULL;
        if (slot == NULL)
            return false;
        if (slot->site != 0) { /* a trace p had already: replaced */
            *replaced = slot->size;
            tallyM_slot_clear(s, r, slot);
        }
        tallyM_slot_fill(s, r, slot, size, site);
        return true;
    }
    return tallyM_put_domain(h, s, p, 0, size, site, replaced);
}

void tallyM_each(const tallyM_state *s, tallyM_visit_fn fn, void *arg)
{
    for (size_t i = 0; i < s->pools_cap; i++) {
        const tallyM_pooltrace *r = s->pools[i].rec;
        if (r == NULL || r->count == 0)
            continue;
        for (uint32_t k = 0; k < r->cap; k++)
            if (r->slot[k].site != 0)
                fn(arg, r->slot[k].size, r->slot[k].site - 1, 0);
    }
    for (size_t i = 0; i < s->traces_cap; i++)
        if (s->traces[i].addr != 0)
            fn(arg, s->traces[i].size, s->traces[i].site, s->traces[i].domain);
}

size_t tallyM_table_bytes(const tallyM_state *s)
{
    size_t n = s->pool_bytes;
    if (s->pools)
        n += tally_usable_size(s->pools);
    if (s->traces)
        n += tally_usable_size(s->traces);
    return n;
}

void tallyM_table_free(tallyH_heap *h, tallyM_state *s)
{
    for (size_t i = 0; i < s->pools_cap; i++)
        tallyH_free_quiet(h, s->pools[i].rec);
    tallyH_free_quiet(h, s->pools);
    tallyH_free_quiet(h, s->traces);
    s->pools = NULL;
    s->pools_cap = s->npools = 0;
    memset(s->recent_pools, 0, sizeof s->recent_pools);
    s->pool_bytes = 0;
    s->traces = NULL;
    s->traces_cap = s->nlarge = s->ntraces = 0;
}
