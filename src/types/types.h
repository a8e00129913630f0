/* types.h - internal state and helpers of the built-in types (src/types/).
 *
 * The per-runtime part of the built-in types lives in tally_rt (runtime.h): the
 * cache of small ints, the intern table of strs and the empty tuple, all made on
 * first use (opening a runtime allocates nothing for them).
 */
#ifndef TALLY_TYPES_INTERNAL_H
#define TALLY_TYPES_INTERNAL_H

#include <stdbool.h>

#include "base/base.h"
#include "base/error.h"
#include "tally/types.h"

#ifndef TALLY_SMALL_INT_MIN
#define TALLY_SMALL_INT_MIN (-5)
#endif
#ifndef TALLY_SMALL_INT_MAX
#define TALLY_SMALL_INT_MAX 256
#endif
#define TALLY_SMALL_INT_COUNT (TALLY_SMALL_INT_MAX - TALLY_SMALL_INT_MIN + 1)

typedef struct tallyT_state {
    void *small_ints[TALLY_SMALL_INT_COUNT]; /* immortal ints, NULL until first asked */
    void **interned;          /* intern table: open addressing of strs, power of 2 */
    size_t interned_cap;
    size_t interned_used;
    void *empty_tuple;        /* immortal, NULL until first asked */
    unsigned depth;           /* nested repr and eq calls (see TALLY_NESTING_MAX) */
} tallyT_state;

/* Nested containers deeper than this make repr and eq fail (TALLY_EOVERFLOW)
 * instead of overflowing the C stack, as CPython's recursion limit does. */
#ifndef TALLY_NESTING_MAX
#define TALLY_NESTING_MAX 1000
#endif

TALLY_INTERNAL void tallyT_init(tally_rt *rt);

/* The runtime's error record, for the types' failures. */
TALLY_INTERNAL tallyB_errstate *tallyT_err(tally_rt *rt);

/* Is o of exactly type t? */
TALLY_INTERNAL bool tallyT_is(const void *o, const tally_type *t);

#endif /* TALLY_TYPES_INTERNAL_H */
