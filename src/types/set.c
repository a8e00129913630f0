/* set.c - the built-in set: a mutable collection of distinct hashable objects.
 *
 * A set is the dict's table (hashtable.h, implemented in dict.c) without values
 * (two-word entries: hash and key): the same compact, insertion-ordered layout, so a set iterates in the
 * order its members were added.
 *
 *     set -> index [ E | 1 | E | 0 | ... ]  entries [ {h,k0} {h,k1} ... ]
 *
 * Every re-entrancy rule of the table holds here too (see dict.c): user hash and
 * eq functions and finalizers may change the set in the middle of a call, and a
 * failed call leaves the set as it was.
 */
#include "types/hashtable.h"

#include "runtime/runtime.h"

typedef struct set {
    tallyT_table t;  /* first: the table functions take the set itself */
    int repr_active; /* a repr of this set is in progress */
} set;

static tally_rt *rt_of(const void *o)
{
    return tally_runtime_of(o);
}

/* s as a set, or NULL with the error set (when s names a runtime to set it in). */
static set *as_set(const void *s, const char *fn)
{
    if (tallyT_is(s, &tally_set_type))
        return (set *)s;
    if (s != NULL)
        tallyB_error_set(tallyT_err(rt_of(s)), TALLY_EINVAL, "%s: not a set", fn);
    return NULL;
}

/* ---- the set type ------------------------------------------------------------------- */

static void set_traverse(void *self, tally_visit_fn visit, void *arg)
{
    tallyT_table_traverse(self, visit, arg);
}

/* At death and in the collector: empty for good, even if finalizers run by the
 * releases add members again. */
static void set_clear(void *self)
{
    while (((set *)self)->t.index != NULL)
        tallyT_table_clear(self);
}

static void set_destroy(void *self)
{
    tallyT_table_free(self);
}

static int set_hash(void *self, uint64_t *out)
{
    (void)out;
    tallyB_error_set(tallyT_err(rt_of(self)), TALLY_EINVAL, "unhashable type: 'set'");
    return -1;
}

static int set_eq(void *self, void *other)
{
    if (!tallyT_is(other, &tally_set_type))
        return 0;
    return tallyT_table_eq(self, other, false);
}

/* "{1, 2}", "set()" when empty (as Python: "{}" is a dict); a set met again
 * inside itself (through a member's repr) shows as "set(...)". */
static int set_repr(void *self, tally_strbuf *out)
{
    set *s = self;
    if (s->t.used == 0)
        return tally_strbuf_append(out, "set()", 5);
    if (s->repr_active)
        return tally_strbuf_append(out, "set(...)", 8);
    s->repr_active = 1;
    int rc = tally_strbuf_append(out, "{", 1);
    bool first = true;
    for (size_t i = 0; rc == 0 && i < s->t.nentries; i++) {
        void *k = tallyT_entry_key(&s->t, tallyT_entry(&s->t, i));
        if (k == NULL)
            continue;
        if (!first)
            rc = tally_strbuf_append(out, ", ", 2);
        first = false;
        tally_incref(k); /* a user repr may remove it */
        if (rc == 0)
            rc = tally_strbuf_append_repr(out, k);
        tally_decref(k);
    }
    if (rc == 0)
        rc = tally_strbuf_append(out, "}", 1);
    s->repr_active = 0;
    return rc;
}

static void *set_iter(void *self)
{
    return tallyT_table_iter(self, TALLYT_KEYS);
}

static size_t set_owned_bytes(const void *self)
{
    return tallyT_table_owned(self);
}

static const tally_type_ops set_ops = {
    .hash = set_hash,
    .eq = set_eq,
    .repr = set_repr,
    .iter = set_iter,
    .owned_bytes = set_owned_bytes,
};

const tally_type tally_set_type = {
    .name = "set",
    .size = sizeof(set),
    .flags = TALLY_TYPE_CONTAINER,
    .traverse = set_traverse,
    .clear = set_clear,
    .destroy = set_destroy,
    .ops = &set_ops,
};

/* ---- the set API ---------------------------------------------------------------------- */

void *tally_set(tally_rt *rt)
{
    return tally_new(rt, &tally_set_type); /* zero-filled: empty, no arrays */
}

int tally_is_set(const void *o)
{
    return tallyT_is(o, &tally_set_type);
}

size_t tally_set_size(const void *s)
{
    const set *sp = as_set(s, "tally_set_size");
    return sp != NULL ? sp->t.used : 0;
}

int tally_set_add(void *s, void *key)
{
    set *sp = as_set(s, "tally_set_add");
    uint64_t hash;
    if (sp == NULL || tallyT_table_hash(sp, key, &hash) != 0)
        return -1;
    return tallyT_table_insert(sp, key, hash, NULL, false);
}

int tally_set_contains(const void *s, void *key)
{
    set *sp = as_set(s, "tally_set_contains");
    uint64_t hash;
    void *unused;
    if (sp == NULL || tallyT_table_hash(sp, key, &hash) != 0)
        return -1;
    return tallyT_table_lookup(sp, key, hash, &unused);
}

int tally_set_discard(void *s, void *key)
{
    set *sp = as_set(s, "tally_set_discard");
    uint64_t hash;
    if (sp == NULL || tallyT_table_hash(sp, key, &hash) != 0)
        return -1;
    return tallyT_table_remove(sp, key, hash, NULL, NULL);
}

void tally_set_clear(void *s)
{
    set *sp = as_set(s, "tally_set_clear");
    if (sp != NULL)
        tallyT_table_clear(sp);
}

/* Adds every item of iterable to s: 0, or -1 with the error set. */
static int add_all(set *s, void *iterable)
{
    void *it = tally_iter(iterable);
    if (it == NULL)
        return -1;
    void *item;
    int r;
    while ((r = tally_iter_next(it, &item)) == 1) {
        int added = tally_set_add(s, item);
        tally_decref(item);
        if (added < 0) {
            r = -1;
            break;
        }
    }
    tally_decref(it);
    return r;
}

void *tally_set_from(tally_rt *rt, void *iterable)
{
    if (iterable == NULL) {
        tallyB_error_set(tallyT_err(rt), TALLY_EINVAL, "tally_set_from: the iterable is NULL");
        return NULL;
    }
    set *s = tally_set(rt);
    if (s == NULL)
        return NULL;
    if (add_all(s, iterable) != 0) {
        tally_decref(s);
        return NULL;
    }
    return s;
}
