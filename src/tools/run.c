/* run.c - `tally run [--frames N] [--sample BYTES] -o FILE -- PROGRAM [ARGS]`.
 *
 * Checks the program before starting it (found, executable, a dynamically linked
 * ELF program of our class, or a #! script whose interpreter is one), finds the
 * interposer (next to this executable in a build tree, or at TALLYX_PRELOAD_REL from
 * it in an install tree; TALLY_PRELOAD overrides), creates the capture file empty,
 * and runs the program with
 *     LD_PRELOAD=<interposer>[:previous]   TALLY_CAPTURE=<absolute FILE>
 *     TALLY_FRAMES=N  TALLY_SAMPLE=BYTES   TALLY_CAPTURE_PID=<the program's pid>
 * The interposer writes FILE only in the process whose pid is TALLY_CAPTURE_PID;
 * programs that process execs write FILE.PID (preload/writer.c).  An exec failure
 * comes back through a close-on-exec pipe.  While the program runs, SIGINT and
 * SIGQUIT are ignored here (the terminal sends them to the program too); SIGTERM
 * and SIGHUP are forwarded.  The exit status is the program's, 128+N if signal N
 * ended it.
 */
#define _GNU_SOURCE
#include "tools.h"

#include "trace/capture_format.h"

#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef TALLYX_PRELOAD_REL
#define TALLYX_PRELOAD_REL "../lib/tally/libtally-preload.so"
#endif
#define PRELOAD_NAME "libtally-preload.so"

static int usage(void)
{
    fprintf(stderr, "usage: tally run [--frames N] [--sample BYTES] -o FILE -- PROGRAM [ARGS]\n");
    return 2;
}

/* PATH lookup as execvp does it; the result in out. 0, or an errno. */
static int find_program(const char *name, char *out, size_t len)
{
    if (strchr(name, '/') != NULL) {
        if (snprintf(out, len, "%s", name) >= (int)len)
            return ENAMETOOLONG;
        if (access(out, F_OK) != 0)
            return ENOENT;
        return access(out, X_OK) == 0 ? 0 : EACCES;
    }
    const char *path = getenv("PATH");
    if (path == NULL)
        path = "/usr/local/bin:/usr/bin:/bin";
    int seen_noexec = 0;
    while (*path) {
        const char *colon = strchr(path, ':');
        size_t dl = colon ? (size_t)(colon - path) : strlen(path);
        int n = snprintf(out, len, "%.*s%s%s", (int)dl, path, dl ? "/" : "", name);
        if (n > 0 && (size_t)n < len) {
            struct stat st;
            if (stat(out, &st) == 0 && S_ISREG(st.st_mode)) {
                if (access(out, X_OK) == 0)
                    return 0;
                seen_noexec = 1;
            }
        }
        path += dl + (colon != NULL);
    }
    return seen_noexec ? EACCES : ENOENT;
}

/* Whether the file at path is a program LD_PRELOAD can work on; a one-line reason
 * in why if not.  depth bounds #! chains. */
static int check_program(const char *path, const char *shown, char *why, size_t len, int depth)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, len, "%s: cannot open: %s", shown, strerror(errno));
        return 0;
    }
    unsigned char buf[4096];
    ssize_t n = pread(fd, buf, sizeof buf, 0);
    if (n < 0)
        n = 0;
    if (n >= 2 && buf[0] == '#' && buf[1] == '!') {
        close(fd);
        char interp[PATH_MAX];
        size_t i = 2, k = 0;
        while (i < (size_t)n && (buf[i] == ' ' || buf[i] == '\t'))
            i++;
        while (i < (size_t)n && buf[i] != ' ' && buf[i] != '\t' && buf[i] != '\n' &&
               k + 1 < sizeof interp)
            interp[k++] = (char)buf[i++];
        interp[k] = '\0';
        if (k == 0 || depth > 4) {
            snprintf(why, len, "%s: bad #! line", shown);
            return 0;
        }
        return check_program(interp, interp, why, len, depth + 1);
    }
    if (n < (ssize_t)sizeof(Elf64_Ehdr) || memcmp(buf, ELFMAG, SELFMAG) != 0) {
        close(fd);
        snprintf(why, len, "%s: not an ELF program or a #! script", shown);
        return 0;
    }
    if (buf[EI_CLASS] != ELFCLASS64) {
        close(fd);
        snprintf(why, len, "%s is a 32-bit program; the tally interposer is 64-bit", shown);
        return 0;
    }
    Elf64_Ehdr eh;
    memcpy(&eh, buf, sizeof eh);
    int interp = 0;
    for (unsigned i = 0; i < eh.e_phnum && eh.e_phentsize == sizeof(Elf64_Phdr); i++) {
        Elf64_Phdr ph;
        if (pread(fd, &ph, sizeof ph, (off_t)(eh.e_phoff + (uint64_t)i * sizeof ph)) !=
            (ssize_t)sizeof ph)
            break;
        if (ph.p_type == PT_INTERP)
            interp = 1;
    }
    close(fd);
    if (!interp) {
        snprintf(why, len, "%s is statically linked (no program interpreter): LD_PRELOAD "
                           "cannot intercept its allocations", shown);
        return 0;
    }
    return 1;
}

/* The interposer: next to this executable, or at the install-relative path. */
static int find_preload(char *out, size_t len)
{
    const char *env = getenv("TALLY_PRELOAD");
    if (env != NULL && *env) {
        if (realpath(env, out) != NULL && access(out, R_OK) == 0)
            return 0;
        fprintf(stderr, "tally run: TALLY_PRELOAD=%s: not readable\n", env);
        return -1;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        fprintf(stderr, "tally run: cannot find my own executable (/proc/self/exe)\n");
        return -1;
    }
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    *slash = '\0';
    const char *cand[] = { PRELOAD_NAME, TALLYX_PRELOAD_REL };
    char path[2 * PATH_MAX];
    for (size_t i = 0; i < sizeof cand / sizeof *cand; i++) {
        snprintf(path, sizeof path, "%s/%s", self, cand[i]);
        if (access(path, R_OK) == 0 && realpath(path, out) != NULL && strlen(out) < len)
            return 0;
    }
    fprintf(stderr, "tally run: cannot find %s (looked in %s and %s/%s)\n", PRELOAD_NAME, self,
            self, TALLYX_PRELOAD_REL);
    return -1;
}

static int parse_u64(const char *s, uint64_t *v)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-')
        return -1;
    *v = x;
    return 0;
}

static pid_t child_pid;

static void forward(int sig)
{
    if (child_pid > 0)
        kill(child_pid, sig);
}

/* Mentions captures written by programs the profiled one started (FILE.PID). */
static void mention_children(const char *capture)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", capture);
    char *slash = strrchr(dir, '/');
    const char *base = slash ? slash + 1 : capture;
    size_t bl = strlen(base);
    if (slash)
        *slash = '\0';
    DIR *d = opendir(slash ? (dir[0] ? dir : "/") : ".");
    if (d == NULL)
        return;
    size_t count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, base, bl) == 0 && e->d_name[bl] == '.' &&
            e->d_name[bl + 1] >= '0' && e->d_name[bl + 1] <= '9')
            count++;
    }
    closedir(d);
    if (count)
        fprintf(stderr, "tally: %zu more capture(s) from programs it started: %s.PID\n", count,
                capture);
}

int tallyX_run_main(int argc, char **argv)
{
    uint64_t frames = 32, sample = 0;
    const char *out = NULL;
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (strcmp(a, "--frames") == 0 && i + 1 < argc) {
            if (parse_u64(argv[++i], &frames) != 0 || frames < 1 || frames > TALLY_CAP_MAX_FRAMES) {
                fprintf(stderr, "tally run: --frames takes 1 to %d\n", TALLY_CAP_MAX_FRAMES);
                return 2;
            }
        } else if (strcmp(a, "--sample") == 0 && i + 1 < argc) {
            if (parse_u64(argv[++i], &sample) != 0) {
                fprintf(stderr, "tally run: --sample takes a number of bytes (0: no sampling)\n");
                return 2;
            }
        } else if (strcmp(a, "-o") == 0 && i + 1 < argc) {
            out = argv[++i];
        } else if (a[0] == '-') {
            return usage();
        } else {
            break;  /* the program, without "--" */
        }
    }
    if (i >= argc) {
        fprintf(stderr, "tally run: no program given\n");
        return usage();
    }
    if (out == NULL) {
        fprintf(stderr, "tally run: -o FILE is required (where the capture goes)\n");
        return 2;
    }
    char prog[PATH_MAX], why[PATH_MAX + 128], preload[PATH_MAX];
    int err = find_program(argv[i], prog, sizeof prog);
    if (err == ENOENT) {
        fprintf(stderr, "tally run: %s: program not found\n", argv[i]);
        return 127;
    }
    if (err != 0) {
        fprintf(stderr, "tally run: %s: %s\n", argv[i], strerror(err));
        return 126;
    }
    if (!check_program(prog, argv[i], why, sizeof why, 0)) {
        fprintf(stderr, "tally run: %s\n", why);
        return 126;
    }
    if (find_preload(preload, sizeof preload) != 0)
        return 2;

    /* The capture: created empty here, so that an unwritable path fails now. */
    char capture[PATH_MAX];
    if (out[0] == '/') {
        snprintf(capture, sizeof capture, "%s", out);
    } else {
        char cwd[PATH_MAX];
        if (getcwd(cwd, sizeof cwd) == NULL) {
            fprintf(stderr, "tally run: getcwd: %s\n", strerror(errno));
            return 2;
        }
        if (snprintf(capture, sizeof capture, "%s/%s", cwd, out) >= (int)sizeof capture) {
            fprintf(stderr, "tally run: %s: path too long\n", out);
            return 2;
        }
    }
    int fd = open(capture, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "tally run: cannot create %s: %s\n", out, strerror(errno));
        return 2;
    }
    close(fd);

    const char *old = getenv("LD_PRELOAD");
    char *ld = NULL;
    if (asprintf(&ld, "%s%s%s", preload, old && *old ? ":" : "", old && *old ? old : "") < 0)
        return 2;
    char num[32];
    setenv("LD_PRELOAD", ld, 1);
    free(ld);
    setenv("TALLY_CAPTURE", capture, 1);
    snprintf(num, sizeof num, "%llu", (unsigned long long)frames);
    setenv("TALLY_FRAMES", num, 1);
    snprintf(num, sizeof num, "%llu", (unsigned long long)sample);
    setenv("TALLY_SAMPLE", num, 1);

    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0) {
        fprintf(stderr, "tally run: pipe: %s\n", strerror(errno));
        return 2;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "tally run: fork: %s\n", strerror(errno));
        return 2;
    }
    if (pid == 0) {
        close(pipefd[0]);
        snprintf(num, sizeof num, "%ld", (long)getpid());
        setenv("TALLY_CAPTURE_PID", num, 1);
        execv(prog, argv + i);
        int e = errno;
        ssize_t w = write(pipefd[1], &e, sizeof e);
        (void)w;
        _exit(127);
    }
    close(pipefd[1]);
    child_pid = pid;
    struct sigaction ign = { .sa_handler = SIG_IGN }, fwd = { .sa_handler = forward };
    sigaction(SIGINT, &ign, NULL);
    sigaction(SIGQUIT, &ign, NULL);
    sigaction(SIGTERM, &fwd, NULL);
    sigaction(SIGHUP, &fwd, NULL);
    int e = 0;
    ssize_t r;
    do
        r = read(pipefd[0], &e, sizeof e);
    while (r < 0 && errno == EINTR);
    close(pipefd[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (r == (ssize_t)sizeof e) {
        fprintf(stderr, "tally run: cannot execute %s: %s\n", prog, strerror(e));
        unlink(capture);
        return 126;
    }
    struct stat st;
    if (stat(capture, &st) == 0 && st.st_size == 0)
        fprintf(stderr, "tally: the program wrote no capture (%s is empty)\n", out);
    else
        fprintf(stderr, "tally: capture written to %s; see it with: tally report %s\n", out, out);
    mention_children(capture);
    if (WIFSIGNALED(status)) {
        fprintf(stderr, "tally: the program was killed by signal %d (%s)\n", WTERMSIG(status),
                strsignal(WTERMSIG(status)));
        return 128 + WTERMSIG(status);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
