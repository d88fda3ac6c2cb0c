/* template_client.c -- the kernel's end of the template (see
 * template_client.h). */
#define _GNU_SOURCE /* SOCK_CLOEXEC */
#include "template_client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "log.h"
#include "procs.h"
#include "template.h"

/* How long a spawn waits for the template's answer.  It answers within a
 * millisecond unless an import keeps it busy (numpy: ~40 ms); one that
 * says nothing for this long is stuck, and is killed. */
#define SPAWN_TIMEOUT_MS 60000

/* Starts after which a template that keeps ending is given up on (one
 * that cannot even start would be exec'd again after every cell). */
#define MAX_STARTS 4

typedef enum tmpl_state { T_OFF, T_RUNNING, T_UNSAFE, T_FAILED } tmpl_state;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static tmpl_state state = T_OFF;
static int sock = -1;    /* the kernel's end of the socketpair */
static pid_t pid;        /* the template */
static char reason[300]; /* why it was given up on */
static int starts;       /* how many were started */

/* Ends the template (it may be gone already) and reaps it.  Under lock. */
static void lose(tmpl_state next, const char *why)
{
    if (pid > 0) {
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
        }
    }
    if (sock >= 0) {
        close(sock);
    }
    sock = -1;
    pid = 0;
    state = next;
    if (next == T_OFF) {
        LOG_I("pool: the template process ended (%s): workers start by exec until it "
              "starts again",
              why);
    } else {
        snprintf(reason, sizeof reason, "%s", why);
        LOG_W("pool: no more template process (%s): workers start by exec", why);
    }
}

/* One message from the template, waiting up to timeout_ms: its kind (buf
 * holds the rest), 0 when none came.  A thread report or the end of the
 * template is handled here.  Under lock. */
static char take_message(char *buf, size_t size, size_t *len, int timeout_ms)
{
    struct pollfd p = {.fd = sock, .events = POLLIN};
    int rc;
    do {
        rc = poll(&p, 1, timeout_ms);
    } while (rc < 0 && errno == EINTR);
    if (rc == 0) {
        return 0;
    }
    char msg[512];
    ssize_t n = rc > 0 ? recv(sock, msg, sizeof msg - 1, MSG_DONTWAIT) : -1;
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return 0;
    }
    if (n <= 0) {
        lose(T_OFF, n == 0 ? "it exited" : strerror(errno));
        return 0;
    }
    msg[n] = '\0';
    if (msg[0] == TEMPLATE_MSG_THREADS) {
        lose(T_UNSAFE, msg + 1);
        return 0;
    }
    *len = (size_t)n - 1 < size ? (size_t)n - 1 : size;
    memcpy(buf, msg + 1, *len);
    return msg[0];
}

/* The template cannot be written to: it ended.  What it said before it
 * went (a thread report) still waits in the socket, and names the reason.
 * Under lock. */
static void lose_unwritable(int err)
{
    char buf[64];
    size_t len;
    while (state == T_RUNNING && take_message(buf, sizeof buf, &len, 0) != 0) {
    }
    if (state == T_RUNNING) {
        lose(T_OFF, strerror(err));
    }
}

/* ---------------------------------------------------------------- start */

/* In the child, between fork and exec: async-signal-safe calls only. */
static void exec_template(pid_t parent, int fd, char *const argv[])
{
    child_opts opts = {.parent = parent, .out_fd = log_fd(), .death_signal = SIGKILL};
    if (child_prepare(&opts) < 0) {
        _exit(1);
    }
    fcntl(fd, F_SETFD, 0); /* the one fd it inherits */
    execv(argv[0], argv);
    _exit(127);
}

int template_start(const char *exe, const char *runtime_dir)
{
    pthread_mutex_lock(&lock);
    if (state == T_OFF && starts >= MAX_STARTS) {
        state = T_FAILED;
        snprintf(reason, sizeof reason, "it ended %d times", starts);
        LOG_W("pool: no more template process (%s): workers start by exec", reason);
    }
    if (state != T_OFF) {
        int running = state == T_RUNNING;
        pthread_mutex_unlock(&lock);
        return running;
    }
    starts++;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        LOG_W("pool: no template process: socketpair: %s", strerror(errno));
        pthread_mutex_unlock(&lock);
        return 0;
    }
    char fd_arg[16];
    snprintf(fd_arg, sizeof fd_arg, "%d", sv[1]);
    char *argv[] = {(char *)exe,
                    (char *)"--template",
                    (char *)"--control-fd",
                    fd_arg,
                    (char *)"--runtime-dir",
                    (char *)runtime_dir,
                    (char *)"--log-level",
                    (char *)proc_log_level_name(),
                    NULL};
    pid_t parent = getpid();
    pid_t child = fork();
    if (child == 0) {
        exec_template(parent, sv[1], argv);
    }
    close(sv[1]);
    if (child < 0) {
        LOG_W("pool: no template process: fork: %s", strerror(errno));
        close(sv[0]);
    } else {
        sock = sv[0];
        pid = child;
        state = T_RUNNING;
        LOG_D("pool: started the template process %d", (int)child);
    }
    pthread_mutex_unlock(&lock);
    return child > 0;
}

/* ------------------------------------------------------------- requests */

void template_preload(const char *json_text)
{
    size_t len = strlen(json_text);
    if (len + 1 > TEMPLATE_MSG_MAX) {
        LOG_W("pool: an import list too long for the template (%zu bytes)", len);
        return;
    }
    pthread_mutex_lock(&lock);
    if (state == T_RUNNING) {
        char kind = TEMPLATE_MSG_IMPORT;
        struct iovec iov[2] = {{&kind, 1}, {(void *)json_text, len}};
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = 2};
        if (sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
            if (errno == EAGAIN) {
                LOG_W("pool: the template is behind; an import list was dropped");
            } else {
                lose_unwritable(errno);
            }
        }
    }
    pthread_mutex_unlock(&lock);
}

/* The kernel's environment as the kernel's Python last saw it: "NAME=value"
 * strings end to end, each NUL-terminated.  A copy, taken by the thread
 * that may change it: reading environ from the dispatcher while a cell's
 * os.environ[...] = ... reallocates it would read freed memory. */
static char *env_copy;
static size_t env_len;

void template_environment(void)
{
    extern char **environ;
    size_t n = 0;
    for (char **e = environ; *e; e++) {
        n += strlen(*e) + 1;
    }
    char *copy = malloc(n + 1);
    if (copy == NULL) {
        return; /* the last copy stays */
    }
    char *p = copy;
    for (char **e = environ; *e; e++) {
        p = stpcpy(p, *e) + 1;
    }
    pthread_mutex_lock(&lock);
    free(env_copy);
    env_copy = copy;
    env_len = n;
    pthread_mutex_unlock(&lock);
}

/* The spawn request's bytes: kind, then the kernel's environment (a cell
 * may have changed it since the template started: an exec'd worker would
 * inherit it).  malloc'd; NULL when out of memory.  Under lock. */
static char *spawn_request(size_t *len)
{
    size_t n = 1 + env_len;
    char *buf = n <= TEMPLATE_MSG_MAX ? malloc(n) : NULL;
    if (buf == NULL) {
        return NULL;
    }
    buf[0] = TEMPLATE_MSG_SPAWN;
    if (env_len > 0) {
        memcpy(buf + 1, env_copy, env_len);
    }
    *len = n;
    return buf;
}

/* Sends a spawn request, with the fds by SCM_RIGHTS: the log, the
 * worker's end of its link to the pool, then the status page (if any).  0
 * or -1.  Under lock. */
static int send_spawn(int conn_fd, int log_fd, int status_fd)
{
    size_t len;
    char *request = spawn_request(&len);
    if (request == NULL) {
        LOG_W("pool: no memory for a request to the template, or too large an "
              "environment");
        return -1;
    }
    struct iovec iov = {request, len};
    int fds[3] = {log_fd, conn_fd, status_fd};
    int n_fds = status_fd >= 0 ? 3 : 2;
    union {
        char space[CMSG_SPACE(sizeof fds)];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof control);
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = control.space,
                         .msg_controllen = CMSG_SPACE(n_fds * sizeof(int))};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(n_fds * sizeof(int));
    memcpy(CMSG_DATA(c), fds, n_fds * sizeof(int));
    int rc = sendmsg(sock, &msg, MSG_NOSIGNAL) < 0 ? -1 : 0;
    if (rc < 0) {
        lose_unwritable(errno);
    }
    free(request);
    return rc;
}

pid_t template_spawn(int conn_fd, int log_fd, int status_fd)
{
    pid_t worker = -1;
    pthread_mutex_lock(&lock);
    if (state == T_RUNNING && send_spawn(conn_fd, log_fd, status_fd) == 0) {
        char buf[64];
        size_t len = 0;
        /* A message it sent before is a thread report or its end: either
         * ends the wait (the state changes). */
        char kind = take_message(buf, sizeof buf, &len, SPAWN_TIMEOUT_MS);
        if (kind == 0 && state == T_RUNNING) {
            lose(T_FAILED, "it did not answer a request for a worker in 60 s");
        }
        int32_t answer = 0;
        if (kind == TEMPLATE_MSG_PID && len == sizeof answer) {
            memcpy(&answer, buf, sizeof answer);
        }
        if (answer > 0) {
            worker = (pid_t)answer;
        } else if (kind == TEMPLATE_MSG_PID && answer == -ESTALE) {
            LOG_I("pool: FERRY_PACKAGE_DIR changed since the template started: "
                  "this worker starts by exec");
        } else if (kind == TEMPLATE_MSG_PID) {
            LOG_W("pool: the template could not fork a worker: %s", strerror(-answer));
        }
    }
    pthread_mutex_unlock(&lock);
    return worker;
}

const char *template_state(pid_t *pid_out, const char **why)
{
    static const char *const names[] = {"off", "running", "unsafe", "failed"};
    if (pthread_mutex_trylock(&lock) != 0) {
        /* A spawn is talking to it: what it knew last. */
        *pid_out = __atomic_load_n(&pid, __ATOMIC_RELAXED);
        *why = "";
        return names[__atomic_load_n(&state, __ATOMIC_RELAXED)];
    }
    char buf[64];
    size_t len;
    while (state == T_RUNNING && take_message(buf, sizeof buf, &len, 0) != 0) {
        /* an answer no one waits for: nothing to do with it */
    }
    const char *name = names[state];
    *pid_out = pid;
    *why = reason;
    pthread_mutex_unlock(&lock);
    return name;
}
