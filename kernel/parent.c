/* parent.c -- the parent watch, as ipykernel's ParentPollerUnix.
 *
 * jupyter_client puts its own pid in JPY_PARENT_PID.  If that process dies
 * (SIGKILL, a crash) nobody will send a shutdown_request, and the kernel
 * would run on with its workers.  The kernel's parent changes when it dies
 * (to init or a subreaper), so a thread checks getppid() once a second.  A
 * parent-death signal is no substitute: it fires when the *thread* that
 * started the kernel exits, which a frontend's launcher thread may do. */
#define _GNU_SOURCE
#include "parent.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"

static pid_t expected; /* JPY_PARENT_PID if it was the parent, else 0 */

static int parent_gone(void)
{
    pid_t now = getppid();
    return expected ? now != expected : now == 1;
}

static void *watch_main(void *arg)
{
    (void)arg;
    while (!parent_gone()) {
        sleep(1);
    }
    LOG_W("the frontend that started the kernel (pid %d) has gone: exiting",
          (int)expected);
    kill(getpid(), SIGTERM); /* the prompt exit control.c does */
    return NULL;
}

int parent_watch_start(void)
{
    const char *env = getenv("JPY_PARENT_PID");
    long pid = env ? strtol(env, NULL, 10) : 0;
    if (pid <= 0) {
        return 0;
    }
    /* Started through a wrapper, the kernel's parent is not the frontend:
     * then only the parent becoming init says the tree was killed. */
    expected = (pid_t)pid == getppid() ? (pid_t)pid : 0;
    pthread_t t;
    if (pthread_create(&t, NULL, watch_main, NULL) != 0) {
        return -1;
    }
    pthread_detach(t);
    return 0;
}
