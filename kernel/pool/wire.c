/* wire.c -- ferry's framing on a stream socket (see wire.h). */
#define _GNU_SOURCE /* MSG_NOSIGNAL */
#include "wire.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

/* The staging buffer: headers and frames smaller than this go through it
 * (one read takes many small messages); larger frames are read into their
 * own memory once the staging buffer is empty. */
#define STAGING (64 * 1024)
#define HEAD_SIZE 8

enum { IN_HEAD, IN_SIZES, IN_BYTES };

static void free_data(void *data, void *hint)
{
    (void)hint;
    free(data);
}

void wire_in_init(wire_in *in)
{
    *in = (wire_in){.state = IN_HEAD};
}

static void reset_message(wire_in *in)
{
    jp_frames_clear(&in->msg);
    free(in->sizes);
    in->sizes = NULL;
    in->n = 0;
    in->cur = in->got = 0;
    in->state = IN_HEAD;
}

void wire_in_clear(wire_in *in)
{
    reset_message(in);
    free(in->buf);
    wire_in_init(in);
}

static size_t unread(const wire_in *in)
{
    return in->end - in->start;
}

/* ------------------------------------------------------------- parsing */

/* The header is buffered: checks it, makes room for the message. */
static wire_rc take_head(wire_in *in, jp_error *err)
{
    const char *h = in->buf + in->start;
    uint32_t n;
    memcpy(&n, h + 4, sizeof n);
    if (memcmp(h, WIRE_MAGIC, 4) != 0 || n == 0 || n > WIRE_MAX_FRAMES) {
        jp_error_set(err, "malformed message header");
        return WIRE_ERROR;
    }
    in->start += HEAD_SIZE;
    in->sizes = malloc(n * sizeof *in->sizes);
    in->msg.v = calloc(n, sizeof *in->msg.v);
    if (in->sizes == NULL || in->msg.v == NULL) {
        jp_error_set(err, "out of memory for a message of %u frames", n);
        return WIRE_ERROR;
    }
    in->n = n;
    in->msg.n = n;
    in->state = IN_SIZES;
    return WIRE_AGAIN;
}

static wire_rc take_sizes(wire_in *in, jp_error *err)
{
    memcpy(in->sizes, in->buf + in->start, in->n * sizeof *in->sizes);
    in->start += in->n * sizeof *in->sizes;
    for (uint32_t i = 0; i < in->n; i++) {
        if (in->sizes[i] > WIRE_MAX_FRAME) {
            jp_error_set(err, "malformed message: a frame of %llu bytes",
                         (unsigned long long)in->sizes[i]);
            return WIRE_ERROR;
        }
    }
    in->state = IN_BYTES;
    return WIRE_AGAIN;
}

/* Gives the current frame its memory when it starts. */
static wire_rc frame_start(wire_in *in, jp_error *err)
{
    jp_frame *f = &in->msg.v[in->cur];
    size_t size = (size_t)in->sizes[in->cur];
    if (f->data == NULL) {
        f->data = malloc(size ? size : 1);
        if (f->data == NULL) {
            jp_error_set(err, "out of memory for a frame of %zu bytes", size);
            return WIRE_ERROR;
        }
        f->size = size;
        f->free_fn = free_data;
    }
    return WIRE_AGAIN;
}

/* Moves buffered bytes into the frames; WIRE_MSG once the last is full. */
static wire_rc fill_frames(wire_in *in, jp_error *err)
{
    while (in->cur < in->n) {
        if (frame_start(in, err) != WIRE_AGAIN) {
            return WIRE_ERROR;
        }
        jp_frame *f = &in->msg.v[in->cur];
        size_t take = f->size - in->got;
        if (take > unread(in)) {
            take = unread(in);
        }
        memcpy((char *)f->data + in->got, in->buf + in->start, take);
        in->start += take;
        in->got += take;
        if (in->got < f->size) {
            return WIRE_AGAIN;
        }
        in->cur++;
        in->got = 0;
    }
    return WIRE_MSG;
}

/* Advances as far as the buffered bytes allow. */
static wire_rc parse(wire_in *in, jp_error *err)
{
    wire_rc rc = WIRE_AGAIN;
    if (in->state == IN_HEAD && unread(in) >= HEAD_SIZE) {
        rc = take_head(in, err);
    }
    if (rc == WIRE_AGAIN && in->state == IN_SIZES &&
        unread(in) >= in->n * sizeof *in->sizes) {
        rc = take_sizes(in, err);
    }
    if (rc == WIRE_AGAIN && in->state == IN_BYTES) {
        rc = fill_frames(in, err);
    }
    return rc;
}

/* ------------------------------------------------------------- reading */

/* Bytes the staging buffer must hold at once for the next step. */
static size_t need_buffered(const wire_in *in)
{
    return in->state == IN_HEAD    ? HEAD_SIZE
           : in->state == IN_SIZES ? in->n * sizeof *in->sizes
                                   : 1;
}

/* Room in the staging buffer for at least need unread bytes: moves the
 * unread bytes to the front and grows it (a header of many frames). */
static int make_room(wire_in *in, size_t need)
{
    if (in->start > 0) {
        memmove(in->buf, in->buf + in->start, unread(in));
        in->end -= in->start;
        in->start = 0;
    }
    size_t want = need > STAGING ? need : STAGING;
    if (in->cap < want) {
        char *grown = realloc(in->buf, want);
        if (grown == NULL) {
            return -1;
        }
        in->buf = grown;
        in->cap = want;
    }
    return 0;
}

/* One read, into the current frame's own memory when it is large and
 * nothing is buffered, else into the staging buffer.  >0 bytes, 0 at EOF,
 * -1 on error (errno). */
static ssize_t read_some(wire_in *in, int fd, jp_error *err)
{
    void *dst;
    size_t len;
    int direct = 0;
    if (in->state == IN_BYTES && unread(in) == 0 &&
        in->sizes[in->cur] - in->got >= STAGING) {
        if (frame_start(in, err) != WIRE_AGAIN) {
            errno = ENOMEM;
            return -1;
        }
        direct = 1;
        dst = (char *)in->msg.v[in->cur].data + in->got;
        len = in->msg.v[in->cur].size - in->got;
    } else {
        if (make_room(in, need_buffered(in)) < 0) {
            errno = ENOMEM;
            return -1;
        }
        dst = in->buf + in->end;
        len = in->cap - in->end;
    }
    ssize_t r;
    do {
        r = recv(fd, dst, len, MSG_DONTWAIT);
    } while (r < 0 && errno == EINTR);
    /* A stream socket's read takes what is queued up to len: less means
     * it is empty now. */
    in->drained = r > 0 && (size_t)r < len;
    if (r > 0 && direct) {
        in->got += (size_t)r;
        if (in->got == in->msg.v[in->cur].size) {
            in->cur++;
            in->got = 0;
        }
    } else if (r > 0) {
        in->end += (size_t)r;
    }
    return r;
}

wire_rc wire_in_read(wire_in *in, int fd, jp_frames *msg, jp_error *err)
{
    *msg = (jp_frames){0};
    for (;;) {
        wire_rc rc = parse(in, err);
        if (rc == WIRE_MSG) {
            *msg = in->msg;
            in->msg = (jp_frames){0};
            reset_message(in);
            return WIRE_MSG;
        }
        if (rc == WIRE_ERROR) {
            reset_message(in);
            return WIRE_ERROR;
        }
        if (in->drained) {
            /* One read less per wake-up of a poll loop: this one would
             * only say EAGAIN. */
            in->drained = 0;
            return WIRE_AGAIN;
        }
        ssize_t r = read_some(in, fd, err);
        if (r == 0) {
            int between = in->state == IN_HEAD && unread(in) == 0;
            if (!between) {
                jp_error_set(err, "the peer closed the link in the middle of a message");
            }
            reset_message(in);
            return between ? WIRE_EOF : WIRE_ERROR;
        }
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return WIRE_AGAIN;
            }
            jp_error_set(err, "cannot read from the link: %s", strerror(errno));
            reset_message(in);
            return WIRE_ERROR;
        }
    }
}

/* ------------------------------------------------------------- writing */

struct wire_msg {
    wire_msg *next;   /* queue link */
    jp_frames frames; /* owned */
    size_t done;      /* bytes of the message written (header included) */
    size_t total;     /* bytes of the message, header included */
    size_t head_len;  /* its header's length */
    char head[];      /* magic, n, sizes */
};

int wire_out_push(wire_out *out, jp_frames *frames)
{
    jp_frames fs = *frames;
    *frames = (jp_frames){0};
    if (fs.n == 0 || fs.n > WIRE_MAX_FRAMES) {
        jp_frames_clear(&fs);
        return -1;
    }
    size_t head_len = HEAD_SIZE + fs.n * sizeof(uint64_t);
    wire_msg *m = malloc(sizeof *m + head_len);
    if (m == NULL) {
        jp_frames_clear(&fs);
        return -1;
    }
    *m = (wire_msg){.frames = fs, .head_len = head_len, .total = head_len};
    uint32_t n = (uint32_t)fs.n;
    memcpy(m->head, WIRE_MAGIC, 4);
    memcpy(m->head + 4, &n, sizeof n);
    for (size_t i = 0; i < fs.n; i++) {
        uint64_t size = fs.v[i].size;
        memcpy(m->head + HEAD_SIZE + i * sizeof size, &size, sizeof size);
        m->total += fs.v[i].size;
    }
    if (out->tail) {
        out->tail->next = m;
    } else {
        out->head = m;
    }
    out->tail = m;
    out->n++;
    return 0;
}

static void msg_free(wire_msg *m)
{
    jp_frames_clear(&m->frames);
    free(m);
}

/* At most this many pieces per sendmsg (well below IOV_MAX): several
 * queued messages go out in one call. */
#define MAX_IOV 64

/* Appends the unwritten pieces of m to iov; returns the new count. */
static int add_pieces(const wire_msg *m, struct iovec *iov, int n)
{
    size_t skip = m->done;
    const char *base = m->head;
    size_t len = m->head_len;
    for (size_t i = 0; n < MAX_IOV; i++) {
        if (skip < len) {
            iov[n++] = (struct iovec){(void *)(base + skip), len - skip};
            skip = 0;
        } else {
            skip -= len;
        }
        if (i == m->frames.n) {
            break;
        }
        base = m->frames.v[i].data;
        len = m->frames.v[i].size;
    }
    return n;
}

/* Marks written bytes off the queue, freeing finished messages. */
static void advance(wire_out *out, size_t written)
{
    while (out->head && written > 0) {
        wire_msg *m = out->head;
        size_t left = m->total - m->done;
        if (written < left) {
            m->done += written;
            return;
        }
        written -= left;
        out->head = m->next;
        if (out->head == NULL) {
            out->tail = NULL;
        }
        out->n--;
        msg_free(m);
    }
}

static int wait_writable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int rc;
    do {
        rc = poll(&p, 1, -1);
    } while (rc < 0 && errno == EINTR);
    return rc < 0 ? -1 : 0;
}

int wire_out_flush(wire_out *out, int fd, int blocking)
{
    while (out->head) {
        struct iovec iov[MAX_IOV];
        int n = 0;
        for (wire_msg *m = out->head; m && n < MAX_IOV; m = m->next) {
            n = add_pieces(m, iov, n);
        }
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL | (blocking ? 0 : MSG_DONTWAIT));
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!blocking) {
                return 0;
            }
            if (wait_writable(fd) < 0) {
                return -1;
            }
            continue;
        }
        if (w < 0) {
            return -1;
        }
        advance(out, (size_t)w);
    }
    return 1;
}

void wire_out_clear(wire_out *out)
{
    while (out->head) {
        wire_msg *m = out->head;
        out->head = m->next;
        msg_free(m);
    }
    *out = (wire_out){0};
}
