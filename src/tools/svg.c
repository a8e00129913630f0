/* svg.c - small pieces shared by the SVG pictures of `tally plot`.
 *
 * Text: names come from symbol tables and file systems, so they may hold '<', '>'
 * and '&' (C++ templates, operators) and bytes that are not UTF-8; an SVG with
 * either is not well-formed XML and browsers refuse to draw it.  tallyX_svg_text
 * escapes the first and replaces the second (a UTF-8 sequence is copied only when it
 * is complete and well-formed).  Units: bytes in binary multiples, times in the unit
 * that keeps 1 to 4 digits.  Ticks: the classic 1-2-5 series.  Colours: FNV-1a of
 * the name picks a point in the red-orange-yellow band flame graphs use, so a
 * function has the same colour in every picture.  Title: the program's name and
 * arguments, shared by the pictures and the HTML report.
 */
#define _GNU_SOURCE
#include "svg.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Length of the well-formed UTF-8 sequence at s (1..4), or 0. */
static size_t utf8_len(const unsigned char *s)
{
    size_t n;
    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        n = 2;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        n = 3;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        n = 4;
    else
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    }
    return n;
}

void tallyX_svg_text(FILE *f, const char *str, size_t max)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t len = strlen(str), cut = max > 0 && len > max ? max : len;
    for (size_t i = 0; i < cut;) {
        unsigned char ch = s[i];
        switch (ch) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&apos;", f); break;
        default:
            if (ch < 0x20 || ch == 0x7f) {
                fputc('?', f);
            } else {
                size_t n = utf8_len(s + i);
                if (n == 0 || i + n > cut) {
                    fputc('?', f);
                    n = 1;
                }
                fwrite(s + i, 1, n, f);
                i += n;
                continue;
            }
        }
        i++;
    }
    if (cut < len)
        fputs("..", f);
}

void tallyX_fmt_bytes(double b, char *buf, size_t len)
{
    static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    int u = 0;
    while (fabs(b) >= 1024 && u < 4) {
        b /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%.0f B", b);
    else
        snprintf(buf, len, "%.*f %s", fabs(b) < 10 ? 2 : fabs(b) < 100 ? 1 : 0, b, unit[u]);
}

void tallyX_fmt_time(double ns, char *buf, size_t len)
{
    if (ns < 1e6)
        snprintf(buf, len, "%.3g \xc2\xb5s", ns / 1e3);
    else if (ns < 1e10)
        snprintf(buf, len, "%.4g ms", ns / 1e6);
    else
        snprintf(buf, len, "%.4g s", ns / 1e9);
}

double tallyX_nice_step(double range, int n)
{
    if (!(range > 0) || n < 1)
        return 1;
    double raw = range / n, p = pow(10, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

void tallyX_svg_color(const char *name, char out[8])
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 16777619u;
    unsigned r = 205 + (h & 0xff) % 50, g = 90 + ((h >> 8) & 0xff) % 130,
             b = 30 + ((h >> 16) & 0xff) % 50;
    snprintf(out, 8, "#%02x%02x%02x", r, g, b);
}

char *tallyX_plot_title(const tallyX_capture *cap)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL)
        return NULL;
    if (cap->argc == 0) {
        fputs(cap->exe ? cap->exe : "(unknown program)", f);
    }
    for (size_t i = 0; i < cap->argc; i++) {
        const char *a = cap->argv[i];
        const char *slash = i == 0 ? strrchr(a, '/') : NULL;
        fprintf(f, "%s%s", i ? " " : "", slash ? slash + 1 : a);
    }
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
