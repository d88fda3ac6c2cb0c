/* render.c -- the kernel's output on a terminal.
 *
 * Redrawing in place needs to know how many terminal rows were written since
 * a point (the start of the cell, the last clear_output, the start of the last
 * display).  Every byte written is fed to track(), which follows the cursor:
 * "\n" is a new row, "\r" column 0, a character in the last column wraps
 * before the next one (terminals defer the wrap), ANSI CSI sequences
 * (ESC [ params final) take no room.  Erasing is then
 *     "\r" + "ESC [ n A" (n rows up) + "ESC [ J" (clear to end of screen).
 * A row that scrolled off the top cannot be redrawn; the cursor stops at the
 * top and what is visible is cleared, which is the best a terminal allows.
 */
#include "render.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static struct {
    int prompts;          /* show Out[N]: */
    const char *save_dir; /* where images go, or NULL */
    int out_tty;          /* stdout is a terminal */
    int err_tty;          /* stderr is a terminal */
    int color;            /* colours wanted */
    int width;            /* terminal columns */
    long rows;            /* rows written since the cell began */
    int col;              /* cursor column */
    long clear_mark;      /* rows value where clear_output erases back to */
    int pending_clear;    /* clear_output(wait=True) seen: clear before next output */
    char display_id[128]; /* display_id of the most recent display_data */
    long display_mark;    /* rows value where that display began */
    int display_last;     /* nothing was written after that display */
    unsigned image_count; /* images saved so far, for file names */
} R;

void render_init(int prompts, const char *save_images)
{
    R.prompts = prompts;
    R.save_dir = save_images;
    R.out_tty = isatty(1);
    R.err_tty = isatty(2);
    const char *nc = getenv("NO_COLOR");
    R.color = R.out_tty && (nc == NULL || *nc == '\0');
}

int render_color(void)
{
    return R.color;
}

static void track(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == 0x1b && i + 1 < n && s[i + 1] == '[') {
            i += 2;
            while (i < n &&
                   !((unsigned char)s[i] >= 0x40 && (unsigned char)s[i] <= 0x7e)) {
                i++;
            }
            continue;
        }
        if (c == '\n') {
            R.rows++;
            R.col = 0;
        } else if (c == '\r') {
            R.col = 0;
        } else if (c == '\b') {
            R.col -= R.col > 0;
        } else if (c == '\t') {
            R.col = (R.col / 8 + 1) * 8;
            if (R.col > R.width) {
                R.col = R.width;
            }
        } else if (c >= 0x20 && (c & 0xc0) != 0x80 && c != 0x7f) {
            if (R.col >= R.width) {
                R.rows++;
                R.col = 0;
            }
            R.col++;
        }
    }
}

/* Erases the rows written since mark (terminal only). */
static void erase_to(long mark)
{
    long up = R.rows - mark;
    fflush(stderr);
    fputs("\r", stdout);
    if (up > 0) {
        fprintf(stdout, "\033[%ldA", up);
    }
    fputs("\033[J", stdout);
    fflush(stdout);
    R.rows = mark;
    R.col = 0;
}

static void emit(FILE *f, const char *s, size_t n)
{
    if (R.pending_clear) {
        R.pending_clear = 0;
        if (R.out_tty) {
            erase_to(R.clear_mark);
        }
    }
    fwrite(s, 1, n, f);
    track(s, n);
    R.display_last = 0;
}

static void emit_str(FILE *f, const char *s)
{
    emit(f, s, strlen(s));
}

/* Starts a new line unless the cursor is at one's start (terminal only: a
 * pipe gets exactly the kernel's bytes). */
static void line_start(void)
{
    if (R.out_tty && R.col != 0) {
        emit_str(stdout, "\n");
    }
}

void render_begin_cell(void)
{
    struct winsize ws;
    R.width = ioctl(1, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 ? ws.ws_col : 80;
    R.rows = 0;
    R.clear_mark = 0;
    R.pending_clear = 0;
    R.display_last = 0;
    R.display_id[0] = '\0';
}

void render_end_cell(void)
{
    R.pending_clear = 0;
    line_start();
    fflush(stdout);
    fflush(stderr);
}

void render_interrupted(void)
{
    if (R.out_tty) {
        R.col = 1;
        line_start();
        fflush(stdout);
    }
}

void render_note(const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

/* ------------------------------------------------------------- images */

static int b64_value(int c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    return c == '+' || c == '-' ? 62 : c == '/' || c == '_' ? 63 : -1;
}

/* Decodes base64 text (whitespace ignored) into a malloc'd buffer. */
static unsigned char *b64_decode(const char *s, size_t *out_len)
{
    unsigned char *out = malloc(strlen(s) / 4 * 3 + 3);
    unsigned acc = 0;
    int bits = 0;
    size_t n = 0;
    if (out == NULL) {
        return NULL;
    }
    for (; *s != '\0' && *s != '='; s++) {
        int v = b64_value((unsigned char)*s);
        if (v < 0) {
            continue;
        }
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
        }
    }
    *out_len = n;
    return out;
}

static void format_size(size_t n, char *buf, size_t size)
{
    if (n < 1000) {
        snprintf(buf, size, "%zu B", n);
    } else if (n < 1000000) {
        snprintf(buf, size, "%.1f kB", (double)n / 1e3);
    } else {
        snprintf(buf, size, "%.1f MB", (double)n / 1e6);
    }
}

/* Writes the note for one image ("[image/png 12.3 kB]"), saving it if asked. */
static void image_note(const char *mime, const char *value, char *note, size_t size)
{
    int textual = strstr(mime, "svg") != NULL;
    size_t len = strlen(value);
    unsigned char *bytes = textual ? NULL : b64_decode(value, &len);
    char human[32], path[4096] = "";
    format_size(len, human, sizeof human);
    if (R.save_dir != NULL) {
        const char *ext = strchr(mime, '/') ? strchr(mime, '/') + 1 : "bin";
        snprintf(path, sizeof path, "%s/ferry-%ld-%u.%.*s", R.save_dir, (long)getpid(),
                 ++R.image_count, (int)strcspn(ext, "+;"), ext);
        FILE *f = fopen(path, "wb");
        if (f == NULL ||
            fwrite(textual ? (const void *)value : bytes, 1, len, f) != len) {
            snprintf(path, sizeof path, "(cannot save to %s)", R.save_dir);
        }
        if (f != NULL) {
            fclose(f);
        }
    }
    free(bytes);
    snprintf(note, size, "[%s %s%s%s]", mime, human, path[0] ? " saved to " : "", path);
}

/* ---------------------------------------------------------- mime data */

#define WIDGET_VIEW "application/vnd.jupyter.widget-view+json"

/* A widget (ipywidgets) has no text form: the first one says why it is not
 * shown, the others are only named. */
static void widget_note(void)
{
    static int explained;
    emit_str(stdout, explained ? "[widget]\n"
                               : "[widget: widgets are drawn by a browser frontend "
                                 "(Notebook, Lab); a terminal cannot show them]\n");
    explained = 1;
}

/* Writes a mime bundle: image notes, then text/plain, then a note for what
 * has no text form.  prefix (may be NULL) goes first, on the same line. */
static void emit_bundle(json_t *data, const char *prefix)
{
    const char *text = json_string_value(json_object_get(data, "text/plain"));
    const char *mime;
    json_t *v;
    int shown = 0;
    line_start();
    if (prefix != NULL) {
        emit_str(stdout, prefix);
        if (text != NULL && strchr(text, '\n') != NULL) {
            emit_str(stdout, "\n");
        }
    }
    json_object_foreach(data, mime, v)
    {
        if (strncmp(mime, "image/", 6) == 0 && json_is_string(v)) {
            char note[4300];
            image_note(mime, json_string_value(v), note, sizeof note);
            emit_str(stdout, note);
            emit_str(stdout, text != NULL && strchr(text, '\n') == NULL ? " " : "\n");
            shown = 1;
        }
    }
    if (text != NULL) {
        emit_str(stdout, text);
        emit_str(stdout, "\n");
    } else if (!shown) {
        /* Something without a text form (text/html only, say): name it. */
        json_object_foreach(data, mime, v)
        {
            if (strcmp(mime, WIDGET_VIEW) == 0) {
                widget_note();
                continue;
            }
            char note[200], human[32];
            format_size(json_is_string(v) ? strlen(json_string_value(v)) : 0, human,
                        sizeof human);
            snprintf(note, sizeof note, "[%s %s]\n", mime, human);
            emit_str(stdout, note);
        }
    }
}

static void strip_ansi(char *s)
{
    char *o = s;
    for (char *p = s; *p != '\0'; p++) {
        if (p[0] == 0x1b && p[1] == '[') {
            p += 2;
            while (*p != '\0' &&
                   !((unsigned char)*p >= 0x40 && (unsigned char)*p <= 0x7e)) {
                p++;
            }
            if (*p == '\0') {
                break;
            }
            continue;
        }
        *o++ = *p;
    }
    *o = '\0';
}

static void emit_error(json_t *content)
{
    json_t *tb = json_object_get(content, "traceback");
    size_t i;
    json_t *line;
    fflush(stdout);
    line_start();
    if (json_is_array(tb) && json_array_size(tb) > 0) {
        json_array_foreach(tb, i, line)
        {
            const char *s = json_string_value(line);
            if (s == NULL) {
                continue;
            }
            char *copy = strdup(s);
            if (copy == NULL) {
                continue;
            }
            if (!R.err_tty) {
                strip_ansi(copy);
            }
            emit_str(stderr, copy);
            emit_str(stderr, "\n");
            free(copy);
        }
    } else {
        const char *ename = json_string_value(json_object_get(content, "ename"));
        const char *evalue = json_string_value(json_object_get(content, "evalue"));
        char buf[1024];
        snprintf(buf, sizeof buf, "%s: %s\n", ename ? ename : "Error",
                 evalue ? evalue : "");
        emit_str(stderr, buf);
    }
    fflush(stderr);
}

static void emit_stream(json_t *content)
{
    const char *name = json_string_value(json_object_get(content, "name"));
    const char *text = json_string_value(json_object_get(content, "text"));
    if (text == NULL) {
        return;
    }
    if (name != NULL && strcmp(name, "stderr") == 0) {
        fflush(stdout);
        int red = R.err_tty && R.color;
        if (red) {
            fputs("\033[31m", stderr);
        }
        emit_str(stderr, text);
        if (red) {
            fputs("\033[0m", stderr);
        }
        fflush(stderr);
    } else {
        emit_str(stdout, text);
        fflush(stdout);
    }
}

void render_iopub(const jp_msg *m)
{
    const char *type = jp_msg_type(m);
    json_t *content = m->content;
    if (strcmp(type, "stream") == 0) {
        emit_stream(content);
    } else if (strcmp(type, "execute_result") == 0) {
        char prefix[64];
        json_int_t n = json_integer_value(json_object_get(content, "execution_count"));
        if (R.color) {
            snprintf(prefix, sizeof prefix,
                     "\033[31mOut[\033[1m%" JSON_INTEGER_FORMAT "\033[0;31m]:\033[0m ",
                     n);
        } else {
            snprintf(prefix, sizeof prefix, "Out[%" JSON_INTEGER_FORMAT "]: ", n);
        }
        emit_bundle(json_object_get(content, "data"), R.prompts ? prefix : NULL);
    } else if (strcmp(type, "display_data") == 0 ||
               strcmp(type, "update_display_data") == 0) {
        const char *id = json_string_value(
            json_object_get(json_object_get(content, "transient"), "display_id"));
        int update = type[0] == 'u';
        if (update) {
            if (id == NULL) {
                return;
            }
            if (R.out_tty && R.display_last && strcmp(id, R.display_id) == 0) {
                if (R.pending_clear) {
                    R.pending_clear = 0;
                    erase_to(R.clear_mark);
                    R.display_mark = R.rows;
                } else {
                    erase_to(R.display_mark);
                }
                emit_bundle(json_object_get(content, "data"), NULL);
                R.display_last = 1;
                fflush(stdout);
                return;
            }
        }
        line_start();
        if (R.pending_clear && R.out_tty) {
            R.pending_clear = 0;
            erase_to(R.clear_mark);
        }
        R.pending_clear = 0;
        long mark = R.rows;
        emit_bundle(json_object_get(content, "data"), NULL);
        if (id != NULL) {
            snprintf(R.display_id, sizeof R.display_id, "%s", id);
            R.display_mark = mark;
            R.display_last = 1;
        }
        fflush(stdout);
    } else if (strcmp(type, "error") == 0) {
        emit_error(content);
    } else if (strcmp(type, "clear_output") == 0) {
        if (json_is_true(json_object_get(content, "wait"))) {
            R.pending_clear = 1;
        } else if (R.out_tty) {
            erase_to(R.clear_mark);
        }
        R.display_last = 0;
    }
}

void render_page(const char *text)
{
    if (!R.out_tty) {
        fputs(text, stdout);
        if (*text != '\0' && text[strlen(text) - 1] != '\n') {
            fputc('\n', stdout);
        }
        fflush(stdout);
        return;
    }
    const char *pager = getenv("PAGER");
    fflush(stdout);
    FILE *p = popen(pager != NULL && *pager != '\0' ? pager : "less -R", "w");
    if (p == NULL) {
        fputs(text, stdout);
        return;
    }
    fputs(text, p);
    pclose(p);
}
