/* capture_read.c - the capture loader: validation in one pass, events merged by
 * sequence number in a second.
 *
 * The file is read into memory whole.  The first pass walks every chunk's records,
 * checks each one completely (lengths within the chunk and the file, every field
 * decodable within its record, events in increasing sequence order within a chunk,
 * frame counts bounded), keeps the descriptive records (process, modules, stacks,
 * locations) and notes for each chunk how far its records are valid.  A chunk's
 * walk stops at its first zero type byte (unused space) or at the first invalid
 * record, which marks the capture damaged; the end of the file stops it too, marking
 * the capture truncated if the file does not end on a chunk boundary.  Nothing in the
 * file can make the reader read out of bounds, loop forever, or allocate more than a
 * small multiple of the file's size.
 *
 * The second pass (tallyX_iter) re-decodes only validated records, so it cannot fail:
 * each chunk is one thread's records in increasing sequence order, and a binary heap
 * over the chunks yields the events of all threads in sequence order.
 */
#define _GNU_SOURCE
#include "capture_read.h"

#include "trace/capture_format.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- id maps: uint64 key -> uint32 value, open addressing ---------------------------- */

struct tallyX_idmap {
    uint64_t *keys;             /* key + 1 (0 = empty) */
    uint32_t *vals;
    size_t cap, n;
};

static struct tallyX_idmap *idmap_new(void)
{
    return calloc(1, sizeof(struct tallyX_idmap));
}

static void idmap_free(struct tallyX_idmap *m)
{
    if (m != NULL) {
        free(m->keys);
        free(m->vals);
        free(m);
    }
}

static uint64_t mix(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdu;
    k ^= k >> 33;
    return k;
}

/* Returns the value for key, or UINT32_MAX. */
static uint32_t idmap_get(const struct tallyX_idmap *m, uint64_t key)
{
    if (m == NULL || m->cap == 0)
        return UINT32_MAX;
    size_t mask = m->cap - 1;
    for (size_t i = mix(key) & mask; m->keys[i] != 0; i = (i + 1) & mask) {
        if (m->keys[i] == key + 1)
            return m->vals[i];
    }
    return UINT32_MAX;
}

static int idmap_put(struct tallyX_idmap *m, uint64_t key, uint32_t val)
{
    if ((m->n + 1) * 2 > m->cap) {
        size_t ncap = m->cap ? m->cap * 2 : 256;
        uint64_t *nk = calloc(ncap, sizeof *nk);
        uint32_t *nv = calloc(ncap, sizeof *nv);
        if (nk == NULL || nv == NULL) {
            free(nk);
            free(nv);
            return -1;
        }
        for (size_t i = 0; i < m->cap; i++) {
            if (m->keys[i] == 0)
                continue;
            size_t j = mix(m->keys[i] - 1) & (ncap - 1);
            while (nk[j] != 0)
                j = (j + 1) & (ncap - 1);
            nk[j] = m->keys[i];
            nv[j] = m->vals[i];
        }
        free(m->keys);
        free(m->vals);
        m->keys = nk;
        m->vals = nv;
        m->cap = ncap;
    }
    size_t mask = m->cap - 1, i = mix(key) & mask;
    while (m->keys[i] != 0 && m->keys[i] != key + 1)
        i = (i + 1) & mask;
    if (m->keys[i] == 0)
        m->n++;
    m->keys[i] = key + 1;
    m->vals[i] = val;
    return 0;
}

/* ---- errors and growable arrays ----------------------------------------------------------- */

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (errlen > 0)
        vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* Grows *arr (of elem-size items, *cap of them) to hold n + 1. */
static int grow(void *arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 16;
    void *p = realloc(*(void **)arr, ncap * elem);
    if (p == NULL)
        return -1;
    *(void **)arr = p;
    *cap = ncap;
    return 0;
}

/* ---- record payload decoding ------------------------------------------------------------- */

struct rd {
    const uint8_t *p, *end;
    int ok;                     /* cleared by the first field that does not decode */
};

static uint64_t rd_u(struct rd *r)
{
    uint64_t v = 0;
    if (r->ok && !tally_cap_get_varint(&r->p, r->end, &v))
        r->ok = 0;
    return r->ok ? v : 0;
}

static uint8_t rd_byte(struct rd *r)
{
    if (!r->ok || r->p >= r->end) {
        r->ok = 0;
        return 0;
    }
    return *r->p++;
}

/* A length-prefixed byte string: returns a pointer into the record and its length. */
static const uint8_t *rd_bytes(struct rd *r, size_t *len)
{
    uint64_t n = rd_u(r);
    if (!r->ok || n > (uint64_t)(r->end - r->p)) {
        r->ok = 0;
        *len = 0;
        return NULL;
    }
    const uint8_t *s = r->p;
    r->p += n;
    *len = (size_t)n;
    return s;
}

static char *rd_str(struct rd *r)
{
    size_t n;
    const uint8_t *s = rd_bytes(r, &n);
    if (!r->ok)
        return NULL;
    char *c = malloc(n + 1);
    if (c == NULL) {
        r->ok = 0;
        return NULL;
    }
    memcpy(c, s, n);
    c[n] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (c[i] == '\0')
            c[i] = '?';     /* no embedded terminators in names */
    }
    return c;
}

/* ---- descriptive records ---------------------------------------------------------------- */

struct arrays {
    size_t cmod, cstack, cloc;
};

static int add_process(tallyX_capture *cap, struct rd *r)
{
    if (cap->have_process)
        return 1;   /* keep the first */
    uint64_t ppid = rd_u(r);
    char *exe = rd_str(r);
    uint64_t argc = rd_u(r);
    if (!r->ok || argc > (uint64_t)(r->end - r->p)) {
        free(exe);
        return 0;
    }
    char **argv = calloc((size_t)argc + 1, sizeof *argv);
    if (argv == NULL) {
        free(exe);
        return 0;
    }
    size_t i = 0;
    for (; i < argc && r->ok; i++)
        argv[i] = rd_str(r);
    if (!r->ok) {
        for (size_t k = 0; k < i; k++)
            free(argv[k]);
        free(argv);
        free(exe);
        return 0;
    }
    cap->have_process = 1;
    cap->ppid = ppid;
    cap->exe = exe;
    cap->argv = argv;
    cap->argc = (size_t)argc;
    return 1;
}

static int add_module(tallyX_capture *cap, struct arrays *a, struct rd *r)
{
    tallyX_module m;
    memset(&m, 0, sizeof m);
    m.lo = rd_u(r);
    m.hi = rd_u(r);
    m.bias = rd_u(r);
    m.path = rd_str(r);
    size_t nb;
    const uint8_t *b = rd_bytes(r, &nb);
    m.seq = rd_u(r);
    if (!r->ok || m.hi < m.lo || nb > sizeof m.build_id ||
        grow(&cap->modules, &a->cmod, cap->nmodules, sizeof m) != 0) {
        free(m.path);
        return 0;
    }
    memcpy(m.build_id, b, nb);
    m.nbuild_id = nb;
    cap->modules[cap->nmodules++] = m;
    return 1;
}

static uint64_t stack_hash(uint8_t kind, const uint64_t *f, uint32_t n)
{
    uint64_t h = mix(kind + 0x51ull * n);
    for (uint32_t i = 0; i < n; i++)
        h = mix(h ^ f[i]) + i;
    return h;
}

static int add_stack(tallyX_capture *cap, struct arrays *a, struct rd *r)
{
    uint64_t id = rd_u(r);
    uint8_t kind = rd_byte(r);
    uint64_t n = rd_u(r);
    if (!r->ok || n > TALLY_CAP_MAX_FRAMES || kind > TALLY_STACK_LOCATION)
        return 0;
    uint64_t f[TALLY_CAP_MAX_FRAMES];
    for (uint64_t i = 0; i < n; i++)
        f[i] = rd_u(r);
    if (!r->ok)
        return 0;
    if (idmap_get(cap->stack_ids, id) != UINT32_MAX)
        return 1;   /* a repeated id: the first definition holds */
    /* Threads write the same stack under different ids: one entry per content. */
    uint64_t h = stack_hash(kind, f, (uint32_t)n);
    for (uint64_t probe = h;; probe++) {
        uint32_t idx = idmap_get(cap->stack_content, probe);
        if (idx == UINT32_MAX)
            break;
        tallyX_stack *s = &cap->stacks[idx];
        if (s->kind == kind && s->n == n && memcmp(s->frames, f, n * sizeof *f) == 0)
            return idmap_put(cap->stack_ids, id, idx) == 0;
    }
    if (cap->nstacks >= UINT32_MAX - 1 ||
        grow(&cap->stacks, &a->cstack, cap->nstacks, sizeof(tallyX_stack)) != 0)
        return 0;
    uint64_t *frames = malloc((n ? n : 1) * sizeof *frames);
    if (frames == NULL)
        return 0;
    memcpy(frames, f, n * sizeof *f);
    uint32_t idx = (uint32_t)cap->nstacks;
    uint64_t probe = h;
    while (idmap_get(cap->stack_content, probe) != UINT32_MAX)
        probe++;
    if (idmap_put(cap->stack_content, probe, idx) != 0 || idmap_put(cap->stack_ids, id, idx) != 0) {
        free(frames);
        return 0;
    }
    cap->stacks[cap->nstacks++] = (tallyX_stack){ .kind = kind, .n = (uint32_t)n, .frames = frames };
    return 1;
}

static int add_location(tallyX_capture *cap, struct arrays *a, struct rd *r)
{
    tallyX_location l;
    l.id = rd_u(r);
    l.file = rd_str(r);
    l.line = rd_u(r);
    l.function = rd_str(r);
    if (!r->ok || grow(&cap->locations, &a->cloc, cap->nlocations, sizeof l) != 0) {
        free(l.file);
        free(l.function);
        return 0;
    }
    cap->locations[cap->nlocations++] = l;
    return 1;
}

const tallyX_location *tallyX_capture_location(const tallyX_capture *cap, uint64_t id)
{
    for (size_t i = 0; i < cap->nlocations; i++) {
        if (cap->locations[i].id == id)
            return &cap->locations[i];
    }
    return NULL;
}

/* The SNAPSHOT record, last in a snapshot dump: its counts must match the events
 * read so far (the loader in src/trace/load.c checks more). */
static int end_of_snapshot(tallyX_capture *cap, struct rd *r)
{
    uint64_t traces = rd_u(r);
    rd_u(r); /* total bytes: the analysis sums them again */
    rd_u(r); /* stacks */
    rd_u(r); /* locations */
    if (!r->ok || !cap->snapshot || traces != cap->nevents)
        return 0;
    cap->snapshot_end = 1;
    return 1;
}

/* ---- events ------------------------------------------------------------------------------ */

/* Decodes an event record's payload; 0 if it is malformed. */
static int decode_event(unsigned type, struct rd *r, tallyX_event *ev)
{
    memset(ev, 0, sizeof *ev);
    ev->type = (uint8_t)type;
    ev->seq = rd_u(r);
    switch (type) {
    case TALLY_REC_ALLOC:
        ev->ptr = rd_u(r);
        ev->size = rd_u(r);
        ev->ns = rd_u(r);   /* the stack id until cursor_next maps it to stack */
        ev->kind = rd_byte(r);
        return r->ok && ev->kind < TALLY_AK_COUNT_;
    case TALLY_REC_FREE:
        ev->ptr = rd_u(r);
        ev->kind = rd_byte(r);
        return r->ok && ev->kind < TALLY_FK_COUNT_;
    default: /* TIME, EXIT */
        ev->ns = rd_u(r);
        return r->ok;
    }
}

static int is_event(unsigned type)
{
    return type == TALLY_REC_ALLOC || type == TALLY_REC_FREE || type == TALLY_REC_TIME ||
           type == TALLY_REC_EXIT;
}

/* One record at data[pos], which must lie in its chunk: its type, payload bounds
 * and end.  Returns 1 if whole, 0 if cut by the end of the file, -1 if malformed. */
static int record_at(const tallyX_capture *cap, size_t pos, size_t chunk_end, unsigned *type,
                     struct rd *r, size_t *next)
{
    int cut_possible = cap->size < chunk_end;   /* the file ends inside this chunk */
    size_t lim = cut_possible ? cap->size : chunk_end;
    *type = cap->data[pos];
    const uint8_t *p = cap->data + pos + 1, *end = cap->data + lim;
    uint64_t len;
    if (!tally_cap_get_varint(&p, end, &len))
        return cut_possible ? 0 : -1;
    if (len > (uint64_t)(chunk_end - (size_t)(p - cap->data)))
        return -1;  /* would cross the chunk boundary */
    if (len > (uint64_t)(end - p))
        return 0;   /* only possible when the file ends inside the chunk */
    r->p = p;
    r->end = p + len;
    r->ok = 1;
    *next = (size_t)(p + len - cap->data);
    return 1;
}

/* Validates one chunk, keeping its descriptive records; returns the end of its
 * valid records.  Sets *cut if the file ends inside it, *bad on an invalid record. */
static size_t scan_chunk(tallyX_capture *cap, struct arrays *a, size_t begin, size_t chunk_end,
                         int *cut, int *bad)
{
    size_t pos = begin;
    uint64_t last_seq = 0;
    unsigned last_type = 0;     /* of the last event, 0 before the first */
    while (pos < chunk_end) {
        if (pos >= cap->size) {
            *cut = 1;
            break;
        }
        if (cap->data[pos] == TALLY_REC_END)
            break;
        unsigned type;
        struct rd r;
        size_t next;
        int rc = record_at(cap, pos, chunk_end, &type, &r, &next);
        if (rc == 0) {
            *cut = 1;
            break;
        }
        if (rc < 0) {
            *bad = 1;
            break;
        }
        int ok = 1;
        if (is_event(type)) {
            tallyX_event ev;
            ok = decode_event(type, &r, &ev);
            /* Sequence numbers grow within a chunk; a TIME mark shares the number of
             * the event after it. */
            if (ok && last_type != 0 && ev.seq <= last_seq)
                ok = ev.seq == last_seq && last_type == TALLY_REC_TIME && type != TALLY_REC_TIME;
            if (ok) {
                last_seq = ev.seq;
                last_type = type;
                if (type == TALLY_REC_ALLOC || type == TALLY_REC_FREE)
                    cap->nevents++;
                if (type == TALLY_REC_EXIT) {
                    cap->exited = 1;
                    cap->exit_ns = ev.ns;
                }
            }
        } else {
            switch (type) {
            case TALLY_REC_PROCESS: ok = add_process(cap, &r); break;
            case TALLY_REC_MODULE: ok = add_module(cap, a, &r); break;
            case TALLY_REC_STACK: ok = add_stack(cap, a, &r); break;
            case TALLY_REC_LOCATION: ok = add_location(cap, a, &r); break;
            case TALLY_REC_SNAPSHOT: ok = end_of_snapshot(cap, &r); break;
            default: cap->unknown_records++; break;
            }
        }
        if (!ok) {
            *bad = 1;
            break;
        }
        pos = next;
    }
    return pos;
}

int tallyX_capture_parse(const uint8_t *data, size_t size, tallyX_capture *cap, char *err,
                         size_t errlen)
{
    memset(cap, 0, sizeof *cap);
    if (size < TALLY_CAP_HEADER_USED) {
        if (size >= 8 && memcmp(data, TALLY_CAP_MAGIC, 8) != 0)
            return fail(err, errlen, "not a tally capture (no TALLYCAP signature)");
        return fail(err, errlen, "truncated capture: %zu bytes, its header needs %u",
                    size, TALLY_CAP_HEADER_USED);
    }
    if (memcmp(data, TALLY_CAP_MAGIC, 8) != 0)
        return fail(err, errlen, "not a tally capture (no TALLYCAP signature)");
    cap->major = (uint16_t)tally_cap_get_le(data + TALLY_CAPH_MAJOR, 2);
    cap->minor = (uint16_t)tally_cap_get_le(data + TALLY_CAPH_MINOR, 2);
    if (cap->major != TALLY_CAP_VERSION_MAJOR)
        return fail(err, errlen, "capture format version %u.%u; this tally reads version %u",
                    cap->major, cap->minor, TALLY_CAP_VERSION_MAJOR);
    if (tally_cap_get_le(data + TALLY_CAPH_CHECK, 4) != tally_cap_fnv1a(data, TALLY_CAPH_CHECK))
        return fail(err, errlen, "corrupt capture: header checksum mismatch");
    uint64_t hsize = tally_cap_get_le(data + TALLY_CAPH_HSIZE, 4);
    cap->chunk_size = (uint32_t)tally_cap_get_le(data + TALLY_CAPH_CSIZE, 4);
    cap->frames = (uint32_t)tally_cap_get_le(data + TALLY_CAPH_FRAMES, 4);
    cap->sample = tally_cap_get_le(data + TALLY_CAPH_SAMPLE, 8);
    cap->pid = tally_cap_get_le(data + TALLY_CAPH_PID, 8);
    cap->start_ns = tally_cap_get_le(data + TALLY_CAPH_START, 8);
    cap->snapshot = (tally_cap_get_le(data + TALLY_CAPH_FLAGS, 4) & TALLY_CAPF_SNAPSHOT) != 0;
    if (hsize < TALLY_CAP_HEADER_USED || hsize > (1u << 20) || cap->chunk_size < 4096 ||
        cap->chunk_size > (1u << 24) || (cap->chunk_size & (cap->chunk_size - 1)) != 0)
        return fail(err, errlen, "corrupt capture: bad header or chunk size");

    cap->data = malloc(size);
    if (cap->data == NULL)
        return fail(err, errlen, "out of memory reading a %zu-byte capture", size);
    memcpy(cap->data, data, size);
    cap->size = size;
    cap->stack_ids = idmap_new();
    cap->stack_content = idmap_new();
    cap->stacks = calloc(16, sizeof *cap->stacks);
    struct arrays a = { .cstack = 16 };
    if (cap->stack_ids == NULL || cap->stack_content == NULL || cap->stacks == NULL) {
        tallyX_capture_free(cap);
        return fail(err, errlen, "out of memory");
    }
    cap->nstacks = 1;   /* [0]: the unknown stack */
    cap->stacks[0].frames = NULL;

    size_t nch = size > hsize ? (size_t)((size - hsize + cap->chunk_size - 1) / cap->chunk_size) : 0;
    cap->truncated = size < hsize || (size - hsize) % cap->chunk_size != 0;
    cap->chunks = calloc(nch ? nch : 1, sizeof *cap->chunks);
    if (cap->chunks == NULL) {
        tallyX_capture_free(cap);
        return fail(err, errlen, "out of memory");
    }
    for (size_t c = 0; c < nch; c++) {
        size_t begin = (size_t)hsize + c * cap->chunk_size;
        int cut = 0, bad = 0;
        size_t end = scan_chunk(cap, &a, begin, begin + cap->chunk_size, &cut, &bad);
        if (bad)
            cap->damaged++;
        if (cut)
            cap->truncated = 1;
        if (end > begin)
            cap->chunks[cap->nchunks++] = (tallyX_chunk){ begin, end };
    }
    /* A dump is written whole and renamed into place: without its end record it
     * was cut (on a chunk boundary, or the check above would have said so). */
    if (cap->snapshot && !cap->snapshot_end)
        cap->truncated = 1;
    return 0;
}

int tallyX_capture_load(const char *path, tallyX_capture *cap, char *err, size_t errlen)
{
    memset(cap, 0, sizeof *cap);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail(err, errlen, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return fail(err, errlen, "%s: not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    uint8_t *buf = malloc(size ? size : 1);
    if (buf == NULL) {
        close(fd);
        return fail(err, errlen, "%s: out of memory for %zu bytes", path, size);
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    char inner[256];
    int rc = tallyX_capture_parse(buf, got, cap, inner, sizeof inner);
    free(buf);
    if (rc != 0)
        return fail(err, errlen, "%s: %s", path, inner);
    return 0;
}

void tallyX_capture_free(tallyX_capture *cap)
{
    free(cap->exe);
    for (size_t i = 0; i < cap->argc; i++)
        free(cap->argv[i]);
    free(cap->argv);
    for (size_t i = 0; i < cap->nmodules; i++)
        free(cap->modules[i].path);
    free(cap->modules);
    for (size_t i = 0; i < cap->nstacks; i++)
        free(cap->stacks[i].frames);
    free(cap->stacks);
    for (size_t i = 0; i < cap->nlocations; i++) {
        free(cap->locations[i].file);
        free(cap->locations[i].function);
    }
    free(cap->locations);
    free(cap->chunks);
    free(cap->data);
    idmap_free(cap->stack_ids);
    idmap_free(cap->stack_content);
    memset(cap, 0, sizeof *cap);
}

/* ---- the merged event stream ------------------------------------------------------------- */

struct tallyX_cursor {
    size_t pos, end;            /* validated records left in the chunk */
    size_t chunk_end;
    tallyX_event ev;            /* the next event (valid while in the heap) */
};

/* Advances c to its next event; 0 when the chunk has none left. */
static int cursor_next(const tallyX_capture *cap, struct tallyX_cursor *c)
{
    while (c->pos < c->end) {
        unsigned type;
        struct rd r;
        size_t next;
        if (record_at(cap, c->pos, c->chunk_end, &type, &r, &next) != 1)
            return 0;   /* cannot happen: validated */
        c->pos = next;
        if (is_event(type) && decode_event(type, &r, &c->ev)) {
            if (type == TALLY_REC_ALLOC) {
                uint32_t idx = idmap_get(cap->stack_ids, c->ev.ns);
                c->ev.stack = idx == UINT32_MAX ? 0 : idx;
                c->ev.ns = 0;
            }
            return 1;
        }
    }
    return 0;
}

/* Heap order: sequence number, then TIME before the event sharing its number. */
static int ev_less(const tallyX_event *a, const tallyX_event *b)
{
    if (a->seq != b->seq)
        return a->seq < b->seq;
    return a->type == TALLY_REC_TIME && b->type != TALLY_REC_TIME;
}

static void sift_down(tallyX_iter *it, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < it->nheap && ev_less(&it->cur[it->heap[l]].ev, &it->cur[it->heap[m]].ev))
            m = l;
        if (l + 1 < it->nheap && ev_less(&it->cur[it->heap[l + 1]].ev, &it->cur[it->heap[m]].ev))
            m = l + 1;
        if (m == i)
            return;
        size_t t = it->heap[i];
        it->heap[i] = it->heap[m];
        it->heap[m] = t;
        i = m;
    }
}

int tallyX_iter_begin(tallyX_iter *it, const tallyX_capture *cap)
{
    memset(it, 0, sizeof *it);
    it->cap = cap;
    size_t n = cap->nchunks ? cap->nchunks : 1;
    it->cur = calloc(n, sizeof *it->cur);
    it->heap = calloc(n, sizeof *it->heap);
    if (it->cur == NULL || it->heap == NULL) {
        tallyX_iter_end(it);
        return -1;
    }
    for (size_t i = 0; i < cap->nchunks; i++) {
        struct tallyX_cursor *c = &it->cur[i];
        c->pos = cap->chunks[i].begin;
        c->end = cap->chunks[i].end;
        c->chunk_end = c->pos + cap->chunk_size;
        if (cursor_next(cap, c))
            it->heap[it->nheap++] = i;
    }
    for (size_t i = it->nheap; i-- > 0;)
        sift_down(it, i);
    return 0;
}

int tallyX_iter_next(tallyX_iter *it, tallyX_event *ev)
{
    if (it->nheap == 0)
        return 0;
    struct tallyX_cursor *c = &it->cur[it->heap[0]];
    *ev = c->ev;
    if (!cursor_next(it->cap, c))
        it->heap[0] = it->heap[--it->nheap];
    sift_down(it, 0);
    return 1;
}

void tallyX_iter_end(tallyX_iter *it)
{
    free(it->cur);
    free(it->heap);
    it->cur = NULL;
    it->heap = NULL;
    it->nheap = 0;
}
