/* worker.h -- the worker role: `ferry-kernel --worker ENDPOINT`. */
#ifndef FERRY_WORKER_H
#define FERRY_WORKER_H

/* Connects to the pool at endpoint and runs tasks until the kernel goes
 * away.  status_fd (or -1) is the kernel's shared status page, where the
 * worker notes which task runs (procs.c reads it after a crash).  Returns
 * the exit status. */
int worker_run(const char *endpoint, const char *python, int status_fd);

#endif
