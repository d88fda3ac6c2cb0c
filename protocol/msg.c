/* msg.c -- the Jupyter message model and sessions.
 *
 * Every message has a header {msg_id, session, username, date, msg_type,
 * version}, the parent's header (or {}), metadata and content, plus optional
 * binary buffers.  A reply copies the request's routing identities so a
 * ROUTER socket can deliver it; an iopub message carries the request's header
 * as parent_header so frontends can attribute output to a cell.
 */
#include "jp.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uuid.h>

struct jp_session {
    char id[37];           /* UUID string naming this session */
    char *username;        /* owned */
    jp_signer *signer;     /* owned */
    atomic_ullong counter; /* message counter for unique msg_ids */
    long pid;              /* process id, part of every msg_id */
};

jp_session *jp_session_new(const char *scheme, const char *key, size_t key_len,
                           const char *username, jp_error *err)
{
    jp_session *s = calloc(1, sizeof *s);
    if (s == NULL) {
        jp_error_set(err, "out of memory");
        return NULL;
    }
    uuid_t u;
    uuid_generate_random(u);
    uuid_unparse_lower(u, s->id);
    if (username == NULL) {
        username = getenv("USER");
    }
    s->username = strdup(username && *username ? username : "ferry");
    s->signer = jp_signer_new(scheme, key, key_len, 0, err);
    s->pid = (long)getpid();
    atomic_init(&s->counter, 0);
    if (s->username == NULL || s->signer == NULL) {
        jp_error_set(err, "out of memory");
        jp_session_destroy(&s);
    }
    return s;
}

jp_session *jp_session_from_connection(const jp_connection *c, const char *username,
                                       jp_error *err)
{
    const char *key = c->key ? c->key : "";
    return jp_session_new(c->signature_scheme, key, strlen(key), username, err);
}

void jp_session_destroy(jp_session **sp)
{
    if (sp == NULL || *sp == NULL) {
        return;
    }
    jp_signer_destroy(&(*sp)->signer);
    free((*sp)->username);
    free(*sp);
    *sp = NULL;
}

const char *jp_session_id(const jp_session *s)
{
    return s->id;
}

jp_signer *jp_session_signer(jp_session *s)
{
    return s->signer;
}

void jp_now_iso8601(char *buf, size_t size)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char base[24];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, size, "%s.%06ldZ", base, ts.tv_nsec / 1000);
}

static json_t *header_new(jp_session *s, const char *msg_type)
{
    char id[96], date[40];
    /* The counter makes every msg_id, and so every signature, unique even
     * within one microsecond. */
    unsigned long long n = atomic_fetch_add(&s->counter, 1);
    snprintf(id, sizeof id, "%s_%ld_%llu", s->id, s->pid, n);
    jp_now_iso8601(date, sizeof date);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "msg_id", id, "session", s->id,
                     "username", s->username, "date", date, "msg_type", msg_type,
                     "version", JP_PROTOCOL_VERSION);
}

static int copy_frames(jp_frame **dst, size_t *n_dst, const jp_frame *src, size_t n)
{
    if (n == 0) {
        return 0;
    }
    *dst = calloc(n, sizeof **dst);
    if (*dst == NULL) {
        return -1;
    }
    *n_dst = n;
    for (size_t i = 0; i < n; i++) {
        if (jp_frame_copy(&(*dst)[i], src[i].data, src[i].size) < 0) {
            return -1;
        }
    }
    return 0;
}

jp_msg *jp_msg_new(jp_session *s, const char *msg_type, json_t *steal_content,
                   const jp_msg *parent, int copy_idents)
{
    jp_msg *m = calloc(1, sizeof *m);
    if (m == NULL) {
        json_decref(steal_content);
        return NULL;
    }
    m->content = steal_content ? steal_content : json_object();
    m->header = header_new(s, msg_type);
    m->parent_header =
        parent && parent->header ? json_deep_copy(parent->header) : json_object();
    m->metadata = json_object();
    if (m->content == NULL || m->header == NULL || m->parent_header == NULL ||
        m->metadata == NULL ||
        (parent && copy_idents &&
         copy_frames(&m->idents, &m->n_idents, parent->idents, parent->n_idents) < 0)) {
        jp_msg_destroy(&m);
    }
    return m;
}

jp_msg *jp_msg_reply(jp_session *s, const jp_msg *parent, const char *msg_type,
                     json_t *steal_content)
{
    return jp_msg_new(s, msg_type, steal_content, parent, 1);
}

jp_msg *jp_msg_iopub(jp_session *s, const jp_msg *parent, const char *msg_type,
                     json_t *steal_content)
{
    return jp_msg_new(s, msg_type, steal_content, parent, 0);
}

void jp_msg_destroy(jp_msg **mp)
{
    if (mp == NULL || *mp == NULL) {
        return;
    }
    jp_msg *m = *mp;
    jp_frames_clear(&(jp_frames){m->idents, m->n_idents});
    jp_frames_clear(&(jp_frames){m->buffers, m->n_buffers});
    json_decref(m->header);
    json_decref(m->parent_header);
    json_decref(m->metadata);
    json_decref(m->content);
    free(m);
    *mp = NULL;
}

static const char *header_string(const jp_msg *m, const char *field)
{
    const char *v = json_string_value(json_object_get(m->header, field));
    return v ? v : "";
}

const char *jp_msg_type(const jp_msg *m)
{
    return header_string(m, "msg_type");
}

const char *jp_msg_id(const jp_msg *m)
{
    return header_string(m, "msg_id");
}

int jp_msg_add_buffer(jp_msg *m, jp_frame *f)
{
    jp_frame *grown = realloc(m->buffers, (m->n_buffers + 1) * sizeof *grown);
    if (grown == NULL) {
        return -1;
    }
    m->buffers = grown;
    m->buffers[m->n_buffers++] = *f;
    memset(f, 0, sizeof *f);
    return 0;
}
