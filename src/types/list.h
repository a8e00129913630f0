/* list.h - the layout of a list and of its iterator, shared by list.c and by the
 * iteration fast path in protocol.c (tally_next over a list, the commonest loop,
 * runs there without a call through the type's ops). */
#ifndef TALLY_TYPES_LIST_H
#define TALLY_TYPES_LIST_H

#include "types/types.h"

typedef struct tallyT_list {
    size_t size;     /* items in use */
    size_t cap;      /* items the array holds */
    void **items;    /* tally_malloc'd array, or NULL while cap is 0 */
    int repr_active; /* a repr of this list is in progress: show "[...]" */
} tallyT_list;

typedef struct tallyT_list_iter {
    tallyT_list *seq; /* NULL once exhausted */
    size_t index;     /* next item to hand out; checked against the size every time */
} tallyT_list_iter;

/* The next item of a list iterator, borrowed, with the iterator advanced past it;
 * NULL when the fast path does not apply (the end: the iterator's own next ends
 * it properly), with the iterator unchanged.  The caller takes the reference. */
TALLY_INLINE void *tallyT_list_iter_take(void *self)
{
    tallyT_list_iter *it = self;
    tallyT_list *l = it->seq;
    if (l == NULL || it->index >= l->size)
        return NULL;
    return l->items[it->index++];
}

#endif /* TALLY_TYPES_LIST_H */
