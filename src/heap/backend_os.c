/* backend_os.c - the hosted backend: memory straight from the OS with mmap.
 *
 * map() must return memory aligned to `align` (an arena's own size, so that arenas
 * can be recognised by their address).  mmap only promises page alignment, so we
 * map `size + align` bytes and unmap the excess on both sides: three system calls
 * per arena, and arenas are large and long-lived.  purge() uses MADV_DONTNEED, which
 * drops the pages at once (RSS falls immediately) and makes them read back as zeros,
 * which the heap relies on to recognise free pools.
 *
 * remap() (Linux only; NULL elsewhere, where huge blocks are moved by copying) is
 * mremap: in place without MREMAP_MAYMOVE, or onto a target the heap mapped
 * itself with MREMAP_MAYMOVE | MREMAP_FIXED.  The heap maps the target rather than
 * letting the kernel choose, because the block must start on an arena boundary
 * inside the heap's ownership windows.  The kernel unmaps a fixed target before
 * it tries the move, so a failed move maps the target again (without replacing
 * anything another thread might have put there meanwhile) to keep the contract:
 * on failure nothing changed.
 */
#define _GNU_SOURCE
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

#ifdef __linux__
/* Maps the (fresh, zero) target range again after a failed fixed move. */
static void os_restore_target(void *target, size_t size)
{
    void *m = mmap(target, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
    if (m != MAP_FAILED && m != target) /* a kernel before 4.17 took it as a hint */
        munmap(m, size);
}

static int os_remap(void *ctx, void *old, size_t old_size, size_t new_size, void *target)
{
    (void)ctx;
    size_t page = tallyH_page_size();
    old_size = TALLY_ALIGN_UP(old_size, page);
    new_size = TALLY_ALIGN_UP(new_size, page);
    if (target == NULL)
        return mremap(old, old_size, new_size, 0) == MAP_FAILED ? -1 : 0;
    if (mremap(old, old_size, new_size, MREMAP_MAYMOVE | MREMAP_FIXED, target) != MAP_FAILED)
        return 0;
    os_restore_target(target, new_size);
    return -1;
}
#define OS_REMAP os_remap
#else
#define OS_REMAP NULL
#endif

static const tally_backend os_backend = {os_map, os_unmap, os_purge, NULL, OS_REMAP};

const tally_backend *tallyH_backend_os(void)
{
    return &os_backend;
}
