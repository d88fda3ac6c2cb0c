/* kernel_launch.h -- starting, signalling and stopping a kernel process.
 *
 * A launched kernel gets a private runtime directory (mode 0700, short, under
 * $XDG_RUNTIME_DIR or /tmp) holding its connection file (127.0.0.1, five free
 * ports, a random HMAC key) and its log (the kernel's stdout and stderr).  The
 * kernel runs in its own session, so the terminal's Ctrl-C reaches only the
 * REPL, which decides how to interrupt; it is killed if the REPL dies.
 */
#ifndef REPL_KERNEL_LAUNCH_H
#define REPL_KERNEL_LAUNCH_H

#include <sys/types.h>

#include "jp.h"
#include "kernelspec.h"

typedef struct kernel_proc kernel_proc;

/* Creates the runtime directory and connection file, then starts the kernel
 * described by spec (which is only borrowed).  Returns the process handle,
 * which the caller stops and frees with kernel_proc_destroy; NULL with err set
 * on failure (nothing left behind). */
kernel_proc *kernel_proc_start(const kernelspec *spec, jp_error *err) JP_WUR;

/* The connection the kernel was told to use (owned by kp). */
const jp_connection *kernel_proc_connection(const kernel_proc *kp);

/* Sends SIGINT to the kernel's process group.  Returns 0 or -1. */
int kernel_proc_interrupt(kernel_proc *kp);

/* Checks without blocking whether the kernel is still running; when it
 * exited, writes a description ("exited with status 1", "killed by signal 9")
 * into why.  Returns 1 alive, 0 dead. */
int kernel_proc_alive(kernel_proc *kp, char *why, size_t why_size);

/* Waits up to timeout_ms for the kernel to exit.  Returns 1 if it did. */
int kernel_proc_wait(kernel_proc *kp, int timeout_ms);

/* Kills the kernel's process group (SIGKILL) and reaps it. */
void kernel_proc_kill(kernel_proc *kp);

/* Starts the same kernel again on the same connection file (after it died). */
int kernel_proc_restart(kernel_proc *kp, jp_error *err) JP_WUR;

/* Writes up to the last max_bytes of the kernel's log to fd 2. */
void kernel_proc_print_log_tail(const kernel_proc *kp, size_t max_bytes);

/* Kills the kernel if still running (the caller asks it politely first),
 * removes the runtime directory and frees kp.  Accepts NULL. */
void kernel_proc_destroy(kernel_proc **kp);

#endif /* REPL_KERNEL_LAUNCH_H */
