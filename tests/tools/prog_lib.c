/* prog_lib.c - a library prog_alloc loads with dlopen: its allocation must be
 * symbolised (the interposer learns of the module after start). */
#include <stdlib.h>

/* Exported although the tree builds with hidden visibility. */
__attribute__((visibility("default"))) void *tally_test_lib_alloc(size_t n);

void *tally_test_lib_alloc(size_t n)
{
    return malloc(n); /* LIB_LINE */
}
