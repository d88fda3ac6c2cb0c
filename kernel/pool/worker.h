/* worker.h -- the worker role: `ferry-kernel --worker --conn-fd N ...`. */
#ifndef FERRY_WORKER_H
#define FERRY_WORKER_H

/* Runs tasks that come on conn_fd (the worker's end of its socket to the
 * kernel, taken over) until the kernel goes away.  runtime_dir holds the
 * re-export module; status_fd (or -1) is the kernel's shared status page,
 * where the worker notes which task runs (procs.c reads it after a crash).
 * Returns the exit status. */
int worker_run(int conn_fd, const char *runtime_dir, const char *python, int status_fd);

#endif
