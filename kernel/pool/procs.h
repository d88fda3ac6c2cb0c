/* procs.h -- the pool's worker processes: start, watch, reap.
 *
 * A worker is `ferry-kernel --worker --conn-fd N --runtime-dir DIR`, its
 * end of the link to the kernel inherited as fd N, started by fork and exec
 * from the pool's dispatcher thread (its parent-death signal fires when
 * that thread exits).  Each has a pidfd, readable once it exited, and a
 * status page: two words it shares with the kernel, the task it runs and
 * the last one it finished, so that after a crash the pool knows which of
 * the tasks sent ahead ran (see worker.c). */
#ifndef FERRY_POOL_PROCS_H
#define FERRY_POOL_PROCS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sched.h"

typedef struct proc {
    pid_t pid;                 /* 0 when none */
    int pidfd;                 /* readable once the process exited; -1 after */
    volatile uint64_t *status; /* shared page: [0] running task, [1] last finished */
} proc;

/* Starts exe --worker into pr, handing it conn_fd (the worker's end of its
 * socket, which the caller still closes) and runtime_dir; its pid, or -1
 * (logged). */
pid_t proc_spawn(proc *pr, const char *exe, int conn_fd, const char *runtime_dir);
/* Reaps pr once its pidfd is readable: writes how it ended into how, and
 * which task it ran into *progress (0 when it has no status page).  1 when
 * reaped (pr is then released), 0 when not yet. */
int proc_reap(proc *pr, char *how, size_t size, sched_progress *progress, int *known);
/* Releases what pr holds without waiting (the pool's end). */
void proc_release(proc *pr);

#endif
