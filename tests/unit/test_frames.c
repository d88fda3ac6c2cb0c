/* test_frames.c -- frame arrays (protocol/frames.c): freeing, splitting,
 * and sending over a real ZeroMQ pair, owned memory without a copy. */
#include "jp_test.h"

#include <zmq.h>

/* A frame owning malloc'd bytes whose release is counted. */
static int releases;

static void counted_free(void *data, void *hint)
{
    (void)hint;
    free(data);
    releases++;
}

static jp_frame owned(const char *fill, size_t size)
{
    char *data = malloc(size);
    assert_non_null(data);
    for (size_t i = 0; i < size; i++) {
        data[i] = fill[i % strlen(fill)];
    }
    return (jp_frame){.data = data, .size = size, .free_fn = counted_free};
}

static void test_frames__clear_releases_every_frame_and_the_array(void **state)
{
    (void)state;
    releases = 0;
    jp_frames fs = {calloc(3, sizeof(jp_frame)), 3};
    fs.v[0] = owned("a", 10);
    fs.v[1] = (jp_frame){.data = (void *)"borrowed", .size = 8};
    fs.v[2] = owned("b", 1000);
    jp_frames_clear(&fs);
    assert_int_equal(releases, 2);
    assert_null(fs.v);
    assert_int_equal(fs.n, 0);
    jp_frames_clear(&fs); /* empty: nothing */
    jp_frames_clear(NULL);
}

static void test_frames__split_moves_the_tail(void **state)
{
    (void)state;
    const char *parts[] = {"kind", "id", "payload", "buffer"};
    jp_frames fs = {test_frames(parts, 4), 4};
    jp_frames tail;
    assert_int_equal(jp_frames_split(&fs, 2, &tail), 0);
    assert_int_equal(tail.n, 2);
    assert_memory_equal(tail.v[0].data, "payload", 7);
    assert_memory_equal(tail.v[1].data, "buffer", 6);
    assert_null(fs.v[2].data); /* moved, not shared */
    assert_null(fs.v[3].free_fn);
    assert_memory_equal(fs.v[1].data, "id", 2);
    jp_frames_clear(&tail);
    jp_frames_clear(&fs);
}

static void test_frames__split_past_the_end_is_empty(void **state)
{
    (void)state;
    const char *parts[] = {"ready"};
    jp_frames fs = {test_frames(parts, 1), 1};
    jp_frames tail = {(jp_frame *)&tail, 9};
    assert_int_equal(jp_frames_split(&fs, 1, &tail), 0);
    assert_null(tail.v);
    assert_int_equal(tail.n, 0);
    jp_frames_clear(&fs);
}

/* Two sends make one message: the first with more, the second ending it.
 * The large owned frame is handed to ZeroMQ (released once ZeroMQ is done
 * with it, not at send), the small and borrowed ones are copied. */
static void test_frames__send_hands_over_owned_frames_in_one_message(void **state)
{
    (void)state;
    releases = 0;
    void *ctx = zmq_ctx_new();
    void *a = zmq_socket(ctx, ZMQ_PAIR), *b = zmq_socket(ctx, ZMQ_PAIR);
    assert_int_equal(zmq_bind(a, "inproc://frames-test"), 0);
    assert_int_equal(zmq_connect(b, "inproc://frames-test"), 0);
    jp_frame head[2] = {{.data = (void *)"done", .size = 4}, owned("s", 8)};
    jp_frames h = {head, 2};
    assert_int_equal(jp_frames_send(a, &h, 1), 0);
    assert_int_equal(releases, 1); /* small: copied, released at once */
    assert_null(head[1].data);     /* cleared */
    jp_frames body = {calloc(1, sizeof(jp_frame)), 1};
    body.v[0] = owned("big", 100000);
    void *big = body.v[0].data;
    assert_int_equal(jp_frames_send(a, &body, 0), 0);
    assert_null(body.v[0].data);
    jp_frames_clear(&body);
    jp_frames got;
    assert_int_equal(jp_recv_frames(b, 0, &got.v, &got.n), 0);
    assert_int_equal(got.n, 3);
    assert_memory_equal(got.v[0].data, "done", 4);
    assert_memory_equal(got.v[1].data, "ssssssss", 8);
    assert_int_equal(got.v[2].size, 100000);
    /* inproc passes ZeroMQ's message along: the very bytes sent. */
    assert_ptr_equal(got.v[2].data, big);
    assert_int_equal(releases, 1);
    jp_frames_clear(&got);
    assert_int_equal(releases, 2); /* released once, by the last holder */
    zmq_close(a);
    zmq_close(b);
    zmq_ctx_term(ctx);
}

static void test_frames__send_failure_still_clears(void **state)
{
    (void)state;
    releases = 0;
    void *ctx = zmq_ctx_new();
    void *a = zmq_socket(ctx, ZMQ_PAIR); /* never connected */
    int no_wait = 0;
    assert_int_equal(zmq_setsockopt(a, ZMQ_SNDTIMEO, &no_wait, sizeof no_wait), 0);
    jp_frames fs = {calloc(2, sizeof(jp_frame)), 2};
    fs.v[0] = owned("x", 1000);
    fs.v[1] = owned("y", 1000);
    /* A PAIR socket with no peer cannot send. */
    assert_int_equal(jp_frames_send(a, &fs, 0), -1);
    assert_null(fs.v[1].data); /* not sent, cleared all the same */
    jp_frames_clear(&fs);
    zmq_close(a);
    zmq_ctx_term(ctx);
    assert_int_equal(releases, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frames__clear_releases_every_frame_and_the_array),
        cmocka_unit_test(test_frames__split_moves_the_tail),
        cmocka_unit_test(test_frames__split_past_the_end_is_empty),
        cmocka_unit_test(test_frames__send_hands_over_owned_frames_in_one_message),
        cmocka_unit_test(test_frames__send_failure_still_clears),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
