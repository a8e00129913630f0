/* fuzz_snapshot_load.c - libFuzzer target for the snapshot loader
 * (tally_trace_snapshot_load_memory, src/trace/load.c): any input must give a
 * snapshot that every snapshot function accepts, or NULL with TALLY_EFORMAT, and
 * must leave the runtime's heap as it found it.  Built with -DTALLY_FUZZ=ON and
 * clang (src/tools/CMakeLists.txt, which also instruments the library for
 * coverage); not part of the test suite:
 *   ./fuzz_snapshot_load -max_total_time=60 corpus/     (corpus: some dumps) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "tally/tally.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t blocks_in_use(tally_rt *rt)
{
    struct tally_heap_stats st;
    if (tally_heap_stats(rt, &st) != 0)
        abort();
    return st.blocks_in_use;
}

static void exercise(tally_trace_snapshot *s)
{
    size_t total, n;
    size_t count = tally_trace_snapshot_count(s, &total);
    tally_trace t;
    for (size_t i = 0; i < count; i++)
        if (tally_trace_snapshot_get(s, i, &t) != 0 || t.site.file == NULL)
            abort();
    for (int k = TALLY_TRACE_BY_LINE; k <= TALLY_TRACE_BY_TRACEBACK; k++)
        tally_trace_release(tally_trace_statistics(s, (tally_trace_key)k, &n));
    tally_trace_release(tally_trace_compare(s, s, TALLY_TRACE_BY_TRACEBACK, &n));
    tally_trace_filter f = {1, "*.c", 0, 0, 0};
    tally_trace_snapshot_free(tally_trace_snapshot_filter(s, &f, 1));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static tally_rt *rt; /* one runtime for the whole run (a fuzzer's own state) */
    if (rt == NULL && (rt = tally_open(NULL)) == NULL)
        abort();
    size_t base = blocks_in_use(rt);
    tally_trace_snapshot *s = tally_trace_snapshot_load_memory(rt, data, size);
    if (s != NULL) {
        exercise(s);
        tally_trace_snapshot_free(s);
    } else if (tally_last_error(rt) != TALLY_EFORMAT) {
        fprintf(stderr, "unexpected error: %s\n", tally_last_error_message(rt));
        abort();
    }
    if (blocks_in_use(rt) != base)
        abort(); /* the loader left something behind */
    return 0;
}
