/* wire.h -- ferry's framing of a message (a list of frames) on a stream
 * socket: the link between the kernel and each of its local workers, one
 * AF_UNIX socketpair per worker (what the messages say is pool_wire.h's).
 *
 * On the wire, a message is
 *
 *   magic   4 bytes  "FRY1"
 *   n       4 bytes  number of frames, 1 .. WIRE_MAX_FRAMES (host order)
 *   sizes   n x 8    each frame's length (host order: both ends are one
 *                    machine), each at most WIRE_MAX_FRAME
 *   bytes            the frames' bytes, one after the other, no padding
 *
 * Both sides are non-blocking and resumable: a reader may get a message a
 * byte at a time, a writer may write it a byte at a time, and each picks up
 * where it stopped.  Large frames travel without a copy in user space: the
 * writer hands the frames' own memory to sendmsg, the reader receives a
 * large frame's bytes straight into the memory that then becomes the
 * frame. */
#ifndef FERRY_POOL_WIRE_FRAMING_H
#define FERRY_POOL_WIRE_FRAMING_H

#include <stddef.h>
#include <stdint.h>

#include "jp.h"

#define WIRE_MAGIC "FRY1"
#define WIRE_MAX_FRAMES 65536u
#define WIRE_MAX_FRAME ((uint64_t)1 << 40)

/* ------------------------------------------------------------- reading */

/* A message being received (allocate zeroed, or with wire_in_init). */
typedef struct wire_in {
    char *buf;         /* staging for headers and small frames */
    size_t cap;        /* its size */
    size_t start, end; /* the unread bytes are buf[start, end) */
    int state;         /* what comes next: header, sizes, bytes */
    uint32_t n;        /* frames in the message being received */
    uint64_t *sizes;   /* their lengths */
    jp_frames msg;     /* the frames so far */
    size_t cur;        /* the frame being filled */
    size_t got;        /* bytes of it filled */
    int drained;       /* the last read emptied the socket (see wire_in_read) */
} wire_in;

typedef enum wire_rc {
    WIRE_MSG = 1,    /* a message is complete */
    WIRE_AGAIN = 0,  /* nothing more without waiting */
    WIRE_EOF = -1,   /* the peer closed, between two messages */
    WIRE_ERROR = -2, /* malformed, closed mid-message, or a read error */
} wire_rc;

void wire_in_init(wire_in *in);
/* Frees what in holds (a message half received included). */
void wire_in_clear(wire_in *in);
/* Reads from fd (a stream socket; read without blocking whatever its mode)
 * until a message is complete: then *msg is it (the caller owns the frames:
 * jp_frames_clear).  Call again after WIRE_MSG: more may be buffered.
 * WIRE_AGAIN comes without a read that would only find the socket empty
 * when the last read took less than it asked for (it emptied the socket):
 * the caller polls before the next call, which reads again.
 * After WIRE_EOF or WIRE_ERROR (err says why) the stream is unusable. */
wire_rc wire_in_read(wire_in *in, int fd, jp_frames *msg, jp_error *err);
/* Forgets that the last read emptied the socket, so that the next
 * wire_in_read reads again: for a peer that has ended since, whose last
 * messages must all be read before its end is handled. */
static inline void wire_in_forget_drained(wire_in *in)
{
    in->drained = 0;
}

/* ------------------------------------------------------------- writing */

typedef struct wire_msg wire_msg;

/* Messages waiting to be written, in order. */
typedef struct wire_out {
    wire_msg *head, *tail; /* FIFO */
    size_t n;              /* messages queued */
} wire_out;

/* Queues a message: the frames are taken over (*frames is emptied, also
 * on failure) and freed once written or dropped.  0, or -1 when out of
 * memory or malformed (too many frames; logged by the caller). */
int wire_out_push(wire_out *out, jp_frames *frames);
/* Writes what is queued: without blocking=0 it writes what the socket
 * takes now and returns; with blocking it waits until all is written.
 * 1 when the queue is empty, 0 when some is left (wait for POLLOUT), -1 on
 * a write error (the peer is gone: errno says). */
int wire_out_flush(wire_out *out, int fd, int blocking);
/* Drops what is queued (the peer is gone). */
void wire_out_clear(wire_out *out);

#endif
