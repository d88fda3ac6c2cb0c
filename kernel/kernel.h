/* kernel.h -- the kernel role: its sockets and threads. */
#ifndef FERRY_KERNEL_H
#define FERRY_KERNEL_H

#include <pthread.h>
#include <stdatomic.h>

#include "control.h"
#include "iopub.h"
#include "jp.h"
#include "serve.h"

typedef struct kernel {
    jp_connection conn;    /* from the connection file */
    jp_session *session;   /* signs every message */
    void *zctx;            /* the ZeroMQ context */
    void *shell;           /* ROUTER, main thread */
    void *stdin_sock;      /* ROUTER, main thread */
    iopub *io;             /* the publisher */
    server sv;             /* what serves shell and control requests */
    control ctl;           /* the control, heartbeat and signal threads */
    pthread_t main_thread; /* runs cells; SIGINT goes here */
    int threads_started;   /* control and heartbeat threads run */
    int wake_fd;           /* eventfd waking the main loop to stop */
    atomic_int stopping;   /* set once shutdown began */
    char runtime_dir[256]; /* private runtime directory */
    char python[512];      /* interpreter for children */
} kernel;

/* Runs the kernel on connection_file until shutdown.  Returns the exit
 * status for main(). */
int kernel_run(const char *connection_file);

/* Begins shutdown from any thread: wakes the main loop, interrupts a
 * running cell, and arms a watchdog that ends the process if the main
 * thread cannot finish in time. */
void kernel_request_stop(kernel *k);

#endif
