/* worker.h -- the worker role: `ferry-kernel --worker --conn-fd N ...`, or
 * a process the template (template.c) forks, which skips the first step. */
#ifndef FERRY_WORKER_H
#define FERRY_WORKER_H

/* Runs tasks that come on conn_fd (the worker's end of its socket to the
 * kernel, taken over) until the kernel goes away.  runtime_dir holds the
 * re-export module; status_fd (or -1) is the kernel's shared status page,
 * where the worker notes which task runs (procs.c reads it after a crash).
 * Returns the exit status. */
int worker_run(int conn_fd, const char *runtime_dir, const char *python, int status_fd);

/* The two steps of worker_run.  First the interpreter, as a worker's
 * (ferry._worker), on the calling thread; 0 or -1 (logged). */
int worker_init_python(const char *python, const char *runtime_dir);
/* Then, once it is there: take the link, start the io thread (which says
 * ready), call before_tasks (or not: NULL) on the calling thread, run
 * tasks.  The calling thread must be the one Python runs on, and the
 * process's only thread so far.  Does not return once it served; returns
 * the exit status when it could not start. */
int worker_serve(int conn_fd, int status_fd, void (*before_tasks)(void));

#endif
