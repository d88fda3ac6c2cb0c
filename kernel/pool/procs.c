/* procs.c -- the pool's worker processes (see procs.h). */
#define _GNU_SOURCE /* pidfd_open, prctl, sigabbrev_np */
#include "procs.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "log.h"
#include "pool_wire.h"

#define STATUS_PAGE_SIZE (2 * sizeof(uint64_t))

/* A page shared with the worker (see worker.c); -1 if none can be made,
 * and the pool then cannot tell which sent task a crash interrupted. */
static int status_page_new(volatile uint64_t **page)
{
    *page = NULL;
    int fd = memfd_create("ferry-worker-status", MFD_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    void *m = MAP_FAILED;
    if (ftruncate(fd, STATUS_PAGE_SIZE) == 0) {
        m = mmap(NULL, STATUS_PAGE_SIZE, PROT_READ, MAP_SHARED, fd, 0);
    }
    if (m == MAP_FAILED) {
        close(fd);
        return -1;
    }
    *page = m;
    return fd;
}

static const char *log_level_name(void)
{
    return log_enabled(LOG_DEBUG)  ? "debug"
           : log_enabled(LOG_INFO) ? "info"
           : log_enabled(LOG_WARN) ? "warn"
                                   : "error";
}

/* In the child: only async-signal-safe calls until exec.  A process group
 * of its own keeps a frontend's SIGINT to the kernel's group away from idle
 * workers.  fds 1 and 2 are the kernel's capture pipes: what the worker
 * says before it captures its own output would land in some cell, so it
 * gets the kernel's log instead; with no frontend behind its stdin, input()
 * in a task gets EOFError at once. */
static void exec_worker(pid_t parent, int logfd, int status_fd, int conn_fd,
                        char *const argv[])
{
    child_opts opts = {.parent = parent, .out_fd = logfd, .death_signal = SIGKILL};
    if (child_prepare(&opts) < 0) {
        _exit(1);
    }
    /* The two fds the worker inherits: its socket and its status page. */
    fcntl(conn_fd, F_SETFD, 0);
    if (status_fd >= 0) {
        fcntl(status_fd, F_SETFD, 0);
    }
    execv(argv[0], argv);
    _exit(127);
}

pid_t proc_spawn(proc *pr, const char *exe, int conn_fd, const char *runtime_dir)
{
    pid_t parent = getpid();
    int logfd = log_fd();
    volatile uint64_t *status;
    int status_fd = status_page_new(&status);
    char status_arg[16], conn_arg[16];
    snprintf(status_arg, sizeof status_arg, "%d", status_fd);
    snprintf(conn_arg, sizeof conn_arg, "%d", conn_fd);
    char *argv[] = {(char *)exe,
                    (char *)"--worker",
                    (char *)"--conn-fd",
                    conn_arg,
                    (char *)"--runtime-dir",
                    (char *)runtime_dir,
                    (char *)"--log-level",
                    (char *)log_level_name(),
                    (char *)"--status-fd",
                    status_arg,
                    NULL};
    pid_t pid = fork();
    if (pid == 0) {
        exec_worker(parent, logfd, status_fd, conn_fd, argv);
    }
    if (status_fd >= 0) {
        close(status_fd); /* the mapping stays */
    }
    if (pid < 0) {
        LOG_E("pool: cannot fork a worker: %s", strerror(errno));
        if (status) {
            munmap((void *)status, STATUS_PAGE_SIZE);
        }
        return -1;
    }
    *pr = (proc){.pid = pid, .pidfd = pidfd_open(pid, 0), .status = status};
    if (pr->pidfd < 0) {
        LOG_I("pool: no pidfd for worker %d (%s): its exit is polled", (int)pid,
              strerror(errno));
    }
    LOG_D("pool: started worker %d", (int)pid);
    return pid;
}

static void describe_exit(int status, char *buf, size_t size)
{
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        const char *name = sigabbrev_np(sig);
        snprintf(buf, size, "the worker process was killed by signal %d (SIG%s)", sig,
                 name ? name : "?");
    } else if (WEXITSTATUS(status) == POOL_EXIT_TASK_FAILED) {
        snprintf(buf, size,
                 "the worker process exited with code %d: its interpreter could not "
                 "run the task (the kernel log says why)",
                 POOL_EXIT_TASK_FAILED);
    } else {
        snprintf(buf, size, "the worker process exited with code %d",
                 WEXITSTATUS(status));
    }
}

int proc_reap(proc *pr, char *how, size_t size, sched_progress *progress, int *known)
{
    int status = 0;
    pid_t rc = waitpid(pr->pid, &status, WNOHANG);
    if (rc == 0 || (rc < 0 && errno != ECHILD)) {
        return 0;
    }
    if (rc < 0) {
        /* Someone else reaped it (SIGCHLD ignored in a cell?): the pidfd
         * says it is gone, the status is lost. */
        snprintf(how, size, "the worker process ended (exit status unknown)");
    } else {
        describe_exit(status, how, size);
    }
    *known = pr->status != NULL;
    *progress = (sched_progress){0};
    if (pr->status) {
        progress->running = __atomic_load_n(&pr->status[0], __ATOMIC_ACQUIRE);
        progress->finished = __atomic_load_n(&pr->status[1], __ATOMIC_ACQUIRE);
    }
    proc_release(pr);
    return 1;
}

void proc_release(proc *pr)
{
    if (pr->pid != 0 && pr->pidfd >= 0) {
        close(pr->pidfd);
    }
    if (pr->status) {
        munmap((void *)pr->status, STATUS_PAGE_SIZE);
    }
    *pr = (proc){.pidfd = -1};
}
