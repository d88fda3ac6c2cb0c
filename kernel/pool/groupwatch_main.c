/* groupwatch_main.c -- ferry-groupwatch WORKER_PID: the watcher of a pool
 * worker's process group (groupwatch.h says why it exists).
 *
 * A program of its own, linked against libc alone, that the worker starts
 * with posix_spawn: forking the worker for it copied the worker's page
 * tables, made every page the worker wrote next a copy-on-write fault
 * (~1 ms of a new worker's first task), and left a process showing the
 * worker's whole RSS. */
#define _GNU_SOURCE /* close_range */
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        return 2;
    }
    pid_t worker = (pid_t)atol(argv[1]);
    /* The worker spawned it with every signal blocked (a SIGINT or SIGTERM
     * meant for the group must not end the watcher before the worker);
     * only the one awaited is taken. */
    close_range(3, ~0U, 0);
    prctl(PR_SET_PDEATHSIG, SIGUSR1);
    sigset_t awaited;
    sigemptyset(&awaited);
    sigaddset(&awaited, SIGUSR1);
    /* A SIGUSR1 from anyone else (a task signalling its group) is not the
     * worker's death: the parent tells.  The worker may have died before
     * the death signal was armed: then the parent is already another. */
    while (getppid() == worker) {
        int sig;
        sigwait(&awaited, &sig);
    }
    kill(0, SIGKILL);
    return 0;
}
