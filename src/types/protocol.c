/* protocol.c - the built-in protocol's entry points (hash, equality, repr,
 * iteration, sizes) and the text buffer they and the types write into.
 *
 * Each entry point dispatches on the object's type's `ops`; what a type leaves
 * NULL falls back to identity (hash and equality), to "<name at 0x...>" (repr),
 * or to an error (iteration).
 */
#include "types/list.h"

#include <stdio.h>
#include <string.h>

#include "heap/heap.h"
#include "object/object.h"
#include "runtime/runtime.h"

tallyB_errstate *tallyT_err(tally_rt *rt)
{
    return &rt->heap.err;
}

const tally_type *const tallyT_builtin[TALLY_BT_COUNT] = {
    [TALLY_BT_INT] = &tally_int_type,
    [TALLY_BT_STR] = &tally_str_type,
    [TALLY_BT_TUPLE] = &tally_tuple_type,
    [TALLY_BT_LIST] = &tally_list_type,
    [TALLY_BT_DICT] = &tally_dict_type,
    [TALLY_BT_SET] = &tally_set_type,
    [TALLY_BT_BYTES] = &tally_bytes_type,
    [TALLY_BT_BYTEARRAY] = &tally_bytearray_type,
    [TALLY_BT_ARRAY] = &tally_array_type,
    [TALLY_BT_WEAKVALUEMAP] = &tally_weakvaluemap_type,
    [TALLY_BT_LIST_ITER] = &tallyT_list_iter_type,
    [TALLY_BT_TUPLE_ITER] = &tallyT_tuple_iter_type,
    [TALLY_BT_TABLE_ITER] = &tallyT_table_iter_type,
};

/* The public headers' inline fast paths read these layouts and indexes. */
_Static_assert(sizeof(tally_rt_view) <= sizeof(((tallyH_heap *)0)->view), "the runtime's view fits");
_Static_assert(offsetof(tallyH_heap, view) == 0, "the runtime's view comes first");
_Static_assert(TALLY_INFO_TYPE_MASK == TALLY_OF_TYPE_MASK, "type index mask");
_Static_assert(TALLY_TYPEIX_INT == TALLY_BT_INT && TALLY_TYPEIX_STR == TALLY_BT_STR &&
                   TALLY_TYPEIX_LIST == TALLY_BT_LIST && TALLY_TYPEIX_DICT == TALLY_BT_DICT &&
                   TALLY_TYPEIX_LIST_ITER == TALLY_BT_LIST_ITER,
               "built-in type indexes");
_Static_assert(offsetof(tallyT_list, size) == offsetof(tally_list_view, size) &&
                   offsetof(tallyT_list, cap) == offsetof(tally_list_view, cap) &&
                   offsetof(tallyT_list, items) == offsetof(tally_list_view, items),
               "a list starts as tally_list_view");
_Static_assert(offsetof(tallyT_list_iter, seq) == offsetof(tally_list_iter_view, seq) &&
                   offsetof(tallyT_list_iter, index) == offsetof(tally_list_iter_view, index),
               "a list iterator starts as tally_list_iter_view");

int tallyT_init(tally_rt *rt)
{
    memset(&rt->types, 0, sizeof rt->types);
    /* By memcpy: the runtime's memory has no declared type, and this gives the
     * view's words the types the inline readers use. */
    tally_rt_view view = {rt->types.small_ints, TALLY_SMALL_INT_MIN, TALLY_SMALL_INT_COUNT};
    memcpy(rt->heap.view, &view, sizeof view);
    for (int i = 0; i < TALLY_BT_COUNT; i++) { /* first registered: index i */
        const tallyO_typeinfo *ti = tallyO_type_lookup(rt, tallyT_builtin[i]);
        if (ti == NULL)
            return -1;
        TALLY_ASSERT((ti->info & TALLY_OF_TYPE_MASK) == (uint32_t)i);
    }
    return 0;
}

static const tally_type_ops *ops_of(const void *o)
{
    return tallyT_type(o)->ops;
}

/* ---- the text buffer ------------------------------------------------------------- */

void tally_strbuf_init(tally_strbuf *b, tally_rt *rt)
{
    *b = (tally_strbuf){rt, NULL, 0, 0, 0};
}

/* Room for n more bytes and the NUL; false (and the buffer marked failed) if the
 * heap has none. */
static bool strbuf_reserve(tally_strbuf *b, size_t n)
{
    if (b->failed)
        return false;
    size_t need;
    if (__builtin_add_overflow(b->len, n + 1, &need)) {
        tallyB_error_set(tallyT_err(b->rt), TALLY_EOVERFLOW, "text of more than SIZE_MAX bytes");
        b->failed = 1;
        return false;
    }
    if (need <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap * 2 > cap ? cap * 2 : need;
    char *d = tally_realloc(b->rt, b->data, cap);
    if (d == NULL) {
        b->failed = 1;
        return false;
    }
    b->data = d;
    b->cap = cap;
    return true;
}

int tally_strbuf_append(tally_strbuf *b, const char *data, size_t n)
{
    if (!strbuf_reserve(b, n))
        return -1;
    memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

static int strbuf_vappendf(tally_strbuf *b, const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    int rc = -1;
    if (n < 0)
        tallyB_error_set(tallyT_err(b->rt), TALLY_EINVAL, "bad format string '%s'", fmt);
    else if (strbuf_reserve(b, (size_t)n)) {
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, again);
        b->len += (size_t)n;
        rc = 0;
    }
    va_end(again);
    if (rc != 0)
        b->failed = 1;
    return rc;
}

int tally_strbuf_appendf(tally_strbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = strbuf_vappendf(b, fmt, ap);
    va_end(ap);
    return rc;
}

/* Enters one level of nesting for a recursive operation on o; false (error
 * set) past TALLY_NESTING_MAX. */
static bool nest(void *o, const char *what)
{
    tally_rt *rt = tally_runtime_of(o);
    if (rt->types.depth >= TALLY_NESTING_MAX) {
        tallyB_error_set(tallyT_err(rt), TALLY_EOVERFLOW,
                         "%s: containers nested more than %d deep", what, TALLY_NESTING_MAX);
        return false;
    }
    rt->types.depth++;
    return true;
}

static void unnest(void *o)
{
    tally_runtime_of(o)->types.depth--;
}

int tally_strbuf_append_repr(tally_strbuf *b, void *o)
{
    if (o == NULL)
        return tally_strbuf_append(b, "NULL", 4);
    const tally_type_ops *ops = ops_of(o);
    if (ops != NULL && ops->repr != NULL) {
        if (!nest(o, "repr")) {
            b->failed = 1;
            return -1;
        }
        int rc = ops->repr(o, b);
        unnest(o);
        return rc;
    }
    const char *name = tallyT_type(o)->name;
    return tally_strbuf_appendf(b, "<%s object at %p>", name ? name : "object", o);
}

void tally_strbuf_discard(tally_strbuf *b)
{
    tally_free(b->rt, b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void *tally_strbuf_finish(tally_strbuf *b)
{
    void *s = NULL;
    if (!b->failed)
        s = tally_str_n(b->rt, b->data ? b->data : "", b->len);
    tally_strbuf_discard(b);
    return s;
}

/* ---- hashing, equality, repr ----------------------------------------------------- */

int tally_hash(void *o, uint64_t *out)
{
    const tally_type_ops *ops = ops_of(o);
    if (ops != NULL && ops->hash != NULL)
        return ops->hash(o, out);
    uint64_t a = (uint64_t)(uintptr_t)o; /* identity: spread the aligned address */
    a ^= a >> 33;
    a *= 0xFF51AFD7ED558CCDull;
    a ^= a >> 33;
    *out = a;
    return 0;
}

int tally_eq(void *a, void *b)
{
    if (a == b)
        return 1;
    if (a == NULL || b == NULL)
        return 0;
    const tally_type_ops *ops = ops_of(a);
    if (ops == NULL || ops->eq == NULL)
        return 0;
    if (!nest(a, "eq"))
        return -1;
    int rc = ops->eq(a, b);
    unnest(a);
    return rc;
}

void *tally_repr(void *o)
{
    tally_strbuf b;
    tally_strbuf_init(&b, tally_runtime_of(o));
    tally_strbuf_append_repr(&b, o);
    return tally_strbuf_finish(&b);
}

/* ---- iteration ------------------------------------------------------------------- */

void *tally_iter(void *o)
{
    const tally_type_ops *ops = ops_of(o);
    if (ops != NULL && ops->iter != NULL)
        return ops->iter(o);
    if (ops != NULL && ops->next != NULL) { /* an iterator is its own iterator */
        tally_incref(o);
        return o;
    }
    const char *name = tally_type_of(o)->name;
    tallyB_error_set(tallyT_err(tally_runtime_of(o)), TALLY_EINVAL, "'%s' object is not iterable",
                     name ? name : "object");
    return NULL;
}

int tally_iter_next(void *it, void **out)
{
    const tally_type_ops *ops = ops_of(it);
    *out = NULL;
    if (ops == NULL || ops->next == NULL) {
        const char *name = tally_type_of(it)->name;
        tallyB_error_set(tallyT_err(tally_runtime_of(it)), TALLY_EINVAL,
                         "'%s' object is not an iterator", name ? name : "object");
        return -1;
    }
    return ops->next(it, out);
}

/* tally_next through the iterator's type. */
static TALLY_NOINLINE void *next_slow(void *it)
{
    void *item;
    int r = tally_iter_next(it, &item);
    if (r == 0)
        tally_clear_error(tally_runtime_of(it)); /* the end: no error */
    return r == 1 ? item : NULL;
}

/* x with a new reference taken by tally_incref's out-of-line half. */
static TALLY_NOINLINE void *incref_slow(void *x)
{
    tally_incref(x);
    return x;
}

void *(tally_next)(void *it)
{
    /* The commonest loop, over a list, inline and without a stack frame. */
    if (it != NULL && tallyT_is_bt(it, TALLY_BT_LIST_ITER)) {
        void *x = tallyT_list_iter_take(it);
        if (x != NULL)
            return tally_incref_quick_(x) ? x : incref_slow(x);
    }
    return next_slow(it);
}

/* ---- sizes ----------------------------------------------------------------------- */

size_t tally_sizeof(const void *o)
{
    const tally_head *h = tallyO_head(o);
    size_t pre = sizeof(tally_head) + ((h->info & TALLY_OF_LINKED) ? sizeof(tallyO_link) : 0);
    size_t size = tally_usable_size((const uint8_t *)o - pre);
    const tally_type_ops *ops = ops_of(o);
    if (ops != NULL && ops->owned_bytes != NULL)
        size += ops->owned_bytes(o);
    return size;
}
