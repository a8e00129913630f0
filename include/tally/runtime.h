/* tally/runtime.h - the runtime handle, its configuration and error reporting.
 *
 * Every Tally call works on a runtime (`tally_rt`), opened with tally_open() and
 * released with tally_close().  A runtime owns one private heap and, later, the
 * objects and collector built on it.  There is no hidden global state: two runtimes
 * in one process share nothing and may be used from different threads at once, but
 * one runtime must be used by one thread at a time (like one Python interpreter).
 *
 * Errors are return values (NULL, or a negative count) plus a readable last error
 * kept in the runtime: tally_last_error() gives the code, tally_last_error_message()
 * the sentence.  Misuse (double free, foreign pointer, corrupted guard bytes) is also
 * reported through the configured report callback, by default to stderr.
 */
#ifndef TALLY_RUNTIME_H
#define TALLY_RUNTIME_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define TALLY_API
#elif defined(__GNUC__)
#define TALLY_API __attribute__((visibility("default")))
#else
#define TALLY_API
#endif

#define TALLY_VERSION_MAJOR 0
#define TALLY_VERSION_MINOR 1
#define TALLY_VERSION_PATCH 0
#define TALLY_VERSION_STRING "0.1.0"

typedef struct tally_rt tally_rt;

/* Error codes: what tally_last_error() returns.  0 is success. */
typedef enum tally_error {
    TALLY_OK = 0,
    TALLY_ENOMEM,      /* the backend has no more memory (OS refused, buffer full) */
    TALLY_ELIMIT,      /* the configured max_bytes would be exceeded */
    TALLY_EINVAL,      /* a bad argument (bad configuration, absurd size) */
    TALLY_EOVERFLOW,   /* a size computation overflowed (calloc count * size) */
    TALLY_EDOUBLEFREE, /* a block was released twice */
    TALLY_EFOREIGN,    /* a pointer that this runtime never handed out */
    TALLY_ECORRUPT,    /* guard bytes, poison or heap metadata were overwritten */
    TALLY_EFAULT,      /* a failure injected by tally_fault_inject() */
    TALLY_EDEAD,       /* an object used after its death (incref, decref below zero) */
    TALLY_EBUSY,       /* not now: a collection is running */
    TALLY_EIO,         /* a file could not be opened, read, written or renamed */
    TALLY_EFORMAT      /* a file is not in the expected format, or is damaged */
} tally_error;

/* Report callback: receives one line (no trailing newline) per detected misuse. */
typedef void (*tally_report_fn)(void *arg, const char *message);

/* A source of raw memory for hosted runtimes (SQLite's sqlite3_mem_methods idea).
 * map() returns `size` bytes aligned to `align` (a power of two, at least the page
 * size), zero-filled, or NULL.  unmap() returns a whole mapping.  purge() (may be
 * NULL) tells the backend that a page-aligned range inside a mapping is unused: its
 * contents may be dropped, the range stays mapped and reads back as zeros.
 * Mappings may lie anywhere, but the fast paths are tuned for a backend that keeps
 * them within 1 TiB of each other (as mmap does); up to 8 such 1 TiB windows are
 * tracked, and a mapping outside all of them is refused with TALLY_ENOMEM.
 *
 * remap() (optional, may be NULL; the last member so that older positional
 * initialisers stay valid) lets a block bigger than an arena grow and shrink
 * without a copy, as realloc does with mremap.  `old` is a whole mapping of
 * old_size bytes that map() returned (or an earlier remap() left); sizes are
 * multiples of the page size.  With target == NULL, resize the mapping in place
 * to new_size bytes, keeping its address: shrinking releases the tail; growing
 * succeeds only if the range after it is free, and the new bytes read as zeros.
 * With target != NULL, a whole mapping of new_size bytes from map(),
 * move the pages of [old, old + old_size) to target, replacing the pages there
 * (contents kept, the rest of target's new_size bytes reading as zeros); `old`
 * is then no longer mapped, and the mapping at target, of new_size bytes, is
 * what unmap() or remap() will be given later.  Returns 0 on success; on failure
 * nothing changed.  Without remap(), such blocks are moved by copying. */
typedef struct tally_backend {
    void *(*map)(void *ctx, size_t size, size_t align);
    void (*unmap)(void *ctx, void *addr, size_t size);
    void (*purge)(void *ctx, void *addr, size_t size);
    void *ctx;
    int (*remap)(void *ctx, void *old, size_t old_size, size_t new_size, void *target);
} tally_backend;

/* Debug levels for tally_config.debug (also set by the environment variable
 * TALLY_DEBUG=1 or 2 for hosted runtimes, as PYTHONMALLOC=debug does for Python). */
#define TALLY_DEBUG_OFF 0
#define TALLY_DEBUG_GUARDS 1 /* guard bytes, poison, quarantine, checks on free */
#define TALLY_DEBUG_FULL 2   /* also validate the whole heap on every slow-path call */

/* Configuration.  A zeroed struct (or tally_config_init) means the hosted defaults;
 * tally_open(NULL) is the same. */
typedef struct tally_config {
    /* Fixed-buffer backend: when `memory` is non-NULL, the runtime lives entirely in
     * [memory, memory + memory_size) and never calls malloc or mmap.  The buffer must
     * outlive the runtime; at least TALLY_FIXED_MIN bytes are needed. */
    void *memory;
    size_t memory_size;

    /* Hosted backend: upper bound on bytes reserved from the backend (0: none),
     * the runtime's own mapping (about 132 KiB, mostly untouched) included. */
    size_t max_bytes;

    /* Debug level, TALLY_DEBUG_OFF .. TALLY_DEBUG_FULL. */
    int debug;

    /* Where misuse reports go (NULL: one line on stderr). */
    tally_report_fn report;
    void *report_arg;

    /* Hosted backend: empty 1 MiB arenas kept mapped for reuse (0: the default, 2;
     * a quarter of the arenas in use if more).  Arenas that empty beyond that are
     * kept too, then given back one per 1024 allocations as the program runs on, so
     * that neither a burst of frees nor an oscillating program pays for unmapping
     * and faulting pages in again; tally_heap_trim() gives them back at once. */
    unsigned retain_arenas;

    /* Hosted backend: a custom source of memory (NULL: the OS, via mmap). */
    const tally_backend *backend;

    /* Fault injection from the very start: the Nth backend request made by
     * tally_open and later calls fails (0: never).  See tally_fault_inject(). */
    unsigned long fail_backend_request;

    /* Nonzero: tally_close prints the leak report (tally_trace_leaks, tally/trace.h)
     * to stderr before the heap goes.  Also set by the environment variable
     * TALLY_LEAKS=1. */
    int report_leaks;

    /* OS backend: huge blocks (over 1 MiB) are mapped in whole 2 MiB stretches
     * with transparent huge pages (MADV_HUGEPAGE), which the kernel fills with one
     * fault per 2 MiB instead of 512.  A touched stretch is then resident whole, so
     * a huge block may hold up to 2 MiB more resident memory than its size.
     * TALLY_HUGE_PAGES_AUTO (0, the default): on, unless max_bytes is set (a cap
     * wants resident memory to follow the heap's own count); TALLY_HUGE_PAGES_ON:
     * on; TALLY_HUGE_PAGES_OFF: never (also set by the environment variable
     * TALLY_HUGE_PAGES=0). */
    int huge_pages;
} tally_config;

#define TALLY_HUGE_PAGES_AUTO 0
#define TALLY_HUGE_PAGES_ON 1
#define TALLY_HUGE_PAGES_OFF (-1)

/* Smallest fixed buffer tally_open accepts (a few pools plus the runtime itself). */
TALLY_API size_t tally_fixed_min(void);
#define TALLY_FIXED_MIN (tally_fixed_min())

TALLY_API void tally_config_init(tally_config *cfg);

/* Opens a runtime.  cfg == NULL means hosted defaults.  Returns NULL on failure
 * with errno set (EINVAL: bad configuration, ENOMEM: no memory) and, when cfg has a
 * report callback, a sentence saying why. */
TALLY_API tally_rt *tally_open(const tally_config *cfg);

/* Releases the runtime and every block still allocated in it. NULL is ignored. */
TALLY_API void tally_close(tally_rt *rt);

/* The last error recorded in rt (TALLY_OK if none since the last clear). */
TALLY_API tally_error tally_last_error(const tally_rt *rt);
/* A sentence describing the last error ("" if none).  Valid until the next call. */
TALLY_API const char *tally_last_error_message(const tally_rt *rt);
TALLY_API void tally_clear_error(tally_rt *rt);
/* Records an error of the caller's own (a callback that fails: a generator's
 * step, a map function): tally_last_error() then reports it.  Not a misuse
 * report: nothing goes to the report callback. */
TALLY_API void tally_set_error(tally_rt *rt, tally_error code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Short fixed name of a code, e.g. "double free". */
TALLY_API const char *tally_strerror(tally_error code);

/* A report callback that drops every message (for tests that provoke misuse). */
TALLY_API void tally_report_discard(void *arg, const char *message);

TALLY_API const char *tally_version(void);

/* Fault injection, for testing that every caller copes with failure (SQLite's idea).
 * Makes the nth next request of `kind` fail (1 = the very next one); nth == 0
 * disarms.  With TALLY_FAULT_PERSIST every later request of that kind fails too. */
typedef enum tally_fault_kind {
    TALLY_FAULT_BACKEND = 1, /* requests for memory from the backend (or buffer) */
    TALLY_FAULT_ALLOC = 2    /* every allocation call (tally_malloc and friends) */
} tally_fault_kind;
#define TALLY_FAULT_PERSIST 1u
TALLY_API void tally_fault_inject(tally_rt *rt, tally_fault_kind kind,
                                  unsigned long nth, unsigned flags);
/* How many requests of `kind` were made so far, and how many were failed. */
TALLY_API unsigned long tally_fault_requests(const tally_rt *rt, tally_fault_kind kind);
TALLY_API unsigned long tally_fault_failures(const tally_rt *rt, tally_fault_kind kind);

#ifdef __cplusplus
}
#endif
#endif /* TALLY_RUNTIME_H */
