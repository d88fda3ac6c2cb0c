/* pool.h -- a pool of worker processes (`ferry-kernel --worker`), driven
 * from C over one AF_UNIX socketpair per worker.
 *
 * One dispatcher thread per pool owns the kernel's ends of the workers'
 * sockets, starts and reaps the workers (pidfds in its poll set), hands each
 * worker its next tasks (several ahead when they are short), forwards the
 * workers' output to iopub under the cell that asked, and queues results
 * for pool_next.  It is also the
 * thread that forks the workers, and it lives as long as the pool, because a
 * worker's parent-death signal fires when the forking thread exits.
 *
 * Its parts: sched.c decides (scheduling and crash accounting, a pure core
 * driven by events), procs.c starts and reaps the processes, link.c speaks
 * the wire (pool_wire.h, shared with worker.c), pool.c runs the thread and
 * this API, results.c queues the results; pool_py.c is the Python module on top. */
#ifndef FERRY_POOL_H
#define FERRY_POOL_H

#include <stdint.h>

#include "iopub.h"
#include "jp.h"
#include "sched.h"

typedef struct pool pool;

typedef struct pool_result {
    uint64_t task_id;   /* the task this answers */
    pool_status status; /* how it ended */
    jp_frames frames;   /* payload then buffers, owned */
    char message[256];  /* for POOL_CRASHED: exit code or signal */
    /* Where and when it ran (for ferry.timeline), monotonic microseconds;
     * 0 when it never reached a worker. */
    int pid;         /* the worker it was sent to */
    long long sent;  /* when it was sent to that worker */
    long long ended; /* when its result (or the worker's death) came */
    uint64_t run_us; /* how long it ran, by the worker's clock */
} pool_result;

/* Starts a pool of n workers (n >= 1) running exe --worker.  io receives the
 * workers' output.  Free with pool_destroy, which stops every worker. */
pool *pool_new(const char *runtime_dir, const char *exe, iopub *io, int n, jp_error *err);
/* Kills every worker and ends the dispatcher; returns once they are reaped.
 * Idempotent.  The pool stays allocated: pool_next (maybe waiting in
 * another thread) returns -1 from now on.  Call pool_destroy only once no
 * thread can be inside pool_next. */
void pool_stop(pool *p);
void pool_destroy(pool **p);

/* Number of workers asked for; resizing starts or stops workers (a worker
 * with a task finishes it first). */
int pool_size(pool *p);
void pool_resize(pool *p, int n);

/* Queues a task.  frames (payload, then out-of-band buffers) are taken over
 * (*frames is emptied); parent (a reference is taken, may be NULL, must not
 * change afterwards) is the request whose cell receives the task's output.
 * lone: a single task (a submit), which this thread may send itself. */
int pool_submit(pool *p, uint64_t task_id, json_t *parent, jp_frames *frames, int lone);

/* Waits up to timeout_ms (-1: forever) for results, and takes up to max of
 * them (none that a thread waits on in pool_next_one).  Returns how many
 * it put in out[] (release each with pool_result_clear), 0 on timeout, -1
 * once the pool is closed and has no result left. */
int pool_next(pool *p, pool_result *out, int max, int timeout_ms);
/* Waits up to timeout_ms for the result of one task, for the thread that
 * waits on it: pool_next leaves that result to it, so it wakes this thread
 * alone instead of the collector and then this thread.  Returns 1 (in
 * *out), 0 on timeout, -1 once the pool is closed without it, -2 when
 * POOL_DIRECT_MAX threads (or one for the same task) wait already or the
 * collector may have taken the result (then wait for the collector). */
#define POOL_DIRECT_MAX 8
int pool_next_one(pool *p, uint64_t task_id, pool_result *out, int timeout_ms);
void pool_result_clear(pool_result *r);

/* Cancels tasks: queued ones end POOL_CANCELLED; with interrupt, running
 * ones get SIGINT (they end POOL_ERROR with KeyboardInterrupt), else they
 * run to the end. */
void pool_cancel(pool *p, const uint64_t *ids, size_t n, int interrupt);

/* How many output messages workers of any pool have forwarded so far: a
 * caller that saw the same count before has nothing new to flush. */
unsigned long pool_output_count(void);

/* Process ids of the live workers (for tests and diagnostics). */
int pool_pids(pool *p, int *pids, int max);

#endif
