/* request.h -- the request being handled, as one object.
 *
 * dispatch (kernel.c) makes one for each shell request, hands it down to
 * the handler and releases it once the request's idle is out: it owns the
 * request, from one place.  Code on other threads that needs "the request
 * whose cell runs" (a pool's submit, from any Python thread; input() from
 * any thread) asks the kernel's request_slot for a reference of its own,
 * taken under the slot's lock, and releases it when done: the request
 * cannot be freed under it, whatever the shell does meanwhile. */
#ifndef FERRY_REQUEST_H
#define FERRY_REQUEST_H

#include <pthread.h>

#include "jp.h"

typedef struct request request;

/* A request for *msg (taken over, *msg set to NULL), received on sock;
 * NULL when out of memory (the message is freed).  Release with
 * request_release. */
request *request_new(jp_msg **msg, void *sock);
/* Another reference to r (NULL stays NULL). */
request *request_hold(request *r);
/* Drops the caller's reference and clears *r; the last one frees. */
void request_release(request **r);

const jp_msg *request_msg(const request *r);
/* Where its reply goes. */
void *request_socket(const request *r);
/* An execute_request that allows input() to ask the frontend. */
int request_allows_stdin(const request *r);

/* The request being handled, for other threads. */
typedef struct request_slot {
    pthread_mutex_t lock; /* guards current */
    request *current;     /* a reference, or NULL between requests */
} request_slot;

void request_slot_init(request_slot *s);
void request_slot_destroy(request_slot *s);
/* Makes r (may be NULL) the current request; the slot holds its own
 * reference, and drops the previous one. */
void request_slot_set(request_slot *s, request *r);
/* A reference to the current request, or NULL. */
request *request_slot_get(request_slot *s);

#endif
