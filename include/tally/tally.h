/* tally/tally.h - the one header to include: every public part of Tally.
 *
 * Tally gives C programs Python's memory management: a private heap of size-class
 * pools (tally/heap.h) owned by a runtime handle (tally/runtime.h), reference-counted
 * objects (tally/object.h), and a generational cycle collector with finalizers and
 * weak references (tally/gc.h), built-in types (tally/types.h) and allocation
 * tracing (tally/trace.h).
 */
#ifndef TALLY_TALLY_H
#define TALLY_TALLY_H

#include "tally/runtime.h"
#include "tally/heap.h"
#include "tally/object.h"
#include "tally/gc.h"
#include "tally/types.h"
#include "tally/trace.h"

#endif /* TALLY_TALLY_H */
