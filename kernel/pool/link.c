/* link.c -- the kernel's end of the wire to a worker (see link.h). */
#define _GNU_SOURCE /* SOCK_CLOEXEC */
#include "link.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

int link_open(link_conn *c, int *worker_fd)
{
    int fds[2];
    *c = LINK_CLOSED;
    /* Both ends stay blocking: the kernel reads and writes its end with
     * MSG_DONTWAIT (wire.c), the worker writes its end blocking. */
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0) {
        LOG_E("pool: cannot make a worker's socketpair: %s", strerror(errno));
        return -1;
    }
    c->fd = fds[0];
    wire_in_init(&c->in);
    *worker_fd = fds[1];
    return 0;
}

void link_close(link_conn *c)
{
    if (c->fd >= 0) {
        close(c->fd);
    }
    wire_in_clear(&c->in);
    wire_out_clear(&c->out);
    *c = LINK_CLOSED;
}

int link_flush(link_conn *c)
{
    if (c->fd < 0) {
        return -1;
    }
    int rc = wire_out_flush(&c->out, c->fd, 0);
    if (rc < 0) {
        /* The worker is gone (its pidfd says so soon): what it was sent
         * is the crash accounting's, not the wire's. */
        wire_out_clear(&c->out);
    }
    return rc;
}

/* Queues head then body (may be NULL) as one message.  The head frames are
 * borrowed and copied; the body's frames are taken over. */
static int queue_message(link_conn *c, const jp_frame *head, size_t n_head,
                         jp_frames *body)
{
    size_t n_body = body ? body->n : 0;
    jp_frames msg = {calloc(n_head + n_body, sizeof *msg.v), n_head + n_body};
    if (msg.v == NULL) {
        if (body) {
            jp_frames_clear(body);
        }
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < n_head; i++) {
        rc |= jp_frame_copy(&msg.v[i], head[i].data, head[i].size);
    }
    for (size_t i = 0; i < n_body; i++) {
        msg.v[n_head + i] = body->v[i];
    }
    if (body) {
        free(body->v);
        *body = (jp_frames){0};
    }
    if (rc < 0) {
        jp_frames_clear(&msg);
        return -1;
    }
    return wire_out_push(&c->out, &msg);
}

/* A task's frame memory, shared by the task (which keeps it, to send it
 * again should its worker die before running it) and by the send queue,
 * freed by whichever lets go last. */
typedef struct shared_bytes {
    int refs;                                /* holders */
    void (*free_fn)(void *data, void *hint); /* the frame's own */
    void *hint;                              /* the frame's own */
} shared_bytes;

static void shared_release(void *data, void *hint)
{
    shared_bytes *s = hint;
    if (__atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        if (s->free_fn) {
            s->free_fn(data, s->hint);
        }
        free(s);
    }
}

/* Makes the frames (after a first call, already shared) sharable, and
 * returns copies that hold a reference each.  -1 when out of memory. */
static int share_frames(jp_frames *frames, jp_frames *out)
{
    out->v = calloc(frames->n + 1, sizeof *out->v);
    out->n = 0;
    for (size_t i = 0; out->v && i < frames->n; i++) {
        jp_frame *f = &frames->v[i];
        if (f->free_fn != shared_release) {
            shared_bytes *s = malloc(sizeof *s);
            if (s == NULL) {
                jp_frames_clear(out);
                return -1;
            }
            *s = (shared_bytes){.refs = 1, .free_fn = f->free_fn, .hint = f->hint};
            f->free_fn = shared_release;
            f->hint = s;
        }
        __atomic_add_fetch(&((shared_bytes *)f->hint)->refs, 1, __ATOMIC_RELAXED);
        out->v[out->n++] = *f;
    }
    return out->v ? 0 : -1;
}

int link_send_task(link_conn *c, uint64_t id, jp_frames *frames)
{
    jp_frame head[2] = {pool_frame_str(POOL_MSG_TASK), pool_frame_of(&id, sizeof id)};
    jp_frames copy;
    if (c->fd < 0) {
        return 0; /* a worker that is gone: the crash accounting has the task */
    }
    if (share_frames(frames, &copy) < 0 || queue_message(c, head, 2, &copy) < 0) {
        LOG_E("pool: out of memory sending a task");
        return -1;
    }
    return 0;
}

void link_send_cancel(link_conn *c, const uint64_t *ids, size_t n, pool_cancel_mode how)
{
    char mode = (char)how;
    jp_frame head[POOL_CANCEL_FRAMES] = {
        pool_frame_str(POOL_MSG_CANCEL),
        pool_frame_of(&mode, 1),
        pool_frame_of(ids, n * sizeof *ids),
    };
    if (c->fd >= 0 && queue_message(c, head, POOL_CANCEL_FRAMES, NULL) < 0) {
        LOG_E("pool: out of memory sending a cancel");
    }
}

/* ------------------------------------------------------------ decoding */

static sched_answer answer_of(const jp_frame *f)
{
    return pool_frame_is(f, POOL_ANSWER_OK)          ? SCHED_ANSWER_OK
           : pool_frame_is(f, POOL_ANSWER_CANCELLED) ? SCHED_ANSWER_CANCELLED
           : pool_frame_is(f, POOL_ANSWER_RECALLED)  ? SCHED_ANSWER_RECALLED
                                                     : SCHED_ANSWER_ERROR;
}

link_msg link_decode(const jp_frames *in)
{
    link_msg m = {.kind = LINK_NONE};
    const jp_frame *f = in->v;
    size_t n = in->n;
    if (n < 1) {
        return m;
    }
    if (pool_frame_is(&f[0], POOL_MSG_READY)) {
        m.kind = LINK_READY;
    } else if (pool_frame_is(&f[0], POOL_MSG_OUTPUT) && n == POOL_OUT_FRAMES) {
        m.kind = LINK_OUTPUT;
        m.task = pool_frame_u64(&f[POOL_F_TASK_ID]);
        m.is_stderr = pool_frame_is(&f[POOL_OUT_STREAM], POOL_STREAM_STDERR);
        m.out = &f[POOL_OUT_BYTES];
    } else if (pool_frame_is(&f[0], POOL_MSG_DONE) && n >= POOL_DONE_MIN_FRAMES) {
        m.kind = LINK_DONE;
        m.task = pool_frame_u64(&f[POOL_F_TASK_ID]);
        m.answer = answer_of(&f[POOL_DONE_ANSWER]);
        m.run_us = pool_frame_u64(&f[POOL_DONE_RUN_US]);
        m.payload = POOL_DONE_PAYLOAD;
    }
    return m;
}
