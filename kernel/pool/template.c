/* template.c -- the template process (see template.h).
 *
 * One thread, always: forking is safe only in a process without other
 * threads, as a thread holding a lock at the fork would hold it forever in
 * the child.  Python code runs here only for the imports the kernel asks
 * for; a module that starts a thread at import makes the template useless,
 * and it says so and exits (the kernel then execs its workers again). */
#define _GNU_SOURCE /* CLONE_PARENT */
#include "template.h"

#include <dirent.h>
#include <malloc.h>
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "groupwatch.h"
#include "log.h"
#include "pyrt.h"
#include "shared_pages.h"
#include "worker.h"

typedef struct tstate {
    int ctl;         /* the socket to the kernel */
    pid_t kernel;    /* the template's parent, and its workers' */
    int log_level;   /* passed on to the workers' log */
    char *args;      /* the argument area, for the workers' command line */
    size_t args_len; /* its size */
} tstate;

/* Threads in this process, from /proc/self/task; -1 when unknown. */
static int thread_count(void)
{
    DIR *d = opendir("/proc/self/task");
    if (d == NULL) {
        return -1;
    }
    int n = 0;
    for (struct dirent *e = readdir(d); e; e = readdir(d)) {
        n += e->d_name[0] != '.';
    }
    closedir(d);
    return n;
}

static void reply(tstate *t, char kind, const void *data, size_t len)
{
    char buf[512];
    len = len < sizeof buf - 1 ? len : sizeof buf - 1;
    buf[0] = kind;
    memcpy(buf + 1, data, len);
    if (send(t->ctl, buf, len + 1, MSG_NOSIGNAL) < 0) {
        LOG_W("template: cannot answer the kernel: %s", strerror(errno));
    }
}

/* Says a thread runs here (who started it: what) and exits. */
static void give_up(tstate *t, const char *what)
{
    reply(t, TEMPLATE_MSG_THREADS, what, strlen(what));
    _exit(0);
}

/* ------------------------------------------------------------ imports */

static void import_modules(tstate *t, const char *json_text, size_t len)
{
    json_error_t jerr;
    json_t *plan = json_loadb(json_text, len, 0, &jerr);
    if (plan == NULL) {
        LOG_W("template: a malformed import list: %s", jerr.text);
        return;
    }
    jp_error err = {0};
    json_t *r = pyrt_call("template_import", plan, &err);
    json_decref(plan);
    if (r == NULL) {
        LOG_W("template: %s", err.text);
        return;
    }
    const char *culprit = json_string_value(json_object_get(r, "threads"));
    if (culprit) {
        char what[300];
        snprintf(what, sizeof what, "importing %s started a thread", culprit);
        json_decref(r);
        give_up(t, what);
    }
    json_decref(r);
}

/* After start-up, and once the template has been quiet for IDLE_MS after
 * imports: the heap's free pages and the file pages the template does not
 * use go back (shared_pages.h).  Workers lose nothing by it: a fork copies
 * no page table entries of such mappings anyway. */
static void settle(void)
{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    malloc_trim(0);
    long pages = shared_pages_release();
    clock_gettime(CLOCK_MONOTONIC, &b);
    LOG_D("template: %ld pages of read-only segments let go in %ld us", pages,
          (long)((b.tv_sec - a.tv_sec) * 1000000 + (b.tv_nsec - a.tv_nsec) / 1000));
}

/* Settling waits for a quiet moment: during a burst of cells (Run All, a
 * loop of executes) the template must not compete with the kernel for the
 * cores at every cell, unmapping pages it maps again at the next plan.  A
 * cell defining ten functions took 2.1 ms instead of 0.9 with it done (and
 * the compiling) as each cell's plan came.  Compiling stays immediate: a
 * pool started by the next cell would wait for it. */
#define IDLE_MS 20

/* Whether the kernel sends nothing for IDLE_MS. */
static int quiet(int ctl)
{
    struct pollfd p = {.fd = ctl, .events = POLLIN};
    int rc;
    do {
        rc = poll(&p, 1, IDLE_MS);
    } while (rc < 0 && errno == EINTR);
    return rc == 0;
}

/* ------------------------------------------------------------- workers */

/* The command line ps shows for a forked worker, in the template's
 * argument area: the kernel binary's, as an exec'd worker's reads, marked
 * --forked, with its link's fd (`ferry-kernel --worker --forked --conn-fd
 * N`).  The area keeps its size, and a NUL at its end (else Linux takes it
 * for one string): the rest is spaces, at the end of the last argument. */
static void rename_worker(tstate *t, int conn_fd)
{
    char line[4096];
    int n = snprintf(line, sizeof line, "%s%c--worker%c--forked%c--conn-fd%c%d", t->args,
                     0, 0, 0, 0, conn_fd);
    if (n <= 0 || (size_t)n + 1 > t->args_len || (size_t)n >= sizeof line) {
        return;
    }
    memset(t->args, ' ', t->args_len - 1);
    memcpy(t->args, line, (size_t)n);
    t->args[t->args_len - 1] = '\0';
}

/* The kernel's environment for the worker being forked: "NAME=value"
 * strings end to end, each NUL-terminated (in the request's buffer). */
static const char *worker_env;
static size_t worker_env_len;

/* The environment as a JSON array, for Python (entries that are not UTF-8
 * are left out: JSON cannot carry them). */
static json_t *env_list(void)
{
    json_t *list = json_array();
    for (size_t off = 0; list && off < worker_env_len;) {
        const char *e = worker_env + off;
        json_array_append_new(list, json_string(e)); /* NULL when not UTF-8 */
        off += strlen(e) + 1;
    }
    return list;
}

/* Whether the request's environment is this process's, entry for entry:
 * then the worker keeps it, and Python is not given ~60 strings to build
 * and compare (each page a forked worker writes costs it a copy-on-write
 * fault, ~5 us here: 234 of them for that comparison, 78 without). */
static int env_unchanged(void)
{
    extern char **environ;
    size_t off = 0;
    for (char **e = environ; *e; e++) {
        size_t n = strlen(*e) + 1;
        if (off + n > worker_env_len || memcmp(worker_env + off, *e, n) != 0) {
            return 0;
        }
        off += n;
    }
    return off == worker_env_len;
}

/* In a forked worker, once it said ready, before its first task: what an
 * exec'd worker has from its start, here in the time the kernel takes to
 * answer the ready.  The group watcher may start now, with the io thread
 * running (posix_spawn is safe there): it exists before any task could
 * start a process. */
static void before_first_task(void)
{
    groupwatch_start();
    jp_error err = {0};
    json_t *arg =
        env_unchanged() ? json_object() : json_pack("{s:o}", "environ", env_list());
    json_t *r = arg ? pyrt_call("after_fork", arg, &err) : NULL;
    if (r == NULL) {
        LOG_W("worker: %s", arg ? err.text : "out of memory");
    }
    json_decref(r);
    json_decref(arg);
}

/* The value of name in the request's environment, or NULL. */
static const char *env_value(const char *name)
{
    size_t n = strlen(name);
    for (size_t off = 0; off < worker_env_len;) {
        const char *e = worker_env + off;
        if (strncmp(e, name, n) == 0 && e[n] == '=') {
            return e + n + 1;
        }
        off += strlen(e) + 1;
    }
    return NULL;
}

/* Whether a worker forked here runs the ferry package the request's
 * environment names (an exec'd worker reads FERRY_PACKAGE_DIR). */
static int same_package(void)
{
    const char *mine = getenv("FERRY_PACKAGE_DIR");
    const char *theirs = env_value("FERRY_PACKAGE_DIR");
    return mine == theirs || (mine && theirs && strcmp(mine, theirs) == 0);
}

/* In the forked child: becomes a worker on the link conn_fd, as
 * procs.c's exec'd ones are (a process group of its own, dying with the
 * kernel, nothing blocked), and never returns. */
static void become_worker(tstate *t, int conn_fd, int log_fd, int status_fd)
{
    close(t->ctl);
    setpgid(0, 0);
    /* The parent is the kernel's thread that forked the template: the
     * kernel's main thread, which lives as long as the kernel. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != t->kernel) {
        _exit(1); /* the kernel died before the signal was armed */
    }
    sigset_t unblocked;
    sigemptyset(&unblocked);
    sigprocmask(SIG_SETMASK, &unblocked, NULL);
    if (log_fd >= 0) {
        log_init(log_fd, (log_level)t->log_level);
    }
    rename_worker(t, conn_fd);
    _exit(worker_serve(conn_fd, status_fd, before_first_task));
}

/* A spawn request (payload: the bytes after the kind, len of them; fds:
 * the log, the link, the status page). */
static void spawn_worker(tstate *t, const char *payload, size_t len, const int *fds,
                         int n_fds)
{
    int log_fd = n_fds > 0 ? fds[0] : -1;
    int conn_fd = n_fds > 1 ? fds[1] : -1;
    int status_fd = n_fds > 2 ? fds[2] : -1;
    worker_env = payload;
    worker_env_len = len;
    int32_t answer = -ESTALE;
    if (thread_count() != 1) {
        give_up(t, "a thread runs in the template");
    }
    if (conn_fd < 0) {
        answer = -EBADF;
    } else if (same_package()) {
        pid_t pid = pyrt_fork(CLONE_PARENT);
        if (pid == 0) {
            become_worker(t, conn_fd, log_fd, status_fd);
        }
        answer = pid > 0 ? (int32_t)pid : -(int32_t)errno;
    }
    for (int i = 0; i < n_fds; i++) {
        close(fds[i]);
    }
    reply(t, TEMPLATE_MSG_PID, &answer, sizeof answer);
}

/* ---------------------------------------------------------------- loop */

/* Receives one message into buf (NUL-terminated) and the fds it carries;
 * its length, 0 at the kernel's end, -1 on error. */
static ssize_t receive(int ctl, char *buf, size_t size, int *fds, int *n_fds)
{
    union {
        char space[CMSG_SPACE(4 * sizeof(int))];
        struct cmsghdr align;
    } control;
    struct iovec iov = {.iov_base = buf, .iov_len = size - 1};
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = control.space,
                         .msg_controllen = sizeof control.space};
    ssize_t n;
    do {
        n = recvmsg(ctl, &msg, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    *n_fds = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); n >= 0 && c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            memcpy(fds, CMSG_DATA(c), k * sizeof(int));
            *n_fds = (int)k;
        }
    }
    buf[n > 0 ? n : 0] = '\0';
    return n;
}

int template_main(int ctl, const char *runtime_dir, const char *python, int level,
                  char *args, size_t args_len)
{
    tstate t = {.ctl = ctl,
                .kernel = getppid(),
                .log_level = level,
                .args = args,
                .args_len = args_len};
    if (worker_init_python(python, runtime_dir) < 0) {
        return 1;
    }
    jp_error err = {0};
    json_t *none = json_object();
    json_decref(pyrt_call("template_start", none, &err));
    json_decref(none);
    if (thread_count() != 1) {
        give_up(&t, "a thread runs in the template after Python's start");
    }
    settle();
    static char buf[TEMPLATE_MSG_MAX + 1];
    int unsettled = 0; /* imports since the last settle */
    for (;;) {
        if (unsettled && quiet(ctl)) {
            settle();
            unsettled = 0;
            continue;
        }
        int fds[4], n_fds;
        ssize_t n = receive(ctl, buf, sizeof buf, fds, &n_fds);
        if (n <= 0) {
            return 0; /* the kernel is gone */
        }
        if (buf[0] == TEMPLATE_MSG_IMPORT) {
            import_modules(&t, buf + 1, (size_t)n - 1);
            unsettled = 1;
        } else if (buf[0] == TEMPLATE_MSG_SPAWN) {
            spawn_worker(&t, buf + 1, (size_t)n - 1, fds, n_fds);
            continue;
        } else {
            LOG_W("template: dropping an unknown message");
        }
        for (int i = 0; i < n_fds; i++) {
            close(fds[i]);
        }
    }
}
