/* link.h -- the kernel's end of the wire to one worker (pool_wire.h's
 * messages, framed by wire.c on an AF_UNIX socketpair): tasks and cancels
 * out, the worker's messages in.
 *
 * Sending only queues: the dispatcher writes each worker's queue once per
 * turn (link_flush), without blocking, and again when the socket says it
 * takes more - so a worker slow to read a large task never holds up the
 * others, nor the results coming the other way. */
#ifndef FERRY_POOL_LINK_H
#define FERRY_POOL_LINK_H

#include <stdint.h>
#include <sys/types.h>

#include "jp.h"
#include "pool_wire.h"
#include "sched.h"
#include "wire.h"

typedef struct link_conn {
    int fd;       /* the kernel's end, non-blocking; -1 when closed */
    wire_in in;   /* the worker's message being received */
    wire_out out; /* messages not yet written */
} link_conn;

/* A closed link, for a slot without a worker. */
#define LINK_CLOSED ((link_conn){.fd = -1})

/* Makes the socketpair: c gets the kernel's end, *worker_fd the worker's
 * (close-on-exec; the spawner passes it on and closes it).  0 or -1. */
int link_open(link_conn *c, int *worker_fd);
/* Closes c and drops what it had queued or half received.  Idempotent. */
void link_close(link_conn *c);

/* Queues a task for the worker.  The frames stay the caller's (to send
 * again should the worker die before running it): their memory is shared
 * with the queue, not copied.  0, or -1 when out of memory. */
int link_send_task(link_conn *c, uint64_t id, jp_frames *frames);
/* Queues a cancel of ids. */
void link_send_cancel(link_conn *c, const uint64_t *ids, size_t n, pool_cancel_mode how);
/* Writes what is queued without blocking: 1 all written, 0 some left
 * (poll for POLLOUT), -1 the worker is gone (the queue is dropped). */
int link_flush(link_conn *c);
/* Something is queued. */
static inline int link_pending(const link_conn *c)
{
    return c->out.n > 0;
}

/* A worker's message, decoded from [kind, ...]. */
typedef enum link_kind { LINK_NONE, LINK_READY, LINK_OUTPUT, LINK_DONE } link_kind;

typedef struct link_msg {
    link_kind kind;
    uint64_t task;       /* OUTPUT, DONE: the task */
    int is_stderr;       /* OUTPUT: which stream */
    const jp_frame *out; /* OUTPUT: the bytes */
    sched_answer answer; /* DONE: how it ended */
    uint64_t run_us;     /* DONE: how long it ran */
    size_t payload;      /* DONE: index of the first payload frame */
} link_msg;

/* Decodes a received message; kind LINK_NONE when malformed. */
link_msg link_decode(const jp_frames *in);

#endif
