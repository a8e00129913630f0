/* capture_read.h - loading a capture file (capture_format.h) and walking its events
 * in sequence order.  Internal to the tools; names are tallyX_. */
#ifndef TALLY_TOOLS_CAPTURE_READ_H
#define TALLY_TOOLS_CAPTURE_READ_H

#include <stddef.h>
#include <stdint.h>

typedef struct tallyX_module {
    uint64_t lo, hi;            /* executable segment [lo, hi) */
    uint64_t bias;              /* load bias: run-time address minus file address */
    uint64_t seq;               /* events recorded before it was seen */
    char *path;                 /* file name as the loader knew it */
    uint8_t build_id[64];       /* GNU build-id, nbuild_id bytes */
    size_t nbuild_id;
} tallyX_module;

typedef struct tallyX_stack {
    uint8_t kind;               /* TALLY_STACK_NATIVE or TALLY_STACK_LOCATION */
    uint32_t n;                 /* frames, innermost first */
    uint64_t *frames;           /* return addresses or LOCATION ids */
} tallyX_stack;

typedef struct tallyX_location {
    uint64_t id;
    char *file, *function;
    uint64_t line;
} tallyX_location;

/* One event of the merged stream. */
typedef struct tallyX_event {
    uint8_t type;               /* TALLY_REC_ALLOC, _FREE, _TIME or _EXIT */
    uint8_t kind;               /* TALLY_AK_* / TALLY_FK_* */
    uint32_t stack;             /* ALLOC: index into stacks[] (0: unknown stack) */
    uint64_t seq;
    uint64_t ptr, size;         /* ALLOC, FREE (size: ALLOC only) */
    uint64_t ns;                /* TIME, EXIT: ns since the program started */
} tallyX_event;

typedef struct tallyX_chunk {
    size_t begin, end;          /* records of this chunk that passed validation */
} tallyX_chunk;

typedef struct tallyX_capture {
    uint16_t major, minor;
    uint32_t chunk_size, frames;
    uint64_t sample;            /* sampling mean in bytes, 0 = every allocation */
    uint64_t pid, start_ns;
    /* PROCESS record */
    int have_process;
    uint64_t ppid;
    char *exe;
    char **argv;
    size_t argc;
    tallyX_module *modules;
    size_t nmodules;
    tallyX_stack *stacks;       /* [0] is the empty "unknown" stack */
    size_t nstacks;
    tallyX_location *locations;
    size_t nlocations;
    tallyX_chunk *chunks;
    size_t nchunks;
    uint64_t nevents;           /* ALLOC + FREE records */
    int truncated;              /* the file ends inside a chunk */
    size_t damaged;             /* chunks whose records stop at an invalid one */
    size_t unknown_records;     /* records of types this reader does not know */
    int exited;                 /* an EXIT record: the program reached exit() */
    int snapshot;               /* a snapshot dump of Tally's tracer (TALLY_CAPF_SNAPSHOT):
                                   its ALLOCs are the traces live in the snapshot */
    int snapshot_end;           /* its SNAPSHOT record was read (else it was cut) */
    uint64_t exit_ns;
    /* private */
    uint8_t *data;
    size_t size;
    struct tallyX_idmap *stack_ids, *stack_content;
} tallyX_capture;

/* Loads path; on failure returns -1 with a one-line reason in err. */
int tallyX_capture_load(const char *path, tallyX_capture *cap, char *err, size_t errlen);
/* The same from memory (the bytes are copied). */
int tallyX_capture_parse(const uint8_t *data, size_t size, tallyX_capture *cap, char *err,
                         size_t errlen);
void tallyX_capture_free(tallyX_capture *cap);
/* The location with this id, or NULL. */
const tallyX_location *tallyX_capture_location(const tallyX_capture *cap, uint64_t id);

/* Events of all chunks merged by sequence number. */
typedef struct tallyX_iter {
    const tallyX_capture *cap;
    struct tallyX_cursor *cur;  /* one per chunk with events */
    size_t *heap;               /* indexes into cur, a min-heap on the next event */
    size_t nheap;
} tallyX_iter;

int tallyX_iter_begin(tallyX_iter *it, const tallyX_capture *cap);
/* 1 and *ev filled, or 0 at the end. */
int tallyX_iter_next(tallyX_iter *it, tallyX_event *ev);
void tallyX_iter_end(tallyX_iter *it);

#endif /* TALLY_TOOLS_CAPTURE_READ_H */
