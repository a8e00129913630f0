/* tally/tally.h - the one header to include: every public part of Tally.
 *
 * Tally gives C programs Python's memory management: a private heap of size-class
 * pools (tally/heap.h) owned by a runtime handle (tally/runtime.h).
 */
#ifndef TALLY_TALLY_H
#define TALLY_TALLY_H

#include "tally/runtime.h"
#include "tally/heap.h"

#endif /* TALLY_TALLY_H */
