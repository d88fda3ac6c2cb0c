/* kernel.c -- the kernel role: set-up, the shell loop on the main thread,
 * stdin, stopping.  Requests are served by serve.c's one handler table,
 * through the interpreter interface (pyrt.c behind it here).
 *
 * The main thread initialised the interpreter, so it is the only thread on
 * which Python runs signal handlers: it owns the shell and stdin sockets and
 * runs every shell request.  SIGINT is blocked in every other thread, so an
 * interrupt (by signal, or an interrupt_request turned into one) always
 * lands here and becomes KeyboardInterrupt in the running cell. */
#define _GNU_SOURCE /* eventfd, pthread_kill */
#include "kernel.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <zmq.h>

#include "guard.h"
#include "log.h"
#include "parent.h"
#include "paths.h"
#include "pool/pool_py.h"
#include "pyrt.h"
#include "runtime.h"

#ifndef FERRY_PYTHON
#define FERRY_PYTHON "/usr/bin/python3"
#endif

/* --------------------------------------------------------------- stdin */

/* Drops what waits on stdin (ipykernel does the same): an input_reply sent
 * when no input() was asking must not answer the next one. */
static void drop_stale_stdin(kernel *k)
{
    for (int i = 0; i < 1000; i++) { /* bounded: a flood cannot hold input() */
        jp_error err = {0};
        jp_msg *stale = jp_recv(k->session, k->stdin_sock, ZMQ_DONTWAIT, &err);
        if (stale == NULL && (errno == EAGAIN || errno == ETERM)) {
            return;
        }
        LOG_I("dropping a stdin message no input() asked for");
        jp_msg_destroy(&stale);
    }
}

/* Sends the input_request under parent; copies its msg_id into id, to
 * match the reply. */
static int send_input_request(kernel *k, const jp_msg *parent, const char *prompt,
                              int password, char *id, size_t size)
{
    drop_stale_stdin(k);
    jp_msg *m =
        jp_msg_reply(k->session, parent, "input_request",
                     json_pack("{s:s, s:b}", "prompt", prompt, "password", password));
    jp_error err = {0};
    const char *msg_id =
        m ? json_string_value(json_object_get(m->header, "msg_id")) : NULL;
    snprintf(id, size, "%s", msg_id ? msg_id : "");
    if (m == NULL || jp_send(k->session, k->stdin_sock, &m, NULL, &err) < 0) {
        jp_msg_destroy(&m);
        LOG_W("cannot send input_request: %s", err.set ? err.text : "out of memory");
        return -1;
    }
    return 0;
}

/* An input_reply that names its request must name ours; jupyter_client's
 * carries no parent header at all, and is taken. */
static int answers(const jp_msg *reply, const char *request_id)
{
    const char *parent =
        json_string_value(json_object_get(reply->parent_header, "msg_id"));
    if (parent != NULL && *parent != '\0' && strcmp(parent, request_id) != 0) {
        LOG_I("dropping an input_reply to another request (%s)", parent);
        return 0;
    }
    return 1;
}

static int ask_input(kernel *k, const jp_msg *parent, const char *prompt, int password,
                     char **value, jp_error *err)
{
    iopub_flush(k->io); /* the prompt comes after the output before it */
    char request_id[128];
    if (send_input_request(k, parent, prompt, password, request_id, sizeof request_id) <
        0) {
        jp_error_set(err, "cannot send input_request");
        return -1;
    }
    for (;;) {
        zmq_pollitem_t items[] = {{.socket = k->stdin_sock, .events = ZMQ_POLLIN},
                                  {.fd = k->wake_fd, .events = ZMQ_POLLIN}};
        int rc = zmq_poll(items, 2, -1);
        if (rc < 0 && errno == EINTR) {
            return -2;
        }
        if (items[1].revents || atomic_load(&k->stopping)) {
            jp_error_set(err, "the kernel is shutting down");
            return -1;
        }
        jp_msg *reply = jp_recv(k->session, k->stdin_sock, ZMQ_DONTWAIT, err);
        if (reply == NULL) {
            guard_dropped("stdin", err->text);
            memset(err, 0, sizeof *err);
            continue;
        }
        const char *v = json_string_value(json_object_get(reply->content, "value"));
        int ok = strcmp(jp_msg_type(reply), "input_reply") == 0 && v != NULL &&
                 answers(reply, request_id);
        if (ok) {
            *value = strdup(v);
        }
        jp_msg_destroy(&reply);
        if (ok) {
            return *value ? 0 : -1;
        }
    }
}

/* Asks the frontend of the current request for a line of input; that
 * request is held while its answer is awaited. */
static int stdin_input(void *ctx, const char *prompt, int password, char **value,
                       jp_error *err)
{
    kernel *k = ctx;
    request *r = request_slot_get(&k->sv.requests);
    int rc = -1;
    if (r == NULL || !request_allows_stdin(r)) {
        jp_error_set(err, "StdinNotImplementedError: input() was called, but this "
                          "frontend does not support input requests");
    } else {
        rc = ask_input(k, request_msg(r), prompt, password, value, err);
    }
    request_release(&r);
    return rc;
}

static void publish_from_python(void *ctx, const char *msg_type, json_t *content,
                                json_t *metadata, jp_frame *buffers, size_t n_buffers)
{
    kernel *k = ctx;
    iopub_publish_with(k->io, msg_type, content, metadata, buffers, n_buffers);
}

/* The header of the request being handled, from any thread: read through
 * a reference of its own (kernel/request.h), so the shell may finish the
 * request meanwhile. */
static json_t *parent_for_python(void *ctx)
{
    kernel *k = ctx;
    request *r = request_slot_get(&k->sv.requests);
    json_t *header = r ? json_deep_copy(request_msg(r)->header) : NULL;
    request_release(&r);
    return header;
}

static void write_from_python(void *ctx, const char *name, const char *text, size_t len)
{
    kernel *k = ctx;
    iopub_write(k->io, name, text, len);
}

/* ------------------------------------------------------------- set-up */

static void *bind_router(kernel *k, jp_channel ch, jp_error *err)
{
    char endpoint[300];
    void *s = zmq_socket(k->zctx, ZMQ_ROUTER);
    int linger = 1000;
    int64_t max_size = guard_max_message_size(); /* bounds unsigned input */
    jp_connection_endpoint(&k->conn, ch, endpoint, sizeof endpoint);
    if (s == NULL || zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger) < 0 ||
        zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &max_size, sizeof max_size) < 0 ||
        zmq_bind(s, endpoint) < 0) {
        jp_error_set(err, "cannot bind %s on %s: %s", jp_channel_name(ch), endpoint,
                     zmq_strerror(errno));
        if (s) {
            zmq_close(s);
        }
        return NULL;
    }
    return s;
}

static int start_python(kernel *k, jp_error *err)
{
    static pool_py_ctx pools;
    static char exe[PATH_MAX];
    if (paths_self_exe(exe, sizeof exe) < 0) {
        jp_error_set(err, "cannot find the kernel binary (/proc/self/exe)");
        return -1;
    }
    pools = (pool_py_ctx){.runtime_dir = k->runtime_dir,
                          .exe = exe,
                          .io = k->io,
                          .requests = &k->sv.requests};
    if (pool_py_register(&pools) < 0) {
        jp_error_set(err, "cannot register _ferry_pool");
        return -1;
    }
    char package_dir[PATH_MAX];
    if (paths_package_dir(package_dir, sizeof package_dir) < 0) {
        jp_error_set(err, "cannot find the ferry Python package (set FERRY_PACKAGE_DIR)");
        return -1;
    }
    pyrt_config cfg = {
        .python = k->python,
        .package_dir = package_dir,
        .runtime_dir = k->runtime_dir,
        .role = "kernel",
        .entry = "ferry._kernel",
        .hooks = {.ctx = k,
                  .publish = publish_from_python,
                  .parent = parent_for_python,
                  .write = write_from_python,
                  .input = stdin_input},
    };
    LOG_D("starting the interpreter");
    if (pyrt_init(&cfg, err) < 0) {
        return -1;
    }
    LOG_D("interpreter ready");
    json_t *none = json_object();
    k->sv.kernel_info = pyrt_call("kernel_info", none, err);
    json_decref(none);
    return k->sv.kernel_info ? 0 : -1;
}

static int kernel_setup(kernel *k, const char *connection_file, jp_error *err)
{
    LOG_D("kernel starting");
    snprintf(k->python, sizeof k->python, "%s", FERRY_PYTHON);
    if (jp_connection_load(&k->conn, connection_file, err) < 0 ||
        (k->session = jp_session_from_connection(&k->conn, "kernel", err)) == NULL) {
        return -1;
    }
    guard_check_connection_file(connection_file, k->conn.key);
    if (runtime_dir_create(k->runtime_dir, sizeof k->runtime_dir) < 0) {
        jp_error_set(err, "cannot create a runtime directory: %s", strerror(errno));
        return -1;
    }
    k->zctx = zmq_ctx_new();
    k->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    char endpoint[300];
    jp_connection_endpoint(&k->conn, JP_IOPUB, endpoint, sizeof endpoint);
    if (k->zctx == NULL || k->wake_fd < 0 ||
        (k->io = iopub_new(k->zctx, endpoint, k->session, 1, err)) == NULL ||
        (k->shell = bind_router(k, JP_SHELL, err)) == NULL ||
        (k->stdin_sock = bind_router(k, JP_STDIN, err)) == NULL ||
        (k->ctl.control_sock = bind_router(k, JP_CONTROL, err)) == NULL ||
        (k->ctl.hb_sock = bind_router(k, JP_HB, err)) == NULL) {
        return -1;
    }
    return start_python(k, err);
}

/* ------------------------------------------------------------ stopping */

static void *watchdog_main(void *arg)
{
    kernel *k = arg;
    sleep(5);
    LOG_W("shutdown did not finish in 5 s; exiting now");
    runtime_dir_remove(k->runtime_dir);
    _exit(0);
    return NULL;
}

void kernel_request_stop(kernel *k)
{
    if (atomic_exchange(&k->stopping, 1)) {
        return;
    }
    uint64_t one = 1;
    ssize_t rc = write(k->wake_fd, &one, sizeof one);
    (void)rc;
    if (atomic_load(&k->sv.busy) && !pthread_equal(pthread_self(), k->main_thread)) {
        pthread_kill(k->main_thread, SIGINT); /* end a running cell */
    }
    pthread_t t;
    if (pthread_create(&t, NULL, watchdog_main, k) == 0) {
        pthread_detach(t);
    }
}

/* The rest of the runner is imported once the kernel has answered its first
 * requests and is idle, so frontends see it ready as early as possible. */
static void warm_up(void)
{
    jp_error err = {0};
    json_t *none = json_object();
    json_t *r = pyrt_call("warm_up", none, &err);
    if (r == NULL) {
        LOG_E("warm-up failed: %s", err.text);
    }
    json_decref(r);
    json_decref(none);
}

static void shell_loop(kernel *k)
{
    int warm = 0;
    while (!atomic_load(&k->stopping)) {
        zmq_pollitem_t items[] = {{.socket = k->shell, .events = ZMQ_POLLIN},
                                  {.fd = k->wake_fd, .events = ZMQ_POLLIN}};
        int rc = zmq_poll(items, 2, warm ? -1 : 0);
        if (rc == 0 && !warm) {
            warm_up();
            warm = 1;
            continue;
        }
        if (rc < 0) {
            if (errno == EINTR) {
                continue; /* SIGINT while idle is harmless */
            }
            LOG_E("shell poll failed: %s", zmq_strerror(errno));
            return;
        }
        if (!(items[0].revents & ZMQ_POLLIN)) {
            continue;
        }
        jp_error err = {0};
        jp_msg *req = jp_recv(k->session, k->shell, ZMQ_DONTWAIT, &err);
        if (req == NULL) {
            if (errno != EAGAIN) {
                guard_dropped("shell", err.text);
            }
            continue;
        }
        serve_shell(&k->sv, k->shell, &req);
    }
}

static void kernel_teardown(kernel *k)
{
    pyrt_finalize();
    /* No "dead" status: that state is the server's to report.  A frontend
     * restarting the kernel would take it for a failed restart. */
    iopub_destroy(&k->io);
    if (k->shell) {
        zmq_close(k->shell);
    }
    if (k->stdin_sock) {
        zmq_close(k->stdin_sock);
    }
    if (k->threads_started) {
        zmq_ctx_shutdown(k->zctx); /* ends the control and heartbeat threads */
        control_join(&k->ctl);
    } else {
        /* Bound but never handed to their threads. */
        if (k->ctl.control_sock) {
            zmq_close(k->ctl.control_sock);
        }
        if (k->ctl.hb_sock) {
            zmq_close(k->ctl.hb_sock);
        }
    }
    if (k->zctx) {
        zmq_ctx_term(k->zctx);
    }
    runtime_dir_remove(k->runtime_dir);
    json_decref(k->sv.kernel_info);
    serve_destroy(&k->sv);
    jp_session_destroy(&k->session);
    jp_connection_clear(&k->conn);
}

/* ------------------------------------------------------------ serving */

/* The shell's interpreter: the runner in ferry._kernel. */
static json_t *python_call(void *ctx, const char *func, json_t *content, jp_error *err)
{
    (void)ctx;
    return pyrt_call(func, content, err);
}

/* A comm message for ferry._kernel.comm, whole (header, metadata, buffers)
 * as comm callbacks read it: frame 0 is the message as JSON, its buffers
 * follow.  Python answers a comm_info_request with its content in frame 0. */
static json_t *python_comm(void *ctx, const jp_msg *msg, jp_error *err)
{
    (void)ctx;
    json_t *whole =
        json_pack("{s:O, s:O, s:O, s:O}", "header", msg->header, "parent_header",
                  msg->parent_header, "metadata", msg->metadata, "content", msg->content);
    char *text = whole ? json_dumps(whole, JSON_COMPACT) : NULL;
    json_decref(whole);
    jp_frames in = {calloc(1 + msg->n_buffers, sizeof(jp_frame)), 0};
    in.n = in.v ? 1 + msg->n_buffers : 0;
    jp_frames out = {0};
    int ok = text && in.v && jp_frame_copy(&in.v[0], text, strlen(text)) == 0;
    for (size_t i = 0; ok && i < msg->n_buffers; i++) {
        ok = jp_frame_copy(&in.v[i + 1], msg->buffers[i].data, msg->buffers[i].size) == 0;
    }
    free(text);
    json_t *reply = NULL;
    if (!ok) {
        jp_error_set(err, "out of memory");
    } else if (pyrt_call_frames("comm", in.v, in.n, &out.v, &out.n, err) >= 0 &&
               out.n > 0) {
        reply = json_loadb(out.v[0].data, out.v[0].size, 0, NULL);
    }
    jp_frames_clear(&in);
    jp_frames_clear(&out);
    return reply;
}

static void stop_hook(void *ctx)
{
    kernel_request_stop(ctx);
}

/* An interrupt_request becomes SIGINT on the main thread, where the
 * interpreter turns it into KeyboardInterrupt in the running cell. */
static void interrupt_hook(void *ctx)
{
    kernel *k = ctx;
    pthread_kill(k->main_thread, SIGINT);
}

static void server_setup(kernel *k)
{
    serve_init(&k->sv);
    k->sv.py = (interp){.ctx = k, .call = python_call, .comm = python_comm};
    k->sv.ctx = k;
    k->sv.stop = stop_hook;
    k->sv.interrupt = interrupt_hook;
}

/* Once the sockets and the interpreter are up: the session and publisher
 * exist, and the control threads may serve. */
static int start_threads(kernel *k, jp_error *err)
{
    k->sv.session = k->session;
    k->sv.io = k->io;
    k->ctl.sv = &k->sv;
    if (control_start(&k->ctl, err) < 0) {
        return -1;
    }
    k->threads_started = 1;
    return 0;
}

int kernel_run(const char *connection_file)
{
    static kernel k; /* one per process; signal paths reach it */
    jp_error err = {0};
    k.main_thread = pthread_self();
    k.wake_fd = -1;
    server_setup(&k);
    /* A frontend started in the background (`jupyter lab &`) hands SIGINT
     * down ignored, and Python installs its handler only over the default:
     * interrupts would silently do nothing. */
    signal(SIGINT, SIG_DFL);
    /* Threads inherit this mask: the kernel's own threads never take SIGINT
     * or SIGTERM.  The main thread unblocks both once they run, so it takes
     * SIGINT (Python's handler) and SIGTERM (control.c's), and processes
     * that cells start inherit no blocked signals. */
    sigset_t blocked;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGINT);
    sigaddset(&blocked, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &blocked, NULL);
    int rc = 1;
    if (kernel_setup(&k, connection_file, &err) < 0 || start_threads(&k, &err) < 0 ||
        control_install_sigterm(&err) < 0) {
        LOG_E("%s", err.text);
        goto done;
    }
    if (parent_watch_start() < 0) { /* a thread: started while signals are blocked */
        LOG_W("cannot watch the frontend process (JPY_PARENT_PID)");
    }
    pthread_sigmask(SIG_UNBLOCK, &blocked, NULL);
    iopub_set_parent(k.io, NULL);
    iopub_status(k.io, "starting");
    LOG_I("kernel ready; runtime directory %s", k.runtime_dir);
    shell_loop(&k);
    rc = 0;
done:
    kernel_teardown(&k);
    return rc;
}
