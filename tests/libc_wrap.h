/* libc_wrap.h - counting wrappers around the system allocator, for tests linked
 * with -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=posix_memalign,
 * --wrap=aligned_alloc,--wrap=mmap (see tests/CMakeLists.txt): while g_counting is
 * 1, every call the program makes to these functions adds one to g_libc_calls.
 * A fixed-buffer runtime must leave it at 0.  Include it in one file per test.
 */
#ifndef TALLY_TEST_LIBC_WRAP_H
#define TALLY_TEST_LIBC_WRAP_H

#include <stddef.h>
#include <sys/mman.h>
#include <sys/types.h>

/* volatile: the compiler must not drop stores around calls it considers pure
 * allocator builtins. */
static volatile int g_counting;
static volatile unsigned long g_libc_calls;

void *__real_malloc(size_t n);
void *__real_calloc(size_t c, size_t n);
void *__real_realloc(void *p, size_t n);
int __real_posix_memalign(void **out, size_t align, size_t n);
void *__real_aligned_alloc(size_t align, size_t n);
void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t c, size_t n);
void *__wrap_realloc(void *p, size_t n);
int __wrap_posix_memalign(void **out, size_t align, size_t n);
void *__wrap_aligned_alloc(size_t align, size_t n);
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);

void *__wrap_malloc(size_t n)
{
    g_libc_calls += g_counting;
    return __real_malloc(n);
}
void *__wrap_calloc(size_t c, size_t n)
{
    g_libc_calls += g_counting;
    return __real_calloc(c, n);
}
void *__wrap_realloc(void *p, size_t n)
{
    g_libc_calls += g_counting;
    return __real_realloc(p, n);
}
int __wrap_posix_memalign(void **out, size_t align, size_t n)
{
    g_libc_calls += g_counting;
    return __real_posix_memalign(out, align, n);
}
void *__wrap_aligned_alloc(size_t align, size_t n)
{
    g_libc_calls += g_counting;
    return __real_aligned_alloc(align, n);
}
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    g_libc_calls += g_counting;
    return __real_mmap(addr, len, prot, flags, fd, off);
}

#endif /* TALLY_TEST_LIBC_WRAP_H */
