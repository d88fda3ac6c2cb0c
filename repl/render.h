/* render.h -- showing what the kernel publishes on a terminal (or a pipe).
 *
 * stdout streams go to our stdout, stderr streams to our stderr (red when it is
 * a terminal); execute_result as "Out[N]: text" (just the text without
 * prompts); display_data as text/plain, images as a one-line note
 * "[image/png 12.3 kB]" (and saved to a directory on request); errors as the
 * kernel's traceback on stderr (ANSI colours kept on a terminal, removed
 * otherwise).  clear_output and update_display_data redraw in place on a
 * terminal, by moving the cursor up over the rows written since; on a pipe
 * they just append.
 */
#ifndef REPL_RENDER_H
#define REPL_RENDER_H

#include "jp.h"

/* prompts: show "Out[N]: "; save_images: directory or NULL (borrowed). */
void render_init(int prompts, const char *save_images);

/* Starts the output of a new cell: what clear_output may erase starts here. */
void render_begin_cell(void);

/* Ends a cell's output: makes sure the cursor is at the start of a line. */
void render_end_cell(void);

/* Notes that Ctrl-C was pressed while a cell ran: the terminal echoed "^C"
 * where the cursor was, so output goes on from a new line. */
void render_interrupted(void);

/* Shows one iopub message (status, execute_input and the like are ignored). */
void render_iopub(const jp_msg *m);

/* Shows text through $PAGER (default "less -R") on a terminal, else prints it. */
void render_page(const char *text);

/* Writes a message of the REPL itself (not the kernel's) to stderr. */
void render_note(const char *fmt, ...) JP_PRINTF(1, 2);

/* 1 when stdout is a terminal and colours are wanted (NO_COLOR unset). */
int render_color(void);

#endif /* REPL_RENDER_H */
