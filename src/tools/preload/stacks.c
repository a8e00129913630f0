/* stacks.c - call stacks for the interposer: capture, deduplication, module map.
 *
 * Capture: libunwind's unw_backtrace, whose x86_64 implementation keeps a per-thread
 * cache of unwind rules by address, so a stack seen before costs a hash lookup per
 * frame.  The leading frames inside this library (the hook, the recorder) are
 * dropped by address, whatever the compiler inlined.  Frames are return addresses.
 *
 * Deduplication: each thread keeps an open-addressing table of the stacks it has
 * written (hash of the frames -> id, with the frames kept for an exact comparison).
 * A stack new to the thread gets an id from a global counter and one STACK record in
 * the thread's own chunk, which precedes every event that refers to it.  Threads do
 * not share the table, so the common path takes no lock; the price is that a stack
 * used by several threads is written once per thread, under different ids.
 *
 * Modules: every executable PT_LOAD segment of every loaded object is written once as
 * a MODULE record (address range, load bias, path, GNU build-id) so the reader can
 * symbolise offline.  The objects present at start are written at initialisation;
 * when a new stack has a frame outside every known segment and the loader's count of
 * loaded objects (dlpi_adds) has changed, the list is scanned again (dlopen).  The
 * known ranges are behind mods.lock, which is only taken inside dl_iterate_phdr's
 * callback or with no other lock held, so it cannot deadlock with the loader's lock.
 */
#define _GNU_SOURCE
#include "preload.h"

#include <elf.h>
#include <link.h>
#include <sys/mman.h>
#include <unistd.h>

#include "trace/build_id.h"

#define UNW_LOCAL_ONLY
#include <libunwind.h>

/* Frames of ours that precede the program's on the usual path: this function (the
 * recorder is inlined into the hooks) and the hook.  Unwinding costs per frame, so
 * exactly that many more than asked are unwound; a path with more of ours
 * (reallocarray -> realloc) is unwound again deeper. */
#define SELF_FRAMES 2
#define SELF_FRAMES_MAX 8

int tallyP_backtrace(uintptr_t *out, int max)
{
    void *buf[TALLY_CAP_MAX_FRAMES + SELF_FRAMES_MAX];
    int want = max + SELF_FRAMES;
    int n = unw_backtrace(buf, want);
    int i = 0, k = 0;
    while (i < n && (uintptr_t)buf[i] >= tallyP_g.self_lo && (uintptr_t)buf[i] < tallyP_g.self_hi)
        i++;
    if (n == want && i > SELF_FRAMES && i < SELF_FRAMES_MAX) {
        n = unw_backtrace(buf, max + i);
        i = 0;
        while (i < n && (uintptr_t)buf[i] >= tallyP_g.self_lo &&
               (uintptr_t)buf[i] < tallyP_g.self_hi)
            i++;
    }
    for (; i < n && k < max; i++)
        out[k++] = (uintptr_t)buf[i];
    return k;
}

/* ---- the module map -------------------------------------------------------------------- */

struct range {
    uintptr_t lo, hi;           /* an executable segment [lo, hi) */
};

static struct {
    pthread_mutex_t lock;
    struct range *r;            /* sorted by lo, mmap'd */
    size_t n, cap;
    unsigned long long adds;    /* dlpi_adds at the last scan */
    int scanned;                /* a scan has completed */
    char exe[1024];             /* path of the main program (its dlpi_name is "") */
} mods = { .lock = PTHREAD_MUTEX_INITIALIZER };

static size_t range_find(uintptr_t a)   /* first index with hi > a */
{
    size_t lo = 0, hi = mods.n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (mods.r[mid].hi <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int range_known(uintptr_t a)
{
    size_t i = range_find(a);
    return i < mods.n && mods.r[i].lo <= a;
}

static int range_add(uintptr_t lo, uintptr_t hi)
{
    if (mods.n == mods.cap) {
        size_t ncap = mods.cap ? mods.cap * 2 : 256;
        void *m = mmap(NULL, ncap * sizeof(struct range), PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            return -1;
        if (mods.r != NULL) {
            memcpy(m, mods.r, mods.n * sizeof(struct range));
            munmap(mods.r, mods.cap * sizeof(struct range));
        }
        mods.r = m;
        mods.cap = ncap;
    }
    size_t i = range_find(lo);
    memmove(mods.r + i + 1, mods.r + i, (mods.n - i) * sizeof(struct range));
    mods.r[i].lo = lo;
    mods.r[i].hi = hi;
    mods.n++;
    return 0;
}

struct scan_ctx {
    struct tallyP_thread *t;    /* where MODULE records go */
    int force;                  /* scan even if dlpi_adds did not change */
    int first;                  /* next callback is the first of this scan */
};

static int scan_one(struct dl_phdr_info *info, size_t size, void *arg)
{
    struct scan_ctx *c = arg;
    (void)size;
    int is_first = c->first;
    c->first = 0;
    pthread_mutex_lock(&mods.lock);
    if (is_first) {
        if (!c->force && mods.scanned && info->dlpi_adds == mods.adds) {
            pthread_mutex_unlock(&mods.lock);
            return 1;   /* nothing was loaded since the last scan */
        }
        mods.adds = info->dlpi_adds;
    }
    const char *path = info->dlpi_name;
    if (path == NULL || path[0] == '\0')
        path = mods.exe;
    const uint8_t *bid = NULL;
    size_t nbid = tally_build_id(info, &bid);
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
        if (range_known(lo) || range_add(lo, hi) != 0)
            continue;
        if (lo <= (uintptr_t)&tallyP_backtrace && (uintptr_t)&tallyP_backtrace < hi) {
            tallyP_g.self_lo = lo;
            tallyP_g.self_hi = hi;
        }
        size_t plen = strnlen(path, 1024);
        uint8_t buf[1024 + 64 + 64];
        uint8_t *p = buf;
        p = tally_cap_put_varint(p, lo);
        p = tally_cap_put_varint(p, hi);
        p = tally_cap_put_varint(p, info->dlpi_addr);
        p = tally_cap_put_bytes(p, path, plen);
        p = tally_cap_put_bytes(p, bid, nbid);
        p = tally_cap_put_varint(p, atomic_load_explicit(&tallyP_g.seq, memory_order_relaxed));
        if (c->t != NULL)
            tallyP_emit(c->t, TALLY_REC_MODULE, buf, (size_t)(p - buf));
    }
    pthread_mutex_unlock(&mods.lock);
    return 0;
}

static void modules_scan(struct tallyP_thread *t, int force)
{
    struct scan_ctx c = { .t = t, .force = force, .first = 1 };
    dl_iterate_phdr(scan_one, &c);
    pthread_mutex_lock(&mods.lock);
    mods.scanned = 1;
    pthread_mutex_unlock(&mods.lock);
}

/* First scan, by the initialising thread (its writer state exists). */
void tallyP_modules_init(void)
{
    ssize_t n = readlink("/proc/self/exe", mods.exe, sizeof mods.exe - 1);
    mods.exe[n > 0 ? n : 0] = '\0';
    modules_scan(tallyP_thread_get(), 1);
}

/* ---- per-thread stack table ------------------------------------------------------------ */

static uint64_t frames_hash(const uintptr_t *f, int n)
{
    uint64_t h = 0x9e3779b97f4a7c15u ^ (uint64_t)n;
    for (int i = 0; i < n; i++) {
        h ^= (uint64_t)f[i];
        h *= 0xff51afd7ed558ccdu;
        h ^= h >> 32;
    }
    return h | 1;   /* 0 marks an empty slot */
}

static void *map_anon(size_t bytes)
{
    void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return m == MAP_FAILED ? NULL : m;
}

static int table_grow(struct tallyP_thread *t)
{
    size_t ncap = t->cap ? t->cap * 2 : 1024;
    struct tallyP_stack_ent *ntab = map_anon(ncap * sizeof *ntab);
    if (ntab == NULL)
        return -1;
    for (size_t i = 0; i < t->cap; i++) {
        if (t->tab[i].hash == 0)
            continue;
        size_t j = t->tab[i].hash & (ncap - 1);
        while (ntab[j].hash != 0)
            j = (j + 1) & (ncap - 1);
        ntab[j] = t->tab[i];
    }
    if (t->tab != NULL)
        munmap(t->tab, t->cap * sizeof *t->tab);
    t->tab = ntab;
    t->cap = ncap;
    return 0;
}

static int frames_reserve(struct tallyP_thread *t, size_t n)
{
    if (t->frames_used + n <= t->frames_cap)
        return 0;
    size_t ncap = t->frames_cap ? t->frames_cap * 2 : 65536;
    while (ncap < t->frames_used + n)
        ncap *= 2;
    void *m = t->frames == NULL
        ? map_anon(ncap * sizeof(uintptr_t))
        : mremap(t->frames, t->frames_cap * sizeof(uintptr_t), ncap * sizeof(uintptr_t),
                 MREMAP_MAYMOVE);
    if (m == NULL || m == MAP_FAILED)
        return -1;
    t->frames = m;
    t->frames_cap = ncap;
    return 0;
}

/* Frames not in any known module: scan the loaded objects again if some were added. */
static void check_modules(struct tallyP_thread *t, const uintptr_t *f, int n)
{
    int unknown = 0;
    pthread_mutex_lock(&mods.lock);
    for (int i = 0; i < n && !unknown; i++)
        unknown = !range_known(f[i]);
    pthread_mutex_unlock(&mods.lock);
    if (unknown)
        modules_scan(t, 0);
}

uint32_t tallyP_stack_id(struct tallyP_thread *t, const uintptr_t *f, int n)
{
    uint64_t h = frames_hash(f, n);
    if (t->cap == 0 && table_grow(t) != 0)
        return 0;
    size_t mask = t->cap - 1, i = h & mask;
    for (; t->tab[i].hash != 0; i = (i + 1) & mask) {
        struct tallyP_stack_ent *e = &t->tab[i];
        if (e->hash == h && e->n == (uint32_t)n &&
            memcmp(t->frames + e->off, f, (size_t)n * sizeof *f) == 0)
            return e->id;
    }
    /* A stack new to this thread. */
    check_modules(t, f, n);
    uint32_t id = atomic_fetch_add_explicit(&tallyP_g.next_stack, 1, memory_order_relaxed);
    uint8_t buf[32 + TALLY_CAP_MAX_FRAMES * 10], *p = buf;
    p = tally_cap_put_varint(p, id);
    *p++ = TALLY_STACK_NATIVE;
    p = tally_cap_put_varint(p, (uint64_t)n);
    for (int k = 0; k < n; k++)
        p = tally_cap_put_varint(p, f[k]);
    if (tallyP_emit(t, TALLY_REC_STACK, buf, (size_t)(p - buf)) != 0)
        return id;
    if (frames_reserve(t, (size_t)n) != 0)
        return id;  /* written but not remembered: it will be written again */
    if (t->used + 1 > t->cap / 2) {
        if (table_grow(t) != 0)
            return id;
        mask = t->cap - 1;
        for (i = h & mask; t->tab[i].hash != 0; i = (i + 1) & mask) {
        }
    }
    struct tallyP_stack_ent *e = &t->tab[i];
    memcpy(t->frames + t->frames_used, f, (size_t)n * sizeof *f);
    e->hash = h;
    e->id = id;
    e->n = (uint32_t)n;
    e->off = t->frames_used;
    t->frames_used += (size_t)n;
    t->used++;
    return id;
}
