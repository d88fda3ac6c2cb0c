/* control.c -- the threads that answer while a cell runs: control (interrupt,
 * shutdown, kernel_info), the heartbeat echo, and SIGTERM. */
#define _GNU_SOURCE /* pthread_kill */
#include <errno.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <zmq.h>

#include "kernel.h"
#include "guard.h"
#include "log.h"
#include "runtime.h"

static pthread_t signal_thread;

static void control_handle(kernel *k, void *sock, const jp_msg *req)
{
    const char *type = jp_msg_type(req);
    /* Status goes under the control request's own header, leaving the
     * running cell's parent (and its output) untouched. */
    iopub_publish_under(k->io, req->header, "status",
                        json_pack("{s:s}", "execution_state", "busy"));
    if (strcmp(type, "interrupt_request") == 0) {
        if (atomic_load(&k->busy)) {
            pthread_kill(k->main_thread, SIGINT);
        }
        kernel_reply(k, sock, req, "interrupt_reply", json_pack("{s:s}", "status", "ok"));
    } else if (strcmp(type, "shutdown_request") == 0) {
        json_t *restart = json_object_get(req->content, "restart");
        kernel_reply(
            k, sock, req, "shutdown_reply",
            json_pack("{s:s, s:b}", "status", "ok", "restart", json_is_true(restart)));
        kernel_request_stop(k);
    } else if (strcmp(type, "kernel_info_request") == 0) {
        kernel_reply(k, sock, req, "kernel_info_reply", json_deep_copy(k->kernel_info));
    } else {
        LOG_W("unknown request type '%s' on control: no reply", type);
    }
    iopub_publish_under(k->io, req->header, "status",
                        json_pack("{s:s}", "execution_state", "idle"));
}

/* The control and heartbeat sockets are bound by kernel_setup and handed
 * to these threads at creation (a thread start is the full memory barrier
 * ZeroMQ asks for when a socket changes threads). */
static void *control_main(void *arg)
{
    kernel *k = arg;
    for (;;) {
        jp_error err = {0};
        jp_msg *req = jp_recv(k->session, k->control_sock, 0, &err);
        if (req == NULL) {
            if (errno == ETERM) {
                break;
            }
            guard_dropped("control", err.text);
            continue;
        }
        control_handle(k, k->control_sock, req);
        jp_msg_destroy(&req);
    }
    zmq_close(k->control_sock);
    return NULL;
}

static void *heartbeat_main(void *arg)
{
    kernel *k = arg;
    /* A ROUTER proxied onto itself sends every message back to its sender:
     * the echo frontends expect, without ever waking Python. */
    zmq_proxy(k->hb_sock, k->hb_sock, NULL);
    zmq_close(k->hb_sock);
    return NULL;
}

/* SIGTERM is handled, not blocked: a blocked signal would be inherited by
 * every process a cell starts, and Popen.terminate() or a Pool's exit could
 * then no longer stop them.  The handler only wakes the signal thread. */
static int term_fd = -1;
/* The kernel's pid.  A child a cell forks (multiprocessing's fork start
 * method, os.fork) inherits this handler and term_fd: its SIGTERM - a Pool's
 * terminate(), Process.terminate() - must end the child, not the kernel. */
static pid_t term_pid;

static void on_sigterm(int sig)
{
    if (getpid() != term_pid) {
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    uint64_t one = 1;
    ssize_t rc = write(term_fd, &one, sizeof one);
    (void)rc;
}

/* SIGTERM ends the kernel at once, as it ends ipykernel: the client sees the
 * process die, not a cell interrupted and a reply.  What is left to clean
 * up goes with the process: pool workers by their parent-death signal (and
 * the processes their tasks started, by the watcher holding each worker's
 * process group), the runtime directory here. */
static void *signal_main(void *arg)
{
    kernel *k = arg;
    uint64_t count;
    while (read(term_fd, &count, sizeof count) < 0 && errno == EINTR) {
    }
    LOG_I("SIGTERM: exiting");
    runtime_dir_remove(k->runtime_dir);
    signal(SIGTERM, SIG_DFL);
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    pthread_sigmask(SIG_UNBLOCK, &term, NULL);
    raise(SIGTERM); /* dies of it, as an unhandled SIGTERM would */
    _exit(128 + SIGTERM);
    return NULL;
}

int control_install_sigterm(jp_error *err)
{
    term_pid = getpid();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigterm;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) < 0) {
        jp_error_set(err, "cannot handle SIGTERM: %s", strerror(errno));
        return -1;
    }
    return 0;
}

int control_start(kernel *k, jp_error *err)
{
    term_fd = eventfd(0, EFD_CLOEXEC);
    if (term_fd < 0 || pthread_create(&k->control_thread, NULL, control_main, k) != 0 ||
        pthread_create(&k->hb_thread, NULL, heartbeat_main, k) != 0 ||
        pthread_create(&signal_thread, NULL, signal_main, k) != 0) {
        jp_error_set(err, "cannot start the control threads");
        return -1;
    }
    pthread_detach(signal_thread);
    k->threads_started = 1;
    return 0;
}

void control_join(kernel *k)
{
    pthread_join(k->control_thread, NULL);
    pthread_join(k->hb_thread, NULL);
}
