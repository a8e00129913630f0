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
 *
 * Transparent huge pages.  A mapping of TALLY_THP_MIN bytes or more (only huge
 * blocks are that big) is aligned to 2 MiB and advised MADV_HUGEPAGE, and so is
 * one that a remap makes that big (a move keeps the old mapping's advice, not the
 * target's).  The kernel then fills each untouched, fully covered 2 MiB stretch
 * with one huge page on first touch: in this project's VM, writing 8 MiB that way
 * takes about 0.8 ms against 3.8 ms in 2,048 faults of 4 KiB pages.  The price is
 * that a touched stretch is resident whole, at most 2 MiB (less one page) per
 * block, and only for blocks of 2 MiB or more: at most the block's own size.
 * Memory that was already touched keeps its small pages.  With the kernel's
 * setting at "never" the advice does nothing; tally_config.huge_pages =
 * TALLY_HUGE_PAGES_OFF (or TALLY_HUGE_PAGES=0 in the environment) picks the
 * backend without it.
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

#define THP_SIZE ((size_t)2 << 20)

/* The backend's ctx: whether to use huge pages. */
typedef struct os_policy {
    bool huge_pages;
} os_policy;

static bool wants_thp(const void *ctx, size_t size)
{
    const os_policy *pol = ctx;
    return pol->huge_pages && size > TALLY_THP_MIN;
}

/* What a request of size bytes really maps: whole pages, and whole 2 MiB stretches
 * when it gets huge pages.  A function of the size alone, so that unmap and remap,
 * which are given the size the heap asked for, find the same mapping. */
static size_t mapped_size(const void *ctx, size_t size)
{
    size = TALLY_ALIGN_UP(size, tallyH_page_size());
    return wants_thp(ctx, size) ? TALLY_ALIGN_UP(size, THP_SIZE) : size;
}

/* Advises huge pages for the whole mapping [addr, addr + size) (2 MiB-aligned, a
 * whole number of 2 MiB).  Advising a part would split the mapping, and mremap
 * refuses (EFAULT) a range that spans two. */
static void advise_thp(void *addr, size_t size)
{
#ifdef MADV_HUGEPAGE
    madvise(addr, size, MADV_HUGEPAGE); /* advice: a failure changes nothing */
#else
    (void)addr;
    (void)size;
#endif
}

static void *os_map(void *ctx, size_t size, size_t align)
{
    bool thp = wants_thp(ctx, size);
    if (thp && align < THP_SIZE)
        align = THP_SIZE;
    size_t page = tallyH_page_size();
    if (align < page)
        align = page;
    size = mapped_size(ctx, size);
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
    if (thp)
        advise_thp((void *)aligned, size);
    return (void *)aligned;
}

static void os_unmap(void *ctx, void *addr, size_t size)
{
    munmap(addr, mapped_size(ctx, size));
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

/* A resize within the same mapped size costs no system call: a block growing by
 * small steps inside its last 2 MiB stretch only moves its end. */
static int os_remap(void *ctx, void *old, size_t old_size, size_t new_size, void *target)
{
    old_size = mapped_size(ctx, old_size);
    new_size = mapped_size(ctx, new_size);
    if (target == NULL) {
        if (new_size != old_size && mremap(old, old_size, new_size, 0) == MAP_FAILED)
            return -1;
    } else if (mremap(old, old_size, new_size, MREMAP_MAYMOVE | MREMAP_FIXED, target) == MAP_FAILED) {
        os_restore_target(target, new_size);
        return -1;
    }
    if (wants_thp(ctx, new_size) && (target != NULL || !wants_thp(ctx, old_size)))
        advise_thp(target ? target : old, new_size); /* a move keeps the old advice */
    return 0;
}
#define OS_REMAP os_remap
#else
#define OS_REMAP NULL
#endif

static const os_policy small_pages = {false}, huge_pages = {true};
static const tally_backend os_backend = {os_map, os_unmap, os_purge, (void *)&small_pages, OS_REMAP};
static const tally_backend os_backend_thp = {os_map, os_unmap, os_purge, (void *)&huge_pages,
                                             OS_REMAP};

static bool wants_huge_pages(const tally_config *cfg)
{
    if (cfg->huge_pages == TALLY_HUGE_PAGES_AUTO)
        return cfg->max_bytes == 0;
    return cfg->huge_pages == TALLY_HUGE_PAGES_ON;
}

const tally_backend *tallyH_backend_for(const tally_config *cfg)
{
    if (cfg->backend != NULL)
        return cfg->backend;
    return wants_huge_pages(cfg) ? &os_backend_thp : &os_backend;
}
