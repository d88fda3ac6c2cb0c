/* iopub.c -- the publisher thread: a locked event queue, captured output,
 * stream batching. */
#define _GNU_SOURCE /* pipe2, F_SETPIPE_SZ */
#include "iopub.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "log.h"
#include "utf8.h"

/* Output waits at most this long to be batched with more output. */
#define FLUSH_INTERVAL_MS 5
/* A stream message is sent at once past this much text. */
#define STREAM_MAX (256 * 1024)
#define READ_CHUNK (64 * 1024)

enum event_kind { EV_PUBLISH, EV_SET_PARENT, EV_STREAM, EV_FLUSH, EV_STOP };

typedef struct event {
    enum event_kind kind;     /* what to do */
    char *msg_type;           /* EV_PUBLISH: the message type */
    json_t *content;          /* EV_PUBLISH: content, owned */
    json_t *parent;           /* parent header, owned, or NULL */
    char *text;               /* EV_STREAM: bytes, owned */
    size_t len;               /* EV_STREAM: length of text */
    char name[8];             /* EV_STREAM: "stdout" or "stderr" */
    unsigned long long seq;   /* EV_FLUSH: the ticket to mark done */
    struct event *next;       /* queue link */
} event;

typedef struct capture {
    int fd;                   /* read end of the pipe, -1 when not capturing */
    const char *name;         /* "stdout" or "stderr" */
    unsigned char *buf;       /* bytes read, not yet published */
    size_t len;               /* bytes in buf */
    size_t cap;               /* capacity of buf */
} capture;

struct iopub {
    void *pub;                /* the PUB socket, used only by the thread */
    jp_session *session;      /* signs messages (not owned) */
    pthread_t thread;         /* the publisher */
    int wake_fd;              /* eventfd: the queue is not empty */
    pthread_mutex_t lock;     /* guards the queue and done_seq */
    pthread_cond_t flushed;   /* signalled as flush tickets complete */
    event *head, *tail;       /* the queue */
    unsigned long long next_seq;  /* next flush ticket */
    unsigned long long done_seq;  /* last flush ticket completed */
    json_t *parent;           /* current parent header (thread only) */
    capture out[2];           /* fds 1 and 2 */
    long long deadline_ms;    /* when buffered output must go, 0 = none */
    char topic_prefix[64];    /* "kernel.<session>." */
};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ----------------------------------------------------------- publishing */

static void send_message(iopub *io, json_t *parent, const char *msg_type, json_t *content)
{
    jp_msg holder = {.header = parent};
    jp_msg *m = jp_msg_iopub(io->session, parent ? &holder : NULL, msg_type, content);
    if (m == NULL) {
        LOG_E("iopub: cannot build %s message", msg_type);
        return;
    }
    char topic[128];
    snprintf(topic, sizeof topic, "%s%s", io->topic_prefix, msg_type);
    jp_error err = {0};
    if (jp_send(io->session, io->pub, &m, topic, &err) < 0) {
        LOG_W("iopub: %s", err.text);
    }
}

static void send_stream(iopub *io, json_t *parent, const char *name, const char *text,
                        size_t len)
{
    json_t *content = json_object();
    json_object_set_new(content, "name", json_string(name));
    json_object_set_new(content, "text", json_stringn(text, len));
    send_message(io, parent, "stream", content);
}

/* Publishes the buffered output of c; with final, a cut-off multi-byte
 * sequence at the end is published as U+FFFD rather than kept. */
static void capture_publish(iopub *io, capture *c, int final)
{
    if (c->len == 0) {
        return;
    }
    char *text = malloc(3 * c->len + 1);
    if (text == NULL) {
        return;
    }
    size_t text_len;
    size_t used = utf8_sanitize(c->buf, c->len, final, text, &text_len);
    if (text_len > 0) {
        send_stream(io, io->parent, c->name, text, text_len);
    }
    memmove(c->buf, c->buf + used, c->len - used);
    c->len -= used;
    free(text);
}

/* Reads what the pipe holds now; returns bytes read (0 when empty). */
static size_t capture_read(iopub *io, capture *c)
{
    size_t total = 0;
    for (;;) {
        if (c->cap - c->len < READ_CHUNK) {
            size_t cap = c->cap ? 2 * c->cap : 2 * READ_CHUNK;
            unsigned char *grown = realloc(c->buf, cap);
            if (grown == NULL) {
                return total;
            }
            c->buf = grown;
            c->cap = cap;
        }
        ssize_t n = read(c->fd, c->buf + c->len, READ_CHUNK);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return total;
        }
        c->len += (size_t)n;
        total += (size_t)n;
        if (c->len >= STREAM_MAX) {
            capture_publish(io, c, 0);
        }
    }
}

/* Drains both pipes and publishes everything they held. */
static void capture_flush_all(iopub *io, int final)
{
    for (int i = 0; i < 2; i++) {
        if (io->out[i].fd >= 0) {
            capture_read(io, &io->out[i]);
            capture_publish(io, &io->out[i], final);
        }
    }
    io->deadline_ms = 0;
}

/* ------------------------------------------------------------ the queue */

static void enqueue(iopub *io, event *ev)
{
    pthread_mutex_lock(&io->lock);
    if (ev->kind == EV_FLUSH) {
        ev->seq = ++io->next_seq; /* tickets in queue order */
    }
    if (io->tail) {
        io->tail->next = ev;
    } else {
        io->head = ev;
    }
    io->tail = ev;
    pthread_mutex_unlock(&io->lock);
    uint64_t one = 1;
    ssize_t rc = write(io->wake_fd, &one, sizeof one);
    (void)rc; /* an eventfd write fails only on overflow, and it is awake */
}

static event *event_new(enum event_kind kind)
{
    event *ev = calloc(1, sizeof *ev);
    if (ev == NULL) {
        LOG_E("iopub: out of memory");
        return NULL;
    }
    ev->kind = kind;
    return ev;
}

static void event_free(event *ev)
{
    free(ev->msg_type);
    json_decref(ev->content);
    json_decref(ev->parent);
    free(ev->text);
    free(ev);
}

/* Handles one event; returns 1 to stop the thread. */
static int handle_event(iopub *io, event *ev)
{
    int stop = 0;
    switch (ev->kind) {
    case EV_PUBLISH:
        send_message(io, ev->parent ? ev->parent : io->parent, ev->msg_type, ev->content);
        ev->content = NULL;
        break;
    case EV_SET_PARENT:
        json_decref(io->parent);
        io->parent = ev->parent;
        ev->parent = NULL;
        break;
    case EV_STREAM:
        send_stream(io, ev->parent ? ev->parent : io->parent, ev->name, ev->text, ev->len);
        break;
    case EV_FLUSH:
        pthread_mutex_lock(&io->lock);
        io->done_seq = ev->seq;
        pthread_cond_broadcast(&io->flushed);
        pthread_mutex_unlock(&io->lock);
        break;
    case EV_STOP:
        stop = 1;
        break;
    }
    event_free(ev);
    return stop;
}

/* Runs the queued events in order; returns 1 when told to stop. */
static int run_queue(iopub *io)
{
    uint64_t count;
    ssize_t rc = read(io->wake_fd, &count, sizeof count);
    (void)rc;
    pthread_mutex_lock(&io->lock);
    event *ev = io->head;
    io->head = io->tail = NULL;
    pthread_mutex_unlock(&io->lock);
    int stop = 0;
    while (ev) {
        event *next = ev->next;
        /* Output written before the event was queued is in the pipes now. */
        capture_flush_all(io, ev->kind == EV_FLUSH);
        stop |= handle_event(io, ev);
        ev = next;
    }
    return stop;
}

static void *publisher_main(void *arg)
{
    iopub *io = arg;
    for (;;) {
        zmq_pollitem_t items[3] = {
            {.fd = io->wake_fd, .events = ZMQ_POLLIN},
            {.fd = io->out[0].fd, .events = ZMQ_POLLIN},
            {.fd = io->out[1].fd, .events = ZMQ_POLLIN},
        };
        int n_items = io->out[0].fd >= 0 ? 3 : 1;
        long timeout = -1;
        if (io->deadline_ms) {
            timeout = io->deadline_ms - now_ms();
            if (timeout < 0) {
                timeout = 0;
            }
        }
        int rc = zmq_poll(items, n_items, timeout);
        if (rc < 0 && errno != EINTR) {
            LOG_E("iopub: poll failed: %s", zmq_strerror(errno));
            break;
        }
        for (int i = 1; i < n_items; i++) {
            if ((items[i].revents & ZMQ_POLLIN) && capture_read(io, &io->out[i - 1]) &&
                io->deadline_ms == 0) {
                io->deadline_ms = now_ms() + FLUSH_INTERVAL_MS;
            }
        }
        if (io->deadline_ms && now_ms() >= io->deadline_ms) {
            capture_flush_all(io, 0);
        }
        if ((items[0].revents & ZMQ_POLLIN) && run_queue(io)) {
            break;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------ public API */

static int capture_fd(capture *c, int target, const char *name)
{
    int fds[2];
    c->name = name;
    c->fd = -1;
    if (pipe2(fds, O_CLOEXEC) < 0) {
        return -1;
    }
    /* A larger pipe lets a chatty cell run ahead of the publisher. */
    (void)fcntl(fds[1], F_SETPIPE_SZ, 1 << 20);
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    if (dup2(fds[1], target) < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    close(fds[1]);
    c->fd = fds[0];
    return 0;
}

iopub *iopub_new(void *ctx, const char *endpoint, jp_session *s, int capture_output,
                 jp_error *err)
{
    iopub *io = calloc(1, sizeof *io);
    if (io == NULL) {
        jp_error_set(err, "out of memory");
        return NULL;
    }
    io->session = s;
    io->out[0].fd = io->out[1].fd = -1;
    snprintf(io->topic_prefix, sizeof io->topic_prefix, "kernel.%s.", jp_session_id(s));
    pthread_mutex_init(&io->lock, NULL);
    pthread_cond_init(&io->flushed, NULL);
    io->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    io->pub = zmq_socket(ctx, ZMQ_PUB);
    int linger = 1000;
    if (io->wake_fd < 0 || io->pub == NULL ||
        zmq_setsockopt(io->pub, ZMQ_LINGER, &linger, sizeof linger) < 0 ||
        zmq_bind(io->pub, endpoint) < 0) {
        jp_error_set(err, "cannot bind iopub on %s: %s", endpoint, zmq_strerror(errno));
        goto fail;
    }
    if (capture_output && (capture_fd(&io->out[0], 1, "stdout") < 0 ||
                    capture_fd(&io->out[1], 2, "stderr") < 0)) {
        jp_error_set(err, "cannot capture output: %s", strerror(errno));
        goto fail;
    }
    if (pthread_create(&io->thread, NULL, publisher_main, io) != 0) {
        jp_error_set(err, "cannot start the iopub thread");
        goto fail;
    }
    return io;
fail:
    if (io->pub) {
        zmq_close(io->pub);
    }
    if (io->wake_fd >= 0) {
        close(io->wake_fd);
    }
    free(io);
    return NULL;
}

void iopub_destroy(iopub **iop)
{
    if (iop == NULL || *iop == NULL) {
        return;
    }
    iopub *io = *iop;
    event *ev = event_new(EV_STOP);
    if (ev) {
        enqueue(io, ev);
        pthread_join(io->thread, NULL);
    }
    zmq_close(io->pub);
    close(io->wake_fd);
    for (int i = 0; i < 2; i++) {
        if (io->out[i].fd >= 0) {
            close(io->out[i].fd);
        }
        free(io->out[i].buf);
    }
    json_decref(io->parent);
    pthread_mutex_destroy(&io->lock);
    pthread_cond_destroy(&io->flushed);
    free(io);
    *iop = NULL;
}

void iopub_set_parent(iopub *io, const jp_msg *parent)
{
    event *ev = event_new(EV_SET_PARENT);
    if (ev == NULL) {
        return;
    }
    ev->parent = parent && parent->header ? json_deep_copy(parent->header) : NULL;
    enqueue(io, ev);
}

void iopub_publish_under(iopub *io, json_t *parent_header, const char *msg_type,
                         json_t *steal_content)
{
    event *ev = event_new(EV_PUBLISH);
    if (ev == NULL || (ev->msg_type = strdup(msg_type)) == NULL) {
        json_decref(steal_content);
        free(ev);
        return;
    }
    ev->content = steal_content;
    ev->parent = parent_header ? json_deep_copy(parent_header) : NULL;
    enqueue(io, ev);
}

void iopub_publish(iopub *io, const char *msg_type, json_t *steal_content)
{
    iopub_publish_under(io, NULL, msg_type, steal_content);
}

void iopub_status(iopub *io, const char *state)
{
    iopub_publish(io, "status", json_pack("{s:s}", "execution_state", state));
}

void iopub_stream(iopub *io, json_t *parent_header, const char *name, const char *text,
                  size_t len)
{
    event *ev = event_new(EV_STREAM);
    if (ev == NULL) {
        return;
    }
    ev->text = malloc(3 * len + 1);
    if (ev->text == NULL) {
        free(ev);
        return;
    }
    utf8_sanitize((const unsigned char *)text, len, 1, ev->text, &ev->len);
    snprintf(ev->name, sizeof ev->name, "%s", name);
    ev->parent = parent_header ? json_deep_copy(parent_header) : NULL;
    enqueue(io, ev);
}

void iopub_flush(iopub *io)
{
    event *ev = event_new(EV_FLUSH);
    if (ev == NULL) {
        return;
    }
    enqueue(io, ev);
    pthread_mutex_lock(&io->lock);
    unsigned long long seq = io->next_seq; /* ours, or a later one */
    while (io->done_seq < seq) {
        pthread_cond_wait(&io->flushed, &io->lock);
    }
    pthread_mutex_unlock(&io->lock);
}
