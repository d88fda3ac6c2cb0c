/* test_pool_sched.c -- the pool's scheduling and crash accounting
 * (kernel/pool/sched.c), one test per rule: each drives the core with
 * events (task submitted, worker ready, answered, died, cancel, a turn at a
 * given time) and asserts what it decided (tasks sent, cancels, recalls,
 * stops, tasks ended).  No process, socket or clock is involved. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "log.h"
#include "sched.h"

#define MS 1000LL /* the core's time is in microseconds */

/* What the core decided, in order. */
typedef struct sent {
    int slot;
    uint64_t id;
} sent;

typedef struct cancel {
    int slot;
    pool_cancel_mode how;
    size_t n;
    uint64_t ids[8];
} cancel;

typedef struct ended {
    uint64_t id;
    pool_status status;
    int slot; /* the worker it died with, or -1 */
    char message[256];
} ended;

typedef struct world {
    sched s;
    int next_pid;
    sent sends[64];
    int n_sends;
    cancel cancels[16];
    int n_cancels;
    int stops[16]; /* slot * 2 + hard */
    int n_stops;
    ended ends[32];
    int n_ends;
} world;

static int on_spawn(void *ctx, int slot)
{
    (void)slot;
    world *w = ctx;
    return ++w->next_pid;
}

static int on_send(void *ctx, int slot, const sched_task *t)
{
    world *w = ctx;
    w->sends[w->n_sends++] = (sent){slot, t->id};
    return 0;
}

static void on_cancel(void *ctx, int slot, const uint64_t *ids, size_t n,
                      pool_cancel_mode how)
{
    world *w = ctx;
    cancel *c = &w->cancels[w->n_cancels++];
    *c = (cancel){.slot = slot, .how = how, .n = n};
    memcpy(c->ids, ids, (n < 8 ? n : 8) * sizeof *ids);
}

static void on_stop(void *ctx, int slot, int hard)
{
    world *w = ctx;
    w->stops[w->n_stops++] = slot * 2 + hard;
}

static void on_finish(void *ctx, sched_task *t, pool_status status, const char *message,
                      int slot)
{
    world *w = ctx;
    ended *e = &w->ends[w->n_ends++];
    *e = (ended){.id = t->id, .status = status, .slot = slot};
    strncpy(e->message, message, sizeof e->message - 1);
    free(t);
}

/* A core with n workers started (slots 0..n-1), none ready yet. */
static world *world_new(int n)
{
    world *w = calloc(1, sizeof *w);
    sched_ops ops = {.ctx = w,
                     .spawn = on_spawn,
                     .send = on_send,
                     .cancel = on_cancel,
                     .stop = on_stop,
                     .finish = on_finish};
    sched_init(&w->s, &ops, n);
    sched_apply_size(&w->s);
    return w;
}

static void world_free(world *w)
{
    for (int i = 0; i < w->s.n_slots; i++) {
        for (sched_task *t = w->s.workers[i].sent.head, *next; t; t = next) {
            next = t->next;
            free(t);
        }
    }
    for (sched_task *t = sched_take_pending(&w->s), *next; t; t = next) {
        next = t->next;
        free(t);
    }
    free(w);
}

static void submit(world *w, uint64_t id)
{
    sched_task *t = calloc(1, sizeof *t);
    t->id = id;
    sched_submit(&w->s, t);
}

/* The worker in slot answers task id (how), after running run_us: the
 * status the caller is to post, the task freed here. */
static int answer(world *w, int slot, uint64_t id, sched_answer how, uint64_t run_us,
                  long long now)
{
    pool_status st = POOL_OK;
    sched_task *t = sched_answered(&w->s, slot, id, how, run_us, now, &st);
    free(t);
    return t ? (int)st : -1; /* -1: nothing to post */
}

/* Sends of task id, and to which slot the last one went (-1: none). */
static int sends_of(const world *w, uint64_t id, int *slot)
{
    int n = 0;
    *slot = -1;
    for (int i = 0; i < w->n_sends; i++) {
        if (w->sends[i].id == id) {
            n++;
            *slot = w->sends[i].slot;
        }
    }
    return n;
}

static int ends_of(const world *w, uint64_t id, pool_status *status)
{
    int n = 0;
    for (int i = 0; i < w->n_ends; i++) {
        if (w->ends[i].id == id) {
            n++;
            *status = w->ends[i].status;
        }
    }
    return n;
}

/* One short task runs on slot's worker, so the core learns that tasks take
 * run_us (a burst under way: more tasks must be queued before the next
 * turn, or the core forgets). */
static void learn_run_time(world *w, int slot, uint64_t id, uint64_t run_us,
                           long long now)
{
    submit(w, id);
    sched_deal(&w->s, now);
    assert_int_equal(answer(w, slot, id, SCHED_ANSWER_OK, run_us, now), POOL_OK);
}

/* ---------------------------------------------------------------- rules */

/* Until run times are known a worker gets one task; once tasks are known
 * to be short, as many as run in the budget go ahead at once. */
static void test_pool_sched__sends_ahead_by_learned_run_time(void **state)
{
    (void)state;
    world *w = world_new(1);
    sched_ready(&w->s, 0);
    for (uint64_t id = 1; id <= 5; id++) {
        submit(w, id);
    }
    sched_deal(&w->s, 0);
    assert_int_equal(w->n_sends, 1); /* run time unknown: one */
    answer(w, 0, 1, SCHED_ANSWER_OK, 100, 10);
    sched_deal(&w->s, 10);
    /* 100 us each: the four left all fit in the budget, sent at once. */
    assert_int_equal(w->n_sends, 5);
    assert_int_equal(w->s.pending.n, 0);
    world_free(w);
}

/* Short tasks go ahead in batches: a worker holding more than half its
 * depth gets nothing for each result that comes back; down to half, it is
 * topped up to the full depth at once. */
static void test_pool_sched__tops_up_in_batches(void **state)
{
    (void)state;
    world *w = world_new(1);
    sched_ready(&w->s, 0);
    learn_run_time(w, 0, 1, 100, 0); /* 100 us each: a depth of 20 */
    int sends = w->n_sends;
    for (uint64_t id = 2; id <= 41; id++) {
        submit(w, id);
    }
    sched_deal(&w->s, 0);
    assert_int_equal(w->n_sends - sends, 20);
    uint64_t next = 2;
    for (int k = 0; k < 9; k++) { /* 19 .. 11 held: more than half */
        answer(w, 0, next++, SCHED_ANSWER_OK, 100, 10);
        sched_deal(&w->s, 10);
        assert_int_equal(w->n_sends - sends, 20);
    }
    answer(w, 0, next++, SCHED_ANSWER_OK, 100, 10); /* 10 held: half */
    sched_deal(&w->s, 10);
    assert_int_equal(w->n_sends - sends, 30);
    assert_int_equal(w->s.workers[0].sent.n, 20);
    world_free(w);
}

/* Long tasks stay in the pool: a worker whose task has run past the budget
 * gets nothing more, even when the learned run time says it could. */
static void test_pool_sched__busy_worker_gets_no_more(void **state)
{
    (void)state;
    world *w = world_new(1);
    sched_ready(&w->s, 0);
    learn_run_time(w, 0, 1, 100, 0);
    submit(w, 2);
    sched_deal(&w->s, 0);
    assert_int_equal(w->n_sends, 2);
    submit(w, 3);
    sched_deal(&w->s, 50 * MS); /* task 2 has run for 50 ms */
    int slot;
    assert_int_equal(sends_of(w, 3, &slot), 0);
    assert_int_equal(w->s.pending.n, 1);
    world_free(w);
}

/* Tasks queued behind a long one on a worker come back when another worker
 * is free, and go to it. */
static void test_pool_sched__queued_tasks_move_to_a_free_worker(void **state)
{
    (void)state;
    world *w = world_new(2);
    sched_ready(&w->s, 0);
    learn_run_time(w, 0, 1, 100, 0);
    for (uint64_t id = 2; id <= 4; id++) {
        submit(w, id);
    }
    sched_deal(&w->s, 0); /* worker 1 is not ready: all three to worker 0 */
    assert_int_equal(w->s.workers[0].sent.n, 3);
    sched_ready(&w->s, 1);
    sched_deal(&w->s, 50 * MS); /* task 2 runs long; worker 1 is idle */
    assert_int_equal(w->n_cancels, 1);
    assert_int_equal(w->cancels[0].slot, 0);
    assert_int_equal(w->cancels[0].how, POOL_RECALL);
    assert_int_equal(w->cancels[0].n, 2);
    assert_int_equal(w->cancels[0].ids[0], 3);
    assert_int_equal(w->cancels[0].ids[1], 4);
    /* Worker 0 gives them back; they go to worker 1, in order. */
    assert_int_equal(answer(w, 0, 3, SCHED_ANSWER_RECALLED, 0, 51 * MS), -1);
    assert_int_equal(answer(w, 0, 4, SCHED_ANSWER_RECALLED, 0, 51 * MS), -1);
    sched_deal(&w->s, 51 * MS);
    int slot;
    assert_int_equal(sends_of(w, 3, &slot), 2);
    assert_int_equal(slot, 1);
    assert_int_equal(sends_of(w, 4, &slot), 2);
    assert_int_equal(slot, 1);
    assert_int_equal(w->n_ends, 0); /* a recall is not an end */
    world_free(w);
}

/* A worker dies running task 2 with 3 and 4 sent behind it: 2 fails once,
 * with how it died; 3 and 4 run on another worker. */
static void
test_pool_sched__dead_worker_tasks_run_elsewhere_running_one_fails_once(void **state)
{
    (void)state;
    world *w = world_new(2);
    sched_ready(&w->s, 0);
    learn_run_time(w, 0, 1, 100, 0);
    for (uint64_t id = 2; id <= 4; id++) {
        submit(w, id);
    }
    sched_deal(&w->s, 0);
    sched_ready(&w->s, 1);
    sched_progress progress = {.running = 2, .finished = 1};
    sched_died(&w->s, 0, "the worker process was killed by signal 9 (SIGKILL)", &progress,
               1 * MS);
    pool_status st;
    assert_int_equal(ends_of(w, 2, &st), 1);
    assert_int_equal(st, POOL_CRASHED);
    assert_non_null(strstr(w->ends[0].message, "SIGKILL"));
    assert_int_equal(w->ends[0].slot, 0); /* named with the worker it ran on */
    sched_deal(&w->s, 1 * MS);
    int slot;
    assert_int_equal(sends_of(w, 3, &slot), 2);
    assert_int_equal(slot, 1);
    assert_int_equal(sends_of(w, 4, &slot), 2);
    assert_int_equal(slot, 1);
    /* Later turns settle nothing more about task 2. */
    sched_timers(&w->s, 10000 * MS);
    sched_deal(&w->s, 10000 * MS);
    assert_int_equal(ends_of(w, 2, &st), 1);
    assert_int_equal(sends_of(w, 2, &slot), 1);
    world_free(w);
}

/* The worker finished task 2 and died before its result arrived: task 2
 * fails once the grace for results in transit is over, and never runs
 * again; task 3, not started, runs elsewhere. */
static void test_pool_sched__lost_result_fails_and_is_not_run_twice(void **state)
{
    (void)state;
    world *w = world_new(2);
    sched_ready(&w->s, 0);
    learn_run_time(w, 0, 1, 100, 0);
    submit(w, 2);
    submit(w, 3);
    sched_deal(&w->s, 0);
    sched_ready(&w->s, 1);
    sched_progress progress = {.running = 0, .finished = 2};
    sched_died(&w->s, 0, "the worker process exited with code 1", &progress, 1 * MS);
    pool_status st;
    assert_int_equal(ends_of(w, 2, &st), 0); /* its result may be on its way */
    sched_timers(&w->s, 2 * MS);
    sched_deal(&w->s, 2 * MS);
    assert_int_equal(ends_of(w, 2, &st), 0);
    int slot;
    assert_int_equal(sends_of(w, 3, &slot), 2);
    assert_int_equal(slot, 1);
    int timeout = sched_timers(&w->s, 1000 * MS); /* grace over */
    assert_int_equal(ends_of(w, 2, &st), 1);
    assert_int_equal(st, POOL_CRASHED);
    assert_non_null(strstr(w->ends[0].message, "before its result reached the kernel"));
    assert_int_equal(timeout, -1);
    sched_deal(&w->s, 1000 * MS);
    assert_int_equal(sends_of(w, 2, &slot), 1);
    world_free(w);
}

/* A queued task cancelled ends at once and is never sent. */
static void test_pool_sched__cancel_of_a_queued_task_ends_it(void **state)
{
    (void)state;
    world *w = world_new(1);
    submit(w, 7); /* no worker ready: stays queued */
    sched_deal(&w->s, 0);
    uint64_t ids[] = {7};
    sched_cancel(&w->s, ids, 1, NULL, 0, 0);
    pool_status st;
    assert_int_equal(ends_of(w, 7, &st), 1);
    assert_int_equal(st, POOL_CANCELLED);
    sched_ready(&w->s, 0);
    sched_deal(&w->s, 0);
    int slot;
    assert_int_equal(sends_of(w, 7, &slot), 0);
    world_free(w);
}

/* Cancels stick: a task cancelled on its worker does not run again when
 * the worker dies before it, nor when it comes back from a recall. */
static void test_pool_sched__cancels_stick(void **state)
{
    (void)state;
    world *w = world_new(2);
    sched_ready(&w->s, 0);
    learn_run_time(w, 0, 1, 100, 0);
    for (uint64_t id = 2; id <= 4; id++) {
        submit(w, id);
    }
    sched_deal(&w->s, 0);
    uint64_t ids[] = {3, 4};
    sched_cancel(&w->s, ids, 2, NULL, 0, 0);
    assert_int_equal(w->n_cancels, 1);
    assert_int_equal(w->cancels[0].how, POOL_CANCEL);
    /* 4 comes back as recalled (crossing the cancel): it ends, cancelled. */
    assert_int_equal(answer(w, 0, 4, SCHED_ANSWER_RECALLED, 0, 1 * MS), POOL_CANCELLED);
    /* The worker dies running 2: 3 had not started, and stays cancelled. */
    sched_ready(&w->s, 1);
    sched_progress progress = {.running = 2, .finished = 1};
    sched_died(&w->s, 0, "the worker process exited with code 1", &progress, 1 * MS);
    sched_timers(&w->s, 1000 * MS);
    sched_deal(&w->s, 1000 * MS);
    pool_status st;
    assert_int_equal(ends_of(w, 3, &st), 1);
    assert_int_equal(st, POOL_CANCELLED);
    int slot;
    assert_int_equal(sends_of(w, 3, &slot), 1);
    assert_int_equal(sends_of(w, 4, &slot), 1);
    world_free(w);
}

/* An interrupted task that ignores SIGINT past the grace: its worker is
 * killed. */
static void test_pool_sched__ignored_interrupt_kills_the_worker(void **state)
{
    (void)state;
    world *w = world_new(1);
    sched_ready(&w->s, 0);
    submit(w, 1);
    sched_deal(&w->s, 0);
    uint64_t ids[] = {1}, ints[] = {1};
    sched_cancel(&w->s, ids, 1, ints, 1, 1 * MS);
    assert_int_equal(w->cancels[0].how, POOL_CANCEL_INTERRUPT);
    assert_true(sched_timers(&w->s, 100 * MS) > 0);
    assert_int_equal(w->n_stops, 0);
    sched_timers(&w->s, 5000 * MS);
    assert_int_equal(w->n_stops, 1);
    assert_int_equal(w->stops[0], 0 * 2 + 1); /* slot 0, killed */
    world_free(w);
}

/* Workers that die before saying ready, three in a row: the queued tasks
 * fail with how they died, instead of waiting for ever. */
static void test_pool_sched__workers_that_cannot_start_fail_the_queue(void **state)
{
    (void)state;
    world *w = world_new(1);
    submit(w, 1);
    for (int i = 0; i < 3; i++) {
        sched_died(&w->s, 0, "the worker process exited with code 127", NULL, 0);
        sched_deal(&w->s, 0); /* starts a replacement, until the third */
    }
    pool_status st;
    assert_int_equal(ends_of(w, 1, &st), 1);
    assert_int_equal(st, POOL_CRASHED);
    assert_non_null(strstr(w->ends[0].message, "code 127"));
    assert_int_equal(w->next_pid, 3); /* the first and two replacements */
    world_free(w);
}

/* A lone task may skip the dispatcher's turn only when dealing it needs
 * nothing but a send to an idle ready worker: not while a worker is still
 * starting with none free, a task waits, a worker died or the size
 * changed, nor when stopping. */
static void test_pool_sched__lone_ready_only_with_an_idle_worker(void **state)
{
    (void)state;
    world *w = world_new(2);
    assert_false(sched_lone_ready(&w->s)); /* none ready yet */
    sched_ready(&w->s, 0);
    assert_true(sched_lone_ready(&w->s));
    submit(w, 1);
    assert_false(sched_lone_ready(&w->s)); /* a task waits in the core */
    sched_deal(&w->s, 0);
    assert_false(sched_lone_ready(&w->s)); /* the ready one is busy */
    sched_ready(&w->s, 1);
    assert_true(sched_lone_ready(&w->s));
    sched_resize(&w->s, 3);
    assert_false(sched_lone_ready(&w->s)); /* a worker to start */
    sched_resize(&w->s, 2);
    assert_true(sched_lone_ready(&w->s));
    sched_progress progress = {.running = 1};
    sched_died(&w->s, 0, "the worker process exited with code 1", &progress, 1 * MS);
    assert_false(sched_lone_ready(&w->s)); /* a worker to replace */
    sched_deal(&w->s, 2 * MS);             /* replaced: slot 0 starts again */
    assert_true(sched_lone_ready(&w->s));  /* slot 1 idles */
    sched_stop(&w->s);
    assert_false(sched_lone_ready(&w->s));
    world_free(w);
}

int main(void)
{
    log_init(2, LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_sched__sends_ahead_by_learned_run_time),
        cmocka_unit_test(test_pool_sched__tops_up_in_batches),
        cmocka_unit_test(test_pool_sched__busy_worker_gets_no_more),
        cmocka_unit_test(test_pool_sched__queued_tasks_move_to_a_free_worker),
        cmocka_unit_test(
            test_pool_sched__dead_worker_tasks_run_elsewhere_running_one_fails_once),
        cmocka_unit_test(test_pool_sched__lost_result_fails_and_is_not_run_twice),
        cmocka_unit_test(test_pool_sched__cancel_of_a_queued_task_ends_it),
        cmocka_unit_test(test_pool_sched__cancels_stick),
        cmocka_unit_test(test_pool_sched__ignored_interrupt_kills_the_worker),
        cmocka_unit_test(test_pool_sched__workers_that_cannot_start_fail_the_queue),
        cmocka_unit_test(test_pool_sched__lone_ready_only_with_an_idle_worker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
