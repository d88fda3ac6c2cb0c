/* test_pool_wire.c -- ferry's framing between the kernel and its workers
 * (kernel/pool/wire.c), on real AF_UNIX socketpairs as the pool uses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wire.h"

typedef struct link_pair {
    int a, b; /* a writes, b reads (both can do both) */
} link_pair;

static link_pair pair_new(void)
{
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    fcntl(fds[1], F_SETFL, O_NONBLOCK);
    return (link_pair){fds[0], fds[1]};
}

static void pair_close(link_pair *p)
{
    if (p->a >= 0) {
        close(p->a);
    }
    if (p->b >= 0) {
        close(p->b);
    }
}

/* Queues a message of n frames, frame i of sizes[i] bytes, each byte
 * (seed + i + offset) & 0xff. */
static void push_message(wire_out *out, size_t n, const size_t *sizes, int seed)
{
    jp_frames fs = {calloc(n, sizeof(jp_frame)), n};
    assert_non_null(fs.v);
    for (size_t i = 0; i < n; i++) {
        unsigned char *d = malloc(sizes[i] ? sizes[i] : 1);
        assert_non_null(d);
        for (size_t k = 0; k < sizes[i]; k++) {
            d[k] = (unsigned char)(seed + i + k);
        }
        assert_int_equal(jp_frame_copy(&fs.v[i], d, sizes[i]), 0);
        free(d);
    }
    assert_int_equal(wire_out_push(out, &fs), 0);
    assert_null(fs.v);
}

static void check_message(const jp_frames *msg, size_t n, const size_t *sizes, int seed)
{
    assert_int_equal(msg->n, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(msg->v[i].size, sizes[i]);
        const unsigned char *d = msg->v[i].data;
        for (size_t k = 0; k < sizes[i]; k++) {
            if (d[k] != (unsigned char)(seed + i + k)) {
                fail_msg("frame %zu byte %zu differs", i, k);
            }
        }
    }
}

/* Reads until a message comes (the writer has written all of it). */
static void read_message(wire_in *in, int fd, jp_frames *msg)
{
    jp_error err = {0};
    assert_int_equal(wire_in_read(in, fd, msg, &err), WIRE_MSG);
}

/* Reads the next message and checks it is push_message's (n, sizes, seed). */
static void read_expected(wire_in *in, int fd, size_t n, const size_t *sizes, int seed)
{
    jp_frames msg;
    read_message(in, fd, &msg);
    check_message(&msg, n, sizes, seed);
    jp_frames_clear(&msg);
}

/* Many messages of several frames, some empty, written in one go, come
 * out whole and in order. */
static void test_pool_wire__many_frames_and_messages_in_order(void **state)
{
    (void)state;
    link_pair p = pair_new();
    wire_out out = {0};
    wire_in in;
    wire_in_init(&in);
    size_t sizes[5] = {4, 8, 0, 300, 1};
    jp_error err = {0};
    jp_frames msg;
    for (int round = 0; round < 20; round++) {
        for (int m = 0; m < 50; m++) {
            push_message(&out, 1 + (size_t)m % 5, sizes, round * 50 + m);
        }
        assert_int_equal(wire_out_flush(&out, p.a, 0), 1);
        assert_int_equal(out.n, 0);
        for (int m = 0; m < 50; m++) {
            read_expected(&in, p.b, 1 + (size_t)m % 5, sizes, round * 50 + m);
        }
        assert_int_equal(wire_in_read(&in, p.b, &msg, &err), WIRE_AGAIN);
    }
    wire_in_clear(&in);
    pair_close(&p);
}

/* A message that arrives one byte at a time is complete only with its
 * last byte. */
static void test_pool_wire__partial_reads_resume(void **state)
{
    (void)state;
    link_pair wire = pair_new(), feed = pair_new();
    wire_out out = {0};
    size_t sizes[3] = {5, 70000, 3}; /* one frame larger than the staging buffer */
    push_message(&out, 3, sizes, 7);
    assert_int_equal(wire_out_flush(&out, wire.a, 0), 1);
    wire_in in;
    wire_in_init(&in);
    jp_frames msg;
    jp_error err = {0};
    size_t total = 8 + 3 * 8 + 5 + 70000 + 3;
    for (size_t k = 0; k < total; k++) {
        char c;
        assert_int_equal(read(wire.b, &c, 1), 1);
        assert_int_equal(write(feed.a, &c, 1), 1);
        wire_rc rc = wire_in_read(&in, feed.b, &msg, &err);
        assert_int_equal(rc, k + 1 < total ? WIRE_AGAIN : WIRE_MSG);
    }
    check_message(&msg, 3, sizes, 7);
    jp_frames_clear(&msg);
    wire_in_clear(&in);
    pair_close(&wire);
    pair_close(&feed);
}

/* A frame larger than the socket's buffer: the writer leaves the rest
 * queued and resumes where it stopped, while the reader takes what came;
 * neither ever blocks. */
static void test_pool_wire__frame_larger_than_socket_buffer(void **state)
{
    (void)state;
    link_pair p = pair_new();
    wire_out out = {0};
    size_t sizes[2] = {16, 8u << 20};
    push_message(&out, 2, sizes, 3);
    push_message(&out, 1, sizes, 9); /* a second message behind it */
    wire_in in;
    wire_in_init(&in);
    jp_frames msg = {0};
    jp_error err = {0};
    int flushed = 0, got = 0, partial_writes = 0;
    while (got < 2) {
        if (!flushed) {
            int rc = wire_out_flush(&out, p.a, 0);
            assert_true(rc >= 0);
            flushed = rc == 1;
            partial_writes += rc == 0;
        }
        wire_rc rc = wire_in_read(&in, p.b, &msg, &err);
        assert_true(rc == WIRE_MSG || rc == WIRE_AGAIN);
        if (rc == WIRE_MSG) {
            if (got == 0) {
                check_message(&msg, 2, sizes, 3);
            } else {
                check_message(&msg, 1, sizes, 9);
            }
            jp_frames_clear(&msg);
            got++;
        }
    }
    assert_true(partial_writes > 0); /* it did not fit at once */
    assert_int_equal(out.n, 0);
    wire_in_clear(&in);
    pair_close(&p);
}

/* Writes raw bytes and expects the reader to refuse them. */
static void expect_malformed(const void *bytes, size_t len)
{
    link_pair p = pair_new();
    assert_int_equal(write(p.a, bytes, len), (ssize_t)len);
    wire_in in;
    wire_in_init(&in);
    jp_frames msg;
    jp_error err = {0};
    assert_int_equal(wire_in_read(&in, p.b, &msg, &err), WIRE_ERROR);
    assert_non_null(strstr(err.text, "malformed"));
    assert_null(msg.v);
    wire_in_clear(&in);
    pair_close(&p);
}

static void test_pool_wire__malformed_header_is_refused(void **state)
{
    (void)state;
    expect_malformed("HTTP/1.1 200 OK\r\n", 17);
    uint32_t zero = 0;
    char no_frames[8];
    memcpy(no_frames, WIRE_MAGIC, 4);
    memcpy(no_frames + 4, &zero, 4);
    expect_malformed(no_frames, sizeof no_frames);
    char huge[16];
    uint32_t one = 1;
    uint64_t size = WIRE_MAX_FRAME + 1;
    memcpy(huge, WIRE_MAGIC, 4);
    memcpy(huge + 4, &one, 4);
    memcpy(huge + 8, &size, 8);
    expect_malformed(huge, sizeof huge);
}

/* The peer closing between two messages is an end; in the middle of one,
 * an error; the message before it still arrives. */
static void test_pool_wire__eof_between_and_mid_message(void **state)
{
    (void)state;
    size_t sizes[2] = {10, 20};
    for (int cut = 0; cut <= 1; cut++) {
        link_pair p = pair_new(), raw = pair_new();
        wire_out out = {0};
        push_message(&out, 2, sizes, 1);
        push_message(&out, 2, sizes, 2);
        assert_int_equal(wire_out_flush(&out, raw.a, 0), 1);
        char buf[256];
        ssize_t n = read(raw.b, buf, sizeof buf);
        size_t one = 8 + 2 * 8 + 30;
        assert_int_equal(n, 2 * (ssize_t)one);
        /* the first message, then all of the second or only part of it */
        size_t send = cut ? one + 12 : 2 * one;
        assert_int_equal(write(p.a, buf, send), (ssize_t)send);
        close(p.a);
        p.a = -1;
        wire_in in;
        wire_in_init(&in);
        jp_frames msg;
        jp_error err = {0};
        read_expected(&in, p.b, 2, sizes, 1);
        if (!cut) {
            read_expected(&in, p.b, 2, sizes, 2);
            /* The read that took both emptied the socket: first "again"
             * (as a poll loop would then poll), the next read finds the end. */
            assert_int_equal(wire_in_read(&in, p.b, &msg, &err), WIRE_AGAIN);
            assert_int_equal(wire_in_read(&in, p.b, &msg, &err), WIRE_EOF);
        } else {
            assert_int_equal(wire_in_read(&in, p.b, &msg, &err), WIRE_AGAIN);
            assert_int_equal(wire_in_read(&in, p.b, &msg, &err), WIRE_ERROR);
            assert_non_null(strstr(err.text, "middle of a message"));
        }
        wire_in_clear(&in);
        pair_close(&p);
        pair_close(&raw);
    }
}

/* Writing to a peer that is gone fails (no SIGPIPE), and the queue can be
 * dropped. */
static void test_pool_wire__write_to_closed_peer_fails(void **state)
{
    (void)state;
    link_pair p = pair_new();
    close(p.b);
    p.b = -1;
    wire_out out = {0};
    size_t sizes[1] = {100};
    push_message(&out, 1, sizes, 0);
    assert_int_equal(wire_out_flush(&out, p.a, 0), -1);
    assert_int_equal(out.n, 1);
    wire_out_clear(&out);
    assert_int_equal(out.n, 0);
    pair_close(&p);
}

/* Frames whose memory belongs to someone else (free_fn NULL) go out as
 * they are, and an empty message is refused. */
static void test_pool_wire__borrowed_frames_and_empty_message(void **state)
{
    (void)state;
    link_pair p = pair_new();
    wire_out out = {0};
    jp_frame f[2] = {{.data = (void *)"task", .size = 4},
                     {.data = (void *)"x", .size = 1}};
    jp_frames fs = {calloc(2, sizeof(jp_frame)), 2};
    memcpy(fs.v, f, sizeof f);
    assert_int_equal(wire_out_push(&out, &fs), 0);
    jp_frames none = {calloc(1, sizeof(jp_frame)), 0};
    assert_int_equal(wire_out_push(&out, &none), -1);
    assert_int_equal(wire_out_flush(&out, p.a, 1), 1);
    wire_in in;
    wire_in_init(&in);
    jp_frames msg;
    read_message(&in, p.b, &msg);
    assert_int_equal(msg.n, 2);
    assert_memory_equal(msg.v[0].data, "task", 4);
    assert_memory_equal(msg.v[1].data, "x", 1);
    jp_frames_clear(&msg);
    wire_in_clear(&in);
    pair_close(&p);
}

/* A read that took less than it asked for emptied the socket: the call
 * that would only read again to hear EAGAIN says WIRE_AGAIN without
 * reading (one system call less per wake-up of the dispatcher); the call
 * after it reads what came since. */
static void test_pool_wire__no_read_after_one_that_emptied_the_socket(void **state)
{
    (void)state;
    size_t sizes[2] = {10, 20};
    link_pair p = pair_new(), raw = pair_new();
    wire_out out = {0};
    push_message(&out, 2, sizes, 1);
    push_message(&out, 2, sizes, 2);
    assert_int_equal(wire_out_flush(&out, raw.a, 0), 1);
    char buf[256];
    size_t one = 8 + 2 * 8 + 30;
    assert_int_equal(read(raw.b, buf, sizeof buf), 2 * (ssize_t)one);
    assert_int_equal(write(p.a, buf, one + 5), (ssize_t)(one + 5));
    wire_in in;
    wire_in_init(&in);
    jp_frames msg;
    jp_error err = {0};
    read_expected(&in, p.b, 2, sizes, 1);
    assert_int_equal(write(p.a, buf + one + 5, one - 5), (ssize_t)(one - 5));
    assert_int_equal(wire_in_read(&in, p.b, &msg, &err), WIRE_AGAIN);
    read_expected(&in, p.b, 2, sizes, 2);
    assert_int_equal(wire_in_read(&in, p.b, &msg, &err), WIRE_AGAIN);
    assert_int_equal(wire_in_read(&in, p.b, &msg, &err), WIRE_AGAIN); /* EAGAIN */
    wire_in_clear(&in);
    pair_close(&p);
    pair_close(&raw);
}

/* A peer that ended after a read that emptied the socket: its last
 * messages are read at once once that read is forgotten (the pool does so
 * before it handles a worker's end). */
static void test_pool_wire__forgotten_drain_reads_a_dead_peers_last_message(void **state)
{
    (void)state;
    size_t sizes[2] = {10, 20};
    link_pair p = pair_new();
    wire_out out = {0};
    push_message(&out, 2, sizes, 1);
    assert_int_equal(wire_out_flush(&out, p.a, 0), 1);
    wire_in in;
    wire_in_init(&in);
    read_expected(&in, p.b, 2, sizes, 1); /* a read that emptied the socket */
    push_message(&out, 2, sizes, 2);
    assert_int_equal(wire_out_flush(&out, p.a, 0), 1);
    close(p.a);
    p.a = -1;
    wire_in_forget_drained(&in);
    read_expected(&in, p.b, 2, sizes, 2);
    wire_in_clear(&in);
    pair_close(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_wire__many_frames_and_messages_in_order),
        cmocka_unit_test(test_pool_wire__partial_reads_resume),
        cmocka_unit_test(test_pool_wire__frame_larger_than_socket_buffer),
        cmocka_unit_test(test_pool_wire__malformed_header_is_refused),
        cmocka_unit_test(test_pool_wire__eof_between_and_mid_message),
        cmocka_unit_test(test_pool_wire__no_read_after_one_that_emptied_the_socket),
        cmocka_unit_test(test_pool_wire__forgotten_drain_reads_a_dead_peers_last_message),
        cmocka_unit_test(test_pool_wire__write_to_closed_peer_fails),
        cmocka_unit_test(test_pool_wire__borrowed_frames_and_empty_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
