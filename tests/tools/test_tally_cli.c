/* test_tally_cli.c - the errors of the `tally` command line: each is a non-zero exit
 * status and one line on stderr naming the problem.  TALLY_EXE is the tally
 * executable; TALLY_STATIC_PROG a statically linked program ("" when libc.a is
 * missing: that case is skipped). */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

/* Runs tally with args; returns the exit status, stderr in err. */
static int tally(char *err, size_t errlen, const char *const *args)
{
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        const char *argv[32] = { TALLY_EXE };
        int n = 1;
        for (; args[n - 1] != NULL && n < 31; n++)
            argv[n] = args[n - 1];
        argv[n] = NULL;
        dup2(pfd[1], 2);
        close(pfd[0]);
        close(pfd[1]);
        execv(TALLY_EXE, (char *const *)argv);
        _exit(99);
    }
    close(pfd[1]);
    size_t got = 0;
    ssize_t r;
    while ((r = read(pfd[0], err + got, errlen - 1 - got)) > 0)
        got += (size_t)r;
    err[got] = '\0';
    close(pfd[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

static int lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static char tmpdir[] = "/tmp/tally-cli-XXXXXX";

static char *tmpfile_path(const char *name)
{
    static char buf[256];
    snprintf(buf, sizeof buf, "%s/%s", tmpdir, name);
    return buf;
}

static void test_missing_program(void **state)
{
    (void)state;
    char err[4096];
    const char *a1[] = { "run", "-o", tmpfile_path("x.tly"), "--", "/no/such/program", NULL };
    assert_int_equal(tally(err, sizeof err, a1), 127);
    assert_non_null(strstr(err, "/no/such/program: program not found"));
    assert_int_equal(lines(err), 1);
    const char *a2[] = { "run", "-o", tmpfile_path("x.tly"), "--", "no-such-program-zq9", NULL };
    assert_int_equal(tally(err, sizeof err, a2), 127);
    assert_non_null(strstr(err, "program not found"));
}

static void test_static_program(void **state)
{
    (void)state;
    if (TALLY_STATIC_PROG[0] == '\0')
        skip();     /* no libc.a to link a static program with */
    char err[4096];
    const char *a[] = { "run", "-o", tmpfile_path("s.tly"), "--", TALLY_STATIC_PROG, NULL };
    assert_int_equal(tally(err, sizeof err, a), 126);
    assert_non_null(strstr(err, "statically linked"));
    assert_non_null(strstr(err, "LD_PRELOAD"));
    assert_int_equal(lines(err), 1);
}

static void test_bad_capture(void **state)
{
    (void)state;
    char err[4096];
    const char *path = tmpfile_path("bad.tly");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("#!/bin/sh\necho this is not a capture\n", f);
    fclose(f);
    const char *a1[] = { "report", path, NULL };
    assert_int_equal(tally(err, sizeof err, a1), 1);
    assert_non_null(strstr(err, "not a tally capture"));
    assert_int_equal(lines(err), 1);

    f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(tally(err, sizeof err, a1), 1);
    assert_non_null(strstr(err, "truncated"));
    assert_int_equal(lines(err), 1);

    const char *a2[] = { "report", tmpfile_path("absent.tly"), NULL };
    assert_int_equal(tally(err, sizeof err, a2), 1);
    assert_non_null(strstr(err, "cannot open"));
    unlink(path);
}

static void test_usage_errors(void **state)
{
    (void)state;
    char err[4096];
    const char *a1[] = { "report", "x.tly", "--format", "pdf", NULL };
    assert_int_equal(tally(err, sizeof err, a1), 2);
    assert_non_null(strstr(err, "unknown format"));
    const char *a2[] = { "run", "--", "/bin/true", NULL };
    assert_int_equal(tally(err, sizeof err, a2), 2);
    assert_non_null(strstr(err, "-o FILE is required"));
    const char *a3[] = { "frobnicate", NULL };
    assert_int_equal(tally(err, sizeof err, a3), 2);
    const char *a4[] = { "run", "--frames", "0", "-o", "x", "--", "/bin/true", NULL };
    assert_int_equal(tally(err, sizeof err, a4), 2);
    const char *a5[] = { "run", "-o", "/no/such/dir/x.tly", "--", "/bin/true", NULL };
    assert_int_equal(tally(err, sizeof err, a5), 2);
    assert_non_null(strstr(err, "cannot create"));
}

int main(void)
{
    if (mkdtemp(tmpdir) == NULL)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_program),
        cmocka_unit_test(test_static_program),
        cmocka_unit_test(test_bad_capture),
        cmocka_unit_test(test_usage_errors),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    rmdir(tmpdir);
    return rc;
}
