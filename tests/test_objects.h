/* test_objects.h - object types and bookkeeping shared by the object, collector and
 * weak reference tests (header-only, all static).
 *
 * - `node`: one struct used by several types: a container with every callback
 *   (NODE), one without a finalizer (NODE_NOFIN), one without clear, whose
 *   references are released through traverse (NODE_NOCLEAR), and plain objects
 *   holding no references (LEAF, LEAF_NOFIN).  A node names up to three objects
 *   (next, other, extra), carries an id and a magic word that destroy overwrites.
 * - Per-id counters of finalize / clear / destroy calls (ids 0..TO_MAXID-1; id -1
 *   only counts in the totals), so that tests can say "finalized exactly once",
 *   "never destroyed twice"; an event log ("F3", "C3", "D3", "W7") for order.
 * - Hooks: a test may run code of its own in finalize, clear or destroy (resurrect,
 *   look at neighbours, misbehave on purpose).
 * - Helpers: new nodes, links, a ring, heap-block snapshots, running a function on a
 *   thread with a small stack, or in a child process (for checks that may crash or
 *   hang when they fail).
 *
 * Callbacks never call cmocka asserts (they run inside library code); they record
 * what they see and the test asserts afterwards.
 */
#ifndef TALLY_TEST_OBJECTS_H
#define TALLY_TEST_OBJECTS_H

#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test_util.h"
#include "tally/gc.h"
#include "tally/object.h"

#define TO_MAXID 1024
#define TO_LIVE 0x4c495645u
#define TO_DEAD 0xdeadbeefu
#define TO_MAXLOG 512

typedef struct node {
    struct node *next;
    struct node *other;
    void *extra; /* any object: a leaf, a weak reference, ... */
    int id;      /* index into the counters, or -1 */
    uint32_t magic;
    long payload;
} node;

typedef struct to_event {
    char kind; /* F finalize, C clear, D destroy, W weakref callback, X other */
    int id;
} to_event;

typedef struct to_state {
    unsigned fin[TO_MAXID], clr[TO_MAXID], des[TO_MAXID];
    unsigned long fin_total, clr_total, des_total;
    to_event log[TO_MAXLOG];
    int nlog;
    int log_overflow;
    void (*fin_hook)(node *self);
    void (*clr_hook)(node *self);
    void (*des_hook)(node *self);
    unsigned long anomalies; /* a callback saw something impossible */
} to_state;

static to_state g_to __attribute__((unused));

static inline void to_reset(void)
{
    memset(&g_to, 0, sizeof g_to);
}

static inline void to_log(char kind, int id)
{
    if (g_to.nlog < TO_MAXLOG) {
        g_to.log[g_to.nlog].kind = kind;
        g_to.log[g_to.nlog].id = id;
        g_to.nlog++;
    } else {
        g_to.log_overflow = 1;
    }
}

/* Index of the first event (kind, id) in the log, or -1. */
static inline int to_find(char kind, int id)
{
    for (int i = 0; i < g_to.nlog; i++)
        if (g_to.log[i].kind == kind && g_to.log[i].id == id)
            return i;
    return -1;
}

static inline int to_count_kind(char kind)
{
    int n = 0;
    for (int i = 0; i < g_to.nlog; i++)
        n += g_to.log[i].kind == kind;
    return n;
}

static inline int to_valid_id(int id)
{
    return id >= 0 && id < TO_MAXID;
}

static inline void node_traverse(void *self, tally_visit_fn visit, void *arg)
{
    node *n = self;
    if (n->next)
        visit(n->next, arg);
    if (n->other)
        visit(n->other, arg);
    if (n->extra)
        visit(n->extra, arg);
}

static inline void node_clear(void *self)
{
    node *n = self;
    if (n->magic != TO_LIVE)
        g_to.anomalies++;
    if (to_valid_id(n->id))
        g_to.clr[n->id]++;
    g_to.clr_total++;
    to_log('C', n->id);
    if (g_to.clr_hook)
        g_to.clr_hook(n);
    tally_setref(&n->next, NULL);
    tally_setref(&n->other, NULL);
    tally_setref(&n->extra, NULL);
}

static inline void node_finalize(void *self)
{
    node *n = self;
    if (n->magic != TO_LIVE)
        g_to.anomalies++;
    if (to_valid_id(n->id))
        g_to.fin[n->id]++;
    g_to.fin_total++;
    to_log('F', n->id);
    if (g_to.fin_hook)
        g_to.fin_hook(n);
}

static inline void node_destroy(void *self)
{
    node *n = self;
    if (n->magic != TO_LIVE)
        g_to.anomalies++; /* destroyed twice, or never initialised */
    if (to_valid_id(n->id))
        g_to.des[n->id]++;
    g_to.des_total++;
    to_log('D', n->id);
    if (g_to.des_hook)
        g_to.des_hook(n);
    n->magic = TO_DEAD;
}

static const tally_type NODE __attribute__((unused)) = {
    "node", sizeof(node), 0, TALLY_TYPE_CONTAINER, node_traverse, node_clear, node_finalize,
    node_destroy, NULL};
static const tally_type NODE_NOFIN __attribute__((unused)) = {
    "node_nofin", sizeof(node), 0, TALLY_TYPE_CONTAINER, node_traverse, node_clear, NULL,
    node_destroy, NULL};
static const tally_type NODE_NOCLEAR __attribute__((unused)) = {
    "node_noclear", sizeof(node), 0, TALLY_TYPE_CONTAINER, node_traverse, NULL, node_finalize,
    node_destroy, NULL};
static const tally_type LEAF __attribute__((unused)) = {
    "leaf", sizeof(node), 0, 0, NULL, NULL, node_finalize, node_destroy, NULL};
static const tally_type LEAF_NOFIN __attribute__((unused)) = {
    "leaf_nofin", sizeof(node), 0, 0, NULL, NULL, NULL, node_destroy, NULL};

/* A new object of type t (any of the above) with a count of 1. */
static inline node *mk(tally_rt *rt, const tally_type *t, int id)
{
    node *n = tally_new(rt, t);
    assert_non_null(n);
    n->id = id;
    n->magic = TO_LIVE;
    return n;
}

/* *slot = o, taking a new reference to o (releasing the old value). */
static inline void link_to(void *slot, void *o)
{
    tally_setref(slot, o);
}

/* A ring of n nodes of type t (ids first_id.. or -1 when beyond TO_MAXID); returns a
 * new reference to its first node. */
static inline node *mk_ring(tally_rt *rt, const tally_type *t, size_t n, int first_id)
{
    node *first = mk(rt, t, first_id);
    node *prev = first;
    for (size_t i = 1; i < n; i++) {
        long id = first_id < 0 ? -1 : first_id + (long)i;
        node *x = mk(rt, t, id < TO_MAXID ? (int)id : -1);
        prev->next = x; /* the reference from mk moves into prev */
        prev = x;
    }
    link_to(&prev->next, first);
    return first;
}

static inline size_t blocks_in_use(tally_rt *rt)
{
    return get_stats(rt).blocks_in_use;
}

static inline size_t bytes_in_use(tally_rt *rt)
{
    return get_stats(rt).bytes_in_use;
}

/* ---- heap-level leak checks ------------------------------------------------------------ */

/* Blocks in use after a full collection and a trim. */
static inline size_t settled_blocks(tally_rt *rt)
{
    assert_true(tally_gc_collect(rt, 2) >= 0);
    tally_heap_trim(rt);
    return blocks_in_use(rt);
}

/* Makes rt know type t (the runtime's table of types is a heap block of its own):
 * one object created and released, every counter and hook left as it was. */
static inline void to_register(tally_rt *rt, const tally_type *t)
{
    static to_state saved;
    saved = g_to;
    g_to.fin_hook = g_to.clr_hook = g_to.des_hook = NULL;
    node *o = tally_new(rt, t);
    assert_non_null(o);
    if (t->size >= sizeof(node)) { /* one of the node types above */
        o->id = -1;
        o->magic = TO_LIVE;
    }
    tally_decref(o);
    g_to = saved;
}

/* Registers the shared types (and creates the runtime's table of weak references)
 * and returns the settled block count: the baseline for assert_settled(). */
static inline size_t to_baseline(tally_rt *rt)
{
    const tally_type *const types[] = {&NODE, &NODE_NOFIN, &NODE_NOCLEAR, &LEAF, &LEAF_NOFIN};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        to_register(rt, types[i]);
    /* The table of weak references is created with the first one, and kept. */
    node *t = tally_new(rt, &LEAF_NOFIN);
    assert_non_null(t);
    t->id = -1;
    t->magic = TO_LIVE;
    void *wr = tally_weakref_new(rt, t, NULL, NULL);
    assert_non_null(wr);
    tally_decref(wr);
    static to_state saved;
    saved = g_to;
    tally_decref(t);
    g_to = saved;
    return settled_blocks(rt);
}

/* Heap-level leak check: the settled block count is back to base (a full
 * collection also hands back the object layer's free stacks, see tally/gc.h). */
static inline void assert_settled(tally_rt *rt, size_t base)
{
    assert_int_equal(settled_blocks(rt), base);
}

/* ---- running on a small stack ------------------------------------------------------- */

typedef struct small_stack_job {
    void (*fn)(void *arg);
    void *arg;
} small_stack_job;

static inline void *small_stack_trampoline(void *p)
{
    small_stack_job *j = p;
    j->fn(j->arg);
    return NULL;
}

/* Runs fn(arg) on a new thread whose stack is stack_bytes, and waits for it. */
static inline void run_on_small_stack(void (*fn)(void *), void *arg, size_t stack_bytes)
{
    pthread_attr_t attr;
    assert_int_equal(pthread_attr_init(&attr), 0);
    assert_int_equal(pthread_attr_setstacksize(&attr, stack_bytes), 0);
    small_stack_job job = {fn, arg};
    pthread_t th;
    assert_int_equal(pthread_create(&th, &attr, small_stack_trampoline, &job), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    pthread_attr_destroy(&attr);
}

/* ---- running in a child process ------------------------------------------------------ */

/* Runs fn(arg) in a child process (it may crash or hang) and returns its exit
 * status, 128 + the signal that ended it, or -1 if it was still running after
 * timeout_s seconds (then killed). */
static inline int run_isolated(int (*fn)(int), int arg, int timeout_s)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(fn(arg));
    struct timespec nap = {0, 10 * 1000 * 1000};
    for (int i = 0; i < timeout_s * 100; i++) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        assert_true(r >= 0);
        if (r == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        nanosleep(&nap, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

/* ---- visitors ------------------------------------------------------------------------ */

#define TO_MAXSEEN 4096

typedef struct seen_set {
    const void *p[TO_MAXSEEN];
    size_t n;
    size_t calls;
} seen_set;

static inline void seen_visit(void *o, void *arg)
{
    seen_set *s = arg;
    s->calls++;
    if (s->n < TO_MAXSEEN)
        s->p[s->n++] = o;
}

static inline size_t seen_count(const seen_set *s, const void *o)
{
    size_t c = 0;
    for (size_t i = 0; i < s->n; i++)
        c += s->p[i] == o;
    return c;
}

/* cmocka setup and teardown for tests that share one hosted runtime in *state,
 * with the per-object counters reset. */
static inline int setup_rt(void **state)
{
    to_reset();
    *state = open_hosted(NULL, 0);
    return *state != NULL ? 0 : -1;
}

static inline int teardown_rt(void **state)
{
    tally_close(*state);
    return 0;
}

/* A fault-injection scenario: runs a fixed sequence of calls, counting in *fails
 * the calls that failed (each checked by the scenario itself). */
typedef void (*fault_scenario_fn)(tally_rt *rt, unsigned *fails);

/* Fails each allocation of scenario in turn, until a run completes: every run
 * must fire exactly one injected failure that surfaces as a failed call, and leave
 * the heap settled at base (blocks in use after release and collection).  The
 * allocations are counted first with injection armed but out of reach: armed, the
 * object free stacks are bypassed, so every allocation reaches the heap as in the
 * faulty runs.  Returns the runs made, which equal that count. */
static inline unsigned long fail_each_allocation(tally_rt *rt, fault_scenario_fn scenario,
                                                 size_t base)
{
    unsigned fails = 0;
    unsigned long req0 = tally_fault_requests(rt, TALLY_FAULT_ALLOC);
    tally_fault_inject(rt, TALLY_FAULT_ALLOC, ULONG_MAX, 0);
    scenario(rt, &fails);
    tally_fault_inject(rt, TALLY_FAULT_ALLOC, 0, 0);
    unsigned long allocs = tally_fault_requests(rt, TALLY_FAULT_ALLOC) - req0;
    assert_int_equal(fails, 0);
    assert_settled(rt, base);
    unsigned long runs = 0;
    for (unsigned long n = 1;; n++) {
        unsigned long before = tally_fault_failures(rt, TALLY_FAULT_ALLOC);
        tally_fault_inject(rt, TALLY_FAULT_ALLOC, n, 0);
        fails = 0;
        scenario(rt, &fails);
        tally_fault_inject(rt, TALLY_FAULT_ALLOC, 0, 0);
        unsigned long fired = tally_fault_failures(rt, TALLY_FAULT_ALLOC) - before;
        assert_settled(rt, base);
        if (fired == 0)
            break; /* the run completed: no allocation left to fail */
        assert_int_equal(fired, 1);
        assert_true(fails >= 1); /* the failed allocation surfaced as a failed call */
        runs++;
    }
    assert_int_equal(runs, allocs); /* each allocation of the scenario failed once */
    return runs;
}

#endif /* TALLY_TEST_OBJECTS_H */
