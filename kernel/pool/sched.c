/* sched.c -- the pool's scheduling and crash accounting (see sched.h). */
#include "sched.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Workers in a row that die before saying "ready" before the pool stops
 * starting new ones and fails the queued tasks instead of looping. */
#define MAX_FAILED_STARTS 3
/* How long a task may ignore its SIGINT before its worker is killed (and
 * replaced): an interrupt must free the pool for the next cell even when a
 * task blocks signals or loops in C. */
#define INTERRUPT_GRACE_MS 2000
/* Tasks sent ahead to a worker: as many as run in about this long (by the
 * running average of their run time), so a worker never waits a round trip
 * for its next small task, while a queue of long tasks stays in the pool,
 * where any worker that frees up can take the next one.  Until a burst of
 * work has shown how long its tasks run, one task per worker. */
#define PREFETCH_BUDGET_US 2000.0
#define MAX_IN_FLIGHT 64
/* A dead worker's results may still be on their way (sent before it died,
 * not yet read from the socket): how long they are waited for. */
#define LOST_RESULT_GRACE_MS 200

/* A task going back to the queue starts afresh there. */
static void task_requeued(sched_task *t)
{
    t->interrupted = 0;
    t->recalling = 0;
}

static int id_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* ids must be sorted. */
static int id_in(const uint64_t *ids, size_t n, uint64_t id)
{
    return n > 0 && bsearch(&id, ids, n, sizeof id, id_cmp) != NULL;
}

static void finish(sched *s, sched_task *t, pool_status status, const char *message)
{
    s->ops.finish(s->ops.ctx, t, status, message, -1);
}

/* t was on the worker in slot when it died with it. */
static void finish_crashed(sched *s, sched_task *t, const char *message, int slot)
{
    s->ops.finish(s->ops.ctx, t, POOL_CRASHED, message, slot);
}

static int is_live(const sched_worker *w)
{
    return w->pid != 0 && !w->dead_since;
}

/* --------------------------------------------------------- lifetime */

void sched_init(sched *s, const sched_ops *ops, int target)
{
    memset(s, 0, sizeof *s);
    s->ops = *ops;
    sched_resize(s, target);
}

sched_task *sched_take_pending(sched *s)
{
    sched_list_prepend(&s->pending, &s->recalled);
    sched_task *all = s->pending.head;
    s->pending = (sched_list){0};
    return all;
}

void sched_submit(sched *s, sched_task *t)
{
    sched_list_push(&s->pending, t);
}

void sched_retry_starts(sched *s)
{
    s->failed_starts = 0;
}

void sched_resize(sched *s, int target)
{
    s->target = target < 1 ? 1 : target > SCHED_MAX_WORKERS ? SCHED_MAX_WORKERS : target;
}

void sched_stop(sched *s)
{
    s->stopping = 1;
}

/* ------------------------------------------------------------ workers */

static int live_workers(const sched *s)
{
    int n = 0;
    for (int i = 0; i < s->n_slots; i++) {
        n += is_live(&s->workers[i]) && !s->workers[i].retiring;
    }
    return n;
}

static void spawn_worker(sched *s)
{
    int slot = 0;
    while (slot < SCHED_MAX_WORKERS && s->workers[slot].pid != 0) {
        slot++;
    }
    if (slot == SCHED_MAX_WORKERS) {
        return;
    }
    int pid = s->ops.spawn(s->ops.ctx, slot);
    if (pid <= 0) {
        return;
    }
    sched_worker *w = &s->workers[slot];
    memset(w, 0, sizeof *w);
    if (slot >= s->n_slots) {
        s->n_slots = slot + 1; /* the loops over workers stop there */
    }
    __atomic_store_n(&w->pid, pid, __ATOMIC_RELAXED);
}

void sched_apply_size(sched *s)
{
    int target = s->stopping ? 0 : s->target;
    int live = live_workers(s);
    for (; live < target; live++) {
        spawn_worker(s);
    }
    for (int i = 0; i < s->n_slots && live > target; i++) {
        sched_worker *w = &s->workers[i];
        if (is_live(w) && !w->retiring && w->sent.n == 0) {
            w->retiring = 1;
            s->ops.stop(s->ops.ctx, i, 0);
            live--;
        }
    }
}

void sched_ready(sched *s, int slot)
{
    s->workers[slot].ready = 1;
    s->failed_starts = 0;
}

static void worker_clear(sched_worker *w)
{
    __atomic_store_n(&w->pid, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&w->dead_since, 0, __ATOMIC_RELAXED);
    memset(w, 0, sizeof *w);
}

/* The tasks a dead worker held: the one it was running fails with how it
 * died; those it had not started go back to the front of the queue, in
 * order; those it had finished stay listed, as their results may still be
 * on their way (bury_dead settles the ones that never come). */
static void settle_sent_tasks(sched *s, int slot, const char *how,
                              const sched_progress *progress)
{
    sched_worker *w = &s->workers[slot];
    uint64_t running = progress ? progress->running : 0;
    uint64_t finished = progress ? progress->finished : 0;
    /* A worker runs its tasks in the order sent: every task up to the
     * running or last finished one ran.  Without progress, blame them all. */
    int last = progress ? -1 : w->sent.n - 1, i = 0;
    for (sched_task *t = w->sent.head; t; t = t->next, i++) {
        if (t->id == running || t->id == finished) {
            last = i;
        }
    }
    sched_list again = {0}, ran = {0};
    i = 0;
    for (sched_task *t = sched_list_pop(&w->sent); t; t = sched_list_pop(&w->sent), i++) {
        if (t->cancelled && t->id != running) {
            finish(s, t, POOL_CANCELLED, "cancelled");
        } else if (i > last) {
            task_requeued(t);
            sched_list_push(&again, t);
        } else if (progress == NULL || t->id == running) {
            char msg[256];
            snprintf(msg, sizeof msg, "%.150s while running a task (pid %d)", how,
                     w->pid);
            LOG_W("pool: %s", msg);
            finish_crashed(s, t, msg, slot);
        } else {
            sched_list_push(&ran, t);
        }
    }
    w->sent = ran;
    sched_list_prepend(&s->pending, &again);
}

void sched_died(sched *s, int slot, const char *how, const sched_progress *progress,
                long long now_us)
{
    sched_worker *w = &s->workers[slot];
    snprintf(w->death, sizeof w->death, "%.150s", how);
    if (w->sent.n) {
        settle_sent_tasks(s, slot, how, progress);
    } else if (!w->retiring && !s->stopping) {
        LOG_W("pool: idle worker %d died: %s", w->pid, how);
    }
    if (!w->ready && !w->retiring && !w->killed) {
        s->failed_starts++;
        snprintf(s->start_error, sizeof s->start_error, "%s", how);
    }
    if (w->sent.n == 0) {
        worker_clear(w);
        return;
    }
    /* Its slot stays, so the results in transit still find their tasks. */
    __atomic_store_n(&w->dead_since, now_us / 1000, __ATOMIC_RELAXED);
}

/* Settles what the dead workers' results did not: the tasks they finished
 * but whose results never came (lost with the process) fail; with now_all,
 * without waiting.  Returns the poll timeout until the next deadline. */
static int bury_dead(sched *s, long long now, int now_all)
{
    long long next = -1;
    for (int i = 0; i < s->n_slots; i++) {
        sched_worker *w = &s->workers[i];
        if (w->dead_since == 0) {
            continue;
        }
        long long left = w->dead_since + LOST_RESULT_GRACE_MS - now;
        if (w->sent.n > 0 && left > 0 && !now_all) {
            next = next < 0 || left < next ? left : next;
            continue;
        }
        for (sched_task *t = sched_list_pop(&w->sent); t; t = sched_list_pop(&w->sent)) {
            if (t->cancelled) {
                finish(s, t, POOL_CANCELLED, "cancelled");
                continue;
            }
            char msg[256];
            snprintf(msg, sizeof msg,
                     "%s after the task ended, before its result reached the kernel "
                     "(pid %d)",
                     w->death, w->pid);
            LOG_W("pool: %s", msg);
            finish_crashed(s, t, msg, i);
        }
        worker_clear(w);
    }
    return next < 0 ? -1 : (int)next + 1;
}

/* Kills the workers whose interrupted task outlived its grace; returns the
 * poll timeout until the next such deadline (-1: none).  A worker drops the
 * interrupted tasks it has not started at once, so only the first of its
 * tasks can be the one ignoring the interrupt. */
static int enforce_interrupts(sched *s, long long now)
{
    long long next = -1;
    for (int i = 0; i < s->n_slots; i++) {
        sched_worker *w = &s->workers[i];
        sched_task *t = w->sent.head;
        if (!is_live(w) || t == NULL || t->interrupted == 0 || w->killed) {
            continue;
        }
        long long left = t->interrupted + INTERRUPT_GRACE_MS - now;
        if (left <= 0) {
            LOG_W("pool: worker %d ignored an interrupt for %d ms; killing it", w->pid,
                  INTERRUPT_GRACE_MS);
            s->ops.stop(s->ops.ctx, i, 1);
            w->killed = 1;
        } else if (next < 0 || left < next) {
            next = left;
        }
    }
    return next < 0 ? -1 : (int)next + 1;
}

/* At stop: every worker goes now, busy or not. */
static void kill_all(sched *s)
{
    for (int i = 0; i < s->n_slots; i++) {
        sched_worker *w = &s->workers[i];
        if (is_live(w) && !w->killed) {
            s->ops.stop(s->ops.ctx, i, 1);
            w->killed = 1;
        }
    }
}

int sched_timers(sched *s, long long now_us)
{
    long long now = now_us / 1000;
    int burial = bury_dead(s, now, s->stopping);
    if (s->stopping) {
        kill_all(s);
    }
    int timeout = enforce_interrupts(s, now);
    if (burial >= 0 && (timeout < 0 || burial < timeout)) {
        timeout = burial;
    }
    return timeout;
}

/* ------------------------------------------------------------ answers */

/* The running average of task run times moves up at once (a long task
 * must stop the prefetching now) and down slowly. */
static void note_run_time(sched *s, uint64_t run_us)
{
    double us = (double)run_us;
    s->run_us = us > s->run_us ? us : 0.8 * s->run_us + 0.2 * us;
}

sched_task *sched_answered(sched *s, int slot, uint64_t id, sched_answer how,
                           uint64_t run_us, long long now_us, pool_status *status)
{
    sched_worker *w = &s->workers[slot];
    int was_head = w->sent.head && w->sent.head->id == id;
    sched_task *t = sched_list_take(&w->sent, id);
    if (t == NULL) {
        return NULL; /* cancelled here and answered already */
    }
    if (was_head) {
        w->head_since = now_us;
    }
    if (how == SCHED_ANSWER_RECALLED && !t->cancelled) {
        task_requeued(t);
        sched_list_push(&s->recalled, t); /* dealt again, first, in this order */
        return NULL;
    }
    if (how == SCHED_ANSWER_CANCELLED || how == SCHED_ANSWER_RECALLED) {
        *status = POOL_CANCELLED;
    } else {
        *status = how == SCHED_ANSWER_OK ? POOL_OK : POOL_ERROR;
        note_run_time(s, run_us);
    }
    return t;
}

sched_task *sched_sent_task(sched *s, int slot, uint64_t id)
{
    for (sched_task *t = s->workers[slot].sent.head; t; t = t->next) {
        if (t->id == id) {
            return t;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------ cancels */

/* Cancels the tasks of ids (sorted) that w holds; those also in ints
 * (sorted) are interrupted if running. */
static void cancel_sent(sched *s, int slot, const uint64_t *ids, size_t n,
                        const uint64_t *ints, size_t n_ints, long long now)
{
    sched_worker *w = &s->workers[slot];
    uint64_t *plain = malloc(2 * (size_t)w->sent.n * sizeof *plain);
    if (plain == NULL) {
        LOG_E("pool: out of memory cancelling tasks");
        return;
    }
    uint64_t *hard = plain + w->sent.n;
    size_t n_plain = 0, n_hard = 0;
    for (sched_task *t = w->sent.head; t; t = t->next) {
        if (id_in(ints, n_ints, t->id)) {
            hard[n_hard++] = t->id;
            t->interrupted = t->interrupted ? t->interrupted : now;
            t->cancelled = 1;
        } else if (id_in(ids, n, t->id)) {
            plain[n_plain++] = t->id;
            t->cancelled = 1;
        }
    }
    if (n_plain) {
        s->ops.cancel(s->ops.ctx, slot, plain, n_plain, POOL_CANCEL);
    }
    if (n_hard) {
        s->ops.cancel(s->ops.ctx, slot, hard, n_hard, POOL_CANCEL_INTERRUPT);
    }
    free(plain);
}

void sched_cancel(sched *s, uint64_t *ids, size_t n, uint64_t *ints, size_t n_ints,
                  long long now_us)
{
    sched_list_prepend(&s->pending, &s->recalled);
    if (n) {
        qsort(ids, n, sizeof *ids, id_cmp);
    }
    if (n_ints) {
        qsort(ints, n_ints, sizeof *ints, id_cmp);
    }
    sched_list keep = {0};
    for (sched_task *t = sched_list_pop(&s->pending); t;
         t = sched_list_pop(&s->pending)) {
        if (id_in(ids, n, t->id)) {
            finish(s, t, POOL_CANCELLED, "cancelled");
        } else {
            sched_list_push(&keep, t);
        }
    }
    s->pending = keep;
    for (int i = 0; n && i < s->n_slots; i++) {
        sched_worker *w = &s->workers[i];
        if (is_live(w) && w->sent.n > 0) {
            cancel_sent(s, i, ids, n, ints, n_ints, now_us / 1000);
        }
    }
}

/* ------------------------------------------------------------ dealing */

/* How many tasks a worker may hold (see PREFETCH_BUDGET_US). */
static int prefetch_depth(const sched *s)
{
    if (s->run_us <= 0) {
        return 1;
    }
    double d = PREFETCH_BUDGET_US / s->run_us;
    return d >= MAX_IN_FLIGHT ? MAX_IN_FLIGHT : d < 1 ? 1 : (int)d;
}

/* A worker whose first task has run longer than the prefetch budget is
 * busy with a long task: tasks queued behind it would wait for it while
 * another worker could run them. */
static int stuck(const sched_worker *w, long long now)
{
    return w->sent.n > 0 && now - w->head_since > (long long)PREFETCH_BUDGET_US;
}

static int can_take(const sched_worker *w, int depth, long long now)
{
    return is_live(w) && w->ready && !w->retiring && !w->killed && w->sent.n < depth &&
           (w->sent.n == 0 || !stuck(w, now));
}

/* Asks the worker in slot back for the tasks queued behind its first one
 * (those it has not started come back "recalled"). */
static void recall(sched *s, int slot)
{
    sched_worker *w = &s->workers[slot];
    uint64_t *ids = malloc((size_t)w->sent.n * sizeof *ids);
    size_t k = 0;
    for (sched_task *t = w->sent.head ? w->sent.head->next : NULL; ids && t;
         t = t->next) {
        if (!t->recalling) {
            t->recalling = 1;
            ids[k++] = t->id;
        }
    }
    if (k > 0) {
        s->ops.cancel(s->ops.ctx, slot, ids, k, POOL_RECALL);
    }
    free(ids);
}

/* Nothing is queued here, a worker is idle, and another one sits on a long
 * task with tasks queued behind it: those come back, to go to the idle
 * one.  Returns the poll timeout until a worker may become stuck (-1:
 * none). */
static int rebalance(sched *s, long long now)
{
    long long next = -1;
    int idle = 0;
    for (int i = 0; i < s->n_slots; i++) {
        idle |= can_take(&s->workers[i], 1, now) && s->workers[i].sent.n == 0;
    }
    for (int i = 0; idle && i < s->n_slots; i++) {
        sched_worker *w = &s->workers[i];
        if (!is_live(w) || w->sent.n < 2) {
            continue;
        }
        if (stuck(w, now)) {
            recall(s, i);
        } else {
            long long left = w->head_since + (long long)PREFETCH_BUDGET_US - now;
            next = next < 0 || left < next ? left : next;
        }
    }
    return next < 0 ? -1 : (int)(next / 1000) + 1;
}

static void send_task(sched *s, int slot, sched_task *t, long long now)
{
    sched_worker *w = &s->workers[slot];
    if (s->ops.send(s->ops.ctx, slot, t) < 0) {
        finish(s, t, POOL_CRASHED, "out of memory sending the task");
        return;
    }
    if (w->sent.n == 0) {
        w->head_since = now;
    }
    sched_list_push(&w->sent, t);
}

/* A worker still holding more than half the depth gets nothing this turn;
 * down to half, it is topped up to the full depth.  Its tasks then go in
 * batches - one write of many, read at once by the worker - instead of one
 * write (and one read) for every result that comes back, while the half it
 * holds (about PREFETCH_BUDGET_US / 2 of work) keeps it from waiting. */
static int wants_more(const sched_worker *w, int depth)
{
    return w->sent.n <= depth / 2;
}

/* Deals the queued tasks out one round at a time, so that every idle worker
 * gets one before any gets a second.  Returns the poll timeout rebalance
 * asks for (-1: none). */
static int dispatch_pending(sched *s, long long now)
{
    sched_list_prepend(&s->pending, &s->recalled);
    int busy = 0;
    for (int i = 0; i < s->n_slots; i++) {
        busy += s->workers[i].sent.n;
    }
    if (busy == 0 && s->pending.n == 0) {
        s->run_us = 0; /* the burst is over: learn the next one afresh */
        return -1;
    }
    int depth = prefetch_depth(s);
    int topping[SCHED_MAX_WORKERS];
    for (int i = 0; i < s->n_slots; i++) {
        topping[i] = wants_more(&s->workers[i], depth);
    }
    for (int level = 1; level <= depth; level++) {
        for (int i = 0; i < s->n_slots; i++) {
            if (!topping[i] || !can_take(&s->workers[i], level, now)) {
                continue;
            }
            sched_task *t = sched_list_pop(&s->pending);
            if (t == NULL) {
                return rebalance(s, now);
            }
            send_task(s, i, t, now);
        }
    }
    return s->pending.n ? -1 : rebalance(s, now);
}

/* Workers cannot start (a broken install, no memory): the queued tasks fail
 * with how the last one ended, rather than wait forever. */
static void fail_pending(sched *s)
{
    sched_list_prepend(&s->pending, &s->recalled);
    if (s->pending.n == 0) {
        return;
    }
    char msg[360];
    snprintf(msg, sizeof msg,
             "no worker process could start: %s (%d tries; the kernel log "
             "says why)",
             s->start_error, s->failed_starts);
    LOG_E("pool: %s", msg);
    for (sched_task *t = sched_list_pop(&s->pending); t;
         t = sched_list_pop(&s->pending)) {
        finish(s, t, POOL_CRASHED, msg);
    }
}

int sched_deal(sched *s, long long now_us)
{
    if (s->stopping) {
        /* nothing to start */
    } else if (s->failed_starts >= MAX_FAILED_STARTS) {
        fail_pending(s);
    } else {
        sched_apply_size(s); /* replaces workers that died */
    }
    return dispatch_pending(s, now_us);
}
