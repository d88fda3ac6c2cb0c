/* pool.c -- a worker pool: its dispatcher thread and its API.
 *
 * The dispatcher runs the turns: it sleeps on an epoll set of each worker's
 * socket, its wake-up eventfd and the workers' pidfds (pool_watch.c),
 * turns what it sees into events
 * for the core (sched.c, which decides), and carries out the core's
 * decisions through procs.c (processes) and link.c (the wire, written once
 * per turn and never waited on); results.c queues what it settles.  Other threads reach
 * it only through what is under the lock: the inbox of submitted tasks, the cancels, the
 * size, and the results. */
#define _GNU_SOURCE /* pthread_setname_np */
#include "pool.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "link.h"
#include "log.h"
#include "pool_int.h"

/* Worker output forwarded by any pool, so that a flush can be skipped when
 * there is none. */
static unsigned long output_count;

/* ----------------------------------------------------------- helpers */

void pool_wake(pool *p)
{
    uint64_t one = 1;
    ssize_t rc = write(p->wake_fd, &one, sizeof one);
    (void)rc;
}

static void task_free(task *t)
{
    if (t) {
        json_decref(t->parent);
        jp_frames_clear(&t->frames);
        free(t);
    }
}

static void tasks_free(sched_task *t)
{
    while (t) {
        sched_task *next = t->next;
        task_free((task *)t);
        t = next;
    }
}

/* ------------------------------------------- the core's decisions, done */

static int do_spawn(void *ctx, int i)
{
    pool *p = ctx;
    slot *sl = &p->slots[i];
    json_decref(sl->last_parent);
    sl->last_parent = NULL;
    pool_close_conn(p, i);
    int worker_fd;
    if (link_open(&sl->conn, &worker_fd) < 0) {
        return -1;
    }
    pid_t pid = proc_spawn(&sl->proc, p->exe, worker_fd, p->runtime_dir);
    close(worker_fd);
    if (pid < 0) {
        pool_close_conn(p, i);
    } else {
        pool_watch_conn(p, i);
        pool_watch_pidfd(p, i);
    }
    return (int)pid;
}

static int do_send(void *ctx, int i, const sched_task *t)
{
    pool *p = ctx;
    task *full = (task *)t;
    if (link_send_task(&p->slots[i].conn, t->id, &full->frames) < 0) {
        return -1;
    }
    full->sent_us = pool_now_us();
    return 0;
}

static void do_cancel(void *ctx, int i, const uint64_t *ids, size_t n,
                      pool_cancel_mode how)
{
    pool *p = ctx;
    link_send_cancel(&p->slots[i].conn, ids, n, how);
}

static void do_stop(void *ctx, int i, int hard)
{
    pool *p = ctx;
    kill(p->core.workers[i].pid, hard ? SIGKILL : SIGTERM);
}

static void do_finish(void *ctx, sched_task *t, pool_status status, const char *message,
                      int on)
{
    pool *p = ctx;
    pool_result *r = pool_post_result(p, t->id, status, (jp_frames){0}, message);
    if (on >= 0) {
        pool_note_ran(r, p->core.workers[on].pid, (task *)t, 0);
    }
    task_free((task *)t);
}

/* ------------------------------------------------ the workers' messages */

/* A task's result: its payload and buffers are handed over, not copied. */
static void handle_done(pool *p, int i, const link_msg *m, jp_frames *in)
{
    pool_status st;
    task *t = (task *)sched_answered(&p->core, i, m->task, m->answer, m->run_us,
                                     pool_now_us(), &st);
    if (t == NULL) {
        return;
    }
    if (st == POOL_CANCELLED) {
        pool_post_result(p, t->core.id, st, (jp_frames){0}, "cancelled");
    } else {
        jp_frames payload;
        if (jp_frames_split(in, m->payload, &payload) < 0) {
            LOG_E("pool: out of memory for a result");
        }
        pool_note_ran(pool_post_result(p, t->core.id, st, payload, NULL),
                      p->core.workers[i].pid, t, m->run_us);
    }
    json_decref(p->slots[i].last_parent);
    p->slots[i].last_parent = json_incref(t->parent);
    task_free(t);
}

/* Output is published under the cell of the task that wrote it (or of the
 * worker's last task: output of a thread a task left behind). */
static void handle_output(pool *p, int i, const link_msg *m)
{
    task *t = (task *)sched_sent_task(&p->core, i, m->task);
    json_t *parent = t ? t->parent : p->slots[i].last_parent;
    iopub_stream(p->io, parent, m->is_stderr ? "stderr" : "stdout", m->out->data,
                 m->out->size);
    __atomic_add_fetch(&output_count, 1, __ATOMIC_RELAXED);
}

static void handle_worker_message(pool *p, int i, jp_frames *in)
{
    link_msg m = link_decode(in);
    if (m.kind == LINK_READY) {
        sched_ready(&p->core, i);
    } else if (m.kind == LINK_OUTPUT) {
        handle_output(p, i, &m);
    } else if (m.kind == LINK_DONE) {
        handle_done(p, i, &m, in);
    } else {
        LOG_W("pool: worker %d sent a malformed message", (int)p->core.workers[i].pid);
    }
    jp_frames_clear(in);
}

/* See pool_int.h.  A worker whose stream breaks is killed: its crash is
 * then accounted as any. */
int pool_read_worker(pool *p, int i, int max)
{
    link_conn *c = &p->slots[i].conn;
    for (int k = 0; c->fd >= 0; k++) {
        if (max >= 0 && k >= max) {
            return 1;
        }
        jp_frames in;
        jp_error err = {0};
        wire_rc rc = wire_in_read(&c->in, c->fd, &in, &err);
        if (rc == WIRE_MSG) {
            handle_worker_message(p, i, &in);
            continue;
        }
        if (rc == WIRE_ERROR) {
            LOG_E("pool: worker %d: %s", (int)p->core.workers[i].pid, err.text);
            kill(p->core.workers[i].pid, SIGKILL);
        }
        if (rc != WIRE_AGAIN) {
            pool_close_conn(p, i); /* its end comes through the pidfd */
        }
        break;
    }
    return 0;
}

static void reap_worker(pool *p, int i)
{
    char how[200];
    sched_progress progress;
    int known = 0;
    /* What it wrote before it died comes first: a result it sent is not
     * lost with it (also one written after a read that emptied the socket). */
    wire_in_forget_drained(&p->slots[i].conn.in);
    pool_read_worker(p, i, -1);
    pool_unwatch_pidfd(p, i); /* before proc_reap closes it */
    if (proc_reap(&p->slots[i].proc, how, sizeof how, &progress, &known)) {
        pool_close_conn(p, i);
        sched_died(&p->core, i, how, known ? &progress : NULL, pool_now_us());
    } else {
        pool_watch_pidfd(p, i);
    }
}

/* Workers without a pidfd (pidfd_open refused: an old kernel, a seccomp
 * filter) are reaped by polling waitpid, since no fd says they exited.  A
 * SIGCHLD handler would say it sooner, but the signal is the cells' (their
 * subprocesses), not the pool's.  Returns the poll timeout this needs. */
#define UNWATCHED_POLL_MS 100

static int reap_unwatched(pool *p)
{
    int any = 0;
    for (int i = 0; i < p->core.n_slots; i++) {
        if (p->slots[i].proc.pid != 0 && p->slots[i].proc.pidfd < 0) {
            any = 1;
            reap_worker(p, i);
        }
    }
    return any ? UNWATCHED_POLL_MS : -1;
}

/* ------------------------------------------------------ the dispatcher */

/* What other threads asked for since the last turn, handed to the core:
 * the tasks first, so that a cancel finds the tasks submitted before it. */
void pool_take_commands(pool *p, int with_cancels)
{
    pthread_mutex_lock(&p->lock);
    sched_task *in = p->inbox.head;
    p->inbox = (sched_list){0};
    uint64_t *ids = NULL, *ints = NULL;
    size_t n = 0, n_ints = 0;
    if (with_cancels) {
        ids = p->cancels;
        n = p->n_cancels;
        ints = p->interrupts;
        n_ints = p->n_interrupts;
        p->cancels = p->interrupts = NULL;
        p->n_cancels = p->cap_cancels = p->n_interrupts = p->cap_interrupts = 0;
        sched_resize(&p->core, p->target);
        if (p->stopping) {
            sched_stop(&p->core);
        }
    }
    pthread_mutex_unlock(&p->lock);
    while (in) {
        sched_task *next = in->next;
        sched_submit(&p->core, in);
        in = next;
    }
    if (with_cancels) {
        sched_cancel(&p->core, ids, n, ints, n_ints, pool_now_us());
        sched_apply_size(&p->core);
    }
    free(ids);
    free(ints);
}

/* After the core dealt: how many tasks wait there, for pool_submit.  A
 * task submitted meanwhile without waking the dispatcher is taken at once
 * (returns 0: poll without waiting). */
int pool_note_queued(pool *p, int timeout)
{
    pthread_mutex_lock(&p->lock);
    p->queued = p->core.pending.n + p->core.recalled.n;
    int more = p->inbox.n > 0;
    pthread_mutex_unlock(&p->lock);
    return more ? 0 : timeout;
}

/* Writes what the turn queued for the workers, as far as each socket takes
 * it now; the rest waits for POLLOUT. */
void pool_flush_links(pool *p)
{
    for (int i = 0; i < p->core.n_slots; i++) {
        if (link_pending(&p->slots[i].conn)) {
            link_flush(&p->slots[i].conn);
        }
    }
}

static int min_timeout(int a, int b)
{
    return a < 0 ? b : b < 0 ? a : a < b ? a : b;
}

/* One turn's reading: a bounded batch per worker, so that a worker
 * flooding output does not keep the others' results, dispatch and cancels
 * waiting.  A lent socket is its reader's (an event for it came before the
 * loan).  Returns whether some worker's messages were left for the next. */
static int read_workers(pool *p, const pool_woke *w)
{
    int backlog = 0;
    for (int i = 0; i < p->core.n_slots; i++) {
        slot *sl = &p->slots[i];
        if ((w->conn[i] || sl->backlog) && sl->lent_to == 0 && sl->conn.fd >= 0) {
            sl->backlog = pool_read_worker(p, i, MESSAGES_PER_TURN);
            backlog |= sl->backlog;
        }
    }
    return backlog;
}

static void reap_exited(pool *p, const pool_woke *w)
{
    for (int i = 0; i < p->core.n_slots; i++) {
        if (w->exited[i] && p->slots[i].pid_armed) {
            reap_worker(p, i);
        }
    }
}

static void *dispatcher_main(void *arg)
{
    pool *p = arg;
    /* Interrupts are the cell thread's; the workers reset their own mask. */
    sigset_t blocked;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGINT);
    sigaddset(&blocked, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &blocked, NULL);
    /* Named for top -H, gdb, and the tests that count its wake-ups. */
    pthread_setname_np(pthread_self(), "ferry-dispatch");
    /* Held but while sleeping: a lone submit may then take a turn itself
     * (pool_lone.c), and this turn starts after it, from what it left. */
    pthread_mutex_lock(&p->turn);
    sched_apply_size(&p->core);
    int balance = -1; /* poll timeout rebalancing asked for */
    int backlog = 0;  /* a worker's messages were left for the next turn */
    pool_woke w;
    for (;;) {
        pthread_mutex_lock(&p->lock);
        if (p->stopping) {
            sched_stop(&p->core);
        }
        pthread_mutex_unlock(&p->lock);
        int timeout = min_timeout(sched_timers(&p->core, pool_now_us()), balance);
        timeout = min_timeout(timeout, reap_unwatched(p));
        if (p->core.stopping) {
            if (!sched_any_workers(&p->core)) {
                break;
            }
            timeout = 100;
        }
        pool_watch_rearm(p);
        pool_publish_results(p); /* all the turn staged, before it may sleep */
        pthread_mutex_unlock(&p->turn);
        int n = pool_watch_wait(p, &w, backlog ? 0 : timeout);
        int wait_errno = errno;
        pthread_mutex_lock(&p->turn);
        if (n < 0 && wait_errno != EINTR) {
            LOG_E("pool: epoll_wait failed: %s", strerror(wait_errno));
            break;
        }
        if (w.commands) {
            uint64_t count;
            ssize_t rc = read(p->wake_fd, &count, sizeof count);
            (void)rc;
            pool_take_commands(p, 1);
        }
        backlog = read_workers(p, &w);
        reap_exited(p, &w);
        pool_take_commands(p, 0);
        pthread_mutex_lock(&p->lock);
        if (p->retry) {
            p->retry = 0;
            sched_retry_starts(&p->core);
        }
        pthread_mutex_unlock(&p->lock);
        balance = pool_note_queued(p, sched_deal(&p->core, pool_now_us()));
        pool_flush_links(p);
    }
    pool_publish_results(p);
    for (int i = 0; i < SCHED_MAX_WORKERS; i++) {
        pool_unwatch_pidfd(p, i);
        pool_close_conn(p, i);
    }
    p->turns_over = 1;
    pthread_mutex_unlock(&p->turn);
    pthread_mutex_lock(&p->lock);
    p->closed = 1;
    pthread_cond_broadcast(&p->results_cond);
    pthread_cond_broadcast(&p->one_cond);
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* ----------------------------------------------------------- public */

pool *pool_new(const char *runtime_dir, const char *exe, iopub *io, int n, jp_error *err)
{
    pool *p = calloc(1, sizeof *p);
    if (p == NULL) {
        jp_error_set(err, "out of memory");
        return NULL;
    }
    p->io = io;
    sched_ops ops = {.ctx = p,
                     .spawn = do_spawn,
                     .send = do_send,
                     .cancel = do_cancel,
                     .stop = do_stop,
                     .finish = do_finish};
    sched_init(&p->core, &ops, n);
    p->target = p->core.target;
    for (int i = 0; i < SCHED_MAX_WORKERS; i++) {
        p->slots[i].proc.pidfd = -1;
        p->slots[i].conn = LINK_CLOSED;
    }
    snprintf(p->exe, sizeof p->exe, "%s", exe);
    snprintf(p->runtime_dir, sizeof p->runtime_dir, "%s", runtime_dir);
    pthread_mutex_init(&p->lock, NULL);
    pthread_mutex_init(&p->turn, NULL);
    pthread_cond_init(&p->results_cond, NULL);
    pthread_cond_init(&p->one_cond, NULL);
    p->collect_one = pool_lone_collect;
    p->epfd = -1;
    p->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (p->wake_fd < 0) {
        jp_error_set(err, "cannot make the pool's eventfd: %s", strerror(errno));
    } else if (pool_watch_init(p) < 0) {
        jp_error_set(err, "cannot make the pool's epoll set: %s", strerror(errno));
    } else if (pthread_create(&p->thread, NULL, dispatcher_main, p) != 0) {
        jp_error_set(err, "cannot start the pool's dispatcher");
    } else {
        return p;
    }
    if (p->wake_fd >= 0) {
        close(p->wake_fd);
    }
    if (p->epfd >= 0) {
        close(p->epfd);
    }
    pthread_mutex_destroy(&p->lock);
    pthread_mutex_destroy(&p->turn);
    pthread_cond_destroy(&p->results_cond);
    pthread_cond_destroy(&p->one_cond);
    free(p);
    return NULL;
}

void pool_stop(pool *p)
{
    pthread_mutex_lock(&p->lock);
    int first = !p->stopping;
    p->stopping = 1;
    pthread_mutex_unlock(&p->lock);
    if (first) {
        pool_wake(p);
        pthread_join(p->thread, NULL);
    }
}

void pool_destroy(pool **pp)
{
    if (pp == NULL || *pp == NULL) {
        return;
    }
    pool *p = *pp;
    pool_stop(p);
    tasks_free(p->inbox.head);
    tasks_free(sched_take_pending(&p->core));
    for (int i = 0; i < SCHED_MAX_WORKERS; i++) {
        proc_release(&p->slots[i].proc);
        link_close(&p->slots[i].conn);
        json_decref(p->slots[i].last_parent);
    }
    result_node *r = p->results;
    while (r) {
        result_node *next = r->next;
        pool_result_clear(&r->r);
        free(r);
        r = next;
    }
    free(p->cancels);
    free(p->interrupts);
    close(p->wake_fd);
    close(p->epfd);
    pthread_mutex_destroy(&p->lock);
    pthread_mutex_destroy(&p->turn);
    pthread_cond_destroy(&p->results_cond);
    pthread_cond_destroy(&p->one_cond);
    free(p);
    *pp = NULL;
}

int pool_size(pool *p)
{
    pthread_mutex_lock(&p->lock);
    int n = p->target;
    pthread_mutex_unlock(&p->lock);
    return n;
}

void pool_resize(pool *p, int n)
{
    pthread_mutex_lock(&p->lock);
    p->target = n < 1 ? 1 : n > SCHED_MAX_WORKERS ? SCHED_MAX_WORKERS : n;
    pthread_mutex_unlock(&p->lock);
    pool_wake(p);
}

int pool_submit(pool *p, uint64_t task_id, json_t *parent, jp_frames *frames, int lone)
{
    task *t = calloc(1, sizeof *t);
    if (t == NULL) {
        jp_frames_clear(frames);
        return -1;
    }
    t->core.id = task_id;
    t->parent = json_incref(parent);
    t->frames = *frames;
    *frames = (jp_frames){0};
    pthread_mutex_lock(&p->lock);
    /* A dispatcher with tasks queued comes back to them (a result, a ready
     * worker or an earlier wake-up is on its way): wake it only for the
     * first, so a map's thousands of submits cost one wake-up. */
    int first = p->inbox.n == 0 && p->queued == 0;
    sched_list_push(&p->inbox, &t->core);
    p->retry = 1;
    pthread_mutex_unlock(&p->lock);
    /* A lone task goes out from this thread when it can: the dispatcher's
     * wake-up and turn are the longest part of its way to a worker. */
    if (first && !(lone && pool_lone_turn(p))) {
        pool_wake(p);
    }
    return 0;
}

/* Appends n ids to a growable array; -1 when out of memory. */
static int ids_append(uint64_t **arr, size_t *len, size_t *cap, const uint64_t *ids,
                      size_t n)
{
    if (*len + n > *cap) {
        size_t grown_cap = (*len + n) * 2;
        uint64_t *grown = realloc(*arr, grown_cap * sizeof *grown);
        if (grown == NULL) {
            return -1;
        }
        *arr = grown;
        *cap = grown_cap;
    }
    memcpy(*arr + *len, ids, n * sizeof *ids);
    *len += n;
    return 0;
}

void pool_cancel(pool *p, const uint64_t *ids, size_t n, int interrupt)
{
    pthread_mutex_lock(&p->lock);
    int rc = ids_append(&p->cancels, &p->n_cancels, &p->cap_cancels, ids, n);
    if (rc == 0 && interrupt) {
        rc = ids_append(&p->interrupts, &p->n_interrupts, &p->cap_interrupts, ids, n);
    }
    pthread_mutex_unlock(&p->lock);
    if (rc < 0) {
        LOG_E("pool: out of memory cancelling tasks");
    }
    pool_wake(p);
}

int pool_pids(pool *p, int *pids, int max)
{
    return sched_read_pids(&p->core, pids, max);
}

unsigned long pool_output_count(void)
{
    return __atomic_load_n(&output_count, __ATOMIC_RELAXED);
}
