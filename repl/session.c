/* session.c -- requests and the waits between them.
 *
 * A cell is finished when both its execute_reply (shell) and its "idle"
 * status (iopub) have arrived: the two come on different sockets in either
 * order, and output published before idle belongs to the cell.  A kernel that
 * never publishes idle is given 2 s after its reply.
 */
#include "session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "input.h"
#include "render.h"
#include "signals.h"

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int is_type(const jp_msg *m, const char *type)
{
    return strcmp(jp_msg_type(m), type) == 0;
}

/* A shell reply nobody waits for any more.  A late is_complete_reply means
 * the kernel does answer, only slowly (say, its first call imports a
 * parser): ask it again from the next line on. */
static void stray_reply(session *s, const jp_msg *m)
{
    if (is_type(m, "is_complete_reply")) {
        s->is_complete_ok = 1;
    }
}

/* Shows an iopub message that arrived while nothing of ours runs. */
static void show_background(const jp_msg *m)
{
    render_iopub(m);
}

int session_check_alive(session *s)
{
    if (s->dead) {
        return 0;
    }
    if (s->kp != NULL) {
        if (!kernel_proc_alive(s->kp, s->dead_why, sizeof s->dead_why)) {
            s->dead = 1;
        }
    } else if (!client_heartbeat(s->cl, 1500) && !client_heartbeat(s->cl, 1500)) {
        s->dead = 1;
        snprintf(s->dead_why, sizeof s->dead_why, "stopped answering its heartbeat");
    }
    return !s->dead;
}

/* ------------------------------------------------------------ readiness */

/* Takes m, a message that came while we wait for the kernel to be ready. */
static void readiness_message(session *s, jp_channel ch, jp_msg *m)
{
    if (ch == JP_IOPUB && !is_type(m, "status") && !is_type(m, "execute_input")) {
        show_background(m);
    } else if (ch == JP_SHELL) {
        stray_reply(s, m);
    }
    jp_msg_destroy(&m);
}

/* Keeps what the first prompt shows of kernel_info_reply m. */
static void take_kernel_info(session *s, const jp_msg *m)
{
    json_t *li = json_object_get(m->content, "language_info");
    const char *lang = json_string_value(json_object_get(li, "name"));
    const char *banner = json_string_value(json_object_get(m->content, "banner"));
    free(s->language);
    free(s->banner);
    s->language = strdup(lang ? lang : "");
    s->banner = strdup(banner ? banner : "");
}

int session_wait_ready(session *s, int timeout_ms, jp_error *err)
{
    long start = now_ms(), last_send = 0;
    char id[64] = "";
    for (;;) {
        long now = now_ms();
        if (s->kp != NULL && !session_check_alive(s)) {
            jp_error_set(err, "the kernel %s before it was ready", s->dead_why);
            return -1;
        }
        if (now - start > timeout_ms) {
            jp_error_set(err, "the kernel did not answer kernel_info_request within %d s",
                         timeout_ms / 1000);
            return -1;
        }
        if (now - last_send >= 1000) {
            if (client_request(s->cl, JP_SHELL, "kernel_info_request", NULL, id,
                               sizeof id) < 0) {
                jp_error_set(err, "cannot send kernel_info_request");
                return -1;
            }
            last_send = now;
        }
        jp_channel ch;
        jp_msg *m = NULL;
        switch (client_poll(s->cl, -1, 100, &ch, &m)) {
        case CLIENT_SIGNAL:
            if (signals_quit_requested() || signals_take_interrupt()) {
                jp_error_set(err, "interrupted while waiting for the kernel");
                return -1;
            }
            break;
        case CLIENT_ERROR:
            jp_error_set(err, "socket error: %s", strerror(errno));
            return -1;
        case CLIENT_MESSAGE:
            if (ch == JP_SHELL && is_type(m, "kernel_info_reply")) {
                take_kernel_info(s, m);
                jp_msg_destroy(&m);
                goto replied;
            }
            readiness_message(s, ch, m);
            break;
        default:
            break;
        }
    }
replied:
    /* Sockets of a kernel we started connected before it listened: make new
     * ones now that it answers (see client_reconnect); they connect at once. */
    if (s->kp != NULL && client_reconnect(s->cl, 0, err) < 0) {
        return -1;
    }
    s->iopub_given_up = 0;
    /* The prompt needs nothing more.  Whether iopub delivers is settled
     * before the first cell (session_wait_iopub); the kernel_info asked
     * here makes the status messages that prove it, most often while the
     * prompt is still empty.  The is_complete round trip is started too:
     * its first call can be slow (ipykernel imports its parser), and a late
     * reply still counts (stray_reply). */
    s->is_complete_ok = 1;
    if (client_request(s->cl, JP_SHELL, "kernel_info_request", NULL, NULL, 0) < 0 ||
        client_request(s->cl, JP_SHELL, "is_complete_request",
                       json_pack("{s:s}", "code", "pass"), NULL, 0) < 0) {
        jp_error_set(err, "cannot send requests to the kernel");
        return -1;
    }
    return 0;
}

/* A kernel that answers this many kernel_info requests without a status
 * message reaching iopub publishes none: iopub is then as ready as it gets.
 * Counted in answers, not in seconds: a kernel slowed down by a busy machine
 * answers slowly too, and the subscription it has not taken in yet would
 * lose the first cell's output.  The time limit is for a kernel that stops
 * answering altogether. */
#define IOPUB_GIVE_UP_REPLIES 20
#define IOPUB_GIVE_UP_MS 60000

session_result session_wait_iopub(session *s)
{
    long start = now_ms(), last_send = start;
    int asked = 0, answered = 0;
    while (!client_iopub_seen(s->cl) && !s->iopub_given_up) {
        long now = now_ms();
        if (s->kp != NULL && !session_check_alive(s)) {
            return SESSION_DEAD;
        }
        if (answered >= IOPUB_GIVE_UP_REPLIES || now - start > IOPUB_GIVE_UP_MS) {
            s->iopub_given_up = 1;
            break;
        }
        /* Only the subscription may lag (a SUB socket joins late and misses
         * what was published before): ask again soon, so that some status
         * message reaches it; one request at a time beyond the first, so a
         * slow kernel is not buried in them. */
        if (now - last_send >= 50 && asked - answered < 2) {
            if (client_request(s->cl, JP_SHELL, "kernel_info_request", NULL, NULL, 0) <
                0) {
                return SESSION_ERROR;
            }
            asked++;
            last_send = now;
        }
        jp_channel ch;
        jp_msg *m = NULL;
        switch (client_poll(s->cl, -1, 20, &ch, &m)) {
        case CLIENT_SIGNAL:
            if (signals_quit_requested()) {
                return SESSION_QUIT;
            }
            if (signals_take_interrupt()) {
                return SESSION_ERROR;
            }
            break;
        case CLIENT_ERROR:
            return SESSION_ERROR;
        case CLIENT_MESSAGE:
            answered += ch == JP_SHELL && is_type(m, "kernel_info_reply");
            readiness_message(s, ch, m);
            break;
        default:
            break;
        }
    }
    return SESSION_OK;
}

/* ---------------------------------------------------------------- cells */

/* What a running cell has seen so far. */
typedef struct cell_wait {
    session *s;     /* the session */
    const char *id; /* msg_id of the execute_request */
    jp_msg *reply;  /* execute_reply once here, owned */
    int idle;       /* status idle seen for this cell */
    int silent;     /* do not show the cell's output */
} cell_wait;

static void handle_input_request(cell_wait *w, jp_msg *req);

/* Handles one message during a cell; takes m.  Returns 1 when the message
 * ended an input read (the reply arrived). */
static int cell_message(cell_wait *w, jp_channel ch, jp_msg *m)
{
    int ours = client_is_reply_to(m, w->id);
    int ended = 0;
    if (ch == JP_IOPUB) {
        if (is_type(m, "status")) {
            const char *state =
                json_string_value(json_object_get(m->content, "execution_state"));
            if (ours && state != NULL && strcmp(state, "idle") == 0) {
                w->idle = 1;
            }
        } else if (!ours || !w->silent) {
            render_iopub(m);
        }
    } else if (ch == JP_STDIN && is_type(m, "input_request")) {
        handle_input_request(w, m);
    } else if (ch == JP_SHELL && ours && w->reply == NULL) {
        w->reply = m;
        m = NULL;
        ended = 1;
    } else if (ch == JP_SHELL) {
        stray_reply(w->s, m);
    }
    jp_msg_destroy(&m);
    return ended;
}

static int input_message_cb(void *arg, jp_channel ch, jp_msg *m)
{
    return cell_message(arg, ch, m);
}

static void handle_input_request(cell_wait *w, jp_msg *req)
{
    session *s = w->s;
    const char *prompt = json_string_value(json_object_get(req->content, "prompt"));
    int password = json_is_true(json_object_get(req->content, "password"));
    char *line = NULL;
    input_status st = INPUT_EOF;
    render_end_cell();
    if (s->stdin_mode == SESSION_STDIN_TERMINAL) {
        if (password) {
            st = input_password(s->cl, prompt ? prompt : "", input_message_cb, w, &line);
        } else {
            st = input_readline(s->cl, prompt ? prompt : "", "", 0, input_message_cb, w,
                                &line);
        }
    } else if (s->stdin_mode == SESSION_STDIN_PIPE) {
        st = input_pipe_line(&line);
    }
    render_begin_cell();
    switch (st) {
    case INPUT_LINE:
        client_input_reply(s->cl, req, line);
        break;
    case INPUT_EOF:
        /* ipykernel's convention: EOT makes input() raise EOFError. */
        client_input_reply(s->cl, req, "\x04");
        break;
    case INPUT_INTERRUPT:
        session_interrupt(s);
        break;
    case INPUT_ABORT:
    case INPUT_QUIT:
        break;
    }
    free(line);
}

static void apply_payloads(session *s, json_t *content)
{
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(content, "payload"), i, p)
    {
        const char *source = json_string_value(json_object_get(p, "source"));
        if (source == NULL) {
            continue;
        }
        if (strcmp(source, "page") == 0) {
            const char *text = json_string_value(
                json_object_get(json_object_get(p, "data"), "text/plain"));
            if (text != NULL) {
                render_page(text);
            }
        } else if (strcmp(source, "ask_exit") == 0) {
            s->ask_exit = 1;
            s->keep_kernel = json_is_true(json_object_get(p, "keepkernel"));
        } else if (strcmp(source, "set_next_input") == 0) {
            const char *text = json_string_value(json_object_get(p, "text"));
            free(s->next_input);
            s->next_input = text ? strdup(text) : NULL;
        }
    }
}

session_result session_execute(session *s, const char *code, int silent)
{
    session_result ready = session_wait_iopub(s);
    if (ready != SESSION_OK) {
        return ready;
    }
    char id[64];
    cell_wait w = {s, id, NULL, 0, silent};
    json_t *content =
        json_pack("{s:s, s:b, s:b, s:{}, s:b, s:b}", "code", code, "silent", silent,
                  "store_history", !silent, "user_expressions", "allow_stdin",
                  s->stdin_mode != SESSION_STDIN_NONE, "stop_on_error", 1);
    if (client_request(s->cl, JP_SHELL, "execute_request", content, id, sizeof id) < 0) {
        render_note("ferry: cannot send execute_request");
        return SESSION_ERROR;
    }
    render_begin_cell();
    long reply_at = 0, last_check = now_ms();
    session_result result = SESSION_OK;
    while (!(w.reply != NULL && w.idle)) {
        jp_channel ch;
        jp_msg *m = NULL;
        client_event ev = client_poll(s->cl, -1, 200, &ch, &m);
        if (ev == CLIENT_MESSAGE) {
            if (cell_message(&w, ch, m) && reply_at == 0) {
                reply_at = now_ms();
            }
        } else if (ev == CLIENT_SIGNAL) {
            if (signals_quit_requested()) {
                result = SESSION_QUIT;
                break;
            }
            if (signals_take_interrupt()) {
                render_interrupted();
                session_interrupt(s);
            }
        } else if (ev == CLIENT_ERROR) {
            render_note("ferry: socket error: %s", strerror(errno));
            result = SESSION_ERROR;
            break;
        }
        if (w.reply != NULL && reply_at == 0) {
            reply_at = now_ms();
        }
        long now = now_ms();
        if (w.reply != NULL && now - reply_at > 2000) {
            break; /* a kernel that publishes no idle */
        }
        if (w.reply == NULL && now - last_check > (s->kp ? 200 : 3000)) {
            last_check = now;
            if (!session_check_alive(s)) {
                /* Output published just before the end is still worth showing. */
                session_drain(s);
                result = SESSION_DEAD;
                break;
            }
        }
    }
    if (!silent) {
        render_end_cell();
    }
    if (w.reply != NULL) {
        const char *status =
            json_string_value(json_object_get(w.reply->content, "status"));
        json_t *count = json_object_get(w.reply->content, "execution_count");
        if (json_is_integer(count) && !silent) {
            s->execution_count = (long)json_integer_value(count);
        }
        apply_payloads(s, w.reply->content);
        if (status == NULL || strcmp(status, "ok") != 0) {
            result = SESSION_ERROR;
        }
        jp_msg_destroy(&w.reply);
    }
    return result;
}

/* ------------------------------------------------ short shell requests */

/* Sends msg_type with content and waits up to timeout_ms for its reply,
 * showing background output meanwhile.  Returns the reply or NULL. */
static jp_msg *ask(session *s, const char *msg_type, json_t *content, int timeout_ms)
{
    char id[64];
    if (client_request(s->cl, JP_SHELL, msg_type, content, id, sizeof id) < 0) {
        return NULL;
    }
    long deadline = now_ms() + timeout_ms;
    for (;;) {
        long left = deadline - now_ms();
        if (left <= 0) {
            return NULL;
        }
        jp_channel ch;
        jp_msg *m = NULL;
        client_event ev = client_poll(s->cl, -1, (int)left, &ch, &m);
        if (ev == CLIENT_MESSAGE) {
            if (ch == JP_SHELL && client_is_reply_to(m, id)) {
                return m;
            }
            if (ch == JP_SHELL) {
                stray_reply(s, m);
            }
            if (ch == JP_IOPUB && !is_type(m, "status") && !is_type(m, "execute_input")) {
                show_background(m);
            }
            jp_msg_destroy(&m);
        } else if (ev != CLIENT_SIGNAL || signals_quit_requested()) {
            return NULL;
        } else if (signals_take_interrupt()) {
            return NULL;
        }
    }
}

int session_is_complete(session *s, const char *code, char *status, size_t status_size,
                        char *indent, size_t indent_size)
{
    jp_msg *m = ask(s, "is_complete_request", json_pack("{s:s}", "code", code), 1000);
    if (m == NULL) {
        s->is_complete_ok = 0;
        return -1;
    }
    const char *st = json_string_value(json_object_get(m->content, "status"));
    const char *in = json_string_value(json_object_get(m->content, "indent"));
    snprintf(status, status_size, "%s", st ? st : "unknown");
    snprintf(indent, indent_size, "%s", in ? in : "");
    jp_msg_destroy(&m);
    return 0;
}

json_t *session_complete(session *s, const char *code, long cursor_pos)
{
    jp_msg *m =
        ask(s, "complete_request",
            json_pack("{s:s, s:I}", "code", code, "cursor_pos", (json_int_t)cursor_pos),
            3000);
    if (m == NULL) {
        return NULL;
    }
    json_t *content = json_incref(m->content);
    jp_msg_destroy(&m);
    return content;
}

/* --------------------------------------------------- control of a kernel */

void session_interrupt(session *s)
{
    if (s->kp != NULL && s->interrupt_by_signal) {
        kernel_proc_interrupt(s->kp);
    } else {
        client_request(s->cl, JP_CONTROL, "interrupt_request", NULL, NULL, 0);
    }
}

void session_drain(session *s)
{
    jp_channel ch;
    jp_msg *m = NULL;
    while (client_poll(s->cl, -1, 0, &ch, &m) == CLIENT_MESSAGE) {
        if (ch == JP_IOPUB && !is_type(m, "status") && !is_type(m, "execute_input")) {
            show_background(m);
        } else if (ch == JP_SHELL) {
            stray_reply(s, m);
        }
        jp_msg_destroy(&m);
    }
}

int session_restart(session *s, jp_error *err)
{
    if (s->kp == NULL) {
        jp_error_set(err, "cannot restart a kernel this REPL did not start");
        return -1;
    }
    /* The sockets are made anew before the kernel listens, as at start. */
    if (kernel_proc_restart(s->kp, err) < 0 ||
        client_reconnect(s->cl, CLIENT_RETRY_STARTING_MS, err) < 0) {
        return -1;
    }
    s->dead = 0;
    s->dead_why[0] = '\0';
    s->execution_count = 0;
    return session_wait_ready(s, 60000, err);
}

void session_shutdown(session *s, int shutdown_attached)
{
    if (s->kp == NULL && !shutdown_attached) {
        return;
    }
    if (s->kp != NULL && !session_check_alive(s)) {
        return;
    }
    char id[64];
    client_request(s->cl, JP_CONTROL, "shutdown_request",
                   json_pack("{s:b}", "restart", 0), id, sizeof id);
    if (s->kp != NULL) {
        if (!kernel_proc_wait(s->kp, 5000)) {
            kernel_proc_kill(s->kp);
        }
        return;
    }
    long deadline = now_ms() + 3000;
    for (long left; (left = deadline - now_ms()) > 0;) {
        jp_channel ch;
        jp_msg *m = NULL;
        if (client_poll(s->cl, -1, (int)left, &ch, &m) == CLIENT_MESSAGE) {
            int done = ch == JP_CONTROL && client_is_reply_to(m, id);
            jp_msg_destroy(&m);
            if (done) {
                break;
            }
        }
    }
}
