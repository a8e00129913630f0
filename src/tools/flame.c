/* flame.c - the flame graph of `tally plot`: allocation sites by call stack, each
 * rectangle as wide as the bytes allocated through it (Brendan Gregg's flame graph,
 * drawn as an icicle: the root "all" on top, callers above their callees, the
 * allocating function at the bottom of each column).
 *
 * The weight of a stack is its bytes allocated over the run (TALLYX_FLAME_ALLOC), live
 * at the peak (_PEAK) or live at exit (_EXIT), from analyze.c.  The stacks are merged
 * into a tree from the outermost frame (main, or the thread's start) inwards; two
 * frames are the same node when their symbolised names are equal (function, file and
 * line; module and offset without line information), so a function appears once per
 * distinct call path and call line.  Stacks as deep as the capture's --frames were
 * probably cut short: they hang under one "[stacks cut at --frames]" box instead of
 * posing as roots of their own.  Invariants: a node's value is the sum of the
 * weights of the stacks through it, at least the sum of its children's (the rest was
 * allocated by the function itself, for the innermost frame); widths are
 * value / total * the root's width, so the widths of a node's children add up to at
 * most its own and the root's is the total.  Children are laid out largest first.
 * Rectangles narrower than 0.2 pixel are not drawn (their bytes still count in their
 * parents); labels are drawn when at least three characters fit, cut with "..".
 * Colours: a hash of the function name (svg.c), so a function keeps its colour.
 */
#include "svg.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define W 1200          /* picture width, pixels */
#define MARGIN 10
#define ROW 18          /* height of a frame row */
#define TOP 64          /* title and subtitle */
#define CHAR_W 7.0      /* average glyph width of the 11 px label font */

struct node {
    const tallyX_frame *fr;     /* NULL: the root, or an unknown stack; else &frame */
    tallyX_frame frame;         /* a copy: the symboliser's entries move, its names do not */
    double v;                   /* bytes through this node */
    size_t child, next;         /* first child, next sibling (0: none; node 0 is the root) */
    int depth;
};

struct tree {
    struct node *n;
    size_t len, cap;
    int max_depth;
};

static int same_str(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static int same_frame(const tallyX_frame *a, const tallyX_frame *b)
{
    if (a == b)
        return 1;
    if (a == NULL || b == NULL)
        return 0;
    if (!same_str(a->function, b->function) || !same_str(a->file, b->file) || a->line != b->line)
        return 0;
    if (a->file != NULL)
        return 1;
    if (a->function != NULL)
        return same_str(a->module, b->module);
    return same_str(a->module, b->module) && a->offset == b->offset;
}

/* The child of node p for frame fr, made if missing; 0 when out of memory. */
static size_t child_of(struct tree *t, size_t p, const tallyX_frame *fr)
{
    for (size_t c = t->n[p].child; c != 0; c = t->n[c].next) {
        if (same_frame(t->n[c].fr, fr))
            return c;
    }
    if (t->len == t->cap) {
        size_t nc = t->cap * 2;
        struct node *nn = realloc(t->n, nc * sizeof *nn);
        if (nn == NULL)
            return 0;
        for (size_t i = 0; i < t->len; i++)   /* moved: the self-pointers too */
            nn[i].fr = nn[i].fr != NULL ? &nn[i].frame : NULL;
        t->n = nn;
        t->cap = nc;
    }
    size_t c = t->len++;
    t->n[c] = (struct node){ NULL, { 0 }, 0, 0, t->n[p].child, t->n[p].depth + 1 };
    if (fr != NULL) {
        t->n[c].frame = *fr;
        t->n[c].fr = &t->n[c].frame;
    }
    t->n[p].child = c;
    if (t->n[c].depth > t->max_depth)
        t->max_depth = t->n[c].depth;
    return c;
}

static double weight(const tallyX_stack_stats *s, int what)
{
    return what == TALLYX_FLAME_PEAK ? s->peak_bytes
         : what == TALLYX_FLAME_EXIT ? s->live_bytes : s->alloc_bytes;
}

/* The parent of stacks as deep as --frames allowed: they were probably cut, and
 * their outermost recorded frame would otherwise pose as a root. */
static const tallyX_frame cut_frame = { 0, "[stacks cut at --frames]", NULL, 0, NULL, 0 };

static int build(struct tree *t, const tallyX_plot_in *in, int what)
{
    t->cap = 1024;
    t->n = calloc(t->cap, sizeof *t->n);
    if (t->n == NULL)
        return -1;
    t->len = 1;
    for (size_t i = 0; i < in->cap->nstacks; i++) {
        double w = weight(&in->a->stacks[i], what);
        if (!(w >= 0.5))
            continue;
        const tallyX_stack *s = &in->cap->stacks[i];
        size_t p = 0;
        t->n[0].v += w;
        if (s->n == 0 || (in->cap->frames > 1 && s->n >= in->cap->frames)) {
            /* Unknown, or cut by --frames: its outermost frame is not the real one. */
            if ((p = child_of(t, 0, s->n == 0 ? NULL : &cut_frame)) == 0)
                return -1;
            t->n[p].v += w;
        }
        for (uint32_t k = s->n; k-- > 0;) {
            const tallyX_frame *fr = tallyX_sym_frame(in->sym, s->kind, s->frames[k]);
            if ((p = child_of(t, p, fr)) == 0)
                return -1;
            t->n[p].v += w;
        }
    }
    return 0;
}

static const struct node *g_nodes;  /* for by_value */

static int by_value(const void *x, const void *y)
{
    double a = g_nodes[*(const size_t *)x].v, b = g_nodes[*(const size_t *)y].v;
    return a < b ? 1 : a > b ? -1 : 0;
}

static void frame_name(const tallyX_frame *fr, char *buf, size_t len)
{
    if (fr == NULL)
        snprintf(buf, len, "[unknown stack]");
    else if (fr->function != NULL)
        snprintf(buf, len, "%s", fr->function);
    else if (fr->module != NULL)
        snprintf(buf, len, "%s+0x%" PRIx64, fr->module, fr->offset);
    else
        snprintf(buf, len, "0x%" PRIx64, fr->addr);
}

static void draw_node(FILE *f, const struct tree *t, size_t i, double x, double total,
                      const char *what)
{
    const struct node *nd = &t->n[i];
    double w = nd->v / total * (W - 2 * MARGIN);
    if (w < 0.2)
        return;
    double y = TOP + nd->depth * ROW;
    char name[512], where[600] = "", col[8];
    if (i == 0)
        snprintf(name, sizeof name, "all");
    else
        frame_name(nd->fr, name, sizeof name);
    if (nd->fr != NULL && nd->fr->file != NULL)
        snprintf(where, sizeof where, " (%s:%d)", nd->fr->file, nd->fr->line);
    else if (nd->fr != NULL && nd->fr->module != NULL && nd->fr->function != NULL)
        snprintf(where, sizeof where, " (%s)", nd->fr->module);
    if (i == 0)
        snprintf(col, sizeof col, "#c8c8c8");
    else
        tallyX_svg_color(name, col);
    fprintf(f, "<g class=\"frame\" data-depth=\"%d\" data-bytes=\"%.0f\"><title>", nd->depth, nd->v);
    tallyX_svg_text(f, name, 0);
    tallyX_svg_text(f, where, 0);
    char hb[64];
    tallyX_fmt_bytes(nd->v, hb, sizeof hb);
    fprintf(f, "\n%.0f bytes (%s) %s, %.2f%%</title>"
               "<rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%d\" fill=\"%s\" rx=\"2\" "
               "stroke=\"#ffffff\" stroke-width=\"0.5\"/>",
            nd->v, hb, what, 100.0 * nd->v / total, x, y, w, ROW - 1, col);
    size_t fit = (size_t)((w - 6) / CHAR_W);
    if (i == 0 && fit >= 3) {
        snprintf(name, sizeof name, "all: %s %s", hb, what);
    }
    if (fit >= 3) {
        fprintf(f, "<text x=\"%.2f\" y=\"%.1f\">", x + 3, y + ROW - 5);
        tallyX_svg_text(f, name, strlen(name) > fit ? fit - 2 : 0);
        fputs("</text>", f);
    }
    fputs("</g>\n", f);
    size_t nc = 0;
    for (size_t c = nd->child; c != 0; c = t->n[c].next)
        nc++;
    if (nc == 0)
        return;
    size_t *kids = malloc(nc * sizeof *kids);
    if (kids == NULL)
        return;     /* out of memory: the picture lacks this subtree */
    nc = 0;
    for (size_t c = nd->child; c != 0; c = t->n[c].next)
        kids[nc++] = c;
    g_nodes = t->n;
    qsort(kids, nc, sizeof *kids, by_value);
    for (size_t k = 0; k < nc; k++) {
        draw_node(f, t, kids[k], x, total, what);
        x += t->n[kids[k]].v / total * (W - 2 * MARGIN);
    }
    free(kids);
}

int tallyX_flame_svg(FILE *f, const tallyX_plot_in *in, int what)
{
    struct tree t;
    memset(&t, 0, sizeof t);
    if (build(&t, in, what) != 0) {
        free(t.n);
        return -1;
    }
    const char *desc = what == TALLYX_FLAME_PEAK ? "live at the peak"
                     : what == TALLYX_FLAME_EXIT ? "live at exit (leaks)" : "allocated over the run";
    int h = TOP + (t.max_depth + 1) * ROW + 24;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "viewBox=\"0 0 %d %d\" font-family=\"Verdana, DejaVu Sans, sans-serif\" "
               "font-size=\"11\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n",
            W, h, W, h);
    fputs("<text x=\"10\" y=\"26\" font-size=\"16\" font-weight=\"bold\">allocation flame "
          "graph: ", f);
    tallyX_svg_text(f, in->title, 100);
    fprintf(f, "</text>\n<text x=\"10\" y=\"46\" font-size=\"12\" fill=\"#555555\">width: bytes "
               "%s%s; callers above callees; hover a frame for its file:line and "
               "bytes</text>\n",
            desc, in->cap->sample ? " (sampled: estimates)" : "");
    fprintf(f, "<g id=\"flame\" data-total=\"%.0f\" data-width=\"%d\">\n", t.n[0].v, W - 2 * MARGIN);
    if (t.n[0].v > 0)
        draw_node(f, &t, 0, MARGIN, t.n[0].v, desc);
    else
        fprintf(f, "<text x=\"%d\" y=\"%d\">no bytes %s</text>\n", MARGIN, TOP + 12, desc);
    fputs("</g>\n</svg>\n", f);
    free(t.n);
    return 0;
}
