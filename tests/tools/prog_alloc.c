/* prog_alloc.c - a program with known allocations, run under `tally run` by
 * run_profiler_tests.py.  It uses no stdio (whose buffer would be one more block).
 *
 *   prog_alloc exact   1000 blocks of 16 + (i % 100) * 8 bytes, all live at once; 990
 *                      made by make_block and freed, 10 made by leak_block and leaked
 *   prog_alloc calls   every C allocation function once (see calls()); leaks a
 *                      calloc(3, 100) and an aligned_alloc(64, 640) from leak_calls
 *   prog_alloc crash   100 blocks of 1000 bytes from before_death, then SIGSEGV
 *   prog_alloc abort   the same, then abort()
 *   prog_alloc wait    the same, then writes "ready\n" and waits to be killed
 *   prog_alloc fork    5 blocks; a fork child makes 7 and exits; a fork+exec child
 *                      runs PROGRAM (argv[2]); then 3 more blocks
 *   prog_alloc dlopen LIB  loads LIB and leaks 4 blocks of 4444 bytes from its
 *                      tally_test_lib_alloc
 *   prog_alloc leak N  leaks N (0..1000) blocks of 100 bytes from leak_block, after a
 *                      ramp: 200 blocks of 1000 bytes from make_block, 100 of them
 *                      freed, then the rest (for tally diff and tally plot)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void *volatile sink[1000];

static size_t exact_size(int i)
{
    return 16 + (size_t)(i % 100) * 8;
}

__attribute__((noinline)) static void *make_block(size_t n)
{
    return malloc(n); /* MAKE_LINE */
}

__attribute__((noinline)) static void *leak_block(size_t n)
{
    return malloc(n); /* LEAK_LINE */
}

static int exact(void)
{
    for (int i = 0; i < 1000; i++)
        sink[i] = i < 990 ? make_block(exact_size(i)) : leak_block(exact_size(i));
    for (int i = 0; i < 1000; i++) {
        if (i < 990)
            free(sink[i]);
        sink[i] = NULL; /* the last 10 become unreachable: definitely lost */
    }
    return 0;
}

__attribute__((noinline)) static void leak_calls(void)
{
    sink[0] = calloc(3, 100);           /* LEAK_CALLOC */
    sink[1] = aligned_alloc(64, 640);   /* LEAK_ALIGNED */
    sink[0] = sink[1] = NULL;
}

static int calls(void)
{
    char *a = malloc(100);
    a = realloc(a, 1000);
    a = realloc(a, 50);
    free(a);
    void *b = reallocarray(NULL, 10, 10);
    free(b);
    void *c = calloc(10, 100);
    free(c);
    void *d = NULL;
    if (posix_memalign(&d, 64, 1000) != 0 || ((size_t)d & 63) != 0)
        return 1;
    free(d);
    void *e = aligned_alloc(128, 256);
    free(e);
    void *f = memalign(32, 100);
    free(f);
    void *g = valloc(100);
    if (malloc_usable_size(g) < 100)
        return 1;
    free(g);
    void *h = pvalloc(100);
    free(h);
    leak_calls();
    return 0;
}

__attribute__((noinline)) static void before_death(void)
{
    for (int i = 0; i < 100; i++)
        sink[i] = malloc(1000); /* DEATH_LINE */
}

static int fork_test(const char *prog)
{
    for (int i = 0; i < 5; i++)
        sink[i] = malloc(111);
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < 7; i++)
            sink[i] = malloc(222);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    pid = fork();
    if (pid == 0) {
        execl(prog, prog, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    for (int i = 0; i < 3; i++)
        sink[i] = malloc(333);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}

static int dlopen_test(const char *lib)
{
    void *h = dlopen(lib, RTLD_NOW);
    if (h == NULL)
        return 1;
    void *(*fn)(size_t) = (void *(*)(size_t))dlsym(h, "tally_test_lib_alloc");
    if (fn == NULL)
        return 1;
    for (int i = 0; i < 4; i++)
        sink[i] = fn(4444);
    for (int i = 0; i < 4; i++)
        sink[i] = NULL;
    return 0;
}

static int leak_n(const char *arg)
{
    int n = atoi(arg);
    if (n < 0 || n > 1000)
        return 2;
    for (int i = 0; i < 200; i++)
        sink[i] = make_block(1000);
    for (int i = 0; i < 100; i++)
        free(sink[i]);
    for (int i = 100; i < 200; i++)
        free(sink[i]);
    for (int i = 0; i < n; i++)
        sink[i] = leak_block(100);
    for (int i = 0; i < n; i++)
        sink[i] = NULL;
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "exact";
    if (strcmp(mode, "exact") == 0)
        return exact();
    if (strcmp(mode, "calls") == 0)
        return calls();
    if (strcmp(mode, "dlopen") == 0)
        return argc > 2 ? dlopen_test(argv[2]) : 2;
    if (strcmp(mode, "leak") == 0)
        return argc > 2 ? leak_n(argv[2]) : 2;
    if (strcmp(mode, "fork") == 0)
        return fork_test(argc > 2 ? argv[2] : "/bin/true");
    before_death();
    if (strcmp(mode, "crash") == 0) {
        raise(SIGSEGV);
    } else if (strcmp(mode, "abort") == 0) {
        abort();
    } else if (strcmp(mode, "wait") == 0) {
        if (write(1, "ready\n", 6) != 6)
            return 1;
        for (;;)
            pause();
    }
    return 2;
}
