/* test_trace_dump.c - snapshot dumps (tally_trace_snapshot_dump, _load,
 * _load_memory): round trips that keep every statistic, the limit and the
 * sampling mean; filters and comparisons of loaded snapshots (which own their
 * file names); empty snapshots; I/O errors; and the loader against bad input: not
 * a dump, a tally run capture, another major version, the dump cut at every byte,
 * 3000 seeded corruptions, and a failure injected at every allocation.
 *
 * The corruption tests assert what the loader promises: each input gives a valid
 * snapshot (whose every function then works) or NULL with TALLY_EFORMAT; the
 * sanitizer and Valgrind runs of this program check that nothing reads out of
 * bounds or leaks on the way.
 */
#define _GNU_SOURCE
#include "test_objects.h"
#include "tally/tally.h"

#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline, noclone))

/* Header fields of the capture format (docs/capture-format.md). */
#define H_MAJOR 8
#define H_FRAMES 20
#define H_SAMPLE 24
#define H_FLAGS 48
#define H_CHECK 52
#define H_PAGE 4096

static char g_dir[64];

static int make_dir(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/tally-dump-XXXXXX", tmp && strlen(tmp) < 40 ? tmp : "/tmp");
    return mkdtemp(g_dir) != NULL ? 0 : -1;
}

static int remove_dir(void **state)
{
    (void)state;
    DIR *d = opendir(g_dir);
    struct dirent *e;
    char path[512];
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", g_dir, e->d_name);
        if (remove(path) != 0)
            rmdir(path);
    }
    if (d)
        closedir(d);
    rmdir(g_dir);
    return 0;
}

static void path_of(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", g_dir, name);
}

/* The bytes of a file (malloc'd), *size set. */
static uint8_t *slurp(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return buf;
}

static void spit(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, size, f), size);
    fclose(f);
}

/* Dumps snap and returns the file's bytes. */
static uint8_t *dump_bytes(const tally_trace_snapshot *snap, size_t *size)
{
    char path[256];
    path_of(path, sizeof path, "bytes.tly");
    assert_int_equal(tally_trace_snapshot_dump(snap, path), 0);
    return slurp(path, size);
}

static uint32_t fnv1a(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

static uint64_t get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Sets a header field and the header's checksum. */
static void set_field(uint8_t *h, int off, uint64_t v, int n)
{
    put_le(h + off, v, n);
    put_le(h + H_CHECK, fnv1a(h, H_CHECK), 4);
}

/* ---- a known set of traces --------------------------------------------------------- */

static NOINLINE void *alloc_a(tally_rt *rt, size_t n)
{
    return tally_malloc(rt, n);
}

static NOINLINE void *alloc_b(tally_rt *rt, size_t n)
{
    return tally_malloc(rt, n);
}

static NOINLINE void *via(tally_rt *rt, size_t n, int which)
{
    void *volatile p = which ? alloc_a(rt, n) : alloc_b(rt, n);
    return p;
}

/* Traces from two lines and two call paths each, a str (a line of Tally's own
 * source) and a block from the plain function (unknown site).  Kept in blocks[]. */
#define NBLOCKS 40
static void make_traces(tally_rt *rt, void *blocks[NBLOCKS])
{
    for (int i = 0; i < NBLOCKS - 2; i++)
        blocks[i] = i % 3 == 0 ? via(rt, 16 + (size_t)i, 1)
                    : i % 3 == 1 ? via(rt, 100, 0)
                                 : alloc_a(rt, 7 * (size_t)i);
    blocks[NBLOCKS - 2] = tally_str(rt, "a traced str");
    blocks[NBLOCKS - 1] = (tally_malloc)(rt, 333);
}

static void free_traces(tally_rt *rt, void *blocks[NBLOCKS])
{
    for (int i = 0; i < NBLOCKS - 2; i++)
        tally_free(rt, blocks[i]);
    tally_decref(blocks[NBLOCKS - 2]);
    tally_free(rt, blocks[NBLOCKS - 1]);
}

static void assert_same_site(const tally_trace_site *a, const tally_trace_site *b)
{
    assert_string_equal(a->file, b->file);
    assert_int_equal(a->line, b->line);
    assert_int_equal(a->nframes, b->nframes);
    for (int k = 0; k < a->nframes; k++)
        assert_ptr_equal(a->frames[k], b->frames[k]);
}

static void assert_same_stats(const tally_trace_snapshot *a, const tally_trace_snapshot *b,
                              tally_trace_key key)
{
    size_t na, nb;
    tally_trace_stat *sa = tally_trace_statistics(a, key, &na);
    tally_trace_stat *sb = tally_trace_statistics(b, key, &nb);
    assert_non_null(sa);
    assert_non_null(sb);
    assert_int_equal(na, nb);
    for (size_t i = 0; i < na; i++) {
        assert_int_equal(sa[i].count, sb[i].count);
        assert_int_equal(sa[i].size, sb[i].size);
        assert_same_site(&sa[i].site, &sb[i].site);
    }
    tally_trace_release(sa);
    tally_trace_release(sb);
}

static void assert_same_snapshot(const tally_trace_snapshot *a, const tally_trace_snapshot *b)
{
    size_t ta, tb;
    assert_int_equal(tally_trace_snapshot_count(a, &ta), tally_trace_snapshot_count(b, &tb));
    assert_int_equal(ta, tb);
    assert_int_equal(tally_trace_snapshot_limit(a), tally_trace_snapshot_limit(b));
    tally_trace x, y;
    for (size_t i = 0; tally_trace_snapshot_get(a, i, &x) == 0; i++) {
        assert_int_equal(tally_trace_snapshot_get(b, i, &y), 0);
        assert_int_equal(x.size, y.size);
        assert_same_site(&x.site, &y.site);
    }
    assert_same_stats(a, b, TALLY_TRACE_BY_LINE);
    assert_same_stats(a, b, TALLY_TRACE_BY_FILE);
    assert_same_stats(a, b, TALLY_TRACE_BY_TRACEBACK);
}

/* No group differs between a and b. */
static void assert_no_difference(const tally_trace_snapshot *a, const tally_trace_snapshot *b)
{
    size_t n;
    tally_trace_diff *d = tally_trace_compare(a, b, TALLY_TRACE_BY_TRACEBACK, &n);
    assert_non_null(d);
    assert_true(n > 0);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(d[i].size_diff, 0);
        assert_int_equal(d[i].count_diff, 0);
    }
    tally_trace_release(d);
}

/* ---- round trips ------------------------------------------------------------------- */

static void round_trip(int nframes)
{
    tally_rt *rt = open_hosted(NULL, 0);
    assert_int_equal(tally_trace_start(rt, nframes), 0);
    void *blocks[NBLOCKS];
    make_traces(rt, blocks);
    tally_trace_snapshot *live = tally_trace_take_snapshot(rt);
    assert_non_null(live);
    char path[256];
    path_of(path, sizeof path, "round.tly");
    assert_int_equal(tally_trace_snapshot_dump(live, path), 0);
    tally_trace_snapshot *back = tally_trace_snapshot_load(rt, path);
    assert_non_null(back);
    assert_int_equal(tally_trace_snapshot_count(back, NULL), NBLOCKS);
    assert_same_snapshot(live, back);
    assert_no_difference(back, live);
    assert_no_difference(live, back);
    if (nframes > 1) {
        size_t n;
        tally_trace_stat *st = tally_trace_statistics(back, TALLY_TRACE_BY_TRACEBACK, &n);
        assert_non_null(st);
        int deep = 0;
        for (size_t i = 0; i < n; i++)
            deep |= st[i].site.nframes >= 2;
        assert_true(deep); /* the native frames came back */
        tally_trace_release(st);
    }
    /* A dump of the loaded snapshot loads to the same again. */
    char again[256];
    path_of(again, sizeof again, "again.tly");
    assert_int_equal(tally_trace_snapshot_dump(back, again), 0);
    tally_trace_snapshot *back2 = tally_trace_snapshot_load(rt, again);
    assert_non_null(back2);
    assert_same_snapshot(live, back2);
    if (nframes == 1) {
        /* Without native frames nothing depends on the process (no modules): the
         * records are the same bytes. */
        size_t n1, n2;
        uint8_t *d1 = slurp(path, &n1), *d2 = slurp(again, &n2);
        assert_int_equal(n1, n2);
        assert_memory_equal(d1 + H_PAGE, d2 + H_PAGE, n1 - H_PAGE);
        free(d1);
        free(d2);
    }
    tally_trace_snapshot_free(back2);
    tally_trace_snapshot_free(back);
    tally_trace_snapshot_free(live);
    free_traces(rt, blocks);
    tally_close(rt);
}

static void test_round_trip_lines(void **state)
{
    (void)state;
    round_trip(1);
}

static void test_round_trip_stacks(void **state)
{
    (void)state;
    round_trip(8);
    round_trip(TALLY_TRACE_MAX_FRAMES);
}

/* The limit and the sampling mean are in the header; a loaded snapshot keeps them
 * and writes them again. */
static void test_limit_and_sample_preserved(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    assert_int_equal(tally_trace_start(rt, 5), 0);
    void *p = tally_malloc(rt, 10);
    tally_trace_snapshot *live = tally_trace_take_snapshot(rt);
    size_t size;
    uint8_t *d = dump_bytes(live, &size);
    assert_int_equal(get_le(d + H_FRAMES, 4), 5);
    assert_int_equal(get_le(d + H_SAMPLE, 8), 0);
    set_field(d, H_SAMPLE, 4096, 8);
    tally_trace_snapshot *back = tally_trace_snapshot_load_memory(rt, d, size);
    assert_non_null(back);
    assert_int_equal(tally_trace_snapshot_limit(back), 5);
    size_t size2;
    uint8_t *d2 = dump_bytes(back, &size2);
    assert_int_equal(get_le(d2 + H_SAMPLE, 8), 4096);
    assert_int_equal(get_le(d2 + H_FRAMES, 4), 5);
    free(d);
    free(d2);
    tally_trace_snapshot_free(back);
    tally_trace_snapshot_free(live);
    tally_free(rt, p);
    tally_close(rt);
}

/* Filters of a loaded snapshot own the names too: they outlive their source. */
static void test_filter_and_compare_loaded(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    assert_int_equal(tally_trace_start(rt, 4), 0);
    void *blocks[NBLOCKS];
    make_traces(rt, blocks);
    tally_trace_snapshot *old_live = tally_trace_take_snapshot(rt);
    void *more = via(rt, 5000, 1);
    tally_free(rt, blocks[1]);
    blocks[1] = tally_malloc(rt, 1);
    tally_trace_snapshot *new_live = tally_trace_take_snapshot(rt);
    size_t size;
    uint8_t *d = dump_bytes(old_live, &size);
    tally_trace_snapshot *old_back = tally_trace_snapshot_load_memory(rt, d, size);
    free(d);
    d = dump_bytes(new_live, &size);
    tally_trace_snapshot *new_back = tally_trace_snapshot_load_memory(rt, d, size);
    free(d);
    assert_non_null(old_back);
    assert_non_null(new_back);

    const tally_trace_key keys[] = {TALLY_TRACE_BY_LINE, TALLY_TRACE_BY_FILE, TALLY_TRACE_BY_TRACEBACK};
    for (int k = 0; k < 3; k++) {
        size_t nl, nb, nm;
        tally_trace_diff *dl = tally_trace_compare(new_live, old_live, keys[k], &nl);
        tally_trace_diff *db = tally_trace_compare(new_back, old_back, keys[k], &nb);
        tally_trace_diff *dm = tally_trace_compare(new_back, old_live, keys[k], &nm);
        assert_non_null(dl);
        assert_non_null(db);
        assert_non_null(dm);
        assert_int_equal(nl, nb);
        assert_int_equal(nl, nm);
        assert_true(dl[0].size_diff >= 5000 - 100);
        for (size_t i = 0; i < nl; i++) {
            assert_int_equal(dl[i].size_diff, db[i].size_diff);
            assert_int_equal(dl[i].count_diff, db[i].count_diff);
            assert_int_equal(dl[i].size, dm[i].size);
            assert_same_site(&dl[i].site, &db[i].site);
        }
        tally_trace_release(dl);
        tally_trace_release(db);
        tally_trace_release(dm);
    }

    tally_trace_filter only_here = {1, "*test_trace_dump.c", 0, 0, 0};
    tally_trace_snapshot *fl = tally_trace_snapshot_filter(new_live, &only_here, 1);
    tally_trace_snapshot *fb = tally_trace_snapshot_filter(new_back, &only_here, 1);
    assert_non_null(fl);
    assert_non_null(fb);
    tally_trace_snapshot_free(new_back); /* the filtered copy keeps its own names */
    size_t nfl = tally_trace_snapshot_count(fl, NULL);
    assert_int_equal(nfl, NBLOCKS - 2 + 1); /* no str, no unknown; plus `more` */
    assert_same_snapshot(fl, fb);
    tally_trace_filter no_unknown = {0, "<unknown>", 0, 0, 0};
    tally_trace_snapshot *fu = tally_trace_snapshot_filter(old_back, &no_unknown, 1);
    assert_int_equal(tally_trace_snapshot_count(fu, NULL), NBLOCKS - 1);

    tally_trace_snapshot_free(fu);
    tally_trace_snapshot_free(fl);
    tally_trace_snapshot_free(fb);
    tally_trace_snapshot_free(old_back);
    tally_trace_snapshot_free(old_live);
    tally_trace_snapshot_free(new_live);
    tally_free(rt, more);
    free_traces(rt, blocks);
    tally_close(rt);
}

static void test_empty_snapshot(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    assert_int_equal(tally_trace_start(rt, 1), 0);
    tally_trace_snapshot *live = tally_trace_take_snapshot(rt);
    char path[256];
    path_of(path, sizeof path, "empty.tly");
    assert_int_equal(tally_trace_snapshot_dump(live, path), 0);
    tally_trace_snapshot *back = tally_trace_snapshot_load(rt, path);
    assert_non_null(back);
    size_t total = 1, n = 1;
    assert_int_equal(tally_trace_snapshot_count(back, &total), 0);
    assert_int_equal(total, 0);
    tally_trace_stat *st = tally_trace_statistics(back, TALLY_TRACE_BY_LINE, &n);
    assert_non_null(st);
    assert_int_equal(n, 0);
    tally_trace_release(st);
    tally_trace_snapshot_free(back);
    tally_trace_snapshot_free(live);
    tally_close(rt);
}

/* ---- errors -------------------------------------------------------------------------- */

static void assert_error(tally_rt *rt, tally_error code, const char *part)
{
    assert_int_equal(tally_last_error(rt), code);
    if (strstr(tally_last_error_message(rt), part) == NULL)
        fail_msg("'%s' not in '%s'", part, tally_last_error_message(rt));
}

static size_t dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void test_dump_errors(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    assert_int_equal(tally_trace_start(rt, 1), 0);
    void *p = tally_malloc(rt, 10);
    tally_trace_snapshot *snap = tally_trace_take_snapshot(rt);
    char path[256];
    path_of(path, sizeof path, "no-such-dir/x.tly");
    assert_int_equal(tally_trace_snapshot_dump(snap, path), -1);
    assert_error(rt, TALLY_EIO, path);
    assert_error(rt, TALLY_EIO, strerror(ENOENT));
    assert_int_equal(tally_trace_snapshot_dump(snap, ""), -1);
    assert_error(rt, TALLY_EINVAL, "no path");
    /* The rename onto a directory fails: the directory stays, no file is left. */
    char sub[256];
    path_of(sub, sizeof sub, "a-directory");
    assert_int_equal(mkdir(sub, 0700), 0);
    size_t before = dir_entries(g_dir);
    assert_int_equal(tally_trace_snapshot_dump(snap, sub), -1);
    assert_error(rt, TALLY_EIO, sub);
    assert_int_equal(dir_entries(g_dir), before);
    struct stat st;
    assert_int_equal(stat(sub, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(rmdir(sub), 0);
    /* An existing dump is replaced whole. */
    path_of(path, sizeof path, "replaced.tly");
    spit(path, "old contents", 12);
    assert_int_equal(tally_trace_snapshot_dump(snap, path), 0);
    tally_trace_snapshot *back = tally_trace_snapshot_load(rt, path);
    assert_non_null(back);
    assert_int_equal(tally_trace_snapshot_count(back, NULL), 1);
    tally_trace_snapshot_free(back);
    tally_trace_snapshot_free(snap);
    tally_free(rt, p);
    tally_close(rt);
}

static void test_load_errors(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    char path[256];
    path_of(path, sizeof path, "missing.tly");
    assert_null(tally_trace_snapshot_load(rt, path));
    assert_error(rt, TALLY_EIO, path);
    assert_error(rt, TALLY_EIO, strerror(ENOENT));
    assert_null(tally_trace_snapshot_load(rt, g_dir));
    assert_error(rt, TALLY_EIO, "not a regular file");
    path_of(path, sizeof path, "text.txt");
    spit(path, "hello, this is not a dump at all, but it is long enough for a header", 68);
    assert_null(tally_trace_snapshot_load(rt, path));
    assert_error(rt, TALLY_EFORMAT, "not a snapshot dump");
    spit(path, "", 0);
    assert_null(tally_trace_snapshot_load(rt, path));
    assert_error(rt, TALLY_EFORMAT, "empty file");

    assert_int_equal(tally_trace_start(rt, 1), 0);
    void *p = tally_malloc(rt, 10);
    tally_trace_snapshot *snap = tally_trace_take_snapshot(rt);
    size_t size;
    uint8_t *d = dump_bytes(snap, &size);
    uint8_t *c = malloc(size);
    /* A capture of tally run: the same header without the snapshot flag. */
    memcpy(c, d, size);
    set_field(c, H_FLAGS, 0, 4);
    assert_null(tally_trace_snapshot_load_memory(rt, c, size));
    assert_error(rt, TALLY_EFORMAT, "a capture of tally run");
    memcpy(c, d, size);
    set_field(c, H_MAJOR, 2, 2);
    assert_null(tally_trace_snapshot_load_memory(rt, c, size));
    assert_error(rt, TALLY_EFORMAT, "version 2.");
    memcpy(c, d, size);
    c[H_SAMPLE] ^= 1; /* without fixing the checksum */
    assert_null(tally_trace_snapshot_load_memory(rt, c, size));
    assert_error(rt, TALLY_EFORMAT, "checksum");
    memcpy(c, d, size);
    set_field(c, H_FRAMES, TALLY_TRACE_MAX_FRAMES + 1, 4);
    assert_null(tally_trace_snapshot_load_memory(rt, c, size));
    assert_error(rt, TALLY_EFORMAT, "counts out of range");
    assert_null(tally_trace_snapshot_load_memory(rt, NULL, 5));
    assert_error(rt, TALLY_EINVAL, "no data");
    free(c);
    free(d);
    tally_trace_snapshot_free(snap);
    tally_free(rt, p);
    tally_close(rt);
}

/* ---- the loader against damaged dumps ---------------------------------------------- */

/* A loaded snapshot from damaged input must work with every function. */
static void exercise(tally_trace_snapshot *s)
{
    size_t total, n;
    size_t count = tally_trace_snapshot_count(s, &total);
    tally_trace t;
    for (size_t i = 0; i < count; i++) {
        assert_int_equal(tally_trace_snapshot_get(s, i, &t), 0);
        assert_non_null(t.site.file);
        assert_true(t.site.nframes >= 0 && t.site.nframes <= TALLY_TRACE_MAX_FRAMES);
    }
    for (int k = TALLY_TRACE_BY_LINE; k <= TALLY_TRACE_BY_TRACEBACK; k++) {
        tally_trace_stat *st = tally_trace_statistics(s, (tally_trace_key)k, &n);
        assert_non_null(st);
        tally_trace_release(st);
    }
    tally_trace_diff *d = tally_trace_compare(s, s, TALLY_TRACE_BY_TRACEBACK, &n);
    assert_non_null(d);
    tally_trace_release(d);
}

/* A dump of the known traces, with frames or not. */
static uint8_t *known_dump(tally_rt *rt, int nframes, size_t *size)
{
    assert_int_equal(tally_trace_start(rt, nframes), 0);
    void *blocks[NBLOCKS];
    make_traces(rt, blocks);
    tally_trace_snapshot *snap = tally_trace_take_snapshot(rt);
    uint8_t *d = dump_bytes(snap, size);
    tally_trace_snapshot_free(snap);
    free_traces(rt, blocks);
    tally_trace_stop(rt);
    return d;
}

static void test_cut_at_every_byte(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    size_t size;
    uint8_t *d = known_dump(rt, 1, &size);
    size_t base = blocks_in_use(rt);
    tally_trace_snapshot *whole = tally_trace_snapshot_load_memory(rt, d, size);
    assert_non_null(whole);
    tally_trace_snapshot_free(whole);
    for (size_t cut = 0; cut < size; cut++) {
        tally_clear_error(rt);
        tally_trace_snapshot *s = tally_trace_snapshot_load_memory(rt, d, cut);
        assert_null(s); /* the end record is last: every prefix lacks it */
        assert_int_equal(tally_last_error(rt), TALLY_EFORMAT);
        if (cut > 0)
            assert_non_null(strstr(tally_last_error_message(rt), "truncated at byte"));
    }
    assert_int_equal(blocks_in_use(rt), base);
    /* A cut file on disk says the same, with the path. */
    char path[256];
    path_of(path, sizeof path, "cut.tly");
    spit(path, d, size - 100);
    assert_null(tally_trace_snapshot_load(rt, path));
    assert_error(rt, TALLY_EFORMAT, "truncated at byte");
    assert_error(rt, TALLY_EFORMAT, path);
    free(d);
    tally_close(rt);
}

static void corrupt(test_rng *rng, uint8_t *c, size_t used)
{
    int edits = 1 + (int)rng_below(rng, 3);
    for (int e = 0; e < edits; e++) {
        /* Mostly the records (after the header page), sometimes the header. */
        size_t at = rng_below(rng, 8) == 0 ? rng_below(rng, 64)
                                            : H_PAGE + rng_below(rng, used - H_PAGE);
        switch (rng_below(rng, 4)) {
        case 0: c[at] ^= (uint8_t)(1u << rng_below(rng, 8)); break;  /* bit flip */
        case 1: c[at] = (uint8_t)rng_next(rng); break;                /* overwrite */
        case 2: c[at] |= 0x80; break;               /* varint extended into the next byte */
        default: c[at] = (uint8_t)(rng_below(rng, 2) ? 0xff : 0); break;
        }
    }
}

static void corruptions(int nframes, size_t runs, uint64_t seed)
{
    tally_rt *rt = open_hosted(NULL, 0);
    size_t size;
    uint8_t *d = known_dump(rt, nframes, &size);
    size_t used = size;
    while (used > H_PAGE && d[used - 1] == 0)
        used--;
    size_t base = blocks_in_use(rt);
    uint8_t *c = malloc(size);
    test_rng rng = {seed};
    size_t loaded = 0;
    for (size_t i = 0; i < runs; i++) {
        memcpy(c, d, size);
        corrupt(&rng, c, used);
        tally_clear_error(rt);
        tally_trace_snapshot *s = tally_trace_snapshot_load_memory(rt, c, size);
        if (s == NULL) {
            assert_int_equal(tally_last_error(rt), TALLY_EFORMAT);
            continue;
        }
        loaded++;
        exercise(s);
        tally_trace_snapshot_free(s);
    }
    assert_int_equal(blocks_in_use(rt), base);
    assert_true(loaded < runs); /* most corruptions are caught */
    free(c);
    free(d);
    tally_close(rt);
}

static void test_random_corruptions(void **state)
{
    (void)state;
    corruptions(1, 1500, 12345);
    corruptions(6, 1500, 67890);
}

/* ---- allocation failures ------------------------------------------------------------- */

static void test_fault_every_allocation(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    size_t size;
    uint8_t *d = known_dump(rt, 4, &size);
    char path[256];
    path_of(path, sizeof path, "fault.tly");
    spit(path, d, size);
    size_t base = blocks_in_use(rt);
    for (int from_file = 0; from_file < 2; from_file++) {
        unsigned long runs = 0;
        for (unsigned long k = 1;; k++) {
            unsigned long before = tally_fault_failures(rt, TALLY_FAULT_ALLOC);
            tally_clear_error(rt);
            tally_fault_inject(rt, TALLY_FAULT_ALLOC, k, 0);
            tally_trace_snapshot *s = from_file ? tally_trace_snapshot_load(rt, path)
                                                : tally_trace_snapshot_load_memory(rt, d, size);
            tally_fault_inject(rt, TALLY_FAULT_ALLOC, 0, 0);
            if (tally_fault_failures(rt, TALLY_FAULT_ALLOC) == before) {
                assert_non_null(s);
                assert_int_equal(tally_trace_snapshot_count(s, NULL), NBLOCKS);
                tally_trace_snapshot_free(s);
                break;
            }
            assert_null(s);
            assert_error(rt, TALLY_ENOMEM, "no memory");
            assert_int_equal(blocks_in_use(rt), base);
            runs++;
        }
        assert_int_equal(runs, from_file ? 3 : 2); /* (file,) locations, snapshot */
    }
    /* The dump's one buffer. */
    tally_trace_snapshot *s = tally_trace_snapshot_load_memory(rt, d, size);
    tally_fault_inject(rt, TALLY_FAULT_ALLOC, 1, 0);
    assert_int_equal(tally_trace_snapshot_dump(s, path), -1);
    tally_fault_inject(rt, TALLY_FAULT_ALLOC, 0, 0);
    assert_error(rt, TALLY_ENOMEM, "no memory");
    size_t again;
    uint8_t *d2 = slurp(path, &again); /* the earlier file is untouched */
    assert_int_equal(again, size);
    assert_memory_equal(d, d2, size);
    free(d2);
    tally_trace_snapshot_free(s);
    assert_int_equal(blocks_in_use(rt), base);
    free(d);
    tally_close(rt);
}

/* Domains (tally_trace_track): traces of memory the heap does not hand out, in
 * current, snapshots, filters and a dump's round trip; misuse and a full table. */
static size_t domain_total(const tally_trace_snapshot *snap, unsigned domain, size_t *count)
{
    size_t total = 0, n = tally_trace_snapshot_count(snap, NULL);
    *count = 0;
    for (size_t i = 0; i < n; i++) {
        tally_trace t;
        assert_int_equal(tally_trace_snapshot_get(snap, i, &t), 0);
        if (t.domain == domain) {
            total += t.size;
            ++*count;
        }
    }
    return total;
}

static void test_domains(void **state)
{
    (void)state;
    tally_rt *rt = open_hosted(NULL, 0);
    assert_int_equal(tally_trace_track(rt, 7, 0x1000, 100), -2); /* not tracing */
    assert_int_equal(tally_trace_untrack(rt, 7, 0x1000), -2);
    assert_int_equal(tally_trace_start(rt, 1), 0);
    assert_int_equal(tally_trace_track(rt, 0, 0x1000, 100), -1); /* the heap's domain */
    assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
    assert_int_equal(tally_trace_track(rt, 7, 0, 100), -1);
    assert_int_equal(tally_last_error(rt), TALLY_EINVAL);
    assert_int_equal(tally_trace_untrack(rt, 0, 0x1000), -1);
    void *heap_block = tally_malloc(rt, 40);
    int line = __LINE__ + 1;
    assert_int_equal(tally_trace_track(rt, 7, 0x1000, 100), 0);
    assert_int_equal(tally_trace_track(rt, 7, 0x2000, 50), 0);
    assert_int_equal(tally_trace_track(rt, 9, 0x1000, 1000), 0); /* same address, other domain */
    assert_int_equal(tally_trace_track(rt, 7, (uintptr_t)heap_block, 8), 0); /* not the heap's */
    size_t current, peak;
    tally_trace_get_traced_memory(rt, &current, &peak);
    assert_int_equal(current, 40 + 100 + 50 + 1000 + 8);
    assert_int_equal(tally_trace_track(rt, 7, 0x2000, 70), 0); /* again: replaced */
    tally_trace_get_traced_memory(rt, &current, &peak);
    assert_int_equal(current, 40 + 100 + 70 + 1000 + 8);
    tally_trace_stats st;
    tally_trace_get_stats(rt, &st);
    assert_int_equal(st.traces, 5);

    tally_trace_snapshot *snap = tally_trace_take_snapshot(rt);
    assert_non_null(snap);
    size_t count;
    assert_int_equal(domain_total(snap, 0, &count), 40);
    assert_int_equal(count, 1);
    assert_int_equal(domain_total(snap, 7, &count), 100 + 70 + 8);
    assert_int_equal(count, 3);
    assert_int_equal(domain_total(snap, 9, &count), 1000);
    for (size_t i = 0; i < tally_trace_snapshot_count(snap, NULL); i++) {
        tally_trace t;
        tally_trace_snapshot_get(snap, i, &t);
        if (t.domain == 9) { /* the site of the call */
            assert_string_equal(t.site.file, __FILE__);
            assert_int_equal(t.site.line, line + 2);
        }
    }
    /* DomainFilter: keep domain 7 only; drop domain 9; a pattern and a domain. */
    tally_trace_filter keep7 = {1, NULL, 0, 1, 7};
    tally_trace_snapshot *f = tally_trace_snapshot_filter(snap, &keep7, 1);
    assert_non_null(f);
    size_t total;
    assert_int_equal(tally_trace_snapshot_count(f, &total), 3);
    assert_int_equal(total, 178);
    tally_trace_snapshot_free(f);
    tally_trace_filter drop9 = {0, NULL, 0, 1, 9};
    f = tally_trace_snapshot_filter(snap, &drop9, 1);
    assert_int_equal(tally_trace_snapshot_count(f, &total), 4);
    assert_int_equal(total, 40 + 178);
    tally_trace_snapshot_free(f);
    tally_trace_filter both[2] = {{1, "*test_trace_dump.c", 0, 1, 9}, {1, "nothing*", 0, 0, 0}};
    f = tally_trace_snapshot_filter(snap, both, 2);
    assert_int_equal(tally_trace_snapshot_count(f, &total), 1);
    assert_int_equal(total, 1000);
    tally_trace_snapshot_free(f);
    /* Statistics group domains together, as tracemalloc's do. */
    size_t n;
    tally_trace_stat *by_file = tally_trace_statistics(snap, TALLY_TRACE_BY_FILE, &n);
    assert_non_null(by_file);
    assert_int_equal(n, 1);
    assert_int_equal(by_file[0].size, 40 + 100 + 70 + 1000 + 8);
    tally_trace_release(by_file);

    /* A dump keeps the domains. */
    char path[512];
    path_of(path, sizeof path, "domains.tly");
    assert_int_equal(tally_trace_snapshot_dump(snap, path), 0);
    tally_trace_snapshot *back = tally_trace_snapshot_load(rt, path);
    assert_non_null(back);
    assert_int_equal(domain_total(back, 7, &count), 178);
    assert_int_equal(count, 3);
    assert_int_equal(domain_total(back, 9, &count), 1000);
    assert_int_equal(domain_total(back, 0, &count), 40);
    tally_trace_snapshot_free(back);
    tally_trace_snapshot_free(snap);

    /* Untrack: gone from current; untracking what is not traced is no error. */
    assert_int_equal(tally_trace_untrack(rt, 9, 0x1000), 0);
    assert_int_equal(tally_trace_untrack(rt, 9, 0x1000), 0);
    assert_int_equal(tally_trace_untrack(rt, 7, 0x9999), 0);
    tally_trace_get_traced_memory(rt, &current, &peak);
    assert_int_equal(current, 40 + 100 + 70 + 8);
    tally_free(rt, heap_block); /* the domain-7 trace at its address stays */
    tally_trace_get_traced_memory(rt, &current, &peak);
    assert_int_equal(current, 100 + 70 + 8);
    assert_int_equal(tally_trace_untrack(rt, 7, (uintptr_t)heap_block), 0);
    assert_int_equal(tally_trace_untrack(rt, 7, 0x1000), 0);
    assert_int_equal(tally_trace_untrack(rt, 7, 0x2000), 0);
    tally_trace_get_traced_memory(rt, &current, &peak);
    assert_int_equal(current, 0);
    tally_trace_get_stats(rt, &st);
    assert_int_equal(st.traces, 0);

    /* While every request fails, the table takes entries up to 7/8 full, then a
     * track fails with ENOMEM and changes nothing; once memory is back, it grows. */
    size_t ok = 0, expect = 0;
    unsigned i = 0;
    int rc = 0;
    tally_fault_inject(rt, TALLY_FAULT_ALLOC, 1, TALLY_FAULT_PERSIST);
    while (rc == 0 && i < 10000) {
        i++;
        rc = tally_trace_track(rt, 3, 0x10000 + 16 * (uintptr_t)i, i);
        if (rc == 0) {
            ok++;
            expect += i;
        }
    }
    assert_int_equal(rc, -1);
    assert_int_equal(tally_last_error(rt), TALLY_ENOMEM);
    assert_true(ok > 0);
    tally_trace_get_stats(rt, &st);
    assert_int_equal(st.traces, ok);
    assert_int_equal(st.current, expect); /* exact: only what went in */
    tally_fault_inject(rt, TALLY_FAULT_ALLOC, 0, 0);
    assert_int_equal(tally_trace_track(rt, 3, 0x10000 + 16 * (uintptr_t)i, i), 0);
    expect += i;
    snap = tally_trace_take_snapshot(rt);
    assert_non_null(snap);
    assert_int_equal(domain_total(snap, 3, &count), expect);
    assert_int_equal(count, ok + 1);
    tally_trace_snapshot_free(snap);
    tally_close(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_lines),
        cmocka_unit_test(test_round_trip_stacks),
        cmocka_unit_test(test_limit_and_sample_preserved),
        cmocka_unit_test(test_filter_and_compare_loaded),
        cmocka_unit_test(test_empty_snapshot),
        cmocka_unit_test(test_dump_errors),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_cut_at_every_byte),
        cmocka_unit_test(test_random_corruptions),
        cmocka_unit_test(test_fault_every_allocation),
        cmocka_unit_test(test_domains),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
