/* plot.c - `tally plot FILE -o OUT.svg|OUT.html [--flame alloc|peak|exit]`.
 *
 * Loads and replays the capture (capture_read.c, analyze.c), then draws two pictures:
 * memory over time (timeline.c) and a flame graph of the allocation stacks (flame.c).
 * With -o X.svg they go to two files, X.svg (memory over time) and X-flame.svg (the
 * flame graph): each is a plain SVG that any viewer shows, and an SVG of two pictures
 * of different widths would scale one of them badly.  With -o X.html both SVGs are
 * inlined in one self-contained page (no script, style sheet or font from outside;
 * the flame graph's tooltips are SVG <title> elements).  Nothing is written when the
 * capture cannot be read; output goes to a temporary name renamed into place, so a
 * failed write leaves no half picture.
 */
#define _GNU_SOURCE
#include "tools.h"

#include "svg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Writes one output file through path.tmp; 0, or -1 after an error message. */
static int write_file(const char *path, const tallyX_plot_in *in, int html, int flame)
{
    size_t n = strlen(path);
    char *tmp = malloc(n + 5);
    if (tmp == NULL) {
        fprintf(stderr, "tally plot: out of memory\n");
        return -1;
    }
    memcpy(tmp, path, n);
    memcpy(tmp + n, ".tmp", 5);
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        fprintf(stderr, "tally plot: cannot create %s: %s\n", path, strerror(errno));
        free(tmp);
        return -1;
    }
    int rc = 0;
    if (html) {
        fputs("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>tally plot: ", f);
        tallyX_svg_text(f, in->title, 200);
        fputs("</title>\n<style>body{font-family:Verdana,sans-serif;margin:1.5em;"
              "background:#fafafa}svg{display:block;margin:1em 0;max-width:100%;height:auto;"
              "border:1px solid #ddd}</style></head><body>\n<h1>tally plot: ", f);
        tallyX_svg_text(f, in->title, 200);
        fputs("</h1>\n", f);
        rc = tallyX_timeline_svg(f, in);
        if (rc == 0)
            rc = tallyX_flame_svg(f, in, flame);
        fputs("</body></html>\n", f);
    } else if (flame >= 0) {
        rc = tallyX_flame_svg(f, in, flame);
    } else {
        rc = tallyX_timeline_svg(f, in);
    }
    if (rc != 0)
        fprintf(stderr, "tally plot: out of memory\n");
    if (ferror(f) || fclose(f) != 0) {
        if (rc == 0)
            fprintf(stderr, "tally plot: cannot write %s: %s\n", path, strerror(errno));
        rc = -1;
    }
    if (rc == 0 && rename(tmp, path) != 0) {
        fprintf(stderr, "tally plot: cannot create %s: %s\n", path, strerror(errno));
        rc = -1;
    }
    if (rc != 0)
        remove(tmp);
    free(tmp);
    return rc;
}

static int usage(void)
{
    fprintf(stderr, "usage: tally plot FILE -o OUT.svg|OUT.html [--flame alloc|peak|exit]\n");
    return 2;
}

int tallyX_plot_main(int argc, char **argv)
{
    const char *file = NULL, *out = NULL;
    int flame = TALLYX_FLAME_ALLOC;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-o") == 0 && i + 1 < argc) {
            out = argv[++i];
        } else if (strcmp(argv[i], "--flame") == 0 && i + 1 < argc) {
            const char *v = argv[++i];
            if (strcmp(v, "alloc") == 0)
                flame = TALLYX_FLAME_ALLOC;
            else if (strcmp(v, "peak") == 0 || strcmp(v, "live") == 0)
                flame = TALLYX_FLAME_PEAK;
            else if (strcmp(v, "exit") == 0)
                flame = TALLYX_FLAME_EXIT;
            else {
                fprintf(stderr, "tally plot: --flame takes alloc, peak (or live) or exit, "
                                "not '%s'\n", v);
                return 2;
            }
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return usage();
        } else if (file == NULL) {
            file = argv[i];
        } else {
            return usage();
        }
    }
    if (file == NULL || out == NULL)
        return usage();
    int html = ends_with(out, ".html") || ends_with(out, ".htm");
    if (!html && !ends_with(out, ".svg")) {
        fprintf(stderr, "tally plot: -o %s: the name must end in .svg or .html\n", out);
        return 2;
    }
    tallyX_capture cap;
    tallyX_analysis a;
    if (tallyX_load_analyzed("plot", file, &cap, &a) != 0)
        return 1;
    tallyX_plot_in in = { .cap = &cap, .a = &a, .sym = NULL, .title = NULL };
    char *title = tallyX_plot_title(&cap);
    char *flame_path = NULL;
    int rc = 1;
    if (title == NULL)
        goto oom;
    in.title = title;
    in.sym = tallyX_sym_open(&cap);
    if (html) {
        rc = write_file(out, &in, 1, flame) != 0;
    } else {
        size_t n = strlen(out) - 4;
        flame_path = malloc(n + sizeof "-flame.svg");
        if (flame_path == NULL)
            goto oom;
        memcpy(flame_path, out, n);
        memcpy(flame_path + n, "-flame.svg", sizeof "-flame.svg");
        rc = write_file(out, &in, 0, -1) != 0 || write_file(flame_path, &in, 0, flame) != 0;
        if (rc == 0)
            printf("tally plot: wrote %s (memory over time) and %s (flame graph)\n", out,
                   flame_path);
    }
    if (rc == 0 && html)
        printf("tally plot: wrote %s\n", out);
    goto done;
oom:
    fprintf(stderr, "tally plot: out of memory\n");
    rc = 1;
done:
    free(flame_path);
    free(title);
    if (in.sym != NULL)
        tallyX_sym_close(in.sym);
    tallyX_analysis_free(&a);
    tallyX_capture_free(&cap);
    return rc;
}
