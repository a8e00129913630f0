/* diff.c - `tally diff A B [--format text|json] [--top N] [--by site|stack]
 *          [--at exit|peak]`: what grew and what shrank between two captures (of
 *          `tally run`, or snapshot dumps of Tally's tracer, whose traces count as
 *          live "at exit").
 *
 * Both captures are loaded and replayed (analyze.c).  Their stacks are then named:
 * every stack becomes a key string, the symbolised innermost frame ("site": function,
 * source file and line, or module+offset when there is no line information) or, with
 * --by stack, all its frames.  Keys are text, not addresses, so two runs of the same
 * program compare correctly although address-space randomisation loaded it elsewhere.
 * Each capture's keys are sorted and equal keys summed; the two sorted lists are then
 * merged, and each key gets A's and B's bytes and blocks live at exit (or at each
 * capture's own peak, --at peak) and the deltas B - A.  Rows are printed by absolute
 * byte delta (ties: absolute block delta, then the larger of the two sizes, then the
 * key), after the totals of both captures side by side.  A is the baseline.
 */
#define _GNU_SOURCE
#include "tools.h"
#include "json.h"

#include "analyze.h"
#include "trace/capture_format.h"
#include "symbolize.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { FMT_TEXT, FMT_JSON };

/* One named key of one capture: a site or a whole stack. */
struct named {
    char *key;                  /* frames' names joined by '\n', innermost first */
    size_t stack;               /* one stack with this key (the first), for JSON frames */
    double bytes, blocks;       /* live at exit or at the peak, summed over the key */
};

/* One capture and what diff needs of it. */
struct side {
    const char *path;
    tallyX_capture cap;
    tallyX_analysis a;
    tallyX_sym *sym;
    struct named *keys;         /* sorted by key, unique */
    size_t nkeys;
    int loaded;              /* cap and a hold a capture and its analysis */
};

/* A row of the diff: a key present in A, B or both. */
struct row {
    const char *key;
    const struct side *from;    /* the side whose stack names the row's frames */
    size_t stack;
    double a_bytes, a_blocks, b_bytes, b_blocks;
};

/* Appends the name of one frame to *buf (open_memstream). */
static void frame_key(FILE *f, tallyX_sym *sym, uint8_t kind, uint64_t frame)
{
    const tallyX_frame *fr = tallyX_sym_frame(sym, kind, frame);
    fputs(fr->function ? fr->function : "??", f);
    if (fr->file != NULL)
        fprintf(f, " (%s:%d)", fr->file, fr->line);
    else if (fr->module != NULL)
        fprintf(f, " (%s+0x%" PRIx64 ")", fr->module, fr->offset);
    else
        fprintf(f, " (0x%" PRIx64 ")", frame);
}

static char *stack_key(struct side *s, size_t idx, int whole)
{
    const tallyX_stack *st = &s->cap.stacks[idx];
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL)
        return NULL;
    if (st->n == 0)
        fputs("[unknown]", f);
    for (uint32_t i = 0; i < st->n && (whole || i == 0); i++) {
        if (i)
            fputc('\n', f);
        frame_key(f, s->sym, st->kind, st->frames[i]);
    }
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

static int named_cmp(const void *x, const void *y)
{
    return strcmp(((const struct named *)x)->key, ((const struct named *)y)->key);
}

/* Names every stack with figures of s, sorts the names and merges equal ones. */
static int build_keys(struct side *s, int whole, int at_peak)
{
    size_t n = 0;
    s->keys = calloc(s->cap.nstacks ? s->cap.nstacks : 1, sizeof *s->keys);
    if (s->keys == NULL)
        return -1;
    for (size_t i = 0; i < s->cap.nstacks; i++) {
        const tallyX_stack_stats *st = &s->a.stacks[i];
        double bytes = at_peak ? st->peak_bytes : st->live_bytes;
        double blocks = at_peak ? st->peak_count : st->live_count;
        if (blocks < 0.5 && bytes < 0.5)
            continue;
        char *key = stack_key(s, i, whole);
        if (key == NULL)
            return -1;
        s->keys[n++] = (struct named){ key, i, bytes, blocks };
    }
    qsort(s->keys, n, sizeof *s->keys, named_cmp);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m > 0 && strcmp(s->keys[m - 1].key, s->keys[i].key) == 0) {
            s->keys[m - 1].bytes += s->keys[i].bytes;
            s->keys[m - 1].blocks += s->keys[i].blocks;
            free(s->keys[i].key);
        } else {
            s->keys[m++] = s->keys[i];
        }
    }
    s->nkeys = m;
    return 0;
}

static int row_cmp(const void *x, const void *y)
{
    const struct row *a = x, *b = y;
    double da = fabs(a->b_bytes - a->a_bytes), db = fabs(b->b_bytes - b->a_bytes);
    if (da != db)
        return da < db ? 1 : -1;
    da = fabs(a->b_blocks - a->a_blocks);
    db = fabs(b->b_blocks - b->a_blocks);
    if (da != db)
        return da < db ? 1 : -1;
    da = fmax(a->a_bytes, a->b_bytes);     /* unchanged rows: the largest first */
    db = fmax(b->a_bytes, b->b_bytes);
    if (da != db)
        return da < db ? 1 : -1;
    return strcmp(a->key, b->key);
}

/* The merge of A's and B's keys, sorted by absolute delta. */
static struct row *merge_rows(const struct side *a, const struct side *b, size_t *nrows)
{
    struct row *r = calloc(a->nkeys + b->nkeys + 1, sizeof *r);
    if (r == NULL)
        return NULL;
    size_t i = 0, j = 0, n = 0;
    while (i < a->nkeys || j < b->nkeys) {
        int c = i == a->nkeys ? 1 : j == b->nkeys ? -1 : strcmp(a->keys[i].key, b->keys[j].key);
        struct row *w = &r[n++];
        if (c <= 0) {
            w->key = a->keys[i].key;
            w->from = a;
            w->stack = a->keys[i].stack;
            w->a_bytes = a->keys[i].bytes;
            w->a_blocks = a->keys[i].blocks;
        }
        if (c >= 0) {
            w->key = b->keys[j].key;
            w->from = b;    /* B names the row: its symbols are the newer */
            w->stack = b->keys[j].stack;
            w->b_bytes = b->keys[j].bytes;
            w->b_blocks = b->keys[j].blocks;
        }
        i += c <= 0;
        j += c >= 0;
    }
    qsort(r, n, sizeof *r, row_cmp);
    *nrows = n;
    return r;
}

/* ---- output ------------------------------------------------------------------------- */

struct total {
    const char *text, *json;
    double a, b;
};

static size_t totals_of(const struct side *a, const struct side *b, struct total *t)
{
    size_t n = 0;
    t[n++] = (struct total){ "peak bytes", "peak_bytes", a->a.peak_bytes, b->a.peak_bytes };
    t[n++] = (struct total){ "peak blocks", "peak_blocks", a->a.peak_blocks, b->a.peak_blocks };
    t[n++] = (struct total){ "allocations", "allocations", a->a.allocs, b->a.allocs };
    t[n++] = (struct total){ "frees", "frees", a->a.frees, b->a.frees };
    t[n++] = (struct total){ "bytes allocated", "bytes_allocated", a->a.bytes_allocated,
                             b->a.bytes_allocated };
    t[n++] = (struct total){ "leaked bytes", "leaked_bytes", a->a.end_bytes, b->a.end_bytes };
    t[n++] = (struct total){ "leaked blocks", "leaked_blocks", a->a.end_blocks, b->a.end_blocks };
    return n;
}


static void json_capture(FILE *o, const struct side *s)
{
    fputs("{\"file\":", o);
    tallyX_json_str(o, s->path);
    fputs(",\"argv\":[", o);
    for (size_t i = 0; i < s->cap.argc; i++) {
        if (i)
            fputc(',', o);
        tallyX_json_str(o, s->cap.argv[i]);
    }
    fprintf(o, "],\"snapshot\":%s,\"exited\":%s,\"truncated\":%s,\"damaged_chunks\":%zu,"
               "\"sample_bytes\":%" PRIu64 "}",
            s->cap.snapshot ? "true" : "false", s->cap.exited ? "true" : "false", s->cap.truncated ? "true" : "false", s->cap.damaged,
            s->cap.sample);
}

static void json_frames(FILE *o, const struct row *r, int whole)
{
    const tallyX_stack *st = &r->from->cap.stacks[r->stack];
    fputc('[', o);
    for (uint32_t i = 0; i < st->n && (whole || i == 0); i++) {
        const tallyX_frame *f = tallyX_sym_frame(r->from->sym, st->kind, st->frames[i]);
        fputs(i ? ",{\"function\":" : "{\"function\":", o);
        tallyX_json_str(o, f->function);
        fputs(",\"file\":", o);
        tallyX_json_str(o, f->file);
        fprintf(o, ",\"line\":%d,\"module\":", f->line);
        tallyX_json_str(o, f->module);
        fputc('}', o);
    }
    fputc(']', o);
}

static void print_json(FILE *o, const struct side *a, const struct side *b, const struct row *r,
                       size_t n, size_t top, int whole, int at_peak)
{
    struct total t[8];
    size_t nt = totals_of(a, b, t);
    fputs("{\"a\":", o);
    json_capture(o, a);
    fputs(",\"b\":", o);
    json_capture(o, b);
    fprintf(o, ",\"by\":\"%s\",\"at\":\"%s\",\n\"totals\":{", whole ? "stack" : "site",
            at_peak ? "peak" : "exit");
    for (size_t i = 0; i < nt; i++)
        fprintf(o, "%s\"%s\":{\"a\":%.0f,\"b\":%.0f,\"delta\":%.0f}", i ? "," : "", t[i].json,
                t[i].a, t[i].b, t[i].b - t[i].a);
    fprintf(o, "},\n\"rows_total\":%zu,\"rows\":[", n);
    for (size_t i = 0; i < n && i < top; i++) {
        fprintf(o, "%s\n {\"a_bytes\":%.0f,\"b_bytes\":%.0f,\"delta_bytes\":%.0f,"
                   "\"a_blocks\":%.0f,\"b_blocks\":%.0f,\"delta_blocks\":%.0f,\"frames\":",
                i ? "," : "", r[i].a_bytes, r[i].b_bytes, r[i].b_bytes - r[i].a_bytes,
                r[i].a_blocks, r[i].b_blocks, r[i].b_blocks - r[i].a_blocks);
        json_frames(o, &r[i], whole);
        fputc('}', o);
    }
    fputs("]}\n", o);
}

static void print_capture_line(FILE *o, const char *label, const struct side *s)
{
    fprintf(o, "%s: %s (", label, s->path);
    for (size_t i = 0; i < s->cap.argc; i++)
        fprintf(o, "%s%s", i ? " " : "", s->cap.argv[i]);
    if (s->cap.snapshot)
        fputs("snapshot dump", o);
    else if (s->cap.argc == 0)
        fputs(s->cap.exe ? s->cap.exe : "unknown program", o);
    fprintf(o, ")%s%s%s\n",
            s->cap.exited || s->cap.snapshot ? "" : " [did not reach exit()]",
            s->cap.truncated ? " [truncated]" : "", s->cap.damaged ? " [damaged]" : "");
}

static void print_text(FILE *o, const struct side *a, const struct side *b, const struct row *r,
                       size_t n, size_t top, int whole, int at_peak)
{
    print_capture_line(o, "A (baseline)", a);
    print_capture_line(o, "B", b);
    if (a->cap.sample || b->cap.sample)
        fprintf(o, "note: a capture is sampled; its figures are estimates\n");
    struct total t[8];
    size_t nt = totals_of(a, b, t);
    fprintf(o, "\ntotals %19s %16s %16s\n", "A", "B", "B - A");
    for (size_t i = 0; i < nt; i++)
        fprintf(o, "  %-16s %16.0f %16.0f %+16.0f\n", t[i].text, t[i].a, t[i].b, t[i].b - t[i].a);
    const char *when = at_peak ? "at each capture's peak" : "at exit";
    size_t changed = 0;
    for (size_t i = 0; i < n; i++)
        changed += r[i].a_bytes != r[i].b_bytes || r[i].a_blocks != r[i].b_blocks;
    fprintf(o, "\nlive %s, by %s: %zu %s, %zu changed (sorted by |bytes delta|)\n", when,
            whole ? "call stack" : "allocation site", n, whole ? "stacks" : "sites", changed);
    if (n == 0)
        return;
    fprintf(o, "  %14s %12s %14s %14s %10s %10s  %s\n", "bytes delta", "blocks delta", "A bytes",
            "B bytes", "A blocks", "B blocks", whole ? "stack" : "site");
    for (size_t i = 0; i < n && i < top; i++) {
        fprintf(o, "  %+14.0f %+12.0f %14.0f %14.0f %10.0f %10.0f  ", r[i].b_bytes - r[i].a_bytes,
                r[i].b_blocks - r[i].a_blocks, r[i].a_bytes, r[i].b_bytes, r[i].a_blocks,
                r[i].b_blocks);
        for (const char *p = r[i].key; *p; p++) {
            fputc(*p, o);
            if (*p == '\n')
                fprintf(o, "  %14s %12s %14s %14s %10s %10s    ", "", "", "", "", "", "");
        }
        fputc('\n', o);
    }
    if (n > top)
        fprintf(o, "  ... %zu more (--top N)\n", n - top);
}

/* ---- command ----------------------------------------------------------------------- */

static int load_side(struct side *s, int whole, int at_peak)
{
    if (tallyX_load_analyzed("diff", s->path, &s->cap, &s->a) != 0)
        return -1;
    s->loaded = 1;
    s->sym = tallyX_sym_open(&s->cap);
    if (build_keys(s, whole, at_peak) != 0) {
        fprintf(stderr, "tally diff: %s: out of memory\n", s->path);
        return -1;
    }
    return 0;
}

static void free_side(struct side *s)
{
    for (size_t i = 0; i < s->nkeys; i++)
        free(s->keys[i].key);
    free(s->keys);
    if (s->sym != NULL)
        tallyX_sym_close(s->sym);
    if (s->loaded) {
        tallyX_analysis_free(&s->a);
        tallyX_capture_free(&s->cap);
    }
}

static int usage(void)
{
    fprintf(stderr, "usage: tally diff A B [--format text|json] [--top N] [--by site|stack] "
                    "[--at exit|peak]\n");
    return 2;
}

int tallyX_diff_main(int argc, char **argv)
{
    const char *files[2] = { NULL, NULL };
    int nfiles = 0, fmt = FMT_TEXT, whole = 0, at_peak = 0;
    size_t top = 20;
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(opt, "--format") == 0 && val != NULL) {
            i++;
            if (strcmp(val, "text") == 0 || strcmp(val, "json") == 0) {
                fmt = val[0] == 'j' ? FMT_JSON : FMT_TEXT;
            } else {
                fprintf(stderr, "tally diff: unknown format '%s' (text or json)\n", val);
                return 2;
            }
        } else if (strcmp(opt, "--by") == 0 && val != NULL) {
            i++;
            if (strcmp(val, "site") != 0 && strcmp(val, "stack") != 0) {
                fprintf(stderr, "tally diff: --by takes site or stack, not '%s'\n", val);
                return 2;
            }
            whole = val[1] == 't';
        } else if (strcmp(opt, "--at") == 0 && val != NULL) {
            i++;
            if (strcmp(val, "exit") != 0 && strcmp(val, "peak") != 0) {
                fprintf(stderr, "tally diff: --at takes exit or peak, not '%s'\n", val);
                return 2;
            }
            at_peak = val[0] == 'p';
        } else if (strcmp(opt, "--top") == 0 && val != NULL) {
            i++;
            char *end;
            unsigned long v = strtoul(val, &end, 10);
            if (*end != '\0' || v == 0 || val[0] == '-') {
                fprintf(stderr, "tally diff: --top needs a positive number\n");
                return 2;
            }
            top = v;
        } else if (opt[0] == '-' && opt[1] != '\0') {
            return usage();
        } else if (nfiles < 2) {
            files[nfiles++] = opt;
        } else {
            return usage();
        }
    }
    if (nfiles != 2)
        return usage();
    struct side s[2];
    memset(s, 0, sizeof s);
    s[0].path = files[0];
    s[1].path = files[1];
    int rc = 1;
    struct row *rows = NULL;
    size_t nrows = 0;
    if (load_side(&s[0], whole, at_peak) != 0 || load_side(&s[1], whole, at_peak) != 0)
        goto out;
    rows = merge_rows(&s[0], &s[1], &nrows);
    if (rows == NULL) {
        fprintf(stderr, "tally diff: out of memory\n");
        goto out;
    }
    if (fmt == FMT_JSON)
        print_json(stdout, &s[0], &s[1], rows, nrows, top, whole, at_peak);
    else
        print_text(stdout, &s[0], &s[1], rows, nrows, top, whole, at_peak);
    rc = fflush(stdout) != 0;
out:
    free(rows);
    free_side(&s[1]);
    free_side(&s[0]);
    return rc;
}
