/* results.c -- a pool's results: staged by the dispatcher, published once
 * per turn, taken by pool_next (the collector thread) or, for a thread
 * blocked on one task of its own, by pool_next_one: the collector leaves
 * that result to it, so a lone task's result wakes one thread, not the
 * collector and then the waiting thread. */
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

static int is_wanted(const pool *p, uint64_t id)
{
    for (int i = 0; i < p->n_wanted; i++) {
        if (p->wanted[i] == id) {
            return 1;
        }
    }
    return 0;
}

void pool_publish_results(pool *p)
{
    if (p->staged == NULL) {
        return;
    }
    pthread_mutex_lock(&p->lock);
    int for_one = 0, for_collector = 0;
    for (result_node *n = p->staged; n; n = n->next) {
        if (is_wanted(p, n->r.task_id)) {
            for_one = 1;
        } else {
            for_collector = 1;
        }
    }
    if (p->results_tail) {
        p->results_tail->next = p->staged;
    } else {
        p->results = p->staged;
    }
    p->results_tail = p->staged_tail;
    p->staged = p->staged_tail = NULL;
    /* Only the threads with something to take: waking the collector for a
     * result it must leave costs a core on a loaded machine. */
    if (for_collector) {
        pthread_cond_broadcast(&p->results_cond);
    }
    if (for_one) {
        pthread_cond_broadcast(&p->one_cond);
    }
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

/* Under p->lock: moves up to max results to out: the one of task `only`
 * if only != 0, else every one no thread waits on in pool_next_one. */
static int take(pool *p, pool_result *out, int max, uint64_t only)
{
    int got = 0;
    result_node **link = &p->results, *prev = NULL;
    while (*link && got < max) {
        result_node *node = *link;
        if (only ? node->r.task_id != only : is_wanted(p, node->r.task_id)) {
            prev = node;
            link = &node->next;
            continue;
        }
        *link = node->next;
        if (p->results_tail == node) {
            p->results_tail = prev;
        }
        out[got++] = node->r;
        free(node);
        if (only) {
            break;
        }
    }
    return got;
}

int pool_take_one(pool *p, uint64_t id, pool_result *out)
{
    pthread_mutex_lock(&p->lock);
    int got = take(p, out, 1, id);
    pthread_mutex_unlock(&p->lock);
    return got;
}

static void deadline_in(struct timespec *deadline, int timeout_ms)
{
    clock_gettime(CLOCK_REALTIME, deadline);
    if (timeout_ms > 0) {
        deadline->tv_sec += timeout_ms / 1000;
        deadline->tv_nsec += (long)(timeout_ms % 1000) * 1000000;
        if (deadline->tv_nsec >= 1000000000) {
            deadline->tv_sec++;
            deadline->tv_nsec -= 1000000000;
        }
    }
}

/* Under p->lock: waits on cond for what take(only) takes. */
static int wait_take(pool *p, pthread_cond_t *cond, pool_result *out, int max,
                     int timeout_ms, uint64_t only)
{
    struct timespec deadline;
    deadline_in(&deadline, timeout_ms);
    int got = 0;
    while ((got = take(p, out, max, only)) == 0 && !p->closed) {
        if (timeout_ms < 0) {
            pthread_cond_wait(cond, &p->lock);
        } else if (timeout_ms == 0 ||
                   pthread_cond_timedwait(cond, &p->lock, &deadline) == ETIMEDOUT) {
            break;
        }
    }
    return got > 0 ? got : p->closed ? -1 : 0;
}

/* Under p->lock: notes the ids pool_next hands out now.  The collector
 * takes a batch, then settles it (with the GIL) before it takes the next:
 * a result it took but did not settle yet is in one of its last two
 * batches. */
static void note_taken(pool *p, const pool_result *out, int got)
{
    p->taken_cur ^= 1;
    taken_batch *b = &p->taken[p->taken_cur];
    b->n = got < POOL_TAKEN_MAX ? got : POOL_TAKEN_MAX;
    b->overflow = got > POOL_TAKEN_MAX;
    for (int i = 0; i < b->n; i++) {
        b->ids[i] = out[i].task_id;
    }
}

/* Under p->lock: the collector may hold id's result unsettled. */
static int maybe_taken(const pool *p, uint64_t id)
{
    for (int k = 0; k < 2; k++) {
        const taken_batch *b = &p->taken[k];
        if (b->overflow) {
            return 1;
        }
        for (int i = 0; i < b->n; i++) {
            if (b->ids[i] == id) {
                return 1;
            }
        }
    }
    return 0;
}

int pool_next(pool *p, pool_result *out, int max, int timeout_ms)
{
    pthread_mutex_lock(&p->lock);
    int rc = wait_take(p, &p->results_cond, out, max, timeout_ms, 0);
    if (rc > 0) {
        note_taken(p, out, rc);
    }
    pthread_mutex_unlock(&p->lock);
    return rc;
}

int pool_next_one(pool *p, uint64_t task_id, pool_result *out, int timeout_ms)
{
    pthread_mutex_lock(&p->lock);
    if (p->n_wanted == POOL_DIRECT_MAX || is_wanted(p, task_id) ||
        maybe_taken(p, task_id)) {
        /* waiting here would be for a result the collector settles */
        pthread_mutex_unlock(&p->lock);
        return -2;
    }
    p->wanted[p->n_wanted++] = task_id;
    int rc = take(p, out, 1, task_id);
    if (rc == 0 && p->collect_one) {
        /* From the worker's socket, when its task is this one alone. */
        pthread_mutex_unlock(&p->lock);
        rc = p->collect_one(p, task_id, out, &timeout_ms);
        pthread_mutex_lock(&p->lock);
    }
    if (rc <= 0) {
        rc = wait_take(p, &p->one_cond, out, 1, timeout_ms, task_id);
    }
    for (int i = 0; i < p->n_wanted; i++) {
        if (p->wanted[i] == task_id) {
            p->wanted[i] = p->wanted[--p->n_wanted];
            break;
        }
    }
    if (rc == 0 && p->results != NULL) {
        /* timed out as it came: the collector's now */
        pthread_cond_broadcast(&p->results_cond);
    }
    pthread_mutex_unlock(&p->lock);
    return rc;
}

void pool_result_clear(pool_result *r)
{
    jp_frames_clear(&r->frames);
    memset(r, 0, sizeof *r);
}
