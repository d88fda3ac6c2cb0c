/* worker.c -- a pool worker: an embedded interpreter that runs tasks.
 *
 * The worker's end of its socket to the kernel (an AF_UNIX socketpair made
 * by the pool, inherited as an fd; framed by wire.c) is shared by two
 * threads under one lock.  Writes block (the kernel's dispatcher always
 * reads, so they end; a cancel waits for the lock meanwhile), reads never
 * do.  The main thread initialised Python, so SIGINT (how a task is
 * interrupted) raises KeyboardInterrupt in the task; it reads the socket
 * between tasks and waits on it when idle, runs the tasks one after the
 * other, and sends each result itself, after the output the task wrote
 * last - no hand-over to another thread either way.  The io thread streams
 * the pipes that replace fds 1 and 2 back under the id of the task that
 * wrote them, and once a task has run a while (see next_task) it watches
 * the socket too: the tasks it receives are queued, cancels apply at once,
 * even while a task runs.
 *
 * The messages are pool_wire.h's.  The kernel may send several tasks ahead
 * (sched.c decides how many).  For
 * a crash, it must know which of them ran: the status page, a shared
 * memory page the kernel maps too, holds the id of the running task and of
 * the last finished one, written before and after each task. */
#define _GNU_SOURCE /* timerfd, eventfd */
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
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "groupwatch.h"
#include "log.h"
#include "paths.h"
#include "pool_wire.h"
#include "pyrt.h"
#include "spin.h"
#include "wire.h"
#include "worker_output.h"

typedef struct job {
    uint64_t id;      /* task id */
    jp_frames frames; /* task: payload + buffers; result: the same */
    const char *how;  /* result: "ok", "error", "cancelled" or "recalled" */
    uint64_t run_us;  /* result: how long the task ran */
    wout_chunk *tail; /* result: output read after the task ended */
    struct job *next; /* queue link */
} job;

typedef struct queue {
    job *head, *tail; /* FIFO */
} queue;

typedef struct wstate {
    int sock;             /* the link to the kernel, both threads, under the lock */
    wire_in in;           /* the kernel's message being received */
    wire_out out;         /* what is being written (written at once, blocking) */
    wout output;          /* the stdout / stderr pipes */
    pthread_mutex_t lock; /* guards the socket and everything below */
    int main_wake_fd;     /* eventfd: a task was queued for the waiting main thread */
    int main_waiting;     /* the main thread waits for a task, lock released */
    int io_kick_fd;       /* eventfd: the io thread must stop watching the socket */
    int io_timer_fd;      /* timerfd: a task may have run IO_WATCH_AFTER_US */
    int io_timer_armed;   /* it will fire (see watch_later) */
    int io_watching;      /* the io thread watches the socket */
    queue tasks;          /* received, not started */
    uint64_t running;     /* the running task, or the last one: owns output */
    int busy;             /* a task is running now */
    uint64_t started_us;  /* when the running task started */
    uint64_t last_run_us; /* how long the last task ran */
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

/* Sends head (borrowed) then body (taken over, may be NULL) as one message,
 * blocking until it is written.  Called with the lock held.  -1 when the
 * kernel is gone (its end of the socket closed). */
static int send_frames(wstate *w, const jp_frame *head, size_t n_head, jp_frames *body)
{
    size_t n_body = body ? body->n : 0;
    jp_frames msg = {calloc(n_head + n_body, sizeof *msg.v), n_head + n_body};
    if (msg.v != NULL) {
        memcpy(msg.v, head, n_head * sizeof *head);
        if (n_body) {
            memcpy(msg.v + n_head, body->v, n_body * sizeof *body->v);
            free(body->v);
            *body = (jp_frames){0};
        }
    }
    if (body) {
        jp_frames_clear(body); /* when out of memory */
    }
    if (msg.v == NULL || wire_out_push(&w->out, &msg) < 0) {
        LOG_E("worker: out of memory sending a message");
        return -1;
    }
    if (wire_out_flush(&w->out, w->sock, 1) < 0) {
        wire_out_clear(&w->out);
        return -1;
    }
    return 0;
}

/* Sends chunks as output messages and frees them. */
static void send_chunks(wstate *w, wout_chunk *c)
{
    static const char *const names[2] = {POOL_STREAM_STDOUT, POOL_STREAM_STDERR};
    while (c) {
        wout_chunk *next = c->next;
        jp_frame out[POOL_OUT_FRAMES] = {
            pool_frame_str(POOL_MSG_OUTPUT),
            pool_frame_of(&c->task, sizeof c->task),
            pool_frame_str(names[c->stream]),
            pool_frame_of(c->data, c->len),
        };
        if (send_frames(w, out, POOL_OUT_FRAMES, NULL) < 0) {
            LOG_D("worker: cannot send output: the kernel is gone");
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
    if (send_frames(w, head, POOL_DONE_PAYLOAD, &r->frames) < 0) {
        LOG_D("worker: cannot send a result: the kernel is gone");
    }
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

/* The main thread, idle, waits on the socket too: when this thread took
 * the message it was waiting for, it must be told.  Called with the lock
 * held. */
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
static void handle_message(wstate *w, jp_frames *in)
{
    const jp_frame *f = in->v;
    job *t = NULL;
    if (in->n >= POOL_TASK_MIN_FRAMES && pool_frame_is(&f[0], POOL_MSG_TASK) &&
        f[POOL_F_TASK_ID].size == sizeof(uint64_t) &&
        (t = calloc(1, sizeof *t)) != NULL) {
        t->id = pool_frame_u64(&f[POOL_F_TASK_ID]);
        if (jp_frames_split(in, POOL_TASK_PAYLOAD, &t->frames) == 0) {
            queue_push(&w->tasks, t);
            wake_main(w);
        } else {
            free(t);
            LOG_E("worker: out of memory for a task");
        }
    } else if (in->n == POOL_CANCEL_FRAMES && pool_frame_is(&f[0], POOL_MSG_CANCEL)) {
        cancel_tasks(w, &f[POOL_CANCEL_MODE], &f[POOL_CANCEL_IDS]);
    } else {
        LOG_W("worker: dropping a malformed message from the kernel");
    }
    jp_frames_clear(in);
}

/* Takes every message there is, without waiting.  Called with the lock
 * held.  Sets gone when the kernel closed its end (or the link broke). */
static void receive_messages(wstate *w)
{
    while (!w->gone) {
        jp_frames in;
        jp_error err = {0};
        wire_rc rc = wire_in_read(&w->in, w->sock, &in, &err);
        if (rc == WIRE_MSG) {
            handle_message(w, &in);
            continue;
        }
        if (rc == WIRE_ERROR) {
            LOG_E("worker: %s", err.text);
        }
        if (rc != WIRE_AGAIN) {
            w->gone = 1;
            wake_main(w);
        }
        return;
    }
}

/* Reads an eventfd or a timerfd that poll said is readable. */
static void consume(int fd)
{
    uint64_t count;
    ssize_t r = read(fd, &count, sizeof count);
    (void)r;
}

/* ------------------------------------------------------ the io thread */

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* The io thread watches the socket once the running task has run
 * IO_WATCH_AFTER_US, not at once: a short task's round trip then wakes the
 * main thread alone (on 2 cores, a second thread woken by each message and
 * waiting for the lock cost more than the transport).  A cancel for a task
 * that runs waits that long at most. */
#define IO_WATCH_AFTER_US 1000

/* The running task has run long enough for the io thread to watch the
 * socket.  Called with the lock held. */
static int watch_due(const wstate *w)
{
    return w->busy && now_us() - w->started_us >= IO_WATCH_AFTER_US;
}

/* Has the timer fire by the time the running task is due to be watched,
 * unless it fires before then already: tasks of a few microseconds each
 * then cost no timer call each, only the io thread's wake-up once per
 * IO_WATCH_AFTER_US, which re-arms it for the task running then.  Called
 * with the lock held. */
static void watch_later(wstate *w)
{
    if (w->io_timer_armed || !w->busy) {
        return;
    }
    uint64_t ran = now_us() - w->started_us;
    uint64_t left = ran < IO_WATCH_AFTER_US ? IO_WATCH_AFTER_US - ran : 1;
    struct itimerspec its = {.it_value = {.tv_nsec = (long)left * 1000L}};
    w->io_timer_armed = timerfd_settime(w->io_timer_fd, 0, &its, NULL) == 0;
}

static void *io_main(void *arg)
{
    wstate *w = arg;
    pthread_mutex_lock(&w->lock);
    jp_frame ready = pool_frame_str(POOL_MSG_READY);
    if (send_frames(w, &ready, 1, NULL) < 0) {
        w->gone = 1;
    }
    pthread_mutex_unlock(&w->lock);
    /* A parent gone (kernel killed) ends the worker even if the
     * parent-death signal was missed and its socket stays open. */
    struct pollfd fds[5] = {
        {.fd = -1, .events = POLLIN}, /* the socket, while watched */
        {.fd = w->output.fd[0], .events = POLLIN},
        {.fd = w->output.fd[1], .events = POLLIN},
        {.fd = w->io_kick_fd, .events = POLLIN},
        {.fd = w->io_timer_fd, .events = POLLIN},
    };
    while (getppid() == w->parent) {
        if (fds[3].revents) {
            consume(w->io_kick_fd);
        }
        if (fds[4].revents) {
            consume(w->io_timer_fd);
        }
        pthread_mutex_lock(&w->lock);
        if (fds[4].revents) {
            w->io_timer_armed = 0;
        }
        if (fds[1].revents || fds[2].revents) {
            send_chunks(w, wout_drain(&w->output, w->running, 0));
        }
        if (fds[0].revents) {
            receive_messages(w);
        }
        /* The socket is the main thread's while it has no task or a short
         * one; this thread takes it over once a task has run a while. */
        w->io_watching = watch_due(w);
        if (!w->io_watching) {
            watch_later(w);
        }
        fds[0].fd = w->io_watching ? w->sock : -1;
        int gone = w->gone;
        pthread_mutex_unlock(&w->lock);
        if (gone || (poll(fds, 5, 1000) < 0 && errno != EINTR)) {
            break;
        }
    }
    pthread_mutex_lock(&w->lock);
    w->gone = 1;
    wake_main(w);
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* ------------------------------------------------------------ the tasks */

/* How long a worker that just became idle spins for its next task before
 * it sleeps (spin.h): a loop of lone submits sends the next one within
 * about 50 us of the last result.  Only after a task shorter than
 * SPIN_AFTER_US: after a longer one the wake-up saved is small beside the
 * task, and the spin's CPU is what the kernel needs then to collect that
 * task's result and send the next (a map's chunks: 1M items in default
 * chunks went 14% slower with a spin after every chunk). */
#define NEXT_TASK_SPIN_US 250
#define SPIN_AFTER_US 1000

/* The next task, or NULL once the kernel is gone; marks it running.  The
 * main thread reads the socket itself between tasks (cancels of queued
 * tasks apply before one of them starts) and, idle, waits on it: the io
 * thread would be one more wake-up on the way. */
static job *next_task(wstate *w)
{
    pthread_mutex_lock(&w->lock);
    receive_messages(w);
    /* Spinning is for the next task of a loop, not the first: a new
     * worker's first wait shares the CPUs with the kernel starting others. */
    long spin = w->running && w->last_run_us < SPIN_AFTER_US ? NEXT_TASK_SPIN_US : 0;
    for (; w->tasks.head == NULL && !w->gone; spin = 0) {
        w->main_waiting = 1;
        pthread_mutex_unlock(&w->lock);
        struct pollfd fds[2] = {
            {.fd = w->sock, .events = POLLIN},
            {.fd = w->main_wake_fd, .events = POLLIN},
        };
        int rc = spin_poll(fds, 2, 1000, spin);
        if (rc > 0 && (fds[1].revents & POLLIN)) {
            consume(w->main_wake_fd);
        }
        pthread_mutex_lock(&w->lock);
        w->main_waiting = 0;
        receive_messages(w);
    }
    job *t = w->gone ? NULL : queue_pop(&w->tasks);
    if (t) {
        /* Under the lock, so that the io thread sends no SIGINT in between:
         * one still pending is an earlier task's, or an idle worker's. */
        pyrt_drop_signals();
        w->running = t->id;
        w->busy = 1;
        w->started_us = now_us();
        __atomic_store_n(&w->status[0], t->id, __ATOMIC_RELEASE);
        watch_later(w);
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
    t->tail = wout_pending(&w->output) ? wout_drain(&w->output, w->running, 1) : NULL;
    w->busy = 0;
    w->last_run_us = t->run_us;
    __atomic_store_n(&w->status[1], t->id, __ATOMIC_RELEASE);
    __atomic_store_n(&w->status[0], 0, __ATOMIC_RELEASE);
    send_result(w, t);
    if (w->io_watching) {
        /* the socket is the main thread's again */
        uint64_t one = 1;
        ssize_t n = write(w->io_kick_fd, &one, sizeof one);
        (void)n;
    }
    pthread_mutex_unlock(&w->lock);
}

static void run_tasks(wstate *w)
{
    job *t;
    while ((t = next_task(w)) != NULL) {
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

/* The link to the kernel: fd, inherited from the pool (procs.c).  Kept
 * from the processes tasks start (close-on-exec), read without blocking
 * (wire.c), written blocking.  0, or -1 when fd is not open. */
static int connect_kernel(wstate *w, int fd)
{
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
        LOG_E("worker: no link to the kernel on fd %d: %s", fd, strerror(errno));
        return -1;
    }
    w->sock = fd;
    wire_in_init(&w->in);
    w->out = (wire_out){0};
    return 0;
}

int worker_serve(int conn_fd, int status_fd, void (*before_tasks)(void))
{
    static wstate w;
    w.parent = getppid();
    w.status = map_status(status_fd);
    pthread_mutex_init(&w.lock, NULL);
    w.main_wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    w.io_kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    w.io_timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (w.status == NULL || w.main_wake_fd < 0 || w.io_kick_fd < 0 || w.io_timer_fd < 0 ||
        connect_kernel(&w, conn_fd) < 0) {
        return 1;
    }
    if (wout_capture(&w.output) < 0) {
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

int worker_run(int conn_fd, const char *runtime_dir, const char *python, int status_fd)
{
    groupwatch_start(); /* before any thread: what tasks start ends with us */
    if (worker_init_python(python, runtime_dir) < 0) {
        return 1;
    }
    return worker_serve(conn_fd, status_fd, NULL);
}
