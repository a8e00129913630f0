/* writer.c - the capture file of the interposer: a shared file mapping filled by
 * every thread without system calls on the fast path.
 *
 * The file is mapped MAP_SHARED in segments of TALLYP_SEG_CHUNKS chunks.  A thread
 * takes a whole chunk under tallyP_g.lock (the only lock on the write path, taken once
 * per 64 KiB of records), then appends records to it alone.  Because the pages of a
 * shared file mapping belong to the page cache, not to the process, every record is
 * in the file the moment it is stored: a program killed by SIGKILL or a crash leaves
 * all its committed records behind, with nothing to flush and no signal handler.  A
 * record is committed by storing its type byte last (the file is zero where nothing
 * was written), so a record cut by death mid-write reads as the end of its chunk.
 *
 * At exit the file is cut to the chunks handed out; no chunk is handed out after
 * that, so a thread still running can only write inside the file.  A thread's state
 * is retired by a pthread key destructor when the thread exits, and reused by the
 * next new thread; events after that destructor go through one shared state under
 * a mutex.
 */
#define _GNU_SOURCE
#include "preload.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SEG_BYTES ((size_t)TALLYP_SEG_CHUNKS * TALLY_CAP_CHUNK_SIZE)

uint64_t tallyP_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The capture file's identity: a program may close our descriptor (daemons close
 * every fd) and reuse its number; then we must not grow or cut someone else's file. */
static dev_t file_dev;
static ino_t file_ino;

static int fd_is_ours(void)
{
    struct stat st;
    return fstat(tallyP_g.fd, &st) == 0 && st.st_dev == file_dev && st.st_ino == file_ino;
}

/* Maps one more segment, growing the file.  Called with tallyP_g.lock held. */
static int map_segment(void)
{
    struct tallyP_global *g = &tallyP_g;
    if (g->nseg >= TALLYP_MAX_SEGS || !fd_is_ours())
        return -1;
    off_t off = (off_t)TALLY_CAP_HEADER_SIZE + (off_t)g->nseg * (off_t)SEG_BYTES;
    if (ftruncate(g->fd, off + (off_t)SEG_BYTES) != 0)
        return -1;
    void *m = mmap(NULL, SEG_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, g->fd, off);
    if (m == MAP_FAILED)
        return -1;
#ifdef MADV_POPULATE_WRITE
    /* One call faults the whole segment in, instead of one page fault per 4 KiB
     * written (Linux 5.14; older kernels refuse it and the pages fault as usual). */
    madvise(m, SEG_BYTES, MADV_POPULATE_WRITE);
#endif
    g->seg[g->nseg++] = m;
    return 0;
}

/* Gives t a fresh chunk; -1 when the capture is closed or the file cannot grow. */
static int new_chunk(struct tallyP_thread *t)
{
    struct tallyP_global *g = &tallyP_g;
    int rc = -1;
    pthread_mutex_lock(&g->lock);
    uint64_t idx = g->next_chunk;
    if (idx < g->chunk_limit) {
        uint64_t seg = idx / TALLYP_SEG_CHUNKS;
        while (g->nseg <= seg && map_segment() == 0) {
        }
        if (g->nseg > seg) {
            g->next_chunk++;
            t->pos = g->seg[seg] + (idx % TALLYP_SEG_CHUNKS) * TALLY_CAP_CHUNK_SIZE;
            t->end = t->pos + TALLY_CAP_CHUNK_SIZE;
            rc = 0;
        } else {
            g->chunk_limit = idx;   /* out of space: record nothing more */
        }
    }
    pthread_mutex_unlock(&g->lock);
    return rc;
}

int tallyP_emit(struct tallyP_thread *t, unsigned type, const uint8_t *payload, size_t len)
{
    uint8_t lenbuf[10];
    size_t lenlen = (size_t)(tally_cap_put_varint(lenbuf, len) - lenbuf);
    size_t need = 1 + lenlen + len;
    if (need > TALLY_CAP_CHUNK_SIZE)
        return -1;
    if (t->pos == NULL || (size_t)(t->end - t->pos) < need) {
        if (new_chunk(t) != 0) {
            t->pos = t->end = NULL;
            return -1;
        }
    }
    uint8_t *r = t->pos;
    memcpy(r + 1, lenbuf, lenlen);
    memcpy(r + 1 + lenlen, payload, len);
    /* The commit: readers (and a reader after our death) see the type byte only
     * once the rest is stored. */
    __atomic_store_n(r, (uint8_t)type, __ATOMIC_RELEASE);
    t->pos = r + need;
    return 0;
}

/* ---- thread states ------------------------------------------------------------------- */

static void thread_retire(void *arg)
{
    struct tallyP_thread *t = arg;
    struct tallyP_global *g = &tallyP_g;
    tallyP_tls.t = NULL;
    tallyP_tls.exited = 1;
    t->pos = t->end = NULL;     /* the rest of its chunk stays unused (zero) */
    pthread_mutex_lock(&g->lock);
    t->next_free = g->free_threads;
    g->free_threads = t;
    pthread_mutex_unlock(&g->lock);
}

/* The calling thread's writer state, created on first use; NULL when the thread is
 * past its exit destructor (the caller then uses the shared state). */
struct tallyP_thread *tallyP_thread_get(void)
{
    struct tallyP_tls *tl = &tallyP_tls;
    if (TALLYP_LIKELY(tl->t != NULL))
        return tl->t;
    if (tl->exited)
        return NULL;
    struct tallyP_global *g = &tallyP_g;
    struct tallyP_thread *t;
    pthread_mutex_lock(&g->lock);
    t = g->free_threads;
    if (t != NULL)
        g->free_threads = t->next_free;
    pthread_mutex_unlock(&g->lock);
    if (t == NULL) {
        void *m = mmap(NULL, sizeof *t, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                       -1, 0);
        if (m == MAP_FAILED)
            return NULL;
        t = m;
    }
    t->next_free = NULL;
    t->events = 0;
    tl->t = t;
    pthread_setspecific(g->key, t);
    return t;
}

/* ---- open, process record, close -------------------------------------------------------- */

/* Opens the capture.  owner: this process is the one `tally run` started and path
 * is the file it created (empty); otherwise (an exec'd child, a program that exec'd
 * itself) the capture goes to PATH.PID, or PATH.PID.K if that exists. */
int tallyP_writer_open(const char *path, int owner)
{
    struct tallyP_global *g = &tallyP_g;
    char name[4096];
    int fd = -1;
    if (owner) {
        fd = open(path, O_RDWR | O_CLOEXEC);
        struct stat st;
        if (fd >= 0 && (fstat(fd, &st) != 0 || st.st_size != 0)) {
            close(fd);
            fd = -1;
        }
    }
    for (int k = 0; fd < 0 && k < 100; k++) {
        int n = k == 0 ? snprintf(name, sizeof name, "%s.%ld", path, (long)getpid())
                       : snprintf(name, sizeof name, "%s.%ld.%d", path, (long)getpid(), k);
        if (n < 0 || (size_t)n >= sizeof name)
            return -1;
        fd = open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0 && errno != EEXIST)
            return -1;
    }
    if (fd < 0)
        return -1;
    void *segs = mmap(NULL, TALLYP_MAX_SEGS * sizeof(uint8_t *), PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (segs == MAP_FAILED) {
        close(fd);
        return -1;
    }
    uint8_t header[TALLY_CAP_HEADER_SIZE];
    memset(header, 0, sizeof header);
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    tally_cap_write_header(header, TALLY_CAP_CHUNK_SIZE, g->frames, g->sample,
                           (uint64_t)getpid(),
                           (uint64_t)rt.tv_sec * 1000000000u + (uint64_t)rt.tv_nsec);
    if (pwrite(fd, header, sizeof header, 0) != (ssize_t)sizeof header) {
        close(fd);
        munmap(segs, TALLYP_MAX_SEGS * sizeof(uint8_t *));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        munmap(segs, TALLYP_MAX_SEGS * sizeof(uint8_t *));
        return -1;
    }
    file_dev = st.st_dev;
    file_ino = st.st_ino;
    g->fd = fd;
    g->pid = getpid();
    g->seg = segs;
    g->nseg = 0;
    g->next_chunk = 0;
    g->chunk_limit = UINT64_MAX;
    return 0;
}

/* Reads a whole small /proc file into buf; returns its length or -1. */
static ssize_t read_small(const char *file, char *buf, size_t cap)
{
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t n = 0;
    while (n < cap) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    return (ssize_t)n;
}

/* The PROCESS record: parent pid, executable, command line (from /proc, so that
 * it works before main). */
void tallyP_write_process(struct tallyP_thread *t)
{
    static uint8_t buf[8192];   /* written once, by the initialising thread */
    char exe[1024], cmd[4096];
    ssize_t ne = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (ne < 0)
        ne = 0;
    ssize_t nc = read_small("/proc/self/cmdline", cmd, sizeof cmd);
    if (nc < 0)
        nc = 0;
    uint8_t *p = buf;
    p = tally_cap_put_varint(p, (uint64_t)getppid());
    p = tally_cap_put_bytes(p, exe, (size_t)ne);
    uint64_t argc = 0;
    for (ssize_t i = 0; i < nc; i++)
        argc += cmd[i] == '\0';
    p = tally_cap_put_varint(p, argc);
    for (ssize_t i = 0; i < nc;) {
        size_t l = strnlen(cmd + i, (size_t)(nc - i));
        if ((size_t)(nc - i) == l)
            break;      /* unterminated last argument (cut by the buffer) */
        p = tally_cap_put_bytes(p, cmd + i, l);
        i += (ssize_t)l + 1;
    }
    tallyP_emit(t, TALLY_REC_PROCESS, buf, (size_t)(p - buf));
}

/* At exit: an EXIT record, then the file is cut to the chunks in use. */
void tallyP_writer_close(void)
{
    struct tallyP_global *g = &tallyP_g;
    struct tallyP_tls *tl = &tallyP_tls;
    tl->busy++;
    struct tallyP_thread *t = tallyP_thread_get();
    uint8_t buf[24], *p = buf;
    p = tally_cap_put_varint(p, atomic_fetch_add_explicit(&g->seq, 1, memory_order_relaxed));
    p = tally_cap_put_varint(p, tallyP_now_ns() - g->start_ns);
    if (t != NULL) {
        tallyP_emit(t, TALLY_REC_EXIT, buf, (size_t)(p - buf));
    } else {
        pthread_mutex_lock(&g->shared_lock);
        tallyP_emit(&g->shared, TALLY_REC_EXIT, buf, (size_t)(p - buf));
        pthread_mutex_unlock(&g->shared_lock);
    }
    pthread_mutex_lock(&g->lock);
    g->chunk_limit = g->next_chunk;
    if (fd_is_ours() && ftruncate(g->fd, (off_t)TALLY_CAP_HEADER_SIZE +
                             (off_t)g->next_chunk * TALLY_CAP_CHUNK_SIZE) != 0) {
        /* The file keeps zero chunks at its end, which readers skip. */
    }
    pthread_mutex_unlock(&g->lock);
    tl->busy--;
}

/* Called by preload.c's initialisation. */
void tallyP_thread_key_init(void)
{
    pthread_key_create(&tallyP_g.key, thread_retire);
}
