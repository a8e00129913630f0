/* annotate.c - out-of-line helpers for the tool annotations (see annotate.h). */
#include "base/annotate.h"

/* Must not be inlined into instrumented code: the attribute would be lost. */
__attribute__((noinline, no_sanitize_address)) uintptr_t tallyB_peek_word(const void *p)
{
    uintptr_t v;
#if TALLY_VALGRIND
    VALGRIND_DISABLE_ERROR_REPORTING;
    v = *(const volatile uintptr_t *)p;
    VALGRIND_ENABLE_ERROR_REPORTING;
    /* Bytes of a block the user never wrote are undefined to memcheck; Tally only
     * compares the word with a tag, which is sound whatever its value. */
    VALGRIND_MAKE_MEM_DEFINED(&v, sizeof v);
#else
    v = *(const volatile uintptr_t *)p;
#endif
    return v;
}
