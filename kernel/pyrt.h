/* pyrt.h -- the embedded CPython: start, call the runner, stop.
 *
 * The kernel's requests cross into Python here, with a JSON text each way,
 * so no PyObject reaches kernel.c; besides this file only the pool's Python
 * module (kernel/pool/pool_py.c, pyframe.c) and pyprint.c include Python.h.
 * The interpreter lives on the thread that initialised it; the GIL is
 * released whenever that thread is not inside a pyrt call.  See
 * docs/architecture.md for the threads. */
#ifndef FERRY_PYRT_H
#define FERRY_PYRT_H

#include <sys/types.h>

#include "jp.h"

typedef struct pyrt_hooks {
    void *ctx; /* passed back to every hook */
    /* A message for iopub under the current parent; content and metadata
     * (may be NULL) stolen, buffers taken over (entries zeroed). */
    void (*publish)(void *ctx, const char *msg_type, json_t *content, json_t *metadata,
                    jp_frame *buffers, size_t n_buffers);
    /* A copy of the header of the request being handled (caller decrefs),
     * or NULL when there is none or it cannot be read from this thread. */
    json_t *(*parent)(void *ctx);
    /* Text written to sys.stdout or sys.stderr ("stdout" / "stderr"). */
    void (*write)(void *ctx, const char *name, const char *text, size_t len);
    /* Asks the frontend for a line.  Returns 0 with *value (malloc'd),
     * -1 with err set when stdin is not allowed, -2 when interrupted. */
    int (*input)(void *ctx, const char *prompt, int password, char **value,
                 jp_error *err);
} pyrt_hooks;

typedef struct pyrt_config {
    const char *python;      /* the interpreter children should run */
    const char *package_dir; /* directory holding the ferry package */
    const char *runtime_dir; /* the kernel's private runtime directory */
    const char *role;        /* "kernel" or "worker" */
    const char *entry;       /* the role's entry module: ferry._kernel, ferry._worker */
    pyrt_hooks hooks;        /* callbacks from Python into the kernel */
} pyrt_config;

/* Initialises the interpreter on the calling thread, imports the role's
 * entry module and calls its start(role, runtime_dir, python).  Returns
 * with the GIL released. */
int pyrt_init(const pyrt_config *cfg, jp_error *err);

/* Calls <entry>.<func>(json_text) and parses its JSON result.  A
 * SIGINT pending from while the kernel was idle is dropped first.
 * Returns a new reference (caller decrefs) or NULL with err set. */
json_t *pyrt_call(const char *func, json_t *arg, jp_error *err);

/* Drops a SIGINT that arrived while idle (takes the GIL).  A worker calls
 * it just before it marks its next task running: from then on a SIGINT is
 * that task's. */
void pyrt_drop_signals(void);

/* Calls <entry>.<func>(frames) where frames is a list of writable
 * memoryviews over the in frames, which are taken over (cleared; the caller
 * frees the array) and live as long as Python holds a view - no copy.  The
 * function returns (ok, [bytes-like, ...]).  On return *out is a malloc'd
 * array of *n_out frames (caller clears and frees).  Returns 1 when ok is
 * true, 0 when false, -1 with err set when the call itself failed.  Unlike
 * pyrt_call, it keeps a pending SIGINT: see pyrt_drop_signals. */
int pyrt_call_frames(const char *func, jp_frame *in, size_t n_in, jp_frame **out,
                     size_t *n_out, jp_error *err);

/* Forks the process (clone with flags, SIGCHLD to the parent), with
 * CPython's own preparations around it, as os.fork() does.  Only for a
 * process with no other thread.  Returns as fork() does; in the child, the
 * interpreter is ready for the calling thread (GIL released). */
pid_t pyrt_fork(unsigned long flags);

/* Finalises the interpreter (with the GIL re-acquired). */
void pyrt_finalize(void);

#endif
