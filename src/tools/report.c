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
 * the same content with exact numbers, for scripts and tests; the HTML output is the
 * text report in a self-contained page.
 */
#define _GNU_SOURCE
#include "tools.h"
#include "json.h"

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

static size_t g_field;          /* offset of the double in tallyX_stack_stats to sort on */

static double field_of(const tallyX_stack_stats *s, size_t off)
{
    double v;
    memcpy(&v, (const char *)s + off, sizeof v);
    return v;
}

static int by_field_desc(const void *x, const void *y)
{
    double a = field_of(&((const struct site *)x)->st, g_field);
    double b = field_of(&((const struct site *)y)->st, g_field);
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
    g_field = off;
    qsort(r, k, sizeof *r, by_field_desc);
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
    if (cap->sample)
        fprintf(o, "sampled: one allocation per %" PRIu64 " bytes on average; counts and bytes "
                   "are estimates\n", cap->sample);
    if (!cap->snapshot && cap->exited)
        fprintf(o, "capture: complete, the program ran for %.1f ms\n", (double)cap->exit_ns / 1e6);
    else if (!cap->snapshot)
        fprintf(o, "note: the program did not reach exit() (crashed or killed): \"at exit\" "
                   "means at its last recorded event\n");
    if (cap->truncated)
        fprintf(o, "note: the capture is truncated (the file ends inside a record); figures "
                   "cover what it holds\n");
    if (cap->damaged)
        fprintf(o, "warning: %zu chunk(s) of the capture hold invalid records (corrupt); "
                   "figures cover the valid records\n", cap->damaged);
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

/* The text report, HTML-escaped, in a page of its own. */
static int print_html(struct ctx *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    if (mem == NULL)
        return -1;
    FILE *out = c->out;
    c->out = mem;
    print_text(c);
    fclose(mem);
    c->out = out;
    fputs("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>tally report</title>\n"
          "<style>body{font-family:sans-serif;margin:2em}pre{font-size:13px;line-height:1.35}"
          "</style></head><body><h1>tally report</h1>\n<pre>", out);
    for (size_t i = 0; i < len; i++) {
        switch (buf[i]) {
        case '<': fputs("&lt;", out); break;
        case '>': fputs("&gt;", out); break;
        case '&': fputs("&amp;", out); break;
        default: fputc(buf[i], out);
        }
    }
    fputs("</pre></body></html>\n", out);
    free(buf);
    return 0;
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
    char err[512];
    if (tallyX_capture_load(file, &cap, err, sizeof err) != 0) {
        fprintf(stderr, "tally report: %s\n", err);
        return 1;
    }
    tallyX_analysis a;
    if (tallyX_analyze(&cap, &a) != 0) {
        fprintf(stderr, "tally report: %s: out of memory\n", file);
        tallyX_capture_free(&cap);
        return 1;
    }
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
