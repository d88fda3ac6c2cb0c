/* input.h -- reading lines on the terminal with GNU readline.
 *
 * readline runs in its callback mode, so that one poll watches the terminal
 * and the kernel's sockets together: output that arrives while a prompt is
 * shown is printed above it, Ctrl-C is seen as a flag between keystrokes, and
 * a kernel that ends the wait (an interrupted input()) can abort the read.
 * Tab asks the kernel for completions (complete_request); Up/Down, Ctrl-R and
 * the rest are readline's own, with history kept in a file.
 */
#ifndef REPL_INPUT_H
#define REPL_INPUT_H

#include "client.h"
#include "jp.h"

typedef enum input_status {
    INPUT_LINE,      /* *line set (malloc'd, no newline) */
    INPUT_EOF,       /* Ctrl-D on an empty line, or end of a piped stdin */
    INPUT_INTERRUPT, /* Ctrl-C */
    INPUT_ABORT,     /* the message callback asked to stop */
    INPUT_QUIT       /* SIGTERM or SIGHUP */
} input_status;

/* Called for each kernel message that arrives while a line is read; owns m.
 * Returns 1 to abort the read.  The prompt is hidden during the call. */
typedef int (*input_msg_fn)(void *arg, jp_channel ch, jp_msg *m);

/* Returns completion reply content for code at cursor (code points), or NULL. */
typedef json_t *(*input_complete_fn)(void *arg, const char *code, long cursor);

/* Sets readline up; reads the history file (path may be NULL: no history). */
void input_init(const char *history_path, input_complete_fn complete, void *arg);

/* Appends this session's history to the file and trims it. */
void input_save_history(void);

/* The lines of the cell typed so far, before the current one (borrowed until the
 * next call), so that completion sees the whole cell. */
void input_set_cell_prefix(const char *prefix);

/* Reads one line after prompt (which may hold \001..\002-wrapped escapes),
 * with prefill already typed.  history: add the line to the history. */
input_status input_readline(client *cl, const char *prompt, const char *prefill,
                            int history, input_msg_fn fn, void *arg, char **line);

/* Reads one line without echo (passwords). */
input_status input_password(client *cl, const char *prompt, input_msg_fn fn, void *arg,
                            char **line);

/* Reads one line from a stdin that is not a terminal (getline). */
input_status input_pipe_line(char **line);

#endif /* REPL_INPUT_H */
