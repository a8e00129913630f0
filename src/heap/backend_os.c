/* backend_os.c - the hosted backend: memory straight from the OS with mmap.
 *
 * map() must return memory aligned to `align` (an arena's own size, so that arenas
 * can be recognised by their address).  mmap only promises page alignment, so we
 * map `size + align` bytes and unmap the excess on both sides: three system calls
 * per arena, and arenas are large and long-lived.  purge() uses MADV_DONTNEED, which
 * drops the pages at once (RSS falls immediately) and makes them read back as zeros,
 * which the heap relies on to recognise free pools.
 */
#define _DEFAULT_SOURCE
#include "heap/heap.h"

#include <sys/mman.h>
#include <unistd.h>

size_t tallyH_page_size(void)
{
    long ps = sysconf(_SC_PAGESIZE);
    return ps > 0 ? (size_t)ps : 4096;
}

static void *os_map(void *ctx, size_t size, size_t align)
{
    (void)ctx;
    size_t page = tallyH_page_size();
    if (align < page)
        align = page;
    size = TALLY_ALIGN_UP(size, page);
    if (size + align < size)
        return NULL;
    void *raw = mmap(NULL, size + align, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    uintptr_t start = (uintptr_t)raw;
    uintptr_t aligned = TALLY_ALIGN_UP(start, align);
    if (aligned > start)
        munmap(raw, aligned - start);
    uintptr_t end = start + size + align;
    if (end > aligned + size)
        munmap((void *)(aligned + size), end - (aligned + size));
    return (void *)aligned;
}

static void os_unmap(void *ctx, void *addr, size_t size)
{
    (void)ctx;
    munmap(addr, TALLY_ALIGN_UP(size, tallyH_page_size()));
}

static void os_purge(void *ctx, void *addr, size_t size)
{
    (void)ctx;
    madvise(addr, size, MADV_DONTNEED);
}

static const tally_backend os_backend = {os_map, os_unmap, os_purge, NULL};

const tally_backend *tallyH_backend_os(void)
{
    return &os_backend;
}
