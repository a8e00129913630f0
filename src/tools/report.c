/* report.c - `tally report FILE [--format text|json|html] [--top N]`.
 *
 * Loads the capture (capture_read.c), replays it (analyze.c) and prints: the
 * program and the state of the capture (complete, truncated, damaged, sampled; or
 * that it is a snapshot dump of Tally's tracer, whose traces are its "leaks"),
 * totals, the peak, what was live at the end (leaks), temporary allocations, the top
 * allocation sites at the peak (by bytes and by count) and over the run, the leaks
 * grouped by call stack, and a size histogram.  A site is the innermost frame (the
 * call of the allocation function); stacks with the same frames are one stack.
 * Symbols are looked up (symbolize.c) only for what is printed.  The JSON output has
 * the same content with exact numbers, for scripts and tests.  The HTML output is
 * one self-contained page (no script, no URL): the summary as a table, the memory-over-
 * time picture of `tally plot` (timeline.c) inlined as SVG, then each ranking, the
 * leaks and the histogram as tables, each site unfolding (<details>) to its stack;
 * every string from the capture is escaped (svg.c).  All three print the same
 * analysis and rankings.
 */
#define _GNU_SOURCE
#include "tools.h"
#include "json.h"
#include "svg.h"

#include "analyze.h"
#include "trace/capture_format.h"
#include "symbolize.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { FMT_TEXT, FMT_JSON, FMT_HTML };

/* Per-site sums over the stacks whose innermost frame is the site. */
struct site {
    uint8_t kind;
    int has_frame;
    uint64_t frame;
    size_t stack;               /* one stack of the site (the heaviest), for display */
    tallyX_stack_stats st;
};

struct ctx {
    const tallyX_capture *cap;
    const tallyX_analysis *a;
    tallyX_sym *sym;
    FILE *out;
    int fmt;
    size_t top;
    struct site *sites;
    size_t nsites;
};

static int site_key_cmp(const void *x, const void *y)
{
    const struct site *a = x, *b = y;
    if (a->has_frame != b->has_frame)
        return a->has_frame < b->has_frame ? -1 : 1;
    if (a->kind != b->kind)
        return a->kind < b->kind ? -1 : 1;
    return a->frame < b->frame ? -1 : a->frame > b->frame;
}

static void stats_add(tallyX_stack_stats *d, const tallyX_stack_stats *s)
{
    d->alloc_count += s->alloc_count;
    d->alloc_bytes += s->alloc_bytes;
    d->peak_count += s->peak_count;
    d->peak_bytes += s->peak_bytes;
    d->live_count += s->live_count;
    d->live_bytes += s->live_bytes;
    d->temp_count += s->temp_count;
}

static int build_sites(struct ctx *c)
{
    const tallyX_capture *cap = c->cap;
    struct site *all = calloc(cap->nstacks ? cap->nstacks : 1, sizeof *all);
    if (all == NULL)
        return -1;
    for (size_t i = 0; i < cap->nstacks; i++) {
        const tallyX_stack *s = &cap->stacks[i];
        all[i].kind = s->kind;
        all[i].has_frame = s->n > 0;
        all[i].frame = s->n > 0 ? s->frames[0] : 0;
        all[i].stack = i;
        all[i].st = c->a->stacks[i];
    }
    qsort(all, cap->nstacks, sizeof *all, site_key_cmp);
    size_t n = 0;
    for (size_t i = 0; i < cap->nstacks; i++) {
        if (all[i].st.alloc_count == 0)
            continue;
        if (n > 0 && site_key_cmp(&all[n - 1], &all[i]) == 0) {
            if (all[i].st.alloc_bytes > c->a->stacks[all[n - 1].stack].alloc_bytes)
                all[n - 1].stack = all[i].stack;
            stats_add(&all[n - 1].st, &all[i].st);
        } else {
            all[n++] = all[i];
        }
    }
    c->sites = all;
    c->nsites = n;
    return 0;
}

/* ---- sorting by a chosen figure ------------------------------------------------------ */

static double field_of(const tallyX_stack_stats *s, size_t off)
{
    double v;
    memcpy(&v, (const char *)s + off, sizeof v);
    return v;
}

/* qsort_r's comparison: arg points to the offset of the double in
 * tallyX_stack_stats to sort on (no global: glibc's qsort_r passes it). */
static int by_field_desc(const void *x, const void *y, void *arg)
{
    size_t off = *(const size_t *)arg;
    double a = field_of(&((const struct site *)x)->st, off);
    double b = field_of(&((const struct site *)y)->st, off);
    return a < b ? 1 : a > b ? -1 : 0;
}

/* The sites (or stacks, if stacks) with a nonzero figure, sorted, at most top. */
static size_t ranked(struct ctx *c, size_t off, int stacks, struct site **out)
{
    size_t n = stacks ? c->cap->nstacks : c->nsites;
    struct site *r = calloc(n ? n : 1, sizeof *r);
    if (r == NULL) {
        *out = NULL;
        return 0;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        struct site s;
        if (stacks) {
            memset(&s, 0, sizeof s);
            s.stack = i;
            s.st = c->a->stacks[i];
            s.kind = c->cap->stacks[i].kind;
            s.has_frame = c->cap->stacks[i].n > 0;
            s.frame = s.has_frame ? c->cap->stacks[i].frames[0] : 0;
        } else {
            s = c->sites[i];
        }
        if (field_of(&s.st, off) > 0.5)
            r[k++] = s;
    }
    qsort_r(r, k, sizeof *r, by_field_desc, &off);
    *out = r;
    return k < c->top ? k : c->top;
}

/* ---- names --------------------------------------------------------------------------- */

static void frame_text(struct ctx *c, uint8_t kind, uint64_t frame, char *buf, size_t len)
{
    const tallyX_frame *f = tallyX_sym_frame(c->sym, kind, frame);
    char where[512] = "";
    if (f->file != NULL)
        snprintf(where, sizeof where, " (%s:%d)", f->file, f->line);
    else if (f->module != NULL)
        snprintf(where, sizeof where, " (%s+0x%" PRIx64 ")", f->module, f->offset);
    snprintf(buf, len, "%s%s", f->function ? f->function : "??", where);
    if (f->function == NULL && f->file == NULL && f->module == NULL)
        snprintf(buf, len, "0x%" PRIx64, frame);
}


static void json_frame(struct ctx *c, uint8_t kind, uint64_t frame)
{
    const tallyX_frame *f = tallyX_sym_frame(c->sym, kind, frame);
    fprintf(c->out, "{\"address\":\"0x%" PRIx64 "\",\"function\":", frame);
    tallyX_json_str(c->out, f->function);
    fputs(",\"file\":", c->out);
    tallyX_json_str(c->out, f->file);
    fprintf(c->out, ",\"line\":%d,\"module\":", f->line);
    tallyX_json_str(c->out, f->module);
    fputc('}', c->out);
}

static void json_stack(struct ctx *c, size_t idx)
{
    const tallyX_stack *s = &c->cap->stacks[idx];
    fputc('[', c->out);
    for (uint32_t i = 0; i < s->n; i++) {
        if (i)
            fputc(',', c->out);
        json_frame(c, s->kind, s->frames[i]);
    }
    fputc(']', c->out);
}

/* ---- the sections ------------------------------------------------------------------ */

#define FIELD(f) offsetof(tallyX_stack_stats, f)

struct table {
    const char *title, *key;    /* text title, JSON key */
    size_t sort, count, bytes;  /* fields: sorted on, shown as count and bytes */
};

static const struct table site_tables[] = {
    { "top sites by bytes live at the peak", "peak_by_bytes", FIELD(peak_bytes),
      FIELD(peak_count), FIELD(peak_bytes) },
    { "top sites by blocks live at the peak", "peak_by_count", FIELD(peak_count),
      FIELD(peak_count), FIELD(peak_bytes) },
    { "top sites by bytes allocated over the run", "allocated_by_bytes", FIELD(alloc_bytes),
      FIELD(alloc_count), FIELD(alloc_bytes) },
    { "top sites by allocations over the run", "allocated_by_count", FIELD(alloc_count),
      FIELD(alloc_count), FIELD(alloc_bytes) },
    { "top sites by bytes live at exit", "exit_by_bytes", FIELD(live_bytes), FIELD(live_count),
      FIELD(live_bytes) },
    { "top sites by blocks live at exit", "exit_by_count", FIELD(live_count), FIELD(live_count),
      FIELD(live_bytes) },
    { "top sites by temporary allocations", "temporary_by_count", FIELD(temp_count),
      FIELD(temp_count), FIELD(alloc_bytes) },
};

static double hist_lo(int b)
{
    return b == 0 ? 0 : (double)(1ull << (b - 1));
}

static const char *const kind_names[] = { "malloc", "calloc", "realloc", "aligned", "new",
                                          "new[]" };

/* The state of the capture (sampled, complete, cut, damaged), one note a line, each
 * between pre and post: the same words in the text and HTML reports. */
static void capture_notes(struct ctx *c, const char *pre, const char *post)
{
    const tallyX_capture *cap = c->cap;
    FILE *o = c->out;
    if (cap->sample)
        fprintf(o, "%ssampled: one allocation per %" PRIu64 " bytes on average; counts and "
                   "bytes are estimates%s", pre, cap->sample, post);
    if (!cap->snapshot && cap->exited)
        fprintf(o, "%scapture: complete, the program ran for %.1f ms%s", pre,
                (double)cap->exit_ns / 1e6, post);
    else if (!cap->snapshot)
        fprintf(o, "%snote: the program did not reach exit() (crashed or killed): \"at exit\" "
                   "means at its last recorded event%s", pre, post);
    if (cap->truncated)
        fprintf(o, "%snote: the capture is truncated (the file ends inside a record); figures "
                   "cover what it holds%s", pre, post);
    if (cap->damaged)
        fprintf(o, "%swarning: %zu chunk(s) of the capture hold invalid records (corrupt); "
                   "figures cover the valid records%s", pre, cap->damaged, post);
}

static void print_text(struct ctx *c)
{
    const tallyX_capture *cap = c->cap;
    const tallyX_analysis *a = c->a;
    FILE *o = c->out;
    if (cap->snapshot) {
        fprintf(o, "snapshot dump of Tally's tracer (pid %" PRIu64 ", traceback limit %u): "
                   "its traces are the blocks live when the snapshot was taken, \"at exit\" "
                   "means in the snapshot\n", cap->pid, cap->frames);
    } else {
        fprintf(o, "program: ");
        for (size_t i = 0; i < cap->argc; i++)
            fprintf(o, "%s%s", i ? " " : "", cap->argv[i]);
        fprintf(o, "%s(pid %" PRIu64 ", %u frames per stack)\n", cap->argc ? " " : "", cap->pid,
                cap->frames);
    }
    capture_notes(c, "", "\n");
    fprintf(o, "\ntotals\n");
    fprintf(o, "  allocations      %.0f (", a->allocs);
    for (int k = 0; k < TALLY_AK_COUNT_; k++)
        fprintf(o, "%s%s %.0f", k ? ", " : "", kind_names[k], a->kind_count[k]);
    fprintf(o, ")\n  frees            %.0f\n", a->frees);
    fprintf(o, "  bytes allocated  %.0f\n", a->bytes_allocated);
    fprintf(o, "  temporary        %.0f (%.1f%% of allocations)\n", a->temporary,
            a->allocs > 0 ? 100.0 * a->temporary / a->allocs : 0.0);
    fprintf(o, "  peak heap        %.0f bytes in %.0f blocks, at %.1f ms (event %" PRIu64 ")\n",
            a->peak_bytes, a->peak_blocks, (double)a->peak_ns / 1e6, a->peak_seq);
    fprintf(o, "  at exit          %.0f bytes in %.0f blocks not freed (leaks)\n", a->end_bytes,
            a->end_blocks);
    if (a->unmatched_frees)
        fprintf(o, "  unmatched frees  %" PRIu64 " (blocks allocated before recording began)\n",
                a->unmatched_frees);

    char name[1024];
    for (size_t t = 0; t < sizeof site_tables / sizeof *site_tables; t++) {
        const struct table *tb = &site_tables[t];
        struct site *r;
        size_t n = ranked(c, tb->sort, 0, &r);
        if (n > 0) {
            fprintf(o, "\n%s\n  %14s %12s  site\n", tb->title, "bytes", "blocks");
            for (size_t i = 0; i < n; i++) {
                if (r[i].has_frame)
                    frame_text(c, r[i].kind, r[i].frame, name, sizeof name);
                else
                    snprintf(name, sizeof name, "[unknown]");
                fprintf(o, "  %14.0f %12.0f  %s\n", field_of(&r[i].st, tb->bytes),
                        field_of(&r[i].st, tb->count), name);
            }
        }
        free(r);
    }

    struct site *r;
    size_t n = ranked(c, FIELD(live_bytes), 1, &r);
    if (n > 0) {
        fprintf(o, "\nleaks: blocks not freed at exit, by call stack\n");
        for (size_t i = 0; i < n; i++) {
            const tallyX_stack *s = &cap->stacks[r[i].stack];
            fprintf(o, "  %.0f bytes in %.0f blocks, allocated at\n", r[i].st.live_bytes,
                    r[i].st.live_count);
            for (uint32_t k = 0; k < s->n; k++) {
                frame_text(c, s->kind, s->frames[k], name, sizeof name);
                fprintf(o, "    #%-2u %s\n", k, name);
            }
            if (s->n == 0)
                fprintf(o, "    [unknown stack]\n");
        }
    }
    free(r);

    fprintf(o, "\nsize histogram (requested bytes)\n  %-22s %12s %14s\n", "size", "blocks", "bytes");
    for (int b = 0; b < TALLYX_HIST_BUCKETS; b++) {
        if (a->hist_count[b] == 0)
            continue;
        char range[64];
        if (b == 0)
            snprintf(range, sizeof range, "0");
        else if (b == TALLYX_HIST_BUCKETS - 1)
            snprintf(range, sizeof range, ">= %.0f", hist_lo(b));
        else
            snprintf(range, sizeof range, "%.0f - %.0f", hist_lo(b), hist_lo(b + 1) - 1);
        fprintf(o, "  %-22s %12.0f %14.0f\n", range, a->hist_count[b], a->hist_bytes[b]);
    }
}

static void print_json(struct ctx *c)
{
    const tallyX_capture *cap = c->cap;
    const tallyX_analysis *a = c->a;
    FILE *o = c->out;
    fprintf(o, "{\"format_version\":\"%u.%u\",\"pid\":%" PRIu64 ",\"argv\":[", cap->major,
            cap->minor, cap->pid);
    for (size_t i = 0; i < cap->argc; i++) {
        if (i)
            fputc(',', o);
        tallyX_json_str(o, cap->argv[i]);
    }
    fprintf(o, "],\"exe\":");
    tallyX_json_str(o, cap->exe);
    fprintf(o, ",\"snapshot\":%s", cap->snapshot ? "true" : "false");
    fprintf(o, ",\"frames\":%u,\"sample_bytes\":%" PRIu64 ",\"exited\":%s,\"truncated\":%s,"
               "\"damaged_chunks\":%zu,\"duration_ns\":%" PRIu64 ",\n",
            cap->frames, cap->sample, cap->exited ? "true" : "false",
            cap->truncated ? "true" : "false", cap->damaged,
            cap->exited ? cap->exit_ns : a->last_ns);
    fprintf(o, "\"totals\":{\"allocations\":%.0f,\"frees\":%.0f,\"bytes_allocated\":%.0f,"
               "\"temporary\":%.0f,\"unmatched_frees\":%" PRIu64 ",\"by_kind\":{",
            a->allocs, a->frees, a->bytes_allocated, a->temporary, a->unmatched_frees);
    for (int k = 0; k < TALLY_AK_COUNT_; k++)
        fprintf(o, "%s\"%s\":%.0f", k ? "," : "", kind_names[k], a->kind_count[k]);
    fprintf(o, "}},\n\"peak\":{\"bytes\":%.0f,\"blocks\":%.0f,\"seq\":%" PRIu64
               ",\"time_ns\":%" PRIu64 "},\n",
            a->peak_bytes, a->peak_blocks, a->peak_seq, a->peak_ns);
    fprintf(o, "\"exit\":{\"bytes\":%.0f,\"blocks\":%.0f},\n", a->end_bytes, a->end_blocks);
    for (size_t t = 0; t < sizeof site_tables / sizeof *site_tables; t++) {
        const struct table *tb = &site_tables[t];
        struct site *r;
        size_t n = ranked(c, tb->sort, 0, &r);
        fprintf(o, "\"%s\":[", tb->key);
        for (size_t i = 0; i < n; i++) {
            fprintf(o, "%s\n {\"count\":%.0f,\"bytes\":%.0f,\"site\":", i ? "," : "",
                    field_of(&r[i].st, tb->count), field_of(&r[i].st, tb->bytes));
            if (r[i].has_frame)
                json_frame(c, r[i].kind, r[i].frame);
            else
                fputs("null", o);
            fputs(",\"stack\":", o);
            json_stack(c, r[i].stack);
            fputc('}', o);
        }
        fputs("],\n", o);
        free(r);
    }
    struct site *r;
    size_t n = ranked(c, FIELD(live_bytes), 1, &r);
    size_t all = 0;
    for (size_t i = 0; i < cap->nstacks; i++)
        all += a->stacks[i].live_count > 0.5;
    fprintf(o, "\"leak_stacks\":%zu,\"leaks\":[", all);
    for (size_t i = 0; i < n; i++) {
        fprintf(o, "%s\n {\"count\":%.0f,\"bytes\":%.0f,\"stack\":", i ? "," : "",
                r[i].st.live_count, r[i].st.live_bytes);
        json_stack(c, r[i].stack);
        fputc('}', o);
    }
    free(r);
    fputs("],\n\"histogram\":[", o);
    int first = 1;
    for (int b = 0; b < TALLYX_HIST_BUCKETS; b++) {
        if (a->hist_count[b] == 0)
            continue;
        fprintf(o, "%s{\"min\":%.0f,\"count\":%.0f,\"bytes\":%.0f}", first ? "" : ",",
                hist_lo(b), a->hist_count[b], a->hist_bytes[b]);
        first = 0;
    }
    fputs("]}\n", o);
}

/* ---- HTML ---------------------------------------------------------------------------- */

/* Strings from the capture (paths, symbols, arguments) go through tallyX_svg_text,
 * the XML escaper of the pictures: & < > " ' escaped, which is all HTML needs in
 * text and quoted attributes; valid UTF-8 kept as it is, other bytes replaced. */
static void html_text(FILE *o, const char *s)
{
    tallyX_svg_text(o, s != NULL ? s : "", 0);
}

static void html_frame(struct ctx *c, uint8_t kind, uint64_t frame)
{
    const tallyX_frame *f = tallyX_sym_frame(c->sym, kind, frame);
    FILE *o = c->out;
    int named = f->file != NULL || f->module != NULL;
    if (f->function == NULL || f->function[0] != '\0' || !named) {
        /* a snapshot dump's frames without a function have "" and a file:line */
        fputs("<code>", o);
        if (f->function != NULL)
            html_text(o, f->function);
        else if (named)
            fputs("??", o);
        else
            fprintf(o, "0x%" PRIx64, frame);
        fputs("</code> ", o);
    }
    if (f->file != NULL) {
        fputs("<span class=\"loc\">", o);
        html_text(o, f->file);
        fprintf(o, ":%d</span>", f->line);
    } else if (f->module != NULL) {
        fputs("<span class=\"loc\">", o);
        html_text(o, f->module);
        fprintf(o, "+0x%" PRIx64 "</span>", f->offset);
    }
}

/* A stack as its innermost frame, unfolding (no script: <details>) to all its frames. */
static void html_stack(struct ctx *c, size_t idx)
{
    const tallyX_stack *s = &c->cap->stacks[idx];
    FILE *o = c->out;
    if (s->n == 0) {
        fputs("[unknown stack]", o);
        return;
    }
    fputs("<details><summary>", o);
    html_frame(c, s->kind, s->frames[0]);
    fputs("</summary>\n<ol class=\"stack\" start=\"0\">", o);
    for (uint32_t k = 0; k < s->n; k++) {
        fputs("<li>", o);
        html_frame(c, s->kind, s->frames[k]);
        fputs("</li>", o);
    }
    fputs("</ol></details>", o);
}

static const char html_style[] =
    "body{font-family:system-ui,Verdana,sans-serif;margin:1.5em 2em;max-width:1200px;"
    "color:#222;background:#fafafa}h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em}"
    "table{border-collapse:collapse;margin:.4em 0 1em;background:#fff}"
    "th,td{padding:.25em .7em;border-bottom:1px solid #e4e4e4;text-align:left;"
    "vertical-align:top}th{background:#f0f0f0}"
    ".n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}"
    "code{font-size:92%}.loc{color:#666}summary{cursor:pointer}"
    "ol.stack{margin:.3em 0 .2em;padding-left:2.6em;font-size:92%}"
    "p.note{color:#8a5a00}p.none{color:#777}td.bar{width:40%}"
    ".bar div{background:#4a90d9;height:.9em;min-width:1px}"
    "svg{display:block;max-width:100%;height:auto;border:1px solid #ddd}";

static void html_head(struct ctx *c, const char *title)
{
    const tallyX_capture *cap = c->cap;
    FILE *o = c->out;
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
          "<title>tally report: ", o);
    html_text(o, title);
    fprintf(o, "</title>\n<style>%s</style></head>\n<body>\n<h1>tally report: ", html_style);
    html_text(o, title);
    fputs("</h1>\n<p>", o);
    if (cap->snapshot) {
        fprintf(o, "Snapshot dump of Tally's tracer (pid %" PRIu64 ", traceback limit %u): its "
                   "traces are the blocks live when the snapshot was taken; &ldquo;at exit&rdquo; "
                   "means in the snapshot.", cap->pid, cap->frames);
    } else {
        fputs("Program: <code>", o);
        for (size_t i = 0; i < cap->argc; i++) {
            fputs(i ? " " : "", o);
            html_text(o, cap->argv[i]);
        }
        fprintf(o, "</code> (pid %" PRIu64 ", %u frames per stack)", cap->pid, cap->frames);
    }
    fputs("</p>\n", o);
}

static void html_row(FILE *o, const char *name, double v, const char *detail)
{
    fprintf(o, "<tr><th>%s</th><td class=\"n\">%.0f</td><td>%s</td></tr>\n", name, v, detail);
}

static void html_summary(struct ctx *c)
{
    const tallyX_analysis *a = c->a;
    FILE *o = c->out;
    char d[512], t[64];
    size_t n = 0;
    fputs("<h2 id=\"summary\">summary</h2>\n<table class=\"summary\">\n<tbody>\n", o);
    for (int k = 0; k < TALLY_AK_COUNT_ && n < sizeof d; k++)
        n += (size_t)snprintf(d + n, sizeof d - n, "%s%s %.0f", k ? ", " : "", kind_names[k],
                              a->kind_count[k]);
    html_row(o, "allocations", a->allocs, d);
    html_row(o, "frees", a->frees, "");
    tallyX_fmt_bytes(a->bytes_allocated, d, sizeof d);
    html_row(o, "bytes allocated", a->bytes_allocated, d);
    snprintf(d, sizeof d, "%.1f%% of allocations",
             a->allocs > 0 ? 100.0 * a->temporary / a->allocs : 0.0);
    html_row(o, "temporary", a->temporary, d);
    tallyX_fmt_time((double)a->peak_ns, t, sizeof t);
    snprintf(d, sizeof d, "bytes in %.0f blocks, at %s (event %" PRIu64 ")", a->peak_blocks, t,
             a->peak_seq);
    html_row(o, "peak heap", a->peak_bytes, d);
    snprintf(d, sizeof d, "bytes in %.0f blocks not freed (leaks)", a->end_blocks);
    html_row(o, c->cap->snapshot ? "in the snapshot" : "at exit", a->end_bytes, d);
    if (a->unmatched_frees)
        html_row(o, "unmatched frees", (double)a->unmatched_frees,
                 "blocks allocated before recording began");
    fputs("</tbody>\n</table>\n", o);
}

static int html_chart(struct ctx *c, const char *title)
{
    tallyX_plot_in in = { .cap = c->cap, .a = c->a, .sym = c->sym, .title = title,
                          .in_html = 1 };
    fputs("<h2 id=\"timeline\">memory over time</h2>\n", c->out);
    return tallyX_timeline_svg(c->out, &in);
}

static void html_table_head(FILE *o, const char *key, const char *title, const char *last)
{
    fprintf(o, "<h2 id=\"%s\">%s</h2>\n<table>\n<thead><tr><th class=\"n\">bytes</th>"
               "<th class=\"n\">blocks</th><th>%s</th></tr></thead>\n<tbody>\n",
            key, title, last);
}

static void html_table_end(FILE *o, size_t rows)
{
    if (rows == 0)
        fputs("<tr><td colspan=\"3\"><p class=\"none\">none</p></td></tr>\n", o);
    fputs("</tbody>\n</table>\n", o);
}

/* One table per site ranking, even an empty one, so every section is there. */
static void html_sites(struct ctx *c, const struct table *tb)
{
    FILE *o = c->out;
    struct site *r;
    size_t n = ranked(c, tb->sort, 0, &r);
    html_table_head(o, tb->key, tb->title, "site (unfolds to its heaviest stack)");
    for (size_t i = 0; i < n; i++) {
        fprintf(o, "<tr><td class=\"n\">%.0f</td><td class=\"n\">%.0f</td><td>",
                field_of(&r[i].st, tb->bytes), field_of(&r[i].st, tb->count));
        if (r[i].has_frame)
            html_stack(c, r[i].stack);
        else
            fputs("[unknown]", o);
        fputs("</td></tr>\n", o);
    }
    html_table_end(o, n);
    free(r);
}

static void html_leaks(struct ctx *c)
{
    FILE *o = c->out;
    struct site *r;
    size_t n = ranked(c, FIELD(live_bytes), 1, &r);
    html_table_head(o, "leaks", "leaks: blocks not freed at exit, by call stack",
                    "allocated at (unfolds to the stack)");
    for (size_t i = 0; i < n; i++) {
        fprintf(o, "<tr><td class=\"n\">%.0f</td><td class=\"n\">%.0f</td><td>",
                r[i].st.live_bytes, r[i].st.live_count);
        html_stack(c, r[i].stack);
        fputs("</td></tr>\n", o);
    }
    html_table_end(o, n);
    free(r);
}

/* The size histogram, each bucket's bar as wide as its share of the fullest bucket. */
static void html_hist(struct ctx *c)
{
    const tallyX_analysis *a = c->a;
    FILE *o = c->out;
    double most = 0;
    for (int b = 0; b < TALLYX_HIST_BUCKETS; b++)
        most = a->hist_count[b] > most ? a->hist_count[b] : most;
    fputs("<h2 id=\"histogram\">size histogram (requested bytes)</h2>\n<table>\n<thead><tr>"
          "<th class=\"n\">size</th><th class=\"n\">blocks</th><th class=\"n\">bytes</th>"
          "<th>blocks</th></tr></thead>\n<tbody>\n", o);
    for (int b = 0; b < TALLYX_HIST_BUCKETS; b++) {
        if (a->hist_count[b] == 0)
            continue;
        fputs("<tr><td class=\"n\">", o);
        if (b == 0)
            fputs("0", o);
        else if (b == TALLYX_HIST_BUCKETS - 1)
            fprintf(o, "&ge; %.0f", hist_lo(b));
        else
            fprintf(o, "%.0f &ndash; %.0f", hist_lo(b), hist_lo(b + 1) - 1);
        fprintf(o, "</td><td class=\"n\">%.0f</td><td class=\"n\">%.0f</td><td class=\"bar\">"
                   "<div style=\"width:%.1f%%\"></div></td></tr>\n",
                a->hist_count[b], a->hist_bytes[b], 100.0 * a->hist_count[b] / most);
    }
    if (most == 0)
        fputs("<tr><td colspan=\"4\"><p class=\"none\">none</p></td></tr>\n", o);
    fputs("</tbody>\n</table>\n", o);
}

/* A self-contained page: no script, style sheet, font or image from outside. */
static int print_html(struct ctx *c)
{
    char *title = tallyX_plot_title(c->cap);
    if (title == NULL)
        return -1;
    html_head(c, title);
    capture_notes(c, "<p class=\"note\">", "</p>\n");
    html_summary(c);
    int rc = html_chart(c, title);
    for (size_t t = 0; rc == 0 && t < sizeof site_tables / sizeof *site_tables; t++)
        html_sites(c, &site_tables[t]);
    if (rc == 0) {
        html_leaks(c);
        html_hist(c);
    }
    fputs("</body></html>\n", c->out);
    free(title);
    return rc;
}

static int usage(void)
{
    fprintf(stderr, "usage: tally report FILE [--format text|json|html] [--top N]\n");
    return 2;
}

int tallyX_report_main(int argc, char **argv)
{
    const char *file = NULL;
    int fmt = FMT_TEXT;
    size_t top = 10;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--format") == 0 && i + 1 < argc) {
            const char *f = argv[++i];
            if (strcmp(f, "text") == 0)
                fmt = FMT_TEXT;
            else if (strcmp(f, "json") == 0)
                fmt = FMT_JSON;
            else if (strcmp(f, "html") == 0)
                fmt = FMT_HTML;
            else {
                fprintf(stderr, "tally report: unknown format '%s' (text, json or html)\n", f);
                return 2;
            }
        } else if (strcmp(argv[i], "--top") == 0 && i + 1 < argc) {
            char *end;
            unsigned long v = strtoul(argv[++i], &end, 10);
            if (*end != '\0' || v == 0) {
                fprintf(stderr, "tally report: --top needs a positive number\n");
                return 2;
            }
            top = v;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return usage();
        } else if (file == NULL) {
            file = argv[i];
        } else {
            return usage();
        }
    }
    if (file == NULL)
        return usage();
    tallyX_capture cap;
    tallyX_analysis a;
    if (tallyX_load_analyzed("report", file, &cap, &a) != 0)
        return 1;
    struct ctx c = { .cap = &cap, .a = &a, .out = stdout, .fmt = fmt, .top = top };
    c.sym = tallyX_sym_open(&cap);
    int rc = 0;
    if (build_sites(&c) != 0) {
        fprintf(stderr, "tally report: out of memory\n");
        rc = 1;
    } else if (fmt == FMT_JSON) {
        print_json(&c);
    } else if (fmt == FMT_HTML) {
        rc = print_html(&c) != 0;
    } else {
        print_text(&c);
    }
    if (fflush(stdout) != 0)
        rc = 1;
    free(c.sites);
    tallyX_sym_close(c.sym);
    tallyX_analysis_free(&a);
    tallyX_capture_free(&cap);
    return rc;
}
