/* control.c -- the threads that answer while a cell runs: control (its
 * requests served from serve.c's table), the heartbeat echo, and SIGTERM. */
#include <errno.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <zmq.h>

#include "control.h"
#include "guard.h"
#include "log.h"
#include "runtime.h"

static pthread_t signal_thread;

/* The control and heartbeat sockets are bound by kernel_setup and handed
 * to these threads at creation (a thread start is the full memory barrier
 * ZeroMQ asks for when a socket changes threads). */
static void *control_main(void *arg)
{
    control *c = arg;
    for (;;) {
        jp_error err = {0};
        jp_msg *req = jp_recv(c->sv->session, c->control_sock, 0, &err);
        if (req == NULL) {
            if (errno == ETERM) {
                break;
            }
            guard_dropped("control", err.text);
            continue;
        }
        serve_control(c->sv, c->control_sock, &req);
    }
    zmq_close(c->control_sock);
    return NULL;
}

static void *heartbeat_main(void *arg)
{
    control *c = arg;
    /* A ROUTER proxied onto itself sends every message back to its sender:
     * the echo frontends expect, without ever waking Python. */
    zmq_proxy(c->hb_sock, c->hb_sock, NULL);
    zmq_close(c->hb_sock);
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
    control *c = arg;
    uint64_t count;
    while (read(term_fd, &count, sizeof count) < 0 && errno == EINTR) {
    }
    (void)c;
    LOG_I("SIGTERM: exiting");
    runtime_dir_remove_own();
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

int control_start(control *c, jp_error *err)
{
    term_fd = eventfd(0, EFD_CLOEXEC);
    if (term_fd < 0 || pthread_create(&c->control_thread, NULL, control_main, c) != 0 ||
        pthread_create(&c->hb_thread, NULL, heartbeat_main, c) != 0 ||
        pthread_create(&signal_thread, NULL, signal_main, c) != 0) {
        jp_error_set(err, "cannot start the control threads");
        return -1;
    }
    pthread_detach(signal_thread);
    return 0;
}

void control_join(control *c)
{
    pthread_join(c->control_thread, NULL);
    pthread_join(c->hb_thread, NULL);
}
