/* timeline.c - the memory-over-time picture of `tally plot` (what `mprof plot` draws):
 * live heap bytes against time, the peak marked with a dot and a label.
 *
 * Time: events carry sequence numbers; TIME records (one before each thread's first
 * event and every 1024 of its events) and EXIT map some of them to nanoseconds since
 * the start.  A first pass collects those marks (made non-decreasing); the time of an
 * event is interpolated linearly in sequence number between the marks around it (the
 * last mark's time after it), so the curve does not jump in steps of 1024 events.  A
 * capture with no elapsed time (no marks) is drawn against the event number.  The
 * axis starts at zero, or at the first mark when that is over 5% of the run (a short
 * program whose first allocation comes after milliseconds of loading).
 * Curve: a second pass replays the events (analyze.c, tallyX_replay) and drops each
 * live-heap value into one of NBUCKETS equal time buckets, keeping the first, last,
 * smallest and largest value and which extreme came first; each bucket is drawn as
 * those values at one x, in order, so a spike narrower than a pixel still reaches its
 * height, and the peak (the largest value overall) lies on the curve.  Output size is
 * bounded by NBUCKETS whatever the number of events.
 */
#include "svg.h"

#include "trace/capture_format.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define W 960           /* picture size, pixels */
#define H 440
#define PL 90           /* plot area margins: left, right, top, bottom */
#define PR 40
#define PT 70
#define PB 60
#define NBUCKETS 1600   /* about two per pixel of the plot's width */

struct mark {
    uint64_t seq, ns;
};

struct bucket {
    double first, last, min, max;
    int has, min_first;         /* min_first: the minimum came before the maximum */
};

struct tl {
    struct mark *m;             /* time marks by seq, ns non-decreasing */
    size_t nm, capm;
    double t0, t_end;           /* the x range is [t0, t_end] */
    int by_seq;                 /* no elapsed time: x is the event number */
    struct bucket *b;
    double last_bytes;
};

static double time_of(const struct tl *t, uint64_t seq)
{
    if (t->by_seq)
        return (double)seq;
    size_t lo = 0, hi = t->nm;  /* first mark with seq > given */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (t->m[mid].seq <= seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return 0;
    const struct mark *a = &t->m[lo - 1];
    if (lo == t->nm || t->m[lo].seq == a->seq)
        return (double)a->ns;
    const struct mark *b = &t->m[lo];
    return (double)a->ns + (double)(seq - a->seq) * (double)(b->ns - a->ns) /
                               (double)(b->seq - a->seq);
}

static int collect_marks(struct tl *t, const tallyX_capture *cap)
{
    tallyX_iter it;
    tallyX_event ev;
    if (tallyX_iter_begin(&it, cap) != 0)
        return -1;
    uint64_t max_ns = 0;
    while (tallyX_iter_next(&it, &ev)) {
        if (ev.type != TALLY_REC_TIME && ev.type != TALLY_REC_EXIT)
            continue;
        if (t->nm == t->capm) {
            size_t nc = t->capm ? t->capm * 2 : 256;
            struct mark *nm = realloc(t->m, nc * sizeof *nm);
            if (nm == NULL) {
                tallyX_iter_end(&it);
                return -1;
            }
            t->m = nm;
            t->capm = nc;
        }
        if (ev.ns > max_ns)
            max_ns = ev.ns;
        t->m[t->nm++] = (struct mark){ ev.seq, max_ns };
    }
    tallyX_iter_end(&it);
    return 0;
}

static void on_event(void *ctx, const tallyX_event *ev, double bytes)
{
    struct tl *t = ctx;
    if (ev->type != TALLY_REC_ALLOC && ev->type != TALLY_REC_FREE)
        return;
    double x = time_of(t, ev->seq);
    long k = t->t_end > t->t0 ? (long)((x - t->t0) / (t->t_end - t->t0) * NBUCKETS) : 0;
    k = k < 0 ? 0 : k >= NBUCKETS ? NBUCKETS - 1 : k;
    struct bucket *b = &t->b[k];
    if (!b->has) {
        *b = (struct bucket){ bytes, bytes, bytes, bytes, 1, 0 };
    } else {
        if (bytes < b->min) {
            b->min = bytes;
            b->min_first = 0;
        }
        if (bytes > b->max) {
            b->max = bytes;
            b->min_first = 1;
        }
        b->last = bytes;
    }
    t->last_bytes = bytes;
}

/* Axis unit for bytes up to max: divisor and name. */
static double byte_unit(double max, const char **name)
{
    static const char *const names[] = { "bytes", "KiB", "MiB", "GiB", "TiB" };
    double d = 1;
    int u = 0;
    while (max >= 1024 * 4 && u < 4) {
        max /= 1024;
        d *= 1024;
        u++;
    }
    *name = names[u];
    return d;
}

static double time_unit(const struct tl *t, const char **name)
{
    if (t->by_seq) {
        *name = "event number";
        return 1;
    }
    if (t->t_end < 2e6) {
        *name = "time since the start (\xc2\xb5s)";
        return 1e3;
    }
    if (t->t_end < 2e10) {
        *name = "time since the start (ms)";
        return 1e6;
    }
    *name = "time since the start (s)";
    return 1e9;
}

static void draw(FILE *f, const tallyX_plot_in *in, const struct tl *t)
{
    const tallyX_analysis *a = in->a;
    const double pw = W - PL - PR, ph = H - PT - PB;
    const char *yname, *xname;
    double peak = a->peak_bytes > 0 ? a->peak_bytes : 1;
    double yd = byte_unit(peak, &yname);
    double ystep = tallyX_nice_step(peak * 1.08 / yd, 6);
    if (ystep < 1 && yd == 1)
        ystep = 1;      /* no fractions of a byte */
    double ymax = ceil(peak * 1.08 / yd / ystep) * ystep * yd;
    double xd = time_unit(t, &xname);
    double xstep = tallyX_nice_step((t->t_end - t->t0) / xd, 8);
    if (xstep < 1 && t->by_seq)
        xstep = 1;
    double x0 = t->t0, xmax = t->t_end > x0 ? t->t_end : x0 + 1;
    double xtick0 = ceil(x0 / (xstep * xd) - 1e-9) * xstep * xd;
#define X(v) (PL + ((v) - x0) / (xmax - x0) * pw)
#define Y(v) (PT + ph - (v) / ymax * ph)
    char s1[64], s2[64];
    fprintf(f, "<svg%s width=\"%d\" height=\"%d\" "
               "viewBox=\"0 0 %d %d\" font-family=\"Verdana, DejaVu Sans, sans-serif\" "
               "font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n",
            in->in_html ? "" : " xmlns=\"http://www.w3.org/2000/svg\"", W, H, W, H);
    fputs("<text x=\"20\" y=\"26\" font-size=\"16\" font-weight=\"bold\">memory over time: ", f);
    tallyX_svg_text(f, in->title, 90);
    fputs("</text>\n", f);
    tallyX_fmt_bytes(a->bytes_allocated, s1, sizeof s1);
    tallyX_fmt_bytes(a->end_bytes, s2, sizeof s2);
    fprintf(f, "<text x=\"20\" y=\"46\" fill=\"#555555\">live heap (requested bytes); %.0f "
               "allocations, %s allocated, %s live at %s%s%s</text>\n",
            a->allocs, s1, s2, in->cap->exited ? "exit" : "the last event (no exit)",
            in->cap->sample ? "; sampled: estimates" : "",
            in->cap->truncated || in->cap->damaged ? "; capture truncated or damaged" : "");
    /* grid and ticks */
    fputs("<g stroke=\"#e4e4e4\" stroke-width=\"1\">\n", f);
    for (double v = 0; v <= ymax * 1.0001; v += ystep * yd)
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>\n", PL, Y(v), W - PR, Y(v));
    for (double v = xtick0; v <= xmax * 1.0001; v += xstep * xd)
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>\n", X(v), PT, X(v), H - PB);
    fputs("</g>\n<g fill=\"#333333\">\n", f);
    for (double v = 0; v <= ymax * 1.0001; v += ystep * yd)
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", PL - 8, Y(v) + 4,
                v / yd);
    for (double v = xtick0; v <= xmax * 1.0001; v += xstep * xd)
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n", X(v),
                H - PB + 18, fabs(v) < xstep * xd * 1e-6 ? 0.0 : v / xd);
    fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", PL + pw / 2,
            H - 16, xname);
    fprintf(f, "<text transform=\"translate(22 %.1f) rotate(-90)\" text-anchor=\"middle\">"
               "live heap (%s)</text>\n</g>\n", PT + ph / 2, yname);
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" "
               "stroke=\"#888888\"/>\n", PL, PT, pw, ph);
    /* the curve: filled area and line */
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 0)
            fprintf(f, "<path fill=\"#4a90d9\" fill-opacity=\"0.25\" stroke=\"none\" d=\"M%d %.1f",
                    PL, Y(0));
        else
            fprintf(f, "<path id=\"curve\" fill=\"none\" stroke=\"#1f5fa8\" stroke-width=\"1.5\" "
                       "stroke-linejoin=\"round\" d=\"M%d %.1f", PL, Y(0));
        double last = 0;
        for (int k = 0; k < NBUCKETS; k++) {
            const struct bucket *b = &t->b[k];
            if (!b->has)
                continue;
            double x = PL + (k + 0.5) / NBUCKETS * pw;
            double e1 = b->min_first ? b->min : b->max, e2 = b->min_first ? b->max : b->min;
            fprintf(f, " L%.1f %.1f L%.1f %.1f L%.1f %.1f L%.1f %.1f", x, Y(b->first), x, Y(e1),
                    x, Y(e2), x, Y(b->last));
            last = b->last;
        }
        fprintf(f, " L%d %.1f", W - PR, Y(last));
        if (pass == 0)
            fprintf(f, " L%d %.1f Z", W - PR, Y(0));
        fputs("\"/>\n", f);
    }
    if (a->peak_bytes <= 0)
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"14\" "
                   "fill=\"#555555\">no allocation recorded in this capture</text>\n",
                PL + pw / 2, PT + ph / 2);
    /* the peak */
    if (a->peak_bytes > 0) {
        double tp = time_of(t, a->peak_seq);
        double k = floor((tp - x0) / (xmax - x0) * NBUCKETS);
        k = k < 0 ? 0 : k >= NBUCKETS ? NBUCKETS - 1 : k;
        double px = PL + (k + 0.5) / NBUCKETS * pw;
        if (px > W - PR)
            px = W - PR;
        double py = Y(a->peak_bytes);
        tallyX_fmt_bytes(a->peak_bytes, s1, sizeof s1);
        if (t->by_seq)
            snprintf(s2, sizeof s2, "event %" PRIu64, a->peak_seq);
        else
            tallyX_fmt_time(tp, s2, sizeof s2);
        int right = px > PL + pw * 0.6;
        fprintf(f, "<g id=\"peak\" data-bytes=\"%.0f\" data-seq=\"%" PRIu64 "\">\n"
                   "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"#d62728\" stroke=\"#ffffff\" "
                   "stroke-width=\"1.5\"/>\n"
                   "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" fill=\"#d62728\" "
                   "font-weight=\"bold\">peak %s (%.0f bytes) at %s</text>\n</g>\n",
                a->peak_bytes, a->peak_seq, px, py, right ? px - 10 : px + 10, py - 9,
                right ? "end" : "start", s1, a->peak_bytes, s2);
    }
    fputs("</svg>\n", f);
#undef X
#undef Y
}

int tallyX_timeline_svg(FILE *f, const tallyX_plot_in *in)
{
    struct tl t;
    memset(&t, 0, sizeof t);
    int rc = -1;
    if (collect_marks(&t, in->cap) != 0)
        goto out;
    double last = t.nm ? (double)t.m[t.nm - 1].ns : 0;
    t.by_seq = !(last > 0);
    t.t_end = t.by_seq ? (double)in->a->last_seq : last;
    /* The program's first allocation may come long after its start (the loader, the
     * interposer's set-up): the axis then starts at the first mark, not at zero. */
    t.t0 = t.by_seq || t.nm == 0 ? 0 : (double)t.m[0].ns;
    if (t.t0 < 0.05 * t.t_end)
        t.t0 = 0;
    if (!t.by_seq && time_of(&t, in->a->last_seq) > t.t_end)
        t.t_end = time_of(&t, in->a->last_seq);
    t.b = calloc(NBUCKETS, sizeof *t.b);
    if (t.b == NULL || tallyX_replay(in->cap, on_event, &t) != 0)
        goto out;
    draw(f, in, &t);
    rc = 0;
out:
    free(t.b);
    free(t.m);
    return rc;
}
