/* kernel_launch.c -- the kernel as a child process.
 *
 * The child leads a session of its own (common/child.c): Ctrl-C in the
 * terminal then signals only the REPL, and an interrupt or a kill reaches
 * the kernel and everything it started (killpg, as jupyter_client does);
 * the parent-death signal makes the kernel die with the REPL even if the
 * REPL is killed without a chance to clean up.
 */
#include "kernel_launch.h"

#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct kernel_proc {
    const kernelspec *spec;   /* borrowed: how to start the kernel */
    jp_connection conn;       /* what the connection file says */
    char dir[128];            /* private runtime directory (base <= 60 bytes) */
    char conn_path[PATH_MAX]; /* dir/kernel-PID.json */
    char log_path[PATH_MAX];  /* dir/kernel.log */
    pid_t pid;                /* kernel process (and group) id; 0 when reaped */
    int status;               /* wait status once reaped */
};

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* Forks and execs the kernel; returns 0 with kp->pid set, or -1. */
static int spawn(kernel_proc *kp, jp_error *err)
{
    char **argv = kernelspec_argv(kp->spec, kp->conn_path);
    if (argv == NULL) {
        jp_error_set(err, "out of memory");
        return -1;
    }
    /* An exec failure is reported through a close-on-exec pipe. */
    int pipefd[2];
    if (pipe(pipefd) < 0) {
        jp_error_set(err, "pipe: %s", strerror(errno));
        kernelspec_free_strv(argv);
        return -1;
    }
    fcntl(pipefd[1], F_SETFD, FD_CLOEXEC);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        jp_error_set(err, "fork: %s", strerror(errno));
        close(pipefd[0]);
        close(pipefd[1]);
        kernelspec_free_strv(argv);
        return -1;
    }
    if (pid == 0) {
        close(pipefd[0]);
        child_opts opts = {
            .parent = parent,
            .new_session = 1,
            .default_sigpipe = 1,
            .out_fd = open(kp->log_path, O_WRONLY | O_CREAT | O_APPEND, 0600),
        };
        if (child_prepare(&opts) < 0) {
            _exit(127);
        }
        for (char **e = kp->spec->env; *e != NULL; e++) {
            putenv(*e);
        }
        execvp(argv[0], argv);
        int e = errno;
        ssize_t w = write(pipefd[1], &e, sizeof e);
        (void)w;
        _exit(127);
    }
    close(pipefd[1]);
    int child_errno = 0;
    ssize_t r;
    do {
        r = read(pipefd[0], &child_errno, sizeof child_errno);
    } while (r < 0 && errno == EINTR);
    close(pipefd[0]);
    if (r == (ssize_t)sizeof child_errno) {
        jp_error_set(err, "cannot run %s: %s", argv[0], strerror(child_errno));
        waitpid(pid, NULL, 0);
        kernelspec_free_strv(argv);
        return -1;
    }
    kernelspec_free_strv(argv);
    kp->pid = pid;
    kp->status = 0;
    return 0;
}

/* Makes the private runtime directory: short, so ipc paths fit in 107 bytes. */
static int make_runtime_dir(char *dir, size_t size, jp_error *err)
{
    const char *base = getenv("XDG_RUNTIME_DIR");
    struct stat st;
    if (base == NULL || stat(base, &st) != 0 || !S_ISDIR(st.st_mode) ||
        access(base, W_OK) != 0 || strlen(base) > 60) {
        base = "/tmp";
    }
    snprintf(dir, size, "%s/ferry-XXXXXX", base);
    if (mkdtemp(dir) == NULL) {
        jp_error_set(err, "cannot create a runtime directory in %s: %s", base,
                     strerror(errno));
        return -1;
    }
    return 0;
}

kernel_proc *kernel_proc_start(const kernelspec *spec, jp_error *err)
{
    kernel_proc *kp = calloc(1, sizeof *kp);
    if (kp == NULL) {
        jp_error_set(err, "out of memory");
        return NULL;
    }
    kp->spec = spec;
    if (make_runtime_dir(kp->dir, sizeof kp->dir, err) < 0) {
        free(kp);
        return NULL;
    }
    snprintf(kp->conn_path, sizeof kp->conn_path, "%s/kernel-%ld.json", kp->dir,
             (long)getpid());
    snprintf(kp->log_path, sizeof kp->log_path, "%s/kernel.log", kp->dir);
    if (jp_connection_init_new(&kp->conn, "127.0.0.1", spec->name, err) < 0 ||
        jp_connection_save(&kp->conn, kp->conn_path, err) < 0 || spawn(kp, err) < 0) {
        kernel_proc_destroy(&kp);
        return NULL;
    }
    return kp;
}

const jp_connection *kernel_proc_connection(const kernel_proc *kp)
{
    return &kp->conn;
}

int kernel_proc_interrupt(kernel_proc *kp)
{
    if (kp->pid <= 0) {
        return -1;
    }
    return killpg(kp->pid, SIGINT) == 0 || kill(kp->pid, SIGINT) == 0 ? 0 : -1;
}

static void describe(int status, char *why, size_t size)
{
    if (why == NULL) {
        return;
    }
    if (WIFSIGNALED(status)) {
        snprintf(why, size, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    } else {
        snprintf(why, size, "exited with status %d", WEXITSTATUS(status));
    }
}

int kernel_proc_alive(kernel_proc *kp, char *why, size_t why_size)
{
    if (kp->pid > 0) {
        int status;
        pid_t r = waitpid(kp->pid, &status, WNOHANG);
        if (r == 0) {
            return 1;
        }
        if (r == kp->pid) {
            kp->status = status;
            /* Whatever it started may still run in its group. */
            killpg(kp->pid, SIGKILL);
            kp->pid = 0;
        }
    }
    describe(kp->status, why, why_size);
    return 0;
}

int kernel_proc_wait(kernel_proc *kp, int timeout_ms)
{
    for (int waited = 0;; waited += 20) {
        if (!kernel_proc_alive(kp, NULL, 0)) {
            return 1;
        }
        if (waited >= timeout_ms) {
            return 0;
        }
        sleep_ms(20);
    }
}

void kernel_proc_kill(kernel_proc *kp)
{
    if (kp->pid > 0) {
        pid_t pid = kp->pid;
        killpg(pid, SIGKILL);
        kill(pid, SIGKILL);
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        kp->status = status;
        kp->pid = 0;
    }
}

int kernel_proc_restart(kernel_proc *kp, jp_error *err)
{
    kernel_proc_kill(kp);
    return spawn(kp, err);
}

void kernel_proc_print_log_tail(const kernel_proc *kp, size_t max_bytes)
{
    int fd = open(kp->log_path, O_RDONLY);
    if (fd < 0) {
        return;
    }
    off_t end = lseek(fd, 0, SEEK_END);
    off_t start = end > (off_t)max_bytes ? end - (off_t)max_bytes : 0;
    lseek(fd, start, SEEK_SET);
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        ssize_t w = write(2, buf, (size_t)n);
        (void)w;
    }
    close(fd);
}

void kernel_proc_destroy(kernel_proc **kpp)
{
    if (kpp == NULL || *kpp == NULL) {
        return;
    }
    kernel_proc *kp = *kpp;
    kernel_proc_kill(kp);
    if (kp->conn_path[0] != '\0') {
        unlink(kp->conn_path);
    }
    if (kp->log_path[0] != '\0') {
        unlink(kp->log_path);
    }
    if (kp->dir[0] != '\0') {
        rmdir(kp->dir);
    }
    jp_connection_clear(&kp->conn);
    free(kp);
    *kpp = NULL;
}
