/* child.h -- a child process's set-up between fork and exec, written once
 * for the kernel's workers (kernel/pool/procs.c) and the REPL's kernel
 * (repl/kernel_launch.c).
 *
 * The child leads a process group of its own (or a session), so that a
 * terminal's or a frontend's SIGINT to its parent's group does not reach
 * it, while a killpg of its group reaches it and everything it starts; the
 * parent-death signal takes it down with its parent, even a parent killed
 * without a chance to clean up; it inherits no blocked or ignored SIGINT;
 * stdin is /dev/null (no one to answer), stdout and stderr go to a log. */
#ifndef FERRY_CHILD_H
#define FERRY_CHILD_H

#include <sys/types.h>

typedef struct child_opts {
    pid_t parent;        /* getpid() before the fork */
    int new_session;     /* setsid(), else setpgid(0, 0) */
    int default_sigpipe; /* SIGPIPE back to its default too */
    int out_fd;          /* becomes fds 1 and 2; -1 leaves them */
} child_opts;

/* In the child, right after fork: only async-signal-safe calls.  Returns
 * 0, or -1 when the parent died before the parent-death signal was armed
 * (the child must _exit). */
int child_prepare(const child_opts *o);

#endif
