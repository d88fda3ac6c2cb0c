/* link.c -- the kernel's end of the wire to its workers (see link.h). */
#include "link.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "log.h"

/* Routing id then head (one message with body: the head must not end it,
 * or the payload would go out as a message of its own that the ROUTER
 * cannot route) then body (may be NULL).  The frames are cleared. */
static void send_to_worker(void *router, pid_t pid, jp_frames head, jp_frames *body)
{
    char ident[32];
    int len = snprintf(ident, sizeof ident, "w%d", (int)pid);
    jp_frame to_frame = pool_frame_of(ident, (size_t)len);
    jp_frames to = {&to_frame, 1};
    int with_body = body && body->n > 0;
    if (jp_frames_send(router, &to, 1) < 0 ||
        jp_frames_send(router, &head, with_body) < 0 ||
        (with_body && jp_frames_send(router, body, 0) < 0)) {
        LOG_W("pool: cannot send to worker %d", (int)pid);
    }
}

/* A task's frame memory, shared by the task (which keeps it, to send it
 * again should its worker die before running it) and by ZeroMQ (sending
 * it), freed by whichever lets go last. */
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
 * returns copies that hold a reference each, for jp_frames_send to hand
 * over without copying.  -1 when out of memory. */
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

int link_send_task(void *router, pid_t pid, uint64_t id, jp_frames *frames)
{
    jp_frame head[2] = {pool_frame_str(POOL_MSG_TASK), pool_frame_of(&id, sizeof id)};
    jp_frames copy;
    if (share_frames(frames, &copy) < 0) {
        /* Out of memory: send copies of the bytes (borrowed views, which
         * jp_frames_send copies). */
        copy.v = calloc(frames->n + 1, sizeof *copy.v);
        copy.n = copy.v ? frames->n : 0;
        for (size_t i = 0; i < copy.n; i++) {
            copy.v[i] = pool_frame_of(frames->v[i].data, frames->v[i].size);
        }
    }
    if (copy.v == NULL) {
        LOG_E("pool: out of memory sending a task to worker %d", (int)pid);
        return -1;
    }
    send_to_worker(router, pid, (jp_frames){head, 2}, &copy);
    jp_frames_clear(&copy); /* the references ZeroMQ did not take */
    return 0;
}

void link_send_cancel(void *router, pid_t pid, const uint64_t *ids, size_t n,
                      pool_cancel_mode how)
{
    char mode = (char)how;
    jp_frame head[POOL_CANCEL_FRAMES] = {
        pool_frame_str(POOL_MSG_CANCEL),
        pool_frame_of(&mode, 1),
        pool_frame_of(ids, n * sizeof *ids),
    };
    send_to_worker(router, pid, (jp_frames){head, POOL_CANCEL_FRAMES}, NULL);
}

/* ------------------------------------------------------------ decoding */

/* "w<pid>", the routing id a worker gives itself; 0 if not one. */
static pid_t ident_pid(const jp_frame *ident)
{
    char buf[32];
    if (ident->size >= sizeof buf || ident->size < 2) {
        return 0;
    }
    memcpy(buf, ident->data, ident->size);
    buf[ident->size] = '\0';
    return (pid_t)strtol(buf + 1, NULL, 10);
}

static sched_answer answer_of(const jp_frame *f)
{
    return pool_frame_is(f, POOL_ANSWER_OK)          ? SCHED_ANSWER_OK
           : pool_frame_is(f, POOL_ANSWER_CANCELLED) ? SCHED_ANSWER_CANCELLED
           : pool_frame_is(f, POOL_ANSWER_RECALLED)  ? SCHED_ANSWER_RECALLED
                                                     : SCHED_ANSWER_ERROR;
}

/* in holds [routing id, message...]: the message's fields are one further. */
link_msg link_decode(const jp_frames *in)
{
    link_msg m = {.kind = LINK_NONE};
    const jp_frame *f = in->v + 1;
    size_t n = in->n > 0 ? in->n - 1 : 0;
    if (n < 1 || (m.pid = ident_pid(&in->v[0])) == 0) {
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
        m.payload = 1 + POOL_DONE_PAYLOAD;
    }
    return m;
}
