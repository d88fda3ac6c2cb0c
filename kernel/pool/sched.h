/* sched.h -- the pool's scheduling and crash accounting, as a pure core.
 *
 * The core decides; it does nothing itself.  It is driven by events (a task
 * submitted, a worker started, ready or dead, a task done, a cancel, a turn
 * of the loop) and acts through the callbacks in sched_ops: start a worker,
 * send it a task, send it a cancel, stop it, hand a task's end back.  It
 * owns no socket, process or clock: the time comes in with each event
 * (monotonic microseconds), so tests drive it with events alone
 * (tests/unit/test_pool_*.c).
 *
 * The rules:
 *   - a worker gets as many tasks ahead as run in PREFETCH_BUDGET_US, by
 *     the running average of their run time (one until a burst has shown
 *     it); every free worker gets one before any gets a second; a worker
 *     holding more than half that many gets none, and is topped up in one
 *     go once down to half;
 *   - a worker whose first task has run longer than the budget is busy: it
 *     gets no more, and while another worker is idle the tasks queued
 *     behind its first come back ("recalled") to go to the idle one;
 *   - a dead worker's unstarted tasks run elsewhere, in order; the one it
 *     was running fails once, with how the worker died; one whose result
 *     was lost with it fails after LOST_RESULT_GRACE_MS and never runs
 *     twice;
 *   - a cancelled task never runs again (cancels stick): queued it ends at
 *     once, on a worker it ends when the worker answers or dies;
 *   - workers that die before saying ready, MAX_FAILED_STARTS in a row, fail
 *     the queued tasks instead of being started forever.
 *
 * One thread (the pool's dispatcher) calls every function but
 * sched_read_pids. */
#ifndef FERRY_POOL_SCHED_H
#define FERRY_POOL_SCHED_H

#include <stddef.h>
#include <stdint.h>

#include "pool_wire.h"

#define SCHED_MAX_WORKERS 256

typedef enum pool_status {
    POOL_OK = 0,    /* frames hold the pickled results */
    POOL_ERROR,     /* frames hold the pickled exception */
    POOL_CRASHED,   /* the worker died; message says how */
    POOL_CANCELLED, /* cancelled before it ran */
} pool_status;

/* How a worker answered a task. */
typedef enum sched_answer {
    SCHED_ANSWER_OK,
    SCHED_ANSWER_ERROR,
    SCHED_ANSWER_CANCELLED,
    SCHED_ANSWER_RECALLED,
} sched_answer;

/* A task as the core sees it; the caller embeds it first in its own task
 * (with what to send) and gets it back through sched_ops.finish or
 * sched_answered. */
typedef struct sched_task {
    uint64_t id;             /* chosen by the caller */
    long long interrupted;   /* monotonic ms of the interrupt asked for it, or 0 */
    int recalling;           /* asked back from its worker */
    int cancelled;           /* cancel sent to its worker: never to run again */
    struct sched_task *next; /* queue link */
} sched_task;

typedef struct sched_list {
    sched_task *head, *tail; /* FIFO */
    int n;                   /* length */
} sched_list;

void sched_list_push(sched_list *l, sched_task *t);
sched_task *sched_list_pop(sched_list *l);
/* Removes and returns the task with id from l, or NULL. */
sched_task *sched_list_take(sched_list *l, uint64_t id);
/* Puts the tasks of from, in their order, in front of to; empties from. */
void sched_list_prepend(sched_list *to, sched_list *from);

typedef struct sched_worker {
    int pid;              /* 0 when the slot is free */
    int ready;            /* said "ready" */
    int retiring;         /* stop it once idle (pool shrank) */
    int killed;           /* SIGKILL asked for */
    long long dead_since; /* monotonic ms it died at, or 0 */
    long long head_since; /* monotonic us its first sent task became first */
    sched_list sent;      /* sent to it, no answer yet, in the order sent */
    char death[160];      /* how it died */
} sched_worker;

/* Which of a dead worker's tasks ran (its status page); see sched_died. */
typedef struct sched_progress {
    uint64_t running;  /* the task it was running, or 0 */
    uint64_t finished; /* the last task it finished, or 0 */
} sched_progress;

typedef struct sched_ops {
    void *ctx; /* first argument of each */
    /* Starts a worker for slot; its pid, or -1. */
    int (*spawn)(void *ctx, int slot);
    /* Sends t to the worker in slot (the core keeps t); 0 or -1. */
    int (*send)(void *ctx, int slot, const sched_task *t);
    /* Sends the worker in slot a cancel of ids. */
    void (*cancel)(void *ctx, int slot, const uint64_t *ids, size_t n,
                   pool_cancel_mode how);
    /* Stops the worker in slot: politely (retire) or with kill. */
    void (*stop)(void *ctx, int slot, int kill);
    /* t ended without a result from a worker; the caller takes t over.
     * slot is the worker it ran on when that worker died with it, else -1. */
    void (*finish)(void *ctx, sched_task *t, pool_status status, const char *message,
                   int slot);
} sched_ops;

typedef struct sched {
    sched_ops ops;
    sched_list pending;  /* submitted or sent back, not sent */
    sched_list recalled; /* came back from workers, dealt again first */
    sched_worker workers[SCHED_MAX_WORKERS];
    int n_slots;           /* one past the highest slot used */
    int target;            /* workers asked for */
    int stopping;          /* every worker goes */
    int failed_starts;     /* workers in a row that died unready */
    char start_error[200]; /* how the last of them ended */
    double run_us;         /* running average task run time, 0 unknown */
} sched;

void sched_init(sched *s, const sched_ops *ops, int target);
/* The tasks still queued (at the end), as a list the caller frees. */
sched_task *sched_take_pending(sched *s);

/* --- events */
void sched_submit(sched *s, sched_task *t);
/* A task came after workers failed to start: try starting them again. */
void sched_retry_starts(sched *s);
void sched_resize(sched *s, int target);
void sched_stop(sched *s);
void sched_ready(sched *s, int slot);
/* The worker in slot answered task id.  Returns the task when it ended with
 * *status (ok, error or cancelled): the caller posts it and takes it over.
 * NULL when there is nothing to post: an unknown id (answered already) or a
 * recalled task, which the core deals again. */
sched_task *sched_answered(sched *s, int slot, uint64_t id, sched_answer how,
                           uint64_t run_us, long long now_us, pool_status *status);
/* The worker in slot died, as how says.  progress (NULL when unknown: then
 * every task sent to it is blamed) says which of its tasks ran. */
void sched_died(sched *s, int slot, const char *how, const sched_progress *progress,
                long long now_us);
/* Cancels ids (sorted here); those also in ints are interrupted if running. */
void sched_cancel(sched *s, uint64_t *ids, size_t n, uint64_t *ints, size_t n_ints,
                  long long now_us);

/* --- the loop's turn */
/* Starts or retires workers to match the target. */
void sched_apply_size(sched *s);
/* Settles lost results, kills workers that ignore an interrupt (and all of
 * them when stopping); returns the poll timeout in ms until the next such
 * deadline (-1: none). */
int sched_timers(sched *s, long long now_us);
/* Starts workers (or fails the queue when they cannot start) and deals the
 * queued tasks; returns the poll timeout in ms rebalancing asks for. */
int sched_deal(sched *s, long long now_us);

/* --- queries */
int sched_slot_of(const sched *s, int pid);
/* The task id sent to the worker in slot, or NULL. */
sched_task *sched_sent_task(sched *s, int slot, uint64_t id);
int sched_any_workers(const sched *s);
/* A ready worker idles and a task submitted now would go to it without
 * starting, stopping or recalling anything (sched_query.c). */
int sched_lone_ready(const sched *s);
/* Pids of the live workers; safe from any thread (a stale answer at worst). */
int sched_read_pids(const sched *s, int *pids, int max);

#endif
