/* session.h -- one conversation with one kernel: readiness, cells,
 * is_complete, completion, interrupts and shutdown.
 *
 * While it waits for a reply the session shows iopub output as it arrives,
 * answers input_request on the stdin channel, turns Ctrl-C into an interrupt
 * (SIGINT to the kernel's process group for a kernel we started with
 * interrupt_mode "signal", interrupt_request on control otherwise) and
 * notices a kernel that died (waitpid for ours, the heartbeat otherwise).
 */
#ifndef REPL_SESSION_H
#define REPL_SESSION_H

#include "client.h"
#include "jp.h"
#include "kernel_launch.h"

/* How the kernel's input() is answered. */
typedef enum session_stdin {
    SESSION_STDIN_TERMINAL, /* a readline prompt on the terminal */
    SESSION_STDIN_PIPE,     /* the next line of our (non-terminal) stdin */
    SESSION_STDIN_NONE      /* no stdin: the kernel gets EOF */
} session_stdin;

typedef struct session {
    client *cl;               /* the channels, owned */
    kernel_proc *kp;          /* the kernel process when we started it, else NULL */
    session_stdin stdin_mode; /* how to answer input_request */
    int interrupt_by_signal;  /* 1: SIGINT to kp, 0: interrupt_request */
    long execution_count;     /* last count the kernel reported */
    int is_complete_ok;       /* kernel answers is_complete_request in time */
    int ask_exit;             /* the kernel asked the frontend to exit */
    int keep_kernel;          /* ask_exit said keepkernel */
    char *next_input;         /* set_next_input payload to pre-fill, owned */
    char *language;           /* language_info.name ("python"), owned */
    char *banner;             /* kernel_info banner, owned */
    int iopub_given_up;       /* iopub never delivered: stop waiting for it */
    int dead;                 /* the kernel died */
    char dead_why[128];       /* how it died */
} session;

/* Waits up to timeout_ms for the kernel to answer kernel_info_request
 * (resent every second): then the first prompt can be shown.  Returns 0 or
 * -1 with err set (kernel died, timed out, interrupted). */
int session_wait_ready(session *s, int timeout_ms, jp_error *err) JP_WUR;

/* Result of running a cell. */
typedef enum session_result {
    SESSION_OK,    /* status "ok" */
    SESSION_ERROR, /* status "error" or "aborted" */
    SESSION_DEAD,  /* the kernel died (s->dead set) */
    SESSION_QUIT   /* SIGTERM/SIGHUP: stop now */
} session_result;

/* Waits, once per connection, until iopub delivers (asking kernel_info
 * every 50 ms; a kernel that answers 20 of them with no status on iopub is
 * taken to publish none): output published before our subscription reaches
 * the kernel would be lost.  session_execute calls it first. */
session_result session_wait_iopub(session *s);

/* Runs code and waits for its reply and its output.  silent: no output, no
 * history, no execution count (for set-up code). */
session_result session_execute(session *s, const char *code, int silent);

/* Asks whether code is complete.  Writes "complete", "incomplete", "invalid"
 * or "unknown" into status and the suggested indent into indent.  Returns -1
 * (and clears is_complete_ok) when the kernel does not answer within 1 s. */
int session_is_complete(session *s, const char *code, char *status, size_t status_size,
                        char *indent, size_t indent_size);

/* Asks for completions of code at cursor_pos (in code points).  Returns the
 * reply content (caller decrefs) or NULL on timeout. */
json_t *session_complete(session *s, const char *code, long cursor_pos);

/* Interrupts the running cell (see above). */
void session_interrupt(session *s);

/* Checks that the kernel lives; sets s->dead when it does not. */
int session_check_alive(session *s);

/* Restarts a kernel we started and waits until it is ready. */
int session_restart(session *s, jp_error *err) JP_WUR;

/* Asks the kernel to shut down (control channel), waits for it to exit and
 * kills it if it does not, when we started it.  For an attached kernel, does
 * nothing unless shutdown is 1. */
void session_shutdown(session *s, int shutdown_attached);

/* Shows iopub output that does not belong to a request of ours (output of
 * background threads, other clients); drains without waiting. */
void session_drain(session *s);

#endif /* REPL_SESSION_H */
