/* list.c - the built-in list: a mutable sequence of objects with amortised growth.
 *
 * A list is a fixed-size container object holding its size, its capacity and a
 * pointer to an item array allocated separately from the runtime's heap.  The
 * array grows by about 1/8 plus a few slots (CPython's pattern: cheap appends,
 * little slack), and the capacity is then widened to what the block really holds
 * (tallyH_buf_usable), so the rounding of the size class is not wasted.
 *
 * Re-entrancy is the main concern.  User code runs inside these calls in three
 * ways: a decref may run a finalizer or weak-reference callback; an allocation may
 * run the collector (automatically, for a new container, or because the heap is
 * exhausted), which runs finalizers; and a comparison or an iterator is user code.
 * Any of them may change this very list.  Hence the invariants:
 *   - items[0..size) are valid strong references whenever user code can run, so
 *     traverse (and the collector) always sees a consistent list;
 *   - no pointer into the array and no size is kept across an allocation: the
 *     array grows in place or by the heap moving its pages when that runs no
 *     hook (tallyH_resize_nocopy), else by allocate-then-copy (never
 *     tally_realloc, whose exhaustion hook could run a finalizer that frees the
 *     array meanwhile), and indexes are normalised after the growth;
 *   - references are released last, once the list is consistent (set stores the
 *     new value, then releases the old one; clear detaches the array first).
 * A failed call changes nothing: growth happens before anything is stored, and
 * extend from a generic iterable takes back what it had appended.
 *
 * The sort is a stable merge sort: insertion sort of short runs, then bottom-up
 * merges through a temporary buffer of the list's size.  During the sort the items
 * are detached from the list (which looks empty to a comparison function), as
 * CPython does, so a misbehaving comparison cannot free items under the sort.
 */
#include "types/list.h"

#include <string.h>

#include "heap/heap.h"
#include "runtime/runtime.h"

typedef tallyT_list list;           /* the layouts are in list.h */
typedef tallyT_list_iter list_iter;

/* Indexes are ptrdiff_t, and the array's byte size must fit a size_t. */
#define LIST_MAX_ITEMS ((size_t)PTRDIFF_MAX / sizeof(void *))


static tally_rt *rt_of(const void *o)
{
    return tally_runtime_of(o);
}

static tallyB_errstate *err_of(const void *o)
{
    return tallyT_err(rt_of(o));
}

/* l as a list, or NULL with the error set (when l names a runtime to set it in). */
static list *as_list(const void *l, const char *fn)
{
    if (tallyT_is(l, &tally_list_type))
        return (list *)l;
    if (l != NULL)
        tallyB_error_set(err_of(l), TALLY_EINVAL, "%s: not a list", fn);
    return NULL;
}

/* ---- storage ------------------------------------------------------------------- */

/* The capacity to allocate for `need` items, within the limit: need + need/8 + 6
 * (CPython's rate).  Past an arena, when the heap cannot move big blocks without
 * copying (no remap: a fixed buffer, a custom backend, Valgrind), half as much
 * again: each growth then copies and faults in the whole array, which at 1/8 is
 * nine times its size over its life, at 1/2 three times. */
static size_t grown_capacity(const list *l, size_t need)
{
    size_t cap = need + (need >> 3) + 6;
    if (need * sizeof(void *) >= ((size_t)1 << 20) &&
        !tallyH_can_remap(tallyT_heap(l)))
        cap = need + (need >> 1);
    if (cap < need || cap > LIST_MAX_ITEMS)
        cap = LIST_MAX_ITEMS;
    return cap;
}

static int too_many(const list *l, const char *what)
{
    tallyB_error_set(err_of(l), TALLY_EOVERFLOW, "%s: a list of more than %zu items", what,
                     LIST_MAX_ITEMS);
    return -1;
}

/* Gives the array `cap` items' room without a copy and without running user code
 * (in place, or a huge block's pages moved): true, or false with nothing changed. */
static bool grow_nocopy(list *l, size_t cap)
{
    if (l->items == NULL)
        return false;
    tallyH_heap *h = tallyT_heap(l);
    void **a = tallyH_buf_resize_nocopy(h, l->items, cap * sizeof *a);
    if (a == NULL)
        return false;
    size_t usable = tallyH_buf_usable(h, a) / sizeof *a;
    l->items = a;
    l->cap = usable < LIST_MAX_ITEMS ? usable : LIST_MAX_ITEMS;
    return true;
}

/* Makes room for `extra` more items than the list has now.  0, or -1 with the error
 * set and the list unchanged.  The array grows without a copy where the heap can
 * do that quietly; else a new one is allocated, and since the allocation may run
 * user code that changes the list, the need is computed again afterwards and the
 * current items are copied. */
static int list_reserve(list *l, size_t extra, const char *what)
{
    for (;;) {
        size_t need;
        if (__builtin_add_overflow(l->size, extra, &need) || need > LIST_MAX_ITEMS)
            return too_many(l, what);
        if (need <= l->cap)
            return 0;
        size_t cap = grown_capacity(l, need);
        if (grow_nocopy(l, cap))
            return 0;
        void **old = l->items;
        size_t size = l->size;
        tallyH_heap *h = tallyT_heap(l);
        void **a = tallyH_buf_alloc(h, cap * sizeof *a);
        if (a == NULL)
            return -1;
        if (l->items != old || l->size != size) {
            tallyH_buf_free(h, a); /* changed meanwhile: measure again */
            continue;
        }
        size_t usable = tallyH_buf_usable(h, a) / sizeof *a;
        if (size != 0)
            memcpy(a, old, size * sizeof *a);
        l->items = a;
        l->cap = usable < LIST_MAX_ITEMS ? usable : LIST_MAX_ITEMS;
        tallyH_buf_free(h, old);
    }
}

/* Turns i (negative: from the end) into an index below l->size; false with the
 * error set when it is out of range. */
static bool norm_index(const list *l, ptrdiff_t i, size_t *out, const char *fn)
{
    size_t k = i < 0 ? (size_t)0 - (size_t)i : (size_t)i; /* |i| without overflow */
    if (i < 0 && k <= l->size) {
        *out = l->size - k;
        return true;
    }
    if (i >= 0 && k < l->size) {
        *out = k;
        return true;
    }
    tallyB_error_set(err_of(l), TALLY_EINVAL, "%s: index %td out of range (size %zu)", fn, i,
                     l->size);
    return false;
}

/* ---- the list type ------------------------------------------------------------- */

static void list_traverse(void *self, tally_visit_fn visit, void *arg)
{
    list *l = self;
    for (size_t i = 0; i < l->size; i++)
        visit(l->items[i], arg);
}

/* Detaches the array first, so that the finalizers the releases run find an empty,
 * valid list (which they may even fill again). */
static void list_clear(void *self)
{
    list *l = self;
    void **items = l->items;
    size_t n = l->size;
    l->items = NULL;
    l->size = l->cap = 0;
    while (n > 0)
        tally_decref(items[--n]);
    tallyH_buf_free(tallyT_heap(l), items);
}

/* Death runs clear first, so normally nothing is left; the array goes back. */
static void list_destroy(void *self)
{
    list *l = self;
    tallyH_buf_free(tallyT_heap(l), l->items);
    l->items = NULL;
    l->size = l->cap = 0;
}

static int list_hash(void *self, uint64_t *out)
{
    (void)out;
    tallyB_error_set(err_of(self), TALLY_EINVAL, "unhashable type: 'list'");
    return -1;
}

/* Itemwise, as CPython: each pair is held while compared (the comparison is user
 * code that may shrink either list), and the sizes are read again every step. */
static int list_eq(void *self, void *other)
{
    if (!tallyT_is(other, &tally_list_type))
        return 0;
    list *a = self, *b = other;
    if (a->size != b->size)
        return 0;
    for (size_t i = 0; i < a->size && i < b->size; i++) {
        void *x = a->items[i], *y = b->items[i];
        tally_incref(x);
        tally_incref(y);
        int r = tally_eq(x, y);
        tally_decref(x);
        tally_decref(y);
        if (r != 1)
            return r;
    }
    return a->size == b->size;
}

/* "[a, b]"; a list met again inside itself shows as "[...]".  Each item is held
 * while its representation is made (a user repr may shrink the list). */
static int list_repr(void *self, tally_strbuf *out)
{
    list *l = self;
    if (l->repr_active)
        return tally_strbuf_append(out, "[...]", 5);
    l->repr_active = 1;
    int rc = tally_strbuf_append(out, "[", 1);
    for (size_t i = 0; rc == 0 && i < l->size; i++) {
        if (i > 0)
            rc = tally_strbuf_append(out, ", ", 2);
        void *item = l->items[i];
        tally_incref(item);
        if (rc == 0)
            rc = tally_strbuf_append_repr(out, item);
        tally_decref(item);
    }
    if (rc == 0)
        rc = tally_strbuf_append(out, "]", 1);
    l->repr_active = 0;
    return rc;
}

static void *list_iter_new(void *self)
{
    list_iter *it = tally_new(rt_of(self), &tallyT_list_iter_type);
    if (it != NULL)
        tally_setref(&it->seq, self);
    return it;
}

static size_t list_owned_bytes(const void *self)
{
    const list *l = self;
    return tallyH_buf_usable(tallyT_heap(l), l->items);
}

static const tally_type_ops list_ops = {
    .hash = list_hash,
    .eq = list_eq,
    .repr = list_repr,
    .iter = list_iter_new,
    .owned_bytes = list_owned_bytes,
};

const tally_type tally_list_type = {
    .name = "list",
    .size = sizeof(list),
    .flags = TALLY_TYPE_CONTAINER,
    .traverse = list_traverse,
    .clear = list_clear,
    .destroy = list_destroy,
    .ops = &list_ops,
};

/* ---- the list iterator ----------------------------------------------------------- */

static void list_iter_traverse(void *self, tally_visit_fn visit, void *arg)
{
    list_iter *it = self;
    if (it->seq != NULL)
        visit(it->seq, arg);
}

static void list_iter_clear(void *self)
{
    tally_setref(&((list_iter *)self)->seq, NULL);
}

/* By index, so the list may grow or shrink between calls: the iteration ends at
 * the first index at or past the size of the moment. */
static int list_iter_next(void *self, void **out)
{
    list_iter *it = self;
    list *l = it->seq;
    if (l != NULL && it->index < l->size) {
        void *item = l->items[it->index++];
        tally_incref(item);
        *out = item;
        return 1;
    }
    list_iter_clear(it);
    return 0;
}

static const tally_type_ops list_iter_ops = {.next = list_iter_next};

const tally_type tallyT_list_iter_type = {
    .name = "list_iterator",
    .size = sizeof(list_iter),
    .flags = TALLY_TYPE_CONTAINER,
    .traverse = list_iter_traverse,
    .clear = list_iter_clear,
    .ops = &list_iter_ops,
};

/* ---- creation and access ------------------------------------------------------- */

void *tally_list(tally_rt *rt, size_t capacity)
{
    list *l = tally_new(rt, &tally_list_type);
    if (l == NULL || capacity == 0)
        return l;
    if (list_reserve(l, capacity, "tally_list") != 0) {
        tally_decref(l);
        return NULL;
    }
    return l;
}

int tally_is_list(const void *o)
{
    return tallyT_is(o, &tally_list_type);
}

size_t(tally_list_size)(const void *l)
{
    const list *lp = as_list(l, "tally_list_size");
    return lp != NULL ? lp->size : 0;
}

void *tally_list_get(const void *l, ptrdiff_t i)
{
    list *lp = as_list(l, "tally_list_get");
    size_t k;
    if (lp == NULL || !norm_index(lp, i, &k, "tally_list_get"))
        return NULL;
    return lp->items[k];
}

static int null_object(const list *l, const char *fn)
{
    tallyB_error_set(err_of(l), TALLY_EINVAL, "%s: the object is NULL", fn);
    return -1;
}

int tally_list_set(void *l, ptrdiff_t i, void *o)
{
    list *lp = as_list(l, "tally_list_set");
    size_t k;
    if (lp == NULL)
        return -1;
    if (o == NULL)
        return null_object(lp, "tally_list_set");
    if (!norm_index(lp, i, &k, "tally_list_set"))
        return -1;
    tally_setref(&lp->items[k], o); /* stores o, then releases the old item */
    return 0;
}

/* Out of line, so that the fast path below needs no stack frame of its own. */
static TALLY_NOINLINE int append_slow(void *l, void *o)
{
    list *lp = as_list(l, "tally_list_append");
    if (lp == NULL)
        return -1;
    if (o == NULL)
        return null_object(lp, "tally_list_append");
    if (list_reserve(lp, 1, "tally_list_append") != 0)
        return -1;
    tally_incref(o);
    lp->items[lp->size++] = o;
    return 0;
}

int(tally_list_append)(void *l, void *o)
{
    /* The common case in a few instructions and no stack frame: a list with room. */
    if (l != NULL && o != NULL && tallyT_is_bt(l, TALLY_BT_LIST)) {
        list *lp = l;
        if (lp->size < lp->cap && tally_incref_quick_(o)) {
            lp->items[lp->size++] = o;
            return 0;
        }
    }
    return append_slow(l, o);
}

int tally_list_insert(void *l, ptrdiff_t i, void *o)
{
    list *lp = as_list(l, "tally_list_insert");
    if (lp == NULL)
        return -1;
    if (o == NULL)
        return null_object(lp, "tally_list_insert");
    if (list_reserve(lp, 1, "tally_list_insert") != 0)
        return -1;
    /* Clamped as list.insert, against the size after the growth. */
    size_t n = lp->size, k;
    if (i < 0)
        k = (size_t)0 - (size_t)i >= n ? 0 : n - ((size_t)0 - (size_t)i);
    else
        k = (size_t)i > n ? n : (size_t)i;
    memmove(&lp->items[k + 1], &lp->items[k], (n - k) * sizeof(void *));
    tally_incref(o);
    lp->items[k] = o;
    lp->size = n + 1;
    return 0;
}

/* Takes item k out of the list and returns the reference it held. */
static void *take_at(list *l, size_t k)
{
    void *item = l->items[k];
    memmove(&l->items[k], &l->items[k + 1], (l->size - k - 1) * sizeof(void *));
    l->size--;
    return item;
}

int tally_list_delete(void *l, ptrdiff_t i)
{
    list *lp = as_list(l, "tally_list_delete");
    size_t k;
    if (lp == NULL || !norm_index(lp, i, &k, "tally_list_delete"))
        return -1;
    tally_decref(take_at(lp, k)); /* released once the list is consistent */
    return 0;
}

void *tally_list_pop(void *l, ptrdiff_t i)
{
    list *lp = as_list(l, "tally_list_pop");
    size_t k;
    if (lp == NULL)
        return NULL;
    if (lp->size == 0) {
        tallyB_error_set(err_of(lp), TALLY_EINVAL, "pop from empty list");
        return NULL;
    }
    if (!norm_index(lp, i, &k, "tally_list_pop"))
        return NULL;
    return take_at(lp, k);
}

void tally_list_clear(void *l)
{
    list *lp = as_list(l, "tally_list_clear");
    if (lp != NULL)
        list_clear(lp);
}

void tally_list_reverse(void *l)
{
    list *lp = as_list(l, "tally_list_reverse");
    if (lp == NULL || lp->size < 2)
        return;
    for (size_t i = 0, j = lp->size - 1; i < j; i++, j--) {
        void *t = lp->items[i];
        lp->items[i] = lp->items[j];
        lp->items[j] = t;
    }
}

/* ---- slices ---------------------------------------------------------------------- */

/* Python's slice rules (PySlice_AdjustIndices) for a sequence of n items: clamps
 * start and stop and returns how many items the slice has. */
static size_t slice_adjust(size_t n, ptrdiff_t *start, ptrdiff_t *stop, ptrdiff_t step)
{
    ptrdiff_t len = (ptrdiff_t)n;
    ptrdiff_t *ends[2] = {start, stop};
    for (int e = 0; e < 2; e++) {
        ptrdiff_t *p = ends[e];
        if (*p < 0) {
            *p += len;
            if (*p < 0)
                *p = step < 0 ? -1 : 0;
        } else if (*p >= len) {
            *p = step < 0 ? len - 1 : len;
        }
    }
    if (step < 0)
        return *stop < *start ? (size_t)((*start - *stop - 1) / -step) + 1 : 0;
    return *start < *stop ? (size_t)((*stop - *start - 1) / step) + 1 : 0;
}

void *tally_list_slice(const void *l, ptrdiff_t start, ptrdiff_t stop, ptrdiff_t step)
{
    list *src = as_list(l, "tally_list_slice");
    if (src == NULL)
        return NULL;
    if (step == 0) {
        tallyB_error_set(err_of(src), TALLY_EINVAL, "tally_list_slice: slice step cannot be zero");
        return NULL;
    }
    if (step < -PTRDIFF_MAX)
        step = -PTRDIFF_MAX; /* so that -step exists, as Python clamps it */
    list *r = tally_new(rt_of(src), &tally_list_type);
    if (r == NULL)
        return NULL;
    /* Every allocation may change src: measure again until r has room for the
     * slice of src as it is now, then copy without allocating. */
    for (;;) {
        ptrdiff_t a = start, b = stop;
        size_t count = slice_adjust(src->size, &a, &b, step);
        if (count > r->cap) {
            if (list_reserve(r, count, "tally_list_slice") != 0) {
                tally_decref(r);
                return NULL;
            }
            continue;
        }
        for (size_t i = 0; i < count; i++, a += step) {
            void *item = src->items[a];
            tally_incref(item);
            r->items[i] = item;
        }
        r->size = count;
        return r;
    }
}

/* ---- extend ---------------------------------------------------------------------- */

/* Lists and tuples are copied directly (their size is known); anything else is
 * iterated.  These read a list or tuple source as it is at the moment. */
static bool is_seq(const void *o)
{
    return tallyT_is(o, &tally_list_type) || tally_is_tuple(o);
}

static size_t seq_size(const void *o)
{
    return tallyT_is(o, &tally_list_type) ? ((const list *)o)->size : tally_tuple_size(o);
}

static void *seq_item(const void *o, size_t i)
{
    return tallyT_is(o, &tally_list_type) ? ((const list *)o)->items[i] : tally_tuple_get(o, i);
}

/* Appends the items of a list or tuple (l itself included): room first, measured
 * again after each growth (which may run user code), then a copy that allocates
 * nothing.  n is read before the copy starts, so extending l by itself doubles it. */
static int extend_seq(list *l, const void *src)
{
    for (;;) {
        size_t n = seq_size(src), need;
        if (__builtin_add_overflow(l->size, n, &need) || need > LIST_MAX_ITEMS)
            return too_many(l, "tally_list_extend");
        if (need <= l->cap)
            break;
        if (list_reserve(l, n, "tally_list_extend") != 0)
            return -1;
    }
    size_t n = seq_size(src);
    for (size_t i = 0; i < n; i++) {
        void *item = seq_item(src, i);
        if (item == NULL)
            continue; /* a slot of a tuple the collector cleared */
        tally_incref(item);
        l->items[l->size++] = item;
    }
    return 0;
}

/* Takes back what a failed extend appended: the list as it was. */
static void extend_undo(list *l, size_t old_size)
{
    while (l->size > old_size) {
        void *item = l->items[--l->size];
        tally_decref(item);
    }
}

/* Appends the items of any iterable one by one; on failure the list is restored. */
static int extend_iter(list *l, void *iterable)
{
    size_t old_size = l->size;
    void *it = tally_iter(iterable);
    if (it == NULL)
        return -1;
    int rc;
    void *item;
    while ((rc = tally_iter_next(it, &item)) == 1) {
        rc = tally_list_append(l, item);
        tally_decref(item);
        if (rc != 0)
            break;
    }
    tally_decref(it);
    if (rc != 0)
        extend_undo(l, old_size);
    return rc == 0 ? 0 : -1;
}

int tally_list_extend(void *l, void *iterable)
{
    list *lp = as_list(l, "tally_list_extend");
    if (lp == NULL)
        return -1;
    if (iterable == NULL)
        return null_object(lp, "tally_list_extend");
    if (is_seq(iterable))
        return extend_seq(lp, iterable);
    return extend_iter(lp, iterable);
}

void *tally_list_from(tally_rt *rt, void *iterable)
{
    list *l = tally_new(rt, &tally_list_type);
    if (l == NULL)
        return NULL;
    if (tally_list_extend(l, iterable) != 0) {
        tally_decref(l);
        return NULL;
    }
    return l;
}

/* ---- sort ------------------------------------------------------------------------ */

/* Runs this short are sorted by insertion before the merges. */
#define SORT_RUN 32

typedef struct sorter {
    tally_cmp_fn cmp;
    void *arg;
    void **tmp; /* room for the left run of any merge */
} sorter;

/* The default order: ints by value; strs by their bytes, a prefix first. */
static int cmp_ints(void *a, void *b, void *arg)
{
    (void)arg;
    int64_t x = tally_int_value(a), y = tally_int_value(b);
    return (x > y) - (x < y);
}

static int cmp_strs(void *a, void *b, void *arg)
{
    (void)arg;
    size_t na = tally_str_bytes(a), nb = tally_str_bytes(b);
    int r = memcmp(tally_str_data(a), tally_str_data(b), na < nb ? na : nb);
    if (r != 0)
        return r;
    return (na > nb) - (na < nb);
}

static int cannot_order(const list *l, const void *a, const void *b)
{
    const char *na = tally_type_of(a)->name, *nb = tally_type_of(b)->name;
    tallyB_error_set(err_of(l), TALLY_EINVAL,
                     "tally_list_sort: no default order between '%s' and '%s' items",
                     na ? na : "object", nb ? nb : "object");
    return -1;
}

/* The default comparison for items[0..n) (n >= 2): all ints or all strs; else NULL
 * with the error set. */
static tally_cmp_fn default_cmp(const list *l, void *const *items, size_t n)
{
    int (*is)(const void *) = tally_is_int(items[0]) ? tally_is_int
                              : tally_is_str(items[0]) ? tally_is_str : NULL;
    for (size_t i = 0; i < n; i++)
        if (is == NULL || !is(items[i])) {
            cannot_order(l, items[0], items[i]);
            return NULL;
        }
    return is == tally_is_int ? cmp_ints : cmp_strs;
}

/* Stable: an item moves left only past strictly greater ones. */
static void insertion_sort(const sorter *s, void **a, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        void *x = a[i];
        size_t j = i;
        for (; j > 0 && s->cmp(x, a[j - 1], s->arg) < 0; j--)
            a[j] = a[j - 1];
        a[j] = x;
    }
}

/* Merges the sorted runs a[0..mid) and a[mid..n) in place, through s->tmp.  Stable:
 * on ties the left run's item goes first. */
static void merge(const sorter *s, void **a, size_t mid, size_t n)
{
    if (s->cmp(a[mid], a[mid - 1], s->arg) >= 0)
        return; /* already in order: sorted input costs one comparison per run */
    memcpy(s->tmp, a, mid * sizeof *a);
    size_t i = 0, j = mid, k = 0;
    while (i < mid && j < n)
        a[k++] = s->cmp(a[j], s->tmp[i], s->arg) < 0 ? a[j++] : s->tmp[i++];
    while (i < mid)
        a[k++] = s->tmp[i++];
}

static void merge_sort(const sorter *s, void **a, size_t n)
{
    for (size_t lo = 0; lo < n; lo += SORT_RUN)
        insertion_sort(s, a + lo, n - lo < SORT_RUN ? n - lo : SORT_RUN);
    for (size_t width = SORT_RUN; width < n; width *= 2)
        for (size_t lo = 0; lo < n && n - lo > width; lo += 2 * width) {
            size_t len = n - lo < 2 * width ? n - lo : 2 * width;
            merge(s, a + lo, width, len);
        }
}

/* Puts the sorted array back.  If the comparison put items into the list during
 * the sort, they are dropped and the sort fails, as CPython's does. */
static int sort_restore(list *l, void **items, size_t n, size_t cap)
{
    void **added = l->items;
    size_t m = l->size;
    l->items = items;
    l->size = n;
    l->cap = cap;
    if (added == NULL)
        return 0;
    while (m > 0)
        tally_decref(added[--m]);
    tallyH_buf_free(tallyT_heap(l), added); /* an items array */
    tallyB_error_set(err_of(l), TALLY_EINVAL, "tally_list_sort: list modified during sort");
    return -1;
}

int tally_list_sort(void *l, tally_cmp_fn cmp, void *arg)
{
    list *lp = as_list(l, "tally_list_sort");
    if (lp == NULL)
        return -1;
    /* The buffer first: its allocation may run user code that resizes the list. */
    void **tmp = NULL;
    size_t tmp_n = 0;
    while (lp->size >= 2 && tmp_n < lp->size) {
        if (tmp != NULL)
            tally_free(rt_of(lp), tmp);
        tmp_n = lp->size;
        if ((tmp = tally_malloc(rt_of(lp), tmp_n * sizeof *tmp)) == NULL)
            return -1;
    }
    if (lp->size < 2) {
        if (tmp != NULL)
            tally_free(rt_of(lp), tmp);
        return 0;
    }
    /* Detached while sorting: a comparison sees an empty list. */
    void **items = lp->items;
    size_t n = lp->size, cap = lp->cap;
    lp->items = NULL;
    lp->size = lp->cap = 0;
    sorter s = {cmp, arg, tmp};
    if (s.cmp == NULL && (s.cmp = default_cmp(lp, items, n)) == NULL) {
        sort_restore(lp, items, n, cap);
        tally_free(rt_of(lp), tmp);
        return -1;
    }
    merge_sort(&s, items, n);
    tally_free(rt_of(lp), tmp);
    return sort_restore(lp, items, n, cap);
}
