/* groupwatch.c -- processes a task starts end with its worker.
 *
 * A task may start processes (subprocess.Popen, a multiprocessing pool of
 * its own).  They are the worker's children and would outlive it: the
 * parent-death signal that takes the worker down with the kernel reaches
 * only the worker, not its children's children.  So each worker starts a
 * watcher (ferry-groupwatch, groupwatch_main.c) before anything else.  The
 * watcher stays in the worker's process group (the pool gives each worker
 * a group of its own) and sleeps until its own parent-death signal says
 * the worker is gone - killed with the kernel, crashed, or stopped - then
 * kills the whole group, itself included.  Being in the group, it also
 * keeps the group id alive, so the kill cannot reach a stranger that
 * reused the number.
 *
 * What escapes: a process that leaves the group (setsid(), setpgid(), as
 * daemons and `start_new_session=True` do) is no longer the worker's to
 * end. */
#define _GNU_SOURCE
#include "groupwatch.h"

#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "paths.h"

int groupwatch_start(void)
{
    pid_t worker = getpid();
    if (getpgrp() != worker) {
        /* Not a group of its own (started by hand, not by a pool): the group
         * is someone else's, not ours to kill. */
        return 0;
    }
    char exe[PATH_MAX], pid_arg[24];
    if (paths_beside_binary("ferry-groupwatch", exe, sizeof exe) < 0) {
        LOG_W("worker: no ferry-groupwatch beside the kernel: processes tasks start "
              "may outlive the worker");
        return -1;
    }
    snprintf(pid_arg, sizeof pid_arg, "%d", (int)worker);
    char *argv[] = {exe, pid_arg, NULL};
    char *envp[] = {NULL};
    posix_spawnattr_t attr;
    sigset_t all;
    sigfillset(&all);
    posix_spawnattr_init(&attr);
    posix_spawnattr_setsigmask(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
    pid_t pid;
    int rc = posix_spawn(&pid, exe, NULL, &attr, argv, envp);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
        LOG_W("worker: cannot start the group watcher (%s): processes tasks start "
              "may outlive the worker",
              strerror(rc));
        return -1;
    }
    return 0;
}
