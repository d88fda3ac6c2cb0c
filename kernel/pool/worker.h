/* worker.h -- the worker role: `ferry-kernel --worker ENDPOINT`, or a
 * process the template (template.c) forks, which skips the first step. */
#ifndef FERRY_WORKER_H
#define FERRY_WORKER_H

/* Connects to the pool at endpoint and runs tasks until the kernel goes
 * away.  status_fd (or -1) is the kernel's shared status page, where the
 * worker notes which task runs (procs.c reads it after a crash).  Returns
 * the exit status. */
int worker_run(const char *endpoint, const char *python, int status_fd);

/* The two steps of worker_run.  First the interpreter, as a worker's
 * (ferry._worker), on the calling thread; 0 or -1 (logged). */
int worker_init_python(const char *python, const char *runtime_dir);
/* Then, once it is there: connect, start the io thread (which says ready),
 * call before_tasks (or not: NULL) on the calling thread, run tasks.  The
 * calling thread must be the one Python runs on, and the process's only
 * thread so far.  Does not return once it served; returns the exit status
 * when it could not start. */
int worker_serve(const char *endpoint, int status_fd, void (*before_tasks)(void));

#endif
