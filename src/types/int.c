/* int.c - the built-in int: an immutable 64-bit signed integer object.
 *
 * An int is a plain (non-container) object holding one int64_t.  As in CPython,
 * the small values TALLY_SMALL_INT_MIN..TALLY_SMALL_INT_MAX are shared: each runtime
 * makes the object for such a value the first time it is asked for, makes it
 * immortal and keeps it in rt->types.small_ints, so counting loops and indexes
 * never allocate.  Other values get a new object each time.
 *
 * Hashing mixes the value's bits (the splitmix64 finalizer), so equal ints hash
 * equal in every runtime and nearby values spread over a hash table's buckets.
 */
#include "types/types.h"

#include <inttypes.h>

#include "runtime/runtime.h"

typedef struct int_obj {
    int64_t value;
} int_obj;

static int int_hash(void *self, uint64_t *out)
{
    /* Equal values must hash equal everywhere: depend on the value alone. */
    uint64_t z = (uint64_t)((int_obj *)self)->value;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    *out = z ^ (z >> 31);
    return 0;
}

static int int_eq(void *self, void *other)
{
    if (!tallyT_is(other, &tally_int_type))
        return 0;
    return ((int_obj *)self)->value == ((int_obj *)other)->value;
}

static int int_repr(void *self, tally_strbuf *out)
{
    return tally_strbuf_appendf(out, "%" PRId64, ((int_obj *)self)->value);
}

static const tally_type_ops int_ops = {
    .hash = int_hash,
    .eq = int_eq,
    .repr = int_repr,
};

const tally_type tally_int_type = {
    .name = "int",
    .size = sizeof(int_obj),
    .ops = &int_ops,
};

static void *int_new(tally_rt *rt, int64_t value)
{
    int_obj *o = tally_new(rt, &tally_int_type);
    if (o != NULL)
        o->value = value;
    return o;
}

/* The shared immortal object for a small value, made on first request (NULL with
 * the error set if that allocation fails; a later request tries again). */
static void *small_int(tally_rt *rt, int64_t value)
{
    void **slot = &rt->types.small_ints[value - TALLY_SMALL_INT_MIN];
    if (*slot == NULL) {
        void *o = int_new(rt, value);
        if (o == NULL)
            return NULL;
        tally_immortalize(o);
        *slot = o;
    }
    return *slot; /* immortal: the caller's "new reference" costs nothing */
}

void *(tally_int)(tally_rt *rt, int64_t value)
{
    if (value >= TALLY_SMALL_INT_MIN && value <= TALLY_SMALL_INT_MAX)
        return small_int(rt, value);
    return int_new(rt, value);
}

int tally_is_int(const void *o)
{
    return tallyT_is(o, &tally_int_type);
}

int64_t(tally_int_value)(const void *o)
{
    /* Not an int: 0, rather than reading a foreign payload. */
    if (!tally_is_int(o))
        return 0;
    return ((const int_obj *)o)->value;
}
