/* client.c -- ZeroMQ sockets for the five channels (the only file of the
 * REPL that includes zmq.h).
 *
 * The DEALERs share one routing identity (the session id and a generation
 * number), as jupyter_client's do, so that a kernel can tell our shell and
 * stdin sockets belong together (ipykernel sends input_request to the stdin
 * socket with the same identity as the shell request).
 */
#include "client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "signals.h"

/* FERRY_REPL_DEBUG=1 traces every message in and out on stderr. */
static int debug_on(void)
{
    static int on = -1;
    if (on < 0) {
        const char *v = getenv("FERRY_REPL_DEBUG");
        on = v != NULL && *v != '\0' && strcmp(v, "0") != 0;
    }
    return on;
}

static void debug_msg(const char *dir, jp_channel ch, const jp_msg *m)
{
    if (debug_on()) {
        const char *parent =
            json_string_value(json_object_get(m->parent_header, "msg_id"));
        fprintf(stderr, "[ferry-repl] %s %-7s %-22s id=%.12s parent=%.12s\n", dir,
                jp_channel_name(ch), jp_msg_type(m), jp_msg_id(m), parent ? parent : "-");
    }
}

struct client {
    void *ctx;                /* ZeroMQ context */
    void *sock[JP_NCHANNELS]; /* indexed by jp_channel; hb is made per ping */
    jp_connection conn;       /* endpoints (a copy without the key) */
    char hb_endpoint[300];    /* where to ping */
    jp_session *session;      /* signs and checks messages */
    unsigned generation;      /* how many times the sockets were made */
    int retry_ms;             /* reconnect interval of this generation, 0: zmq's */
    int iopub_seen;           /* iopub delivered on this generation's socket */
};

static const int socket_types[JP_NCHANNELS] = {
    [JP_SHELL] = ZMQ_DEALER,
    [JP_IOPUB] = ZMQ_SUB,
    [JP_STDIN] = ZMQ_DEALER,
    [JP_CONTROL] = ZMQ_DEALER,
};

static void *open_socket(client *c, const jp_connection *conn, jp_channel ch, int type,
                         jp_error *err)
{
    char endpoint[300];
    void *s = zmq_socket(c->ctx, type);
    int linger = 0;
    if (s == NULL) {
        jp_error_set(err, "zmq_socket: %s", zmq_strerror(errno));
        return NULL;
    }
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    if (c->retry_ms > 0) {
        zmq_setsockopt(s, ZMQ_RECONNECT_IVL, &c->retry_ms, sizeof c->retry_ms);
    }
    if (type == ZMQ_DEALER) {
        /* A new identity for each generation of sockets: a kernel's ROUTER
         * may still hold the previous connection under the old one, and
         * would refuse a newcomer that claims it. */
        char id[128];
        snprintf(id, sizeof id, "%s-%u", jp_session_id(c->session), c->generation);
        zmq_setsockopt(s, ZMQ_ROUTING_ID, id, strlen(id));
    }
    if (type == ZMQ_SUB) {
        zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0);
    }
    if (jp_connection_endpoint(conn, ch, endpoint, sizeof endpoint) < 0 ||
        zmq_connect(s, endpoint) < 0) {
        jp_error_set(err, "cannot connect the %s channel to %s: %s", jp_channel_name(ch),
                     endpoint, zmq_strerror(errno));
        zmq_close(s);
        return NULL;
    }
    return s;
}

client *client_new(const jp_connection *conn, int retry_ms, jp_error *err)
{
    client *c = calloc(1, sizeof *c);
    if (c == NULL) {
        jp_error_set(err, "out of memory");
        return NULL;
    }
    c->session = jp_session_from_connection(conn, NULL, err);
    c->ctx = c->session ? zmq_ctx_new() : NULL;
    if (c->ctx == NULL) {
        jp_error_set(err, "zmq_ctx_new: %s", zmq_strerror(errno));
        client_destroy(&c);
        return NULL;
    }
    c->conn = *conn;
    c->conn.key = NULL; /* the session holds the key; only endpoints are kept */
    if (client_reconnect(c, retry_ms, err) < 0) {
        client_destroy(&c);
        return NULL;
    }
    jp_connection_endpoint(conn, JP_HB, c->hb_endpoint, sizeof c->hb_endpoint);
    return c;
}

int client_reconnect(client *c, int retry_ms, jp_error *err)
{
    for (int ch = 0; ch < JP_NCHANNELS; ch++) {
        if (c->sock[ch] != NULL) {
            zmq_close(c->sock[ch]);
            c->sock[ch] = NULL;
        }
    }
    c->generation++;
    c->retry_ms = retry_ms;
    c->iopub_seen = 0;
    for (int ch = 0; ch < JP_NCHANNELS; ch++) {
        if (ch != JP_HB) {
            c->sock[ch] = open_socket(c, &c->conn, (jp_channel)ch, socket_types[ch], err);
            if (c->sock[ch] == NULL) {
                return -1;
            }
        }
    }
    return 0;
}

void client_destroy(client **cp)
{
    if (cp == NULL || *cp == NULL) {
        return;
    }
    client *c = *cp;
    for (int ch = 0; ch < JP_NCHANNELS; ch++) {
        if (c->sock[ch] != NULL) {
            zmq_close(c->sock[ch]);
        }
    }
    if (c->ctx != NULL) {
        zmq_ctx_term(c->ctx);
    }
    jp_session_destroy(&c->session);
    free(c);
    *cp = NULL;
}

int client_request(client *c, jp_channel ch, const char *msg_type, json_t *steal_content,
                   char *id, size_t id_size)
{
    jp_msg *m = jp_msg_new(c->session, msg_type, steal_content, NULL, 0);
    if (m == NULL) {
        return -1;
    }
    if (id != NULL) {
        strncpy(id, jp_msg_id(m), id_size - 1);
        id[id_size - 1] = '\0';
    }
    debug_msg(">>", ch, m);
    return jp_send(c->session, c->sock[ch], &m, NULL, NULL);
}

int client_input_reply(client *c, const jp_msg *req, const char *value)
{
    jp_msg *m =
        jp_msg_new(c->session, "input_reply", json_pack("{s:s}", "value", value), req, 0);
    if (m == NULL) {
        return -1;
    }
    debug_msg(">>", JP_STDIN, m);
    return jp_send(c->session, c->sock[JP_STDIN], &m, NULL, NULL);
}

client_event client_poll(client *c, int fd, int timeout_ms, jp_channel *ch, jp_msg **msg)
{
    /* iopub first: output of a cell is shown before its reply ends the wait. */
    static const jp_channel order[] = {JP_IOPUB, JP_STDIN, JP_SHELL, JP_CONTROL};
    enum { NSOCK = sizeof order / sizeof order[0] };
    *msg = NULL;
    for (;;) {
        zmq_pollitem_t items[NSOCK + 2];
        int n = 0;
        for (int i = 0; i < NSOCK; i++) {
            items[n++] = (zmq_pollitem_t){c->sock[order[i]], 0, ZMQ_POLLIN, 0};
        }
        /* The signal pipe: a signal that arrived before this wait still ends it. */
        items[n++] = (zmq_pollitem_t){NULL, signals_fd(), ZMQ_POLLIN, 0};
        if (fd >= 0) {
            items[n++] = (zmq_pollitem_t){NULL, fd, ZMQ_POLLIN, 0};
        }
        int r = zmq_poll(items, n, timeout_ms);
        if (r < 0) {
            if (errno == EINTR) {
                signals_drain();
                return CLIENT_SIGNAL;
            }
            return CLIENT_ERROR;
        }
        if (r == 0) {
            return CLIENT_TIMEOUT;
        }
        if (items[NSOCK].revents & ZMQ_POLLIN) {
            signals_drain();
            return CLIENT_SIGNAL;
        }
        for (int i = 0; i < NSOCK; i++) {
            if (items[i].revents & ZMQ_POLLIN) {
                jp_error err = {0};
                *msg = jp_recv(c->session, c->sock[order[i]], ZMQ_DONTWAIT, &err);
                if (*msg != NULL) {
                    *ch = order[i];
                    c->iopub_seen |= *ch == JP_IOPUB;
                    debug_msg("<<", *ch, *msg);
                    return CLIENT_MESSAGE;
                }
                if (debug_on()) {
                    fprintf(stderr, "[ferry-repl] dropped on %s: %s\n",
                            jp_channel_name(order[i]), err.text);
                }
            }
        }
        if (fd >= 0 && (items[NSOCK + 1].revents & (ZMQ_POLLIN | ZMQ_POLLERR))) {
            return CLIENT_FD;
        }
        /* Only malformed messages (dropped) or spurious wake-ups: poll again,
         * which in the worst case waits a bit longer than asked. */
    }
}

int client_iopub_seen(const client *c)
{
    return c->iopub_seen;
}

int client_heartbeat(client *c, int timeout_ms)
{
    void *s = zmq_socket(c->ctx, ZMQ_REQ);
    int linger = 0, alive = 0;
    if (s == NULL) {
        return 1; /* cannot tell: do not report a death */
    }
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_connect(s, c->hb_endpoint) == 0 && zmq_send(s, "ping", 4, 0) == 4) {
        zmq_pollitem_t item = {s, 0, ZMQ_POLLIN, 0};
        int r;
        do {
            r = zmq_poll(&item, 1, timeout_ms);
        } while (r < 0 && errno == EINTR);
        if (r > 0) {
            char buf[16];
            alive = zmq_recv(s, buf, sizeof buf, ZMQ_DONTWAIT) >= 0;
        }
    }
    zmq_close(s);
    return alive;
}

int client_is_reply_to(const jp_msg *m, const char *id)
{
    const char *parent = json_string_value(json_object_get(m->parent_header, "msg_id"));
    return parent != NULL && id != NULL && strcmp(parent, id) == 0;
}
