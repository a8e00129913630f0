/* test_capture_read.c - the capture reader (src/tools/capture_read.c, analyze.c) on
 * captures built here byte by byte with the writer's encoders (capture_format.h):
 * a round trip of every record type, events of two threads merged in sequence
 * order, the figures of the analysis, a capture cut at every byte, random byte
 * corruption with a fixed seed, and bad headers.  Runs under ASan and Valgrind:
 * the loader must never read out of bounds, whatever the file holds. */
#define _POSIX_C_SOURCE 200809L /* fmemopen */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "analyze.h"
#include "trace/capture_format.h"
#include "capture_read.h"
#include "json.h"

#define CHUNK 4096u

/* ---- building a capture ------------------------------------------------------------- */

struct cb {
    uint8_t *buf;
    size_t size;                /* header + whole chunks */
    size_t pos;                 /* write position in the current chunk */
};

static void cb_init(struct cb *c, uint64_t sample)
{
    c->size = TALLY_CAP_HEADER_SIZE;
    c->buf = calloc(1, c->size);
    assert_non_null(c->buf);
    tally_cap_write_header(c->buf, CHUNK, 8, sample, 4242, 1000);
    c->pos = 0;
}

/* Starts a new chunk (another thread). */
static void cb_chunk(struct cb *c)
{
    c->buf = realloc(c->buf, c->size + CHUNK);
    assert_non_null(c->buf);
    memset(c->buf + c->size, 0, CHUNK);
    c->pos = c->size;
    c->size += CHUNK;
}

static void cb_rec(struct cb *c, unsigned type, const uint8_t *payload, size_t len)
{
    uint8_t lenbuf[10];
    size_t ll = (size_t)(tally_cap_put_varint(lenbuf, len) - lenbuf);
    assert_true(c->pos + 1 + ll + len <= c->size);
    c->buf[c->pos] = (uint8_t)type;
    memcpy(c->buf + c->pos + 1, lenbuf, ll);
    memcpy(c->buf + c->pos + 1 + ll, payload, len);
    c->pos += 1 + ll + len;
}

static void rec_alloc(struct cb *c, uint64_t seq, uint64_t ptr, uint64_t size, uint64_t stack,
                      int kind)
{
    uint8_t b[64], *p = b;
    p = tally_cap_put_varint(p, seq);
    p = tally_cap_put_varint(p, ptr);
    p = tally_cap_put_varint(p, size);
    p = tally_cap_put_varint(p, stack);
    *p++ = (uint8_t)kind;
    cb_rec(c, TALLY_REC_ALLOC, b, (size_t)(p - b));
}

static void rec_free(struct cb *c, uint64_t seq, uint64_t ptr)
{
    uint8_t b[32], *p = b;
    p = tally_cap_put_varint(p, seq);
    p = tally_cap_put_varint(p, ptr);
    *p++ = TALLY_FK_FREE;
    cb_rec(c, TALLY_REC_FREE, b, (size_t)(p - b));
}

static void rec_2(struct cb *c, unsigned type, uint64_t a, uint64_t b2)
{
    uint8_t b[32], *p = b;
    p = tally_cap_put_varint(p, a);
    p = tally_cap_put_varint(p, b2);
    cb_rec(c, type, b, (size_t)(p - b));
}

static void rec_stack(struct cb *c, uint64_t id, int kind, const uint64_t *f, int n)
{
    uint8_t b[512], *p = b;
    p = tally_cap_put_varint(p, id);
    *p++ = (uint8_t)kind;
    p = tally_cap_put_varint(p, (uint64_t)n);
    for (int i = 0; i < n; i++)
        p = tally_cap_put_varint(p, f[i]);
    cb_rec(c, TALLY_REC_STACK, b, (size_t)(p - b));
}

static void rec_location(struct cb *c, uint64_t id, const char *file, uint64_t line,
                         const char *fn)
{
    uint8_t b[512], *p = b;
    p = tally_cap_put_varint(p, id);
    p = tally_cap_put_bytes(p, file, strlen(file));
    p = tally_cap_put_varint(p, line);
    p = tally_cap_put_bytes(p, fn, strlen(fn));
    cb_rec(c, TALLY_REC_LOCATION, b, (size_t)(p - b));
}

/* The reference capture.  Thread A (chunk 1) and thread B (chunk 2) interleave:
 *   seq 0 A alloc p1 100 (stack 1)     seq 1 B alloc p2 50 (stack 2)
 *   seq 2 A free p1                    seq 3 B alloc p3 1000 (stack 2)
 *   seq 4 A alloc p4 10 (stack 1)      seq 5 A free p4 (temporary)
 *   seq 6 B free p2                    seq 7 A alloc p5 7 (stack 3, locations)
 *   seq 8 EXIT
 * Peak: 1060 bytes at seq 4 (p2 + p3 + p4); at exit p3 and p5 live: 1007 bytes. */
static void build_reference(struct cb *c)
{
    cb_init(c, 0);
    cb_chunk(c);    /* thread A */
    uint8_t b[256], *p = b;
    p = tally_cap_put_varint(p, 1);
    p = tally_cap_put_bytes(p, "/bin/prog", 9);
    p = tally_cap_put_varint(p, 2);
    p = tally_cap_put_bytes(p, "prog", 4);
    p = tally_cap_put_bytes(p, "arg", 3);
    cb_rec(c, TALLY_REC_PROCESS, b, (size_t)(p - b));
    p = b;
    p = tally_cap_put_varint(p, 0x400000);
    p = tally_cap_put_varint(p, 0x401000);
    p = tally_cap_put_varint(p, 0);
    p = tally_cap_put_bytes(p, "/bin/prog", 9);
    p = tally_cap_put_bytes(p, "\x01\x02\x03\x04", 4);
    p = tally_cap_put_varint(p, 0);
    cb_rec(c, TALLY_REC_MODULE, b, (size_t)(p - b));
    uint64_t f1[] = { 0x400100, 0x400200 }, f2[] = { 0x400300 }, f3[] = { 7, 8 };
    rec_stack(c, 1, TALLY_STACK_NATIVE, f1, 2);
    rec_location(c, 7, "app.c", 12, "make");
    rec_location(c, 8, "app.c", 40, "main");
    rec_stack(c, 3, TALLY_STACK_LOCATION, f3, 2);
    rec_2(c, TALLY_REC_TIME, 0, 5000);
    rec_alloc(c, 0, 0x1000, 100, 1, TALLY_AK_MALLOC);
    rec_free(c, 2, 0x1000);
    rec_alloc(c, 4, 0x1000, 10, 1, TALLY_AK_CALLOC);
    rec_free(c, 5, 0x1000);
    rec_alloc(c, 7, 0x5000, 7, 3, TALLY_AK_NEW);
    rec_2(c, TALLY_REC_EXIT, 8, 9000);
    cb_chunk(c);    /* thread B */
    rec_stack(c, 2, TALLY_STACK_NATIVE, f2, 1);
    rec_stack(c, 9, TALLY_STACK_NATIVE, f1, 2);     /* same frames as stack 1 */
    rec_alloc(c, 1, 0x2000, 50, 2, TALLY_AK_MALLOC);
    rec_alloc(c, 3, 0x3000, 1000, 2, TALLY_AK_MALLOC);
    rec_free(c, 6, 0x2000);
}

/* ---- tests ---------------------------------------------------------------------------- */

static void test_round_trip(void **state)
{
    (void)state;
    struct cb c;
    build_reference(&c);
    tallyX_capture cap;
    char err[256];
    assert_int_equal(tallyX_capture_parse(c.buf, c.size, &cap, err, sizeof err), 0);
    assert_int_equal(cap.pid, 4242);
    assert_int_equal(cap.frames, 8);
    assert_true(cap.have_process);
    assert_string_equal(cap.exe, "/bin/prog");
    assert_int_equal(cap.argc, 2);
    assert_string_equal(cap.argv[1], "arg");
    assert_int_equal(cap.nmodules, 1);
    assert_int_equal(cap.modules[0].nbuild_id, 4);
    assert_int_equal(cap.nstacks, 4);   /* unknown + 3 distinct contents */
    assert_int_equal(cap.nevents, 8);
    assert_true(cap.exited);
    assert_int_equal(cap.exit_ns, 9000);
    assert_false(cap.truncated);
    assert_int_equal(cap.damaged, 0);
    const tallyX_location *l = tallyX_capture_location(&cap, 8);
    assert_non_null(l);
    assert_string_equal(l->function, "main");
    assert_int_equal(l->line, 40);

    /* Merged order. */
    tallyX_iter it;
    tallyX_event ev;
    assert_int_equal(tallyX_iter_begin(&it, &cap), 0);
    uint64_t expect = 0;
    int n = 0;
    while (tallyX_iter_next(&it, &ev)) {
        if (ev.type == TALLY_REC_TIME)
            continue;
        assert_int_equal(ev.seq, expect);
        expect++;
        n++;
    }
    tallyX_iter_end(&it);
    assert_int_equal(n, 9);

    tallyX_analysis a;
    assert_int_equal(tallyX_analyze(&cap, &a), 0);
    assert_true(a.allocs == 5 && a.frees == 3);
    assert_true(a.bytes_allocated == 1167);
    assert_true(a.peak_bytes == 1060 && a.peak_blocks == 3 && a.peak_seq == 4);
    assert_true(a.end_bytes == 1007 && a.end_blocks == 2);
    assert_true(a.temporary == 1);
    assert_true(a.kind_count[TALLY_AK_MALLOC] == 3 && a.kind_count[TALLY_AK_CALLOC] == 1 &&
                a.kind_count[TALLY_AK_NEW] == 1);
    /* Stacks 1 and 9 have the same frames: one entry for both. */
    double f1_allocs = 0;
    for (size_t i = 0; i < cap.nstacks; i++) {
        if (cap.stacks[i].n == 2 && cap.stacks[i].kind == TALLY_STACK_NATIVE)
            f1_allocs = a.stacks[i].alloc_count;
    }
    assert_true(f1_allocs == 2);
    tallyX_analysis_free(&a);
    tallyX_capture_free(&cap);
    free(c.buf);
}

/* tallyX_replay (the curve of `tally plot`): the live heap after each event. */
struct curve {
    double bytes[16], max;
    uint64_t seq[16];
    size_t n, marks;
};

static void on_event(void *ctx, const tallyX_event *ev, double bytes)
{
    struct curve *c = ctx;
    if (ev->type == TALLY_REC_TIME || ev->type == TALLY_REC_EXIT) {
        c->marks++;
        return;
    }
    if (c->n < 16) {
        c->seq[c->n] = ev->seq;
        c->bytes[c->n] = bytes;
    }
    c->n++;
    if (bytes > c->max)
        c->max = bytes;
}

static void test_replay_curve(void **state)
{
    (void)state;
    struct cb c;
    build_reference(&c);
    tallyX_capture cap;
    char err[256];
    assert_int_equal(tallyX_capture_parse(c.buf, c.size, &cap, err, sizeof err), 0);
    struct curve cv = { .n = 0 };
    assert_int_equal(tallyX_replay(&cap, on_event, &cv), 0);
    static const double expect[] = { 100, 150, 50, 1050, 1060, 1050, 1000, 1007 };
    assert_int_equal(cv.n, 8);
    assert_int_equal(cv.marks, 2);  /* TIME and EXIT */
    for (size_t i = 0; i < 8; i++) {
        assert_int_equal(cv.seq[i], i);
        assert_true(cv.bytes[i] == expect[i]);
    }
    tallyX_capture_free(&cap);
    /* On every prefix, the curve's maximum is the analysis's peak. */
    for (size_t n = TALLY_CAP_HEADER_USED; n <= c.size; n += 7) {
        assert_int_equal(tallyX_capture_parse(c.buf, n, &cap, err, sizeof err), 0);
        tallyX_analysis a;
        assert_int_equal(tallyX_analyze(&cap, &a), 0);
        memset(&cv, 0, sizeof cv);
        assert_int_equal(tallyX_replay(&cap, on_event, &cv), 0);
        assert_true(cv.max == a.peak_bytes);
        tallyX_analysis_free(&a);
        tallyX_capture_free(&cap);
    }
    free(c.buf);
}

/* Every prefix of the capture loads (or fails cleanly below the header) and never
 * holds more than the whole. */
static void test_truncation_every_byte(void **state)
{
    (void)state;
    struct cb c;
    build_reference(&c);
    /* The real end of a capture cut by exit: after the last record of chunk B. */
    for (size_t n = 0; n <= c.size; n++) {
        tallyX_capture cap;
        char err[256];
        int rc = tallyX_capture_parse(c.buf, n, &cap, err, sizeof err);
        if (n < TALLY_CAP_HEADER_USED) {
            assert_int_equal(rc, -1);
            assert_true(strlen(err) > 0);
            continue;
        }
        assert_int_equal(rc, 0);
        assert_true(cap.nevents <= 8);
        assert_int_equal(cap.damaged, 0);
        /* A cut on a chunk boundary looks like a shorter capture (no EXIT record
         * then tells that the program did not finish); anywhere else it is seen. */
        if (n < c.size && (n - TALLY_CAP_HEADER_SIZE) % CHUNK != 0)
            assert_true(cap.truncated);
        if (n < c.size)
            assert_true(cap.truncated || !cap.exited || cap.nevents < 8);
        tallyX_analysis a;
        assert_int_equal(tallyX_analyze(&cap, &a), 0);
        assert_true(a.allocs <= 5 && a.peak_bytes <= 1060);
        tallyX_analysis_free(&a);
        tallyX_capture_free(&cap);
    }
    free(c.buf);
}

static uint64_t rng = 12345;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Random bytes changed (in the records, sometimes the header): errors or partial
 * results, never a crash or an out-of-bounds read. */
static void test_random_corruption(void **state)
{
    (void)state;
    struct cb c;
    build_reference(&c);
    uint8_t *copy = malloc(c.size);
    assert_non_null(copy);
    int loaded = 0;
    for (int iter = 0; iter < 3000; iter++) {
        memcpy(copy, c.buf, c.size);
        int flips = 1 + (int)(rnd() % 8);
        for (int k = 0; k < flips; k++) {
            size_t at;
            if (rnd() % 16 == 0)
                at = rnd() % TALLY_CAP_HEADER_USED;
            else    /* the used part of the two chunks */
                at = TALLY_CAP_HEADER_SIZE + (rnd() % 2) * CHUNK + rnd() % 200;
            copy[at] = (uint8_t)rnd();
        }
        size_t n = rnd() % 4 == 0 ? (size_t)(rnd() % c.size) : c.size;
        tallyX_capture cap;
        char err[256];
        if (tallyX_capture_parse(copy, n, &cap, err, sizeof err) != 0)
            continue;
        loaded++;
        tallyX_analysis a;
        if (tallyX_analyze(&cap, &a) == 0) {
            assert_true(a.end_blocks >= 0 && a.peak_bytes >= a.end_bytes - 1e-6);
            tallyX_analysis_free(&a);
        }
        tallyX_capture_free(&cap);
    }
    assert_true(loaded > 100);
    free(copy);
    free(c.buf);
}

static void test_bad_headers(void **state)
{
    (void)state;
    struct cb c;
    build_reference(&c);
    tallyX_capture cap;
    char err[256];
    assert_int_equal(tallyX_capture_parse(c.buf, 0, &cap, err, sizeof err), -1);
    assert_non_null(strstr(err, "truncated"));
    uint8_t junk[100] = "this is not a capture at all, just text";
    assert_int_equal(tallyX_capture_parse(junk, sizeof junk, &cap, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a tally capture"));
    c.buf[TALLY_CAPH_MAJOR] = 9;
    assert_int_equal(tallyX_capture_parse(c.buf, c.size, &cap, err, sizeof err), -1);
    assert_non_null(strstr(err, "version 9"));
    c.buf[TALLY_CAPH_MAJOR] = TALLY_CAP_VERSION_MAJOR;
    c.buf[TALLY_CAPH_FRAMES] ^= 1;
    assert_int_equal(tallyX_capture_parse(c.buf, c.size, &cap, err, sizeof err), -1);
    assert_non_null(strstr(err, "checksum"));
    free(c.buf);
    assert_int_equal(tallyX_capture_load("/no/such/capture", &cap, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot open"));
}

/* A damaged record ends its chunk's valid part; other chunks still count. */
static void test_damaged_chunk(void **state)
{
    (void)state;
    struct cb c;
    build_reference(&c);
    /* Chunk B's first record is a STACK; make its length run past the chunk. */
    size_t b = TALLY_CAP_HEADER_SIZE + CHUNK;
    c.buf[b + 1] = 0xff;
    c.buf[b + 2] = 0x7f;
    tallyX_capture cap;
    char err[256];
    assert_int_equal(tallyX_capture_parse(c.buf, c.size, &cap, err, sizeof err), 0);
    assert_int_equal(cap.damaged, 1);
    assert_int_equal(cap.nevents, 5);   /* thread A's */
    tallyX_capture_free(&cap);
    free(c.buf);
}

static void test_sampling_weight(void **state)
{
    (void)state;
    assert_true(tallyX_weight(0, 12345) == 1.0);
    double w = tallyX_weight(1000, 1000);
    assert_true(w > 1.581 && w < 1.582);    /* 1 / (1 - e^-1) */
    assert_true(tallyX_weight(1000, 1000000) == 1.0);
    assert_true(tallyX_weight(1 << 20, 16) > 65536.0);
}

/* JSON strings: valid UTF-8 passes through, quotes, backslashes and control
 * characters are escaped, stray bytes become U+FFFD. */
static void json_of(const char *in, const char *want)
{
    char buf[256];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    assert_non_null(f);
    tallyX_json_str(f, in);
    fputc('\0', f);
    fclose(f);
    assert_string_equal(buf, want);
}

static void test_json_strings(void **state)
{
    (void)state;
    json_of(NULL, "null");
    json_of("plain", "\"plain\"");
    json_of("a\"b\\c\n\x01", "\"a\\\"b\\\\c\\u000a\\u0001\"");
    json_of("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
    json_of("bad \xff \xc3 \xed\xa0\x80 \xc0\xaf", "\"bad \\ufffd \\ufffd \\ufffd\\ufffd\\ufffd \\ufffd\\ufffd\"");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_strings),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_replay_curve),
        cmocka_unit_test(test_truncation_every_byte),
        cmocka_unit_test(test_random_corruption),
        cmocka_unit_test(test_bad_headers),
        cmocka_unit_test(test_damaged_chunk),
        cmocka_unit_test(test_sampling_weight),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
