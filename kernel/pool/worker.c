/* worker.c -- a pool worker: an embedded interpreter that runs tasks.
 *
 * Two threads share the one DEALER socket, under one lock (ZeroMQ allows a
 * socket to change threads behind a lock; neither thread blocks in ZeroMQ
 * while holding it).  The io thread waits on the socket's ZMQ_FD and on the
 * pipes that replace fds 1 and 2: it queues the tasks it receives, applies
 * cancels at once (even while a task runs), and streams output back under
 * the id of the task that wrote it.  The main thread initialised Python, so
 * SIGINT (how a task is interrupted) raises KeyboardInterrupt in the task;
 * it takes tasks from the queue one after the other, and sends each result
 * itself, after the output the task wrote last - no hand-over to another
 * thread on the way back.
 *
 * The messages are pool_wire.h's.  The kernel may send several tasks ahead
 * (sched.c decides how many).  For
 * a crash, it must know which of them ran: the status page, a shared
 * memory page the kernel maps too, holds the id of the running task and of
 * the last finished one, written before and after each task. */
#define _GNU_SOURCE /* pipe2 */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "groupwatch.h"
#include "log.h"
#include "paths.h"
#include "pool_wire.h"
#include "pyrt.h"

/* Output read from a pipe, for one task. */
typedef struct chunk {
    uint64_t task;      /* id of the task that was running */
    int stream;         /* 0 stdout, 1 stderr */
    size_t len;         /* bytes in data */
    struct chunk *next; /* list link */
    char data[];        /* the bytes */
} chunk;

typedef struct job {
    uint64_t id;      /* task id */
    jp_frames frames; /* task: payload + buffers; result: the same */
    const char *how;  /* result: "ok", "error", "cancelled" or "recalled" */
    uint64_t run_us;  /* result: how long the task ran */
    chunk *tail;      /* result: output read after the task ended */
    struct job *next; /* queue link */
} job;

typedef struct queue {
    job *head, *tail; /* FIFO */
} queue;

typedef struct wstate {
    void *zctx;           /* context */
    void *sock;           /* DEALER, both threads, under the lock */
    int out_fd[2];        /* read ends of the stdout / stderr pipes */
    int wake_fd;          /* eventfd: the io thread must look at the socket */
    pthread_mutex_t lock; /* guards the socket and everything below */
    int main_wake_fd;     /* eventfd: a task was queued for the waiting main thread */
    int main_waiting;     /* the main thread waits for a task, lock released */
    char carry[2][4];     /* an unfinished UTF-8 character at a read's end */
    size_t n_carry[2];    /* its length */
    queue tasks;          /* received, not started */
    uint64_t running;     /* the running task, or the last one: owns output */
    int busy;             /* a task is running now */
    int gone;             /* the kernel went away: stop */
    pid_t parent;         /* the kernel; another parent means it died */
    volatile uint64_t *status; /* shared with the kernel: [0] running, [1] finished */
} wstate;

static void queue_push(queue *q, job *j)
{
    j->next = NULL;
    if (q->tail) {
        q->tail->next = j;
    } else {
        q->head = j;
    }
    q->tail = j;
}

static job *queue_pop(queue *q)
{
    job *j = q->head;
    if (j) {
        q->head = j->next;
        if (q->head == NULL) {
            q->tail = NULL;
        }
        j->next = NULL;
    }
    return j;
}

/* --------------------------------------------------------------- output */

/* Length of the longest prefix of buf[0..n) that does not end inside a
 * UTF-8 character (the kernel sanitises each chunk on its own, so a
 * character split between two chunks would turn into two U+FFFD). */
static size_t utf8_complete(const unsigned char *buf, size_t n)
{
    for (size_t back = 1; back <= 4 && back <= n; back++) {
        unsigned char c = buf[n - back];
        if ((c & 0xC0) != 0x80) { /* a lead byte or ASCII */
            size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
            return need > back ? n - back : n;
        }
    }
    return n; /* not UTF-8 anyway: send as is */
}

/* Reads what the pipes hold into chunks for the task that owns output now;
 * with final, also a character left unfinished (the task is over).  Called
 * with the lock held, so a task's output never goes to the next one.
 * Returns the chunks in order (the caller frees them), NULL if none. */
static chunk *drain_pipes(wstate *w, int final)
{
    chunk *first = NULL, **link = &first;
    char buf[65536 + 4];
    for (int i = 0; i < 2; i++) {
        for (;;) {
            size_t have = w->n_carry[i];
            memcpy(buf, w->carry[i], have);
            ssize_t n = read(w->out_fd[i], buf + have, sizeof buf - 4);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            size_t total = have + (n > 0 ? (size_t)n : 0);
            size_t take = n > 0 ? utf8_complete((unsigned char *)buf, total) : 0;
            if (n <= 0 && final) {
                take = total;
            }
            w->n_carry[i] = total - take;
            memcpy(w->carry[i], buf + take, total - take);
            chunk *c = take > 0 ? malloc(sizeof *c + take) : NULL;
            if (c != NULL) {
                c->task = w->running;
                c->stream = i;
                c->len = take;
                c->next = NULL;
                memcpy(c->data, buf, take);
                *link = c;
                link = &c->next;
            } else if (take > 0) {
                LOG_E("worker: out of memory; %zu bytes of output dropped", take);
            }
            if (n <= 0) {
                break;
            }
        }
    }
    return first;
}

/* Sends chunks as output messages and frees them. */
static void send_chunks(wstate *w, chunk *c)
{
    static const char *const names[2] = {POOL_STREAM_STDOUT, POOL_STREAM_STDERR};
    while (c) {
        chunk *next = c->next;
        jp_frame out[POOL_OUT_FRAMES] = {
            pool_frame_str(POOL_MSG_OUTPUT),
            pool_frame_of(&c->task, sizeof c->task),
            pool_frame_str(names[c->stream]),
            pool_frame_of(c->data, c->len),
        };
        if (jp_frames_send(w->sock, &(jp_frames){out, POOL_OUT_FRAMES}, 0) < 0) {
            LOG_W("worker: cannot send output: %s", zmq_strerror(errno));
        }
        free(c);
        c = next;
    }
}

/* -------------------------------------------------------------- results */

/* The answer to r (its payload and buffers without a copy), after the
 * output the task wrote last; frees r. */
static void send_result(wstate *w, job *r)
{
    send_chunks(w, r->tail);
    jp_frame head[POOL_DONE_PAYLOAD] = {
        pool_frame_str(POOL_MSG_DONE),
        pool_frame_of(&r->id, sizeof r->id),
        pool_frame_str(r->how),
        pool_frame_of(&r->run_us, sizeof r->run_us),
    };
    int more = r->frames.n > 0;
    if (jp_frames_send(w->sock, &(jp_frames){head, POOL_DONE_PAYLOAD}, more) < 0 ||
        (more && jp_frames_send(w->sock, &r->frames, 0) < 0)) {
        LOG_W("worker: cannot send a result: %s", zmq_strerror(errno));
    }
    jp_frames_clear(&r->frames);
    free(r);
}

/* ------------------------------------------------------------- commands */

static int id_listed(const jp_frame *ids, uint64_t id)
{
    const unsigned char *p = ids->data;
    for (size_t off = 0; off + sizeof id <= ids->size; off += sizeof id) {
        uint64_t x;
        memcpy(&x, p + off, sizeof x);
        if (x == id) {
            return 1;
        }
    }
    return 0;
}

/* A cancel: the listed tasks still queued here end without running,
 * "cancelled" or, for POOL_RECALL, "recalled" (the kernel gives them to
 * another worker); with POOL_CANCEL_INTERRUPT, a listed task that runs now
 * gets SIGINT.  The lock keeps the main thread from moving to its next
 * task in between, so the signal cannot hit a task that was not listed. */
static void cancel_tasks(wstate *w, const jp_frame *flag, const jp_frame *ids)
{
    char how = flag->size == 1 ? *(const char *)flag->data : POOL_CANCEL;
    queue keep = {0}, dropped = {0};
    for (job *t = queue_pop(&w->tasks); t; t = queue_pop(&w->tasks)) {
        queue_push(id_listed(ids, t->id) ? &dropped : &keep, t);
    }
    w->tasks = keep;
    if (w->busy && how == POOL_CANCEL_INTERRUPT && id_listed(ids, w->running)) {
        kill(getpid(), SIGINT); /* only the main thread takes SIGINT */
    }
    for (job *t = queue_pop(&dropped); t; t = queue_pop(&dropped)) {
        jp_frames_clear(&t->frames);
        t->how = how == POOL_RECALL ? POOL_ANSWER_RECALLED : POOL_ANSWER_CANCELLED;
        send_result(w, t);
    }
}

/* The main thread waits for tasks in poll, on the socket's ZMQ_FD too: when
 * this thread took the message it was waiting for, it must be told.  Called
 * with the lock held. */
static void wake_main(wstate *w)
{
    if (w->main_waiting) {
        uint64_t one = 1;
        ssize_t n = write(w->main_wake_fd, &one, sizeof one);
        (void)n;
        w->main_waiting = 0;
    }
}

/* A task joins the queue; a cancel applies at once.  Called with the lock
 * held. */
static void receive_message(wstate *w)
{
    jp_frames in = {0};
    if (jp_recv_frames(w->sock, ZMQ_DONTWAIT, &in.v, &in.n) < 0) {
        if (errno != EAGAIN) {
            LOG_E("worker: cannot receive from the kernel: %s", strerror(errno));
        }
        return;
    }
    const jp_frame *f = in.v;
    job *t = NULL;
    if (in.n >= POOL_TASK_MIN_FRAMES && pool_frame_is(&f[0], POOL_MSG_TASK) &&
        f[POOL_F_TASK_ID].size == sizeof(uint64_t) &&
        (t = calloc(1, sizeof *t)) != NULL) {
        t->id = pool_frame_u64(&f[POOL_F_TASK_ID]);
        if (jp_frames_split(&in, POOL_TASK_PAYLOAD, &t->frames) == 0) {
            queue_push(&w->tasks, t);
            wake_main(w);
        } else {
            free(t);
            LOG_E("worker: out of memory for a task");
        }
    } else if (in.n == POOL_CANCEL_FRAMES && pool_frame_is(&f[0], POOL_MSG_CANCEL)) {
        cancel_tasks(w, &f[POOL_CANCEL_MODE], &f[POOL_CANCEL_IDS]);
    } else if (in.n > 0) {
        LOG_W("worker: dropping a malformed message from the kernel");
    }
    jp_frames_clear(&in);
}

static int readable(void *sock)
{
    int events = 0;
    size_t len = sizeof events;
    return zmq_getsockopt(sock, ZMQ_EVENTS, &events, &len) == 0 && (events & ZMQ_POLLIN);
}

static void *io_main(void *arg)
{
    wstate *w = arg;
    int zfd = -1;
    size_t len = sizeof zfd;
    pthread_mutex_lock(&w->lock);
    jp_frame ready = pool_frame_str(POOL_MSG_READY);
    if (jp_frames_send(w->sock, &(jp_frames){&ready, 1}, 0) < 0) {
        LOG_W("worker: cannot say ready: %s", zmq_strerror(errno));
    }
    int ok = zmq_getsockopt(w->sock, ZMQ_FD, &zfd, &len) == 0;
    pthread_mutex_unlock(&w->lock);
    /* A parent gone (kernel killed) ends the worker even if the
     * parent-death signal was missed. */
    struct pollfd fds[4] = {
        {.fd = zfd, .events = POLLIN},
        {.fd = w->wake_fd, .events = POLLIN},
        {.fd = w->out_fd[0], .events = POLLIN},
        {.fd = w->out_fd[1], .events = POLLIN},
    };
    while (ok && getppid() == w->parent) {
        pthread_mutex_lock(&w->lock);
        if (fds[2].revents || fds[3].revents) {
            send_chunks(w, drain_pipes(w, 0));
        }
        /* ZMQ_FD only says that something changed, and only once ZMQ_EVENTS
         * was read since the last send or receive: read until ZeroMQ says
         * there is nothing more, then wait. */
        while (readable(w->sock)) {
            receive_message(w);
        }
        pthread_mutex_unlock(&w->lock);
        if (poll(fds, 4, 1000) < 0 && errno != EINTR) {
            break;
        }
        if (fds[1].revents & POLLIN) {
            uint64_t c;
            ssize_t r = read(w->wake_fd, &c, sizeof c);
            (void)r;
        }
    }
    pthread_mutex_lock(&w->lock);
    w->gone = 1;
    wake_main(w);
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* ------------------------------------------------------------ the tasks */

static int capture(int target, int *read_end)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0 || dup2(fds[1], target) < 0) {
        return -1;
    }
    close(fds[1]);
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    *read_end = fds[0];
    return 0;
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* The next task, or NULL once the kernel is gone; marks it running.  An
 * idle main thread receives its next task itself: the io thread would be
 * one more wake-up on the way. */
static job *next_task(wstate *w, int zfd)
{
    pthread_mutex_lock(&w->lock);
    while (w->tasks.head == NULL && !w->gone) {
        /* Everything there is, cancels included: reading ZMQ_EVENTS re-arms
         * ZMQ_FD only for what arrives after, so nothing may stay unread. */
        while (readable(w->sock)) {
            receive_message(w);
        }
        if (w->tasks.head != NULL) {
            break;
        }
        w->main_waiting = 1;
        pthread_mutex_unlock(&w->lock);
        struct pollfd fds[2] = {
            {.fd = zfd, .events = POLLIN},
            {.fd = w->main_wake_fd, .events = POLLIN},
        };
        int rc = poll(fds, 2, 1000);
        if (rc > 0 && (fds[1].revents & POLLIN)) {
            uint64_t c;
            ssize_t r = read(w->main_wake_fd, &c, sizeof c);
            (void)r;
        }
        pthread_mutex_lock(&w->lock);
        w->main_waiting = 0;
    }
    job *t = w->gone ? NULL : queue_pop(&w->tasks);
    if (t) {
        /* Under the lock, so that the io thread sends no SIGINT in between:
         * one still pending is an earlier task's, or an idle worker's. */
        pyrt_drop_signals();
        w->running = t->id;
        w->busy = 1;
        __atomic_store_n(&w->status[0], t->id, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&w->lock);
    return t;
}

/* Sends t's result, after the output the task wrote last; frees t. */
static void finish_task(wstate *w, job *t)
{
    /* Output of C code in the task sits in stdio's buffers (the fds are
     * pipes): out it goes, before the result. */
    fflush(NULL);
    pthread_mutex_lock(&w->lock);
    t->tail = drain_pipes(w, 1);
    w->busy = 0;
    __atomic_store_n(&w->status[1], t->id, __ATOMIC_RELEASE);
    __atomic_store_n(&w->status[0], 0, __ATOMIC_RELEASE);
    send_result(w, t);
    /* Sending may have taken the ZMQ_FD signal of a message that arrived
     * meanwhile: then the io thread would not wake for it. */
    int missed = readable(w->sock);
    pthread_mutex_unlock(&w->lock);
    if (missed) {
        uint64_t one = 1;
        ssize_t n = write(w->wake_fd, &one, sizeof one);
        (void)n;
    }
}

static void run_tasks(wstate *w)
{
    int zfd = -1;
    size_t len = sizeof zfd;
    pthread_mutex_lock(&w->lock);
    int ok = zmq_getsockopt(w->sock, ZMQ_FD, &zfd, &len) == 0;
    pthread_mutex_unlock(&w->lock);
    job *t;
    while (ok && (t = next_task(w, zfd)) != NULL) {
        jp_frames in = t->frames;
        jp_error err = {0};
        uint64_t start = now_us();
        int rc =
            pyrt_call_frames("run_task", in.v, in.n, &t->frames.v, &t->frames.n, &err);
        t->run_us = now_us() - start;
        free(in.v); /* the frames themselves went to Python */
        if (rc < 0) {
            LOG_E("worker: %s", err.text);
            _exit(POOL_EXIT_TASK_FAILED); /* the kernel names it in the crash */
        }
        t->how = rc ? POOL_ANSWER_OK : POOL_ANSWER_ERROR;
        finish_task(w, t);
    }
}

/* ---------------------------------------------------------------- setup */

static void no_publish(void *ctx, const char *msg_type, json_t *content, json_t *metadata,
                       jp_frame *buffers, size_t n_buffers)
{
    (void)ctx;
    (void)msg_type;
    (void)buffers; /* the caller frees them */
    (void)n_buffers;
    json_decref(content);
    json_decref(metadata);
}

static int no_input(void *ctx, const char *prompt, int password, char **value,
                    jp_error *err)
{
    (void)ctx;
    (void)prompt;
    (void)password;
    (void)value;
    jp_error_set(err, "input() is not available in a worker process");
    return -1;
}

/* The status page the kernel passed (fd), or a private one. */
static volatile uint64_t *map_status(int fd)
{
    void *page = MAP_FAILED;
    if (fd >= 0) {
        page =
            mmap(NULL, 2 * sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        close(fd);
    }
    if (page == MAP_FAILED) {
        page = calloc(2, sizeof(uint64_t));
    }
    return page;
}

/* The connection to the kernel: a DEALER on the pool's endpoint, named
 * w<pid> (the pool routes by it).  0, or -1 (logged). */
static int worker_connect(wstate *w, const char *endpoint)
{
    w->zctx = zmq_ctx_new();
    w->sock = zmq_socket(w->zctx, ZMQ_DEALER);
    char ident[32];
    int len = snprintf(ident, sizeof ident, "w%d", (int)getpid());
    int linger = 2000;
    int no_limit = 0; /* a send under the lock must never wait for the kernel */
    if (w->sock == NULL ||
        zmq_setsockopt(w->sock, ZMQ_ROUTING_ID, ident, (size_t)len) < 0 ||
        zmq_setsockopt(w->sock, ZMQ_SNDHWM, &no_limit, sizeof no_limit) < 0 ||
        zmq_setsockopt(w->sock, ZMQ_LINGER, &linger, sizeof linger) < 0 ||
        zmq_connect(w->sock, endpoint) < 0) {
        LOG_E("worker: cannot connect to %s: %s", endpoint, zmq_strerror(errno));
        return -1;
    }
    return 0;
}

int worker_serve(const char *endpoint, int status_fd, void (*before_tasks)(void))
{
    static wstate w;
    w.parent = getppid();
    w.status = map_status(status_fd);
    pthread_mutex_init(&w.lock, NULL);
    w.main_wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    w.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (w.status == NULL || worker_connect(&w, endpoint) < 0) {
        return 1;
    }
    if (capture(1, &w.out_fd[0]) < 0 || capture(2, &w.out_fd[1]) < 0) {
        LOG_E("worker: cannot set up output capture");
        return 1;
    }
    /* Only the main thread takes SIGINT; the io thread inherits the block. */
    sigset_t sigint;
    sigemptyset(&sigint);
    sigaddset(&sigint, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigint, NULL);
    pthread_t io;
    if (pthread_create(&io, NULL, io_main, &w) != 0) {
        return 1;
    }
    pthread_sigmask(SIG_UNBLOCK, &sigint, NULL);
    if (before_tasks) {
        before_tasks(); /* while the kernel answers the ready */
    }
    run_tasks(&w);
    /* The kernel is gone; nothing to flush to. */
    _exit(0);
}

int worker_init_python(const char *python, const char *runtime_dir)
{
    char package_dir[PATH_MAX];
    if (paths_package_dir(package_dir, sizeof package_dir) < 0) {
        LOG_E("worker: cannot find the ferry package");
        return -1;
    }
    jp_error err = {0};
    pyrt_config cfg = {
        .python = python,
        .package_dir = package_dir,
        .runtime_dir = runtime_dir,
        .role = "worker",
        .entry = "ferry._worker",
        .hooks = {.ctx = NULL, .publish = no_publish, .write = NULL, .input = no_input},
    };
    if (pyrt_init(&cfg, &err) < 0) {
        LOG_E("worker: %s", err.text);
        return -1;
    }
    return 0;
}

int worker_run(const char *endpoint, const char *python, int status_fd)
{
    groupwatch_start(); /* before any thread: what tasks start ends with us */
    char runtime_dir[PATH_MAX];
    /* The endpoint is ipc://RUNTIME_DIR/pool-N. */
    snprintf(runtime_dir, sizeof runtime_dir, "%s",
             strncmp(endpoint, "ipc://", 6) == 0 ? endpoint + 6 : ".");
    char *slash = strrchr(runtime_dir, '/');
    if (slash) {
        *slash = '\0';
    }
    if (worker_init_python(python, runtime_dir) < 0) {
        return 1;
    }
    return worker_serve(endpoint, status_fd, NULL);
}
