/* preload.c - the allocation hooks of libtally-preload.so, loaded into an unmodified
 * program with LD_PRELOAD by `tally run`.
 *
 * Every allocation entry point of the C library (malloc, calloc, realloc, free,
 * posix_memalign, aligned_alloc, memalign, valloc, pvalloc, reallocarray,
 * malloc_usable_size) and of libstdc++ (operator new/new[]/delete/delete[], plain,
 * nothrow, sized and aligned) is defined here; each calls the next definition
 * (dlsym(RTLD_NEXT)) and records the event in the capture (writer.c).
 *
 * Invariants that make this safe anywhere in a process:
 *  - Re-entry: a hook sets tallyP_tls.busy while it records; any allocation made
 *    meanwhile (by libunwind, pthread, the loader) goes straight to the real
 *    function, unrecorded.  The recorder itself allocates only with mmap.
 *  - Early calls: the first call resolves the real functions.  dlsym may itself
 *    call malloc or calloc; those calls (tallyP_tls.in_init) are served from a
 *    static bootstrap arena.  Frees of bootstrap blocks are recognised by address
 *    and ignored; realloc moves them to the real heap.  Other threads wait for the
 *    initialisation to finish.
 *  - Order: a free is given its sequence number before the real free and an
 *    allocation after the real allocation, so a reused address is always freed
 *    before it is allocated again in the capture's order.
 *  - Exceptions: operator new may throw through our frame, so this file is built
 *    with -fexceptions and the busy flag is restored by a cleanup.
 *  - fork: the child stops recording (state OFF); it does not touch the parent's
 *    capture, which it shares through the mapping.  An exec'd program starts over
 *    with LD_PRELOAD inherited and writes its own capture, PATH.PID (writer.c).
 */
#define _GNU_SOURCE
#include "preload.h"

#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

__thread struct tallyP_tls tallyP_tls __attribute__((tls_model("initial-exec")));

struct tallyP_global tallyP_g = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .shared_lock = PTHREAD_MUTEX_INITIALIZER,
    .frames = 32,
    .next_stack = 1,
};

/* The next definitions of the hooked functions. */
static struct {
    void *(*malloc)(size_t);
    void *(*calloc)(size_t, size_t);
    void *(*realloc)(void *, size_t);
    void (*free)(void *);
    int (*posix_memalign)(void **, size_t, size_t);
    void *(*aligned_alloc)(size_t, size_t);
    void *(*memalign)(size_t, size_t);
    void *(*valloc)(size_t);
    void *(*pvalloc)(size_t);
    size_t (*usable)(void *);
} real;

/* ---- bootstrap arena ------------------------------------------------------------------- */

/* Blocks handed out while dlsym runs.  Each is preceded by its size (16 bytes). */
static _Alignas(64) uint8_t boot[65536];
static size_t boot_used;    /* only the initialising thread touches it */

static int is_boot(const void *p)
{
    return (const uint8_t *)p >= boot && (const uint8_t *)p < boot + sizeof boot;
}

static void *boot_alloc(size_t n, size_t align)
{
    if (align < 16)
        align = 16;
    if (n > sizeof boot || align > sizeof boot / 4)
        return NULL;
    size_t start = (boot_used + 16 + align - 1) & ~(align - 1);
    if (start + n > sizeof boot)
        return NULL;
    memcpy(boot + start - 16, &n, sizeof n);
    boot_used = start + n;
    return boot + start;    /* zero: static memory, never reused */
}

static size_t boot_size(const void *p)
{
    size_t n;
    memcpy(&n, (const uint8_t *)p - 16, sizeof n);
    return n;
}

/* ---- initialisation ----------------------------------------------------------------------- */

static void say(const char *a, const char *b, const char *c)
{
    ssize_t r = write(2, a, strlen(a));
    r = write(2, b, strlen(b));
    r = write(2, c, strlen(c));
    (void)r;
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
    const char *s = getenv(name);
    if (s == NULL || *s == '\0')
        return dflt;
    uint64_t v = 0;
    for (; *s >= '0' && *s <= '9'; s++)
        v = v * 10 + (uint64_t)(*s - '0');
    return v;
}

static void atfork_child(void)
{
    atomic_store(&tallyP_g.state, TALLYP_OFF);
    close(tallyP_g.fd);
}

static void start_capture(void)
{
    struct tallyP_global *g = &tallyP_g;
    const char *path = getenv("TALLY_CAPTURE");
    if (path == NULL || *path == '\0') {
        atomic_store(&g->state, TALLYP_OFF);
        return;
    }
    uint64_t frames = env_u64("TALLY_FRAMES", 32);
    g->frames = frames < 1 ? 1 : frames > TALLY_CAP_MAX_FRAMES ? TALLY_CAP_MAX_FRAMES
                                                               : (uint32_t)frames;
    g->sample = env_u64("TALLY_SAMPLE", 0);
    int owner = env_u64("TALLY_CAPTURE_PID", 0) == (uint64_t)getpid();
    g->start_ns = tallyP_now_ns();
    if (tallyP_writer_open(path, owner) != 0) {
        say("tally: cannot write the capture ", path, ": profiling disabled\n");
        atomic_store(&g->state, TALLYP_OFF);
        return;
    }
    tallyP_thread_key_init();
    pthread_atfork(NULL, NULL, atfork_child);
    struct tallyP_thread *t = tallyP_thread_get();
    if (t != NULL)
        tallyP_write_process(t);
    tallyP_modules_init();
    atomic_store(&g->state, TALLYP_ON);
}

static void init(void)
{
    struct tallyP_tls *tl = &tallyP_tls;
    int expect = TALLYP_UNINIT;
    if (!atomic_compare_exchange_strong(&tallyP_g.state, &expect, TALLYP_INIT)) {
        while (atomic_load(&tallyP_g.state) == TALLYP_INIT && real.free == NULL)
            sched_yield();
        return;
    }
    tl->in_init = 1;
    real.calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
    real.realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
    real.posix_memalign = (int (*)(void **, size_t, size_t))dlsym(RTLD_NEXT, "posix_memalign");
    real.aligned_alloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "aligned_alloc");
    real.memalign = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "memalign");
    real.valloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "valloc");
    real.pvalloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "pvalloc");
    real.usable = (size_t(*)(void *))dlsym(RTLD_NEXT, "malloc_usable_size");
    real.malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
    /* free last: other threads wait until it is set. */
    void (*f)(void *) = (void (*)(void *))dlsym(RTLD_NEXT, "free");
    tl->in_init = 0;
    if (real.malloc == NULL || f == NULL || real.calloc == NULL || real.realloc == NULL) {
        say("tally: ", "cannot find the C library's malloc", "\n");
        _exit(127);
    }
    __atomic_store_n(&real.free, f, __ATOMIC_RELEASE);
    tl->busy++;
    start_capture();
    tl->busy--;
}

__attribute__((constructor)) static void preload_init(void)
{
    if (real.free == NULL)
        init();
}

__attribute__((destructor)) static void preload_fini(void)
{
    if (atomic_load(&tallyP_g.state) == TALLYP_ON && getpid() == tallyP_g.pid)
        tallyP_writer_close();
}

/* ---- recording ------------------------------------------------------------------------------ */

struct wr {
    struct tallyP_thread *t;
    int shared;                 /* t is the shared state, whose lock we hold */
};

static struct wr wr_get(void)
{
    struct wr w = { tallyP_thread_get(), 0 };
    if (w.t == NULL) {
        pthread_mutex_lock(&tallyP_g.shared_lock);
        w.t = &tallyP_g.shared;
        w.shared = 1;
    }
    return w;
}

static void wr_put(struct wr w)
{
    if (w.shared)
        pthread_mutex_unlock(&tallyP_g.shared_lock);
}

static inline uint64_t next_seq(void)
{
    return atomic_fetch_add_explicit(&tallyP_g.seq, 1, memory_order_relaxed);
}

static void time_mark(struct tallyP_thread *t, uint64_t seq)
{
    if ((t->events++ & 1023) != 0)
        return;
    uint8_t buf[24], *p = buf;
    p = tally_cap_put_varint(p, seq);
    p = tally_cap_put_varint(p, tallyP_now_ns() - tallyP_g.start_ns);
    tallyP_emit(t, TALLY_REC_TIME, buf, (size_t)(p - buf));
}

/* Inlined into each hook, so that the only frame of ours in the stack unw_backtrace
 * returns is the hook itself (each frame unwound costs time). */
__attribute__((always_inline)) static inline void record_alloc(void *ptr, size_t n, int kind)
{
    uintptr_t f[TALLY_CAP_MAX_FRAMES];
    int nf = tallyP_backtrace(f, (int)tallyP_g.frames);
    struct wr w = wr_get();
    uint32_t sid = tallyP_stack_id(w.t, f, nf);
    uint64_t seq = next_seq();
    time_mark(w.t, seq);
    uint8_t buf[48], *p = buf;
    p = tally_cap_put_varint(p, seq);
    p = tally_cap_put_varint(p, (uintptr_t)ptr);
    p = tally_cap_put_varint(p, n);
    p = tally_cap_put_varint(p, sid);
    *p++ = (uint8_t)kind;
    tallyP_emit(w.t, TALLY_REC_ALLOC, buf, (size_t)(p - buf));
    if (tallyP_g.sample)
        tallyP_sample_insert(ptr);
    wr_put(w);
}

static void record_free_seq(void *ptr, int kind, uint64_t seq)
{
    struct wr w = wr_get();
    time_mark(w.t, seq);
    uint8_t buf[32], *p = buf;
    p = tally_cap_put_varint(p, seq);
    p = tally_cap_put_varint(p, (uintptr_t)ptr);
    *p++ = (uint8_t)kind;
    tallyP_emit(w.t, TALLY_REC_FREE, buf, (size_t)(p - buf));
    wr_put(w);
}

/* Whether to record an allocation of n bytes now (also: not nested, recording on). */
static inline int want_alloc(struct tallyP_tls *tl, size_t n)
{
    if (tl->busy || atomic_load_explicit(&tallyP_g.state, memory_order_relaxed) != TALLYP_ON)
        return 0;
    return tallyP_g.sample == 0 || tallyP_sample(n);
}

/* Whether to record the free of p (not nested, recording on, p sampled if sampling). */
static inline int want_free(struct tallyP_tls *tl, void *p)
{
    if (tl->busy || atomic_load_explicit(&tallyP_g.state, memory_order_relaxed) != TALLYP_ON)
        return 0;
    return tallyP_g.sample == 0 || tallyP_sample_remove(p);
}

static void busy_end(int *unused)
{
    (void)unused;
    tallyP_tls.busy--;
}
#define BUSY_SCOPE(tl) \
    __attribute__((cleanup(busy_end))) int busy_scope_ = (int)((tl)->busy++)

#define ENSURE_INIT() \
    do { \
        if (TALLYP_UNLIKELY(__atomic_load_n(&real.free, __ATOMIC_ACQUIRE) == NULL)) \
            init(); \
    } while (0)

/* ---- the C library's entry points ------------------------------------------------------- */

#define EXPORT __attribute__((visibility("default")))

EXPORT void *malloc(size_t n)
{
    struct tallyP_tls *tl = &tallyP_tls;
    if (TALLYP_UNLIKELY(tl->in_init))
        return boot_alloc(n, 16);
    ENSURE_INIT();
    if (TALLYP_LIKELY(!want_alloc(tl, n)))
        return real.malloc(n);
    BUSY_SCOPE(tl);
    void *p = real.malloc(n);
    if (p != NULL)
        record_alloc(p, n, TALLY_AK_MALLOC);
    return p;
}

EXPORT void free(void *p)
{
    if (p == NULL || is_boot(p))
        return;
    struct tallyP_tls *tl = &tallyP_tls;
    ENSURE_INIT();
    if (TALLYP_LIKELY(!want_free(tl, p))) {
        real.free(p);
        return;
    }
    BUSY_SCOPE(tl);
    record_free_seq(p, TALLY_FK_FREE, next_seq());
    real.free(p);
}

EXPORT void *calloc(size_t a, size_t b)
{
    struct tallyP_tls *tl = &tallyP_tls;
    size_t n;
    if (__builtin_mul_overflow(a, b, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    if (TALLYP_UNLIKELY(tl->in_init))
        return boot_alloc(n, 16);
    ENSURE_INIT();
    if (TALLYP_LIKELY(!want_alloc(tl, n)))
        return real.calloc(a, b);
    BUSY_SCOPE(tl);
    void *p = real.calloc(a, b);
    if (p != NULL)
        record_alloc(p, n, TALLY_AK_CALLOC);
    return p;
}

EXPORT void *realloc(void *old, size_t n)
{
    struct tallyP_tls *tl = &tallyP_tls;
    if (old != NULL && is_boot(old)) {
        /* Bootstrap blocks move: within the arena during initialisation, to the
         * real heap after it. */
        void *q = tl->in_init ? boot_alloc(n, 16) : malloc(n);
        if (q != NULL) {
            size_t m = boot_size(old);
            memcpy(q, old, m < n ? m : n);
        }
        return q;
    }
    if (TALLYP_UNLIKELY(tl->in_init))
        return boot_alloc(n, 16);
    ENSURE_INIT();
    int on = !tl->busy &&
             atomic_load_explicit(&tallyP_g.state, memory_order_relaxed) == TALLYP_ON;
    if (!on)
        return real.realloc(old, n);
    int rec_old = old != NULL && (tallyP_g.sample == 0 || tallyP_sample_remove(old));
    int rec_new = tallyP_g.sample == 0 || tallyP_sample(n);
    if (!rec_old && !rec_new)
        return real.realloc(old, n);
    BUSY_SCOPE(tl);
    uint64_t fseq = rec_old ? next_seq() : 0;
    void *q = real.realloc(old, n);
    if (q == NULL && n != 0 && old != NULL) {
        /* Failed: the old block is intact.  Its sequence number stays unused. */
        if (rec_old && tallyP_g.sample)
            tallyP_sample_insert(old);
        return NULL;
    }
    if (rec_old)
        record_free_seq(old, TALLY_FK_REALLOC, fseq);
    if (q != NULL && rec_new)
        record_alloc(q, n, TALLY_AK_REALLOC);
    return q;
}

EXPORT void *reallocarray(void *old, size_t a, size_t b)
{
    size_t n;
    if (__builtin_mul_overflow(a, b, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(old, n);
}

/* The aligned family: ALIGNED_HOOK(name, parameters, call of the real function,
 * alignment of a bootstrap block). */
#define ALIGNED_HOOK(name, args, call, align_expr) \
    EXPORT void *name args \
    { \
        struct tallyP_tls *tl = &tallyP_tls; \
        if (TALLYP_UNLIKELY(tl->in_init)) \
            return boot_alloc(n, align_expr); \
        ENSURE_INIT(); \
        if (real.name == NULL) { \
            errno = ENOMEM; \
            return NULL; \
        } \
        if (TALLYP_LIKELY(!want_alloc(tl, n))) \
            return call; \
        BUSY_SCOPE(tl); \
        void *p = call; \
        if (p != NULL) \
            record_alloc(p, n, TALLY_AK_ALIGNED); \
        return p; \
    }

ALIGNED_HOOK(aligned_alloc, (size_t align, size_t n), real.aligned_alloc(align, n), align)
ALIGNED_HOOK(memalign, (size_t align, size_t n), real.memalign(align, n), align)
ALIGNED_HOOK(valloc, (size_t n), real.valloc(n), 4096)
ALIGNED_HOOK(pvalloc, (size_t n), real.pvalloc(n), 4096)

EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
    struct tallyP_tls *tl = &tallyP_tls;
    if (TALLYP_UNLIKELY(tl->in_init)) {
        void *p = boot_alloc(n, align);
        if (p == NULL)
            return ENOMEM;
        *out = p;
        return 0;
    }
    ENSURE_INIT();
    if (TALLYP_LIKELY(!want_alloc(tl, n)))
        return real.posix_memalign(out, align, n);
    BUSY_SCOPE(tl);
    int rc = real.posix_memalign(out, align, n);
    if (rc == 0)
        record_alloc(*out, n, TALLY_AK_ALIGNED);
    return rc;
}

EXPORT size_t malloc_usable_size(void *p)
{
    if (p == NULL)
        return 0;
    if (is_boot(p))
        return boot_size(p);
    ENSURE_INIT();
    return real.usable != NULL ? real.usable(p) : 0;
}

/* ---- C++ operator new and delete (libstdc++'s mangled names) -------------------------- */

/* The next definition of a C++ operator, resolved on first use (libstdc++ may be
 * loaded by dlopen after we start); nested allocations of dlsym pass through. */
static void *cxx_next(void **slot, const char *name)
{
    void *f = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (f == NULL) {
        ENSURE_INIT();
        tallyP_tls.busy++;
        f = dlsym(RTLD_NEXT, name);
        tallyP_tls.busy--;
        __atomic_store_n(slot, f, __ATOMIC_RELEASE);
    }
    return f;
}

/* NEW_HOOK(symbol, kind, parameters, real's type, real's arguments, fallback when no
 * C++ runtime is loaded).  The size parameter is n. */
#define NEW_HOOK(sym, kind, params, type, args, fallback) \
    EXPORT void *sym params; \
    void *sym params \
    { \
        static void *next_; \
        type fn = (type)cxx_next(&next_, #sym); \
        struct tallyP_tls *tl = &tallyP_tls; \
        if (fn == NULL) \
            return fallback; \
        if (TALLYP_LIKELY(!want_alloc(tl, n))) \
            return fn args; \
        BUSY_SCOPE(tl); \
        void *p = fn args; \
        if (p != NULL) \
            record_alloc(p, n, kind); \
        return p; \
    }

typedef void *(*new1_fn)(size_t);
typedef void *(*new2_fn)(size_t, size_t);
typedef void *(*new2p_fn)(size_t, const void *);
typedef void *(*new3_fn)(size_t, size_t, const void *);

NEW_HOOK(_Znwm, TALLY_AK_NEW, (size_t n), new1_fn, (n), malloc(n))
NEW_HOOK(_Znam, TALLY_AK_NEW_ARRAY, (size_t n), new1_fn, (n), malloc(n))
NEW_HOOK(_ZnwmRKSt9nothrow_t, TALLY_AK_NEW, (size_t n, const void *nt), new2p_fn, (n, nt),
         malloc(n))
NEW_HOOK(_ZnamRKSt9nothrow_t, TALLY_AK_NEW_ARRAY, (size_t n, const void *nt), new2p_fn,
         (n, nt), malloc(n))
NEW_HOOK(_ZnwmSt11align_val_t, TALLY_AK_NEW, (size_t n, size_t al), new2_fn, (n, al),
         aligned_alloc(al, (n + al - 1) / al * al))
NEW_HOOK(_ZnamSt11align_val_t, TALLY_AK_NEW_ARRAY, (size_t n, size_t al), new2_fn, (n, al),
         aligned_alloc(al, (n + al - 1) / al * al))
NEW_HOOK(_ZnwmSt11align_val_tRKSt9nothrow_t, TALLY_AK_NEW, (size_t n, size_t al, const void *nt),
         new3_fn, (n, al, nt), aligned_alloc(al, (n + al - 1) / al * al))
NEW_HOOK(_ZnamSt11align_val_tRKSt9nothrow_t, TALLY_AK_NEW_ARRAY,
         (size_t n, size_t al, const void *nt), new3_fn, (n, al, nt),
         aligned_alloc(al, (n + al - 1) / al * al))

/* DELETE_HOOK(symbol, kind, parameters, real's type, real's arguments) */
#define DELETE_HOOK(sym, kind, params, type, args) \
    EXPORT void sym params; \
    void sym params \
    { \
        static void *next_; \
        if (p == NULL) \
            return; \
        type fn = (type)cxx_next(&next_, #sym); \
        struct tallyP_tls *tl = &tallyP_tls; \
        if (fn == NULL) { \
            free(p); \
            return; \
        } \
        if (TALLYP_LIKELY(!want_free(tl, p))) { \
            fn args; \
            return; \
        } \
        BUSY_SCOPE(tl); \
        record_free_seq(p, kind, next_seq()); \
        fn args; \
    }

typedef void (*del1_fn)(void *);
typedef void (*del2_fn)(void *, size_t);
typedef void (*del2p_fn)(void *, const void *);
typedef void (*del3_fn)(void *, size_t, size_t);
typedef void (*del3p_fn)(void *, size_t, const void *);

DELETE_HOOK(_ZdlPv, TALLY_FK_DELETE, (void *p), del1_fn, (p))
DELETE_HOOK(_ZdaPv, TALLY_FK_DELETE_ARRAY, (void *p), del1_fn, (p))
DELETE_HOOK(_ZdlPvm, TALLY_FK_DELETE, (void *p, size_t n), del2_fn, (p, n))
DELETE_HOOK(_ZdaPvm, TALLY_FK_DELETE_ARRAY, (void *p, size_t n), del2_fn, (p, n))
DELETE_HOOK(_ZdlPvSt11align_val_t, TALLY_FK_DELETE, (void *p, size_t al), del2_fn, (p, al))
DELETE_HOOK(_ZdaPvSt11align_val_t, TALLY_FK_DELETE_ARRAY, (void *p, size_t al), del2_fn, (p, al))
DELETE_HOOK(_ZdlPvmSt11align_val_t, TALLY_FK_DELETE, (void *p, size_t n, size_t al), del3_fn,
            (p, n, al))
DELETE_HOOK(_ZdaPvmSt11align_val_t, TALLY_FK_DELETE_ARRAY, (void *p, size_t n, size_t al),
            del3_fn, (p, n, al))
DELETE_HOOK(_ZdlPvRKSt9nothrow_t, TALLY_FK_DELETE, (void *p, const void *nt), del2p_fn, (p, nt))
DELETE_HOOK(_ZdaPvRKSt9nothrow_t, TALLY_FK_DELETE_ARRAY, (void *p, const void *nt), del2p_fn,
            (p, nt))
DELETE_HOOK(_ZdlPvSt11align_val_tRKSt9nothrow_t, TALLY_FK_DELETE,
            (void *p, size_t al, const void *nt), del3p_fn, (p, al, nt))
DELETE_HOOK(_ZdaPvSt11align_val_tRKSt9nothrow_t, TALLY_FK_DELETE_ARRAY,
            (void *p, size_t al, const void *nt), del3p_fn, (p, al, nt))
