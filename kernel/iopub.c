/* iopub.c -- the publisher thread: a locked event queue, stream batching,
 * the API.  The capture pipes are iopub_capture.c's, giving memory back
 * after a huge output iopub_heap.c's. */
#include "iopub.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "iopub_int.h"
#include "log.h"
#include "utf8.h"

/* ----------------------------------------------------------- publishing */

/* Sends a message; content and metadata (may be NULL) are stolen, buffers
 * taken over (entries zeroed). */
static void send_message_with(iopub *io, json_t *parent, const char *msg_type,
                              json_t *content, json_t *metadata, jp_frame *buffers,
                              size_t n_buffers)
{
    jp_msg holder = {.header = parent};
    jp_msg *m = jp_msg_iopub(io->session, parent ? &holder : NULL, msg_type, content);
    if (m != NULL && metadata != NULL) {
        json_decref(m->metadata);
        m->metadata = metadata;
        metadata = NULL;
    }
    for (size_t i = 0; m != NULL && i < n_buffers; i++) {
        if (jp_msg_add_buffer(m, &buffers[i]) < 0) {
            jp_msg_destroy(&m);
        }
    }
    json_decref(metadata);
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

static void send_message(iopub *io, json_t *parent, const char *msg_type, json_t *content)
{
    send_message_with(io, parent, msg_type, content, NULL, NULL, 0);
}

static void send_stream(iopub *io, json_t *parent, const char *name, const char *text,
                        size_t len)
{
    json_t *content = json_object();
    json_object_set_new(content, "name", json_string(name));
    json_object_set_new(content, "text", json_stringn(text, len));
    send_message(io, parent, "stream", content);
}

static void stream_publish(iopub *io)
{
    if (io->stream.len) {
        send_stream(io, io->parent, io->stream.name, io->stream.text, io->stream.len);
        io->stream.len = 0;
        iopub_shrink_buffer(io, (void **)&io->stream.text, &io->stream.cap, 0);
    }
}

/* Adds text to the batch; text of the other stream first publishes the
 * batch, so stdout and stderr keep their order. */
void iopub_stream_append(iopub *io, const char *name, const char *text, size_t len)
{
    stream_buf *s = &io->stream;
    if (len == 0) {
        return;
    }
    if (s->len && strcmp(s->name, name) != 0) {
        stream_publish(io);
    }
    if (s->cap - s->len < len) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap - s->len < len) {
            cap *= 2;
        }
        char *grown = realloc(s->text, cap);
        if (grown == NULL) {
            LOG_E("iopub: out of memory; output dropped");
            return;
        }
        s->text = grown;
        s->cap = cap;
    }
    memcpy(s->text + s->len, text, len);
    s->len += len;
    snprintf(s->name, sizeof s->name, "%s", name);
    if (s->len >= STREAM_MAX) {
        stream_publish(io);
    }
    if (io->deadline_ms == 0) {
        io->deadline_ms = iopub_now_ms() + FLUSH_INTERVAL_MS;
    }
}

/* ------------------------------------------------------------ the queue */

/* Wakes the publisher to run the queue now; one wake-up per batch of
 * events. */
static void wake(iopub *io)
{
    if (!atomic_exchange(&io->wake_pending, 1)) {
        uint64_t one = 1;
        ssize_t rc = write(io->wake_fd, &one, sizeof one);
        (void)rc;
    }
}

/* Writes are the hot path and need not go out at once: the first write of
 * a batch wakes the publisher, which arms the batch timer; the writes after
 * it only join the queue, which the publisher takes when the timer fires
 * (or earlier, with any other event).  The flag is read after the write is
 * queued and cleared before the publisher takes the queue, so a write
 * either is taken or sees the flag clear and wakes it. */
static void wake_for_write(iopub *io)
{
    if (!atomic_load(&io->writes_due) && !atomic_exchange(&io->writes_due, 1)) {
        wake(io);
    }
}

/* Appends ev to the queue, called with io->lock held. */
static void append_locked(iopub *io, event *ev)
{
    if (io->tail) {
        io->tail->next = ev;
    } else {
        io->head = ev;
    }
    io->tail = ev;
}

/* Queues ev with the pipe marks taken now; returns its flush ticket
 * (tickets follow queue order). */
static unsigned long long enqueue(iopub *io, event *ev)
{
    int ready[2];
    iopub_pipes_ready(io, ready);
    pthread_mutex_lock(&io->lock);
    iopub_take_marks_locked(io, ready, ev->marks);
    unsigned long long ticket = ev->kind == EV_FLUSH ? ++io->next_seq : 0;
    append_locked(io, ev);
    pthread_mutex_unlock(&io->lock);
    wake(io);
    return ticket;
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
    json_decref(ev->metadata);
    for (size_t i = 0; i < ev->n_buffers; i++) {
        jp_frame_clear(&ev->buffers[i]);
    }
    free(ev->buffers);
    json_decref(ev->parent);
    free(ev->text);
    free(ev);
}

/* Handles one event; returns 1 to stop the thread. */
static int handle_event(iopub *io, event *ev)
{
    int stop = 0;
    iopub_release_marks(io, ev->marks, ev->kind == EV_FLUSH);
    if (ev->kind == EV_WRITE) {
        iopub_stream_append(io, ev->name, ev->text, ev->len);
        event_free(ev);
        return 0;
    }
    stream_publish(io);
    switch (ev->kind) {
    case EV_PUBLISH:
        send_message_with(io, ev->parent ? ev->parent : io->parent, ev->msg_type,
                          ev->content, ev->metadata, ev->buffers, ev->n_buffers);
        ev->content = ev->metadata = NULL;
        break;
    case EV_SET_PARENT:
        json_decref(io->parent);
        io->parent = ev->parent;
        ev->parent = NULL;
        break;
    case EV_STREAM:
        send_stream(io, ev->parent ? ev->parent : io->parent, ev->name, ev->text,
                    ev->len);
        break;
    case EV_FLUSH:
        pthread_mutex_lock(&io->lock);
        io->done_seq++;
        pthread_cond_broadcast(&io->flushed);
        pthread_mutex_unlock(&io->lock);
        break;
    case EV_STOP:
        stop = 1;
        break;
    case EV_WRITE:
        break;
    }
    event_free(ev);
    return stop;
}

static event *take_queue(iopub *io)
{
    /* Consume the wake-up before clearing the flag: the other way round, a
     * producer that sets the flag between the two would have its wake-up
     * read here while its event lands after the swap below, and the next
     * producer, seeing the flag set, would not write one: a lost wake-up. */
    uint64_t count;
    ssize_t rc = read(io->wake_fd, &count, sizeof count);
    (void)rc;
    atomic_store(&io->wake_pending, 0);
    pthread_mutex_lock(&io->lock);
    event *ev = io->head;
    io->head = io->tail = NULL;
    pthread_mutex_unlock(&io->lock);
    return ev;
}

/* Runs the queued events in order; returns 1 when told to stop. */
static int run_queue(iopub *io)
{
    int stop = 0;
    for (event *ev = take_queue(io), *next; ev; ev = next) {
        next = ev->next;
        stop |= handle_event(io, ev);
    }
    return stop;
}

static int queue_empty(iopub *io)
{
    pthread_mutex_lock(&io->lock);
    int empty = io->head == NULL;
    pthread_mutex_unlock(&io->lock);
    return empty;
}

/* Publishes the batch when it has waited long enough.  Queued events go
 * first: their marks say which captured bytes belong to which parent. */
static int flush_due(iopub *io)
{
    if (io->deadline_ms == 0 || iopub_now_ms() < io->deadline_ms) {
        return 0;
    }
    atomic_store(&io->writes_due, 0); /* before looking at the queue */
    if (!queue_empty(io)) {
        return run_queue(io);
    }
    /* Nothing queued: every captured byte was written under the current
     * parent (a new parent would have been queued before its output). */
    uint64_t all[2] = {io->out[0].bytes_read, io->out[1].bytes_read};
    iopub_release_marks(io, all, 0);
    stream_publish(io);
    io->deadline_ms = 0;
    return 0;
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
            timeout = io->deadline_ms - iopub_now_ms();
            timeout = timeout < 0 ? 0 : timeout;
        }
        if (io->trim_ms) {
            long trim_in = io->trim_ms - iopub_now_ms();
            trim_in = trim_in < 0 ? 0 : trim_in;
            timeout = timeout < 0 || trim_in < timeout ? trim_in : timeout;
        }
        int rc = zmq_poll(items, n_items, timeout);
        if (rc < 0 && errno != EINTR) {
            LOG_E("iopub: poll failed: %s", zmq_strerror(errno));
            break;
        }
        for (int i = 1; i < n_items; i++) {
            if (items[i].revents & ZMQ_POLLIN) {
                iopub_capture_read(io, &io->out[i - 1]);
            }
        }
        if ((items[0].revents & ZMQ_POLLIN) && run_queue(io)) {
            break;
        }
        if (io->deadline_ms == 0 && atomic_load(&io->writes_due)) {
            /* Writes wait for the timer (wake_for_write): keep it armed. */
            io->deadline_ms = iopub_now_ms() + FLUSH_INTERVAL_MS;
        }
        if (flush_due(io)) {
            break;
        }
        iopub_trim_if_due(io);
    }
    return NULL;
}

/* ------------------------------------------------------------ public API */

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
    io->ready_fd = -1;
    snprintf(io->topic_prefix, sizeof io->topic_prefix, "kernel.%s.", jp_session_id(s));
    pthread_mutex_init(&io->lock, NULL);
    pthread_cond_init(&io->flushed, NULL);
    io->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    io->pub = zmq_socket(ctx, ZMQ_PUB);
    int linger = 1000;
    /* No high-water mark: at one (ZeroMQ's default, 1000 messages) a PUB
     * socket drops what a subscriber has not taken yet, and a client that
     * reads iopub late (a burst of requests, a cell publishing fast) loses
     * messages, a request's idle among them, and waits for it forever.
     * What queues here is what connected clients have not read; a client
     * that disconnects takes its queue with it. */
    int hwm = 0;
    if (io->wake_fd < 0 || io->pub == NULL ||
        zmq_setsockopt(io->pub, ZMQ_LINGER, &linger, sizeof linger) < 0 ||
        zmq_setsockopt(io->pub, ZMQ_SNDHWM, &hwm, sizeof hwm) < 0 ||
        zmq_bind(io->pub, endpoint) < 0) {
        jp_error_set(err, "cannot bind iopub on %s: %s", endpoint, zmq_strerror(errno));
        goto fail;
    }
    if (capture_output && (iopub_capture_open(&io->out[0], 1, "stdout") < 0 ||
                           iopub_capture_open(&io->out[1], 2, "stderr") < 0)) {
        jp_error_set(err, "cannot capture output: %s", strerror(errno));
        goto fail;
    }
    if (capture_output && (io->ready_fd = iopub_ready_set_new(io->out)) < 0) {
        jp_error_set(err, "cannot watch the output pipes: %s", strerror(errno));
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
    if (io->ready_fd >= 0) {
        close(io->ready_fd);
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
    if (io->ready_fd >= 0) {
        close(io->ready_fd);
    }
    for (int i = 0; i < 2; i++) {
        if (io->out[i].fd >= 0) {
            close(io->out[i].fd);
        }
        free(io->out[i].raw);
    }
    free(io->stream.text);
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

void iopub_publish_with(iopub *io, const char *msg_type, json_t *steal_content,
                        json_t *steal_metadata, jp_frame *buffers, size_t n_buffers)
{
    event *ev = event_new(EV_PUBLISH);
    jp_frame *owned = n_buffers ? calloc(n_buffers, sizeof *owned) : NULL;
    if (ev == NULL || (ev->msg_type = strdup(msg_type)) == NULL ||
        (n_buffers && owned == NULL)) {
        json_decref(steal_content);
        json_decref(steal_metadata);
        for (size_t i = 0; i < n_buffers; i++) {
            jp_frame_clear(&buffers[i]);
        }
        free(owned);
        if (ev) {
            free(ev->msg_type);
        }
        free(ev);
        return;
    }
    for (size_t i = 0; i < n_buffers; i++) {
        owned[i] = buffers[i];
        buffers[i] = (jp_frame){0};
    }
    ev->content = steal_content;
    ev->metadata = steal_metadata;
    ev->buffers = owned;
    ev->n_buffers = n_buffers;
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

static void queue_text(iopub *io, enum event_kind kind, json_t *parent_header,
                       const char *name, const char *text, size_t len)
{
    event *ev = event_new(kind);
    if (ev == NULL) {
        return;
    }
    ev->text = malloc(3 * len + 1);
    if (ev->text == NULL) {
        free(ev);
        return;
    }
    utf8_sanitize((const unsigned char *)text, len, 1, ev->text, &ev->len);
    snprintf(ev->name, sizeof ev->name, "%s",
             strcmp(name, "stderr") ? "stdout" : "stderr");
    ev->parent = parent_header ? json_deep_copy(parent_header) : NULL;
    enqueue(io, ev);
}

void iopub_stream(iopub *io, json_t *parent_header, const char *name, const char *text,
                  size_t len)
{
    queue_text(io, EV_STREAM, parent_header, name, text, len);
}

/* Makes room for len more bytes of text in a write event, doubling. */
static int text_reserve(event *ev, size_t len)
{
    if (ev->cap - ev->len >= len) {
        return 0;
    }
    size_t cap = ev->cap ? ev->cap : 256;
    while (cap - ev->len < len) {
        cap *= 2;
    }
    char *grown = realloc(ev->text, cap);
    if (grown == NULL) {
        return -1;
    }
    ev->text = grown;
    ev->cap = cap;
    return 0;
}

/* Appends to the queue's last event when it is a write to the same stream
 * with the same pipe marks (nothing was captured in between), so a burst of
 * prints costs one event.  Called with io->lock held; returns 1 when it
 * did. */
static int coalesce_locked(iopub *io, const char *stream, const char *text, size_t len,
                           const uint64_t marks[2])
{
    event *t = io->tail;
    if (t && t->kind == EV_WRITE && strcmp(t->name, stream) == 0 &&
        t->marks[0] == marks[0] && t->marks[1] == marks[1] && t->len + len < STREAM_MAX &&
        text_reserve(t, len) == 0) {
        memcpy(t->text + t->len, text, len);
        t->len += len;
        return 1;
    }
    return 0;
}

/* A write event holding a copy of text, or NULL. */
static event *write_event_new(const char *stream, const char *text, size_t len)
{
    event *ev = event_new(EV_WRITE);
    if (ev == NULL || text_reserve(ev, len) < 0) {
        free(ev);
        return NULL;
    }
    memcpy(ev->text, text, len);
    ev->len = len;
    snprintf(ev->name, sizeof ev->name, "%s", stream);
    return ev;
}

void iopub_write(iopub *io, const char *name, const char *text, size_t len)
{
    /* Text from Python's streams is valid UTF-8 already (str encoded). */
    const char *stream = strcmp(name, "stderr") ? "stdout" : "stderr";
    uint64_t marks[2];
    int ready[2];
    iopub_pipes_ready(io, ready);
    pthread_mutex_lock(&io->lock);
    iopub_take_marks_locked(io, ready, marks);
    if (!coalesce_locked(io, stream, text, len, marks)) {
        event *ev = write_event_new(stream, text, len);
        if (ev) {
            memcpy(ev->marks, marks, sizeof marks);
            append_locked(io, ev);
        }
    }
    pthread_mutex_unlock(&io->lock);
    wake_for_write(io);
}

void iopub_flush(iopub *io)
{
    event *ev = event_new(EV_FLUSH);
    if (ev == NULL) {
        return;
    }
    unsigned long long seq = enqueue(io, ev);
    pthread_mutex_lock(&io->lock);
    while (io->done_seq < seq) {
        pthread_cond_wait(&io->flushed, &io->lock);
    }
    pthread_mutex_unlock(&io->lock);
}
