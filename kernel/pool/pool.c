/* pool.c -- the dispatcher thread of a worker pool. */
#define _GNU_SOURCE /* pidfd_open, prctl */
#include "pool.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zmq.h>

#include "log.h"

#define MAX_WORKERS 256
/* Workers in a row that die before saying "ready" before the pool stops
 * starting new ones and fails the queued tasks instead of looping. */
#define MAX_FAILED_STARTS 3
/* How long a task may ignore its SIGINT before its worker is killed (and
 * replaced): an interrupt must free the pool for the next cell even when a
 * task blocks signals or loops in C. */
#define INTERRUPT_GRACE_MS 2000
/* Tasks sent ahead to a worker: as many as run in about this long (by the
 * running average of their run time), so a worker never waits a round trip
 * for its next small task, while a queue of long tasks stays in the pool,
 * where any worker that frees up can take the next one.  Until a burst of
 * work has shown how long its tasks run, one task per worker. */
#define PREFETCH_BUDGET_US 2000.0
#define MAX_IN_FLIGHT 64
/* Worker messages handled before the dispatcher publishes, deals and polls
 * again. */
#define MESSAGES_PER_TURN 256
/* A dead worker's results may still be on their way (sent before it died,
 * not yet read from the socket): how long they are waited for. */
#define LOST_RESULT_GRACE_MS 200

typedef struct task {
    uint64_t id;           /* chosen by the caller */
    json_t *parent;        /* header of the request that asked, or NULL */
    jp_frame *frames;      /* payload and buffers, owned (kept once sent:
                              a dead worker's unstarted tasks go again) */
    size_t n;              /* number of frames */
    long long interrupted; /* monotonic ms of the interrupt asked for it, or 0 */
    long long sent_us;     /* monotonic us it was last sent to a worker */
    int recalling;         /* asked back from its worker (see rebalance) */
    int cancelled;         /* cancel sent to its worker: never to run again */
    struct task *next;     /* queue link */
} task;

typedef struct task_list {
    task *head, *tail; /* FIFO */
    int n;             /* length */
} task_list;

typedef struct worker {
    pid_t pid;                 /* 0 when the slot is free */
    int pidfd;                 /* readable once the process exited */
    int ready;                 /* said "ready" */
    task_list sent;            /* sent to it, no result yet, in the order sent */
    json_t *last_parent;       /* parent of its last finished task, for late output */
    volatile uint64_t *status; /* shared page: [0] running task, [1] last finished */
    int retiring;              /* stop it once idle (pool shrank) */
    int killed;                /* SIGKILL sent at stop */
    long long dead_since;      /* monotonic ms it was reaped at, or 0 (see bury) */
    long long head_since;      /* monotonic us its first sent task became first */
    char death[160];           /* how it died */
} worker;

typedef struct result_node {
    pool_result r;            /* the result */
    struct result_node *next; /* queue link */
} result_node;

struct pool {
    void *zctx;                  /* context for the ROUTER */
    void *router;                /* owned by the dispatcher thread */
    char endpoint[320];          /* ipc://RUNTIME/pool-N */
    char exe[PATH_MAX];          /* ferry-kernel */
    iopub *io;                   /* where worker output goes */
    pthread_t thread;            /* the dispatcher */
    int wake_fd;                 /* eventfd: commands are waiting */
    pthread_mutex_t lock;        /* guards everything below */
    pthread_cond_t results_cond; /* signalled when a result is queued */
    task_list pending;           /* submitted, not dispatched */
    uint64_t *cancels;           /* ids to cancel, for the dispatcher */
    size_t n_cancels, cap_cancels;
    uint64_t *interrupts; /* running ones among them to SIGINT */
    size_t n_interrupts, cap_interrupts;
    result_node *results, *results_tail;
    result_node *staged, *staged_tail; /* dispatcher: posted, not yet published */
    int target;                        /* workers asked for */
    int retry;                         /* a task came: try starting workers again */
    int stopping;                      /* pool_destroy began */
    int closed;                        /* the dispatcher has exited */
    worker workers[MAX_WORKERS];       /* dispatcher-owned */
    int n_slots;                       /* dispatcher: one past the highest slot used */
    int failed_starts;     /* dispatcher: workers in a row that died unready */
    char start_error[200]; /* dispatcher: how the last of them ended */
    double run_us;         /* dispatcher: running average task run time, 0 unknown */
    task_list recalled;    /* dispatcher: came back from workers, to deal again */
};

/* Worker output forwarded by any pool, so that a flush can be skipped when
 * there is none. */
static unsigned long output_count;

static int pool_counter;

/* ----------------------------------------------------------- helpers */

static void wake(pool *p)
{
    uint64_t one = 1;
    ssize_t rc = write(p->wake_fd, &one, sizeof one);
    (void)rc;
}

static void frames_free(jp_frame *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        jp_frame_clear(&f[i]);
    }
    free(f);
}

static void task_free(task *t)
{
    if (t) {
        json_decref(t->parent);
        frames_free(t->frames, t->n);
        free(t);
    }
}

static void list_push(task_list *l, task *t)
{
    t->next = NULL;
    if (l->tail) {
        l->tail->next = t;
    } else {
        l->head = t;
    }
    l->tail = t;
    l->n++;
}

static task *list_pop(task_list *l)
{
    task *t = l->head;
    if (t) {
        l->head = t->next;
        if (l->head == NULL) {
            l->tail = NULL;
        }
        l->n--;
        t->next = NULL;
    }
    return t;
}

/* Removes and returns the task with id from l, or NULL. */
static task *list_take(task_list *l, uint64_t id)
{
    task *prev = NULL;
    for (task *t = l->head; t; prev = t, t = t->next) {
        if (t->id == id) {
            if (prev) {
                prev->next = t->next;
            } else {
                l->head = t->next;
            }
            if (l->tail == t) {
                l->tail = prev;
            }
            l->n--;
            t->next = NULL;
            return t;
        }
    }
    return NULL;
}

/* A task going back to the queue starts afresh there. */
static void task_requeued(task *t)
{
    t->interrupted = 0;
    t->recalling = 0;
}

/* Puts the tasks of from, in their order, in front of to. */
static void list_prepend(task_list *to, task_list *from)
{
    if (from->head == NULL) {
        return;
    }
    from->tail->next = to->head;
    if (to->tail == NULL) {
        to->tail = from->tail;
    }
    to->head = from->head;
    to->n += from->n;
    *from = (task_list){0};
}

static int id_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* ids must be sorted. */
static int id_in(const uint64_t *ids, size_t n, uint64_t id)
{
    return n > 0 && bsearch(&id, ids, n, sizeof id, id_cmp) != NULL;
}

/* Stages a result; frames are taken over.  publish_results hands what is
 * staged to pool_next, once per turn of the dispatcher: one wake-up of the
 * collector for a burst of results instead of one each. */
static pool_result *post_result(pool *p, uint64_t id, pool_status status,
                                jp_frame *frames, size_t n, const char *message)
{
    result_node *node = calloc(1, sizeof *node);
    if (node == NULL) {
        frames_free(frames, n);
        LOG_E("pool: out of memory for a result");
        return NULL;
    }
    node->r.task_id = id;
    node->r.status = status;
    node->r.frames = frames;
    node->r.n_frames = n;
    snprintf(node->r.message, sizeof node->r.message, "%s", message ? message : "");
    if (p->staged_tail) {
        p->staged_tail->next = node;
    } else {
        p->staged = node;
    }
    p->staged_tail = node;
    return &node->r;
}

static void publish_results(pool *p)
{
    if (p->staged == NULL) {
        return;
    }
    pthread_mutex_lock(&p->lock);
    if (p->results_tail) {
        p->results_tail->next = p->staged;
    } else {
        p->results = p->staged;
    }
    p->results_tail = p->staged_tail;
    p->staged = p->staged_tail = NULL;
    pthread_cond_broadcast(&p->results_cond);
    pthread_mutex_unlock(&p->lock);
}

static long long now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Notes on r (if any) where and when task t ran: see pool_result. */
static void note_ran(pool_result *r, const worker *w, const task *t, uint64_t run_us)
{
    if (r) {
        r->pid = (int)w->pid;
        r->sent = t->sent_us;
        r->ended = now_us();
        r->run_us = run_us;
    }
}

static long long now_ms(void)
{
    return now_us() / 1000;
}

/* ------------------------------------------------------------ workers */

static int live_workers(pool *p)
{
    int n = 0;
    for (int i = 0; i < p->n_slots; i++) {
        n += p->workers[i].pid != 0 && !p->workers[i].retiring &&
             !p->workers[i].dead_since;
    }
    return n;
}

/* A page shared with the worker (see worker.c); -1 if none can be made,
 * and the pool then cannot tell which sent task a crash interrupted. */
static int status_page_new(volatile uint64_t **page)
{
    *page = NULL;
    int fd = memfd_create("ferry-worker-status", MFD_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    void *m = MAP_FAILED;
    if (ftruncate(fd, 2 * sizeof(uint64_t)) == 0) {
        m = mmap(NULL, 2 * sizeof(uint64_t), PROT_READ, MAP_SHARED, fd, 0);
    }
    if (m == MAP_FAILED) {
        close(fd);
        return -1;
    }
    *page = m;
    return fd;
}

static void spawn_worker(pool *p)
{
    int slot = 0;
    while (slot < MAX_WORKERS && p->workers[slot].pid != 0) {
        slot++;
    }
    if (slot == MAX_WORKERS) {
        return;
    }
    pid_t parent = getpid();
    int logfd = log_fd();
    const char *level = log_enabled(LOG_DEBUG)  ? "debug"
                        : log_enabled(LOG_INFO) ? "info"
                        : log_enabled(LOG_WARN) ? "warn"
                                                : "error";
    volatile uint64_t *status;
    int status_fd = status_page_new(&status);
    char status_arg[16];
    snprintf(status_arg, sizeof status_arg, "%d", status_fd);
    pid_t pid = fork();
    if (pid < 0) {
        LOG_E("pool: cannot fork a worker: %s", strerror(errno));
        if (status_fd >= 0) {
            munmap((void *)status, 2 * sizeof(uint64_t));
            close(status_fd);
        }
        return;
    }
    if (pid == 0) {
        /* Only async-signal-safe calls until exec.  A process group of its
         * own keeps a frontend's SIGINT to the kernel's group away from idle
         * workers; the parent-death signal takes it down with the kernel. */
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) {
            _exit(1);
        }
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGINT, SIG_DFL); /* an ignored SIGINT would survive exec */
        /* fds 1 and 2 are the kernel's capture pipes: what the worker says
         * before it captures its own output would land in some cell.  Give
         * it the kernel's log instead. */
        if (logfd != 2) {
            dup2(logfd, 2);
        }
        dup2(2, 1);
        /* No frontend behind the kernel's stdin: input() in a task gets
         * EOFError at once instead of blocking on whatever fd 0 is. */
        int null = open("/dev/null", O_RDONLY);
        if (null >= 0 && null != 0) {
            dup2(null, 0);
            close(null);
        }
        if (status_fd >= 0) {
            fcntl(status_fd, F_SETFD, 0); /* the one fd the worker inherits */
        }
        char *argv[] = {
            p->exe,        (char *)"--worker",    p->endpoint, (char *)"--log-level",
            (char *)level, (char *)"--status-fd", status_arg,  NULL};
        execv(p->exe, argv);
        _exit(127);
    }
    if (status_fd >= 0) {
        close(status_fd); /* the mapping stays */
    }
    worker *w = &p->workers[slot];
    memset(w, 0, sizeof *w);
    if (slot >= p->n_slots) {
        p->n_slots = slot + 1; /* the loops over workers stop there */
    }
    w->pid = pid;
    w->pidfd = pidfd_open(pid, 0);
    if (w->pidfd < 0) {
        LOG_I("pool: no pidfd for worker %d (%s): its exit is polled", (int)pid,
              strerror(errno));
    }
    w->status = status;
    LOG_D("pool: started worker %d", (int)pid);
}

static worker *worker_by_ident(pool *p, const jp_frame *ident)
{
    char buf[32];
    if (ident->size >= sizeof buf || ident->size < 2) {
        return NULL;
    }
    memcpy(buf, ident->data, ident->size);
    buf[ident->size] = '\0';
    pid_t pid = (pid_t)strtol(buf + 1, NULL, 10);
    for (int i = 0; i < p->n_slots; i++) {
        if (p->workers[i].pid == pid && pid != 0) {
            return &p->workers[i];
        }
    }
    return NULL;
}

static void describe_exit(int status, char *buf, size_t size)
{
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        const char *name = sigabbrev_np(sig);
        snprintf(buf, size, "the worker process was killed by signal %d (SIG%s)", sig,
                 name ? name : "?");
    } else {
        snprintf(buf, size, "the worker process exited with code %d",
                 WEXITSTATUS(status));
    }
}

/* The tasks a dead worker held: the one it was running fails with how it
 * died; those it had not started go back to the front of the queue, in
 * order; those it had finished stay listed, as their results may still be
 * on their way (bury_dead settles the ones that never come). */
static void settle_sent_tasks(pool *p, worker *w, const char *how)
{
    uint64_t running = 0, finished = 0;
    if (w->status) {
        running = __atomic_load_n(&w->status[0], __ATOMIC_ACQUIRE);
        finished = __atomic_load_n(&w->status[1], __ATOMIC_ACQUIRE);
    }
    /* A worker runs its tasks in the order sent: every task up to the
     * running or last finished one ran.  Without a page, blame them all. */
    int last = w->status ? -1 : w->sent.n - 1, i = 0;
    for (task *t = w->sent.head; t; t = t->next, i++) {
        if (t->id == running || t->id == finished) {
            last = i;
        }
    }
    task_list again = {0}, ran = {0};
    i = 0;
    for (task *t = list_pop(&w->sent); t; t = list_pop(&w->sent), i++) {
        if (t->cancelled && t->id != running) {
            post_result(p, t->id, POOL_CANCELLED, NULL, 0, "cancelled");
            task_free(t);
        } else if (i > last) {
            task_requeued(t);
            list_push(&again, t);
        } else if (w->status == NULL || t->id == running) {
            char msg[256];
            snprintf(msg, sizeof msg, "%.150s while running a task (pid %d)", how,
                     (int)w->pid);
            LOG_W("pool: %s", msg);
            note_ran(post_result(p, t->id, POOL_CRASHED, NULL, 0, msg), w, t, 0);
            task_free(t);
        } else {
            list_push(&ran, t);
        }
    }
    w->sent = ran;
    snprintf(w->death, sizeof w->death, "%.150s", how);
    if (again.n) {
        pthread_mutex_lock(&p->lock);
        list_prepend(&p->pending, &again);
        pthread_mutex_unlock(&p->lock);
    }
}

static void worker_clear(worker *w)
{
    for (task *t = list_pop(&w->sent); t; t = list_pop(&w->sent)) {
        task_free(t);
    }
    if (w->pidfd >= 0) {
        close(w->pidfd);
    }
    if (w->status) {
        munmap((void *)w->status, 2 * sizeof(uint64_t));
    }
    json_decref(w->last_parent);
    memset(w, 0, sizeof *w);
}

/* The worker in w exited: settle its tasks and free the slot. */
static void reap_worker(pool *p, worker *w)
{
    int status = 0;
    char how[200];
    pid_t rc = waitpid(w->pid, &status, WNOHANG);
    if (rc == 0 || (rc < 0 && errno != ECHILD)) {
        return;
    }
    if (rc < 0) {
        /* Someone else reaped it (SIGCHLD ignored in a cell?): the pidfd
         * says it is gone, the status is lost. */
        snprintf(how, sizeof how, "the worker process ended (exit status unknown)");
    } else {
        describe_exit(status, how, sizeof how);
    }
    if (w->sent.n) {
        settle_sent_tasks(p, w, how);
    } else if (!w->retiring && !p->stopping) {
        LOG_W("pool: idle worker %d died: %s", (int)w->pid, how);
    }
    if (!w->ready && !w->retiring && !w->killed) {
        p->failed_starts++;
        snprintf(p->start_error, sizeof p->start_error, "%s", how);
    }
    if (w->sent.n == 0) {
        worker_clear(w);
        return;
    }
    /* Its slot stays, so the results in transit still find their tasks. */
    close(w->pidfd);
    w->pidfd = -1;
    __atomic_store_n(&w->dead_since, now_ms(), __ATOMIC_RELAXED);
}

/* Workers without a pidfd (pidfd_open refused: an old kernel, a seccomp
 * filter) are reaped by polling waitpid, since no fd says they exited.  A
 * SIGCHLD handler would say it sooner, but the signal is the cells' (their
 * subprocesses), not the pool's.  Returns the poll timeout this needs. */
#define UNWATCHED_POLL_MS 100

static int reap_unwatched(pool *p)
{
    int any = 0;
    for (int i = 0; i < p->n_slots; i++) {
        worker *w = &p->workers[i];
        if (w->pid != 0 && w->pidfd < 0 && w->dead_since == 0) {
            any = 1;
            reap_worker(p, w);
        }
    }
    return any ? UNWATCHED_POLL_MS : -1;
}

/* Settles what the dead workers' results did not: the tasks they finished
 * but whose results never came (lost with the process) fail; with now_all,
 * without waiting.  Returns the poll timeout until the next deadline. */
static int bury_dead(pool *p, int now_all)
{
    long long now = now_ms(), next = -1;
    for (int i = 0; i < p->n_slots; i++) {
        worker *w = &p->workers[i];
        if (w->dead_since == 0) {
            continue;
        }
        long long left = w->dead_since + LOST_RESULT_GRACE_MS - now;
        if (w->sent.n > 0 && left > 0 && !now_all) {
            next = next < 0 || left < next ? left : next;
            continue;
        }
        for (task *t = list_pop(&w->sent); t; t = list_pop(&w->sent)) {
            if (t->cancelled) {
                post_result(p, t->id, POOL_CANCELLED, NULL, 0, "cancelled");
                task_free(t);
                continue;
            }
            char msg[256];
            snprintf(msg, sizeof msg,
                     "%s after the task ended, before its result reached the kernel "
                     "(pid %d)",
                     w->death, (int)w->pid);
            LOG_W("pool: %s", msg);
            note_ran(post_result(p, t->id, POOL_CRASHED, NULL, 0, msg), w, t, 0);
            task_free(t);
        }
        worker_clear(w);
    }
    return next < 0 ? -1 : (int)next + 1;
}

/* -------------------------------------------------------- the wire */

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

/* Sends the head frames [identity of w, head...] then body (may be NULL). */
static void send_to_worker(pool *p, worker *w, jp_frame *head, size_t n_head,
                           jp_frame *body, size_t n_body)
{
    char ident[32];
    int len = snprintf(ident, sizeof ident, "w%d", (int)w->pid);
    jp_frame to = {.data = ident, .size = (size_t)len};
    /* One message: the head must not end it, or the payload would go out
     * as a message of its own that the ROUTER cannot route. */
    if (send_frames(p->router, &to, 1, 1) < 0 ||
        send_frames(p->router, head, n_head, n_body > 0) < 0 ||
        (n_body && send_frames(p->router, body, n_body, 0) < 0)) {
        LOG_W("pool: cannot send to worker %d", (int)w->pid);
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

static void send_task(pool *p, worker *w, task *t)
{
    jp_frame head[2] = {
        {.data = (void *)"task", .size = 4},
        {.data = &t->id, .size = sizeof t->id},
    };
    jp_frame *copy = share_frames(t->frames, t->n);
    if (copy == NULL) {
        /* Out of memory: send copies of the bytes (send_frames copies
         * frames it cannot own; borrowed views do not own). */
        copy = calloc(t->n + 1, sizeof *copy);
        for (size_t i = 0; copy && i < t->n; i++) {
            copy[i] = (jp_frame){.data = t->frames[i].data, .size = t->frames[i].size};
        }
    }
    if (copy == NULL) {
        LOG_E("pool: out of memory sending a task to worker %d", (int)w->pid);
        post_result(p, t->id, POOL_CRASHED, NULL, 0, "out of memory sending the task");
        task_free(t);
        return;
    }
    send_to_worker(p, w, head, 2, copy, t->n);
    frames_free(copy, t->n); /* what ZeroMQ did not take */
    t->sent_us = now_us();
    if (w->sent.n == 0) {
        w->head_since = t->sent_us;
    }
    list_push(&w->sent, t);
}

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

/* The running average of task run times moves up at once (a long task
 * must stop the prefetching now) and down slowly. */
static void note_run_time(pool *p, uint64_t run_us)
{
    double us = (double)run_us;
    p->run_us = us > p->run_us ? us : 0.8 * p->run_us + 0.2 * us;
}

/* [ident, "done", id, how, run_us, payload, buffer...] */
static void handle_done(pool *p, worker *w, jp_frame *f, size_t n)
{
    int was_head = w->sent.head && w->sent.head->id == frame_u64(&f[2]);
    task *t = list_take(&w->sent, frame_u64(&f[2]));
    if (t == NULL) {
        return; /* cancelled here and answered already */
    }
    if (was_head) {
        w->head_since = now_us();
    }
    if (frame_is(&f[3], "recalled") && !t->cancelled) {
        task_requeued(t);
        list_push(&p->recalled, t); /* dealt again, first, in this order */
        return;
    }
    if (frame_is(&f[3], "cancelled") || frame_is(&f[3], "recalled")) {
        post_result(p, t->id, POOL_CANCELLED, NULL, 0, "cancelled");
    } else {
        pool_status st = frame_is(&f[3], "ok") ? POOL_OK : POOL_ERROR;
        note_run_time(p, frame_u64(&f[4]));
        /* Hand the payload and buffers over without copying them again. */
        size_t k = n > 5 ? n - 5 : 0;
        jp_frame *payload = k ? malloc(k * sizeof *payload) : NULL;
        if (payload) {
            memcpy(payload, f + 5, k * sizeof *payload);
            memset(f + 5, 0, k * sizeof *payload);
        }
        note_ran(post_result(p, t->id, st, payload, payload ? k : 0, NULL), w, t,
                 frame_u64(&f[4]));
    }
    json_decref(w->last_parent);
    w->last_parent = json_incref(t->parent);
    task_free(t);
}

/* [ident, "out", id, "stdout"|"stderr", bytes]: published under the cell
 * of the task that wrote it (or of the worker's last task: output of a
 * thread a task left behind). */
static void handle_output(pool *p, worker *w, jp_frame *f)
{
    uint64_t id = frame_u64(&f[2]);
    json_t *parent = w->last_parent;
    for (task *t = w->sent.head; t; t = t->next) {
        if (t->id == id) {
            parent = t->parent;
            break;
        }
    }
    iopub_stream(p->io, parent, frame_is(&f[3], "stderr") ? "stderr" : "stdout",
                 f[4].data, f[4].size);
    __atomic_add_fetch(&output_count, 1, __ATOMIC_RELAXED);
}

static void handle_worker_message(pool *p)
{
    jp_frame *f;
    size_t n;
    if (jp_recv_frames(p->router, ZMQ_DONTWAIT, &f, &n) < 0) {
        return;
    }
    worker *w = n >= 2 ? worker_by_ident(p, &f[0]) : NULL;
    if (w == NULL) {
        frames_free(f, n);
        return;
    }
    if (frame_is(&f[1], "ready")) {
        w->ready = 1;
        p->failed_starts = 0;
    } else if (frame_is(&f[1], "out") && n == 5) {
        handle_output(p, w, f);
    } else if (frame_is(&f[1], "done") && n >= 5) {
        handle_done(p, w, f, n);
    }
    frames_free(f, n);
}

/* ---------------------------------------------------------- commands */

/* What a worker does with the tasks a "cancel" lists (pool.h). */
enum cancel_how { CANCEL = 0, CANCEL_INTERRUPT = 1, RECALL = 2 };

/* Sends w ["cancel", how, ids]: the ones of ids it holds and has not
 * started come back "cancelled" (or "recalled"); with CANCEL_INTERRUPT, one
 * it runs gets SIGINT. */
static void send_cancel(pool *p, worker *w, const uint64_t *ids, size_t n,
                        enum cancel_how how)
{
    char flag = (char)how;
    jp_frame head[3] = {
        {.data = (void *)"cancel", .size = 6},
        {.data = &flag, .size = 1},
        {.data = (void *)ids, .size = n * sizeof *ids},
    };
    send_to_worker(p, w, head, 3, NULL, 0);
}

/* Cancels the tasks of ids (sorted) that w holds; those also in ints
 * (sorted) are interrupted if running. */
static void cancel_sent(pool *p, worker *w, const uint64_t *ids, size_t n,
                        const uint64_t *ints, size_t n_ints)
{
    uint64_t *plain = malloc(2 * (size_t)w->sent.n * sizeof *plain);
    if (plain == NULL) {
        LOG_E("pool: out of memory cancelling tasks");
        return;
    }
    uint64_t *hard = plain + w->sent.n;
    size_t n_plain = 0, n_hard = 0;
    long long now = now_ms();
    for (task *t = w->sent.head; t; t = t->next) {
        if (id_in(ints, n_ints, t->id)) {
            hard[n_hard++] = t->id;
            t->interrupted = t->interrupted ? t->interrupted : now;
            t->cancelled = 1;
        } else if (id_in(ids, n, t->id)) {
            plain[n_plain++] = t->id;
            t->cancelled = 1;
        }
    }
    if (n_plain) {
        send_cancel(p, w, plain, n_plain, CANCEL);
    }
    if (n_hard) {
        send_cancel(p, w, hard, n_hard, CANCEL_INTERRUPT);
    }
    free(plain);
}

static void apply_cancels(pool *p)
{
    pthread_mutex_lock(&p->lock);
    list_prepend(&p->pending, &p->recalled);
    uint64_t *ids = p->cancels;
    size_t n = p->n_cancels;
    p->cancels = NULL;
    p->n_cancels = p->cap_cancels = 0;
    uint64_t *ints = p->interrupts;
    size_t n_ints = p->n_interrupts;
    p->interrupts = NULL;
    p->n_interrupts = p->cap_interrupts = 0;
    if (n) {
        qsort(ids, n, sizeof *ids, id_cmp);
    }
    if (n_ints) {
        qsort(ints, n_ints, sizeof *ints, id_cmp);
    }
    task_list keep = {0}, dropped = {0};
    for (task *t = list_pop(&p->pending); t; t = list_pop(&p->pending)) {
        list_push(id_in(ids, n, t->id) ? &dropped : &keep, t);
    }
    p->pending = keep;
    pthread_mutex_unlock(&p->lock);
    for (task *t = list_pop(&dropped); t; t = list_pop(&dropped)) {
        post_result(p, t->id, POOL_CANCELLED, NULL, 0, "cancelled");
        task_free(t);
    }
    for (int i = 0; n && i < p->n_slots; i++) {
        worker *w = &p->workers[i];
        if (w->pid != 0 && !w->dead_since && w->sent.n > 0) {
            cancel_sent(p, w, ids, n, ints, n_ints);
        }
    }
    free(ids);
    free(ints);
}

/* Starts or retires workers to match the target size. */
static void apply_size(pool *p)
{
    pthread_mutex_lock(&p->lock);
    int target = p->stopping ? 0 : p->target;
    pthread_mutex_unlock(&p->lock);
    int live = live_workers(p);
    for (; live < target; live++) {
        spawn_worker(p);
    }
    for (int i = 0; i < p->n_slots && live > target; i++) {
        worker *w = &p->workers[i];
        if (w->pid != 0 && !w->retiring && !w->dead_since && w->sent.n == 0) {
            w->retiring = 1;
            kill(w->pid, SIGTERM);
            live--;
        }
    }
}

/* How many tasks a worker may hold (see PREFETCH_BUDGET_US). */
static int prefetch_depth(pool *p)
{
    if (p->run_us <= 0) {
        return 1;
    }
    double d = PREFETCH_BUDGET_US / p->run_us;
    return d >= MAX_IN_FLIGHT ? MAX_IN_FLIGHT : d < 1 ? 1 : (int)d;
}

/* A worker whose first task has run longer than the prefetch budget is
 * busy with a long task: tasks queued behind it would wait for it while
 * another worker could run them. */
static int stuck(const worker *w, long long now)
{
    return w->sent.n > 0 && now - w->head_since > (long long)PREFETCH_BUDGET_US;
}

static int can_take(const worker *w, int depth, long long now)
{
    return w->pid != 0 && w->ready && !w->retiring && !w->killed && !w->dead_since &&
           w->sent.n < depth && (w->sent.n == 0 || !stuck(w, now));
}

/* Asks w back for the tasks queued behind its first one (those it has not
 * started come back "recalled"). */
static void recall(pool *p, worker *w)
{
    uint64_t *ids = malloc((size_t)w->sent.n * sizeof *ids);
    size_t k = 0;
    for (task *t = w->sent.head ? w->sent.head->next : NULL; ids && t; t = t->next) {
        if (!t->recalling) {
            t->recalling = 1;
            ids[k++] = t->id;
        }
    }
    if (k > 0) {
        send_cancel(p, w, ids, k, RECALL);
    }
    free(ids);
}

/* Nothing is queued here, a worker is idle, and another one sits on a long
 * task with tasks queued behind it: those come back, to go to the idle
 * one.  Returns the poll timeout until a worker may become stuck (-1:
 * none). */
static int rebalance(pool *p)
{
    long long now = now_us(), next = -1;
    int idle = 0;
    for (int i = 0; i < p->n_slots; i++) {
        idle |= can_take(&p->workers[i], 1, now) && p->workers[i].sent.n == 0;
    }
    for (int i = 0; idle && i < p->n_slots; i++) {
        worker *w = &p->workers[i];
        if (w->pid == 0 || w->dead_since || w->sent.n < 2) {
            continue;
        }
        if (stuck(w, now)) {
            recall(p, w);
        } else {
            long long left = w->head_since + (long long)PREFETCH_BUDGET_US - now;
            next = next < 0 || left < next ? left : next;
        }
    }
    return next < 0 ? -1 : (int)(next / 1000) + 1;
}

/* Deals the queued tasks out one round at a time, so that every idle worker
 * gets one before any gets a second.  Returns the poll timeout rebalance
 * asks for (-1: none). */
static int dispatch_pending(pool *p)
{
    pthread_mutex_lock(&p->lock);
    list_prepend(&p->pending, &p->recalled);
    int queued = p->pending.n;
    pthread_mutex_unlock(&p->lock);
    int busy = 0;
    for (int i = 0; i < p->n_slots; i++) {
        busy += p->workers[i].sent.n;
    }
    if (busy == 0 && queued == 0) {
        p->run_us = 0; /* the burst is over: learn the next one afresh */
        return -1;
    }
    int depth = prefetch_depth(p);
    long long now = now_us();
    for (int level = 1; level <= depth; level++) {
        for (int i = 0; i < p->n_slots; i++) {
            worker *w = &p->workers[i];
            if (!can_take(w, level, now)) {
                continue;
            }
            pthread_mutex_lock(&p->lock);
            task *t = list_pop(&p->pending);
            pthread_mutex_unlock(&p->lock);
            if (t == NULL) {
                return rebalance(p);
            }
            send_task(p, w, t);
        }
    }
    pthread_mutex_lock(&p->lock);
    int left = p->pending.n;
    pthread_mutex_unlock(&p->lock);
    return left ? -1 : rebalance(p);
}

static int any_workers(pool *p)
{
    for (int i = 0; i < p->n_slots; i++) {
        if (p->workers[i].pid != 0) {
            return 1;
        }
    }
    return 0;
}

/* Kills the workers whose interrupted task outlived its grace; returns the
 * poll timeout until the next such deadline (-1: none).  A worker drops the
 * interrupted tasks it has not started at once, so only the first of its
 * tasks can be the one ignoring the interrupt. */
static int enforce_interrupts(pool *p)
{
    long long now = now_ms(), next = -1;
    for (int i = 0; i < p->n_slots; i++) {
        worker *w = &p->workers[i];
        task *t = w->sent.head;
        if (w->pid == 0 || t == NULL || t->interrupted == 0 || w->killed ||
            w->dead_since) {
            continue;
        }
        long long left = t->interrupted + INTERRUPT_GRACE_MS - now;
        if (left <= 0) {
            LOG_W("pool: worker %d ignored an interrupt for %d ms; killing it",
                  (int)w->pid, INTERRUPT_GRACE_MS);
            kill(w->pid, SIGKILL);
            w->killed = 1;
        } else if (next < 0 || left < next) {
            next = left;
        }
    }
    return next < 0 ? -1 : (int)next + 1;
}

/* Workers cannot start (a broken install, no memory): the queued tasks fail
 * with how the last one ended, rather than wait forever. */
static void fail_pending(pool *p)
{
    pthread_mutex_lock(&p->lock);
    list_prepend(&p->pending, &p->recalled);
    task_list all = p->pending;
    p->pending = (task_list){0};
    pthread_mutex_unlock(&p->lock);
    if (all.n == 0) {
        return;
    }
    char msg[360];
    snprintf(msg, sizeof msg,
             "no worker process could start: %s (%d tries; the kernel log "
             "says why)",
             p->start_error, p->failed_starts);
    LOG_E("pool: %s", msg);
    for (task *t = list_pop(&all); t; t = list_pop(&all)) {
        post_result(p, t->id, POOL_CRASHED, NULL, 0, msg);
        task_free(t);
    }
}

/* At stop: every worker goes now, busy or not; the pidfds reap them. */
static void kill_all(pool *p)
{
    for (int i = 0; i < p->n_slots; i++) {
        worker *w = &p->workers[i];
        if (w->pid != 0 && !w->killed && !w->dead_since) {
            kill(w->pid, SIGKILL);
            w->killed = 1;
        }
    }
}

static void *dispatcher_main(void *arg)
{
    pool *p = arg;
    /* Interrupts are the cell thread's; the workers reset their own mask. */
    sigset_t blocked;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGINT);
    sigaddset(&blocked, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &blocked, NULL);
    apply_size(p);
    int balance = -1; /* poll timeout rebalance asked for */
    for (;;) {
        zmq_pollitem_t items[2 + MAX_WORKERS];
        worker *owners[2 + MAX_WORKERS];
        int n = 0;
        items[n++] = (zmq_pollitem_t){.socket = p->router, .events = ZMQ_POLLIN};
        items[n++] = (zmq_pollitem_t){.fd = p->wake_fd, .events = ZMQ_POLLIN};
        for (int i = 0; i < p->n_slots; i++) {
            if (p->workers[i].pid != 0 && p->workers[i].pidfd >= 0) {
                owners[n] = &p->workers[i];
                items[n++] =
                    (zmq_pollitem_t){.fd = p->workers[i].pidfd, .events = ZMQ_POLLIN};
            }
        }
        pthread_mutex_lock(&p->lock);
        int stopping = p->stopping;
        pthread_mutex_unlock(&p->lock);
        int burial = bury_dead(p, stopping);
        if (stopping) {
            kill_all(p);
            if (!any_workers(p)) {
                break;
            }
        }
        int timeout = enforce_interrupts(p);
        if (burial >= 0 && (timeout < 0 || burial < timeout)) {
            timeout = burial;
        }
        int unwatched = reap_unwatched(p);
        if (unwatched >= 0 && (timeout < 0 || unwatched < timeout)) {
            timeout = unwatched;
        }
        if (balance >= 0 && (timeout < 0 || balance < timeout)) {
            timeout = balance;
        }
        if (stopping) {
            timeout = 100;
        }
        publish_results(p); /* all the turn staged, before it may sleep */
        if (zmq_poll(items, n, timeout) < 0 && errno != EINTR) {
            LOG_E("pool: poll failed: %s", zmq_strerror(errno));
            break;
        }
        if (items[1].revents & ZMQ_POLLIN) {
            uint64_t count;
            ssize_t rc = read(p->wake_fd, &count, sizeof count);
            (void)rc;
            apply_cancels(p);
            apply_size(p);
        }
        /* A bounded batch per turn: a worker flooding output must not keep
         * the others' results, dispatch and cancels waiting. */
        for (int k = 0; k < MESSAGES_PER_TURN && zmq_poll(items, 1, 0) > 0 &&
                        (items[0].revents & ZMQ_POLLIN);
             k++) {
            handle_worker_message(p);
        }
        for (int i = 2; i < n; i++) {
            if (items[i].revents & ZMQ_POLLIN) {
                reap_worker(p, owners[i]);
            }
        }
        pthread_mutex_lock(&p->lock);
        if (p->retry) {
            p->retry = 0;
            p->failed_starts = 0;
        }
        pthread_mutex_unlock(&p->lock);
        if (stopping) {
            /* nothing to start */
        } else if (p->failed_starts >= MAX_FAILED_STARTS) {
            fail_pending(p);
        } else {
            apply_size(p); /* replaces workers that died */
        }
        balance = dispatch_pending(p);
    }
    publish_results(p);
    zmq_close(p->router);
    p->router = NULL;
    pthread_mutex_lock(&p->lock);
    p->closed = 1;
    pthread_cond_broadcast(&p->results_cond);
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* ----------------------------------------------------------- public */

pool *pool_new(void *zctx, const char *runtime_dir, const char *exe, iopub *io, int n,
               jp_error *err)
{
    pool *p = calloc(1, sizeof *p);
    if (p == NULL) {
        jp_error_set(err, "out of memory");
        return NULL;
    }
    p->zctx = zctx;
    p->io = io;
    p->target = n < 1 ? 1 : n > MAX_WORKERS ? MAX_WORKERS : n;
    snprintf(p->exe, sizeof p->exe, "%s", exe);
    int len = snprintf(p->endpoint, sizeof p->endpoint, "ipc://%s/pool-%d", runtime_dir,
                       __atomic_add_fetch(&pool_counter, 1, __ATOMIC_SEQ_CST));
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->results_cond, NULL);
    p->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    p->router = zmq_socket(zctx, ZMQ_ROUTER);
    int linger = 0;
    if (len >= 107 + 6) {
        jp_error_set(err, "runtime directory path too long for an ipc endpoint: %s",
                     runtime_dir);
    } else if (p->wake_fd < 0 || p->router == NULL ||
               zmq_setsockopt(p->router, ZMQ_LINGER, &linger, sizeof linger) < 0 ||
               zmq_bind(p->router, p->endpoint) < 0) {
        jp_error_set(err, "cannot bind the pool on %s: %s", p->endpoint,
                     zmq_strerror(errno));
    } else if (pthread_create(&p->thread, NULL, dispatcher_main, p) != 0) {
        jp_error_set(err, "cannot start the pool's dispatcher");
    } else {
        return p;
    }
    if (p->router) {
        zmq_close(p->router);
    }
    if (p->wake_fd >= 0) {
        close(p->wake_fd);
    }
    free(p);
    return NULL;
}

void pool_stop(pool *p)
{
    pthread_mutex_lock(&p->lock);
    int first = !p->stopping;
    p->stopping = 1;
    pthread_mutex_unlock(&p->lock);
    if (first) {
        wake(p);
        pthread_join(p->thread, NULL);
    }
}

void pool_destroy(pool **pp)
{
    if (pp == NULL || *pp == NULL) {
        return;
    }
    pool *p = *pp;
    pool_stop(p);
    list_prepend(&p->pending, &p->recalled);
    for (task *t = list_pop(&p->pending); t; t = list_pop(&p->pending)) {
        task_free(t);
    }
    result_node *r = p->results;
    while (r) {
        result_node *next = r->next;
        pool_result_clear(&r->r);
        free(r);
        r = next;
    }
    free(p->cancels);
    free(p->interrupts);
    close(p->wake_fd);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->results_cond);
    free(p);
    *pp = NULL;
}

int pool_size(pool *p)
{
    pthread_mutex_lock(&p->lock);
    int n = p->target;
    pthread_mutex_unlock(&p->lock);
    return n;
}

void pool_resize(pool *p, int n)
{
    pthread_mutex_lock(&p->lock);
    p->target = n < 1 ? 1 : n > MAX_WORKERS ? MAX_WORKERS : n;
    pthread_mutex_unlock(&p->lock);
    wake(p);
}

int pool_submit(pool *p, uint64_t task_id, json_t *parent, jp_frame *frames, size_t n)
{
    task *t = calloc(1, sizeof *t);
    if (t == NULL) {
        frames_free(frames, n);
        return -1;
    }
    t->id = task_id;
    t->parent = json_incref(parent);
    t->frames = frames;
    t->n = n;
    pthread_mutex_lock(&p->lock);
    /* A dispatcher with tasks queued comes back to them (a result, a ready
     * worker or an earlier wake-up is on its way): wake it only for the
     * first, so a map's thousands of submits cost one wake-up. */
    int first = p->pending.n == 0;
    list_push(&p->pending, t);
    p->retry = 1;
    pthread_mutex_unlock(&p->lock);
    if (first) {
        wake(p);
    }
    return 0;
}

int pool_next(pool *p, pool_result *out, int max, int timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    if (timeout_ms > 0) {
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
        if (deadline.tv_nsec >= 1000000000) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000;
        }
    }
    pthread_mutex_lock(&p->lock);
    while (p->results == NULL && !p->closed) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&p->results_cond, &p->lock);
        } else if (timeout_ms == 0 || pthread_cond_timedwait(&p->results_cond, &p->lock,
                                                             &deadline) == ETIMEDOUT) {
            break;
        }
    }
    int got = 0;
    while (p->results && got < max) {
        result_node *node = p->results;
        p->results = node->next;
        if (p->results == NULL) {
            p->results_tail = NULL;
        }
        out[got++] = node->r;
        free(node);
    }
    int rc = got > 0 ? got : p->closed ? -1 : 0;
    pthread_mutex_unlock(&p->lock);
    return rc;
}

void pool_result_clear(pool_result *r)
{
    frames_free(r->frames, r->n_frames);
    memset(r, 0, sizeof *r);
}

/* Appends n ids to a growable array; -1 when out of memory. */
static int ids_append(uint64_t **arr, size_t *len, size_t *cap, const uint64_t *ids,
                      size_t n)
{
    if (*len + n > *cap) {
        size_t grown_cap = (*len + n) * 2;
        uint64_t *grown = realloc(*arr, grown_cap * sizeof *grown);
        if (grown == NULL) {
            return -1;
        }
        *arr = grown;
        *cap = grown_cap;
    }
    memcpy(*arr + *len, ids, n * sizeof *ids);
    *len += n;
    return 0;
}

void pool_cancel(pool *p, const uint64_t *ids, size_t n, int interrupt)
{
    pthread_mutex_lock(&p->lock);
    int rc = ids_append(&p->cancels, &p->n_cancels, &p->cap_cancels, ids, n);
    if (rc == 0 && interrupt) {
        rc = ids_append(&p->interrupts, &p->n_interrupts, &p->cap_interrupts, ids, n);
    }
    pthread_mutex_unlock(&p->lock);
    if (rc < 0) {
        LOG_E("pool: out of memory cancelling tasks");
    }
    wake(p);
}

int pool_pids(pool *p, int *pids, int max)
{
    /* Read without the dispatcher's cooperation: pids change rarely and a
     * torn read only gives a stale answer to a diagnostic. */
    int n = 0;
    for (int i = 0; i < MAX_WORKERS && n < max; i++) {
        pid_t pid = __atomic_load_n(&p->workers[i].pid, __ATOMIC_RELAXED);
        if (pid != 0 &&
            __atomic_load_n(&p->workers[i].dead_since, __ATOMIC_RELAXED) == 0) {
            pids[n++] = (int)pid;
        }
    }
    return n;
}

unsigned long pool_output_count(void)
{
    return __atomic_load_n(&output_count, __ATOMIC_RELAXED);
}
