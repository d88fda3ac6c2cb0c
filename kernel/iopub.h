/* iopub.h -- the one publisher of the iopub channel, and output capture.
 *
 * Any thread hands messages to the publisher thread through one locked
 * queue, so the order in which threads enqueue is the order frontends see
 * (separate inproc sockets per thread would let ZeroMQ's fair queueing
 * reorder them).  The same thread reads the pipes that replace file
 * descriptors 1 and 2 and turns what it reads into batched stream messages.
 *
 * Each queued event records how many bytes each pipe had received when it
 * was queued (bytes read so far + FIONREAD).  Before the event is handled,
 * exactly those bytes are released as output, under the parent they were
 * written under: output written before a message comes before it, and
 * output written after it is never pulled ahead of it. */
#ifndef FERRY_IOPUB_H
#define FERRY_IOPUB_H

#include "jp.h"

typedef struct iopub iopub;

/* Binds a PUB socket on endpoint with zmq context ctx and starts the
 * publisher thread.  With capture, fds 1 and 2 become pipes it reads.
 * Free with iopub_destroy. */
iopub *iopub_new(void *ctx, const char *endpoint, jp_session *s, int capture,
                 jp_error *err);

/* Stops the thread after publishing everything queued, restores nothing
 * (the process is ending), closes the socket. */
void iopub_destroy(iopub **io);

/* Makes parent's header the parent of every later message and output.
 * parent may be NULL (no parent). */
void iopub_set_parent(iopub *io, const jp_msg *parent);

/* Queues a message under the current parent; content is stolen. */
void iopub_publish(iopub *io, const char *msg_type, json_t *steal_content);

/* Queues a message under the current parent with metadata (stolen, may be
 * NULL) and binary buffers (taken over: entries zeroed, the array stays the
 * caller's), as comm messages carry them. */
void iopub_publish_with(iopub *io, const char *msg_type, json_t *steal_content,
                        json_t *steal_metadata, jp_frame *buffers, size_t n_buffers);

/* Queues a message under an explicit parent header (copied). */
void iopub_publish_under(iopub *io, json_t *parent_header, const char *msg_type,
                         json_t *steal_content);

/* Queues a status message {"execution_state": state}. */
void iopub_status(iopub *io, const char *state);

/* Queues stream text directly (for output that does not come through the
 * captured descriptors, such as a worker's), under parent_header (copied,
 * NULL = current parent). */
void iopub_stream(iopub *io, json_t *parent_header, const char *name, const char *text,
                  size_t len);

/* Queues text written through Python's sys.stdout / sys.stderr (name is
 * "stdout" or "stderr"); it is batched with the captured output, in the
 * order of the writes.  A write does not wake the publisher unless it
 * starts a batch: it goes out with the batch timer, or with the next
 * message or flush, whichever comes first. */
void iopub_write(iopub *io, const char *name, const char *text, size_t len);

/* Returns once everything written to fds 1 and 2 before the call, and
 * everything queued before it, has been published. */
void iopub_flush(iopub *io);

#endif
