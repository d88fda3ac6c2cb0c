/* pool_int.h -- the pool's insides, shared by pool.c (the dispatcher and
 * the API) and results.c (the results queue).  Not for other files. */
#ifndef FERRY_POOL_INT_H
#define FERRY_POOL_INT_H

#include <limits.h>
#include <pthread.h>
#include <time.h>

#include "link.h"
#include "pool.h"
#include "procs.h"
#include "sched.h"

typedef struct task {
    sched_task core;   /* first: the core hands tasks back as sched_task */
    json_t *parent;    /* header of the request that asked, or NULL */
    jp_frames frames;  /* payload and buffers, owned (kept once sent:
                          a dead worker's unstarted tasks go again) */
    long long sent_us; /* monotonic us it was last sent to a worker */
} task;

typedef struct result_node {
    pool_result r;            /* the result */
    struct result_node *next; /* queue link */
} result_node;

/* The ids one pool_next call handed out (see results.c). */
#define POOL_TAKEN_MAX 256
typedef struct taken_batch {
    uint64_t ids[POOL_TAKEN_MAX]; /* the first POOL_TAKEN_MAX of them */
    int n;                        /* how many in ids */
    int overflow;                 /* there were more */
} taken_batch;

/* What the dispatcher keeps per worker slot besides the core's view. */
typedef struct slot {
    proc proc;           /* the process */
    link_conn conn;      /* the socket to it */
    int backlog;         /* messages of it left unread for the next turn */
    json_t *last_parent; /* parent of its last finished task, for late output */
    unsigned armed;      /* epoll events its socket is watched for; 0: not
                            in the set (no worker, or lent) */
    int pid_armed;       /* its pidfd is in the set */
    uint64_t lent_to;    /* a thread in pool_next_one reads its socket for
                            this task meanwhile (pool_lone.c); 0: none */
} slot;

struct pool {
    char runtime_dir[PATH_MAX];       /* handed to each worker */
    char exe[PATH_MAX];               /* ferry-kernel */
    iopub *io;                        /* where worker output goes */
    pthread_t thread;                 /* the dispatcher */
    int wake_fd;                      /* eventfd: commands are waiting */
    int epfd;                         /* what the dispatcher sleeps on (pool_watch.c) */
    pthread_mutex_t turn;             /* held for a turn: by the dispatcher but
                                         while it polls, or by a lone submit */
    int turns_over;                   /* under turn: the dispatcher has exited */
    pthread_mutex_t lock;             /* guards everything down to core */
    pthread_cond_t results_cond;      /* signalled when a result is queued */
    pthread_cond_t one_cond;          /* the same, for a thread in pool_next_one */
    uint64_t wanted[POOL_DIRECT_MAX]; /* tasks threads wait on in pool_next_one */
    int n_wanted;
    taken_batch taken[2]; /* pool_next's last two batches */
    int taken_cur;        /* the last one */
    sched_list inbox;     /* submitted, not yet handed to the core */
    int queued;           /* unsent tasks the core held after its last turn */
    uint64_t *cancels;    /* ids to cancel, for the dispatcher */
    size_t n_cancels, cap_cancels;
    uint64_t *interrupts; /* running ones among them to SIGINT */
    size_t n_interrupts, cap_interrupts;
    result_node *results, *results_tail;
    int target;                        /* workers asked for */
    int retry;                         /* a task came: try starting workers again */
    int stopping;                      /* pool_destroy began */
    int closed;                        /* the dispatcher has exited */
    sched core;                        /* dispatcher-owned from here on */
    slot slots[SCHED_MAX_WORKERS];     /* by the core's slot numbers */
    result_node *staged, *staged_tail; /* posted, not yet published */
    /* pool_next_one's wait on a lone task's worker socket (pool_lone.c);
     * NULL for a queue without a dispatcher (the unit tests). */
    int (*collect_one)(struct pool *p, uint64_t id, pool_result *out, int *timeout_ms);
};

static inline long long pool_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Worker messages handled before the dispatcher (or a thread reading a
 * lent socket) publishes, deals and polls again. */
#define MESSAGES_PER_TURN 256

/* pool.c: the parts of a turn, also run by pool_lone.c (under turn). */
void pool_take_commands(pool *p, int with_cancels);
int pool_note_queued(pool *p, int timeout);
void pool_flush_links(pool *p);
/* Reads up to max of worker i's messages (all with max < 0); 1 when it
 * stopped at max with more perhaps buffered. */
int pool_read_worker(pool *p, int i, int max);
void pool_wake(pool *p);

/* pool_lone.c: deals a lone task just submitted in the calling thread if
 * the dispatcher sleeps and a worker idles; 1 when nothing is left for the
 * dispatcher (no wake-up needed), 0 when it must be woken. */
int pool_lone_turn(pool *p);
/* pool_lone.c: waits for task id's result reading its worker's socket
 * itself, when that worker runs id alone (see collect_one): 1 with the
 * result in *out; -1 to wait on the queue instead, for *timeout_ms (what
 * is left of it; 0 after an interrupt, so the caller returns). */
int pool_lone_collect(pool *p, uint64_t id, pool_result *out, int *timeout_ms);

/* pool_watch.c: the dispatcher's epoll set, changed under turn (by any
 * thread). */
/* Makes p->epfd with the wake-up eventfd in it; -1 with errno. */
int pool_watch_init(pool *p);
/* What one wake-up of the dispatcher found, by slot. */
typedef struct pool_woke {
    int commands;                            /* the wake-up eventfd */
    unsigned char conn[SCHED_MAX_WORKERS];   /* a socket to read */
    unsigned char exited[SCHED_MAX_WORKERS]; /* a pidfd said it exited */
} pool_woke;
/* Sleeps on the set up to timeout_ms (-1: no limit); fills *w.  The number
 * of events, or -1 with errno.  Without the turn lock (the dispatcher). */
int pool_watch_wait(pool *p, pool_woke *w, int timeout_ms);
/* Before the dispatcher sleeps: each worker's socket watched for what it
 * needs now. */
void pool_watch_rearm(pool *p);
/* Watches slot i's socket for what it needs now (reading; writing when
 * bytes wait), unless it is lent or closed. */
void pool_watch_conn(pool *p, int i);
void pool_unwatch_conn(pool *p, int i);
void pool_watch_pidfd(pool *p, int i);
void pool_unwatch_pidfd(pool *p, int i);
/* Stops watching slot i's socket, ends a loan of it, and closes it. */
void pool_close_conn(pool *p, int i);

/* results.c */
/* Stages a result (frames taken over); NULL when out of memory (logged). */
pool_result *pool_post_result(pool *p, uint64_t id, pool_status status, jp_frames frames,
                              const char *message);
/* Hands what is staged to pool_next. */
void pool_publish_results(pool *p);
/* Takes task id's result if it is queued: 1 (in *out) or 0. */
int pool_take_one(pool *p, uint64_t id, pool_result *out);
/* Notes on r (if any) where and when task t ran. */
void pool_note_ran(pool_result *r, int pid, const task *t, uint64_t run_us);

#endif
