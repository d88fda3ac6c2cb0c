/* iopub_capture.c -- the pipes that replace fds 1 and 2: what was written
 * is read by the publisher and released by byte marks (see iopub.h). */
#define _GNU_SOURCE /* pipe2, F_SETPIPE_SZ */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "iopub_int.h"
#include "utf8.h"

/* Reads what the pipe holds now into raw. */
void iopub_capture_read(iopub *io, capture *c)
{
    for (;;) {
        if (c->raw_cap - c->raw_len < READ_CHUNK) {
            size_t cap = c->raw_cap ? 2 * c->raw_cap : 2 * READ_CHUNK;
            unsigned char *grown = realloc(c->raw, cap);
            if (grown == NULL) {
                return;
            }
            c->raw = grown;
            c->raw_cap = cap;
        }
        pthread_mutex_lock(&io->lock);
        ssize_t n = read(c->fd, c->raw + c->raw_len, READ_CHUNK);
        if (n > 0) {
            c->bytes_read += (uint64_t)n;
        }
        pthread_mutex_unlock(&io->lock);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return;
        }
        c->raw_len += (size_t)n;
        if (io->deadline_ms == 0) {
            io->deadline_ms = iopub_now_ms() + FLUSH_INTERVAL_MS;
        }
    }
}

/* Releases the captured bytes up to pipe position mark into the batch; a
 * multi-byte sequence cut at the end waits for its rest unless final. */
static void capture_release(iopub *io, capture *c, uint64_t mark, int final)
{
    if (c->fd < 0) {
        return;
    }
    if (mark > c->bytes_read) {
        iopub_capture_read(io, c); /* the bytes are in the pipe: read them now */
    }
    uint64_t start = c->bytes_read - c->raw_len;
    size_t count = mark <= start ? 0 : (size_t)(mark - start);
    if (count > c->raw_len) {
        count = c->raw_len;
    }
    if (count == 0) {
        return;
    }
    char *text = malloc(3 * count + 1);
    if (text == NULL) {
        return;
    }
    size_t text_len;
    size_t used = utf8_sanitize(c->raw, count, final, text, &text_len);
    iopub_stream_append(io, c->name, text, text_len);
    free(text);
    memmove(c->raw, c->raw + used, c->raw_len - used);
    c->raw_len -= used;
    iopub_shrink_buffer(io, (void **)&c->raw, &c->raw_cap, c->raw_len);
}

void iopub_release_marks(iopub *io, const uint64_t marks[2], int final)
{
    for (int i = 0; i < 2; i++) {
        capture_release(io, &io->out[i], marks[i], final);
    }
}

/* Which pipes may hold bytes not read yet, before taking the lock for
 * iopub_take_marks_locked.  This runs for every write, and mostly the pipes are
 * empty.  An epoll set of their own answers for both from the ready list
 * the kernel keeps (a completed write to a pipe is on it before the write
 * returns), without touching the pipes, which the publisher polls and reads
 * from the other core. */
void iopub_pipes_ready(iopub *io, int ready[2])
{
    ready[0] = ready[1] = 0;
    if (io->ready_fd < 0) {
        return;
    }
    struct epoll_event evs[2];
    int n = epoll_wait(io->ready_fd, evs, 2, 0);
    for (int i = 0; i < n; i++) {
        ready[evs[i].data.u32] = 1;
    }
    if (n < 0) { /* cannot tell: ask both pipes */
        ready[0] = ready[1] = 1;
    }
}

/* The pipe positions now: what has been written to fds 1 and 2 so far,
 * given iopub_pipes_ready's answer.  Called with io->lock held.  A pipe that
 * pipes_ready saw empty was drained by a read done under the lock, so
 * bytes_read counts those bytes; only a pipe holding bytes costs an ioctl. */
void iopub_take_marks_locked(iopub *io, const int ready[2], uint64_t marks[2])
{
    for (int i = 0; i < 2; i++) {
        int pending = 0;
        if (ready[i] && ioctl(io->out[i].fd, FIONREAD, &pending) < 0) {
            pending = 0;
        }
        marks[i] = io->out[i].bytes_read + (uint64_t)pending;
    }
}

/* ------------------------------------------------------------- set-up */

int iopub_capture_open(capture *c, int target, const char *name)
{
    int fds[2];
    c->name = name;
    c->fd = -1;
    if (pipe2(fds, O_CLOEXEC) < 0) {
        return -1;
    }
    /* A larger pipe lets a chatty cell run ahead of the publisher. */
    (void)fcntl(fds[1], F_SETPIPE_SZ, 1 << 20);
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    if (dup2(fds[1], target) < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    close(fds[1]);
    c->fd = fds[0];
    return 0;
}

/* An epoll set of the two capture pipes (data: their index), which only
 * iopub_pipes_ready waits on; returns its fd or -1. */
int iopub_ready_set_new(const capture *out)
{
    int fd = epoll_create1(EPOLL_CLOEXEC);
    for (uint32_t i = 0; fd >= 0 && i < 2; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
        if (epoll_ctl(fd, EPOLL_CTL_ADD, out[i].fd, &ev) < 0) {
            close(fd);
            fd = -1;
        }
    }
    return fd;
}
