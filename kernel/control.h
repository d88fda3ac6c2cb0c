/* control.h -- the threads that answer while a cell runs: control (served
 * from the kernel's one handler table, serve.c), the heartbeat echo, and
 * SIGTERM.  They know the kernel only through its server. */
#ifndef FERRY_CONTROL_H
#define FERRY_CONTROL_H

#include <pthread.h>

#include "jp.h"
#include "serve.h"

typedef struct control {
    server *sv;               /* serves the control requests; stop() on SIGTERM */
    void *control_sock;       /* ROUTER, bound by the kernel, then the thread's */
    void *hb_sock;            /* ROUTER, bound by the kernel, then the thread's */
    pthread_t control_thread; /* control channel */
    pthread_t hb_thread;      /* heartbeat echo */
} control;

/* Starts the control, heartbeat and signal threads; the sockets become
 * theirs.  The threads end when the ZeroMQ context is shut down. */
int control_start(control *c, jp_error *err);
void control_join(control *c);
/* Installs the SIGTERM handler that wakes the signal thread. */
int control_install_sigterm(jp_error *err);

#endif
