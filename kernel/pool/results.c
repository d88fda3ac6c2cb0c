/* results.c -- a pool's results: staged by the dispatcher, published once
 * per turn, taken by pool_next (the collector thread). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pool_int.h"

/* Stages a result; frames are taken over.  publish_results hands what is
 * staged to pool_next, once per turn of the dispatcher: one wake-up of the
 * collector for a burst of results instead of one each. */
pool_result *pool_post_result(pool *p, uint64_t id, pool_status status, jp_frames frames,
                              const char *message)
{
    result_node *node = calloc(1, sizeof *node);
    if (node == NULL) {
        jp_frames_clear(&frames);
        LOG_E("pool: out of memory for a result");
        return NULL;
    }
    node->r.task_id = id;
    node->r.status = status;
    node->r.frames = frames;
    snprintf(node->r.message, sizeof node->r.message, "%s", message ? message : "");
    if (p->staged_tail) {
        p->staged_tail->next = node;
    } else {
        p->staged = node;
    }
    p->staged_tail = node;
    return &node->r;
}

void pool_publish_results(pool *p)
{
    if (p->staged == NULL) {
        return;
    }
    pthread_mutex_lock(&p->lock);
    if (p->results_tail) {
        p->results_tail->next = p->staged;
    } else {
        p->results = p->staged;
    }
    p->results_tail = p->staged_tail;
    p->staged = p->staged_tail = NULL;
    pthread_cond_broadcast(&p->results_cond);
    pthread_mutex_unlock(&p->lock);
}

/* See pool_result. */
void pool_note_ran(pool_result *r, int pid, const task *t, uint64_t run_us)
{
    if (r) {
        r->pid = pid;
        r->sent = t->sent_us;
        r->ended = pool_now_us();
        r->run_us = run_us;
    }
}

int pool_next(pool *p, pool_result *out, int max, int timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    if (timeout_ms > 0) {
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
        if (deadline.tv_nsec >= 1000000000) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000;
        }
    }
    pthread_mutex_lock(&p->lock);
    while (p->results == NULL && !p->closed) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&p->results_cond, &p->lock);
        } else if (timeout_ms == 0 || pthread_cond_timedwait(&p->results_cond, &p->lock,
                                                             &deadline) == ETIMEDOUT) {
            break;
        }
    }
    int got = 0;
    while (p->results && got < max) {
        result_node *node = p->results;
        p->results = node->next;
        if (p->results == NULL) {
            p->results_tail = NULL;
        }
        out[got++] = node->r;
        free(node);
    }
    int rc = got > 0 ? got : p->closed ? -1 : 0;
    pthread_mutex_unlock(&p->lock);
    return rc;
}

void pool_result_clear(pool_result *r)
{
    jp_frames_clear(&r->frames);
    memset(r, 0, sizeof *r);
}
