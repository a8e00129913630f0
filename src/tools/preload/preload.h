/* preload.h - internal declarations shared by the files of the interposer
 * (libtally-preload.so): the hooks (preload.c), the capture writer (writer.c),
 * stacks and modules (stacks.c) and sampling (sample.c).  Names are tallyP_.
 *
 * Threading model.  Every thread has an initial-exec TLS block (struct tallyP_tls):
 * a re-entry flag, the sampling countdown and a pointer to its writer state (struct
 * tallyP_thread: the chunk it is filling and its table of stacks already written),
 * created on the thread's first recorded event.  Threads only share the chunk
 * allocator, the module table and the sampled-pointer set, each behind its own
 * mutex; the global event counter is an atomic.
 */
#ifndef TALLY_TOOLS_PRELOAD_H
#define TALLY_TOOLS_PRELOAD_H

#include "trace/capture_format.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define TALLYP_HIDDEN __attribute__((visibility("hidden")))
#define TALLYP_LIKELY(x) __builtin_expect(!!(x), 1)
#define TALLYP_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Interposer states (tallyP_g.state). */
enum {
    TALLYP_UNINIT = 0,  /* nothing resolved yet */
    TALLYP_INIT = 1,    /* one thread is resolving the real functions */
    TALLYP_ON = 2,      /* recording */
    TALLYP_OFF = 3,     /* passing everything through: no capture configured, a fork
                           child, or the capture could not be written */
};

/* Per-thread writer state (mmap'd, never freed: reused by later threads). */
struct tallyP_thread {
    uint8_t *pos;               /* next free byte of the current chunk (NULL: none) */
    uint8_t *end;               /* end of the current chunk */
    uint32_t events;            /* events written; a TIME record every 1024 */
    /* Stacks this thread has written: open addressing on the frames' hash. */
    struct tallyP_stack_ent *tab;   /* cap entries, zero = empty */
    size_t cap;                 /* power of two */
    size_t used;                /* entries in use (kept under cap / 2) */
    uintptr_t *frames;          /* frames of every entry, entries index into it */
    size_t frames_cap;          /* in uintptr_t */
    size_t frames_used;
    struct tallyP_thread *next_free;    /* free list link once its thread exited */
};

struct tallyP_stack_ent {
    uint64_t hash;              /* hash of the frames; 0 marks an empty slot */
    uint32_t id;                /* id written in the STACK record */
    uint32_t n;                 /* number of frames */
    size_t off;                 /* index of the first frame in frames[] */
};

/* Initial-exec TLS: no allocation and no lock on first access, safe in any hook. */
struct tallyP_tls {
    struct tallyP_thread *t;    /* writer state, NULL until the first event */
    unsigned busy;              /* inside a hook: nested calls pass straight through */
    unsigned in_init;           /* resolving real functions: serve from bootstrap */
    unsigned exited;            /* thread-exit destructor ran: use the shared writer */
    uint64_t countdown;         /* sampling: bytes until the next sample (0: not drawn) */
    uint64_t rng;               /* sampling: xorshift state, 0 = not seeded */
};
extern __thread struct tallyP_tls tallyP_tls TALLYP_HIDDEN
    __attribute__((tls_model("initial-exec")));

struct tallyP_global {
    _Atomic int state;          /* TALLYP_* */
    int fd;                     /* the capture file */
    pid_t pid;                  /* process that owns fd (fork children do not) */
    uint32_t frames;            /* frames to record per stack (1..256) */
    uint64_t sample;            /* sampling mean in bytes, 0 = record everything */
    uint64_t start_ns;          /* CLOCK_MONOTONIC at start */
    _Atomic uint64_t seq;       /* next event sequence number */
    _Atomic uint32_t next_stack;    /* next stack id (ids start at 1) */
    uintptr_t self_lo, self_hi; /* our own code: frames here are skipped */
    /* Chunk allocator (lock): the file grows by segments of mapped chunks. */
    pthread_mutex_t lock;
    uint64_t next_chunk;        /* chunks handed out */
    uint64_t chunk_limit;       /* no chunk at or past this (set at exit) */
    uint32_t nseg;              /* segments mapped */
    uint8_t **seg;              /* mappings of the segments (mmap'd array) */
    /* Threads that exited leave their state here for the next new thread. */
    struct tallyP_thread *free_threads;
    struct tallyP_thread shared;    /* writer for threads past their exit destructor */
    pthread_mutex_t shared_lock;
    pthread_key_t key;          /* its destructor retires a thread's state */
};
extern struct tallyP_global tallyP_g TALLYP_HIDDEN;

#define TALLYP_SEG_CHUNKS 128u      /* chunks per segment: 8 MiB with 64 KiB chunks */
#define TALLYP_MAX_SEGS 4096u       /* 32 GiB of capture at most */

/* writer.c */
TALLYP_HIDDEN int tallyP_writer_open(const char *path, int owner);
TALLYP_HIDDEN int tallyP_emit(struct tallyP_thread *t, unsigned type, const uint8_t *payload,
                              size_t len);
TALLYP_HIDDEN struct tallyP_thread *tallyP_thread_get(void);
TALLYP_HIDDEN void tallyP_writer_close(void);
TALLYP_HIDDEN void tallyP_write_process(struct tallyP_thread *t);
TALLYP_HIDDEN uint64_t tallyP_now_ns(void);
TALLYP_HIDDEN void tallyP_thread_key_init(void);

/* stacks.c */
TALLYP_HIDDEN int tallyP_backtrace(uintptr_t *out, int max);
TALLYP_HIDDEN uint32_t tallyP_stack_id(struct tallyP_thread *t, const uintptr_t *f, int n);
TALLYP_HIDDEN void tallyP_modules_init(void);

/* sample.c */
TALLYP_HIDDEN int tallyP_sample_slow(size_t n);
TALLYP_HIDDEN void tallyP_sample_insert(void *p);
TALLYP_HIDDEN int tallyP_sample_remove(void *p);

/* The sampling decision for an allocation of n bytes: a countdown in TLS, so that
 * unsampled allocations cost a subtraction and a branch. */
static inline int tallyP_sample(size_t n)
{
    struct tallyP_tls *tl = &tallyP_tls;
    if (TALLYP_LIKELY(n < tl->countdown)) {
        tl->countdown -= n;
        return 0;
    }
    return tallyP_sample_slow(n);
}

#endif /* TALLY_TOOLS_PRELOAD_H */
