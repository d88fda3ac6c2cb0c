/* test_pool_procs.c -- how the pool names a worker's end
 * (kernel/pool/procs.c), on real child processes. */
#define _GNU_SOURCE /* pidfd_open */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <poll.h>
#include <signal.h>
#include <sys/pidfd.h>
#include <unistd.h>

#include "log.h"
#include "pool_wire.h"
#include "procs.h"

/* Starts a child that ends with code (or, with sig, by that signal), waits
 * for its end through the pidfd as the pool does, and reaps it. */
static void reap_child(int code, int sig, char *how, size_t size)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (sig) {
            raise(sig);
        }
        _exit(code);
    }
    proc pr = {.pid = pid, .pidfd = pidfd_open(pid, 0)};
    assert_true(pr.pidfd >= 0);
    struct pollfd fd = {.fd = pr.pidfd, .events = POLLIN};
    assert_int_equal(poll(&fd, 1, -1), 1);
    sched_progress progress;
    int known = 1;
    assert_int_equal(proc_reap(&pr, how, size, &progress, &known), 1);
    assert_int_equal(known, 0); /* no status page */
    assert_int_equal(pr.pidfd, -1);
}

/* The worker's own exit when its interpreter cannot run a task is named as
 * such in the crash report. */
static void test_pool_procs__task_failure_exit_is_named(void **state)
{
    (void)state;
    char how[200];
    reap_child(POOL_EXIT_TASK_FAILED, 0, how, sizeof how);
    assert_non_null(strstr(how, "exited with code 70"));
    assert_non_null(strstr(how, "could not run the task"));
}

static void test_pool_procs__other_exits_say_their_code(void **state)
{
    (void)state;
    char how[200];
    reap_child(3, 0, how, sizeof how);
    assert_string_equal(how, "the worker process exited with code 3");
}

static void test_pool_procs__signals_are_named(void **state)
{
    (void)state;
    char how[200];
    reap_child(0, SIGKILL, how, sizeof how);
    assert_string_equal(how, "the worker process was killed by signal 9 (SIGKILL)");
}

int main(void)
{
    log_init(2, LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_procs__task_failure_exit_is_named),
        cmocka_unit_test(test_pool_procs__other_exits_say_their_code),
        cmocka_unit_test(test_pool_procs__signals_are_named),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
