/* options.h - compile-time options, each with its default (MicroPython's mpconfig
 * idea).  Override with -D at build time (CMake: -DTALLY_POOL_SHIFT=12).
 *
 * Runtime options live in tally_config instead; these are the ones that shape data
 * structures and therefore cannot change per runtime.
 */
#ifndef TALLY_OPTIONS_H
#define TALLY_OPTIONS_H

/* log2 of the pool size.  A pool is the unit the heap is carved into; every block
 * finds its pool header by masking its address, so pools are aligned to their size.
 * 14 (16 KiB, as CPython since 3.10) suits hosted programs; 12 (4 KiB) suits small
 * fixed buffers, where a pool per size class in use is a noticeable share. */
#ifndef TALLY_POOL_SHIFT
#define TALLY_POOL_SHIFT 14
#endif
#if TALLY_POOL_SHIFT < 12 || TALLY_POOL_SHIFT > 16
#error "TALLY_POOL_SHIFT must be between 12 and 16"
#endif

/* Arenas (hosted backend) hold 64 pools, so a region's pool map is one word. */
#define TALLY_ARENA_SHIFT (TALLY_POOL_SHIFT + 6)

/* Internal assertion level: 0 none, 1 cheap asserts, 2 also expensive ones. */
#ifndef TALLY_DEBUG_CHECKS
#define TALLY_DEBUG_CHECKS 0
#endif

/* Debug mode quarantine: freed blocks wait here before reuse, poisoned, so that a
 * write through a dangling pointer is caught.  Bounded by count and by bytes. */
#ifndef TALLY_QUARANTINE_SLOTS
#define TALLY_QUARANTINE_SLOTS 64
#endif
#ifndef TALLY_QUARANTINE_BYTES
#define TALLY_QUARANTINE_BYTES (1u << 20)
#endif

/* Valgrind client requests (header-only; no library dependency).  On by default
 * when <valgrind/memcheck.h> is available at build time. */
#ifndef TALLY_VALGRIND
#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#define TALLY_VALGRIND 1
#endif
#endif
#endif
#ifndef TALLY_VALGRIND
#define TALLY_VALGRIND 0
#endif

#endif /* TALLY_OPTIONS_H */
