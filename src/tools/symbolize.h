/* symbolize.h - function, file and line for a capture's frames (libdw). */
#ifndef TALLY_TOOLS_SYMBOLIZE_H
#define TALLY_TOOLS_SYMBOLIZE_H

#include "capture_read.h"

typedef struct tallyX_frame {
    uint64_t addr;              /* the frame as recorded */
    char *function;             /* NULL if unknown */
    char *file;                 /* source file, NULL if unknown */
    int line;                   /* 0 if unknown */
    const char *module;         /* base name of the module, NULL if unknown */
    uint64_t offset;            /* addr minus the module's load bias */
} tallyX_frame;

typedef struct tallyX_sym tallyX_sym;

tallyX_sym *tallyX_sym_open(const tallyX_capture *cap);
/* The frame's names (cached; valid until tallyX_sym_close).  kind: TALLY_STACK_*. */
const tallyX_frame *tallyX_sym_frame(tallyX_sym *s, uint8_t kind, uint64_t frame);
void tallyX_sym_close(tallyX_sym *s);

#endif /* TALLY_TOOLS_SYMBOLIZE_H */
