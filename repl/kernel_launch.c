/* kernel_launch.c -- the kernel as a child process.
 *
 * The child leads a session of its own (common/child.c): Ctrl-C in the
 * terminal then signals only the REPL, and an interrupt or a kill reaches
 * the kernel and everything it started (killpg, as jupyter_client does).
 * If the REPL is killed without a chance to clean up, a small reaper process
 * it forked first (it sees the end of a pipe) stops the kernel's group,
 * politely and then not, and removes the runtime directory; with the reaper
 * gone too, the parent-death signal still asks the kernel to end (SIGTERM,
 * so a ferry kernel removes its own files).
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
    int reaper_fd;            /* write end of the reaper's pipe, -1 if none */
    pid_t reaper;             /* the reaper process, 0 if none */
};

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* ------------------------------------------------------------ the reaper */

/* Tells the reaper which kernel to stop if the REPL dies (0: none, the
 * REPL has stopped it itself). */
static void tell_reaper(const kernel_proc *kp)
{
    if (kp->reaper_fd >= 0) {
        pid_t pid = kp->pid;
        ssize_t w = write(kp->reaper_fd, &pid, sizeof pid);
        (void)w;
    }
}

/* The reaper's life, in a forked child of a possibly threaded process: only
 * async-signal-safe calls.  fd 0 is the pipe: it reads kernel pids until
 * the REPL's end closes. */
static void reap_after_repl(const kernel_proc *kp)
{
    pid_t pid = 0, next;
    ssize_t r;
    while ((r = read(0, &next, sizeof next)) != 0) {
        if (r == (ssize_t)sizeof next) {
            pid = next;
        } else if (r < 0 && errno != EINTR) {
            break;
        }
    }
    if (pid > 0) { /* the REPL died with its kernel running */
        killpg(pid, SIGTERM);
        for (int i = 0; i < 100 && kill(pid, 0) == 0; i++) {
            sleep_ms(50);
        }
        killpg(pid, SIGKILL);
        unlink(kp->conn_path);
        unlink(kp->log_path);
        rmdir(kp->dir);
    }
    _exit(0);
}

/* Forks the reaper, in a session of its own so that the terminal's Ctrl-C
 * and hang-up do not reach it.  Without one (fork failed), the REPL still
 * works; only its files may stay if it is killed. */
static void start_reaper(kernel_proc *kp)
{
    int fds[2];
    kp->reaper_fd = -1;
    if (pipe2(fds, O_CLOEXEC) < 0) {
        return;
    }
    /* No parent-death signal: it is there to outlive the REPL. */
    child_opts opts = {.parent = getpid(), .new_session = 1, .out_fd = -1};
    pid_t pid = fork();
    if (pid == 0) {
        child_prepare(&opts);
        signal(SIGINT, SIG_IGN);
        signal(SIGHUP, SIG_IGN);
        dup2(fds[0], 0);
        close_range(1, ~0U, 0); /* no sockets or terminal kept open */
        reap_after_repl(kp);
    }
    close(fds[0]);
    if (pid < 0) {
        close(fds[1]);
        return;
    }
    kp->reaper = pid;
    kp->reaper_fd = fds[1];
}

/* Lets the reaper go (the kernel is stopped) and collects it. */
static void stop_reaper(kernel_proc *kp)
{
    if (kp->reaper_fd >= 0) {
        close(kp->reaper_fd);
        kp->reaper_fd = -1;
    }
    if (kp->reaper > 0) {
        while (waitpid(kp->reaper, NULL, 0) < 0 && errno == EINTR) {
        }
        kp->reaper = 0;
    }
}

/* ------------------------------------------------------------ the kernel */

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
            .death_signal = SIGTERM,
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
    tell_reaper(kp);
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
    kp->reaper_fd = -1;
    if (make_runtime_dir(kp->dir, sizeof kp->dir, err) < 0) {
        free(kp);
        return NULL;
    }
    snprintf(kp->conn_path, sizeof kp->conn_path, "%s/kernel-%ld.json", kp->dir,
             (long)getpid());
    snprintf(kp->log_path, sizeof kp->log_path, "%s/kernel.log", kp->dir);
    start_reaper(kp);
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
            tell_reaper(kp);
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
        tell_reaper(kp);
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
    stop_reaper(kp);
    jp_connection_clear(&kp->conn);
    free(kp);
    *kpp = NULL;
}
