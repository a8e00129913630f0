/* gc_diff_driver.c - the Tally side of the collector's differential test.
 *
 * Reads op scripts written by gen.py (see there for the ops) from the file named on
 * the command line, or from stdin: programs of one op per line, each ended by a
 * line "===".  Every program runs in a fresh runtime with automatic collection
 * disabled, on K root slots that hold strong references to nodes (a container
 * type with three strong slots and a tag; N, F and Z variants differ only in their
 * finalizer), weak references and built-in lists, dicts, tuples and sets (see
 * gen.py for how the dicts and tuples are kept tracked exactly when CPython's
 * are).  Roots and node slots hold NULL for Python's None; inside a container,
 * None is one immortal object of the driver's own (none_obj).  After each op the
 * driver prints
 * "<op index> <events>", the op's events sorted as strings, exactly as the
 * generated CPython program does; after each program it releases what is left,
 * closes the runtime and prints "===".  run_diff.py compares the two outputs.
 *
 * Exit status: 0, or 2 with a message on stderr for a malformed script or a
 * failed allocation.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tally/gc.h>
#include <tally/tally.h>
#include <tally/types.h>

#define K 8      /* root slots, as gen.K */
#define NSLOTS 3 /* strong slots per node */
#define NKEYS 4  /* keys and indexes of the container ops: 0..NKEYS-1, as gen.NKEYS */

typedef struct node {
    void *s[NSLOTS];
    unsigned long tag;
} node;

/* One event of the current op, e.g. "fin:12:3:-:w7:dead". */
typedef struct event {
    char text[80];
} event;

/* A growable array of strong references. */
typedef struct reflist {
    void **items;
    size_t n, cap;
} reflist;

static void *roots[K];
static reflist zlist; /* objects Z finalizers resurrected (Python's Zlist) */
static event *events; /* the current op's events */
static size_t nevents, events_cap;
static void *none_obj; /* Python's None inside containers (immortal, per runtime) */

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("gc_diff_driver: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static void *xrealloc(void *p, size_t size)
{
    p = realloc(p, size);
    if (p == NULL)
        die("out of memory");
    return p;
}

static void log_event(const char *fmt, ...)
{
    if (nevents == events_cap) {
        events_cap = events_cap ? 2 * events_cap : 16;
        events = xrealloc(events, events_cap * sizeof *events);
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(events[nevents++].text, sizeof events[0].text, fmt, ap);
    va_end(ap);
}

static const tally_type node_types[3];

static int is_node(const void *o)
{
    const tally_type *t = o != NULL ? tally_type_of(o) : NULL;
    return t != NULL && t >= node_types && t < node_types + 3;
}

/* o as a container item: None is none_obj there. */
static void *to_item(void *o)
{
    return o != NULL ? o : none_obj;
}

/* A container item as a root or slot value: None is NULL there. */
static void *from_item(void *o)
{
    return o != none_obj ? o : NULL;
}

static unsigned long weakref_tag(const void *w)
{
    return (unsigned long)(uintptr_t)tally_weakref_arg(w);
}

/* ---- the node types ------------------------------------------------------------ */

static void node_traverse(void *self, tally_visit_fn visit, void *arg)
{
    node *n = self;
    for (int k = 0; k < NSLOTS; k++)
        if (n->s[k] != NULL)
            visit(n->s[k], arg);
}

/* Slots are released s0 first, as CPython's clear_slots does. */
static void node_clear(void *self)
{
    node *n = self;
    for (int k = 0; k < NSLOTS; k++)
        tally_setref(&n->s[k], NULL);
}

/* Writes what slot value o is into buf, as gen.py's d() does. */
static void describe(char *buf, size_t size, void *o)
{
    if (o == NULL) {
        snprintf(buf, size, "-");
    } else if (tally_is_weakref(o)) {
        void *target = tally_weakref_get(o);
        snprintf(buf, size, "w%lu:%s", weakref_tag(o), target != NULL ? "alive" : "dead");
        tally_xdecref(target);
    } else if (tally_is_list(o)) {
        snprintf(buf, size, "L%zu", tally_list_size(o));
    } else if (tally_is_dict(o)) {
        snprintf(buf, size, "D%zu", tally_dict_size(o));
    } else if (tally_is_tuple(o)) {
        snprintf(buf, size, "T%zu", tally_tuple_size(o));
    } else if (tally_is_set(o)) {
        snprintf(buf, size, "S%zu", tally_set_size(o));
    } else {
        snprintf(buf, size, "%lu", ((node *)o)->tag);
    }
}

static void log_finalizer(node *n)
{
    char d[NSLOTS][24];
    for (int k = 0; k < NSLOTS; k++)
        describe(d[k], sizeof d[k], n->s[k]);
    log_event("fin:%lu:%s:%s:%s", n->tag, d[0], d[1], d[2]);
}

static void reflist_append(reflist *l, void *o)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 8;
        l->items = xrealloc(l->items, l->cap * sizeof *l->items);
    }
    tally_incref(o);
    l->items[l->n++] = o;
}

/* Releases every item, last first, as list.clear() does; the list is emptied
 * before the first release, so objects resurrected meanwhile join a new list. */
static void reflist_clear(reflist *l)
{
    void **items = l->items;
    size_t n = l->n;
    *l = (reflist){0};
    while (n > 0)
        tally_decref(items[--n]);
    free(items);
}

static void finalize_f(void *self)
{
    log_finalizer(self);
}

static void finalize_z(void *self)
{
    log_finalizer(self);
    reflist_append(&zlist, self); /* resurrects self */
}

static const tally_type none_type = {.name = "NoneType", .size = sizeof(int)};

static const tally_type node_types[3] = {
    {.name = "N", .size = sizeof(node), .flags = TALLY_TYPE_CONTAINER,
     .traverse = node_traverse, .clear = node_clear},
    {.name = "F", .size = sizeof(node), .flags = TALLY_TYPE_CONTAINER,
     .traverse = node_traverse, .clear = node_clear, .finalize = finalize_f},
    {.name = "Z", .size = sizeof(node), .flags = TALLY_TYPE_CONTAINER,
     .traverse = node_traverse, .clear = node_clear, .finalize = finalize_z},
};

static void weakref_callback(void *weakref, void *arg)
{
    (void)weakref;
    log_event("cb:%lu", (unsigned long)(uintptr_t)arg);
}

/* ---- running a program --------------------------------------------------------- */

/* o, a new object; exits if creating it failed. */
static void *checked(tally_rt *rt, void *o)
{
    if (o == NULL)
        die("allocation failed: %s", tally_last_error_message(rt));
    return o;
}

/* Stores o, a reference the caller owns (or NULL), in root i and releases the old
 * value afterwards, as Python's R[i] = o does. */
static void set_root_owned(int i, void *o)
{
    void *old = roots[i];
    roots[i] = o;
    tally_xdecref(old);
}

static int root_index(long i)
{
    if (i < 0 || i >= K)
        die("root index %ld out of range", i);
    return (int)i;
}

static int slot_index(long k)
{
    if (k < 0 || k >= NSLOTS)
        die("slot index %ld out of range", k);
    return (int)k;
}

static int key_index(long k, long limit)
{
    if (k < 0 || k >= limit)
        die("key %ld out of range", k);
    return (int)k;
}

/* 0 or -1 from a built-in type's call: exits on -1. */
static void check(tally_rt *rt, int rc)
{
    if (rc < 0)
        die("call failed: %s", tally_last_error_message(rt));
}

/* gen.py's hashable(): None (NULL or none_obj), nodes, tuples of hashable things. */
static int hashable(void *o)
{
    if (o == NULL || o == none_obj || is_node(o))
        return 1;
    if (!tally_is_tuple(o))
        return 0;
    for (size_t i = 0; i < tally_tuple_size(o); i++)
        if (!hashable(tally_tuple_get(o, i)))
            return 0;
    return 1;
}

/* gen.py's isobj(): a node, or a tuple holding something other than None and ints. */
static int is_obj(void *o)
{
    if (is_node(o))
        return 1;
    if (!tally_is_tuple(o))
        return 0;
    for (size_t i = 0; i < tally_tuple_size(o); i++) {
        void *item = tally_tuple_get(o, i);
        if (item != none_obj && !tally_is_int(item))
            return 1;
    }
    return 0;
}

/* Whether set s holds an object (is_obj). */
static int set_has_obj(tally_rt *rt, void *s)
{
    void *it = checked(rt, tally_iter(s)), *item;
    int found = 0, rc;
    while (!found && (rc = tally_iter_next(it, &item)) == 1) {
        found = is_obj(item);
        tally_decref(item);
    }
    check(rt, rc);
    tally_decref(it);
    return found;
}

/* Runs one op line against rt. */
static void run_op(tally_rt *rt, const char *line)
{
    char name[16], kind;
    long a, b, c, d;
    if (sscanf(line, "%15s", name) != 1)
        die("empty op");
    if (strcmp(name, "new") == 0 && sscanf(line, "new %ld %c %ld", &a, &kind, &b) == 3) {
        const char *kinds = "NFZ", *p = kind != '\0' ? strchr(kinds, kind) : NULL;
        if (p == NULL)
            die("unknown node kind in: %s", line);
        node *n = checked(rt, tally_new(rt, &node_types[p - kinds]));
        n->tag = (unsigned long)b;
        set_root_owned(root_index(a), n);
    } else if (strcmp(name, "weak") == 0
               && sscanf(line, "weak %ld %ld %ld %ld", &a, &b, &c, &d) == 4) {
        void *target = roots[root_index(b)];
        if (is_node(target))
            set_root_owned(root_index(a),
                           checked(rt, tally_weakref_new(rt, target, d ? weakref_callback : NULL,
                                                         (void *)(uintptr_t)c)));
    } else if (strcmp(name, "link") == 0
               && sscanf(line, "link %ld %ld %ld", &a, &b, &c) == 3) {
        node *n = roots[root_index(a)];
        if (is_node(n))
            tally_setref(&n->s[slot_index(b)], roots[root_index(c)]);
    } else if (strcmp(name, "unlink") == 0 && sscanf(line, "unlink %ld %ld", &a, &b) == 2) {
        node *n = roots[root_index(a)];
        if (is_node(n))
            tally_setref(&n->s[slot_index(b)], NULL);
    } else if (strcmp(name, "load") == 0
               && sscanf(line, "load %ld %ld %ld", &a, &b, &c) == 3) {
        node *n = roots[root_index(b)];
        if (is_node(n))
            tally_setref(&roots[root_index(a)], n->s[slot_index(c)]);
    } else if (strcmp(name, "deref") == 0 && sscanf(line, "deref %ld %ld", &a, &b) == 2) {
        void *w = roots[root_index(b)];
        if (w != NULL && tally_is_weakref(w))
            set_root_owned(root_index(a), tally_weakref_get(w));
    } else if (strcmp(name, "list") == 0 && sscanf(line, "list %ld", &a) == 1) {
        set_root_owned(root_index(a), checked(rt, tally_list(rt, 0)));
    } else if (strcmp(name, "dict") == 0 && sscanf(line, "dict %ld", &a) == 1) {
        void *dict = checked(rt, tally_dict(rt));
        tally_gc_untrack(dict); /* CPython's empty dict is untracked */
        set_root_owned(root_index(a), dict);
    } else if (strcmp(name, "set") == 0 && sscanf(line, "set %ld", &a) == 1) {
        set_root_owned(root_index(a), checked(rt, tally_set(rt)));
    } else if (strcmp(name, "append") == 0 && sscanf(line, "append %ld %ld", &a, &b) == 2) {
        void *l = roots[root_index(a)];
        if (tally_is_list(l))
            check(rt, tally_list_append(l, to_item(roots[root_index(b)])));
    } else if (strcmp(name, "lpop") == 0 && sscanf(line, "lpop %ld", &a) == 1) {
        void *l = roots[root_index(a)];
        if (tally_is_list(l) && tally_list_size(l) > 0)
            tally_decref(checked(rt, tally_list_pop(l, -1)));
    } else if (strcmp(name, "dset") == 0
               && sscanf(line, "dset %ld %ld %ld", &a, &b, &c) == 3) {
        void *dict = roots[root_index(a)], *value = roots[root_index(c)];
        int k = key_index(b, NKEYS);
        if (tally_is_dict(dict) && value != NULL) {
            /* CPython's MAINTAIN_TRACKING: tracked (if it was not) before the store */
            check(rt, tally_gc_track(dict));
            check(rt, tally_dict_set(dict, tally_int(rt, k), value));
        }
    } else if (strcmp(name, "ddel") == 0 && sscanf(line, "ddel %ld %ld", &a, &b) == 2) {
        void *dict = roots[root_index(a)], *key;
        if (tally_is_dict(dict) && tally_dict_size(dict) > 1) {
            key = tally_int(rt, key_index(b, NKEYS));
            check(rt, tally_dict_delete(dict, key));
        }
    } else if (strcmp(name, "tuple") == 0
               && sscanf(line, "tuple %ld %ld %ld", &a, &b, &c) == 3) {
        void *x = roots[root_index(b)], *y = roots[root_index(c)];
        root_index(a);
        if (x != NULL || y != NULL)
            set_root_owned((int)a, checked(rt, tally_tuple_of(rt, 2, to_item(x), to_item(y))));
    } else if (strcmp(name, "sadd") == 0 && sscanf(line, "sadd %ld %ld", &a, &b) == 2) {
        void *s = roots[root_index(a)], *o = roots[root_index(b)];
        if (tally_is_set(s) && hashable(o) && (o == NULL || !set_has_obj(rt, s)))
            check(rt, tally_set_add(s, to_item(o)));
    } else if (strcmp(name, "sint") == 0 && sscanf(line, "sint %ld %ld", &a, &b) == 2) {
        void *s = roots[root_index(a)];
        int k = key_index(b, NKEYS + 1);
        if (tally_is_set(s)) {
            void *item;
            if (k < NKEYS) {
                item = checked(rt, tally_int(rt, k));
            } else { /* CPython's constant (1, 2), untracked by its first collection */
                item = checked(rt, tally_tuple_of(rt, 2, tally_int(rt, 1), tally_int(rt, 2)));
                tally_gc_untrack(item);
            }
            check(rt, tally_set_add(s, item));
            tally_decref(item);
        }
    } else if (strcmp(name, "litem") == 0
               && sscanf(line, "litem %ld %ld %ld", &a, &b, &c) == 3) {
        void *from = roots[root_index(b)], *item = NULL;
        int k = key_index(c, NKEYS), found = 1;
        root_index(a);
        if (tally_is_list(from) && (size_t)k < tally_list_size(from))
            item = tally_list_get(from, k);
        else if (tally_is_tuple(from) && (size_t)k < tally_tuple_size(from))
            item = tally_tuple_get(from, (size_t)k);
        else if (tally_is_dict(from))
            check(rt, found = tally_dict_lookup(from, tally_int(rt, k), &item));
        else
            found = 0;
        if (found)
            tally_setref(&roots[a], from_item(item));
    } else if (strcmp(name, "drop") == 0 && sscanf(line, "drop %ld", &a) == 1) {
        tally_setref(&roots[root_index(a)], NULL);
    } else if (strcmp(name, "zclear") == 0) {
        reflist_clear(&zlist);
    } else if (strcmp(name, "collect") == 0 && sscanf(line, "collect %ld", &a) == 1) {
        if (a < 0 || a > 2)
            die("generation %ld out of range", a);
        log_event("collect:%ld", tally_gc_collect(rt, (int)a));
    } else if (strcmp(name, "freeze") == 0) {
        tally_gc_freeze(rt);
    } else if (strcmp(name, "unfreeze") == 0) {
        tally_gc_unfreeze(rt);
    } else {
        die("malformed op: %s", line);
    }
}

static int compare_events(const void *x, const void *y)
{
    return strcmp(((const event *)x)->text, ((const event *)y)->text);
}

/* Prints "<index> <events>" for the op just run and forgets its events. */
static void print_events(long index)
{
    if (nevents > 1) /* (events is NULL before the first event) */
        qsort(events, nevents, sizeof *events, compare_events);
    printf("%ld", index);
    for (size_t i = 0; i < nevents; i++)
        printf(" %s", events[i].text);
    putchar('\n');
    nevents = 0;
}

static tally_rt *open_runtime(void)
{
    tally_rt *rt = tally_open(NULL);
    if (rt == NULL)
        die("tally_open failed");
    tally_gc_disable(rt);
    none_obj = checked(rt, tally_new(rt, &none_type));
    tally_immortalize(none_obj);
    return rt;
}

/* Releases, silently, what a program left (after the epilogue: only objects the
 * last collection resurrected, if any) and closes its runtime. */
static void close_runtime(tally_rt *rt)
{
    for (int i = 0; i < K; i++)
        tally_setref(&roots[i], NULL);
    tally_gc_unfreeze(rt);
    do {
        reflist_clear(&zlist);
        tally_gc_collect(rt, 2); /* may resurrect more, each object once */
    } while (zlist.n > 0);
    nevents = 0;
    tally_close(rt);
}

int main(int argc, char **argv)
{
    FILE *in = stdin;
    if (argc > 2)
        die("usage: gc_diff_driver [SCRIPT]");
    if (argc == 2 && (in = fopen(argv[1], "r")) == NULL)
        die("cannot open %s", argv[1]);

    /* Line by line, so that a crash loses nothing printed before it. */
    setvbuf(stdout, NULL, _IOLBF, 0);

    char line[256];
    tally_rt *rt = NULL;
    long index = 0;
    while (fgets(line, sizeof line, in) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        if (strcmp(line, "===") == 0) {
            if (rt != NULL)
                close_runtime(rt);
            rt = NULL;
            index = 0;
            puts("===");
            continue;
        }
        if (rt == NULL)
            rt = open_runtime();
        run_op(rt, line);
        print_events(index++);
    }
    if (rt != NULL)
        close_runtime(rt);
    free(events);
    return 0;
}
