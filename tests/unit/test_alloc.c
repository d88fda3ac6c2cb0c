/* test_alloc.c -- every allocation libjp makes may fail, one at a time.
 *
 * This program is linked with --wrap for malloc, calloc, realloc and strdup,
 * which diverts the calls made by libjp (a static library) and by this file;
 * jansson's allocations come through json_set_alloc_funcs.  A scenario that
 * touches every API area runs again and again, the Nth allocation failing
 * on run N, until a run completes without reaching a failure.  Each run must
 * fail cleanly: no crash, no assertion, nothing leaked (LeakSanitizer checks
 * under SANITIZE=address), and a socket that still carries whole messages.
 */
#include "jp_test.h"

#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include <zmq.h>

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
char *__real_strdup(const char *s);
void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t size);
char *__wrap_strdup(const char *s);

static long countdown = -1; /* allocations left before one fails; -1: never */
static int failed;          /* the armed failure happened */
static int fail_all;        /* every allocation fails */

static int should_fail(void)
{
    if (fail_all) {
        errno = ENOMEM;
        return 1;
    }
    if (countdown < 0) {
        return 0;
    }
    if (countdown-- == 0) {
        failed = 1;
        errno = ENOMEM;
        return 1;
    }
    return 0;
}

void *__wrap_malloc(size_t size)
{
    return should_fail() ? NULL : __real_malloc(size);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return should_fail() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t size)
{
    return should_fail() ? NULL : __real_realloc(p, size);
}

char *__wrap_strdup(const char *s)
{
    return should_fail() ? NULL : __real_strdup(s);
}

static void *json_malloc(size_t size)
{
    return __wrap_malloc(size);
}

static const char *const conn_text =
    "{\"transport\": \"tcp\", \"ip\": \"127.0.0.1\", \"shell_port\": 1,"
    " \"iopub_port\": 2, \"stdin_port\": 3, \"control_port\": 4, \"hb_port\": 5,"
    " \"key\": \"k\", \"signature_scheme\": \"hmac-sha1\", \"kernel_name\": \"ferry\"}";

static char conn_path[64];

/* The same work as the kernel's: connection file, sessions, a request with
 * identities and buffers, its reply, encode, decode, send and receive.
 * Returns 0 when all of it worked, -1 when something failed (cleanly). */
static int scenario(void *tx, void *rx)
{
    int rc = -1;
    jp_connection c = {0};
    jp_session *s = NULL, *peer = NULL;
    jp_msg *req = NULL, *rep = NULL, *back = NULL, *got = NULL;
    jp_frame *frames = NULL;
    size_t n = 0;
    jp_error err = {0};

    if (jp_connection_parse(&c, conn_text, strlen(conn_text), &err) < 0 ||
        jp_connection_save(&c, conn_path, &err) < 0) {
        goto done;
    }
    jp_connection_clear(&c);
    if (jp_connection_load(&c, conn_path, &err) < 0) {
        goto done;
    }
    s = jp_session_from_connection(&c, "kernel", &err);
    peer = jp_session_new("hmac-sha1", "k", 1, NULL, &err);
    if (s == NULL || peer == NULL) {
        goto done;
    }
    req = jp_msg_new(peer, "execute_request",
                     json_pack("{s:s,s:[i,i]}", "code", "1+1", "list", 1, 2), NULL, 0);
    if (req == NULL) {
        goto done;
    }
    req->idents = calloc(1, sizeof *req->idents);
    if (req->idents == NULL) {
        goto done;
    }
    req->n_idents = 1;
    if (jp_frame_copy(&req->idents[0], "route", 5) < 0) {
        goto done;
    }
    char big[1000];
    memset(big, 'b', sizeof big);
    for (int i = 0; i < 2; i++) {
        jp_frame b;
        if (jp_frame_copy(&b, big, i ? sizeof big : 3) < 0) {
            goto done;
        }
        if (jp_msg_add_buffer(req, &b) < 0) {
            jp_frame_clear(&b);
            goto done;
        }
    }
    rep = jp_msg_reply(s, req, "execute_reply", json_pack("{s:s}", "status", "ok"));
    if (rep == NULL || jp_wire_encode(peer, &req, &frames, &n, &err) < 0) {
        goto done;
    }
    back = jp_wire_decode(s, frames, n, &err);
    if (back == NULL || jp_send(s, tx, &rep, "topic", &err) < 0) {
        goto done;
    }
    got = jp_recv(peer, rx, ZMQ_DONTWAIT, &err);
    if (got == NULL) {
        goto done;
    }
    assert_string_equal(jp_msg_type(got), "execute_reply");
    rc = 0;
done:
    if (rc < 0) {
        assert_true(err.set || failed); /* test code's own failures set nothing */
    }
    jp_msg_destroy(&req);
    jp_msg_destroy(&rep);
    jp_msg_destroy(&back);
    jp_msg_destroy(&got);
    test_frames_free(frames, n);
    jp_session_destroy(&s);
    jp_session_destroy(&peer);
    jp_connection_clear(&c);
    return rc;
}

static void test_alloc__every_failure_is_clean(void **state)
{
    (void)state;
    snprintf(conn_path, sizeof conn_path, "/tmp/jp-test-alloc-%d.json", (int)getpid());
    void *ctx = zmq_ctx_new();
    long run = 0;
    for (;; run++) {
        assert_true(run < 100000);
        void *tx = zmq_socket(ctx, ZMQ_PAIR), *rx = zmq_socket(ctx, ZMQ_PAIR);
        int linger = 0;
        zmq_setsockopt(tx, ZMQ_LINGER, &linger, sizeof linger);
        zmq_setsockopt(rx, ZMQ_LINGER, &linger, sizeof linger);
        char ep[64]; /* closing is asynchronous: a fresh name per run */
        snprintf(ep, sizeof ep, "inproc://alloc-%ld", run);
        assert_int_equal(zmq_bind(rx, ep), 0);
        assert_int_equal(zmq_connect(tx, ep), 0);
        failed = 0;
        countdown = run;
        int rc = scenario(tx, rx);
        countdown = -1;
        /* rc == 0 with failed set is fine: libjp recovered (a large frame
         * sent by copy when its zero-copy hand-over cannot be allocated). */
        /* Whatever failed, the socket still carries whole messages. */
        jp_session *s = jp_session_new("hmac-sha256", "", 0, NULL, NULL);
        jp_msg *m = jp_msg_new(s, "status", NULL, NULL, 0);
        jp_error serr = {0};
        if (jp_send(s, tx, &m, NULL, &serr) < 0) {
            fail_msg("run %ld: %s", run, serr.text);
        }
        jp_msg *last = NULL;
        while ((m = jp_recv(s, rx, ZMQ_DONTWAIT, NULL)) != NULL) {
            jp_msg_destroy(&last);
            last = m;
        }
        assert_non_null(last);
        assert_string_equal(jp_msg_type(last), "status");
        jp_msg_destroy(&last);
        jp_session_destroy(&s);
        zmq_close(tx);
        zmq_close(rx);
        if (rc == 0 && !failed) {
            break;
        }
    }
    zmq_ctx_term(ctx);
    unlink(conn_path);
    printf("[   INFO   ] %ld allocations failed in turn, each cleanly\n", run);
}

/* Verifies message i (frames differ by i) with s. */
static int verify_numbered(jp_signer *s, unsigned i)
{
    char buf[32], sig[130];
    snprintf(buf, sizeof buf, "{\"n\":%u}", i);
    const char *parts[4] = {buf, "{}", "{}", "{}"};
    test_sign4(s, parts, sig);
    return jp_signer_verify(s, sig, strlen(sig), (const void *const *)parts,
                            (const size_t[4]){strlen(buf), 2, 2, 2}, NULL);
}

static void test_alloc__replay_history_that_cannot_grow_still_verifies(void **state)
{
    (void)state;
    jp_signer *s = jp_signer_new("hmac-sha256", "k", 1, 1000, NULL);
    assert_non_null(s);
    fail_all = 1; /* the history cannot grow past its first size */
    for (unsigned i = 0; i < 500; i++) {
        assert_int_equal(verify_numbered(s, i), 0);
    }
    /* It still rejects recent replays (the last 64 at least) ... */
    for (unsigned i = 500 - 64; i < 500; i++) {
        assert_int_equal(verify_numbered(s, i), -1);
    }
    fail_all = 0;
    /* ... and grows again once memory is back. */
    for (unsigned i = 500; i < 1200; i++) {
        assert_int_equal(verify_numbered(s, i), 0);
    }
    /* The 64 kept while memory was short, and everything since. */
    for (unsigned i = 500 - 64; i < 1200; i++) {
        assert_int_equal(verify_numbered(s, i), -1);
    }
    jp_signer_destroy(&s);
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    json_set_alloc_funcs(json_malloc, free);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc__every_failure_is_clean),
        cmocka_unit_test(test_alloc__replay_history_that_cannot_grow_still_verifies),
    };
    return cmocka_run_group_tests_name("alloc", tests, NULL, NULL);
}
