/* test_pool_results.c -- the queue of a pool's results
 * (kernel/pool/results.c): the collector takes every result except one a
 * thread waits on itself, which goes to that thread alone, and no result is
 * lost when that thread stops waiting.  The queue is driven as the
 * dispatcher drives it (stage, publish, close), on a pool without its
 * thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <pthread.h>

#include <stdlib.h>

#include "log.h"
#include "pool_int.h"

typedef pool results; /* only the results' part of it is used here */

static results *q_new(void)
{
    pool *p = calloc(1, sizeof *p);
    assert_non_null(p);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->results_cond, NULL);
    pthread_cond_init(&p->one_cond, NULL);
    return p;
}

static void q_destroy(results *p)
{
    pool_result r;
    while (pool_next(p, &r, 1, 0) > 0) {
        pool_result_clear(&r);
    }
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->results_cond);
    pthread_cond_destroy(&p->one_cond);
    free(p);
}

/* What the dispatcher does as it ends. */
static void q_close(results *p)
{
    pthread_mutex_lock(&p->lock);
    p->closed = 1;
    pthread_cond_broadcast(&p->results_cond);
    pthread_cond_broadcast(&p->one_cond);
    pthread_mutex_unlock(&p->lock);
}

static void stage_and_publish(results *q, uint64_t id)
{
    assert_non_null(pool_post_result(q, id, POOL_OK, (jp_frames){0}, NULL));
    pool_publish_results(q);
}

typedef struct waiter {
    results *q;
    uint64_t id;
    int rc;
    pool_result r;
    pthread_t thread;
} waiter;

static void *wait_one(void *arg)
{
    waiter *w = arg;
    w->rc = pool_next_one(w->q, w->id, &w->r, 10000);
    return NULL;
}

/* Starts a thread waiting on task id and returns once it waits. */
static void start_waiter(waiter *w, results *q, uint64_t id)
{
    memset(w, 0, sizeof *w);
    w->q = q;
    w->id = id;
    assert_int_equal(pthread_create(&w->thread, NULL, wait_one, w), 0);
    for (;;) {
        pthread_mutex_lock(&q->lock);
        int waiting = q->n_wanted;
        pthread_mutex_unlock(&q->lock);
        if (waiting) {
            break;
        }
    }
}

static void test_pool_results__a_waited_result_goes_to_its_waiter_alone(void **state)
{
    (void)state;
    results *q = q_new();
    waiter w;
    start_waiter(&w, q, 7);
    /* Published together: the collector gets 6 and 8, never 7. */
    assert_non_null(pool_post_result(q, 6, POOL_OK, (jp_frames){0}, NULL));
    assert_non_null(pool_post_result(q, 7, POOL_ERROR, (jp_frames){0}, NULL));
    assert_non_null(pool_post_result(q, 8, POOL_OK, (jp_frames){0}, NULL));
    pool_publish_results(q);
    pthread_join(w.thread, NULL);
    assert_int_equal(w.rc, 1);
    assert_int_equal(w.r.task_id, 7);
    assert_int_equal(w.r.status, POOL_ERROR);
    pool_result out[4];
    assert_int_equal(pool_next(q, out, 4, 0), 2);
    assert_int_equal(out[0].task_id, 6);
    assert_int_equal(out[1].task_id, 8);
    assert_int_equal(pool_next(q, out, 4, 0), 0);
    q_destroy(q);
}

static void test_pool_results__the_collector_waits_past_a_result_not_its_own(void **state)
{
    (void)state;
    results *q = q_new();
    waiter w;
    start_waiter(&w, q, 7);
    stage_and_publish(q, 7);
    pool_result out[4];
    assert_int_equal(pool_next(q, out, 4, 20), 0); /* 7 is not the collector's */
    pthread_join(w.thread, NULL);
    assert_int_equal(w.rc, 1);
    q_destroy(q);
}

static void
test_pool_results__a_result_after_the_waiter_gave_up_is_the_collectors(void **state)
{
    (void)state;
    results *q = q_new();
    pool_result r;
    assert_int_equal(pool_next_one(q, 7, &r, 10), 0); /* timed out */
    stage_and_publish(q, 7);
    pool_result out[4];
    assert_int_equal(pool_next(q, out, 4, 0), 1);
    assert_int_equal(out[0].task_id, 7);
    q_destroy(q);
}

static void test_pool_results__a_closed_queue_ends_every_wait(void **state)
{
    (void)state;
    results *q = q_new();
    waiter w;
    start_waiter(&w, q, 7);
    q_close(q);
    pthread_join(w.thread, NULL);
    assert_int_equal(w.rc, -1);
    pool_result out[4];
    assert_int_equal(pool_next(q, out, 4, -1), -1);
    q_destroy(q);
}

static void test_pool_results__two_waiters_on_one_task_are_refused(void **state)
{
    (void)state;
    results *q = q_new();
    waiter w;
    start_waiter(&w, q, 7);
    pool_result r;
    assert_int_equal(pool_next_one(q, 7, &r, 10), -2);
    stage_and_publish(q, 7);
    pthread_join(w.thread, NULL);
    assert_int_equal(w.rc, 1);
    q_destroy(q);
}

/* The collector took a result before its waiter came: the waiter must not
 * wait for it (the collector settles it), and says so at once. */
static void test_pool_results__a_result_the_collector_took_is_not_waited_for(void **state)
{
    (void)state;
    results *q = q_new();
    stage_and_publish(q, 7);
    pool_result out[4];
    assert_int_equal(pool_next(q, out, 4, 0), 1);
    pool_result r;
    assert_int_equal(pool_next_one(q, 7, &r, 10000), -2); /* not after 10 s */
    /* another batch later, 7 is still the collector's last but one */
    stage_and_publish(q, 8);
    assert_int_equal(pool_next(q, out, 4, 0), 1);
    assert_int_equal(pool_next_one(q, 7, &r, 10000), -2);
    q_destroy(q);
}

int main(void)
{
    log_init(2, LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_results__a_waited_result_goes_to_its_waiter_alone),
        cmocka_unit_test(
            test_pool_results__the_collector_waits_past_a_result_not_its_own),
        cmocka_unit_test(
            test_pool_results__a_result_after_the_waiter_gave_up_is_the_collectors),
        cmocka_unit_test(test_pool_results__a_closed_queue_ends_every_wait),
        cmocka_unit_test(test_pool_results__two_waiters_on_one_task_are_refused),
        cmocka_unit_test(
            test_pool_results__a_result_the_collector_took_is_not_waited_for),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
