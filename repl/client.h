/* client.h -- the REPL's side of the five Jupyter channels.
 *
 *   shell    DEALER  requests (execute, complete, is_complete, kernel_info)
 *   control  DEALER  interrupt_request, shutdown_request
 *   stdin    DEALER  input_request from the kernel, input_reply from us
 *   iopub    SUB     everything the kernel publishes (subscribed to all)
 *   hb       REQ     ping/echo, made afresh for each check
 *
 * Everything is driven from one thread by client_poll, which also watches one
 * ordinary file descriptor (the terminal) so the prompt and the kernel's
 * output can interleave.  A signal (SIGINT) interrupts the wait.
 */
#ifndef REPL_CLIENT_H
#define REPL_CLIENT_H

#include "jp.h"

typedef struct client client;

/* How soon a connection the kernel refused is tried again, for sockets made
 * while a kernel we started is still binding its own: ZeroMQ's default
 * (100 ms, plus up to as much again at random) would be most of the REPL's
 * start-up, since the kernel listens some 15 ms after it is started. */
#define CLIENT_RETRY_STARTING_MS 2

/* Connects to the kernel described by conn (borrowed); a refused connection
 * is retried every retry_ms (0: ZeroMQ's default).  The caller frees with
 * client_destroy.  Call with SIGINT blocked: ZeroMQ's threads inherit the
 * mask, and the signal must reach the thread that polls. */
client *client_new(const jp_connection *conn, int retry_ms, jp_error *err) JP_WUR;
void client_destroy(client **c);

/* Closes the sockets and connects new ones to the same endpoints, retrying
 * refused connections every retry_ms (0: ZeroMQ's default).  Sockets that
 * connected before the kernel listened can be half broken: with ipykernel,
 * input_request is then sometimes routed nowhere (a retried connection
 * leaves the ROUTER with a stale peer for our identity).  A frontend that
 * started the kernel calls this once the kernel has answered, so that each
 * channel has exactly one connection, made to a listening socket.  Returns 0
 * or -1 (err set). */
int client_reconnect(client *c, int retry_ms, jp_error *err) JP_WUR;

/* Sends a request of msg_type with content (stolen) on JP_SHELL or
 * JP_CONTROL; writes its msg_id into id (>= 64 bytes) when id is not NULL. */
int client_request(client *c, jp_channel ch, const char *msg_type, json_t *steal_content,
                   char *id, size_t id_size);

/* Sends an input_reply with value in answer to the input_request req. */
int client_input_reply(client *c, const jp_msg *req, const char *value);

typedef enum client_event {
    CLIENT_MESSAGE, /* *msg set, *ch says where it came from */
    CLIENT_FD,      /* the watched fd is readable */
    CLIENT_TIMEOUT, /* nothing within timeout_ms */
    CLIENT_SIGNAL,  /* a signal arrived (EINTR) */
    CLIENT_ERROR    /* socket failure; a malformed message is skipped, not an error */
} client_event;

/* Waits up to timeout_ms (-1: forever) for a message on any channel or for
 * fd (-1: none) to become readable.  Messages are returned one at a time,
 * iopub before the others so that a cell's output precedes its reply.
 * On CLIENT_MESSAGE the caller owns *msg (jp_msg_destroy). */
client_event client_poll(client *c, int fd, int timeout_ms, jp_channel *ch, jp_msg **msg);

/* 1 once the iopub socket of this generation (see client_reconnect) has
 * delivered a message: its subscription has then reached the kernel, and
 * nothing the kernel publishes from now on is lost.  A SUB socket that has
 * just connected misses what is published before it joins. */
int client_iopub_seen(const client *c);

/* Pings the heartbeat channel; returns 1 when the kernel echoes within
 * timeout_ms, 0 otherwise. */
int client_heartbeat(client *c, int timeout_ms);

/* 1 when the string s is the msg_id of m's parent. */
int client_is_reply_to(const jp_msg *m, const char *id);

#endif /* REPL_CLIENT_H */
