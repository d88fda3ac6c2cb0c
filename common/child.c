/* child.c -- a child process's set-up between fork and exec (see child.h). */
#define _GNU_SOURCE /* prctl */
#include "child.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

int child_prepare(const child_opts *o)
{
    if (o->new_session) {
        setsid();
    } else {
        setpgid(0, 0);
    }
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != o->parent) {
        return -1; /* the parent died before the signal was armed */
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGINT, SIG_DFL); /* an ignored SIGINT would survive exec */
    if (o->default_sigpipe) {
        signal(SIGPIPE, SIG_DFL);
    }
    if (o->out_fd >= 0) {
        if (o->out_fd != 2) {
            dup2(o->out_fd, 2);
        }
        if (o->out_fd != 1) {
            dup2(o->out_fd, 1);
        }
    }
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0 && null != 0) {
        dup2(null, 0);
        close(null);
    }
    return 0;
}
