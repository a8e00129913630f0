/* base.h - compiler helpers shared by every layer of the library.
 *
 * Internal headers include this first.  It refuses to be included from outside the
 * library build (TALLY_BUILDING), so that nothing internal leaks into users' code.
 * Internal symbols carry a layer prefix (tallyB_ base, tallyH_ heap, tallyR_
 * runtime) and hidden visibility; only tally_* names are exported.
 */
#ifndef TALLY_BASE_H
#define TALLY_BASE_H

#ifndef TALLY_BUILDING
#error "src/ headers are internal to the Tally build; include <tally/tally.h> instead"
#endif

#include <stddef.h>
#include <stdint.h>

#include "base/options.h"

#define TALLY_INTERNAL __attribute__((visibility("hidden")))
#define TALLY_LIKELY(x) __builtin_expect(!!(x), 1)
#define TALLY_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define TALLY_INLINE static inline __attribute__((always_inline))
#define TALLY_NOINLINE __attribute__((noinline))
#define TALLY_PRINTF(f, a) __attribute__((format(printf, f, a)))

#define TALLY_ALIGN_UP(x, a) (((x) + ((a)-1)) & ~((uintptr_t)(a)-1))
#define TALLY_ALIGN_DOWN(x, a) ((x) & ~((uintptr_t)(a)-1))

/* Internal assertions, level >= 1 (TALLY_DEBUG_CHECKS); they abort, because a
 * failed one means Tally itself is wrong, never the user. */
#if TALLY_DEBUG_CHECKS >= 1
#include <stdio.h>
#include <stdlib.h>
#define TALLY_ASSERT(c)                                                             \
    do {                                                                            \
        if (!(c)) {                                                                 \
            fprintf(stderr, "tally: internal assertion failed: %s (%s:%d)\n", #c, \
                    __FILE__, __LINE__);                                            \
            abort();                                                                \
        }                                                                           \
    } while (0)
#else
#define TALLY_ASSERT(c) ((void)0)
#endif

#endif /* TALLY_BASE_H */
