/* capture_format.h - the byte layout of a Tally capture file, shared by its writers
 * (the preloaded interposer, src/tools/preload/, and the snapshot dumper of the
 * trace layer, src/trace/dump.c) and its readers (src/tools/capture_read.c, and the
 * snapshot loader src/trace/load.c).  It lives in the trace layer because the
 * library writes it; the tools, a layer below, include it from here.
 *
 * docs/capture-format.md is the prose description; this header is the definition.
 * In short: a 4096-byte header page, then fixed-size chunks.  A chunk belongs to one
 * writer thread and holds a sequence of records; a record is
 *
 *     type (1 byte, nonzero) | payload length (LEB128) | payload
 *
 * and never straddles a chunk boundary.  A zero type byte ends a chunk's records (the
 * rest of the chunk is unused).  The writer stores the type byte last, so a record
 * whose type byte is visible is complete: a capture cut at any byte, or left by a
 * killed process, is a valid prefix plus zeros.  Integers in payloads are unsigned
 * LEB128 ("varints"); strings and byte strings are a varint length then the bytes.
 *
 * Events (ALLOC, FREE, TIME, EXIT) carry a global sequence number: the reader merges
 * the chunks of all threads by it.  The writer takes the number of a free before the
 * block is released and the number of an allocation after it is obtained, so a
 * block's free always precedes its reuse in sequence order.
 */
#ifndef TALLY_TRACE_CAPTURE_FORMAT_H
#define TALLY_TRACE_CAPTURE_FORMAT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define TALLY_CAP_MAGIC "TALLYCAP"      /* 8 bytes, no terminator in the file */
#define TALLY_CAP_VERSION_MAJOR 1       /* incompatible layout changes */
#define TALLY_CAP_VERSION_MINOR 1       /* compatible additions (new trailing fields);
                                           1: snapshot dumps (flag, SNAPSHOT record,
                                           STACK's location field) */
#define TALLY_CAP_HEADER_SIZE 4096u     /* the header page; chunk 0 starts here */
#define TALLY_CAP_HEADER_USED 64u       /* bytes of the header page with content */
#define TALLY_CAP_CHUNK_SIZE 65536u     /* default chunk size (the header says which) */
#define TALLY_CAP_MAX_FRAMES 256        /* upper bound on frames per stack */

/* Header fields: byte offsets, all little-endian. */
enum {
    TALLY_CAPH_MAGIC = 0,       /* 8 bytes "TALLYCAP" */
    TALLY_CAPH_MAJOR = 8,       /* u16 */
    TALLY_CAPH_MINOR = 10,      /* u16 */
    TALLY_CAPH_HSIZE = 12,      /* u32 header size = offset of chunk 0 */
    TALLY_CAPH_CSIZE = 16,      /* u32 chunk size (power of two, 4096 .. 16 MiB) */
    TALLY_CAPH_FRAMES = 20,     /* u32 frames requested per stack */
    TALLY_CAPH_SAMPLE = 24,     /* u64 sampling mean in bytes, 0 = every allocation */
    TALLY_CAPH_PID = 32,        /* u64 process id */
    TALLY_CAPH_START = 40,      /* u64 start time, CLOCK_REALTIME ns since the epoch */
    TALLY_CAPH_FLAGS = 48,      /* u32 TALLY_CAPF_* (0 for a capture of tally run) */
    TALLY_CAPH_CHECK = 52,      /* u32 FNV-1a of bytes 0..51 */
};

/* Header flags. */
#define TALLY_CAPF_SNAPSHOT 1u          /* a snapshot dump (tally_trace_snapshot_dump):
                                           frames is the traceback limit, sample the
                                           tracer's sampling mean */

/* Record types.  Unknown nonzero types are skipped by readers (their length says how
 * far), so new types can be added in a minor version. */
enum tally_cap_record {
    TALLY_REC_END = 0,      /* no more records in this chunk */
    TALLY_REC_PROCESS = 1,  /* ppid, exe path, argc, argv strings */
    TALLY_REC_MODULE = 2,   /* start, end, bias, path, build-id bytes, seq */
    TALLY_REC_STACK = 3,    /* id, kind, n, n frames [, location id (1.1, dumps)] */
    TALLY_REC_LOCATION = 4, /* id, file, line, function */
    TALLY_REC_ALLOC = 5,    /* seq, ptr, size, stack id, kind */
    TALLY_REC_FREE = 6,     /* seq, ptr, kind */
    TALLY_REC_TIME = 7,     /* seq, ns since start (CLOCK_MONOTONIC) */
    TALLY_REC_EXIT = 8,     /* seq, ns since start: the process reached exit() */
    TALLY_REC_SNAPSHOT = 9, /* traces, total bytes, stacks, locations: the last record
                               of a snapshot dump (1.1) */
    TALLY_REC_COUNT_
};

/* STACK kinds: what the frames are. */
enum {
    TALLY_STACK_NATIVE = 0,     /* return addresses (innermost first), see MODULE */
    TALLY_STACK_LOCATION = 1,   /* LOCATION ids (innermost first) */
};

/* ALLOC kinds (what the program called). */
enum {
    TALLY_AK_MALLOC = 0,
    TALLY_AK_CALLOC = 1,
    TALLY_AK_REALLOC = 2,
    TALLY_AK_ALIGNED = 3,   /* posix_memalign, aligned_alloc, memalign, valloc, pvalloc */
    TALLY_AK_NEW = 4,       /* operator new (any variant) */
    TALLY_AK_NEW_ARRAY = 5, /* operator new[] */
    TALLY_AK_COUNT_
};

/* FREE kinds. */
enum {
    TALLY_FK_FREE = 0,
    TALLY_FK_REALLOC = 1,   /* the old block of a moving or shrinking-to-zero realloc */
    TALLY_FK_DELETE = 2,
    TALLY_FK_DELETE_ARRAY = 3,
    TALLY_FK_COUNT_
};

/* ---- encoding helpers (static inline: both sides include them) --------------------- */

/* Writes v as LEB128 at p (at most 10 bytes); returns the end. */
static inline uint8_t *tally_cap_put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

static inline uint8_t *tally_cap_put_bytes(uint8_t *p, const void *s, size_t n)
{
    p = tally_cap_put_varint(p, n);
    memcpy(p, s, n);
    return p + n;
}

/* Reads a LEB128 value from [*p, end); returns 0 and leaves *p alone if the value is
 * cut off by end or longer than 10 bytes (or overflows 64 bits). */
static inline int tally_cap_get_varint(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
    const uint8_t *q = *p;
    uint64_t v = 0;
    for (unsigned shift = 0; q < end && shift < 64; shift += 7) {
        uint8_t b = *q++;
        if (shift == 63 && (b & 0x7e))
            return 0;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *p = q;
            *out = v;
            return 1;
        }
    }
    return 0;
}

static inline void tally_cap_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void tally_cap_put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline void tally_cap_put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t tally_cap_get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static inline uint32_t tally_cap_fnv1a(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

/* The length of v as LEB128. */
static inline size_t tally_cap_varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Fills the first TALLY_CAP_HEADER_USED bytes of a header (the rest of the header
 * page must be zero). */
static inline void tally_cap_write_header(uint8_t *h, uint32_t chunk_size, uint32_t frames,
                                          uint64_t sample, uint64_t pid, uint64_t start_ns)
{
    memset(h, 0, TALLY_CAP_HEADER_USED);
    memcpy(h + TALLY_CAPH_MAGIC, TALLY_CAP_MAGIC, 8);
    tally_cap_put_u16(h + TALLY_CAPH_MAJOR, TALLY_CAP_VERSION_MAJOR);
    tally_cap_put_u16(h + TALLY_CAPH_MINOR, TALLY_CAP_VERSION_MINOR);
    tally_cap_put_u32(h + TALLY_CAPH_HSIZE, TALLY_CAP_HEADER_SIZE);
    tally_cap_put_u32(h + TALLY_CAPH_CSIZE, chunk_size);
    tally_cap_put_u32(h + TALLY_CAPH_FRAMES, frames);
    tally_cap_put_u64(h + TALLY_CAPH_SAMPLE, sample);
    tally_cap_put_u64(h + TALLY_CAPH_PID, pid);
    tally_cap_put_u64(h + TALLY_CAPH_START, start_ns);
    tally_cap_put_u32(h + TALLY_CAPH_CHECK, tally_cap_fnv1a(h, TALLY_CAPH_CHECK));
}

/* Sets the flags of a header that tally_cap_write_header filled (and its checksum). */
static inline void tally_cap_header_set_flags(uint8_t *h, uint32_t flags)
{
    tally_cap_put_u32(h + TALLY_CAPH_FLAGS, flags);
    tally_cap_put_u32(h + TALLY_CAPH_CHECK, tally_cap_fnv1a(h, TALLY_CAPH_CHECK));
}

#endif /* TALLY_TRACE_CAPTURE_FORMAT_H */
