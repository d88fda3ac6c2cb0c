/* kernel.h -- the kernel role: sockets, threads and the request table. */
#ifndef FERRY_KERNEL_H
#define FERRY_KERNEL_H

#include <pthread.h>
#include <stdatomic.h>

#include "iopub.h"
#include "jp.h"

typedef struct kernel {
    jp_connection conn;       /* from the connection file */
    jp_session *session;      /* signs every message */
    void *zctx;               /* the ZeroMQ context */
    void *shell;              /* ROUTER, main thread */
    void *stdin_sock;         /* ROUTER, main thread */
    void *control_sock;       /* ROUTER, control thread */
    void *hb_sock;            /* ROUTER, heartbeat thread */
    iopub *io;                /* the publisher */
    pthread_t main_thread;    /* runs cells; SIGINT goes here */
    pthread_t control_thread; /* control channel */
    pthread_t hb_thread;      /* heartbeat echo */
    int threads_started;      /* control and heartbeat threads run */
    int wake_fd;              /* eventfd waking the main loop to stop */
    atomic_int stopping;      /* set once shutdown began */
    atomic_int busy;          /* a shell request is being handled */
    const jp_msg *current;    /* the shell request being handled */
    int allow_stdin;          /* current execute_request allows stdin */
    int abort_queued;         /* abort queued execute requests after idle */
    json_t *kernel_info;      /* kernel_info_reply content, computed once */
    char runtime_dir[256];    /* private runtime directory */
    char python[512];         /* interpreter for children */
} kernel;

/* Runs the kernel on connection_file until shutdown.  Returns the exit
 * status for main(). */
int kernel_run(const char *connection_file);

/* Begins shutdown from any thread: wakes the main loop, interrupts a
 * running cell, and arms a watchdog that ends the process if the main
 * thread cannot finish in time. */
void kernel_request_stop(kernel *k);

/* Replies on sock with an auto-built reply under req (content stolen),
 * wrapping nothing: the caller publishes status. */
int kernel_reply(kernel *k, void *sock, const jp_msg *req, const char *msg_type,
                 json_t *steal_content);

/* Answers a shutdown_request (on sock, and on iopub under req), without
 * stopping: the caller publishes status and stops. */
void kernel_shutdown_reply(kernel *k, void *sock, const jp_msg *req);

/* The control and heartbeat threads (control.c). */
int control_start(kernel *k, jp_error *err);
void control_join(kernel *k);
/* Installs the SIGTERM handler that wakes the signal thread. */
int control_install_sigterm(jp_error *err);

#endif
