/* link.c -- the kernel's end of the wire to its workers (see link.h). */
#include "link.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "log.h"

void frames_free(jp_frame *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        jp_frame_clear(&f[i]);
    }
    free(f);
}

/* Sends n frames; with more_after the last one is not the message's end.
 * A frame that owns its memory is handed to ZeroMQ without a copy and
 * cleared; the others are copied. */
static int send_frames(void *sock, jp_frame *frames, size_t n, int more_after)
{
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        int flags = i + 1 < n || more_after ? ZMQ_SNDMORE : 0;
        jp_frame *f = &frames[i];
        zmq_msg_t m;
        if (f->free_fn != NULL && f->size > 0 &&
            zmq_msg_init_data(&m, f->data, f->size, f->free_fn, f->hint) == 0) {
            memset(f, 0, sizeof *f); /* ZeroMQ frees it once sent */
        } else if (zmq_msg_init_size(&m, f->size) == 0) {
            if (f->size) {
                memcpy(zmq_msg_data(&m), f->data, f->size);
            }
        } else {
            rc = -1;
            continue;
        }
        int sent;
        do {
            sent = zmq_msg_send(&m, sock, flags);
        } while (sent < 0 && errno == EINTR);
        if (sent < 0) {
            rc = -1;
        }
        zmq_msg_close(&m); /* no-op after a successful send */
    }
    return rc;
}

/* Sends the head frames [identity of pid, head...] then body (may be NULL). */
static void send_to_worker(void *router, pid_t pid, jp_frame *head, size_t n_head,
                           jp_frame *body, size_t n_body)
{
    char ident[32];
    int len = snprintf(ident, sizeof ident, "w%d", (int)pid);
    jp_frame to = {.data = ident, .size = (size_t)len};
    /* One message: the head must not end it, or the payload would go out
     * as a message of its own that the ROUTER cannot route. */
    if (send_frames(router, &to, 1, 1) < 0 ||
        send_frames(router, head, n_head, n_body > 0) < 0 ||
        (n_body && send_frames(router, body, n_body, 0) < 0)) {
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

/* Makes frames (after a first call, already shared) sharable, and returns
 * copies of them that hold a reference each, for send_frames to hand over
 * without copying.  NULL when out of memory. */
static jp_frame *share_frames(jp_frame *frames, size_t n)
{
    jp_frame *out = calloc(n + 1, sizeof *out);
    for (size_t i = 0; out && i < n; i++) {
        jp_frame *f = &frames[i];
        if (f->free_fn != shared_release) {
            shared_bytes *s = malloc(sizeof *s);
            if (s == NULL) {
                frames_free(out, i);
                return NULL;
            }
            *s = (shared_bytes){.refs = 1, .free_fn = f->free_fn, .hint = f->hint};
            f->free_fn = shared_release;
            f->hint = s;
        }
        __atomic_add_fetch(&((shared_bytes *)f->hint)->refs, 1, __ATOMIC_RELAXED);
        out[i] = *f;
    }
    return out;
}

int link_send_task(void *router, pid_t pid, uint64_t id, jp_frame *frames, size_t n)
{
    jp_frame head[2] = {
        {.data = (void *)"task", .size = 4},
        {.data = &id, .size = sizeof id},
    };
    jp_frame *copy = share_frames(frames, n);
    if (copy == NULL) {
        /* Out of memory: send copies of the bytes (send_frames copies
         * frames it cannot own; borrowed views do not own). */
        copy = calloc(n + 1, sizeof *copy);
        for (size_t i = 0; copy && i < n; i++) {
            copy[i] = (jp_frame){.data = frames[i].data, .size = frames[i].size};
        }
    }
    if (copy == NULL) {
        LOG_E("pool: out of memory sending a task to worker %d", (int)pid);
        return -1;
    }
    send_to_worker(router, pid, head, 2, copy, n);
    frames_free(copy, n); /* what ZeroMQ did not take */
    return 0;
}

void link_send_cancel(void *router, pid_t pid, const uint64_t *ids, size_t n,
                      sched_cancel_mode how)
{
    char flag = (char)how;
    jp_frame head[3] = {
        {.data = (void *)"cancel", .size = 6},
        {.data = &flag, .size = 1},
        {.data = (void *)ids, .size = n * sizeof *ids},
    };
    send_to_worker(router, pid, head, 3, NULL, 0);
}

/* ------------------------------------------------------------ decoding */

static int frame_is(const jp_frame *f, const char *s)
{
    return f->size == strlen(s) && memcmp(f->data, s, f->size) == 0;
}

static uint64_t frame_u64(const jp_frame *f)
{
    uint64_t v = 0;
    if (f->size == sizeof v) {
        memcpy(&v, f->data, sizeof v);
    }
    return v;
}

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
    return frame_is(f, "ok")          ? SCHED_ANSWER_OK
           : frame_is(f, "cancelled") ? SCHED_ANSWER_CANCELLED
           : frame_is(f, "recalled")  ? SCHED_ANSWER_RECALLED
                                      : SCHED_ANSWER_ERROR;
}

link_msg link_decode(const jp_frame *f, size_t n)
{
    link_msg m = {.kind = LINK_NONE};
    if (n < 2 || (m.pid = ident_pid(&f[0])) == 0) {
        return m;
    }
    if (frame_is(&f[1], "ready")) {
        m.kind = LINK_READY;
    } else if (frame_is(&f[1], "out") && n == 5) {
        m.kind = LINK_OUTPUT;
        m.task = frame_u64(&f[2]);
        m.is_stderr = frame_is(&f[3], "stderr");
        m.out = &f[4];
    } else if (frame_is(&f[1], "done") && n >= 5) {
        m.kind = LINK_DONE;
        m.task = frame_u64(&f[2]);
        m.answer = answer_of(&f[3]);
        m.run_us = frame_u64(&f[4]);
        m.payload = 5;
    }
    return m;
}
