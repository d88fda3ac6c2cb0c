/* main.c -- ferry, a terminal client for Jupyter kernels.
 *
 * Modes, chosen from the arguments and from what stdin is:
 *   ferry                 interactive prompt (stdin a terminal)
 *   ferry < cells.py      stdin split into cells as the prompt would split it
 *   ferry -c CODE         one cell
 *   ferry FILE [ARGS...]  the file as one cell, after a silent cell that sets
 *                         sys.argv = [FILE, ARGS...] (Python kernels only), so
 *                         that line numbers in tracebacks are the file's own
 * Without prompts, the first error stops the run with exit status 1.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "input.h"
#include "kernel_launch.h"
#include "kernelspec.h"
#include "options.h"
#include "render.h"
#include "session.h"
#include "signals.h"

/* ------------------------------------------------------------- helpers */

/* Reads a whole file into a malloc'd string, or NULL with errno set. */
static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    for (size_t n; buf != NULL && (n = fread(buf + len, 1, cap - len - 1, f)) > 0;) {
        len += n;
        if (cap - len < 2) {
            char *bigger = realloc(buf, cap *= 2);
            if (bigger == NULL) {
                free(buf);
                buf = NULL;
            }
            buf = bigger;
        }
    }
    fclose(f);
    if (buf != NULL) {
        buf[len] = '\0';
    }
    return buf;
}

static int blank(const char *s)
{
    return s[strspn(s, " \t\r\f\v\n")] == '\0';
}

/* Appends "\n" (when buf is not empty) and line to the malloc'd *buf. */
static int append_line(char **buf, const char *line)
{
    size_t old = *buf ? strlen(*buf) : 0;
    char *grown = realloc(*buf, old + strlen(line) + 2);
    if (grown == NULL) {
        return -1;
    }
    if (old > 0) {
        grown[old++] = '\n';
    }
    strcpy(grown + old, line);
    *buf = grown;
    return 0;
}

/* Removes trailing blank lines and trailing whitespace at the end. */
static void trim_end(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && strchr(" \t\r\n", s[n - 1]) != NULL) {
        n--;
    }
    s[n] = '\0';
}

/* Decides whether buf, whose last line was just entered (last_blank when it
 * was empty), is a cell ready to run.  Writes the indent to pre-fill. */
static int cell_ready(session *s, const char *buf, int last_blank, char *indent,
                      size_t indent_size)
{
    char status[32];
    indent[0] = '\0';
    if (s->is_complete_ok &&
        session_is_complete(s, buf, status, sizeof status, indent, indent_size) == 0) {
        if (strcmp(status, "complete") == 0 || strcmp(status, "invalid") == 0) {
            return 1;
        }
        if (strcmp(status, "incomplete") == 0) {
            return 0;
        }
    }
    indent[0] = '\0';
    return last_blank; /* no answer, or "unknown": a blank line ends the cell */
}

static void print_death(session *s)
{
    render_note("ferry: the kernel %s.", s->dead_why[0] ? s->dead_why : "died");
    if (s->kp != NULL) {
        kernel_proc_print_log_tail(s->kp, 2000);
    }
}

/* --------------------------------------------------- non-interactive */

static int run_one(session *s, const char *code)
{
    switch (session_execute(s, code, 0)) {
    case SESSION_OK:
        return 0;
    case SESSION_DEAD:
        print_death(s);
        return EXIT_CELL_ERROR;
    default:
        return EXIT_CELL_ERROR;
    }
}

/* Python code that sets sys.argv to argv[0..], or NULL. */
static char *argv_setter(const char *script, char **args)
{
    json_t *list = json_array();
    json_array_append_new(list, json_string(script));
    for (char **a = args; *a != NULL; a++) {
        json_array_append_new(list, json_string(*a));
    }
    /* A JSON list of strings (ASCII-escaped) is also a Python literal. */
    char *lit = json_dumps(list, JSON_ENSURE_ASCII | JSON_COMPACT);
    json_decref(list);
    if (lit == NULL) {
        return NULL;
    }
#define ARGV_FMT "import sys as _ferry_sys\n_ferry_sys.argv = %s\ndel _ferry_sys\n"
    size_t n = sizeof ARGV_FMT + strlen(lit);
    char *code = malloc(n);
    if (code != NULL) {
        snprintf(code, n, ARGV_FMT, lit);
    }
#undef ARGV_FMT
    free(lit);
    return code;
}

static int run_script(session *s, const options *o)
{
    char *code = read_file(o->script);
    if (code == NULL) {
        fprintf(stderr, "ferry: cannot read %s: %s\n", o->script, strerror(errno));
        return EXIT_USAGE;
    }
    if (s->language != NULL && strcmp(s->language, "python") == 0) {
        char *setter = argv_setter(o->script, o->script_args);
        if (setter == NULL || session_execute(s, setter, 1) != SESSION_OK) {
            render_note("ferry: could not set sys.argv");
        }
        free(setter);
    }
    int status = run_one(s, code);
    free(code);
    return status;
}

static int run_code(session *s, const options *o)
{
    if (s->language != NULL && strcmp(s->language, "python") == 0) {
        char *setter = argv_setter("-c", o->script_args);
        if (setter == NULL || session_execute(s, setter, 1) != SESSION_OK) {
            render_note("ferry: could not set sys.argv");
        }
        free(setter);
    }
    return run_one(s, o->code);
}

static int run_piped(session *s)
{
    char *buf = NULL, *line = NULL, indent[128];
    int status = 0;
    while (status == 0 && input_pipe_line(&line) == INPUT_LINE) {
        int line_blank = blank(line);
        if ((buf == NULL || *buf == '\0') && line_blank) {
            free(line);
            continue;
        }
        if (append_line(&buf, line_blank ? "" : line) < 0) {
            status = EXIT_CELL_ERROR;
        }
        free(line);
        line = NULL;
        if (status == 0 && cell_ready(s, buf, line_blank, indent, sizeof indent)) {
            trim_end(buf);
            status = run_one(s, buf);
            buf[0] = '\0';
        }
        if (signals_quit_requested()) {
            status = EXIT_CELL_ERROR;
        }
    }
    free(line);
    if (status == 0 && buf != NULL && !blank(buf)) {
        trim_end(buf);
        status = run_one(s, buf);
    }
    free(buf);
    return status;
}

/* -------------------------------------------------------- interactive */

/* Output that arrives while the prompt is shown: background threads, other
 * clients of the same kernel. */
static int prompt_message(void *arg, jp_channel ch, jp_msg *m)
{
    session *s = arg;
    const char *type = jp_msg_type(m);
    if (ch == JP_SHELL && strcmp(type, "is_complete_reply") == 0) {
        s->is_complete_ok = 1; /* late, but it answers */
    }
    if (ch == JP_IOPUB && strcmp(type, "status") != 0 &&
        strcmp(type, "execute_input") != 0) {
        render_begin_cell();
        render_iopub(m);
        render_end_cell();
    }
    jp_msg_destroy(&m);
    return 0;
}

static json_t *complete_cb(void *arg, const char *code, long cursor)
{
    return session_complete(arg, code, cursor);
}

static void make_prompts(long n, char *in, size_t in_size, char *more, size_t more_size)
{
    char plain[48];
    int width = snprintf(plain, sizeof plain, "In [%ld]: ", n);
    if (render_color()) {
        /* \001 and \002 tell readline which bytes take no room. */
        snprintf(in, in_size,
                 "\001\033[32m\002In [\001\033[1;32m\002%ld\001\033[0;32m\002]: "
                 "\001\033[0m\002",
                 n);
        snprintf(more, more_size, "%*s\001\033[32m\002...: \001\033[0m\002", width - 5,
                 "");
    } else {
        snprintf(in, in_size, "%s", plain);
        snprintf(more, more_size, "%*s...: ", width - 5, "");
    }
}

typedef enum cell_status { CELL_READY, CELL_EMPTY, CELL_EOF, CELL_QUIT } cell_status;

/* Reads one cell at the prompt into *cell (malloc'd). */
static cell_status read_cell(session *s, char **cell)
{
    char in[128], more[128], indent[128] = "";
    char *buf = NULL, *line = NULL;
    make_prompts(s->execution_count + 1, in, sizeof in, more, sizeof more);
    const char *prefill = s->next_input;
    *cell = NULL;
    for (;;) {
        input_set_cell_prefix(buf);
        char *prefix_nl = NULL;
        if (buf != NULL) {
            /* Completion sees the earlier lines, each ended by a newline. */
            prefix_nl = malloc(strlen(buf) + 2);
            if (prefix_nl != NULL) {
                sprintf(prefix_nl, "%s\n", buf);
            }
            input_set_cell_prefix(prefix_nl);
        }
        input_status st =
            input_readline(s->cl, buf ? more : in, prefill ? prefill : indent, 1,
                           prompt_message, s, &line);
        input_set_cell_prefix(NULL);
        free(prefix_nl);
        if (prefill != NULL) {
            free(s->next_input);
            s->next_input = NULL;
            prefill = NULL;
        }
        if (st == INPUT_QUIT) {
            free(buf);
            return CELL_QUIT;
        }
        if (st == INPUT_EOF) {
            free(buf);
            return CELL_EOF;
        }
        if (st == INPUT_INTERRUPT || st == INPUT_ABORT) {
            free(buf);
            return CELL_EMPTY;
        }
        int line_blank = blank(line);
        if (buf == NULL && line_blank) {
            free(line);
            return CELL_EMPTY;
        }
        int failed = append_line(&buf, line_blank ? "" : line);
        free(line);
        line = NULL;
        if (failed < 0) {
            free(buf);
            return CELL_EMPTY;
        }
        if (cell_ready(s, buf, line_blank, indent, sizeof indent)) {
            trim_end(buf);
            *cell = buf;
            return CELL_READY;
        }
    }
}

/* After the kernel died: offers a restart.  Returns 0 to go on, -1 to stop. */
static int offer_restart(session *s)
{
    print_death(s);
    if (s->kp == NULL) {
        return -1;
    }
    char *answer = NULL;
    input_status st = input_readline(s->cl, "Restart the kernel? [Y/n] ", "", 0,
                                     prompt_message, s, &answer);
    int yes =
        st == INPUT_LINE && (answer[0] == '\0' || answer[0] == 'y' || answer[0] == 'Y');
    free(answer);
    if (!yes) {
        return -1;
    }
    jp_error err = {0};
    if (session_restart(s, &err) < 0) {
        render_note("ferry: restart failed: %s", err.text);
        return -1;
    }
    render_note("ferry: kernel restarted.");
    return 0;
}

static char *history_path(void)
{
    const char *env = getenv("FERRY_HISTORY");
    char dir[PATH_MAX], path[PATH_MAX];
    if (env != NULL) {
        return *env ? strdup(env) : NULL;
    }
    const char *xdg = getenv("XDG_DATA_HOME");
    const char *home = getenv("HOME");
    if (xdg != NULL && *xdg != '\0') {
        snprintf(dir, sizeof dir, "%s/ferry", xdg);
    } else if (home != NULL && *home != '\0') {
        snprintf(dir, sizeof dir, "%s/.local/share/ferry", home);
    } else {
        return NULL;
    }
    /* mkdir -p: each missing parent, then the directory itself. */
    for (char *slash = strchr(dir + 1, '/'); slash != NULL;
         slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        mkdir(dir, 0755);
        *slash = '/';
    }
    mkdir(dir, 0700);
    if (snprintf(path, sizeof path, "%s/repl_history", dir) >= (int)sizeof path) {
        return NULL;
    }
    return strdup(path);
}

/* Sets up readline and reads the history: done while the kernel starts. */
static void prepare_interactive(session *s)
{
    char *hist = history_path();
    input_init(hist, complete_cb, s);
    free(hist);
}

static int run_interactive(session *s, const options *o)
{
    if (!o->quiet) {
        /* The kernel's own first line (it names itself), then ours. */
        const char *b = s->banner && *s->banner ? s->banner
                        : s->language           ? s->language
                                                : "kernel";
        printf("%.*s\nferry %s: Ctrl-D exits, Ctrl-C interrupts.\n\n",
               (int)strcspn(b, "\n"), b, FERRY_VERSION);
        fflush(stdout);
    }
    int status = 0;
    for (;;) {
        char *cell = NULL;
        cell_status cs = read_cell(s, &cell);
        if (cs == CELL_EOF || cs == CELL_QUIT) {
            break;
        }
        if (cs == CELL_EMPTY) {
            continue;
        }
        session_result r = session_execute(s, cell, 0);
        free(cell);
        input_save_history();
        if (r == SESSION_QUIT) {
            break;
        }
        if (r == SESSION_DEAD || s->dead) {
            if (offer_restart(s) < 0) {
                status = EXIT_CELL_ERROR;
                break;
            }
            continue;
        }
        if (s->ask_exit) {
            break;
        }
        fputs("\n", stdout);
        fflush(stdout);
    }
    input_save_history();
    return status;
}

/* -------------------------------------------------------------- main */

/* Resolves --existing FILE, also looked up in Jupyter's runtime directory. */
static int resolve_existing(const char *name, char *out, size_t size)
{
    if (access(name, R_OK) == 0 || strchr(name, '/') != NULL) {
        snprintf(out, size, "%s", name);
        return 0;
    }
    const char *rt = getenv("JUPYTER_RUNTIME_DIR");
    const char *home = getenv("HOME");
    if (rt != NULL && *rt != '\0') {
        snprintf(out, size, "%s/%s", rt, name);
    } else {
        snprintf(out, size, "%s/.local/share/jupyter/runtime/%s", home ? home : "", name);
    }
    return 0;
}

int main(int argc, char **argv)
{
    options o = {0};
    options_parse(argc, argv, &o);
    int interactive = o.code == NULL && o.script == NULL && isatty(0);
    if (o.script != NULL && access(o.script, R_OK) != 0) {
        fprintf(stderr, "ferry: cannot read %s: %s\n", o.script, strerror(errno));
        return EXIT_USAGE;
    }
    if (o.save_images != NULL) {
        mkdir(o.save_images, 0755);
    }
    if (signals_install() < 0) {
        fprintf(stderr, "ferry: cannot make a pipe: %s\n", strerror(errno));
        return EXIT_USAGE;
    }
    render_init(interactive, o.save_images);

    session s = {0};
    kernelspec *spec = NULL;
    jp_connection conn = {0};
    jp_error err = {0};
    int status = EXIT_USAGE;

    /* Start the kernel before ZeroMQ makes threads, and make those threads
     * with our signals blocked so that Ctrl-C reaches this thread. */
    signals_block();
    if (o.existing != NULL) {
        char path[PATH_MAX];
        resolve_existing(o.existing, path, sizeof path);
        if (jp_connection_load(&conn, path, &err) == 0) {
            s.cl = client_new(&conn, 0, &err);
        }
    } else {
        spec = o.kernel ? kernelspec_find(o.kernel, &err) : kernelspec_default(&err);
        if (spec != NULL) {
            s.kp = kernel_proc_start(spec, &err);
            s.interrupt_by_signal = spec->interrupt_signal;
        }
        if (s.kp != NULL) {
            s.cl =
                client_new(kernel_proc_connection(s.kp), CLIENT_RETRY_STARTING_MS, &err);
        }
    }
    signals_unblock();
    if (s.cl == NULL) {
        fprintf(stderr, "ferry: %s\n", err.text);
        goto done;
    }
    if (o.code != NULL || o.script != NULL) {
        s.stdin_mode = isatty(0) ? SESSION_STDIN_TERMINAL : SESSION_STDIN_PIPE;
    } else {
        s.stdin_mode = interactive ? SESSION_STDIN_TERMINAL : SESSION_STDIN_PIPE;
    }
    if (interactive) {
        prepare_interactive(&s);
    }
    if (session_wait_ready(&s, o.startup_timeout * 1000, &err) < 0) {
        fprintf(stderr, "ferry: %s\n", err.text);
        if (s.kp != NULL) {
            kernel_proc_print_log_tail(s.kp, 2000);
        }
        status = EXIT_CELL_ERROR;
        goto done;
    }
    if (o.code != NULL) {
        status = run_code(&s, &o);
    } else if (o.script != NULL) {
        status = run_script(&s, &o);
    } else if (interactive) {
        status = run_interactive(&s, &o);
    } else {
        status = run_piped(&s);
    }
    if (signals_quit_requested() && status == 0) {
        status = EXIT_CELL_ERROR;
    }
done:
    if (s.cl != NULL) {
        session_shutdown(&s, 0);
    }
    client_destroy(&s.cl);
    kernel_proc_destroy(&s.kp);
    kernelspec_destroy(&spec);
    jp_connection_clear(&conn);
    free(s.next_input);
    free(s.language);
    free(s.banner);
    fflush(stdout);
    return status;
}
