/* dump.c - writes a snapshot to a file in the capture format's snapshot variant
 * (capture_format.h, docs/capture-format.md), which load.c and the tools read.
 *
 * The file is the header page (flag TALLY_CAPF_SNAPSHOT, the traceback limit in
 * the frames field, the sampling mean in the sample field) and then chunks of
 * records, in this order: with native frames, a MODULE record per executable
 * segment of every object loaded in this process (dl_iterate_phdr: path, load
 * bias, GNU build-id), so that the tools can symbolise the addresses later; for
 * site i, LOCATION i + 1 (file, line) and STACK i + 1 (its native frames, or the
 * location alone, and its location as the trailing field); an ALLOC record per
 * trace (sequence number, a synthetic address equal to it, size, stack); and the
 * SNAPSHOT record with the counts, last, so that a loader can tell a whole dump
 * from a cut one.  A record never crosses a chunk: the chunk size is the smallest
 * power of two (4 KiB at least) that holds the largest record, and a chunk's
 * unused tail is zero.  A snapshot loaded from another process's dump keeps its
 * frames but gets no MODULE records (this process's modules do not describe them).
 *
 * The bytes go to a new file beside path (path.tmp<pid>-<k>, created exclusively)
 * that is renamed over path once written and closed: rename is atomic, so path
 * holds the old file or the whole new one, never a part.  Working memory (one
 * chunk and one record buffer) comes from the runtime's heap, through the quiet
 * path like the snapshot itself.
 */
#define _GNU_SOURCE
#include "trace/trace.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "trace/build_id.h"

#include "runtime/runtime.h"
#include "trace/capture_format.h"

/* Module paths longer than this are cut (no real path is). */
#define MODULE_PATH_MAX 4096
/* The largest chunk the format allows. */
#define CHUNK_MAX (1u << 24)

/* The writer: a chunk being filled and the file it goes to. */
typedef struct dump_writer {
    tally_rt *rt;
    const char *path;        /* the destination, for messages */
    const char *tmp;         /* the file being written */
    int fd;
    uint8_t *chunk;          /* csize bytes, then the record buffer (csize bytes) */
    uint8_t *rec;
    uint32_t csize;
    size_t used;             /* bytes of chunk filled */
    bool failed;             /* an error is set; later calls do nothing */
    uint64_t seq;            /* ALLOC records written */
} dump_writer;

static void io_error(dump_writer *w, const char *what, const char *file, int err)
{
    if (!w->failed)
        tallyB_error_set(&w->rt->heap.err, TALLY_EIO, "tally_trace_snapshot_dump: %s %s: %s",
                         what, file, strerror(err));
    w->failed = true;
}

static void write_all(dump_writer *w, const uint8_t *p, size_t n)
{
    while (n > 0 && !w->failed) {
        ssize_t k = write(w->fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            io_error(w, "cannot write", w->tmp, k < 0 ? errno : ENOSPC);
            return;
        }
        p += k;
        n -= (size_t)k;
    }
}

/* Writes the chunk (its tail zero) and starts the next one. */
static void flush_chunk(dump_writer *w)
{
    memset(w->chunk + w->used, 0, w->csize - w->used);
    write_all(w, w->chunk, w->csize);
    w->used = 0;
}

/* Appends a record whose payload is w->rec[0, len). */
static void emit(dump_writer *w, uint8_t type, size_t len)
{
    size_t need = 1 + tally_cap_varint_len(len) + len;
    if (w->used + need > w->csize)
        flush_chunk(w);
    uint8_t *p = w->chunk + w->used;
    *p++ = type;
    p = tally_cap_put_varint(p, len);
    memcpy(p, w->rec, len);
    w->used += need;
}

/* ---- modules (dl_iterate_phdr) -------------------------------------------------- */

/* The path of a loaded object; the main program has an empty name. */
static const char *module_path(const struct dl_phdr_info *info, char *buf, size_t cap)
{
    if (info->dlpi_name != NULL && info->dlpi_name[0] != '\0')
        return info->dlpi_name;
    ssize_t n = readlink("/proc/self/exe", buf, cap - 1);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

static int emit_module(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    dump_writer *w = arg;
    char buf[MODULE_PATH_MAX];
    const char *path = module_path(info, buf, sizeof buf);
    size_t plen = strnlen(path, MODULE_PATH_MAX);
    const uint8_t *id = NULL;
    size_t nid = tally_build_id(info, &id);
    for (int i = 0; i < info->dlpi_phnum && !w->failed; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        uint64_t lo = info->dlpi_addr + ph->p_vaddr;
        uint8_t *p = w->rec;
        p = tally_cap_put_varint(p, lo);
        p = tally_cap_put_varint(p, lo + ph->p_memsz);
        p = tally_cap_put_varint(p, info->dlpi_addr);
        p = tally_cap_put_bytes(p, path, plen);
        p = tally_cap_put_bytes(p, id, nid);
        p = tally_cap_put_varint(p, 0);
        emit(w, TALLY_REC_MODULE, (size_t)(p - w->rec));
    }
    return w->failed;
}

/* ---- the records ------------------------------------------------------------------ */

static const char *site_file(const tallyM_site *x)
{
    return x->file ? x->file : TALLY_TRACE_UNKNOWN;
}

/* The largest record a snapshot's sites need (payload plus type and length). */
static size_t largest_record(const tally_trace_snapshot *snap)
{
    size_t most = 64; /* ALLOC and SNAPSHOT records */
    if (snap->nframes != 0 && !snap->loaded)
        most = 11 + 4 * 10 + 2 + 64 + MODULE_PATH_MAX; /* a MODULE record */
    for (size_t i = 0; i < snap->nsites; i++) {
        const tallyM_site *x = &snap->sites[i];
        size_t loc = 11 + 10 + 10 + strlen(site_file(x)) + 10 + 1;
        size_t stack = 11 + 10 + 1 + 10 + 10 * (size_t)(x->nframes ? x->nframes : 1) + 10;
        most = loc > most ? loc : most;
        most = stack > most ? stack : most;
    }
    return most;
}

static void emit_site(dump_writer *w, const tally_trace_snapshot *snap, size_t i)
{
    const tallyM_site *x = &snap->sites[i];
    const char *file = site_file(x);
    uint64_t id = i + 1;
    uint8_t *p = w->rec;
    p = tally_cap_put_varint(p, id);
    p = tally_cap_put_bytes(p, file, strlen(file));
    p = tally_cap_put_varint(p, (uint64_t)(x->line < 0 ? 0 : x->line));
    p = tally_cap_put_bytes(p, "", 0); /* function: not known */
    emit(w, TALLY_REC_LOCATION, (size_t)(p - w->rec));

    p = w->rec;
    p = tally_cap_put_varint(p, id);
    if (x->nframes == 0) {
        *p++ = TALLY_STACK_LOCATION;
        p = tally_cap_put_varint(p, 1);
        p = tally_cap_put_varint(p, id);
    } else {
        *p++ = TALLY_STACK_NATIVE;
        p = tally_cap_put_varint(p, x->nframes);
        for (uint32_t k = 0; k < x->nframes; k++)
            p = tally_cap_put_varint(p, (uint64_t)(uintptr_t)snap->frames[x->frames + k]);
    }
    p = tally_cap_put_varint(p, id); /* the site's location (format 1.1) */
    emit(w, TALLY_REC_STACK, (size_t)(p - w->rec));
}

static void emit_trace(dump_writer *w, const tallyM_strace *t)
{
    uint64_t seq = ++w->seq;
    uint8_t *p = w->rec;
    p = tally_cap_put_varint(p, seq);
    p = tally_cap_put_varint(p, seq); /* no address in a snapshot: a unique stand-in */
    p = tally_cap_put_varint(p, t->size);
    p = tally_cap_put_varint(p, (uint64_t)t->site + 1);
    *p++ = TALLY_AK_MALLOC;
    if (t->domain != 0) /* a trailing field (format 1.1): absent means domain 0 */
        p = tally_cap_put_varint(p, t->domain);
    emit(w, TALLY_REC_ALLOC, (size_t)(p - w->rec));
}

static void emit_end(dump_writer *w, const tally_trace_snapshot *snap)
{
    size_t total = 0;
    tally_trace_snapshot_count(snap, &total);
    uint8_t *p = w->rec;
    p = tally_cap_put_varint(p, snap->ntraces);
    p = tally_cap_put_varint(p, total);
    p = tally_cap_put_varint(p, snap->nsites);
    p = tally_cap_put_varint(p, snap->nsites);
    emit(w, TALLY_REC_SNAPSHOT, (size_t)(p - w->rec));
}

static void write_header(dump_writer *w, const tally_trace_snapshot *snap)
{
    uint8_t *h = w->chunk; /* the header page fits: csize >= 4096 */
    struct timespec ts = {0, 0};
    clock_gettime(CLOCK_REALTIME, &ts);
    memset(h, 0, TALLY_CAP_HEADER_SIZE);
    tally_cap_write_header(h, w->csize, (uint32_t)snap->limit, snap->sample, (uint64_t)getpid(),
                           (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
    tally_cap_header_set_flags(h, TALLY_CAPF_SNAPSHOT);
    write_all(w, h, TALLY_CAP_HEADER_SIZE);
}

static void write_snapshot(dump_writer *w, const tally_trace_snapshot *snap)
{
    write_header(w, snap);
    if (snap->nframes != 0 && !snap->loaded)
        dl_iterate_phdr(emit_module, w);
    for (size_t i = 0; i < snap->nsites && !w->failed; i++)
        emit_site(w, snap, i);
    for (size_t i = 0; i < snap->ntraces && !w->failed; i++)
        emit_trace(w, &snap->traces[i]);
    emit_end(w, snap);
    flush_chunk(w);
}

/* ---- the file ------------------------------------------------------------------- */

/* Creates the temporary file beside w->path in tmp (cap bytes): 0, or -1. */
static int open_temp(dump_writer *w, char *tmp, size_t cap)
{
    w->tmp = w->path;
    for (int k = 0; k < 100; k++) {
        snprintf(tmp, cap, "%s.tmp%ld-%d", w->path, (long)getpid(), k);
        w->fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (w->fd >= 0) {
            w->tmp = tmp;
            return 0;
        }
        if (errno != EEXIST)
            break;
    }
    io_error(w, "cannot create a file beside", w->path, errno);
    return -1;
}

/* Writes, closes and renames; removes the temporary file on any failure. */
static void write_file(dump_writer *w, const tally_trace_snapshot *snap, char *tmp, size_t cap)
{
    if (open_temp(w, tmp, cap) != 0)
        return;
    write_snapshot(w, snap);
    if (close(w->fd) != 0)
        io_error(w, "cannot write", tmp, errno);
    if (!w->failed && rename(tmp, w->path) != 0)
        io_error(w, "cannot rename the new dump to", w->path, errno);
    if (w->failed)
        unlink(tmp);
}

static uint32_t chunk_size_for(size_t record)
{
    uint32_t c = 4096;
    while (c < record && c < CHUNK_MAX)
        c *= 2;
    return c;
}

int tally_trace_snapshot_dump(const tally_trace_snapshot *snap, const char *path)
{
    tally_rt *rt = snap->rt;
    if (path == NULL || path[0] == '\0') {
        tallyB_error_set(&rt->heap.err, TALLY_EINVAL, "tally_trace_snapshot_dump: no path");
        return -1;
    }
    size_t record = largest_record(snap);
    if (record > CHUNK_MAX) {
        tallyB_error_set(&rt->heap.err, TALLY_EINVAL,
                         "tally_trace_snapshot_dump: a file name too long for the format");
        return -1;
    }
    dump_writer w = {.rt = rt, .path = path, .fd = -1, .csize = chunk_size_for(record)};
    size_t tmpcap = strlen(path) + 40;
    uint8_t *mem = tallyH_malloc_quiet(&rt->heap, 2 * (size_t)w.csize + tmpcap);
    if (mem == NULL) {
        tallyB_error_set(&rt->heap.err, TALLY_ENOMEM, "tally_trace_snapshot_dump: no memory");
        return -1;
    }
    w.chunk = mem;
    w.rec = mem + w.csize;
    write_file(&w, snap, (char *)(mem + 2 * (size_t)w.csize), tmpcap);
    tallyH_free_quiet(&rt->heap, mem);
    return w.failed ? -1 : 0;
}
