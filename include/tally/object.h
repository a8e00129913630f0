/* tally/object.h - reference-counted objects.
 *
 * An object is a plain C struct allocated by tally_new(): an 8-byte header (a
 * 32-bit reference count and 32 bits of type index and flags) sits just before
 * the pointer returned, so the pointer can be passed to any C code and the struct
 * needs no boilerplate member.  Objects that may hold references (containers, with
 * TALLY_TYPE_CONTAINER, and any type with a traverse or clear callback) carry 8
 * more bytes before the header: the links of the collector's generation lists (two
 * 32-bit handles), which also queue deaths so that long chains never recurse.
 * Such objects are 16-byte aligned; other objects are 8-byte aligned (keep long
 * double and vector members in containers, or in a separate buffer).
 *
 * A new object has a count of 1.  When tally_decref() drops the count to zero, the
 * object is finalized (type->finalize, once in its life, may resurrect it), weak
 * references to it are cleared and their callbacks run, the references it holds
 * are released (type->clear, or else each reference type->traverse reports), its
 * other resources are released (type->destroy) and its memory returns to its pool.
 * Chains of any length are released without recursion on the C stack.
 *
 * Reference counts of immortal objects (tally_immortalize, PEP 683) never change:
 * incref and decref on them write nothing.
 */
#ifndef TALLY_OBJECT_H
#define TALLY_OBJECT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tally/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Called once for each reference an object holds (see tally_type.traverse). */
typedef void (*tally_visit_fn)(void *referent, void *arg);

/* A type descriptor: usually a static const struct, shared by every runtime. */
typedef struct tally_type {
    const char *name;
    size_t size;        /* bytes of the fixed part */
    size_t item_size;   /* bytes per item for tally_new_var, else 0 */
    unsigned flags;     /* TALLY_TYPE_CONTAINER: holds references, is tracked */
    void (*traverse)(void *self, tally_visit_fn visit, void *arg); /* each held ref */
    void (*clear)(void *self);    /* drop held refs (tally_setref(&slot, NULL)) */
    void (*finalize)(void *self); /* runs once before death; may resurrect */
    void (*destroy)(void *self);  /* release non-object resources; no refs */

    /* The built-in protocol (tally/types.h), every entry optional (NULL). */
    const struct tally_type_ops *ops;
} tally_type;

struct tally_type_ops; /* tally/types.h */

/* The type holds references to objects and takes part in cycle collection: its
 * objects start tracked by the collector and must have a traverse callback. */
#define TALLY_TYPE_CONTAINER 0x1u

/* The object header, just before every object.  Its layout is public only so that
 * incref and decref can be inline; read it through the functions below. */
typedef struct tally_head {
    uint32_t rc;   /* reference count; >= TALLY_RC_IMMORTAL_MIN: immortal */
    uint32_t info; /* type index and flags (private) */
} tally_head;

#define TALLY_RC_IMMORTAL_MIN 0x80000000u /* counts from here on are immortal */
#define TALLY_RC_IMMORTAL 0xC0000000u     /* the count immortal objects carry */
#define TALLY_HEAD(o) ((tally_head *)(void *)(o)-1)

/* A new zero-filled object of `type` with a count of 1, or NULL with
 * tally_last_error() set (TALLY_ENOMEM, TALLY_ELIMIT, TALLY_EINVAL, ...). */
TALLY_API void *tally_new(tally_rt *rt, const tally_type *type);
/* Same, with room for nitems items of type->item_size after the fixed part. */
TALLY_API void *tally_new_var(tally_rt *rt, const tally_type *type, size_t nitems);

/* The same with the site of the request for the tracer: tally_new(rt, t) is a
 * macro for tally_new_at(rt, t, __FILE__, __LINE__), as tally_malloc is (see
 * tally/heap.h; TALLY_NO_SITE_MACROS keeps the plain calls). */
TALLY_API void *tally_new_at(tally_rt *rt, const tally_type *type, const char *file, int line);
TALLY_API void *tally_new_var_at(tally_rt *rt, const tally_type *type, size_t nitems,
                                 const char *file, int line);
#ifndef TALLY_NO_SITE_MACROS
#define tally_new(rt, type) tally_new_at((rt), (type), __FILE__, __LINE__)
#define tally_new_var(rt, type, nitems) tally_new_var_at((rt), (type), (nitems), __FILE__, __LINE__)
#endif

/* Out-of-line halves of incref/decref: immortal objects, the last reference, and
 * misuse (a dead object, a count below zero), which is reported. */
TALLY_API void tally_incref_slow(void *o);
TALLY_API void tally_decref_slow(void *o);

/* Takes a new reference to o. */
static inline void tally_incref(void *o)
{
    tally_head *h = TALLY_HEAD(o);
    uint32_t rc = h->rc;
    if (__builtin_expect(rc - 1u < TALLY_RC_IMMORTAL_MIN - 2u, 1)) /* 1 .. 2^31-2 */
        h->rc = rc + 1u;
    else if (rc != TALLY_RC_IMMORTAL) /* immortal: nothing to do, nothing written */
        tally_incref_slow(o);
}

/* Releases a reference to o; the last one destroys it. */
static inline void tally_decref(void *o)
{
    tally_head *h = TALLY_HEAD(o);
    uint32_t rc = h->rc;
    if (__builtin_expect(rc - 2u < TALLY_RC_IMMORTAL_MIN - 2u, 1)) /* 2 .. 2^31-1 */
        h->rc = rc - 1u;
    else if (rc != TALLY_RC_IMMORTAL)
        tally_decref_slow(o);
}

static inline void tally_xincref(void *o)
{
    if (o != NULL)
        tally_incref(o);
}

static inline void tally_xdecref(void *o)
{
    if (o != NULL)
        tally_decref(o);
}

/* Stores a new reference to o (may be NULL) in the pointer variable at `slot`
 * (any T **), then releases the old value: safe when old and new are the same. */
static inline void tally_setref(void *slot, void *o)
{
    void *old;
    memcpy(&old, slot, sizeof old);
    tally_xincref(o);
    memcpy(slot, &o, sizeof o);
    tally_xdecref(old);
}

/* Scope-exit release, C's answer to Python's `with`:
 *     TALLY_AUTO struct node *n = tally_new(rt, &node_type);
 * releases n (if not NULL) when n goes out of scope.  Hand the reference on with
 * tally_steal(&n), which returns it and leaves NULL behind. */
static inline void tally_auto_release(void *slot)
{
    void *o;
    memcpy(&o, slot, sizeof o);
    tally_xdecref(o);
}
#define TALLY_AUTO __attribute__((cleanup(tally_auto_release)))

static inline void *tally_steal(void *slot)
{
    void *o, *none = NULL;
    memcpy(&o, slot, sizeof o);
    memcpy(slot, &none, sizeof none);
    return o;
}

/* The reference count (TALLY_RC_IMMORTAL for immortal objects). */
TALLY_API size_t tally_refcount(const void *o);
TALLY_API const tally_type *tally_type_of(const void *o);

/* Makes o immortal: never freed, its count never changes again, and the collector
 * no longer tracks it (what it references stays alive for good). */
TALLY_API void tally_immortalize(void *o);
TALLY_API int tally_is_immortal(const void *o);

/* Is p a live object of rt?  Checked without trusting p: p must be the start of
 * a live block of rt's heap (at the offset of either header layout) holding a
 * plausible object header, so foreign pointers, freed objects and raw blocks are
 * rejected; a raw block into which a real header was copied cannot be told apart. */
TALLY_API int tally_is_object(tally_rt *rt, const void *p);

/* Bytes of header an object of this type carries before its pointer: 8, or 16
 * for types that may hold references (8 + two 32-bit links; see above). */
TALLY_API size_t tally_type_overhead(const tally_type *type);

#ifdef __cplusplus
}
#endif

#endif /* TALLY_OBJECT_H */
