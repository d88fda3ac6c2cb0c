/* groupwatch.c -- processes a task starts end with its worker.
 *
 * A task may start processes (subprocess.Popen, a multiprocessing pool of
 * its own).  They are the worker's children and would outlive it: the
 * parent-death signal that takes the worker down with the kernel reaches
 * only the worker, not its children's children.  So each worker forks a
 * watcher before anything else.  The watcher stays in the worker's process
 * group (the pool gives each worker a group of its own) and sleeps until
 * its own parent-death signal says the worker is gone - killed with the
 * kernel, crashed, or stopped - then kills the whole group, itself
 * included.  Being in the group, it also keeps the group id alive, so the
 * kill cannot reach a stranger that reused the number.
 *
 * What escapes: a process that leaves the group (setsid(), setpgid(), as
 * daemons and `start_new_session=True` do) is no longer the worker's to
 * end. */
#define _GNU_SOURCE /* close_range */
#include "groupwatch.h"

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "log.h"

/* The watcher: never returns. */
static void watch(pid_t worker)
{
    /* Every signal blocked: a SIGINT or SIGTERM meant for the group must not
     * end the watcher before the worker; only the one awaited is taken. */
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    close_range(3, ~0U, 0);
    prctl(PR_SET_PDEATHSIG, SIGUSR1);
    sigset_t awaited;
    sigemptyset(&awaited);
    sigaddset(&awaited, SIGUSR1);
    /* A SIGUSR1 from anyone else (a task signalling its group) is not the
     * worker's death: the parent tells. */
    while (getppid() == worker) {
        int sig;
        sigwait(&awaited, &sig);
    }
    kill(0, SIGKILL);
    _exit(0);
}

int groupwatch_start(void)
{
    pid_t worker = getpid();
    if (getpgrp() != worker) {
        /* Not a group of its own (started by hand, not by a pool): the group
         * is someone else's, not ours to kill. */
        return 0;
    }
    pid_t pid = fork();
    if (pid < 0) {
        LOG_W("worker: cannot fork the group watcher: processes tasks start "
              "may outlive the worker");
        return -1;
    }
    if (pid == 0) {
        watch(worker);
    }
    return 0;
}
