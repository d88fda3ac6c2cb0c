/* input.c -- readline in callback mode, polled together with the kernel.
 *
 * The loop in read_line() is readline's documented alternate interface:
 * rl_callback_handler_install() shows the prompt, rl_callback_read_char() is
 * called whenever the terminal is readable, and the line handler receives the
 * finished line (NULL on Ctrl-D).  readline's own signal handlers are off
 * (rl_catch_signals = 0): SIGINT only sets a flag (signals.c), the poll returns
 * EINTR, and the line is thrown away here.
 *
 * To print above a prompt, the prompt and the line are saved, the display is
 * emptied, the output written, and both put back (rl_save_prompt and
 * rl_restore_prompt around rl_redisplay).
 */
#include "input.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <readline/history.h>
#include <readline/readline.h>

#include "signals.h"

static struct {
    char *line;                 /* finished line, from the handler */
    int done;                   /* the handler ran */
    input_complete_fn complete; /* asks the kernel for completions */
    void *complete_arg;         /* its argument */
    const char *prefix;         /* the cell's earlier lines, for completion */
    char *history_path;         /* history file, or NULL */
    int added;                  /* history entries added in this session */
} I;

/* -------------------------------------------------------- code points */

/* Number of code points in the first n bytes of s (UTF-8). */
static long code_points(const char *s, size_t n)
{
    long cp = 0;
    for (size_t i = 0; i < n && s[i] != '\0'; i++) {
        cp += ((unsigned char)s[i] & 0xc0) != 0x80;
    }
    return cp;
}

/* Byte offset of code point cp in s, clamped to [0, strlen(s)]. */
static int cp_to_byte(const char *s, long cp)
{
    int i = 0;
    if (cp <= 0) {
        return 0;
    }
    for (long seen = 0; s[i] != '\0'; i++) {
        if (((unsigned char)s[i] & 0xc0) != 0x80) {
            if (seen == cp) {
                return i;
            }
            seen++;
        }
    }
    return i;
}

/* ----------------------------------------------------------- completion */

static void replace_range(int start, int end, const char *text)
{
    rl_begin_undo_group();
    rl_delete_text(start, end);
    rl_point = start;
    rl_insert_text(text);
    rl_end_undo_group();
}

/* Tab: indent when only blanks precede the cursor, else ask the kernel. */
static int complete_key(int count, int key)
{
    (void)count;
    (void)key;
    int blank = 1;
    for (int i = 0; i < rl_point; i++) {
        blank &= rl_line_buffer[i] == ' ' || rl_line_buffer[i] == '\t';
    }
    if (blank) {
        static const char spaces[] = "    ";
        rl_insert_text(spaces + rl_point % 4);
        return 0;
    }
    if (I.complete == NULL) {
        rl_ding();
        return 0;
    }
    const char *prefix = I.prefix ? I.prefix : "";
    size_t plen = strlen(prefix), llen = strlen(rl_line_buffer);
    char *code = malloc(plen + llen + 1);
    if (code == NULL) {
        return 0;
    }
    memcpy(code, prefix, plen);
    memcpy(code + plen, rl_line_buffer, llen + 1);
    long prefix_cp = code_points(prefix, plen);
    json_t *reply = I.complete(I.complete_arg, code,
                               prefix_cp + code_points(rl_line_buffer, (size_t)rl_point));
    free(code);
    json_t *matches = json_object_get(reply, "matches");
    size_t n = json_array_size(matches);
    if (n == 0) {
        json_decref(reply);
        rl_ding();
        return 0;
    }
    long cs =
        (long)json_integer_value(json_object_get(reply, "cursor_start")) - prefix_cp;
    long ce = (long)json_integer_value(json_object_get(reply, "cursor_end")) - prefix_cp;
    int start = cp_to_byte(rl_line_buffer, cs), end = cp_to_byte(rl_line_buffer, ce);
    if (end < start) {
        end = start;
    }
    const char *first = json_string_value(json_array_get(matches, 0));
    size_t common = first ? strlen(first) : 0, longest = 0;
    for (size_t i = 0; i < n; i++) {
        const char *m = json_string_value(json_array_get(matches, i));
        size_t k = 0;
        if (m == NULL) {
            continue;
        }
        while (k < common && m[k] == first[k]) {
            k++;
        }
        common = k;
        longest = strlen(m) > longest ? strlen(m) : longest;
    }
    while (common > 0 && ((unsigned char)first[common] & 0xc0) == 0x80) {
        common--; /* never cut a character in two */
    }
    if (n == 1) {
        replace_range(start, end, first);
    } else if (common > (size_t)(end - start)) {
        char *lcp = strndup(first, common);
        if (lcp != NULL) {
            replace_range(start, end, lcp);
            free(lcp);
        }
    } else {
        char **list = calloc(n + 2, sizeof *list);
        if (list != NULL) {
            list[0] = strndup(first, common);
            for (size_t i = 0; i < n; i++) {
                const char *m = json_string_value(json_array_get(matches, i));
                list[i + 1] = (char *)(m ? m : "");
            }
            rl_display_match_list(list, (int)n, (int)longest);
            rl_forced_update_display();
            free(list[0]);
            free(list);
        }
    }
    json_decref(reply);
    return 0;
}

/* -------------------------------------------------------------- history */

void input_init(const char *history_path, input_complete_fn complete, void *arg)
{
    I.complete = complete;
    I.complete_arg = arg;
    rl_readline_name = "ferry";
    rl_catch_signals = 0;
    rl_catch_sigwinch = 0;
    rl_change_environment = 0;
    rl_initialize();
    rl_bind_key('\t', complete_key);
    using_history();
    if (history_path != NULL) {
        I.history_path = strdup(history_path);
        read_history(history_path);
    }
}

void input_save_history(void)
{
    if (I.history_path == NULL || I.added == 0) {
        return;
    }
    /* Append, so that sessions running side by side keep each other's lines. */
    if (access(I.history_path, F_OK) != 0 ||
        append_history(I.added, I.history_path) != 0) {
        write_history(I.history_path);
    }
    history_truncate_file(I.history_path, 10000);
    I.added = 0;
}

static void remember(const char *line)
{
    if (line[strspn(line, " \t")] == '\0') {
        return;
    }
    HIST_ENTRY *last =
        history_length > 0 ? history_get(history_base + history_length - 1) : NULL;
    if (last != NULL && strcmp(last->line, line) == 0) {
        return;
    }
    add_history(line);
    I.added++;
}

void input_set_cell_prefix(const char *prefix)
{
    I.prefix = prefix;
}

/* ------------------------------------------------------------- reading */

static void on_line(char *line)
{
    I.line = line;
    I.done = 1;
    rl_callback_handler_remove();
}

/* 1 when handling m may print something (iopub output, an input request). */
static int shows_output(jp_channel ch, const jp_msg *m)
{
    const char *type = jp_msg_type(m);
    if (ch == JP_STDIN) {
        return 1;
    }
    return ch == JP_IOPUB && strcmp(type, "status") != 0 &&
           strcmp(type, "execute_input") != 0 && strcmp(type, "clear_output") != 0;
}

/* Calls fn for m with the prompt and the line hidden, then shows them again. */
static int call_hidden(input_msg_fn fn, void *arg, jp_channel ch, jp_msg *m)
{
    int point = rl_point;
    char *saved = rl_copy_text(0, rl_end);
    rl_save_prompt();
    rl_replace_line("", 0);
    rl_redisplay();
    int abort_read = fn(arg, ch, m);
    fflush(stdout);
    fflush(stderr);
    rl_restore_prompt();
    rl_replace_line(saved ? saved : "", 0);
    rl_point = point;
    if (!abort_read) {
        rl_forced_update_display();
    }
    free(saved);
    return abort_read;
}

/* Forgets the line being typed and leaves readline's callback mode. */
static void abandon_line(const char *mark)
{
    /* The mark goes after the line as typed; what readline does next happens
     * on the fresh line below. */
    rl_point = rl_end;
    rl_redisplay();
    fputs(mark, stdout);
    fflush(stdout);
    rl_replace_line("", 0);
    rl_free_line_state();
    rl_callback_sigcleanup();
    rl_callback_handler_remove();
}

input_status input_readline(client *cl, const char *prompt, const char *prefill,
                            int history, input_msg_fn fn, void *arg, char **line)
{
    *line = NULL;
    I.done = 0;
    I.line = NULL;
    fflush(stdout);
    fflush(stderr);
    rl_callback_handler_install(prompt, on_line);
    if (prefill != NULL && *prefill != '\0') {
        rl_insert_text(prefill);
        rl_redisplay();
    }
    for (;;) {
        jp_channel ch;
        jp_msg *m = NULL;
        switch (client_poll(cl, fileno(rl_instream), -1, &ch, &m)) {
        case CLIENT_FD:
            rl_callback_read_char();
            if (I.done) {
                if (I.line == NULL) {
                    fputs("\n", stdout);
                    fflush(stdout);
                    return INPUT_EOF;
                }
                if (history) {
                    remember(I.line);
                }
                *line = I.line;
                return INPUT_LINE;
            }
            break;
        case CLIENT_MESSAGE:
            if (!shows_output(ch, m)) {
                /* Nothing to print: spare the prompt a redraw. */
                if (fn(arg, ch, m)) {
                    abandon_line("\n");
                    return INPUT_ABORT;
                }
            } else if (call_hidden(fn, arg, ch, m)) {
                abandon_line("\n");
                return INPUT_ABORT;
            }
            break;
        case CLIENT_SIGNAL:
            if (signals_quit_requested()) {
                abandon_line("\n");
                return INPUT_QUIT;
            }
            if (signals_take_resize()) {
                rl_resize_terminal();
            }
            if (signals_take_interrupt()) {
                abandon_line("^C\n");
                return INPUT_INTERRUPT;
            }
            break;
        case CLIENT_ERROR:
            if (errno != EAGAIN) {
                abandon_line("\n");
                return INPUT_EOF;
            }
            break;
        case CLIENT_TIMEOUT:
            break;
        }
    }
}

input_status input_password(client *cl, const char *prompt, input_msg_fn fn, void *arg,
                            char **line)
{
    struct termios saved, quiet;
    int tty = tcgetattr(0, &saved) == 0;
    input_status st = INPUT_LINE;
    size_t len = 0, cap = 128;
    char *buf = malloc(cap);
    *line = NULL;
    if (buf == NULL) {
        return INPUT_EOF;
    }
    if (tty) {
        quiet = saved;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        quiet.c_lflag |= ICANON;
        tcsetattr(0, TCSANOW, &quiet);
    }
    fputs(prompt, stdout);
    fflush(stdout);
    for (;;) {
        jp_channel ch;
        jp_msg *m = NULL;
        client_event ev = client_poll(cl, 0, -1, &ch, &m);
        if (ev == CLIENT_FD) {
            if (len + 2 > cap) {
                char *bigger = realloc(buf, cap *= 2);
                if (bigger == NULL) {
                    st = INPUT_EOF;
                    break;
                }
                buf = bigger;
            }
            ssize_t r = read(0, buf + len, 1);
            if (r <= 0) {
                st = len > 0 ? INPUT_LINE : INPUT_EOF;
                break;
            }
            if (buf[len] == '\n') {
                break;
            }
            len++;
        } else if (ev == CLIENT_MESSAGE) {
            if (fn(arg, ch, m)) {
                st = INPUT_ABORT;
                break;
            }
        } else if (ev == CLIENT_SIGNAL) {
            if (signals_quit_requested()) {
                st = INPUT_QUIT;
                break;
            }
            if (signals_take_interrupt()) {
                st = INPUT_INTERRUPT;
                break;
            }
        }
    }
    if (tty) {
        tcsetattr(0, TCSANOW, &saved);
    }
    fputs(st == INPUT_INTERRUPT ? "^C\n" : "\n", stdout);
    fflush(stdout);
    buf[len] = '\0';
    if (st == INPUT_LINE) {
        *line = buf;
    } else {
        free(buf);
    }
    return st;
}

input_status input_pipe_line(char **line)
{
    size_t cap = 0;
    *line = NULL;
    ssize_t n = getline(line, &cap, stdin);
    if (n < 0) {
        free(*line);
        *line = NULL;
        return signals_quit_requested() ? INPUT_QUIT : INPUT_EOF;
    }
    if (n > 0 && (*line)[n - 1] == '\n') {
        (*line)[--n] = '\0';
    }
    return INPUT_LINE;
}
