/* worker.h -- the worker role: `ferry-kernel --worker ENDPOINT`. */
#ifndef FERRY_WORKER_H
#define FERRY_WORKER_H

/* Connects to the pool at endpoint and runs tasks until the kernel goes
 * away.  Returns the exit status. */
int worker_run(const char *endpoint, const char *python);

#endif
