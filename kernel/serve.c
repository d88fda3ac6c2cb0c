/* serve.c -- one handler table for the shell and control channels (see
 * serve.h). */
#include "serve.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <zmq.h>

#include "guard.h"
#include "log.h"

/* The channels a request type is served on, and whether the kernel stops
 * once it is answered and its idle is out (the publisher ends with the
 * kernel, so nothing may follow the stop). */
enum { ON_SHELL = 1, ON_CONTROL = 2, THEN_STOP = 4 };

typedef void (*handler_fn)(server *sv, request *r);

int serve_reply(server *sv, void *sock, const jp_msg *req, const char *msg_type,
                json_t *steal_content)
{
    jp_msg *m = jp_msg_reply(sv->session, req, msg_type, steal_content);
    jp_error err = {0};
    if (m == NULL || jp_send(sv->session, sock, &m, NULL, &err) < 0) {
        LOG_W("cannot send %s: %s", msg_type, err.set ? err.text : "out of memory");
        return -1;
    }
    return 0;
}

/* Replies to r on the socket it came from. */
static int reply(server *sv, request *r, const char *msg_type, json_t *steal_content)
{
    return serve_reply(sv, request_socket(r), request_msg(r), msg_type, steal_content);
}

/* "execute_request" -> "execute_reply" */
static void reply_type(const char *req_type, char *out, size_t size)
{
    size_t n = strlen(req_type);
    const char *suffix = "_request";
    if (n > 8 && strcmp(req_type + n - 8, suffix) == 0) {
        snprintf(out, size, "%.*s_reply", (int)(n - 8), req_type);
    } else {
        snprintf(out, size, "%s_reply", req_type);
    }
}

static json_t *internal_error_reply(const jp_error *err)
{
    return json_pack("{s:s, s:s, s:s, s:[s]}", "status", "error", "ename",
                     "InternalError", "evalue", err->text, "traceback", err->text);
}

/* ------------------------------------------------------------ handlers */

static void handle_kernel_info(server *sv, request *r)
{
    reply(sv, r, "kernel_info_reply", json_deep_copy(sv->kernel_info));
}

/* busy, the reply (also on iopub), idle, then the stop (THEN_STOP); never
 * a "dead" status: that state is the server's to report, and a frontend
 * restarting the kernel would take it for a failed restart. */
static void handle_shutdown(server *sv, request *r)
{
    const jp_msg *req = request_msg(r);
    json_t *restart = json_object_get(req->content, "restart");
    json_t *content =
        json_pack("{s:s, s:b}", "status", "ok", "restart", json_is_true(restart));
    /* Also on iopub, as ipykernel does: the kernel's other frontends learn
     * of the shutdown (and of a restart) from it. */
    iopub_publish_under(sv->io, req->header, "shutdown_reply", json_deep_copy(content));
    reply(sv, r, "shutdown_reply", content);
}

static void handle_interrupt(server *sv, request *r)
{
    if (atomic_load(&sv->busy)) {
        sv->interrupt(sv->ctx);
    }
    reply(sv, r, "interrupt_reply", json_pack("{s:s}", "status", "ok"));
}

/* A request answered by the runner function of the same name. */
static void handle_in_interp(server *sv, request *r)
{
    char func[64], reply_name[80];
    const jp_msg *req = request_msg(r);
    const char *type = jp_msg_type(req);
    snprintf(func, sizeof func, "%.*s", (int)(strlen(type) - 8), type);
    reply_type(type, reply_name, sizeof reply_name);
    jp_error err = {0};
    json_t *content = sv->py.call(sv->py.ctx, func, req->content, &err);
    reply(sv, r, reply_name, content ? content : internal_error_reply(&err));
}

static void handle_execute(server *sv, request *r)
{
    const jp_msg *req = request_msg(r);
    jp_error err = {0};
    json_t *content = sv->py.call(sv->py.ctx, "execute", req->content, &err);
    if (content == NULL) {
        content = internal_error_reply(&err);
    }
    const char *status = json_string_value(json_object_get(content, "status"));
    int failed = status != NULL && strcmp(status, "error") == 0;
    json_t *stop = json_object_get(req->content, "stop_on_error");
    /* Output the cell wrote reaches iopub before the reply. */
    iopub_flush(sv->io);
    reply(sv, r, "execute_reply", content);
    /* The requests queued behind a failed cell are aborted before its idle
     * (serve_shell does it), as stop_on_error asks: a client that waits for
     * idle before sending more is never aborted. */
    sv->abort_queued = failed && (stop == NULL || json_is_true(stop));
}

/* Comms go to the interpreter's comm manager; only comm_info_request has
 * a reply (an empty list of comms if the manager failed: the failure is
 * the log's). */
static void handle_comm(server *sv, request *r)
{
    const jp_msg *req = request_msg(r);
    const char *type = jp_msg_type(req);
    jp_error err = {0};
    json_t *content = sv->py.comm(sv->py.ctx, req, &err);
    if (err.set) {
        LOG_E("%s: %s", type, err.text);
    }
    if (strcmp(type, "comm_info_request") == 0) {
        reply(sv, r, "comm_info_reply",
              content ? content : json_pack("{s:s, s:{}}", "status", "ok", "comms"));
    } else {
        json_decref(content);
    }
}

static const struct {
    const char *type; /* msg_type */
    int on;           /* ON_SHELL, ON_CONTROL */
    handler_fn fn;    /* its handler */
} handlers[] = {
    {"execute_request", ON_SHELL, handle_execute},
    {"kernel_info_request", ON_SHELL | ON_CONTROL, handle_kernel_info},
    {"shutdown_request", ON_SHELL | ON_CONTROL | THEN_STOP, handle_shutdown},
    {"interrupt_request", ON_CONTROL, handle_interrupt},
    {"complete_request", ON_SHELL, handle_in_interp},
    {"inspect_request", ON_SHELL, handle_in_interp},
    {"is_complete_request", ON_SHELL, handle_in_interp},
    {"history_request", ON_SHELL, handle_in_interp},
    {"comm_info_request", ON_SHELL, handle_comm},
    {"comm_open", ON_SHELL, handle_comm},
    {"comm_msg", ON_SHELL, handle_comm},
    {"comm_close", ON_SHELL, handle_comm},
};

/* The handler of type on channel and its flags (*on), or NULL. */
static handler_fn find_handler(const char *type, int channel, int *on)
{
    for (size_t i = 0; i < sizeof handlers / sizeof handlers[0]; i++) {
        if ((handlers[i].on & channel) && strcmp(handlers[i].type, type) == 0) {
            *on = handlers[i].on;
            return handlers[i].fn;
        }
    }
    *on = 0;
    return NULL;
}

/* --------------------------------------------------------------- shell */

static void status_under(server *sv, const jp_msg *req, const char *state)
{
    iopub_publish_under(sv->io, req->header, "status",
                        json_pack("{s:s}", "execution_state", state));
}

/* Drains the shell socket: execute requests get an "aborted" reply (their
 * status published under their own header, so the failed cell's parent
 * stays current until its idle); other requests are returned, in order,
 * to be handled after that idle.  Returns how many were deferred. */
static size_t abort_queued(server *sv, void *sock, jp_msg **deferred, size_t max)
{
    size_t n = 0;
    while (n < max) { /* the rest waits on the socket, handled as usual */
        jp_error err = {0};
        jp_msg *req = jp_recv(sv->session, sock, ZMQ_DONTWAIT, &err);
        if (req == NULL) {
            if (errno == EAGAIN) {
                return n;
            }
            guard_dropped("shell", err.text);
            continue;
        }
        if (strcmp(jp_msg_type(req), "execute_request") == 0) {
            status_under(sv, req, "busy");
            serve_reply(
                sv, sock, req, "execute_reply",
                json_pack("{s:s, s:i}", "status", "aborted", "execution_count", 0));
            status_under(sv, req, "idle");
            jp_msg_destroy(&req);
        } else {
            deferred[n++] = req;
        }
    }
    return n;
}

/* Every request is wrapped in busy ... idle, unknown ones included.  The
 * request is owned here: made, handed down, published as the current one
 * for other threads, and released. */
void serve_shell(server *sv, void *sock, jp_msg **msg)
{
    request *r = request_new(msg, sock);
    if (r == NULL) {
        LOG_E("out of memory for a request");
        return;
    }
    const char *type = jp_msg_type(request_msg(r));
    int on;
    handler_fn fn = find_handler(type, ON_SHELL, &on);
    request_slot_set(&sv->requests, r);
    atomic_store(&sv->busy, 1);
    iopub_set_parent(sv->io, request_msg(r));
    iopub_status(sv->io, "busy");
    if (fn) {
        fn(sv, r);
    } else {
        LOG_W("unknown request type '%s' on shell: no reply", type);
    }
    jp_msg *deferred[64];
    size_t n_deferred = 0;
    if (sv->abort_queued) {
        sv->abort_queued = 0;
        n_deferred = abort_queued(sv, sock, deferred, 64);
    }
    iopub_status(sv->io, "idle");
    atomic_store(&sv->busy, 0);
    request_slot_set(&sv->requests, NULL);
    request_release(&r);
    if (on & THEN_STOP) {
        sv->stop(sv->ctx);
    }
    for (size_t i = 0; i < n_deferred; i++) {
        serve_shell(sv, sock, &deferred[i]);
    }
}

/* ------------------------------------------------------------- control */

void serve_control(server *sv, void *sock, jp_msg **msg)
{
    request *r = request_new(msg, sock);
    if (r == NULL) {
        LOG_E("out of memory for a request");
        return;
    }
    const jp_msg *req = request_msg(r);
    const char *type = jp_msg_type(req);
    int on;
    handler_fn fn = find_handler(type, ON_CONTROL, &on);
    status_under(sv, req, "busy");
    if (fn) {
        fn(sv, r);
    } else {
        LOG_W("unknown request type '%s' on control: no reply", type);
    }
    status_under(sv, req, "idle");
    request_release(&r);
    if (on & THEN_STOP) {
        sv->stop(sv->ctx);
    }
}

void serve_init(server *sv)
{
    request_slot_init(&sv->requests);
    atomic_store(&sv->busy, 0);
    sv->abort_queued = 0;
}

void serve_destroy(server *sv)
{
    request_slot_destroy(&sv->requests);
}
