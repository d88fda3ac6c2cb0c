/* test_pool_spin.c -- the poll that spins before it sleeps
 * (kernel/pool/spin.c): what comes while it spins and what comes after it
 * went to sleep are both seen, nothing coming ends in a timeout, and the
 * spin itself does not sleep (the point of it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "spin.h"

typedef struct writer {
    int fd;
    long after_us;
} writer;

static void *write_later(void *arg)
{
    writer *w = arg;
    struct timespec ts = {w->after_us / 1000000, (w->after_us % 1000000) * 1000};
    nanosleep(&ts, NULL);
    assert_int_equal(write(w->fd, "x", 1), 1);
    return NULL;
}

/* Voluntary context switches of the calling thread: how often it slept. */
static long voluntary_switches(void)
{
    FILE *f = fopen("/proc/thread-self/status", "re");
    assert_non_null(f);
    char line[256];
    long n = -1;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "voluntary_ctxt_switches: %ld", &n) == 1) {
            break;
        }
    }
    fclose(f);
    return n;
}

/* Whether spin_poll saw a byte written write_after_us into it (never,
 * when negative); *slept: whether it slept meanwhile. */
static int ready_after(long write_after_us, int timeout_ms, long spin_us, int *slept)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    writer w = {sv[1], write_after_us};
    pthread_t t;
    if (write_after_us >= 0) {
        assert_int_equal(pthread_create(&t, NULL, write_later, &w), 0);
    }
    struct pollfd fds[1] = {{.fd = sv[0], .events = POLLIN}};
    long before = voluntary_switches();
    int rc = spin_poll(fds, 1, timeout_ms, spin_us);
    *slept = voluntary_switches() != before;
    if (write_after_us >= 0) {
        pthread_join(t, NULL);
    }
    close(sv[0]);
    close(sv[1]);
    return rc == 1 && (fds[0].revents & POLLIN);
}

static void test_spin__what_is_ready_at_once_is_seen(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(write(sv[1], "x", 1), 1);
    struct pollfd fds[1] = {{.fd = sv[0], .events = POLLIN}};
    long before = voluntary_switches();
    assert_int_equal(spin_poll(fds, 1, 10000, 1000000), 1);
    assert_int_equal(voluntary_switches(), before); /* it never slept */
    close(sv[0]);
    close(sv[1]);
}

static void test_spin__what_comes_while_spinning_or_sleeping_is_seen(void **state)
{
    (void)state;
    int slept;
    /* Ten seconds of spin (a bound, not a measure): the write, 1 ms on,
     * comes during it and is seen without sleeping. */
    assert_true(ready_after(1000, 20000, 10000000, &slept));
    assert_false(slept);
    /* No spin, or a short one: seen all the same, from the sleep. */
    assert_true(ready_after(1000, 20000, 0, &slept));
    assert_true(ready_after(20000, 20000, 100, &slept));
}

static void test_spin__nothing_coming_times_out_after_the_spin(void **state)
{
    (void)state;
    int slept;
    assert_false(ready_after(-1, 20, 200, &slept));
    assert_false(ready_after(-1, 0, 200, &slept)); /* timeout 0: one look, no spin */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spin__what_is_ready_at_once_is_seen),
        cmocka_unit_test(test_spin__what_comes_while_spinning_or_sleeping_is_seen),
        cmocka_unit_test(test_spin__nothing_coming_times_out_after_the_spin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
