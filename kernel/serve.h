/* serve.h -- the requests of the shell and control channels: one handler
 * table serving both, the shell's busy ... idle and its aborts.
 *
 * A server holds what the handlers need and nothing of how the kernel
 * runs: the session, the publisher, the interpreter behind the shell (an
 * interface, so tests can put a stand-in there: tests/unit/test_serve.c),
 * and hooks for what only the kernel can do (stop, interrupt the running
 * cell).  kernel.c fills one in and serves the shell from the main thread;
 * control.c serves control from its own thread. */
#ifndef FERRY_SERVE_H
#define FERRY_SERVE_H

#include <stdatomic.h>

#include "iopub.h"
#include "jp.h"
#include "request.h"

/* The interpreter, as the shell reaches it. */
typedef struct interp {
    void *ctx; /* first argument of call */
    /* Calls the runner's func ("execute", "complete", ...) with a request's
     * content; a new reference to the reply's content, or NULL with err. */
    json_t *(*call)(void *ctx, const char *func, json_t *content, jp_error *err);
} interp;

typedef struct server {
    jp_session *session;   /* signs the replies */
    iopub *io;             /* status and output */
    interp py;             /* what runs the shell's requests */
    json_t *kernel_info;   /* kernel_info_reply content */
    request_slot requests; /* the shell request being handled, for any thread */
    atomic_int busy;       /* a shell request is being handled */
    int abort_queued;      /* shell: abort the queued execute requests before idle */
    void *ctx;             /* passed to the hooks */
    /* shutdown_request: begin stopping (any thread). */
    void (*stop)(void *ctx);
    /* interrupt_request while busy: interrupt the running request. */
    void (*interrupt)(void *ctx);
} server;

/* Sets up what sv owns (the request slot); the caller fills in the rest. */
void serve_init(server *sv);
void serve_destroy(server *sv);

/* Handles a shell request (*msg, taken over) received on sock: busy, its
 * handler, the requests queued behind a failed cell answered "aborted",
 * idle.  The request is the current one (sv->requests) meanwhile. */
void serve_shell(server *sv, void *sock, jp_msg **msg);
/* Handles a control request (*msg, taken over): its status goes under its
 * own header, so the running cell's parent and output stay untouched. */
void serve_control(server *sv, void *sock, jp_msg **msg);

/* Replies on sock under req; content is stolen.  0 or -1 (logged). */
int serve_reply(server *sv, void *sock, const jp_msg *req, const char *msg_type,
                json_t *steal_content);

#endif
