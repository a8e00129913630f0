/* test_types_dict.c - the built-in dict, set and weak-value map (tally/types.h,
 * "dict", "set", "weak-value map").
 *
 * Dicts: set/get/lookup/delete/pop/clear with int and str keys and exact
 * reference counts; 10^5 keys with deletions interleaved, insertion order kept
 * through deletions and rebuilds (checked with the tally_dict_item walk), and the
 * table shrinking back after mass deletion; equal keys of different objects (two
 * equal strs, two equal big ints) map to one entry, which keeps its first key;
 * unhashable keys (a list) and NULL keys/values refused with the dict unchanged;
 * get_c/set_c against str keys; keys/values/items iterators, tally_iter, and the
 * error when the dict changes size during iteration; eq and repr (nested,
 * self-containing); tally_sizeof growing with the arrays.
 * Re-entrancy: keys whose eq deletes, inserts or clears the very dict being
 * searched; values whose finalizers change the dict when they are replaced,
 * deleted or cleared.
 * Sets: add/contains/discard/clear, set_from with duplicates, order, eq, repr
 * ("{1, 2}", "set()"), iteration, unhashable members.
 * Weak-value map: an entry disappears when its value dies by count and by
 * tally_gc_collect; a value stored again under the same key keeps the newer
 * entry when the older value dies; the map dying while values live and values
 * dying while the map dies.
 * Cycles through dicts and sets are collected with the right counts.  Fault
 * injection at every allocation of a scenario: each failure returns -1/NULL with
 * the error set and the container unchanged, and the heap returns to baseline.
 */
#define _GNU_SOURCE
#include "test_objects.h"

#include <limits.h>
#include <stdint.h>

#include "tally/types.h"

/* ---- helpers ----------------------------------------------------------------------- */

static void *mkint(tally_rt *rt, int64_t v)
{
    void *o = tally_int(rt, v);
    assert_non_null(o);
    return o;
}

static void *mkstr(tally_rt *rt, const char *s)
{
    void *o = tally_str(rt, s);
    assert_non_null(o);
    return o;
}

static void check_repr(void *o, const char *want)
{
    void *s = tally_repr(o);
    assert_non_null(s);
    assert_string_equal(tally_str_data(s), want);
    tally_decref(s);
}

static void check_error(tally_rt *rt, tally_error code)
{
    assert_int_equal(tally_last_error(rt), code);
    tally_clear_error(rt);
}

/* d[k] = v for a new int key and value (the dict keeps the only references). */
static void put_ints(void *d, int64_t k, int64_t v)
{
    tally_rt *rt = tally_runtime_of(d);
    void *ko = mkint(rt, k), *vo = mkint(rt, v);
    assert_int_equal(tally_dict_set(d, ko, vo), 0);
    tally_decref(ko);
    tally_decref(vo);
}

/* d[k] as an int, or INT64_MIN when absent. */
static int64_t get_int(void *d, int64_t k)
{
    void *ko = mkint(tally_runtime_of(d), k);
    void *v = tally_dict_get(d, ko);
    tally_decref(ko);
    return v ? tally_int_value(v) : INT64_MIN;
}

static int del_int(void *d, int64_t k)
{
    void *ko = mkint(tally_runtime_of(d), k);
    int r = tally_dict_delete(d, ko);
    tally_decref(ko);
    return r;
}

/* The keys and values of a dict in order, to see that a failed call changed nothing. */
#define SNAP_MAX 512
typedef struct snap {
    size_t n;
    void *k[SNAP_MAX], *v[SNAP_MAX];
} snap;

static void take_snap(snap *s, void *d)
{
    s->n = tally_dict_size(d);
    assert_true(s->n <= SNAP_MAX);
    for (size_t i = 0; i < s->n; i++)
        assert_int_equal(tally_dict_item(d, i, &s->k[i], &s->v[i]), 0);
}

static void check_snap(const snap *s, void *d)
{
    assert_int_equal(tally_dict_size(d), s->n);
    for (size_t i = 0; i < s->n; i++) {
        void *k, *v;
        assert_int_equal(tally_dict_item(d, i, &k, &v), 0);
        assert_ptr_equal(k, s->k[i]);
        assert_ptr_equal(v, s->v[i]);
        void *found = NULL;
        assert_int_equal(tally_dict_lookup(d, k, &found), 1);
        assert_ptr_equal(found, v);
    }
}

/* A user key: hashes to `hash` (collisions on purpose), equal by id; its eq may
 * run a hook that changes a dict (re-entrancy). */
typedef struct ukey {
    long id;
    uint64_t hash;
    void (*hook)(struct ukey *self);
    void *target; /* borrowed: the dict the hook changes */
    int calls;
} ukey;

static int ukey_hash(void *self, uint64_t *out)
{
    *out = ((ukey *)self)->hash;
    return 0;
}

static const tally_type UKEY;

static int ukey_eq(void *self, void *other)
{
    ukey *a = self;
    a->calls++;
    if (a->hook) {
        void (*hook)(ukey *) = a->hook;
        a->hook = NULL; /* once */
        hook(a);
    }
    return tally_type_of(other) == &UKEY && ((ukey *)other)->id == a->id;
}

static const tally_type_ops ukey_ops = {.hash = ukey_hash, .eq = ukey_eq};
static const tally_type UKEY = {"ukey", sizeof(ukey), 0, 0, NULL, NULL, NULL, NULL, &ukey_ops};

static ukey *mkukey(tally_rt *rt, long id, uint64_t hash)
{
    ukey *k = tally_new(rt, &UKEY);
    assert_non_null(k);
    k->id = id;
    k->hash = hash;
    return k;
}

/* A plain object whose finalizer runs a hook on a dict (borrowed). */
typedef struct meddler {
    void *target;
    int kind;
} meddler;

static void meddler_finalize(void *self)
{
    meddler *m = self;
    if (m->target == NULL)
        return;
    tally_rt *rt = tally_runtime_of(m);
    if (m->kind == 0) { /* insert a fresh entry */
        void *k = tally_int(rt, 7777), *v = tally_int(rt, 1);
        if (k && v)
            tally_dict_set(m->target, k, v);
        tally_xdecref(k);
        tally_xdecref(v);
    } else if (m->kind == 1) { /* delete key 1000 */
        void *k = tally_int(rt, 1000);
        if (k)
            tally_dict_delete(m->target, k);
        tally_xdecref(k);
    } else {
        tally_dict_clear(m->target);
    }
}

static const tally_type MEDDLER = {"meddler", sizeof(meddler), 0, 0, NULL, NULL,
                                   meddler_finalize, NULL, NULL};

static void *mkmeddler(tally_rt *rt, void *target, int kind)
{
    meddler *m = tally_new(rt, &MEDDLER);
    assert_non_null(m);
    m->target = target;
    m->kind = kind;
    return m;
}

/* Registers the types, makes the small ints, the weak-reference table (room for
 * 16), the iterator types, then returns the settled block count. */
static size_t dict_baseline(tally_rt *rt)
{
    void *l = tally_list(rt, 0);
    assert_non_null(l);
    for (int64_t v = -5; v <= 256; v++) {
        void *o = mkint(rt, v);
        assert_int_equal(tally_list_append(l, o), 0);
        tally_decref(o);
    }
    void *e = tally_tuple(rt, 0, NULL);
    void *d = tally_dict(rt);
    assert_non_null(d);
    put_ints(d, 1000, 1);
    assert_int_equal(tally_dict_set_c(d, "x", l), 0);
    void *it = tally_dict_items(d);
    void *p = tally_next(it);
    assert_non_null(p);
    void *s = tally_set_from(rt, l);
    assert_non_null(s);
    void *sit = tally_iter(s);
    void *r = tally_repr(d);
    void *r2 = tally_repr(s);
    void *m = tally_weakvaluemap(rt);
    assert_non_null(m);
    node *leaves[16];
    for (int i = 0; i < 16; i++) {
        leaves[i] = mk(rt, &LEAF_NOFIN, -1);
        void *k = mkint(rt, i);
        assert_int_equal(tally_weakvaluemap_set(m, k, leaves[i]), 0);
        tally_decref(k);
    }
    for (int i = 0; i < 16; i++)
        tally_decref(leaves[i]);
    void *rec[] = {mkukey(rt, 0, 0), mkmeddler(rt, NULL, 0)};
    const void *objs[] = {rec[0], rec[1], m, r2, r, sit, s, p, it, d, e, l};
    for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++)
        tally_decref((void *)objs[i]);
    return settled_blocks(rt);
}

/* ---- dicts: basics -------------------------------------------------------------------- */

static void test_dict_basic(void **state)
{
    tally_rt *rt = *state;
    size_t base = dict_baseline(rt);
    void *d = tally_dict(rt);
    assert_true(tally_is_dict(d));
    assert_true(tally_gc_is_tracked(d));
    assert_int_equal(tally_dict_size(d), 0);
    size_t empty_size = tally_sizeof(d);
    void *k1 = mkint(rt, 1001), *k2 = mkstr(rt, "two"), *v1 = mkint(rt, 5001);
    void *v2 = mkstr(rt, "value two");
    assert_int_equal(tally_dict_set(d, k1, v1), 0);
    assert_int_equal(tally_dict_set(d, k2, v2), 0);
    assert_true(tally_sizeof(d) > empty_size);
    assert_int_equal(tally_dict_size(d), 2);
    assert_int_equal(tally_refcount(k1), 2);
    assert_int_equal(tally_refcount(v2), 2);
    assert_ptr_equal(tally_dict_get(d, k1), v1);
    assert_ptr_equal(tally_dict_get(d, k2), v2);
    void *v = NULL;
    assert_int_equal(tally_dict_lookup(d, k2, &v), 1);
    assert_ptr_equal(v, v2);
    /* absent: NULL, no error (an old error is cleared) */
    void *k3 = mkint(rt, 1003);
    tally_set_error(rt, TALLY_EINVAL, "stale");
    assert_null(tally_dict_get(d, k3));
    assert_int_equal(tally_last_error(rt), TALLY_OK);
    assert_int_equal(tally_dict_lookup(d, k3, &v), 0);
    assert_null(v);
    assert_int_equal(tally_dict_delete(d, k3), 0);
    assert_null(tally_dict_pop(d, k3));
    assert_int_equal(tally_last_error(rt), TALLY_OK);
    /* replacing a value releases the old one and keeps the position */
    void *v3 = mkint(rt, 5003);
    assert_int_equal(tally_dict_set(d, k1, v3), 0);
    assert_int_equal(tally_refcount(v1), 1);
    assert_int_equal(tally_refcount(v3), 2);
    assert_int_equal(tally_refcount(k1), 2); /* the key was not stored twice */
    void *k, *vv;
    assert_int_equal(tally_dict_item(d, 0, &k, &vv), 0);
    assert_ptr_equal(k, k1);
    assert_ptr_equal(vv, v3);
    /* delete and pop */
    assert_int_equal(tally_dict_delete(d, k1), 1);
    assert_int_equal(tally_refcount(k1), 1);
    assert_int_equal(tally_refcount(v3), 1);
    assert_int_equal(tally_dict_delete(d, k1), 0);
    void *popped = tally_dict_pop(d, k2);
    assert_ptr_equal(popped, v2);
    assert_int_equal(tally_refcount(v2), 2); /* ours and the popped reference */
    assert_int_equal(tally_refcount(k2), 1);
    tally_decref(popped);
    assert_int_equal(tally_dict_size(d), 0);
    /* NULL key or value, not a dict: EINVAL, nothing stored */
    tally_clear_error(rt);
    assert_int_equal(tally_dict_set(d, NULL, v1), -1);
    check_error(rt, TALLY_EINVAL);
    assert_int_equal(tally_dict_set(d, k1, NULL), -1);
    check_error(rt, TALLY_EINVAL);
    assert_int_equal(tally_refcount(k1), 1);
    assert_int_equal(tally_dict_set(k1, k1, v1), -1);
    check_error(rt, TALLY_EINVAL);
    assert_null(tally_dict_get(k1, k1));
    check_error(rt, TALLY_EINVAL);
    assert_int_equal(tally_dict_size(k1), 0);
    check_error(rt, TALLY_EINVAL);
    assert_int_equal(tally_dict_size(d), 0);
    /* clear releases everything */
    assert_int_equal(tally_dict_set(d, k1, v1), 0);
    assert_int_equal(tally_dict_set(d, k2, v2), 0);
    tally_dict_clear(d);
    assert_int_equal(tally_dict_size(d), 0);
    assert_int_equal(tally_refcount(k1), 1);
    assert_int_equal(tally_refcount(v2), 1);
    assert_int_equal(tally_sizeof(d), empty_size); /* the arrays went back */
    assert_null(tally_dict_get(d, k1));
    assert_int_equal(tally_dict_set(d, k1, v1), 0); /* usable again */
    assert_ptr_equal(tally_dict_get(d, k1), v1);
    const void *objs[] = {d, k1, k2, k3, v1, v2, v3};
    for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++)
        tally_decref((void *)objs[i]);
    assert_settled(rt, base);
}

/* 10^5 int keys, every third deleted as the dict grows; then the order of the
 * survivors, every lookup, mass deletion and refilling. */
static void test_dict_many_keys(void **state)
{
    tally_rt *rt = *state;
    size_t base = dict_baseline(rt);
    enum { N = 100000 };
    void *d = tally_dict(rt);
    size_t live = 0;
    for (int64_t i = 0; i < N; i++) {
        put_ints(d, i * 7919 % 1000003, i); /* scattered keys, value = insertion number */
        live++;
        if (i % 3 == 2) {
            int64_t victim = i - 1;
            assert_int_equal(del_int(d, victim * 7919 % 1000003), 1);
            live--;
        }
    }
    assert_int_equal(tally_dict_size(d), live);
    /* order: insertion order of the survivors (i % 3 != 1) */
    int64_t want = 0;
    for (size_t i = 0; i < live; i++, want++) {
        if (want % 3 == 1)
            want++;
        void *k, *v;
        assert_int_equal(tally_dict_item(d, i, &k, &v), 0);
        assert_int_equal(tally_int_value(v), want);
        assert_int_equal(tally_int_value(k), want * 7919 % 1000003);
    }
    tally_clear_error(rt);
    void *k, *v;
    assert_int_equal(tally_dict_item(d, live, &k, &v), -1);
    check_error(rt, TALLY_EINVAL);
    for (int64_t i = 0; i < N; i += 97)
        assert_int_equal(get_int(d, i * 7919 % 1000003), i % 3 == 1 ? INT64_MIN : i);
    /* delete all but the last 10: the table shrinks when next rebuilt */
    size_t big = tally_sizeof(d), left = live;
    for (int64_t i = 0; i < N && left > 10; i++)
        if (i % 3 != 1) {
            assert_int_equal(del_int(d, i * 7919 % 1000003), 1);
            left--;
        }
    assert_int_equal(tally_dict_size(d), 10);
    for (int64_t i = 0; i < N; i++) { /* churn: the entry array fills, then compacts */
        put_ints(d, -1 - i, i);
        assert_int_equal(del_int(d, -1 - i), 1);
    }
    assert_int_equal(tally_dict_size(d), 10);
    assert_true(tally_sizeof(d) < big / 100);
    for (size_t i = 0; i < 10; i++) { /* the survivors, still in order */
        assert_int_equal(tally_dict_item(d, i, &k, &v), 0);
        assert_int_equal(tally_int_value(v) % 3 != 1, 1);
        if (i > 0) {
            void *pk, *pv;
            assert_int_equal(tally_dict_item(d, i - 1, &pk, &pv), 0);
            assert_true(tally_int_value(pv) < tally_int_value(v));
        }
    }
    tally_decref(d);
    assert_settled(rt, base);
}

static void test_dict_str_keys(void **state)
{
    tally_rt *rt = *state;
    size_t base = dict_baseline(rt);
    enum { N = 20000 };
    void *d = tally_dict(rt);
    for (int i = 0; i < N; i++) {
        void *s = tally_str_format(rt, "key-%d", i);
        void *v = mkint(rt, i);
        assert_int_equal(tally_dict_set(d, s, v), 0);
        tally_decref(s);
        tally_decref(v);
        if (i % 4 == 3) {
            char buf[32];
            snprintf(buf, sizeof buf, "key-%d", i - 2);
            void *ks = mkstr(rt, buf); /* an equal str, another object */
            void *p = tally_dict_pop(d, ks);
            assert_non_null(p);
            assert_int_equal(tally_int_value(p), i - 2);
            tally_decref(p);
            tally_decref(ks);
        }
    }
    assert_int_equal(tally_dict_size(d), N - N / 4);
    for (int i = 0; i < N; i++) {
        char buf[32];
        snprintf(buf, sizeof buf, "key-%d", i);
        void *v = tally_dict_get_c(d, buf);
        if (i % 4 == 1)
            assert_null(v);
        else
            assert_int_equal(tally_int_value(v), i);
    }
    /* order */
    int want = 0;
    for (size_t i = 0; i < tally_dict_size(d); i++, want++) {
        if (want % 4 == 1)
            want++;
        void *k, *v;
        assert_int_equal(tally_dict_item(d, i, &k, &v), 0);
        assert_int_equal(tally_int_value(v), want);
    }
    tally_decref(d);
    assert_settled(rt, base);
}

/* tally_dict_get with str keys in a str-keyed dict, at each index slot width (1,
 * 2 and 4 bytes): the very key objects, other objects with the same text, keys
 * deleted (dummies in the probe sequences) and absent keys, which leave no error. */
static void check_str_gets(tally_rt *rt, void *d, void **keys, long n)
{
    for (long i = 0; i < n; i++) {
        void *same = tally_dict_get(d, keys[i]);
        void *other = mkstr(rt, tally_str_data(keys[i])); /* equal text, another object */
        void *got = tally_dict_get(d, other);
        if (i % 3 == 0) {
            assert_null(same);
            assert_null(got);
            assert_int_equal(tally_last_error(rt), TALLY_OK);
        } else {
            assert_int_equal(tally_int_value(same), i);
            assert_ptr_equal(got, same);
        }
        tally_decref(other);
    }
    void *absent = mkstr(rt, "no such key");
    tally_set_error(rt, TALLY_EINVAL, "stale");
    assert_null(tally_dict_get(d, absent));
    assert_int_equal(tally_last_error(rt), TALLY_OK);
    tally_decref(absent);
}

static void test_dict_get_str_keys(void **state)
{
    tally_rt *rt = *state;
    size_t base = dict_baseline(rt);
    enum { N = 70000 }; /* past 2^16 slots: 4-byte slots */
    static void *keys[N];
    void *d = tally_dict(rt);
    static const long stops[] = {40, 2000, N}; /* 1-, 2- and 4-byte index slots */
    long done = 0;
    for (size_t s = 0; s < sizeof stops / sizeof *stops; s++) {
        for (; done < stops[s]; done++) {
            keys[done] = tally_str_format(rt, "key-%ld", done);
            assert_non_null(keys[done]);
            void *v = mkint(rt, done);
            assert_int_equal(tally_dict_set(d, keys[done], v), 0);
            tally_decref(v);
            if (done % 3 == 0)
                assert_int_equal(tally_dict_delete(d, keys[done]), 1);
        }
        check_str_gets(rt, d, keys, done);
    }
    for (long i = 0; i < N; i++)
        tally_decref(keys[i]);
    tally_decref(d);
    assert_settled(rt, base);
}

/* A dict keyed only by strs stores two-word entries (the hash is the str's); the
 * first non-str key converts it to three-word entries, keeping every entry and
 * the order; a set stores two-word entries too. */
static void test_dict_layouts(void **state)
{
    tally_rt *rt = *state;
    size_t base = dict_baseline(rt);
    void *ds = tally_dict(rt), *di = tally_dict(rt), *st = tally_set(rt);
    for (int i = 0; i < 5; i++) { /* 5 entries: the smallest table (8 slots) */
        char buf[16];
        snprintf(buf, sizeof buf, "k%d", i);
        void *v = mkint(rt, i);
        assert_int_equal(tally_dict_set_c(ds, buf, v), 0);
        assert_int_equal(tally_dict_set(di, v, v), 0);
        assert_int_equal(tally_set_add(st, v), 1);
        tally_decref(v);
    }
    /* Replacing a value in a str-keyed dict releases the old one, with an equal
     * str (another object) as the key too. */
    void *old = mkint(rt, 5001), *nv = mkint(rt, 1001), *k1 = mkstr(rt, "k1");
    assert_int_equal(tally_dict_set_c(ds, "k1", old), 0);
    assert_int_equal(tally_refcount(old), 2);
    assert_int_equal(tally_dict_set(ds, k1, nv), 0);
    assert_int_equal(tally_refcount(old), 1);
    tally_decref(old);
    assert_ptr_equal(tally_dict_get_c(ds, "k1"), nv);
    assert_int_equal(tally_refcount(nv), 2);
    assert_int_equal(tally_refcount(k1), 1); /* the dict kept its own key */
    assert_int_equal(tally_dict_size(ds), 5);
    void *one = mkint(rt, 1);
    assert_int_equal(tally_dict_set(ds, k1, one), 0); /* as it was */
    assert_int_equal(tally_refcount(nv), 1);
    tally_decref(one);
    tally_decref(k1);
    tally_decref(nv);
    /* Entries of 5 x 16 bytes against 5 x 24 (both exact 16-byte classes). */
    assert_int_equal(tally_sizeof(di) - tally_sizeof(ds), 128 - 80);
    assert_int_equal(tally_sizeof(st), tally_sizeof(ds));

    enum { N = 3000 };
    for (int i = 5; i < N; i++) {
        char buf[16];
        snprintf(buf, sizeof buf, "k%d", i);
        void *v = mkint(rt, i);
        assert_int_equal(tally_dict_set_c(ds, buf, v), 0);
        tally_decref(v);
        if (i % 3 == 0) {
            snprintf(buf, sizeof buf, "k%d", i - 1);
            void *k = mkstr(rt, buf);
            assert_int_equal(tally_dict_delete(ds, k), 1);
            tally_decref(k);
        }
    }
    size_t before = tally_sizeof(ds), n = tally_dict_size(ds);
    void *ik = mkint(rt, -7), *iv = mkint(rt, 77);
    assert_int_equal(tally_dict_set(ds, ik, iv), 0); /* converts */
    assert_int_equal(tally_dict_size(ds), n + 1);
    assert_true(tally_sizeof(ds) > before);
    assert_ptr_equal(tally_dict_get(ds, ik), iv);
    int want = 0;
    for (size_t i = 0; i < n; i++, want++) {
        if (want % 3 == 2 && want + 1 < N && want >= 5)
            want++; /* deleted */
        void *k, *v;
        assert_int_equal(tally_dict_item(ds, i, &k, &v), 0);
        assert_int_equal(tally_int_value(v), want);
        char buf[16];
        snprintf(buf, sizeof buf, "k%d", want);
        assert_ptr_equal(tally_dict_get_c(ds, buf), v);
    }
    void *k, *v;
    assert_int_equal(tally_dict_item(ds, n, &k, &v), 0);
    assert_ptr_equal(k, ik);
    /* Emptied, the dict takes the layout of its next first key again. */
    tally_dict_clear(ds);
    void *sk = mkstr(rt, "again");
    assert_int_equal(tally_dict_set(ds, sk, iv), 0);
    assert_int_equal(tally_sizeof(ds), tally_sizeof(st)); /* two-word entries again */
    tally_decref(sk);
    tally_decref(ik);
    tally_decref(iv);
    tally_decref(ds);
    tally_decref(di);
    tally_decref(st);
    assert_settled(rt, base);
}

/* Index slots carry hash bits above the entry number: keys whose hashes agree
 * in the low bits (one probe sequence at first) and differ above them must all be
 * found, through growths (the tags are recomputed for each size) and deletions;
 * keys with equal hashes are still told apart by eq. */
static void test_dict_hash_tags(void **state)
{
    tally_rt *rt = *state;
    size_t base = dict_baseline(rt);
    enum { N = 70000 }; /* past 2^16 slots: 4-byte slots with 13 tag bits */
    void *d = tally_dict(rt), *x = mkint(rt, 9001);
    for (long i = 0; i < N; i++) {
        ukey *k = mkukey(rt, i, (uint64_t)(i % 5000) << 32 | 7); /* 14 share each hash */
        assert_int_equal(tally_dict_set(d, k, x), 0);
        tally_decref(k);
    }
    assert_int_equal(tally_dict_size(d), N);
    for (long i = 0; i < N; i += 3) {
        ukey *k = mkukey(rt, i, (uint64_t)(i % 5000) << 32 | 7);
        assert_int_equal(tally_dict_delete(d, k), 1);
        tally_decref(k);
    }
    for (long i = 0; i < N; i++) {
        ukey *k = mkukey(rt, i, (uint64_t)(i % 5000) << 32 | 7);
        if (i % 3 == 0)
            assert_null(tally_dict_get(d, k));
        else
            assert_ptr_equal(tally_dict_get(d, k), x);
        tally_decref(k);
    }
    ukey *absent = mkukey(rt, N, 7); /* the same low bits, hash of no key */
    absent->hash = (uint64_t)6000 << 32 | 7;
    assert_null(tally_dict_get(d, absent));
    tally_decref(absent);
    tally_decref(d);
    tally_decref(x);
    assert_settled(rt, base);
}

static void test_dict_equal_keys(void **state)
{
    tally_rt *rt = *state;
    size_t base = dict_baseline(rt);
    void *d = tally_dict(rt);
    void *a1 = mkstr(rt, "spam"), *a2 = mkstr(rt, "spam");
    void *i1 = mkint(rt, 123456), *i2 = mkint(rt, 123456);
    void *x = mkint(rt, 9001), *y = mkint(rt, 9002);
    assert_ptr_not_equal(a1, a2);
    assert_int_equal(tally_dict_set(d, a1, x), 0);
    assert_int_equal(tally_dict_set(d, a2, y), 0); /* the same key */
    assert_int_equal(tally_dict_size(d), 1);
    assert_ptr_equal(tally_dict_get(d, a1), y);
    void *k, *v;
    assert_int_equal(tally_dict_item(d, 0, &k, &v), 0);
    assert_ptr_equal(k, a1); /* the first key object stays, as in Python */
    assert_int_equal(tally_refcount(a2), 1);
    assert_int_equal(tally_refcount(x), 1);
    assert_int_equal(tally_dict_set(d, i1, x), 0);
    assert_ptr_equal(tally_dict_get(d, i2), x);
    assert_int_equal(tally_dict_delete(d, i2), 1);
    assert_int_equal(tally_dict_size(d), 1);
    assert_ptr_equal(tally_dict_get_c(d, "spam"), y);
    /* a str and an int never collide into one entry */
    void *one_s = mkstr(rt, "1"), *one_i = mkint(rt, 1);
    assert_int_equal(tally_dict_set(d, one_s, x), 0);
    assert_int_equal(tally_dict_set(d, one_i, y), 0);
    assert_int_equal(tally_dict_size(d), 3);
    /* user keys that all collide: found by eq */
    ukey *u[50];
    for (int i = 0; i < 50; i++) {
        u[i] = mkukey(rt, i, 42);
        assert_int_equal(tally_dict_set(d, u[i], x), 0);
    }
    assert_int_equal(tally_dict_size(d), 53);
    ukey *probe = mkukey(rt, 31, 42);
    assert_ptr_equal(tally_dict_get(d, probe), x);
    assert_int_equal(tally_dict_delete(d, probe), 1);
    assert_null(tally_dict_get(d, probe));
    probe->id = 49;
    assert_ptr_equal(tally_dict_get(d, probe), x);
    tally_decref(probe);
    for (int i = 0; i < 50; i++)
        tally_decref(u[i]);
    const void *objs[] = {d, a1, a2, i1, i2, x, y, one_s, one_i};
    for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++)
        tally_decref((void *)objs[i]);
    assert_settled(rt, base);
}

static void test_dict_unhashable(void **state)
{
    tally_rt *rt = *state;
    size_t base = dict_baseline(rt);
    void *d = tally_dict(rt);
    put_ints(d, 1000, 1);
    void *l = tally_list(rt, 0), *other = tally_dict(rt), *x = mkint(rt, 9001);
    void *s = tally_set(rt);
    const void *bad[] = {l, other, s};
    for (size_t i = 0; i < 3; i++) {
        tally_clear_error(rt);
        assert_int_equal(tally_dict_set(d, (void *)bad[i], x), -1);
        check_error(rt, TALLY_EINVAL);
        assert_null(tally_dict_get(d, (void *)bad[i]));
        check_error(rt, TALLY_EINVAL);
        void *v;
        assert_int_equal(tally_dict_lookup(d, (void *)bad[i], &v), -1);
        check_error(rt, TALLY_EINVAL);
        assert_int_equal(tally_dict_delete(d, (void *)bad[i]), -1);
        check_error(rt, TALLY_EINVAL);
        assert_int_equal(tally_set_add(s, (void *)bad[i]), -1);
        check_error(rt, TALLY_EINVAL);
        assert_int_equal(tally_refcount(bad[i]), 1);
    }
    assert_int_equal(tally_refcount(x), 1);
    assert_int_equal(tally_dict_size(d), 1);
    assert_int_equal(tally_set_size(s), 0);
    uint64_t h;
    assert_int_equal(tally_hash(d, &h), -1);
    check_error(rt, TALLY_EINVAL);
    const void *objs[] = {d, l, other, x, s};
    for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++)
        tally_decref((void *)objs[i]);
    assert_settled(rt, base);
}

static void test_dict_c_strings(void **state)
{
    tally_rt *rt = *state;
    tally_str_intern_c(rt, "interned"); /* the intern table is kept: before the baseline */
    size_t base = dict_baseline(rt);
    void *d = tally_dict(rt);
    void *v1 = mkint(rt, 9001), *v2 = mkint(rt, 9002);
    assert_int_equal(tally_dict_set_c(d, "alpha", v1), 0);
    assert_int_equal(tally_dict_set_c(d, "", v2), 0);
    assert_int_equal(tally_dict_set_c(d, "h\xc3\xa9llo w\xc3\xb6rld, a longer key", v2), 0);
    assert_ptr_equal(tally_dict_get_c(d, "alpha"), v1);
    assert_ptr_equal(tally_dict_get_c(d, ""), v2);
    assert_ptr_equal(tally_dict_get_c(d, "h\xc3\xa9llo w\xc3\xb6rld, a longer key"), v2);
    assert_null(tally_dict_get_c(d, "alph"));
    assert_int_equal(tally_last_error(rt), TALLY_OK);
    /* the key set by C string is a str equal to a str made elsewhere */
    void *s = mkstr(rt, "alpha");
    assert_ptr_equal(tally_dict_get(d, s), v1);
    assert_int_equal(tally_dict_set(d, s, v2), 0);
    assert_int_equal(tally_dict_size(d), 3);
    assert_ptr_equal(tally_dict_get_c(d, "alpha"), v2);
    /* an interned str key is found by the pointer */
    void *in = tally_str_intern_c(rt, "interned");
    assert_int_equal(tally_dict_set(d, in, v1), 0);
    assert_ptr_equal(tally_dict_get_c(d, "interned"), v1);
    void *k, *v;
    assert_int_equal(tally_dict_item(d, 0, &k, &v), 0);
    assert_string_equal(tally_str_data(k), "alpha");
    assert_int_equal(tally_refcount(v1), 2);
    check_repr(d, "{'alpha': 9002, '': 9002, 'h\xc3\xa9llo w\xc3\xb6rld, a longer key': 9002, "
                  "'interned': 9001}");
    tally_clear_error(rt);
    assert_int_equal(tally_dict_set_c(d, "\xff", v1), -1); /* not UTF-8 */
    check_error(rt, TALLY_EINVAL);
    assert_int_equal(tally_dict_set_c(d, NULL, v1), -1);
    check_error(rt, TALLY_EINVAL);
    assert_int_equal(tally_dict_size(d), 4);
    tally_decref(s);
    tally_decref(in);
    tally_decref(d);
    tally_decref(v1);
    tally_decref(v2);
    assert_settled(rt, base);
}

/* ---- iteration ---------------------------------------------------------------------- */

static void test_dict_iterators(void **state)
{
    tally_rt *rt = *state;
    size_t base = dict_baseline(rt);
    void *d = tally_dict(rt);
    for (int i = 0; i < 20; i++)
        put_ints(d, 1000 + i, 2000 + i);
    for (int i = 0; i < 20; i += 4)
        assert_int_equal(del_int(d, 1000 + i), 1);
    /* keys, values, items, and tally_iter (keys), in insertion order */
    void *ik = tally_dict_keys(d), *iv = tally_dict_values(d), *ii = tally_dict_items(d);
    void *it = tally_iter(d);
    assert_int_equal(tally_refcount(d), 5);
    int n = 0;
    for (int i = 0; i < 20; i++) {
        if (i % 4 == 0)
            continue;
        void *k = tally_next(ik), *v = tally_next(iv), *p = tally_next(ii), *k2 = tally_next(it);
        assert_int_equal(tally_int_value(k), 1000 + i);
        assert_int_equal(tally_int_value(v), 2000 + i);
        assert_ptr_equal(k2, k);
        assert_true(tally_is_tuple(p));
        assert_ptr_equal(tally_tuple_get(p, 0), k);
        assert_ptr_equal(tally_tuple_get(p, 1), v);
        const void *objs[] = {k, v, p, k2};
        for (size_t j = 0; j < 4; j++)
            tally_decref((void *)objs[j]);
        n++;
    }
    assert_int_equal(n, 15);
    void *const its[] = {ik, iv, ii, it};
    for (int j = 0; j < 4; j++) {
        assert_null(tally_next(its[j]));
        assert_int_equal(tally_last_error(rt), TALLY_OK);
    }
    assert_int_equal(tally_refcount(d), 1); /* exhausted iterators let go */
    for (int j = 0; j < 4; j++)
        tally_decref(its[j]);
    /* a change of size during the iteration is an error, and stays one */
    it = tally_dict_items(d);
    void *p = tally_next(it);
    assert_non_null(p);
    tally_decref(p);
    put_ints(d, 5000, 1);
    assert_null(tally_next(it));
    check_error(rt, TALLY_EINVAL);
    assert_null(tally_next(it));
    check_error(rt, TALLY_EINVAL);
    assert_int_equal(tally_refcount(d), 1);
    tally_decref(it);
    it = tally_dict_keys(d);
    assert_int_equal(del_int(d, 5000), 1);
    void *out;
    assert_int_equal(tally_iter_next(it, &out), -1);
    check_error(rt, TALLY_EINVAL);
    tally_decref(it);
    /* replacing values does not change the size: allowed */
    it = tally_dict_values(d);
    p = tally_next(it);
    tally_decref(p);
    put_ints(d, 1001, 77);
    p = tally_next(it);
    assert_non_null(p);
    tally_decref(p);
    tally_decref(it);
    /* an empty dict */
    void *e = tally_dict(rt);
    it = tally_iter(e);
    assert_null(tally_next(it));
    assert_int_equal(tally_last_error(rt), TALLY_OK);
    tally_decref(it);
    tally_decref(e);
    tally_decref(d);
    assert_settled(rt, base);
}

/* ---- equality, repr, sizes ------------------------------------------------------------ */

static void test_dict_eq_repr(void **state)
{
    tally_rt *rt = *state;
    size_t base = dict_baseline(rt);
    void *a = tally_dict(rt), *b = tally_dict(rt);
    check_repr(a, "{}");
    assert_int_equal(tally_eq(a, b), 1);
    assert_int_equal(tally_dict_set_c(a, "a", mkint(rt, 1)), 0);
    put_ints(a, 2000, 3000);
    check_repr(a, "{'a': 1, 2000: 3000}");
    put_ints(b, 2000, 3000);
    assert_int_equal(tally_eq(a, b), 0);
    assert_int_equal(tally_dict_set_c(b, "a", mkint(rt, 1)), 0);
    assert_int_equal(tally_eq(a, b), 1); /* order does not matter */
    assert_int_equal(tally_eq(b, a), 1);
    put_ints(b, 2000, 3001);
    assert_int_equal(tally_eq(a, b), 0); /* a different value */
    put_ints(b, 2000, 3000);
    put_ints(b, 2001, 3000);
    assert_int_equal(tally_eq(a, b), 0); /* a different size */
    void *l = tally_list(rt, 0);
    assert_int_equal(tally_eq(a, l), 0);
    /* nested and self-containing */
    void *c = tally_dict(rt);
    assert_int_equal(tally_dict_set_c(c, "inner", a), 0);
    assert_int_equal(tally_dict_set_c(c, "list", l), 0);
    assert_int_equal(tally_dict_set_c(c, "self", c), 0);
    check_repr(c, "{'inner': {'a': 1, 2000: 3000}, 'list': [], 'self': {...}}");
    assert_int_equal(tally_list_append(l, c), 0);
    check_repr(l, "[{'inner': {'a': 1, 2000: 3000}, 'list': [...], 'self': {...}}]");
    /* sizes: owned bytes grow with the arrays */
    size_t s0 = tally_sizeof(b);
    for (int i = 0; i < 100; i++)
        put_ints(b, 10000 + i, i);
    assert_true(tally_sizeof(b) > s0 + 100 * 24);
    tally_dict_clear(c); /* breaks the cycles */
    tally_list_clear(l);
    const void *objs[] = {a, b, c, l};
    for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++)
        tally_decref((void *)objs[i]);
    assert_settled(rt, base);
}

/* ---- re-entrancy ------------------------------------------------------------------------ */

static void hook_delete_self(ukey *k)
{
    void *key = mkukey(tally_runtime_of(k), 0, 42); /* equal to the stored key 0 */
    tally_dict_delete(k->target, key);
    tally_decref(key);
}

static void hook_insert_many(ukey *k)
{
    for (int i = 0; i < 40; i++)
        put_ints(k->target, 50000 + i, i); /* forces rebuilds */
}

static void hook_clear(ukey *k)
{
    tally_dict_clear(k->target);
}

static void test_dict_reentrant_eq(void **state)
{
    tally_rt *rt = *state;
    size_t base = dict_baseline(rt);
    void (*hooks[])(ukey *) = {hook_delete_self, hook_insert_many, hook_clear};
    for (int h = 0; h < 3; h++) {
        void *d = tally_dict(rt);
        void *x = mkint(rt, 9001), *y = mkint(rt, 9002);
        ukey *stored = mkukey(rt, 0, 42);
        stored->target = d;
        assert_int_equal(tally_dict_set(d, stored, x), 0);
        put_ints(d, 1000, 1);
        /* a lookup by an equal key calls stored's eq, which changes the dict */
        stored->hook = hooks[h];
        ukey *probe = mkukey(rt, 0, 42);
        int r = tally_dict_set(d, probe, y);
        assert_int_equal(r, 0);
        assert_true(stored->calls >= 1);
        void *found = tally_dict_get(d, probe);
        assert_ptr_equal(found, y); /* whatever happened, probe's key now maps to y */
        if (h == 1)
            assert_int_equal(tally_dict_size(d), 42);
        else if (h == 2)
            assert_int_equal(tally_dict_size(d), 1);
        /* every entry is still reachable */
        for (size_t i = 0; i < tally_dict_size(d); i++) {
            void *k, *v, *w;
            assert_int_equal(tally_dict_item(d, i, &k, &v), 0);
            assert_int_equal(tally_dict_lookup(d, k, &w), 1);
            assert_ptr_equal(w, v);
        }
        tally_decref(probe);
        tally_decref(stored);
        tally_decref(d);
        tally_decref(x);
        tally_decref(y);
    }
    assert_settled(rt, base);
}

static void test_dict_reentrant_release(void **state)
{
    tally_rt *rt = *state;
    size_t base = dict_baseline(rt);
    for (int kind = 0; kind < 3; kind++) {
        void *d = tally_dict(rt);
        put_ints(d, 1000, 1);
        put_ints(d, 1001, 2);
        void *key = mkint(rt, 1002);
        /* replaced: the finalizer runs once the new value is in place */
        void *m = mkmeddler(rt, d, kind);
        assert_int_equal(tally_dict_set(d, key, m), 0);
        tally_decref(m);
        void *y = mkint(rt, 9002);
        assert_int_equal(tally_dict_set(d, key, y), 0);
        if (kind == 2) {
            assert_int_equal(tally_dict_size(d), 0);
        } else {
            assert_ptr_equal(tally_dict_get(d, key), y);
            assert_int_equal(tally_dict_size(d), kind == 0 ? 4 : 2);
        }
        /* deleted and popped */
        m = mkmeddler(rt, d, kind);
        assert_int_equal(tally_dict_set(d, key, m), 0);
        tally_decref(m);
        assert_int_equal(tally_dict_delete(d, key), 1);
        assert_null(tally_dict_get(d, key));
        /* cleared: the finalizer finds an empty dict */
        m = mkmeddler(rt, d, kind);
        assert_int_equal(tally_dict_set(d, key, m), 0);
        tally_decref(m);
        tally_dict_clear(d);
        assert_int_equal(tally_dict_size(d), kind == 0 ? 1 : 0);
        /* the dict's own death, and the table rebuilt under iteration of items */
        m = mkmeddler(rt, d, kind);
        assert_int_equal(tally_dict_set(d, key, m), 0);
        tally_decref(m);
        tally_decref(key);
        tally_decref(y);
        tally_decref(d);
        assert_settled(rt, base);
    }
}

/* ---- sets --------------------------------------------------------------------------------- */

static void test_set_ops(void **state)
{
    tally_rt *rt = *state;
    size_t base = dict_baseline(rt);
    void *s = tally_set(rt);
    assert_true(tally_is_set(s));
    assert_false(tally_is_dict(s));
    check_repr(s, "set()");
    void *one = mkint(rt, 1), *two = mkint(rt, 2), *big = mkint(rt, 70000);
    void *big2 = mkint(rt, 70000), *str = mkstr(rt, "x");
    assert_int_equal(tally_set_add(s, one), 1);
    assert_int_equal(tally_set_add(s, two), 1);
    assert_int_equal(tally_set_add(s, one), 0);
    check_repr(s, "{1, 2}");
    assert_int_equal(tally_set_add(s, big), 1);
    assert_int_equal(tally_set_add(s, big2), 0);
    assert_int_equal(tally_refcount(big), 2);
    assert_int_equal(tally_refcount(big2), 1);
    assert_int_equal(tally_set_contains(s, big2), 1);
    assert_int_equal(tally_set_contains(s, str), 0);
    assert_int_equal(tally_set_add(s, str), 1);
    assert_int_equal(tally_set_size(s), 4);
    check_repr(s, "{1, 2, 70000, 'x'}");
    assert_int_equal(tally_set_discard(s, two), 1);
    assert_int_equal(tally_set_discard(s, two), 0);
    assert_int_equal(tally_set_discard(s, big2), 1);
    assert_int_equal(tally_refcount(big), 1);
    check_repr(s, "{1, 'x'}");
    /* iteration in order */
    void *it = tally_iter(s);
    void *a = tally_next(it), *b = tally_next(it);
    assert_ptr_equal(a, one);
    assert_ptr_equal(b, str);
    assert_null(tally_next(it));
    assert_int_equal(tally_last_error(rt), TALLY_OK);
    tally_decref(a);
    tally_decref(b);
    tally_decref(it);
    it = tally_iter(s);
    assert_int_equal(tally_set_add(s, two), 1);
    void *out;
    assert_int_equal(tally_iter_next(it, &out), -1);
    check_error(rt, TALLY_EINVAL);
    tally_decref(it);
    /* from an iterable, with duplicates; equality ignores order */
    void *l = tally_list(rt, 0);
    const void *items[] = {str, two, one, two, str, one};
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(tally_list_append(l, (void *)items[i]), 0);
    void *s2 = tally_set_from(rt, l);
    assert_non_null(s2);
    assert_int_equal(tally_set_size(s2), 3);
    check_repr(s2, "{'x', 2, 1}");
    assert_int_equal(tally_eq(s, s2), 1);
    assert_int_equal(tally_set_discard(s2, one), 1);
    assert_int_equal(tally_eq(s, s2), 0);
    assert_int_equal(tally_eq(s, l), 0);
    void *r = tally_range(rt, 0, 1000, 1);
    void *s3 = tally_set_from(rt, r);
    assert_int_equal(tally_set_size(s3), 1000);
    for (int i = 0; i < 1000; i += 37) {
        void *k = mkint(rt, i);
        assert_int_equal(tally_set_contains(s3, k), 1);
        tally_decref(k);
    }
    assert_true(tally_sizeof(s3) > tally_sizeof(s2));
    /* failures: an unhashable member, not iterable, not a set */
    assert_int_equal(tally_list_append(l, l), 0);
    tally_clear_error(rt);
    assert_null(tally_set_from(rt, l));
    check_error(rt, TALLY_EINVAL);
    assert_null(tally_set_from(rt, one));
    check_error(rt, TALLY_EINVAL);
    assert_int_equal(tally_set_add(l, one), -1);
    check_error(rt, TALLY_EINVAL);
    assert_int_equal(tally_set_contains(s, NULL), -1);
    check_error(rt, TALLY_EINVAL);
    uint64_t h;
    assert_int_equal(tally_hash(s, &h), -1);
    check_error(rt, TALLY_EINVAL);
    tally_set_clear(s);
    assert_int_equal(tally_set_size(s), 0);
    check_repr(s, "set()");
    assert_int_equal(tally_refcount(str), 4); /* ours, l's two and s2's */
    tally_list_clear(l);
    const void *objs[] = {s, s2, s3, r, l, one, two, big, big2, str};
    for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++)
        tally_decref((void *)objs[i]);
    assert_settled(rt, base);
}

/* ---- weak-value map ------------------------------------------------------------------------ */

static void test_weakvaluemap(void **state)
{
    tally_rt *rt = *state;
    size_t base = dict_baseline(rt);
    void *m = tally_weakvaluemap(rt);
    assert_non_null(m);
    void *ka = mkstr(rt, "a"), *kb = mkstr(rt, "b"), *kc = mkstr(rt, "c");
    node *va = mk(rt, &LEAF_NOFIN, -1), *vb = mk(rt, &LEAF_NOFIN, -1);
    assert_int_equal(tally_weakvaluemap_set(m, ka, va), 0);
    assert_int_equal(tally_weakvaluemap_set(m, kb, vb), 0);
    assert_int_equal(tally_weakvaluemap_size(m), 2);
    assert_int_equal(tally_refcount(va), 1); /* held weakly */
    assert_int_equal(tally_refcount(ka), 3); /* ours, the dict's and the cell's */
    void *g = tally_weakvaluemap_get(m, ka);
    assert_ptr_equal(g, va);
    assert_int_equal(tally_refcount(va), 2);
    tally_decref(g);
    assert_null(tally_weakvaluemap_get(m, kc));
    assert_int_equal(tally_last_error(rt), TALLY_OK);
    /* death by count removes the entry */
    tally_decref(va);
    assert_int_equal(tally_weakvaluemap_size(m), 1);
    assert_null(tally_weakvaluemap_get(m, ka));
    assert_int_equal(tally_refcount(ka), 1);
    /* death in a collection: a value in a cycle */
    node *c1 = mk(rt, &NODE_NOFIN, -1), *c2 = mk(rt, &NODE_NOFIN, -1);
    link_to(&c1->next, c2);
    link_to(&c2->next, c1);
    assert_int_equal(tally_weakvaluemap_set(m, kc, c1), 0);
    tally_decref(c1);
    tally_decref(c2);
    assert_int_equal(tally_weakvaluemap_size(m), 2);
    /* c1 and c2, and (as CPython counts) the weak reference its callback freed */
    assert_int_equal(tally_gc_collect(rt, 2), 3);
    assert_int_equal(tally_weakvaluemap_size(m), 1);
    assert_null(tally_weakvaluemap_get(m, kc));
    /* stored again under the same key: the older value's death keeps the newer */
    node *old = mk(rt, &LEAF_NOFIN, -1), *newer = mk(rt, &LEAF_NOFIN, -1);
    assert_int_equal(tally_weakvaluemap_set(m, ka, old), 0);
    assert_int_equal(tally_weakvaluemap_set(m, ka, newer), 0);
    tally_decref(old);
    g = tally_weakvaluemap_get(m, ka);
    assert_ptr_equal(g, newer);
    tally_decref(g);
    assert_int_equal(tally_weakvaluemap_size(m), 2);
    /* the same value under two keys; delete */
    assert_int_equal(tally_weakvaluemap_set(m, kc, newer), 0);
    assert_int_equal(tally_weakvaluemap_delete(m, kb), 1);
    assert_int_equal(tally_weakvaluemap_delete(m, kb), 0);
    tally_decref(vb); /* no entry left for it: nothing happens */
    assert_int_equal(tally_weakvaluemap_size(m), 2);
    tally_decref(newer);
    assert_int_equal(tally_weakvaluemap_size(m), 0);
    /* failures */
    tally_clear_error(rt);
    void *l = tally_list(rt, 0);
    node *v = mk(rt, &LEAF_NOFIN, -1);
    assert_int_equal(tally_weakvaluemap_set(m, l, v), -1);
    check_error(rt, TALLY_EINVAL);
    assert_int_equal(tally_weakvaluemap_set(m, ka, NULL), -1);
    check_error(rt, TALLY_EINVAL);
    assert_int_equal(tally_weakvaluemap_set(l, ka, v), -1);
    check_error(rt, TALLY_EINVAL);
    assert_int_equal(tally_weakref_count(v), 0);
    /* the map dies while its values live, then they die */
    assert_int_equal(tally_weakvaluemap_set(m, ka, v), 0);
    assert_int_equal(tally_weakref_count(v), 1);
    tally_decref(m);
    assert_int_equal(tally_weakref_count(v), 0);
    tally_decref(v);
    /* values dying while the map dies: a key whose death releases another
     * entry's value */
    m = tally_weakvaluemap(rt);
    node *holder = mk(rt, &NODE_NOFIN, -1); /* a key holding the value of entry 2 */
    node *victim = mk(rt, &LEAF_NOFIN, -1);
    link_to(&holder->extra, victim);
    assert_int_equal(tally_weakvaluemap_set(m, holder, kb), 0);
    assert_int_equal(tally_weakvaluemap_set(m, kc, victim), 0);
    tally_decref(victim);
    tally_decref(holder);
    assert_int_equal(tally_weakvaluemap_size(m), 2);
    tally_decref(m);
    /* a map in a cycle with a key */
    m = tally_weakvaluemap(rt);
    node *kn = mk(rt, &NODE_NOFIN, -1);
    link_to(&kn->next, m);
    assert_int_equal(tally_weakvaluemap_set(m, kn, kb), 0);
    tally_decref(kn);
    tally_decref(m);
    assert_true(tally_gc_collect(rt, 2) >= 4); /* map, dict, cell, key (+ weakref) */
    const void *objs[] = {l, ka, kb, kc};
    for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++)
        tally_decref((void *)objs[i]);
    assert_settled(rt, base);
}

/* ---- cycles ------------------------------------------------------------------------------ */

static void test_cycles_collected(void **state)
{
    tally_rt *rt = *state;
    size_t base = dict_baseline(rt);
    /* a dict holding itself as a value */
    void *d = tally_dict(rt);
    assert_int_equal(tally_dict_set_c(d, "me", d), 0);
    tally_decref(d);
    assert_int_equal(tally_gc_collect(rt, 2), 1);
    assert_settled(rt, base);
    /* dict -> list -> dict, with a str and big int inside */
    d = tally_dict(rt);
    void *l = tally_list(rt, 0);
    assert_int_equal(tally_list_append(l, d), 0);
    assert_int_equal(tally_dict_set_c(d, "list", l), 0);
    put_ints(d, 100000, 200000);
    tally_decref(l);
    tally_decref(d);
    assert_int_equal(tally_gc_collect(rt, 2), 2);
    assert_settled(rt, base);
    /* a key that refers to the dict; a set holding a node that holds the set;
     * a dict holding its own iterator; a finalizer in the cycle */
    d = tally_dict(rt);
    to_reset();
    node *k = mk(rt, &NODE, 1);
    link_to(&k->next, d);
    assert_int_equal(tally_dict_set(d, k, k), 0);
    tally_decref(k);
    void *s = tally_set(rt);
    node *n = mk(rt, &NODE_NOFIN, -1);
    link_to(&n->next, s);
    assert_int_equal(tally_set_add(s, n), 1);
    tally_decref(n);
    assert_int_equal(tally_dict_set_c(d, "set", s), 0);
    tally_decref(s);
    void *it = tally_dict_items(d);
    assert_int_equal(tally_dict_set_c(d, "it", it), 0);
    tally_decref(it);
    tally_decref(d);
    assert_int_equal(tally_gc_collect(rt, 2), 5);
    assert_int_equal(g_to.fin[1], 1);
    assert_int_equal(g_to.des[1], 1);
    assert_int_equal(g_to.anomalies, 0);
    /* reachable ones are kept */
    d = tally_dict(rt);
    assert_int_equal(tally_dict_set_c(d, "me", d), 0);
    assert_int_equal(tally_gc_collect(rt, 2), 0);
    assert_int_equal(tally_dict_size(d), 1);
    tally_dict_clear(d);
    tally_decref(d);
    assert_settled(rt, base);
}

/* ---- fault injection ---------------------------------------------------------------------- */

static void failed(tally_rt *rt, unsigned *fails)
{
    assert_int_not_equal(tally_last_error(rt), TALLY_OK);
    tally_clear_error(rt);
    ++*fails;
}

/* Runs call, which changes dict `of`: it must succeed, or fail with the error set
 * and `of` as it was. */
#define STEP(of, call)                                                                     \
    do {                                                                                   \
        take_snap(&sn, (of));                                                              \
        if ((call) < 0) {                                                                  \
            failed(rt, fails);                                                             \
            check_snap(&sn, (of));                                                         \
        }                                                                                  \
    } while (0)

/* A new-object call: NULL must leave dict `of` as it was. */
static void *made(tally_rt *rt, unsigned *fails, void *o, const snap *sn, void *of)
{
    if (o == NULL) {
        failed(rt, fails);
        check_snap(sn, of);
    }
    return o;
}
#define MADE(call, of) (take_snap(&sn, (of)), made(rt, fails, (call), &sn, (of)))

/* A set call: on failure the size is unchanged. */
#define SSTEP(s, call)                                                                     \
    do {                                                                                   \
        size_t n_ = tally_set_size(s);                                                     \
        if ((call) < 0) {                                                                  \
            failed(rt, fails);                                                             \
            assert_int_equal(tally_set_size(s), n_);                                       \
        }                                                                                  \
    } while (0)

static void fault_dict_part(tally_rt *rt, unsigned *fails, void *d)
{
    static snap sn;
    for (int i = 0; i < 60; i++) {
        void *k = tally_int(rt, 1000 + (i * 7) % 23), *v = tally_int(rt, 5000 + i);
        if (k == NULL || v == NULL) {
            failed(rt, fails);
        } else {
            STEP(d, tally_dict_set(d, k, v));
            if (i % 5 == 4)
                STEP(d, tally_dict_delete(d, k));
        }
        tally_xdecref(k);
        tally_xdecref(v);
    }
    for (int i = 0; i < 12; i++) {
        char buf[16];
        snprintf(buf, sizeof buf, "s%d", i);
        void *v = tally_dict_get_c(d, "s1");
        if (v == NULL && tally_last_error(rt) != TALLY_OK)
            failed(rt, fails);
        STEP(d, tally_dict_set_c(d, buf, d));
    }
    void *k = tally_int(rt, 1003);
    if (k == NULL) {
        failed(rt, fails);
    } else {
        void *p = tally_dict_pop(d, k);
        tally_xdecref(p);
        tally_decref(k);
    }
    void *it = MADE(tally_dict_items(d), d);
    if (it != NULL) {
        void *item;
        int r;
        while ((r = tally_iter_next(it, &item)) != 0) {
            if (r < 0) {
                failed(rt, fails);
                break;
            }
            tally_decref(item);
        }
        tally_decref(it);
    }
    void *r = MADE(tally_repr(d), d);
    tally_xdecref(r);
}

static void fault_other_part(tally_rt *rt, unsigned *fails, void *d)
{
    static snap sn;
    void *s = MADE(tally_set(rt), d);
    if (s != NULL) {
        for (int i = 0; i < 30; i++) {
            void *k = tally_int(rt, 3000 + i % 17);
            if (k == NULL) {
                failed(rt, fails);
                continue;
            }
            SSTEP(s, tally_set_add(s, k));
            tally_decref(k);
        }
        assert_int_equal(tally_set_add(s, d), -1); /* unhashable: always an error */
        check_error(rt, TALLY_EINVAL);
        void *s2 = MADE(tally_set_from(rt, s), d);
        tally_xdecref(s2);
        tally_decref(s);
    }
    void *m = MADE(tally_weakvaluemap(rt), d);
    if (m != NULL) {
        node *v[3];
        for (int i = 0; i < 3; i++) {
            v[i] = tally_new(rt, &LEAF_NOFIN);
            if (v[i] == NULL) {
                failed(rt, fails);
                continue;
            }
            v[i]->id = -1;
            v[i]->magic = TO_LIVE;
            void *key = tally_int(rt, 4000 + i % 2);
            if (key == NULL) {
                failed(rt, fails);
                continue;
            }
            size_t n = tally_weakvaluemap_size(m);
            if (tally_weakvaluemap_set(m, key, v[i]) != 0) {
                failed(rt, fails);
                assert_int_equal(tally_weakvaluemap_size(m), n);
                assert_int_equal(tally_weakref_count(v[i]), 0);
            }
            tally_decref(key);
        }
        for (int i = 0; i < 3; i++)
            tally_xdecref(v[i]);
        assert_int_equal(tally_weakvaluemap_size(m), 0);
        tally_decref(m);
    }
}

/* A str-keyed dict converted by an int key: the conversion allocates. */
static void fault_layout_part(tally_rt *rt, unsigned *fails, void *d)
{
    static snap sn;
    void *ds = MADE(tally_dict(rt), d);
    if (ds == NULL)
        return;
    for (int i = 0; i < 4; i++) {
        char buf[16];
        snprintf(buf, sizeof buf, "t%d", i);
        STEP(ds, tally_dict_set_c(ds, buf, d));
    }
    void *k = tally_int(rt, 1234);
    if (k == NULL)
        failed(rt, fails);
    else
        STEP(ds, tally_dict_set(ds, k, d));
    tally_xdecref(k);
    tally_decref(ds);
}

static void fault_scenario(tally_rt *rt, unsigned *fails)
{
    void *d = tally_dict(rt);
    if (d == NULL) {
        failed(rt, fails);
        return;
    }
    fault_dict_part(rt, fails, d);
    fault_other_part(rt, fails, d);
    fault_layout_part(rt, fails, d);
    tally_dict_clear(d); /* d holds itself */
    tally_decref(d);
}

static void test_fault_injection(void **state)
{
    tally_rt *rt = *state;
    dict_baseline(rt);
    unsigned fails = 0;
    fault_scenario(rt, &fails); /* warm-up: every type registered */
    assert_int_equal(fails, 0);
    size_t base = settled_blocks(rt);
    assert_true(fail_each_allocation(rt, fault_scenario, base) > 100);
    tally_clear_error(rt);
}

int main(void)
{
    unsetenv("TALLY_DEBUG");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dict_basic, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_dict_many_keys, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_dict_str_keys, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_dict_layouts, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_dict_get_str_keys, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_dict_hash_tags, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_dict_equal_keys, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_dict_unhashable, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_dict_c_strings, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_dict_iterators, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_dict_eq_repr, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_dict_reentrant_eq, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_dict_reentrant_release, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_set_ops, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_weakvaluemap, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_cycles_collected, setup_rt, teardown_rt),
        cmocka_unit_test_setup_teardown(test_fault_injection, setup_rt, teardown_rt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
