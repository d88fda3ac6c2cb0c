/* link.h -- the kernel's end of the wire to its workers (pool_wire.h):
 * tasks and cancels out, the workers' messages in. */
#ifndef FERRY_POOL_LINK_H
#define FERRY_POOL_LINK_H

#include <stdint.h>
#include <sys/types.h>

#include "jp.h"
#include "pool_wire.h"
#include "sched.h"

/* Sends worker pid a task.  The frames stay the caller's (to send again
 * should the worker die before running the task): their memory is shared
 * with the transport, not copied.  0, or -1 when out of memory. */
int link_send_task(void *router, pid_t pid, uint64_t id, jp_frames *frames);
/* Sends worker pid a cancel of ids. */
void link_send_cancel(void *router, pid_t pid, const uint64_t *ids, size_t n,
                      pool_cancel_mode how);

/* A worker's message, decoded from [routing id, kind, ...]. */
typedef enum link_kind { LINK_NONE, LINK_READY, LINK_OUTPUT, LINK_DONE } link_kind;

typedef struct link_msg {
    link_kind kind;
    pid_t pid;           /* the sender, from its routing id */
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
