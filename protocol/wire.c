/* wire.c -- a Jupyter message on a ZeroMQ socket.
 *
 * One message is one ZeroMQ multipart message with these frames:
 *
 *   ident_0 ... ident_k   routing identities (ROUTER) or the topic (PUB);
 *                         zero or more frames
 *   <IDS|MSG>             the delimiter, 9 bytes, exactly these
 *   signature             lowercase hex HMAC of the next four frames, or
 *                         empty when the session has no key
 *   header                JSON object: msg_id, session, username, date,
 *                         msg_type, version
 *   parent_header         JSON object ({} when there is no parent)
 *   metadata              JSON object
 *   content               JSON object
 *   buffer_0 ... buffer_n zero or more raw binary frames (not signed)
 *
 * Decoding checks the frame count, the signature (length, HMAC in constant
 * time, replay) and only then parses the JSON, so unauthenticated peers
 * never reach the JSON parser.
 */
#include "jp.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#define DELIM_LEN (sizeof JP_DELIMITER - 1)

/* ------------------------------------------------------------- decoding */

static int is_delimiter(const jp_frame *f)
{
    return f->size == DELIM_LEN && memcmp(f->data, JP_DELIMITER, DELIM_LEN) == 0;
}

static json_t *parse_object(const jp_frame *f, const char *what, jp_error *err)
{
    json_error_t jerr;
    /* JSON_ALLOW_NUL: "\u0000" is valid JSON that jupyter_client sends for a
     * NUL character in a string (say, printed output); without the flag such
     * a message would be dropped as malformed. */
    json_t *v =
        json_loadb(f->data, f->size, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (v == NULL) {
        jp_error_set(err, "%s: invalid JSON: %s", what, jerr.text);
        return NULL;
    }
    if (!json_is_object(v)) {
        jp_error_set(err, "%s: expected a JSON object", what);
        json_decref(v);
        return NULL;
    }
    return v;
}

static int check_header(json_t *h, jp_error *err)
{
    static const char *const required[] = {"msg_id", "msg_type", "session"};
    static const char *const optional[] = {"username", "date", "version"};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        json_t *v = json_object_get(h, required[i]);
        if (v == NULL) {
            jp_error_set(err, "header: missing field '%s'", required[i]);
            return -1;
        }
        if (!json_is_string(v)) {
            jp_error_set(err, "header: '%s' must be a string", required[i]);
            return -1;
        }
    }
    for (size_t i = 0; i < sizeof optional / sizeof optional[0]; i++) {
        json_t *v = json_object_get(h, optional[i]);
        if (v != NULL && !json_is_string(v)) {
            jp_error_set(err, "header: '%s' must be a string", optional[i]);
            return -1;
        }
    }
    return 0;
}

/* Moves frames [from, to) into a new array; the sources are zeroed. */
static jp_frame *take_frames(jp_frame *frames, size_t from, size_t to)
{
    if (to == from) {
        return NULL;
    }
    jp_frame *out = malloc((to - from) * sizeof *out);
    if (out != NULL) {
        memcpy(out, frames + from, (to - from) * sizeof *out);
        memset(frames + from, 0, (to - from) * sizeof *out);
    }
    return out;
}

static void clear_frames(jp_frame *frames, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        jp_frame_clear(&frames[i]);
    }
}

jp_msg *jp_wire_decode(jp_session *s, jp_frame *frames, size_t n, jp_error *err)
{
    jp_msg *m = NULL;
    size_t d = 0;
    while (d < n && !is_delimiter(&frames[d])) {
        d++;
    }
    if (d == n) {
        jp_error_set(err, "missing <IDS|MSG> delimiter");
        goto fail;
    }
    if (n - d < 6) {
        jp_error_set(err, "too few frames after the delimiter (%zu, need 5)", n - d - 1);
        goto fail;
    }
    const void *json_frames[4];
    size_t json_lens[4];
    for (int i = 0; i < 4; i++) {
        json_frames[i] = frames[d + 2 + i].data;
        json_lens[i] = frames[d + 2 + i].size;
    }
    if (jp_signer_verify(jp_session_signer(s), frames[d + 1].data, frames[d + 1].size,
                         json_frames, json_lens, err) < 0) {
        goto fail;
    }
    m = calloc(1, sizeof *m);
    if (m == NULL) {
        jp_error_set(err, "out of memory");
        goto fail;
    }
    static const char *const names[4] = {"header", "parent_header", "metadata",
                                         "content"};
    json_t **slots[4] = {&m->header, &m->parent_header, &m->metadata, &m->content};
    for (int i = 0; i < 4; i++) {
        *slots[i] = parse_object(&frames[d + 2 + i], names[i], err);
        if (*slots[i] == NULL) {
            goto fail;
        }
    }
    if (check_header(m->header, err) < 0) {
        goto fail;
    }
    m->n_idents = d;
    m->idents = take_frames(frames, 0, d);
    m->n_buffers = n - d - 6;
    m->buffers = take_frames(frames, d + 6, n);
    if ((d && m->idents == NULL) || (m->n_buffers && m->buffers == NULL)) {
        jp_error_set(err, "out of memory");
        goto fail;
    }
    clear_frames(frames, n);
    return m;
fail:
    if (m && !m->idents) {
        m->n_idents = 0;
    }
    if (m && !m->buffers) {
        m->n_buffers = 0;
    }
    jp_msg_destroy(&m);
    clear_frames(frames, n);
    return NULL;
}

/* ------------------------------------------------------------- encoding */

static void free_json_text(void *data, void *hint)
{
    (void)hint;
    free(data);
}

static int dump_frame(json_t *v, jp_frame *f)
{
    char *text = json_dumps(v, JSON_COMPACT);
    if (text == NULL) {
        return -1;
    }
    f->data = text;
    f->size = strlen(text);
    f->free_fn = free_json_text;
    return 0;
}

int jp_wire_encode(jp_session *s, jp_msg **mp, jp_frame **out, size_t *n_out,
                   jp_error *err)
{
    jp_msg *m = *mp;
    *mp = NULL;
    *out = NULL;
    *n_out = 0;
    size_t n = m->n_idents + 6 + m->n_buffers;
    jp_frame *f = calloc(n, sizeof *f);
    if (f == NULL) {
        jp_error_set(err, "out of memory");
        jp_msg_destroy(&m);
        return -1;
    }
    size_t d = m->n_idents;
    /* memcpy from NULL is undefined even for 0 bytes (UBSan says so). */
    if (d) {
        memcpy(f, m->idents, d * sizeof *f);
    }
    if (m->n_buffers) {
        memcpy(f + d + 6, m->buffers, m->n_buffers * sizeof *f);
    }
    m->n_idents = m->n_buffers = 0; /* moved into f */
    f[d].data = (void *)JP_DELIMITER;
    f[d].size = DELIM_LEN;
    json_t *parts[4] = {m->header, m->parent_header, m->metadata, m->content};
    const void *json_frames[4];
    size_t json_lens[4];
    for (int i = 0; i < 4; i++) {
        if (dump_frame(parts[i], &f[d + 2 + i]) < 0) {
            jp_error_set(err, "cannot serialise %s", i == 0 ? "header" : "message");
            goto fail;
        }
        json_frames[i] = f[d + 2 + i].data;
        json_lens[i] = f[d + 2 + i].size;
    }
    char sig[130];
    if (jp_signer_sign(jp_session_signer(s), json_frames, json_lens, sig, sizeof sig) <
            0 ||
        jp_frame_copy(&f[d + 1], sig, strlen(sig)) < 0) {
        jp_error_set(err, "cannot sign message");
        goto fail;
    }
    jp_msg_destroy(&m);
    *out = f;
    *n_out = n;
    return 0;
fail:
    clear_frames(f, n);
    free(f);
    jp_msg_destroy(&m);
    return -1;
}

/* ---------------------------------------------------------------- sockets */

static void free_zmq_msg(void *data, void *hint)
{
    (void)data;
    zmq_msg_close(hint);
    free(hint);
}

int jp_send(jp_session *s, void *socket, jp_msg **mp, const char *topic, jp_error *err)
{
    jp_msg *m = *mp;
    *mp = NULL;
    if (m == NULL) {
        jp_error_set(err, "no message to send");
        return -1;
    }
    if (topic && m->n_idents == 0) {
        jp_frame t;
        if (jp_frame_copy(&t, topic, strlen(topic)) < 0 ||
            (m->idents = malloc(sizeof t)) == NULL) {
            jp_frame_clear(&t);
            jp_msg_destroy(&m);
            jp_error_set(err, "out of memory");
            return -1;
        }
        m->idents[0] = t;
        m->n_idents = 1;
    }
    jp_frame *frames;
    size_t n;
    if (jp_wire_encode(s, &m, &frames, &n, err) < 0) {
        return -1;
    }
    jp_frames all = {frames, n};
    int rc = jp_frames_send(socket, &all, 0);
    if (rc < 0) {
        jp_error_set(err, "send failed: %s", zmq_strerror(errno));
    }
    jp_frames_clear(&all);
    return rc;
}

static int recv_frame(void *socket, int flags, jp_frame *f)
{
    zmq_msg_t *zm = malloc(sizeof *zm);
    if (zm == NULL) {
        errno = ENOMEM;
        return -1;
    }
    zmq_msg_init(zm);
    int rc;
    do {
        rc = zmq_msg_recv(zm, socket, flags);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0) {
        int saved = errno;
        zmq_msg_close(zm);
        free(zm);
        errno = saved;
        return -1;
    }
    /* The frame keeps the ZeroMQ message alive: no copy of its bytes. */
    f->data = zmq_msg_data(zm);
    f->size = zmq_msg_size(zm);
    f->free_fn = free_zmq_msg;
    f->hint = zm;
    return zmq_msg_more(zm);
}

/* Receives and discards the remaining parts of a multipart message without
 * allocating, so that the next receive starts at a message boundary. */
static void drain_rest(void *socket)
{
    int more = 1;
    while (more) {
        zmq_msg_t zm;
        zmq_msg_init(&zm);
        int rc;
        do {
            rc = zmq_msg_recv(&zm, socket, 0);
        } while (rc < 0 && errno == EINTR);
        more = rc >= 0 && zmq_msg_more(&zm);
        zmq_msg_close(&zm);
    }
}

int jp_recv_frames(void *socket, int flags, jp_frame **out, size_t *n_out)
{
    return jp_recv_frames_max(socket, flags, SIZE_MAX, out, n_out);
}

int jp_recv_frames_max(void *socket, int flags, size_t max, jp_frame **out, size_t *n_out)
{
    size_t n = 0, cap = 8;
    jp_frame *frames = calloc(cap, sizeof *frames);
    *out = NULL;
    *n_out = 0;
    if (frames == NULL) {
        errno = ENOMEM;
        return -1;
    }
    int more = 1;
    while (more) {
        if (n == max) { /* dropped unread, without keeping a byte of it */
            errno = EMSGSIZE;
            more = -1;
            break;
        }
        if (n == cap) {
            jp_frame *grown = realloc(frames, 2 * cap * sizeof *grown);
            if (grown == NULL) {
                errno = ENOMEM;
                more = -1;
                break;
            }
            memset(grown + cap, 0, cap * sizeof *grown);
            frames = grown;
            cap *= 2;
        }
        /* Later parts of a multipart message are already here. */
        more = recv_frame(socket, n == 0 ? flags : 0, &frames[n]);
        if (more < 0) {
            break;
        }
        n++;
    }
    if (more < 0) {
        int saved = errno;
        if (n > 0) {
            drain_rest(socket); /* out of memory or too many parts */
        }
        clear_frames(frames, n);
        free(frames);
        errno = saved;
        return -1;
    }
    *out = frames;
    *n_out = n;
    return 0;
}

jp_msg *jp_recv(jp_session *s, void *socket, int flags, jp_error *err)
{
    jp_frame *frames;
    size_t n;
    if (jp_recv_frames_max(socket, flags, JP_MAX_FRAMES, &frames, &n) < 0) {
        int saved = errno;
        jp_error_set(err, "receive failed: %s", zmq_strerror(saved));
        errno = saved;
        return NULL;
    }
    jp_msg *m = jp_wire_decode(s, frames, n, err);
    free(frames);
    if (m == NULL) {
        errno = EPROTO;
    }
    return m;
}
