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

typedef struct task {
    uint64_t id;       /* chosen by the caller */
    json_t *parent;    /* header of the request that asked, or NULL */
    jp_frame *frames;  /* payload and buffers, owned */
    size_t n;          /* number of frames */
    struct task *next; /* queue link */
} task;

typedef struct worker {
    pid_t pid;             /* 0 when the slot is free */
    int pidfd;             /* readable once the process exited */
    int ready;             /* said "ready" */
    task *running;         /* its task, or NULL when idle */
    int retiring;          /* stop it once idle (pool shrank) */
    int killed;            /* SIGKILL sent at stop */
    long long interrupted; /* monotonic ms of the SIGINT to its task, or 0 */
} worker;

typedef struct result_node {
    pool_result r;            /* the result */
    struct result_node *next; /* queue link */
} result_node;

struct pool {
    void *zctx;                   /* context for the ROUTER */
    void *router;                 /* owned by the dispatcher thread */
    char endpoint[320];           /* ipc://RUNTIME/pool-N */
    char exe[PATH_MAX];           /* ferry-kernel */
    iopub *io;                    /* where worker output goes */
    pthread_t thread;             /* the dispatcher */
    int wake_fd;                  /* eventfd: commands are waiting */
    pthread_mutex_t lock;         /* guards everything below */
    pthread_cond_t results_cond;  /* signalled when a result is queued */
    task *pending, *pending_tail; /* submitted, not dispatched */
    uint64_t *cancels;            /* ids to cancel, for the dispatcher */
    size_t n_cancels, cap_cancels;
    uint64_t *interrupts; /* running ones among them to SIGINT */
    size_t n_interrupts, cap_interrupts;
    result_node *results, *results_tail;
    int target;                  /* workers asked for */
    int retry;                   /* a task came: try starting workers again */
    int stopping;                /* pool_destroy began */
    int closed;                  /* the dispatcher has exited */
    worker workers[MAX_WORKERS]; /* dispatcher-owned */
    int failed_starts;           /* dispatcher: workers in a row that died unready */
    char start_error[200];       /* dispatcher: how the last of them ended */
};

static int pool_counter;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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

/* Queues a result for pool_next; frames are taken over. */
static void post_result(pool *p, uint64_t id, pool_status status, jp_frame *frames,
                        size_t n, const char *message)
{
    result_node *node = calloc(1, sizeof *node);
    if (node == NULL) {
        frames_free(frames, n);
        LOG_E("pool: out of memory for a result");
        return;
    }
    node->r.task_id = id;
    node->r.status = status;
    node->r.frames = frames;
    node->r.n_frames = n;
    snprintf(node->r.message, sizeof node->r.message, "%s", message ? message : "");
    pthread_mutex_lock(&p->lock);
    if (p->results_tail) {
        p->results_tail->next = node;
    } else {
        p->results = node;
    }
    p->results_tail = node;
    pthread_cond_broadcast(&p->results_cond);
    pthread_mutex_unlock(&p->lock);
}

/* ------------------------------------------------------------ workers */

static int live_workers(pool *p)
{
    int n = 0;
    for (int i = 0; i < MAX_WORKERS; i++) {
        n += p->workers[i].pid != 0 && !p->workers[i].retiring;
    }
    return n;
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
    pid_t pid = fork();
    if (pid < 0) {
        LOG_E("pool: cannot fork a worker: %s", strerror(errno));
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
        char *argv[] = {p->exe,        (char *)"--worker",
                        p->endpoint,   (char *)"--log-level",
                        (char *)level, NULL};
        execv(p->exe, argv);
        _exit(127);
    }
    worker *w = &p->workers[slot];
    memset(w, 0, sizeof *w);
    w->pid = pid;
    w->pidfd = pidfd_open(pid, 0);
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
    for (int i = 0; i < MAX_WORKERS; i++) {
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

/* The worker in w exited: fail its task and free the slot. */
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
    if (w->running) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s while running a task (pid %d)", how, (int)w->pid);
        LOG_W("pool: %s", msg);
        post_result(p, w->running->id, POOL_CRASHED, NULL, 0, msg);
        task_free(w->running);
    } else if (!w->retiring && !p->stopping) {
        LOG_W("pool: idle worker %d died: %s", (int)w->pid, how);
    }
    if (!w->ready && !w->retiring && !w->killed) {
        p->failed_starts++;
        snprintf(p->start_error, sizeof p->start_error, "%s", how);
    }
    if (w->pidfd >= 0) {
        close(w->pidfd);
    }
    memset(w, 0, sizeof *w);
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

static void send_task(pool *p, worker *w, task *t)
{
    jp_frame head[3] = {
        {.data = (void *)"", .size = 0},
        {.data = (void *)"task", .size = 4},
        {.data = &t->id, .size = sizeof t->id},
    };
    char ident[32];
    int len = snprintf(ident, sizeof ident, "w%d", (int)w->pid);
    head[0].data = ident;
    head[0].size = (size_t)len;
    /* One message: the head must not end it, or the payload would go out
     * as a message of its own that the ROUTER cannot route. */
    if (send_frames(p->router, head, 3, t->n > 0) < 0 ||
        (t->n && send_frames(p->router, t->frames, t->n, 0) < 0)) {
        LOG_W("pool: cannot send a task to worker %d", (int)w->pid);
    }
    /* ZeroMQ owns the bytes now (send_frames cleared the frames). */
    for (size_t i = 0; i < t->n; i++) {
        jp_frame_clear(&t->frames[i]);
    }
    w->running = t;
    w->interrupted = 0;
}

static int frame_is(const jp_frame *f, const char *s)
{
    return f->size == strlen(s) && memcmp(f->data, s, f->size) == 0;
}

static uint64_t frame_id(const jp_frame *f)
{
    uint64_t id = 0;
    if (f->size == sizeof id) {
        memcpy(&id, f->data, sizeof id);
    }
    return id;
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
        json_t *parent = w->running ? w->running->parent : NULL;
        iopub_stream(p->io, parent, frame_is(&f[3], "stderr") ? "stderr" : "stdout",
                     f[4].data, f[4].size);
    } else if (frame_is(&f[1], "done") && n >= 5 && w->running &&
               frame_id(&f[2]) == w->running->id) {
        pool_status st = frame_is(&f[3], "ok") ? POOL_OK : POOL_ERROR;
        /* Hand the payload and buffers over without copying them again. */
        size_t k = n - 4;
        jp_frame *payload = malloc(k * sizeof *payload);
        if (payload) {
            memcpy(payload, f + 4, k * sizeof *payload);
            memset(f + 4, 0, k * sizeof *payload);
        }
        post_result(p, w->running->id, st, payload, payload ? k : 0, NULL);
        task_free(w->running);
        w->running = NULL;
        w->interrupted = 0;
    }
    frames_free(f, n);
}

/* ---------------------------------------------------------- commands */

static void apply_cancels(pool *p)
{
    pthread_mutex_lock(&p->lock);
    uint64_t *ids = p->cancels;
    size_t n = p->n_cancels;
    p->cancels = NULL;
    p->n_cancels = p->cap_cancels = 0;
    uint64_t *ints = p->interrupts;
    size_t n_ints = p->n_interrupts;
    p->interrupts = NULL;
    p->n_interrupts = p->cap_interrupts = 0;
    task *keep = NULL, *keep_tail = NULL, *dropped = NULL;
    for (task *t = p->pending, *next; t; t = next) {
        next = t->next;
        t->next = NULL;
        int cancel = 0;
        for (size_t i = 0; i < n && !cancel; i++) {
            cancel = ids[i] == t->id;
        }
        if (cancel) {
            t->next = dropped;
            dropped = t;
        } else if (keep_tail) {
            keep_tail->next = t;
            keep_tail = t;
        } else {
            keep = keep_tail = t;
        }
    }
    p->pending = keep;
    p->pending_tail = keep_tail;
    pthread_mutex_unlock(&p->lock);
    for (task *t = dropped, *next; t; t = next) {
        next = t->next;
        post_result(p, t->id, POOL_CANCELLED, NULL, 0, "cancelled");
        task_free(t);
    }
    for (int i = 0; i < MAX_WORKERS; i++) {
        worker *w = &p->workers[i];
        for (size_t j = 0; w->running && j < n_ints; j++) {
            if (w->running->id == ints[j]) {
                kill(w->pid, SIGINT);
                w->interrupted = now_ms();
                break;
            }
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
    for (int i = 0; i < MAX_WORKERS && live > target; i++) {
        worker *w = &p->workers[i];
        if (w->pid != 0 && !w->retiring && w->running == NULL) {
            w->retiring = 1;
            kill(w->pid, SIGTERM);
            live--;
        }
    }
}

static void dispatch_pending(pool *p)
{
    for (int i = 0; i < MAX_WORKERS; i++) {
        worker *w = &p->workers[i];
        if (w->pid == 0 || !w->ready || w->running || w->retiring) {
            continue;
        }
        pthread_mutex_lock(&p->lock);
        task *t = p->pending;
        if (t) {
            p->pending = t->next;
            if (p->pending == NULL) {
                p->pending_tail = NULL;
            }
        }
        pthread_mutex_unlock(&p->lock);
        if (t == NULL) {
            return;
        }
        t->next = NULL;
        send_task(p, w, t);
    }
}

static int any_workers(pool *p)
{
    for (int i = 0; i < MAX_WORKERS; i++) {
        if (p->workers[i].pid != 0) {
            return 1;
        }
    }
    return 0;
}

/* Kills the workers whose interrupted task outlived its grace; returns the
 * poll timeout until the next such deadline (-1: none). */
static int enforce_interrupts(pool *p)
{
    long long now = now_ms(), next = -1;
    for (int i = 0; i < MAX_WORKERS; i++) {
        worker *w = &p->workers[i];
        if (w->pid == 0 || w->running == NULL || w->interrupted == 0 || w->killed) {
            continue;
        }
        long long left = w->interrupted + INTERRUPT_GRACE_MS - now;
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
    task *t = p->pending;
    p->pending = p->pending_tail = NULL;
    pthread_mutex_unlock(&p->lock);
    if (t == NULL) {
        return;
    }
    char msg[360];
    snprintf(msg, sizeof msg,
             "no worker process could start: %s (%d tries; the kernel log "
             "says why)",
             p->start_error, p->failed_starts);
    LOG_E("pool: %s", msg);
    for (task *next; t; t = next) {
        next = t->next;
        post_result(p, t->id, POOL_CRASHED, NULL, 0, msg);
        task_free(t);
    }
}

/* At stop: every worker goes now, busy or not; the pidfds reap them. */
static void kill_all(pool *p)
{
    for (int i = 0; i < MAX_WORKERS; i++) {
        worker *w = &p->workers[i];
        if (w->pid != 0 && !w->killed) {
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
    for (;;) {
        zmq_pollitem_t items[2 + MAX_WORKERS];
        worker *owners[2 + MAX_WORKERS];
        int n = 0;
        items[n++] = (zmq_pollitem_t){.socket = p->router, .events = ZMQ_POLLIN};
        items[n++] = (zmq_pollitem_t){.fd = p->wake_fd, .events = ZMQ_POLLIN};
        for (int i = 0; i < MAX_WORKERS; i++) {
            if (p->workers[i].pid != 0 && p->workers[i].pidfd >= 0) {
                owners[n] = &p->workers[i];
                items[n++] =
                    (zmq_pollitem_t){.fd = p->workers[i].pidfd, .events = ZMQ_POLLIN};
            }
        }
        pthread_mutex_lock(&p->lock);
        int stopping = p->stopping;
        pthread_mutex_unlock(&p->lock);
        if (stopping) {
            kill_all(p);
            if (!any_workers(p)) {
                break;
            }
        }
        int timeout = enforce_interrupts(p);
        if (stopping) {
            timeout = 100;
        }
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
        while (zmq_poll(items, 1, 0) > 0 && (items[0].revents & ZMQ_POLLIN)) {
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
        dispatch_pending(p);
    }
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
    task *t = p->pending;
    while (t) {
        task *next = t->next;
        task_free(t);
        t = next;
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
    t->parent = parent ? json_deep_copy(parent) : NULL;
    t->frames = frames;
    t->n = n;
    pthread_mutex_lock(&p->lock);
    if (p->pending_tail) {
        p->pending_tail->next = t;
    } else {
        p->pending = t;
    }
    p->pending_tail = t;
    p->retry = 1;
    pthread_mutex_unlock(&p->lock);
    wake(p);
    return 0;
}

int pool_next(pool *p, pool_result *out, int timeout_ms)
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
    int rc = 0;
    while (p->results == NULL && !p->closed) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&p->results_cond, &p->lock);
        } else if (timeout_ms == 0 || pthread_cond_timedwait(&p->results_cond, &p->lock,
                                                             &deadline) == ETIMEDOUT) {
            break;
        }
    }
    if (p->results) {
        result_node *node = p->results;
        p->results = node->next;
        if (p->results == NULL) {
            p->results_tail = NULL;
        }
        *out = node->r;
        free(node);
        rc = 1;
    } else if (p->closed) {
        rc = -1;
    }
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
        if (pid != 0) {
            pids[n++] = (int)pid;
        }
    }
    return n;
}
