/* worker.c -- a pool worker: an embedded interpreter that runs tasks.
 *
 * Two threads.  The io thread owns the one DEALER socket and the pipes that
 * replace fds 1 and 2: it receives tasks, streams the task's output back,
 * and sends results, draining the pipes first so a task's last print comes
 * before its result.  The main thread initialised Python, so SIGINT (the
 * kernel's way to interrupt a task) raises KeyboardInterrupt in the task. */
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
#include <sys/eventfd.h>
#include <unistd.h>

#include <zmq.h>

#include "log.h"
#include "paths.h"
#include "pyrt.h"

typedef struct job {
    uint64_t id;      /* task id */
    jp_frame *frames; /* task: payload + buffers; result: the same */
    size_t n;         /* number of frames */
    int ok;           /* result: 1 ok, 0 error */
} job;

typedef struct wstate {
    void *zctx;               /* context */
    void *sock;               /* DEALER, io thread only */
    int out_fd[2];            /* read ends of the stdout / stderr pipes */
    char carry[2][4];         /* an unfinished UTF-8 character at a read's end */
    size_t n_carry[2];        /* its length */
    int result_fd;            /* eventfd: a result is ready */
    pthread_mutex_t lock;     /* guards task / result */
    pthread_cond_t task_cond; /* a task arrived */
    job task;                 /* the task to run (frames NULL when none) */
    int has_task;             /* task is valid */
    job result;               /* the result to send */
    int has_result;           /* result is valid */
    uint64_t running;         /* id of the task being run, for output frames */
    int gone;                 /* the kernel went away: stop */
    pid_t parent;             /* the kernel; another parent means it died */
} wstate;

static void send_parts(void *sock, const void *const *data, const size_t *len, size_t n,
                       int more_after)
{
    for (size_t i = 0; i < n; i++) {
        int flags = (i + 1 < n || more_after) ? ZMQ_SNDMORE : 0;
        while (zmq_send(sock, data[i], len[i], flags) < 0 && errno == EINTR) {
        }
    }
}

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

/* Sends what the pipes hold as "out" frames for the running task; with
 * final, also a character left unfinished (the task is over). */
static void drain_output(wstate *w, int final)
{
    static const char *const names[2] = {"stdout", "stderr"};
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
            size_t send = n > 0 ? utf8_complete((unsigned char *)buf, total) : 0;
            if (n <= 0 && final) {
                send = total;
            }
            w->n_carry[i] = total - send;
            memcpy(w->carry[i], buf + send, total - send);
            if (send > 0) {
                const void *data[4] = {"out", &w->running, names[i], buf};
                size_t len[4] = {3, sizeof w->running, strlen(names[i]), send};
                send_parts(w->sock, data, len, 4, 0);
            }
            if (n <= 0) {
                break;
            }
        }
    }
}

/* Hands a frame's memory to ZeroMQ without a copy when the frame owns it;
 * the frame is cleared either way. */
static void send_frame(void *sock, jp_frame *f, int flags)
{
    zmq_msg_t m;
    if (f->free_fn != NULL && f->size > 0 &&
        zmq_msg_init_data(&m, f->data, f->size, f->free_fn, f->hint) == 0) {
        memset(f, 0, sizeof *f); /* ZeroMQ frees it once sent */
    } else if (zmq_msg_init_size(&m, f->size) == 0) {
        memcpy(zmq_msg_data(&m), f->data, f->size);
        jp_frame_clear(f);
    } else {
        jp_frame_clear(f);
        return;
    }
    while (zmq_msg_send(&m, sock, flags) < 0 && errno == EINTR) {
    }
    zmq_msg_close(&m); /* no-op after a successful send */
}

static void send_result(wstate *w)
{
    pthread_mutex_lock(&w->lock);
    if (!w->has_result) {
        pthread_mutex_unlock(&w->lock);
        return;
    }
    job r = w->result;
    w->has_result = 0;
    pthread_mutex_unlock(&w->lock);
    drain_output(w, 1);
    const char *status = r.ok ? "ok" : "error";
    const void *data[3] = {"done", &r.id, status};
    size_t len[3] = {4, sizeof r.id, strlen(status)};
    send_parts(w->sock, data, len, 3, r.n > 0);
    for (size_t i = 0; i < r.n; i++) {
        send_frame(w->sock, &r.frames[i], i + 1 < r.n ? ZMQ_SNDMORE : 0);
    }
    free(r.frames);
}

/* ["task", id, payload, buffer...]: hands the task to the main thread. */
static void receive_task(wstate *w)
{
    jp_frame *f = NULL;
    size_t n = 0;
    if (jp_recv_frames(w->sock, 0, &f, &n) < 0) {
        LOG_E("worker: cannot receive a task: %s", strerror(errno));
        return;
    }
    if (n >= 3 && f[0].size == 4 && memcmp(f[0].data, "task", 4) == 0 &&
        f[1].size == sizeof(uint64_t)) {
        job t = {0};
        memcpy(&t.id, f[1].data, sizeof t.id);
        t.n = n - 2;
        t.frames = malloc(t.n * sizeof *t.frames);
        if (t.frames != NULL) {
            memcpy(t.frames, f + 2, t.n * sizeof *t.frames);
            memset(f + 2, 0, t.n * sizeof *t.frames);
            pthread_mutex_lock(&w->lock);
            w->task = t;
            w->has_task = 1;
            w->running = t.id;
            pthread_cond_signal(&w->task_cond);
            pthread_mutex_unlock(&w->lock);
        }
    } else if (n > 0) {
        LOG_W("worker: dropping a malformed message from the kernel");
    }
    for (size_t i = 0; i < n; i++) {
        jp_frame_clear(&f[i]);
    }
    free(f);
}

static void *io_main(void *arg)
{
    wstate *w = arg;
    const void *ready = "ready";
    size_t ready_len = 5;
    send_parts(w->sock, &ready, &ready_len, 1, 0);
    for (;;) {
        zmq_pollitem_t items[4] = {
            {.socket = w->sock, .events = ZMQ_POLLIN},
            {.fd = w->result_fd, .events = ZMQ_POLLIN},
            {.fd = w->out_fd[0], .events = ZMQ_POLLIN},
            {.fd = w->out_fd[1], .events = ZMQ_POLLIN},
        };
        /* A parent gone (kernel killed) ends the worker even if the
         * parent-death signal was missed. */
        if (getppid() != w->parent) {
            break;
        }
        int rc = zmq_poll(items, 4, 1000);
        if (rc < 0 && errno != EINTR) {
            break;
        }
        if (items[2].revents || items[3].revents) {
            drain_output(w, 0);
        }
        if (items[1].revents & ZMQ_POLLIN) {
            uint64_t c;
            ssize_t r = read(w->result_fd, &c, sizeof c);
            (void)r;
            send_result(w);
        }
        if (items[0].revents & ZMQ_POLLIN) {
            receive_task(w);
        }
    }
    pthread_mutex_lock(&w->lock);
    w->gone = 1;
    pthread_cond_signal(&w->task_cond);
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

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

static void run_tasks(wstate *w)
{
    for (;;) {
        pthread_mutex_lock(&w->lock);
        while (!w->has_task && !w->gone) {
            pthread_cond_wait(&w->task_cond, &w->lock);
        }
        if (w->gone) {
            pthread_mutex_unlock(&w->lock);
            return;
        }
        job t = w->task;
        w->has_task = 0;
        pthread_mutex_unlock(&w->lock);
        job r = {.id = t.id};
        jp_error err = {0};
        int rc = pyrt_call_frames("run_task", t.frames, t.n, &r.frames, &r.n, &err);
        free(t.frames); /* the frames themselves went to Python */
        if (rc < 0) {
            LOG_E("worker: %s", err.text);
            _exit(70); /* the kernel reports the crash with this code */
        }
        r.ok = rc;
        /* Output of C code in the task sits in stdio's buffers (the fds are
         * pipes): out it goes, before the result. */
        fflush(NULL);
        pthread_mutex_lock(&w->lock);
        w->result = r;
        w->has_result = 1;
        pthread_mutex_unlock(&w->lock);
        uint64_t one = 1;
        ssize_t n = write(w->result_fd, &one, sizeof one);
        (void)n;
    }
}

static void no_publish(void *ctx, const char *msg_type, json_t *content)
{
    (void)ctx;
    (void)msg_type;
    json_decref(content);
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

int worker_run(const char *endpoint, const char *python)
{
    static wstate w;
    w.parent = getppid();
    char package_dir[PATH_MAX], runtime_dir[PATH_MAX];
    /* The endpoint is ipc://RUNTIME_DIR/pool-N. */
    snprintf(runtime_dir, sizeof runtime_dir, "%s",
             strncmp(endpoint, "ipc://", 6) == 0 ? endpoint + 6 : ".");
    char *slash = strrchr(runtime_dir, '/');
    if (slash) {
        *slash = '\0';
    }
    pthread_mutex_init(&w.lock, NULL);
    pthread_cond_init(&w.task_cond, NULL);
    w.result_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    w.zctx = zmq_ctx_new();
    w.sock = zmq_socket(w.zctx, ZMQ_DEALER);
    char ident[32];
    int len = snprintf(ident, sizeof ident, "w%d", (int)getpid());
    int linger = 2000;
    if (w.sock == NULL ||
        zmq_setsockopt(w.sock, ZMQ_ROUTING_ID, ident, (size_t)len) < 0 ||
        zmq_setsockopt(w.sock, ZMQ_LINGER, &linger, sizeof linger) < 0 ||
        zmq_connect(w.sock, endpoint) < 0) {
        LOG_E("worker: cannot connect to %s: %s", endpoint, zmq_strerror(errno));
        return 1;
    }
    if (capture(1, &w.out_fd[0]) < 0 || capture(2, &w.out_fd[1]) < 0 ||
        paths_package_dir(package_dir, sizeof package_dir) < 0) {
        LOG_E("worker: cannot set up output capture or find the ferry package");
        return 1;
    }
    /* Only the main thread takes SIGINT; the io thread inherits the block. */
    sigset_t sigint;
    sigemptyset(&sigint);
    sigaddset(&sigint, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigint, NULL);
    jp_error err = {0};
    pyrt_config cfg = {
        .python = python,
        .package_dir = package_dir,
        .runtime_dir = runtime_dir,
        .role = "worker",
        .hooks = {.ctx = &w, .publish = no_publish, .write = NULL, .input = no_input},
    };
    if (pyrt_init(&cfg, &err) < 0) {
        LOG_E("worker: %s", err.text);
        return 1;
    }
    pthread_t io;
    if (pthread_create(&io, NULL, io_main, &w) != 0) {
        return 1;
    }
    pthread_sigmask(SIG_UNBLOCK, &sigint, NULL);
    run_tasks(&w);
    /* The kernel is gone; nothing to flush to. */
    _exit(0);
}
