/* iopub_int.h -- the publisher's insides, shared by its two files:
 * iopub.c (the queue, the thread, the API, publishing) and iopub_capture.c
 * (the pipes that replace fds 1 and 2: byte marks and their release).
 * Not for other files: they use iopub.h. */
#ifndef FERRY_IOPUB_INT_H
#define FERRY_IOPUB_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "iopub.h"

/* Output waits at most this long to be batched with more output. */
#define FLUSH_INTERVAL_MS 5
/* A stream message is sent at once past this much text. */
#define STREAM_MAX (256 * 1024)
#define READ_CHUNK (64 * 1024)

enum event_kind { EV_PUBLISH, EV_SET_PARENT, EV_WRITE, EV_STREAM, EV_FLUSH, EV_STOP };

typedef struct event {
    enum event_kind kind; /* what to do */
    uint64_t marks[2];    /* pipe byte counts when queued */
    char *msg_type;       /* EV_PUBLISH: the message type */
    json_t *content;      /* EV_PUBLISH: content, owned */
    json_t *metadata;     /* EV_PUBLISH: metadata, owned, or NULL */
    jp_frame *buffers;    /* EV_PUBLISH: binary buffers, owned, or NULL */
    size_t n_buffers;     /* EV_PUBLISH: number of buffers */
    json_t *parent;       /* parent header, owned, or NULL */
    char *text;           /* EV_WRITE, EV_STREAM: valid UTF-8, owned */
    size_t len;           /* length of text */
    size_t cap;           /* EV_WRITE: capacity of text, for appends */
    char name[8];         /* EV_WRITE, EV_STREAM: "stdout" or "stderr" */
    struct event *next;   /* queue link */
} event;

typedef struct capture {
    int fd;              /* read end of the pipe, -1 when not capturing */
    const char *name;    /* "stdout" or "stderr" */
    unsigned char *raw;  /* bytes read, not yet released */
    size_t raw_len;      /* bytes in raw */
    size_t raw_cap;      /* capacity of raw */
    uint64_t bytes_read; /* total read from the pipe (under the queue lock) */
} capture;

typedef struct stream_buf {
    char name[8]; /* stream the text belongs to */
    char *text;   /* valid UTF-8, not yet published */
    size_t len;   /* bytes in text */
    size_t cap;   /* capacity of text */
} stream_buf;

struct iopub {
    void *pub;                   /* the PUB socket, used only by the thread */
    jp_session *session;         /* signs messages (not owned) */
    pthread_t thread;            /* the publisher */
    int wake_fd;                 /* eventfd: the queue is not empty */
    atomic_int wake_pending;     /* a wake-up is already on its way */
    atomic_int writes_due;       /* writes are queued and the batch timer is armed */
    pthread_mutex_t lock;        /* guards the queue, tickets, pipe reads */
    pthread_cond_t flushed;      /* signalled as flush tickets complete */
    event *head, *tail;          /* the queue */
    unsigned long long next_seq; /* last flush ticket handed out */
    unsigned long long done_seq; /* flush tickets completed */
    capture out[2];              /* fds 1 and 2 */
    int ready_fd;                /* epoll set of the two pipes, for pipes_ready */
    stream_buf stream;           /* batched text under the current parent */
    json_t *parent;              /* current parent header (thread only) */
    long long deadline_ms;       /* when batched output must go, 0 = none */
    long long trim_ms;           /* when to trim the heap again, 0 = none */
    long long trim_delay_ms;     /* the interval before that trim (doubles) */
    char topic_prefix[64];       /* "kernel.<session>." */
};

static inline long long iopub_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* iopub.c: adds text to the stream batch (publisher thread only). */
void iopub_stream_append(iopub *io, const char *name, const char *text, size_t len);
/* iopub_heap.c */
/* Frees *buf once it is empty (len 0) if it grew past 1 MiB, trims the heap
 * now, and schedules the later trims. */
void iopub_shrink_buffer(iopub *io, void **buf, size_t *cap, size_t len);
/* The later trims, when one is due (publisher thread). */
void iopub_trim_if_due(iopub *io);

/* iopub_capture.c */
/* Makes c a pipe that replaces fd target; 0 or -1. */
int iopub_capture_open(capture *c, int target, const char *name);
/* An epoll set of the two capture pipes; its fd or -1. */
int iopub_ready_set_new(const capture *out);
/* Which pipes may hold bytes not read yet (any thread, without the lock). */
void iopub_pipes_ready(iopub *io, int ready[2]);
/* Reads what c's pipe holds now (publisher only). */
void iopub_capture_read(iopub *io, capture *c);
/* The pipe positions now; io->lock held. */
void iopub_take_marks_locked(iopub *io, const int ready[2], uint64_t marks[2]);
/* Releases the captured bytes up to marks into the batch (publisher only). */
void iopub_release_marks(iopub *io, const uint64_t marks[2], int final);

#endif
