/* load.c - reads a snapshot dump (dump.c; capture_format.h) back into a snapshot.
 *
 * The file is read into one block of the runtime's heap (its size is the bound on
 * everything the loader takes), then walked twice with the same code.  The first
 * walk validates every record completely and counts: locations, stacks (which
 * become the sites), native frames, traces and the bytes of the file names.  The
 * second walk, over records that are now known to be good, fills a snapshot made
 * for exactly those counts (tallyM_snap_alloc, with a strings section for the
 * names) and a scratch table of the locations (id -> file, line).  So the memory
 * taken is the file, the snapshot and the table, all proportional to the count of
 * records actually present, never to a count a field claims.
 *
 * Rules a dump obeys, and the loader checks, beyond the general format's: the
 * header carries TALLY_CAPF_SNAPSHOT and a traceback limit of 1 ..
 * TALLY_TRACE_MAX_FRAMES; the file is the header and whole chunks; LOCATION and
 * STACK ids are 1, 2, 3, ... in file order and a record names only ids defined
 * before it; a native stack has 1 .. limit frames and names its location in the
 * trailing field, a location stack one frame, its location; there is no FREE
 * record; the SNAPSHOT record comes last and its counts match the records.  A
 * file missing that record was cut short.  Every length is checked against its
 * chunk before use, the walks are loops (no recursion), and each failure sets
 * one error saying where (byte offsets) and what, and frees what was taken.
 */
#define _GNU_SOURCE
#include "trace/trace.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/runtime.h"
#include "trace/capture_format.h"

/* A location of the dump, by id - 1 (second walk). */
typedef struct load_loc {
    const char *file;        /* in the snapshot's strings */
    int line;
} load_loc;

typedef struct loader {
    tally_rt *rt;
    const char *name;        /* the path, or "<memory>", for messages */
    const uint8_t *data;
    size_t size;
    uint32_t hsize, csize;
    int limit;
    uint64_t sample;
    /* counted by the first walk, and again by the second as it fills */
    size_t nlocs, nstacks, nframes, ntraces, nstrings;
    size_t total;            /* bytes of the traces */
    bool ended;              /* the SNAPSHOT record was read */
    tally_trace_snapshot *snap; /* second walk: the snapshot being filled */
    load_loc *locs;          /* second walk: the locations */
} loader;

static void fail(loader *L, tally_error code, const char *fmt, ...) TALLY_PRINTF(3, 4);
static void fail(loader *L, tally_error code, const char *fmt, ...)
{
    char why[TALLY_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    tallyB_error_set(&L->rt->heap.err, code, "tally_trace_snapshot_load: %s: %s", L->name, why);
}

/* ---- fields of a record's payload ----------------------------------------------- */

typedef struct field_reader {
    const uint8_t *p, *end;
    bool ok;                 /* cleared by the first field that does not decode */
} field_reader;

static uint64_t get_u(field_reader *r)
{
    uint64_t v = 0;
    if (r->ok && !tally_cap_get_varint(&r->p, r->end, &v))
        r->ok = false;
    return r->ok ? v : 0;
}

static uint8_t get_byte(field_reader *r)
{
    if (!r->ok || r->p >= r->end) {
        r->ok = false;
        return 0;
    }
    return *r->p++;
}

static const uint8_t *get_bytes(field_reader *r, size_t *len)
{
    uint64_t n = get_u(r);
    *len = 0;
    if (!r->ok || n > (uint64_t)(r->end - r->p)) {
        r->ok = false;
        return NULL;
    }
    const uint8_t *s = r->p;
    r->p += n;
    *len = (size_t)n;
    return s;
}

/* ---- the header ------------------------------------------------------------------ */

static int read_header(loader *L)
{
    const uint8_t *d = L->data;
    size_t magic = L->size < 8 ? L->size : 8;
    if (L->size == 0) {
        fail(L, TALLY_EFORMAT, "empty file: not a snapshot dump");
        return -1;
    }
    if (memcmp(d, TALLY_CAP_MAGIC, magic) != 0) {
        fail(L, TALLY_EFORMAT, "not a snapshot dump (no TALLYCAP signature)");
        return -1;
    }
    if (L->size < TALLY_CAP_HEADER_USED) {
        fail(L, TALLY_EFORMAT, "truncated at byte %zu: the header needs %u bytes", L->size,
             TALLY_CAP_HEADER_USED);
        return -1;
    }
    unsigned major = (unsigned)tally_cap_get_le(d + TALLY_CAPH_MAJOR, 2);
    unsigned minor = (unsigned)tally_cap_get_le(d + TALLY_CAPH_MINOR, 2);
    if (major != TALLY_CAP_VERSION_MAJOR) {
        fail(L, TALLY_EFORMAT, "format version %u.%u; this Tally reads version %u.x", major,
             minor, TALLY_CAP_VERSION_MAJOR);
        return -1;
    }
    if (tally_cap_get_le(d + TALLY_CAPH_CHECK, 4) != tally_cap_fnv1a(d, TALLY_CAPH_CHECK)) {
        fail(L, TALLY_EFORMAT, "bad header (checksum mismatch)");
        return -1;
    }
    if (!(tally_cap_get_le(d + TALLY_CAPH_FLAGS, 4) & TALLY_CAPF_SNAPSHOT)) {
        fail(L, TALLY_EFORMAT, "a capture of tally run, not a snapshot dump (tally report reads it)");
        return -1;
    }
    uint64_t hsize = tally_cap_get_le(d + TALLY_CAPH_HSIZE, 4);
    uint64_t csize = tally_cap_get_le(d + TALLY_CAPH_CSIZE, 4);
    uint64_t limit = tally_cap_get_le(d + TALLY_CAPH_FRAMES, 4);
    if (hsize < TALLY_CAP_HEADER_USED || hsize > (1u << 20) || csize < 4096 ||
        csize > (1u << 24) || (csize & (csize - 1)) != 0) {
        fail(L, TALLY_EFORMAT, "bad header: header size %llu, chunk size %llu",
             (unsigned long long)hsize, (unsigned long long)csize);
        return -1;
    }
    if (limit < 1 || limit > TALLY_TRACE_MAX_FRAMES) {
        fail(L, TALLY_EFORMAT, "counts out of range: traceback limit %llu (1 .. %d)",
             (unsigned long long)limit, TALLY_TRACE_MAX_FRAMES);
        return -1;
    }
    if (L->size < hsize + csize || (L->size - hsize) % csize != 0) {
        fail(L, TALLY_EFORMAT, "truncated at byte %zu: not a header and whole %llu-byte chunks",
             L->size, (unsigned long long)csize);
        return -1;
    }
    L->hsize = (uint32_t)hsize;
    L->csize = (uint32_t)csize;
    L->limit = (int)limit;
    L->sample = tally_cap_get_le(d + TALLY_CAPH_SAMPLE, 8);
    return 0;
}

/* ---- records ------------------------------------------------------------------- */

/* The record at or after *pos: 1 with its type, offset and payload, 0 at the end
 * of the file, -1 with the error set.  Zero type bytes end a chunk's records. */
static int next_record(loader *L, size_t *pos, unsigned *type, size_t *off, field_reader *r)
{
    while (*pos < L->size) {
        size_t k = (*pos - L->hsize) / L->csize;
        size_t chunk_end = L->hsize + (k + 1) * L->csize;
        if (L->data[*pos] == TALLY_REC_END) {
            *pos = chunk_end;
            continue;
        }
        const uint8_t *p = L->data + *pos + 1, *end = L->data + chunk_end;
        uint64_t len;
        if (!tally_cap_get_varint(&p, end, &len) || len > (uint64_t)(end - p)) {
            fail(L, TALLY_EFORMAT, "bad record at offset %zu: its length runs past its chunk",
                 *pos);
            return -1;
        }
        *type = L->data[*pos];
        *off = *pos;
        *r = (field_reader){p, p + len, true};
        *pos = (size_t)(p + len - L->data);
        return 1;
    }
    return 0;
}

/* A defined location id (1 .. nlocs), as an index. */
static bool loc_ok(const loader *L, uint64_t id)
{
    return id >= 1 && id <= L->nlocs;
}

static const char *bad_location(loader *L, field_reader *r)
{
    uint64_t id = get_u(r);
    size_t flen, nlen;
    const uint8_t *file = get_bytes(r, &flen);
    uint64_t line = get_u(r);
    get_bytes(r, &nlen); /* the function: not kept */
    if (!r->ok)
        return "a LOCATION field does not decode";
    if (id != L->nlocs + 1)
        return "LOCATION ids must be 1, 2, 3, ... in order";
    if (line > INT32_MAX)
        return "counts out of range: a line above 2^31";
    if (L->snap != NULL) {
        char *s = L->snap->strings + L->nstrings;
        memcpy(s, file, flen);
        s[flen] = '\0';
        L->locs[L->nlocs] = (load_loc){s, (int)line};
    }
    L->nlocs++;
    L->nstrings += flen + 1;
    return NULL;
}

/* Reads n native frames into the snapshot (second walk) or just checks them. */
static bool read_frames(loader *L, field_reader *r, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        uint64_t f = get_u(r);
        if (!r->ok || f > UINTPTR_MAX)
            return false;
        if (L->snap != NULL)
            L->snap->frames[L->nframes + i] = (void *)(uintptr_t)f;
    }
    return true;
}

static const char *bad_stack(loader *L, field_reader *r)
{
    uint64_t id = get_u(r);
    uint8_t kind = get_byte(r);
    uint64_t n = get_u(r), loc = 0;
    if (!r->ok)
        return "a STACK field does not decode";
    if (id != L->nstacks + 1)
        return "STACK ids must be 1, 2, 3, ... in order";
    if (L->nstacks >= UINT32_MAX - 1)
        return "counts out of range: too many stacks";
    if (kind == TALLY_STACK_LOCATION) {
        loc = get_u(r);
        if (!r->ok || n != 1 || !loc_ok(L, loc))
            return "a location stack must name one defined location";
        n = 0;
    } else if (kind == TALLY_STACK_NATIVE) {
        if (n < 1 || n > (uint64_t)L->limit)
            return "counts out of range: native frames beyond the traceback limit";
        if (!read_frames(L, r, n))
            return "a STACK frame does not decode";
        loc = get_u(r);
        if (!r->ok || !loc_ok(L, loc))
            return "a native stack must name a defined location";
    } else {
        return "unknown STACK kind";
    }
    if (L->snap != NULL) {
        const load_loc *l = &L->locs[loc - 1];
        L->snap->sites[L->nstacks] = (tallyM_site){l->file, l->line, (uint32_t)n, L->nframes, 0};
    }
    L->nstacks++;
    L->nframes += (size_t)n;
    return NULL;
}

static const char *bad_alloc(loader *L, field_reader *r)
{
    get_u(r); /* seq */
    get_u(r); /* address: a stand-in in a snapshot dump */
    uint64_t size = get_u(r);
    uint64_t stack = get_u(r);
    uint8_t kind = get_byte(r);
    uint64_t domain = r->p < r->end ? get_u(r) : 0; /* trailing, from format 1.1 */
    if (!r->ok)
        return "an ALLOC field does not decode";
    if (domain > UINT32_MAX)
        return "an ALLOC names a domain out of range";
    if (stack < 1 || stack > L->nstacks || kind >= TALLY_AK_COUNT_)
        return "an ALLOC names no defined stack";
    if (size > SIZE_MAX || __builtin_add_overflow(L->total, (size_t)size, &L->total))
        return "counts out of range: the traces' sizes overflow";
    if (L->snap != NULL)
        L->snap->traces[L->ntraces] =
            (tallyM_strace){(size_t)size, (uint32_t)(stack - 1), (uint32_t)domain};
    L->ntraces++;
    return NULL;
}

static const char *bad_module(field_reader *r)
{
    uint64_t lo = get_u(r), hi = get_u(r);
    size_t n;
    get_u(r);          /* bias */
    get_bytes(r, &n);  /* path */
    get_bytes(r, &n);  /* build-id */
    get_u(r);          /* seq */
    if (!r->ok || hi < lo || n > 64)
        return "a MODULE field does not decode";
    return NULL; /* the tools use modules; a snapshot keeps the addresses only */
}

static const char *bad_end(loader *L, field_reader *r)
{
    uint64_t ntraces = get_u(r), total = get_u(r), nstacks = get_u(r), nlocs = get_u(r);
    if (!r->ok)
        return "a SNAPSHOT field does not decode";
    if (ntraces != L->ntraces || total != L->total || nstacks != L->nstacks || nlocs != L->nlocs)
        return "counts out of range: the end record's counts differ from the records";
    L->ended = true;
    return NULL;
}

/* Checks (and in the second walk keeps) one record; NULL or what is wrong. */
static const char *bad_record(loader *L, unsigned type, field_reader *r)
{
    if (L->ended)
        return "a record after the end record";
    switch (type) {
    case TALLY_REC_LOCATION: return bad_location(L, r);
    case TALLY_REC_STACK: return bad_stack(L, r);
    case TALLY_REC_ALLOC: return bad_alloc(L, r);
    case TALLY_REC_MODULE: return bad_module(r);
    case TALLY_REC_SNAPSHOT: return bad_end(L, r);
    case TALLY_REC_FREE: return "a FREE record in a snapshot dump";
    default: return NULL; /* PROCESS, TIME, EXIT and types of later versions */
    }
}

/* One walk over every record: 0, or -1 with the error set. */
static int walk(loader *L)
{
    L->nlocs = L->nstacks = L->nframes = L->ntraces = L->nstrings = L->total = 0;
    L->ended = false;
    size_t pos = L->hsize, off = 0;
    unsigned type = 0;
    field_reader r;
    int rc;
    while ((rc = next_record(L, &pos, &type, &off, &r)) > 0) {
        const char *why = bad_record(L, type, &r);
        if (why != NULL) {
            fail(L, TALLY_EFORMAT, "bad record at offset %zu (type %u): %s", off, type, why);
            return -1;
        }
    }
    if (rc < 0)
        return -1;
    if (!L->ended) {
        fail(L, TALLY_EFORMAT, "truncated at byte %zu: the end record is missing", L->size);
        return -1;
    }
    return 0;
}

/* ---- loading --------------------------------------------------------------------- */

static tally_trace_snapshot *parse(tally_rt *rt, const char *name, const uint8_t *data,
                                   size_t size)
{
    loader L = {.rt = rt, .name = name, .data = data, .size = size};
    if (read_header(&L) != 0 || walk(&L) != 0)
        return NULL;
    L.locs = tallyH_malloc_quiet(&rt->heap, (L.nlocs ? L.nlocs : 1) * sizeof *L.locs);
    if (L.locs == NULL) {
        fail(&L, TALLY_ENOMEM, "no memory for %zu locations", L.nlocs);
        return NULL;
    }
    tally_trace_snapshot *snap = tallyM_snap_alloc(rt, L.ntraces, L.nstacks, L.nframes, L.nstrings);
    if (snap != NULL) {
        snap->limit = L.limit;
        snap->sample = L.sample;
        snap->loaded = true;
        L.snap = snap;
        /* The records passed the first walk, so the second cannot fail. */
        if (walk(&L) != 0) {
            tally_trace_snapshot_free(snap);
            snap = NULL;
        }
    }
    tallyH_free_quiet(&rt->heap, L.locs);
    return snap;
}

tally_trace_snapshot *tally_trace_snapshot_load_memory(tally_rt *rt, const void *data, size_t size)
{
    if (data == NULL && size != 0) {
        tallyB_error_set(&rt->heap.err, TALLY_EINVAL, "tally_trace_snapshot_load_memory: no data");
        return NULL;
    }
    return parse(rt, "<memory>", data ? data : "", size);
}

/* Reads the regular file fd (name for messages) into a heap block of *size bytes:
 * the block, or NULL with the error set. */
static uint8_t *read_file(tally_rt *rt, int fd, const char *name, size_t *size)
{
    static const char fn[] = "tally_trace_snapshot_load";
    struct stat st;
    if (fstat(fd, &st) != 0) {
        tallyB_error_set(&rt->heap.err, TALLY_EIO, "%s: %s: %s", fn, name, strerror(errno));
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        tallyB_error_set(&rt->heap.err, TALLY_EIO, "%s: %s: not a regular file", fn, name);
        return NULL;
    }
    if ((uint64_t)st.st_size > SIZE_MAX / 2) {
        tallyB_error_set(&rt->heap.err, TALLY_ENOMEM, "%s: %s: too big", fn, name);
        return NULL;
    }
    size_t want = (size_t)st.st_size, got = 0;
    uint8_t *buf = tallyH_malloc_quiet(&rt->heap, want ? want : 1);
    if (buf == NULL) {
        tallyB_error_set(&rt->heap.err, TALLY_ENOMEM, "%s: %s: no memory for %zu bytes", fn, name,
                         want);
        return NULL;
    }
    while (got < want) {
        ssize_t k = read(fd, buf + got, want - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            tallyB_error_set(&rt->heap.err, TALLY_EIO, "%s: cannot read %s: %s", fn, name,
                             strerror(errno));
            tallyH_free_quiet(&rt->heap, buf);
            return NULL;
        }
        if (k == 0)
            break; /* the file shrank: what was read is checked as it is */
        got += (size_t)k;
    }
    *size = got;
    return buf;
}

tally_trace_snapshot *tally_trace_snapshot_load(tally_rt *rt, const char *path)
{
    if (path == NULL) {
        tallyB_error_set(&rt->heap.err, TALLY_EINVAL, "tally_trace_snapshot_load: no path");
        return NULL;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        tallyB_error_set(&rt->heap.err, TALLY_EIO, "tally_trace_snapshot_load: cannot open %s: %s",
                         path, strerror(errno));
        return NULL;
    }
    size_t size = 0;
    uint8_t *data = read_file(rt, fd, path, &size);
    close(fd);
    if (data == NULL)
        return NULL;
    tally_trace_snapshot *snap = parse(rt, path, data, size);
    tallyH_free_quiet(&rt->heap, data);
    return snap;
}
