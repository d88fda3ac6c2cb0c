/* pool_wire.h -- the messages between the kernel and its workers, defined
 * once for both ends (link.c in the kernel, worker.c in the worker).
 *
 * A message is a list of frames; what carries it is not said here (today
 * one AF_UNIX socketpair per worker, framed by wire.c: the socket says
 * which worker sent a message, so a message carries no sender).  Frame 0
 * names the kind:
 *
 *   worker -> kernel  ["ready"]
 *                     ["out", task_id, "stdout"|"stderr", bytes]
 *                     ["done", task_id, answer, run_us, payload, buffer...]
 *   kernel -> worker  ["task", task_id, payload, buffer...]
 *                     ["cancel", mode (1 byte), task_ids]
 *
 * answer is "ok" or "error" (payload and buffers follow: the pickled result
 * or exception), or "cancelled" / "recalled" (nothing follows).  task_id
 * and run_us (how long the task ran, in microseconds) are 8 bytes in host
 * order (both ends are one machine); a cancel lists its ids in one frame,
 * 8 bytes each. */
#ifndef FERRY_POOL_WIRE_H
#define FERRY_POOL_WIRE_H

#include <stdint.h>
#include <string.h>

#include "jp.h"

/* Frame 0: the kinds of message. */
#define POOL_MSG_READY "ready"
#define POOL_MSG_OUTPUT "out"
#define POOL_MSG_DONE "done"
#define POOL_MSG_TASK "task"
#define POOL_MSG_CANCEL "cancel"

/* Where each field is, by kind (frame 0 is the kind). */
enum {
    POOL_F_TASK_ID = 1, /* in out, done and task */

    POOL_OUT_STREAM = 2, /* "stdout" or "stderr" */
    POOL_OUT_BYTES = 3,
    POOL_OUT_FRAMES = 4,

    POOL_DONE_ANSWER = 2,
    POOL_DONE_RUN_US = 3,
    POOL_DONE_PAYLOAD = 4, /* first of the payload and buffers */
    POOL_DONE_MIN_FRAMES = 4,

    POOL_TASK_PAYLOAD = 2, /* first of the payload and buffers */
    POOL_TASK_MIN_FRAMES = 3,

    POOL_CANCEL_MODE = 1,
    POOL_CANCEL_IDS = 2,
    POOL_CANCEL_FRAMES = 3,
};

/* The answers in a "done". */
#define POOL_ANSWER_OK "ok"
#define POOL_ANSWER_ERROR "error"
#define POOL_ANSWER_CANCELLED "cancelled"
#define POOL_ANSWER_RECALLED "recalled"

#define POOL_STREAM_STDOUT "stdout"
#define POOL_STREAM_STDERR "stderr"

/* What a worker does with the tasks a "cancel" lists (its mode byte). */
typedef enum pool_cancel_mode {
    POOL_CANCEL = 0,           /* those not started end, "cancelled" */
    POOL_CANCEL_INTERRUPT = 1, /* the same, and a listed one running gets SIGINT */
    POOL_RECALL = 2,           /* those not started come back "recalled" */
} pool_cancel_mode;

/* The exit code of a worker whose interpreter could not run a task at all
 * (not an exception in the task: those are answered "error"); the worker
 * logs why before it exits. */
#define POOL_EXIT_TASK_FAILED 70

/* f holds the string s (a kind, an answer, a stream). */
static inline int pool_frame_is(const jp_frame *f, const char *s)
{
    return f->size == strlen(s) && memcmp(f->data, s, f->size) == 0;
}

/* f as a task id or run time; 0 when it is not 8 bytes. */
static inline uint64_t pool_frame_u64(const jp_frame *f)
{
    uint64_t v = 0;
    if (f->size == sizeof v) {
        memcpy(&v, f->data, sizeof v);
    }
    return v;
}

/* A borrowed frame over a string or a value of the caller's. */
static inline jp_frame pool_frame_str(const char *s)
{
    return (jp_frame){.data = (void *)s, .size = strlen(s)};
}

static inline jp_frame pool_frame_of(const void *data, size_t size)
{
    return (jp_frame){.data = (void *)data, .size = size};
}

#endif
