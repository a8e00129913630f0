/* tally.c - the `tally` command line: dispatches to the subcommands.
 *
 *   tally run [--frames N] [--sample BYTES] -o FILE -- PROGRAM [ARGS]   (run.c)
 *   tally report FILE [--format text|json|html] [--top N]               (report.c)
 *   tally diff A B [--format text|json] [--top N] [--by site|stack] [--at exit|peak]
 *                                                                       (diff.c)
 *   tally plot FILE -o OUT.svg|OUT.html [--flame alloc|peak|exit]       (plot.c)
 *
 * docs/profiler.md describes them.  Exit status: a subcommand's own; 2 for usage
 * errors.
 */
#include "tools.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tally run [--frames N] [--sample BYTES] -o FILE -- PROGRAM [ARGS]\n"
            "       tally report FILE [--format text|json|html] [--top N]\n"
            "       tally diff A B [--format text|json] [--top N] [--by site|stack]\n"
            "                  [--at exit|peak]\n"
            "       tally plot FILE -o OUT.svg|OUT.html [--flame alloc|peak|exit]\n"
            "\n"
            "run      profile the heap of an unmodified dynamically linked program\n"
            "         (--frames: call-stack depth, default 32; --sample: record one\n"
            "         allocation per BYTES bytes on average instead of all of them)\n"
            "report   peak, totals, top allocation sites, leaks, temporary allocations\n"
            "         and a size histogram of a capture\n"
            "diff     what grew and what shrank from capture A to capture B, by site\n"
            "plot     memory over time and a flame graph of allocation sites (SVG, HTML)\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "run") == 0)
        return tallyX_run_main(argc - 1, argv + 1);
    if (strcmp(cmd, "report") == 0)
        return tallyX_report_main(argc - 1, argv + 1);
    if (strcmp(cmd, "diff") == 0)
        return tallyX_diff_main(argc - 1, argv + 1);
    if (strcmp(cmd, "plot") == 0)
        return tallyX_plot_main(argc - 1, argv + 1);
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "tally: unknown command '%s' (run, report, diff, plot)\n", cmd);
    return 2;
}
