/* request.c -- the request being handled (see request.h). */
#include "request.h"

#include <stdlib.h>
#include <string.h>

struct request {
    int refs;        /* atomic: holders */
    jp_msg *msg;     /* owned */
    void *sock;      /* where the reply goes */
    int allow_stdin; /* execute_request with allow_stdin */
};

request *request_new(jp_msg **msg, void *sock)
{
    request *r = calloc(1, sizeof *r);
    if (r == NULL) {
        jp_msg_destroy(msg);
        return NULL;
    }
    r->refs = 1;
    r->msg = *msg;
    *msg = NULL;
    r->sock = sock;
    r->allow_stdin = strcmp(jp_msg_type(r->msg), "execute_request") == 0 &&
                     json_is_true(json_object_get(r->msg->content, "allow_stdin"));
    return r;
}

request *request_hold(request *r)
{
    if (r) {
        __atomic_add_fetch(&r->refs, 1, __ATOMIC_RELAXED);
    }
    return r;
}

void request_release(request **rp)
{
    request *r = rp ? *rp : NULL;
    if (r == NULL) {
        return;
    }
    *rp = NULL;
    if (__atomic_sub_fetch(&r->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        jp_msg_destroy(&r->msg);
        free(r);
    }
}

const jp_msg *request_msg(const request *r)
{
    return r->msg;
}

void *request_socket(const request *r)
{
    return r->sock;
}

int request_allows_stdin(const request *r)
{
    return r->allow_stdin;
}

void request_slot_init(request_slot *s)
{
    pthread_mutex_init(&s->lock, NULL);
    s->current = NULL;
}

void request_slot_destroy(request_slot *s)
{
    request_release(&s->current);
    pthread_mutex_destroy(&s->lock);
}

void request_slot_set(request_slot *s, request *r)
{
    request *held = request_hold(r);
    pthread_mutex_lock(&s->lock);
    request *old = s->current;
    s->current = held;
    pthread_mutex_unlock(&s->lock);
    request_release(&old); /* outside the lock: it may free a message */
}

request *request_slot_get(request_slot *s)
{
    pthread_mutex_lock(&s->lock);
    request *r = request_hold(s->current);
    pthread_mutex_unlock(&s->lock);
    return r;
}
