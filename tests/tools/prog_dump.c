/* prog_dump.c - dumps a snapshot of Tally's tracer for the end-to-end tests of
 * `tally report` and `tally diff` on snapshot dumps (run_profiler_tests.py).
 *
 *     tally_prog_dump OUT NFRAMES NBIG [odd]
 *
 * traces NBIG blocks of 1000 bytes from make_big and 5 blocks of 64 bytes from
 * make_small (their lines carry the markers the test looks for) with tracebacks
 * of NFRAMES frames, dumps the snapshot to OUT, and exits 0 (1 with a message on
 * failure).  With "odd", one more block of 777 bytes is traced as allocated in a
 * file whose name holds HTML's special characters and UTF-8 (ODD_FILE), for the
 * escaping test of the HTML report.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tally/tally.h"

static __attribute__((noinline)) void *make_big(tally_rt *rt)
{
    return tally_malloc(rt, 1000); /* BIG_LINE */
}

static __attribute__((noinline)) void *make_small(tally_rt *rt)
{
    return tally_malloc(rt, 64); /* SMALL_LINE */
}

#define ODD_FILE "dir/x<&>y \"q\" 'a' \xc3\xa9.c"

int main(int argc, char **argv)
{
    if (argc != 4 && !(argc == 5 && strcmp(argv[4], "odd") == 0)) {
        fprintf(stderr, "usage: %s OUT NFRAMES NBIG [odd]\n", argv[0]);
        return 2;
    }
    tally_rt *rt = tally_open(NULL);
    int nbig = atoi(argv[3]);
    void *blocks[64 + 5], *odd = NULL;
    if (rt == NULL || nbig < 0 || nbig > 64 || tally_trace_start(rt, atoi(argv[2])) != 0)
        return 1;
    for (int i = 0; i < nbig; i++)
        blocks[i] = make_big(rt);
    for (int i = 0; i < 5; i++)
        blocks[nbig + i] = make_small(rt);
    if (argc == 5)
        odd = tally_malloc_at(rt, 777, ODD_FILE, 42);
    tally_trace_snapshot *snap = tally_trace_take_snapshot(rt);
    int rc = snap != NULL ? tally_trace_snapshot_dump(snap, argv[1]) : -1;
    if (rc != 0)
        fprintf(stderr, "prog_dump: %s\n", tally_last_error_message(rt));
    tally_trace_snapshot_free(snap);
    for (int i = 0; i < nbig + 5; i++)
        tally_free(rt, blocks[i]);
    tally_free(rt, odd);
    tally_close(rt);
    return rc != 0;
}
