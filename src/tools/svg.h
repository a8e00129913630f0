/* svg.h - what `tally plot` needs to write SVG: escaped text, human units, axis
 * ticks, colours (svg.c); and the two pictures (timeline.c, flame.c).  The HTML
 * report (report.c) uses the same escaper and the memory-over-time picture.
 * Internal to the tools. */
#ifndef TALLY_TOOLS_SVG_H
#define TALLY_TOOLS_SVG_H

#include "analyze.h"
#include "symbolize.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* s as XML character data or attribute value: & < > " ' escaped, control characters
 * and bytes that are not valid UTF-8 replaced by '?'; at most max bytes of s (0: all),
 * with ".." appended when cut. */
void tallyX_svg_text(FILE *f, const char *s, size_t max);
/* bytes as "1.5 MiB" (B, KiB, MiB, GiB; 3 significant digits). */
void tallyX_fmt_bytes(double bytes, char *buf, size_t len);
/* ns as "12.5 ms" (µs below 1 ms, ms below 10 s, else s). */
void tallyX_fmt_time(double ns, char *buf, size_t len);
/* A "nice" tick step (1, 2 or 5 times a power of ten) giving about n ticks over range. */
double tallyX_nice_step(double range, int n);
/* A colour "#rrggbb" from a hash of name, in a warm (flame) palette. */
void tallyX_svg_color(const char *name, char out[8]);

/* What both pictures are given. */
typedef struct tallyX_plot_in {
    const tallyX_capture *cap;
    const tallyX_analysis *a;
    tallyX_sym *sym;
    const char *title;          /* the program's name and arguments */
    int in_html;                /* inlined in an HTML page: no xmlns attribute (the HTML
                                 * parser puts <svg> in the SVG namespace), so a page of
                                 * `tally report` names no URL at all */
} tallyX_plot_in;

/* The program's name and arguments (argv[0] by its base name), or its executable's
 * path when the capture has no arguments: the pictures' and the HTML report's title.
 * malloc'ed; NULL when out of memory. */
char *tallyX_plot_title(const tallyX_capture *cap);

/* Memory over time: live heap bytes against time, peak marked.  -1: out of memory. */
int tallyX_timeline_svg(FILE *f, const tallyX_plot_in *in);

enum { TALLYX_FLAME_ALLOC, TALLYX_FLAME_PEAK, TALLYX_FLAME_EXIT };
/* A flame graph (icicle: callers on top) of the stacks weighted by bytes allocated
 * over the run, live at the peak or live at exit.  -1: out of memory. */
int tallyX_flame_svg(FILE *f, const tallyX_plot_in *in, int what);

#endif /* TALLY_TOOLS_SVG_H */
