/* worker_output.h -- a worker's own stdout and stderr: the pipes that replace
 * fds 1 and 2, read into chunks that each belong to one task (worker.c sends
 * them to the kernel under that task's id). */
#ifndef FERRY_WORKER_OUTPUT_H
#define FERRY_WORKER_OUTPUT_H

#include <stddef.h>
#include <stdint.h>

/* Output read from a pipe, for one task. */
typedef struct wout_chunk {
    uint64_t task;           /* id of the task that was running */
    int stream;              /* 0 stdout, 1 stderr */
    size_t len;              /* bytes in data */
    struct wout_chunk *next; /* list link */
    char data[];             /* the bytes */
} wout_chunk;

typedef struct wout {
    int fd[2];         /* read ends of the stdout / stderr pipes (non-blocking) */
    char carry[2][4];  /* an unfinished UTF-8 character at a read's end */
    size_t n_carry[2]; /* its length */
} wout;

/* Replaces fds 1 and 2 with pipes whose read ends o keeps; 0 or -1. */
int wout_capture(wout *o);

/* Whether wout_drain would find anything (bytes in a pipe, or a character
 * carried over): one poll of both pipes, where a drain reads each. */
int wout_pending(const wout *o);

/* Reads what the pipes hold into chunks for task; with final, also a
 * character left unfinished (the task is over).  The caller makes sure no
 * other task's output can come in between (worker.c holds its lock).
 * Returns the chunks in order (the caller frees them), NULL if none. */
wout_chunk *wout_drain(wout *o, uint64_t task, int final);

#endif
