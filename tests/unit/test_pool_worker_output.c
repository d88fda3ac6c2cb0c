/* test_pool_worker_output.c -- a worker's captured output
 * (kernel/pool/worker_output.c) on real pipes: whether a task left any
 * behind (wout_pending, asked after every task), and what a drain makes of
 * it. */
#define _GNU_SOURCE /* pipe2 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "worker_output.h"

typedef struct pipes {
    wout o;   /* the read ends, as wout_capture leaves them */
    int w[2]; /* the write ends (fds 1 and 2 in a worker) */
} pipes;

static void pipes_open(pipes *p)
{
    memset(p, 0, sizeof *p);
    for (int i = 0; i < 2; i++) {
        int fds[2];
        assert_int_equal(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
        p->o.fd[i] = fds[0];
        p->w[i] = fds[1];
    }
}

static void pipes_close(pipes *p)
{
    for (int i = 0; i < 2; i++) {
        close(p->o.fd[i]);
        close(p->w[i]);
    }
}

static void write_all(int fd, const char *s, size_t n)
{
    assert_int_equal(write(fd, s, n), (ssize_t)n);
}

static void free_chunks(wout_chunk *c)
{
    while (c) {
        wout_chunk *next = c->next;
        free(c);
        c = next;
    }
}

static void test_pool_worker_output__nothing_written_is_not_pending(void **state)
{
    (void)state;
    pipes p;
    pipes_open(&p);
    assert_false(wout_pending(&p.o));
    assert_null(wout_drain(&p.o, 7, 1));
    pipes_close(&p);
}

static void test_pool_worker_output__either_stream_is_pending_until_drained(void **state)
{
    (void)state;
    for (int stream = 0; stream < 2; stream++) {
        pipes p;
        pipes_open(&p);
        write_all(p.w[stream], "hi\n", 3);
        assert_true(wout_pending(&p.o));
        wout_chunk *c = wout_drain(&p.o, 7, 1);
        assert_non_null(c);
        assert_int_equal(c->task, 7);
        assert_int_equal(c->stream, stream);
        assert_int_equal(c->len, 3);
        assert_memory_equal(c->data, "hi\n", 3);
        assert_null(c->next);
        free_chunks(c);
        assert_false(wout_pending(&p.o));
        pipes_close(&p);
    }
}

/* A character cut at a read's end waits for its rest; the task's end must
 * still send it, so it counts as pending with the pipe empty. */
static void test_pool_worker_output__a_carried_character_is_pending(void **state)
{
    (void)state;
    pipes p;
    pipes_open(&p);
    write_all(p.w[0], "a\xc3", 2); /* 'a', then half of an e-acute */
    wout_chunk *c = wout_drain(&p.o, 1, 0);
    assert_non_null(c);
    assert_int_equal(c->len, 1);
    free_chunks(c);
    assert_true(wout_pending(&p.o));
    c = wout_drain(&p.o, 1, 1);
    assert_non_null(c);
    assert_int_equal(c->len, 1);
    assert_int_equal((unsigned char)c->data[0], 0xc3);
    free_chunks(c);
    assert_false(wout_pending(&p.o));
    pipes_close(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_worker_output__nothing_written_is_not_pending),
        cmocka_unit_test(test_pool_worker_output__either_stream_is_pending_until_drained),
        cmocka_unit_test(test_pool_worker_output__a_carried_character_is_pending),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
