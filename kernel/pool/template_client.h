/* template_client.h -- the kernel's end of the template process
 * (template.h): start it, tell it what the cells import, ask it for
 * workers.  One template per kernel, shared by every pool; callable from
 * any thread.
 *
 * It is started by the kernel's main thread, which lives as long as the
 * kernel: the parent-death signal of the template, and of the workers it
 * forks as the kernel's children, follows that thread.  When the template
 * cannot serve (never started, dead, or unsafe because a thread runs in
 * it), template_spawn says so and the pool forks and execs the worker as
 * before (procs.c). */
#ifndef FERRY_POOL_TEMPLATE_CLIENT_H
#define FERRY_POOL_TEMPLATE_CLIENT_H

#include <sys/types.h>

/* Starts the template (exe --template), unless it runs already or was
 * given up on.  Call from the kernel's main thread.  1 when it runs now, 0
 * when it will not (template_state says why). */
int template_start(const char *exe, const char *runtime_dir);

/* Has the template import what json_text ({"cwd", "path", "modules"})
 * lists; does not wait. */
void template_preload(const char *json_text);

/* Takes a copy of the kernel's environment, for the workers the template
 * forks from now on.  Call it from the thread that changes the environment
 * (the kernel's Python, with the GIL), after it may have changed. */
void template_environment(void);

/* A new worker, forked by the template as the kernel's child, with conn_fd
 * as its link to the pool, log_fd as its log and status_fd (or -1) as its
 * status page (procs.c); the fds stay the caller's.  Waits for the
 * template (which may be busy importing).  Its pid, or -1: fork and exec
 * it. */
pid_t template_spawn(int conn_fd, int log_fd, int status_fd);

/* The template's state: "off" (never started, or gone: it may start
 * again), "running", "unsafe" (a thread ran in it) or "failed" (it did
 * not answer); *pid its process (0 when none), *why the reason when it was
 * given up on.  Takes what it says from its socket first, if no other
 * thread is talking to it. */
const char *template_state(pid_t *pid, const char **why);

#endif
