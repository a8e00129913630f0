/* runtime.c - opening and closing runtimes; configuration; the error API.
 *
 * A hosted runtime lives in a mapping of its own from the backend, followed by the
 * root of the heap's ownership radix (lazily touched, so it costs address space,
 * not memory).  A fixed-buffer runtime lives at the start of the caller's buffer,
 * followed by the region header and its bitmaps; the rest of the buffer, aligned
 * to the pool size, is the heap.  Either way nothing is allocated with malloc and
 * nothing is global: the runtime is the only state.
 */
#include "runtime/runtime.h"

#include <stdarg.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t tally_fixed_min(void)
{
    /* The runtime, the region header and its maps, worst-case alignment to a pool,
     * and room for two pools. */
    return TALLY_ALIGN_UP(sizeof(struct tally_rt), 64) + 256 + 3 * TALLY_POOL_SIZE;
}

void tally_config_init(tally_config *cfg)
{
    if (cfg)
        memset(cfg, 0, sizeof *cfg);
}

/* open() has no runtime to hold its error yet: set errno and tell the reporter. */
static tally_rt *open_failed(const tally_config *cfg, int err, const char *why)
{
    if (cfg->report)
        cfg->report(cfg->report_arg, why);
    errno = err;
    return NULL;
}

/* TALLY_DEBUG=1|2 raises the debug level, as PYTHONMALLOC=debug does. */
static int debug_from_env(int level)
{
    const char *env = getenv("TALLY_DEBUG");
    if (env == NULL || env[0] < '0' || env[0] > '2' || env[1] != '\0')
        return level;
    int wanted = env[0] - '0';
    return wanted > level ? wanted : level;
}

/* TALLY_LEAKS=1 asks for the leak report at close, as report_leaks does. */
static int leaks_from_env(int wanted)
{
    const char *env = getenv("TALLY_LEAKS");
    if (env == NULL || env[0] != '1' || env[1] != '\0')
        return wanted;
    return 1;
}

/* TALLY_HUGE_PAGES=0 turns the OS backend's huge pages off, as huge_pages does. */
static int huge_pages_from_env(int setting)
{
    const char *env = getenv("TALLY_HUGE_PAGES");
    if (env == NULL || env[0] != '0' || env[1] != '\0')
        return setting;
    return TALLY_HUGE_PAGES_OFF;
}

/* The layers above the heap.  Nothing here allocates: the collector takes a
 * handle slot (the heap always has one at this point), the built-in types take
 * the first entries of the type table, which live in the runtime. */
static void layers_init(tally_rt *rt)
{
    tallyO_init(rt);
    int rc = tallyG_init(rt);
    rc |= tallyT_init(rt);
    tallyM_init(rt);
    (void)rc;
    TALLY_ASSERT(rc == 0);
}

static tally_rt *open_hosted(const tally_config *cfg)
{
    const tally_backend *be = tallyH_backend_for(cfg);
    if (be->map == NULL || be->unmap == NULL)
        return open_failed(cfg, EINVAL, "tally_open: the backend needs map and unmap functions");
    size_t head = TALLY_ALIGN_UP(sizeof(struct tally_rt), 4096);
    size_t size = head + tallyH_owner_map_bytes();
    if (cfg->max_bytes != 0 && cfg->max_bytes < size)
        return open_failed(cfg, EINVAL, "tally_open: max_bytes is below the runtime's own footprint");
    if (cfg->fail_backend_request == 1)
        return open_failed(cfg, ENOMEM, "tally_open: injected fault: backend request 1 failed");
    uint8_t *m = be->map(be->ctx, size, 4096);
    if (m == NULL)
        return open_failed(cfg, ENOMEM, "tally_open: the backend could not map the runtime");
    tally_rt *rt = (tally_rt *)m;
    tallyH_heap *h = &rt->heap;
    tallyH_init(h, cfg);
    layers_init(rt);
    h->owner_map = (uint64_t *)(void *)(m + head);
    rt->map_size = size;
    h->nmaps = 1;
    h->reserved = h->reserved_peak = size;
    h->fault_backend.requests = 1;
    h->fault_backend.countdown = cfg->fail_backend_request > 1 ? cfg->fail_backend_request - 1 : 0;
    return rt;
}

static tally_rt *open_fixed(const tally_config *cfg)
{
    if (cfg->memory_size < tally_fixed_min())
        return open_failed(cfg, EINVAL, "tally_open: the fixed buffer is smaller than tally_fixed_min()");
    uintptr_t start = TALLY_ALIGN_UP((uintptr_t)cfg->memory, 64);
    uintptr_t end = (uintptr_t)cfg->memory + cfg->memory_size;
    tally_rt *rt = (tally_rt *)start;
    memset(rt, 0, sizeof *rt);
    tallyH_heap *h = &rt->heap;
    h->fixed = 1;
    tallyH_init(h, cfg);
    uint8_t *after = (uint8_t *)(start + sizeof *rt);
    uint8_t *prefix_end;
    if (tallyH_region_fixed_init(h, after, end - (uintptr_t)after, &prefix_end) == NULL)
        return open_failed(cfg, EINVAL, "tally_open: the fixed buffer holds no whole pool");
    layers_init(rt); /* after the region: it may move the handle slot table */
    h->fault_backend.countdown = cfg->fail_backend_request;
    rt->memory = cfg->memory;
    rt->memory_size = cfg->memory_size;
    return rt;
}

tally_rt *tally_open(const tally_config *cfg_in)
{
    tally_config cfg;
    if (cfg_in)
        cfg = *cfg_in;
    else
        tally_config_init(&cfg);
    cfg.debug = debug_from_env(cfg.debug);
    cfg.report_leaks = leaks_from_env(cfg.report_leaks);
    cfg.huge_pages = huge_pages_from_env(cfg.huge_pages);
    if (cfg.debug < TALLY_DEBUG_OFF || cfg.debug > TALLY_DEBUG_FULL)
        return open_failed(&cfg, EINVAL, "tally_open: debug level must be 0, 1 or 2");
    if (cfg.memory == NULL && cfg.memory_size != 0)
        return open_failed(&cfg, EINVAL, "tally_open: memory_size given without memory");
    tally_rt *rt = cfg.memory ? open_fixed(&cfg) : open_hosted(&cfg);
    if (rt != NULL)
        rt->leaks_at_close = cfg.report_leaks != 0;
    return rt;
}

void tally_close(tally_rt *rt)
{
    if (rt == NULL)
        return;
    tallyH_heap *h = &rt->heap;
    if (rt->leaks_at_close) /* while the heap and its objects are still there */
        tallyM_leaks_at_close(rt);
    tallyH_destroy(h);
    if (h->fixed) {
        /* The buffer is the caller's again: no poison or tool state may remain. */
        void *mem = rt->memory;
        size_t size = rt->memory_size;
        tallyB_anno_access(mem, size);
        return;
    }
    tally_backend be = h->backend;
    TALLY_ASAN_UNPOISON(rt, rt->map_size);
    be.unmap(be.ctx, rt, rt->map_size);
}

tally_error tally_last_error(const tally_rt *rt)
{
    return rt ? rt->heap.err.code : TALLY_EINVAL;
}

const char *tally_last_error_message(const tally_rt *rt)
{
    if (rt == NULL)
        return "no runtime";
    return rt->heap.err.code == TALLY_OK ? "" : rt->heap.err.message;
}

void tally_clear_error(tally_rt *rt)
{
    if (rt) {
        rt->heap.err.code = TALLY_OK;
        rt->heap.err.message[0] = '\0';
    }
}

void tally_set_error(tally_rt *rt, tally_error code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char message[TALLY_ERRMSG_MAX];
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    tallyB_error_set(&rt->heap.err, code, "%s", message);
}

const char *tally_strerror(tally_error code)
{
    switch (code) {
    case TALLY_OK: return "success";
    case TALLY_ENOMEM: return "out of memory";
    case TALLY_ELIMIT: return "memory limit reached";
    case TALLY_EINVAL: return "invalid argument";
    case TALLY_EOVERFLOW: return "size overflow";
    case TALLY_EDOUBLEFREE: return "double free";
    case TALLY_EFOREIGN: return "foreign pointer";
    case TALLY_ECORRUPT: return "heap corruption";
    case TALLY_EFAULT: return "injected fault";
    case TALLY_EDEAD: return "use of a dead object";
    case TALLY_EBUSY: return "a collection is running";
    case TALLY_EIO: return "input/output error";
    case TALLY_EFORMAT: return "bad file format";
    }
    return "unknown error";
}

void tally_report_discard(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

const char *tally_version(void)
{
    return TALLY_VERSION_STRING;
}
