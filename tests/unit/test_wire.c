/* test_wire.c -- framing: decode of every malformed-input class, encode, and
 * real ZeroMQ round trips (ROUTER/DEALER, PUB/SUB) over inproc and tcp. */
#include "jp_test.h"

#include <errno.h>
#include <stdio.h>

#include <zmq.h>

#define KEY "wire-test-key"
#define GOOD_HEADER                                                                      \
    "{\"msg_id\":\"m1\",\"msg_type\":\"execute_request\",\"session\":\"s1\","            \
    "\"username\":\"u\",\"date\":\"2026-11-25T12:48:18.123456Z\",\"version\":\"5.3\"}"

static jp_session *session(const char *key)
{
    jp_error err = {0};
    jp_session *s = jp_session_new("hmac-sha256", key, strlen(key), "tester", &err);
    if (s == NULL) {
        fail_msg("jp_session_new: %s", err.text);
    }
    return s;
}

/* A raw message: idents, delimiter, signature (computed by s when sig is
 * NULL), the four JSON texts, then buffers.  *n receives the frame count. */
static jp_frame *raw(jp_session *s, const char *ident, const char *sig,
                     const char *const json[4], const char *buffer, size_t *n)
{
    char computed[130];
    if (sig == NULL) {
        test_sign4(jp_session_signer(s), json, computed);
        sig = computed;
    }
    const char *parts[9];
    size_t k = 0;
    if (ident) {
        parts[k++] = ident;
    }
    parts[k++] = JP_DELIMITER;
    parts[k++] = sig;
    for (int i = 0; i < 4; i++) {
        parts[k++] = json[i];
    }
    if (buffer) {
        parts[k++] = buffer;
    }
    *n = k;
    return test_frames(parts, k);
}

/* Decodes frames with s, expecting failure with a reason containing why. */
static void expect_rejected(jp_session *s, jp_frame *f, size_t n, const char *why)
{
    jp_error err = {0};
    jp_msg *m = jp_wire_decode(s, f, n, &err);
    if (m != NULL) {
        jp_msg_destroy(&m);
        fail_msg("accepted a message that should fail with \"%s\"", why);
    }
    assert_error_contains(err, why);
    /* Taken over even on failure: every entry is zeroed. */
    for (size_t i = 0; i < n; i++) {
        assert_null(f[i].data);
        assert_null(f[i].free_fn);
    }
    free(f);
}

/* Builds a raw message (see raw) and expects its decoding to fail. */
static void expect_raw_rejected(jp_session *s, const char *ident, const char *sig,
                                const char *const json[4], const char *buffer,
                                const char *why)
{
    size_t n;
    jp_frame *f = raw(s, ident, sig, json, buffer, &n);
    expect_rejected(s, f, n, why);
}

static const char *const good[4] = {GOOD_HEADER, "{}", "{}", "{\"code\":\"1+1\"}"};

static void test_wire__decodes_a_valid_message(void **state)
{
    (void)state;
    jp_session *s = session(KEY);
    size_t n;
    jp_frame *f = raw(s, "ident", NULL, good, "\x01\x02", &n);
    jp_error err = {0};
    jp_msg *m = jp_wire_decode(s, f, n, &err);
    free(f);
    assert_non_null(m);
    assert_string_equal(jp_msg_type(m), "execute_request");
    assert_string_equal(jp_msg_id(m), "m1");
    assert_int_equal(m->n_idents, 1);
    assert_memory_equal(m->idents[0].data, "ident", 5);
    assert_int_equal(m->n_buffers, 1);
    assert_memory_equal(m->buffers[0].data, "\x01\x02", 2);
    assert_string_equal(json_string_value(json_object_get(m->content, "code")), "1+1");
    jp_msg_destroy(&m);
    jp_session_destroy(&s);
}

static void test_wire__rejects_missing_delimiter(void **state)
{
    (void)state;
    jp_session *s = session(KEY);
    size_t n;
    jp_frame *f = raw(s, NULL, NULL, good, NULL, &n);
    jp_frame_clear(&f[0]);
    assert_int_equal(jp_frame_copy(&f[0], "<IDS|MSG", 8), 0); /* one byte short */
    expect_rejected(s, f, n, "missing <IDS|MSG> delimiter");
    expect_rejected(s, calloc(1, sizeof(jp_frame)), 0, "missing <IDS|MSG> delimiter");
    jp_session_destroy(&s);
}

static void test_wire__rejects_too_few_frames(void **state)
{
    (void)state;
    jp_session *s = session(KEY);
    for (size_t keep = 1; keep < 6; keep++) { /* delimiter + 0..4 of the 5 */
        size_t n;
        jp_frame *f = raw(s, "id", NULL, good, NULL, &n);
        for (size_t i = 1 + keep; i < n; i++) {
            jp_frame_clear(&f[i]);
        }
        expect_rejected(s, f, 1 + keep, "too few frames");
    }
    jp_session_destroy(&s);
}

static void test_wire__rejects_bad_signature(void **state)
{
    (void)state;
    jp_session *s = session(KEY), *other = session("another key");
    char sig[130];
    test_sign4(jp_session_signer(other), good, sig);
    expect_raw_rejected(s, NULL, sig, good, NULL, "invalid signature");
    /* A valid signature over different content. */
    const char *const changed[4] = {GOOD_HEADER, "{}", "{}", "{\"code\":\"rm -rf /\"}"};
    test_sign4(jp_session_signer(s), good, sig);
    expect_raw_rejected(s, NULL, sig, changed, NULL, "invalid signature");
    jp_session_destroy(&other);
    jp_session_destroy(&s);
}

static void test_wire__rejects_missing_signature(void **state)
{
    (void)state;
    jp_session *s = session(KEY);
    expect_raw_rejected(s, NULL, "", good, NULL, "unsigned message");
    jp_session_destroy(&s);
}

static void test_wire__rejects_wrong_signature_length(void **state)
{
    (void)state;
    jp_session *s = session(KEY);
    char sig[200];
    test_sign4(jp_session_signer(s), good, sig);
    char longer[200];
    snprintf(longer, sizeof longer, "%.130s00", sig);
    expect_raw_rejected(s, NULL, longer, good, NULL, "bad signature length");
    sig[40] = '\0'; /* a sha1-length signature in a sha256 session */
    expect_raw_rejected(s, NULL, sig, good, NULL, "bad signature length");
    jp_session_destroy(&s);
}

static void test_wire__rejects_replayed_message(void **state)
{
    (void)state;
    jp_session *s = session(KEY);
    size_t n;
    jp_frame *f = raw(s, "id", NULL, good, NULL, &n);
    jp_frame *again = raw(s, "id", NULL, good, NULL, &n);
    jp_msg *m = jp_wire_decode(s, f, n, NULL);
    free(f);
    assert_non_null(m);
    jp_msg_destroy(&m);
    expect_rejected(s, again, n, "replayed");
    jp_session_destroy(&s);
}

/* Each of the four JSON frames in turn replaced by text; the message is
 * properly signed, so the JSON checks themselves are exercised. */
static void expect_each_frame_rejected(const char *text, const char *why, int header_only)
{
    for (int i = 0; i < (header_only ? 1 : 4); i++) {
        /* A session per message: the HMAC covers the concatenated frames, so
         * "" in parent_header and "" in metadata sign alike (a replay). */
        jp_session *s = session(KEY);
        const char *json[4] = {good[0], good[1], good[2], good[3]};
        json[i] = text;
        expect_raw_rejected(s, "id", NULL, json, "buf", why);
        jp_session_destroy(&s);
    }
}

static void test_wire__rejects_invalid_utf8(void **state)
{
    (void)state;
    expect_each_frame_rejected("{\"a\":\"\xff\xfe\"}", "invalid JSON", 0);
    expect_each_frame_rejected("{\"a\":\"\xc3\x28\"}", "invalid JSON", 0);
    expect_each_frame_rejected("{\"\xed\xa0\x80\":1}", "invalid JSON", 0); /* surrogate */
    expect_each_frame_rejected("{\"a\":\"\xc0\xaf\"}", "invalid JSON", 0); /* overlong */
}

static void test_wire__rejects_invalid_json(void **state)
{
    (void)state;
    const char *bad[] = {"",
                         "{",
                         "{\"a\":}",
                         "{'a':1}",
                         "{} {}",
                         "{\"a\":NaN}",
                         "{\"a\":1,}",
                         "{\"a\":\"\\ud800\"}",
                         "{\"a\":1,\"a\":2}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        expect_each_frame_rejected(bad[i], "invalid JSON", 0);
    }
}

static void test_wire__rejects_wrong_json_types(void **state)
{
    (void)state;
    const char *bad[] = {"[]", "[{\"msg_id\":\"m\"}]", "\"text\"", "1", "null", "true"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        /* Scalars are not even JSON texts to jansson; arrays parse but are
         * not objects.  Both are rejected, before the message is built. */
        jp_session *s = session(KEY);
        for (int k = 0; k < 4; k++) {
            const char *json[4] = {good[0], good[1], good[2], good[3]};
            json[k] = bad[i];
            size_t n;
            jp_error err = {0};
            jp_frame *f = raw(s, NULL, NULL, json, NULL, &n);
            assert_null(jp_wire_decode(s, f, n, &err));
            free(f);
            assert_true(err.set);
            static const char *const names[4] = {"header", "parent_header", "metadata",
                                                 "content"};
            assert_error_contains(err, names[k]);
        }
        jp_session_destroy(&s);
    }
}

static void test_wire__rejects_missing_header_fields(void **state)
{
    (void)state;
    expect_each_frame_rejected("{\"msg_type\":\"t\",\"session\":\"s\"}",
                               "header: missing field 'msg_id'", 1);
    expect_each_frame_rejected("{\"msg_id\":\"m\",\"session\":\"s\"}",
                               "header: missing field 'msg_type'", 1);
    expect_each_frame_rejected("{\"msg_id\":\"m\",\"msg_type\":\"t\"}",
                               "header: missing field 'session'", 1);
    expect_each_frame_rejected("{}", "header: missing field", 1);
}

static void test_wire__rejects_wrongly_typed_header_fields(void **state)
{
    (void)state;
    expect_each_frame_rejected("{\"msg_id\":1,\"msg_type\":\"t\",\"session\":\"s\"}",
                               "'msg_id' must be a string", 1);
    expect_each_frame_rejected("{\"msg_id\":\"m\",\"msg_type\":[],\"session\":\"s\"}",
                               "'msg_type' must be a string", 1);
    expect_each_frame_rejected("{\"msg_id\":\"m\",\"msg_type\":\"t\",\"session\":\"s\","
                               "\"date\":5}",
                               "'date' must be a string", 1);
    expect_each_frame_rejected("{\"msg_id\":\"m\",\"msg_type\":\"t\",\"session\":\"s\","
                               "\"version\":5.3}",
                               "'version' must be a string", 1);
}

static void test_wire__accepts_nul_characters_in_strings(void **state)
{
    (void)state;
    /* jupyter_client writes a NUL character in output as "\u0000". */
    jp_session *s = session(KEY);
    const char *const json[4] = {GOOD_HEADER, "{}", "{}", "{\"text\":\"a\\u0000b\"}"};
    size_t n;
    jp_frame *f = raw(s, NULL, NULL, json, NULL, &n);
    jp_error err = {0};
    jp_msg *m = jp_wire_decode(s, f, n, &err);
    free(f);
    if (m == NULL) {
        fail_msg("rejected: %s", err.text);
    }
    json_t *text = json_object_get(m->content, "text");
    assert_int_equal(json_string_length(text), 3);
    assert_memory_equal(json_string_value(text), "a\0b", 3);
    jp_msg_destroy(&m);
    jp_session_destroy(&s);
}

static void test_wire__empty_key_means_unsigned(void **state)
{
    (void)state;
    jp_session *s = session("");
    size_t n;
    jp_frame *f = raw(s, NULL, "", good, NULL, &n);
    jp_msg *m = jp_wire_decode(s, f, n, NULL);
    free(f);
    assert_non_null(m);
    jp_msg_destroy(&m);
    /* No history either: the same message again is fine. */
    f = raw(s, NULL, "", good, NULL, &n);
    m = jp_wire_decode(s, f, n, NULL);
    free(f);
    assert_non_null(m);
    jp_msg_destroy(&m);
    /* What we send unsigned has an empty signature frame. */
    jp_msg *out = jp_msg_new(s, "status", NULL, NULL, 0);
    assert_int_equal(jp_wire_encode(s, &out, &f, &n, NULL), 0);
    assert_int_equal(f[1].size, 0);
    test_frames_free(f, n);
    jp_session_destroy(&s);
}

static void test_wire__encode_lays_out_frames_in_order(void **state)
{
    (void)state;
    jp_session *s = session(KEY);
    jp_msg *req = jp_msg_new(s, "comm_msg", json_pack("{s:i}", "x", 1), NULL, 0);
    jp_msg *m = jp_msg_iopub(s, req, "comm_msg", json_pack("{s:s}", "data", "é☃"));
    json_object_set_new(m->metadata, "meta", json_true());
    m->idents = calloc(2, sizeof *m->idents);
    m->n_idents = 2;
    assert_int_equal(jp_frame_copy(&m->idents[0], "r1", 2), 0);
    assert_int_equal(jp_frame_copy(&m->idents[1], "r2", 2), 0);
    jp_frame b;
    assert_int_equal(jp_frame_copy(&b, "\x00\xff", 2), 0);
    assert_int_equal(jp_msg_add_buffer(m, &b), 0);
    char *want_header = json_dumps(m->header, JSON_COMPACT);
    jp_frame *f;
    size_t n;
    jp_error err = {0};
    assert_int_equal(jp_wire_encode(s, &m, &f, &n, &err), 0);
    assert_null(m);
    assert_int_equal(n, 2 + 1 + 1 + 4 + 1);
    assert_memory_equal(f[0].data, "r1", 2);
    assert_memory_equal(f[1].data, "r2", 2);
    assert_int_equal(f[2].size, 9);
    assert_memory_equal(f[2].data, JP_DELIMITER, 9);
    assert_int_equal(f[3].size, 64);
    for (size_t i = 0; i < 64; i++) {
        char c = ((const char *)f[3].data)[i];
        assert_true((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
    }
    assert_int_equal(f[4].size, strlen(want_header));
    assert_memory_equal(f[4].data, want_header, f[4].size);
    free(want_header);
    /* Content is UTF-8, not \u escapes, as jupyter_client writes it. */
    const char *want_content = "{\"data\":\"é☃\"}";
    assert_int_equal(f[7].size, strlen(want_content));
    assert_memory_equal(f[7].data, want_content, f[7].size);
    assert_memory_equal(f[6].data, "{\"meta\":true}", f[6].size);
    assert_int_equal(f[8].size, 2);
    assert_memory_equal(f[8].data, "\x00\xff", 2);
    /* And it decodes back to the same message. */
    jp_msg *back = jp_wire_decode(s, f, n, &err);
    free(f);
    assert_non_null(back);
    assert_true(json_equal(back->parent_header, req->header));
    assert_int_equal(back->n_idents, 2);
    assert_int_equal(back->n_buffers, 1);
    jp_msg_destroy(&back);
    jp_msg_destroy(&req);
    jp_session_destroy(&s);
}

/* ------------------------------------------------------------ ZeroMQ */

static void *ctx_or_fail(void)
{
    void *ctx = zmq_ctx_new();
    assert_non_null(ctx);
    return ctx;
}

static void *sock(void *ctx, int type)
{
    void *z = zmq_socket(ctx, type);
    assert_non_null(z);
    int linger = 0, timeout = 30000; /* generous: a loaded machine is slow */
    zmq_setsockopt(z, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(z, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    return z;
}

/* Binds server to endpoint (tcp://127.0.0.1:* picks a port), connects
 * client to where it bound. */
static void link_pair(void *server, void *client, const char *endpoint)
{
    assert_int_equal(zmq_bind(server, endpoint), 0);
    char where[256];
    size_t len = sizeof where;
    assert_int_equal(zmq_getsockopt(server, ZMQ_LAST_ENDPOINT, where, &len), 0);
    assert_int_equal(zmq_connect(client, where), 0);
}

/* A buffer of size bytes with a recognisable pattern. */
static void add_pattern_buffer(jp_msg *m, size_t size, unsigned seed)
{
    unsigned char *data = malloc(size ? size : 1);
    assert_non_null(data);
    for (size_t i = 0; i < size; i++) {
        data[i] = (unsigned char)(i * 31 + seed);
    }
    jp_frame f;
    assert_int_equal(jp_frame_copy(&f, data, size), 0);
    free(data);
    assert_int_equal(jp_msg_add_buffer(m, &f), 0);
}

static void assert_pattern_buffer(const jp_frame *f, size_t size, unsigned seed)
{
    assert_int_equal(f->size, size);
    const unsigned char *d = f->data;
    for (size_t i = 0; i < size; i++) {
        if (d[i] != (unsigned char)(i * 31 + seed)) {
            fail_msg("buffer byte %zu differs", i);
        }
    }
}

static jp_msg *recv_or_fail(jp_session *s, void *z)
{
    jp_error err = {0};
    jp_msg *m = jp_recv(s, z, 0, &err);
    if (m == NULL) {
        fail_msg("jp_recv: %s", err.text);
    }
    return m;
}

static void router_dealer_round_trip(const char *endpoint)
{
    void *ctx = ctx_or_fail();
    void *router = sock(ctx, ZMQ_ROUTER), *dealer = sock(ctx, ZMQ_DEALER);
    link_pair(router, dealer, endpoint);
    jp_session *kernel = session(KEY), *client = session(KEY);
    jp_error err = {0};

    jp_msg *req =
        jp_msg_new(client, "execute_request",
                   json_pack("{s:s,s:b}", "code", "x = 1\n", "silent", 0), NULL, 0);
    char req_id[128];
    snprintf(req_id, sizeof req_id, "%s", jp_msg_id(req));
    add_pattern_buffer(req, 10, 1);      /* small: copied into ZeroMQ */
    add_pattern_buffer(req, 1 << 20, 2); /* large: handed over, no copy */
    add_pattern_buffer(req, 0, 3);       /* empty frames are frames too */
    assert_int_equal(jp_send(client, dealer, &req, NULL, &err), 0);
    assert_null(req);

    jp_msg *got = recv_or_fail(kernel, router);
    assert_int_equal(got->n_idents, 1); /* the ROUTER's routing id */
    assert_string_equal(jp_msg_id(got), req_id);
    assert_string_equal(json_string_value(json_object_get(got->content, "code")),
                        "x = 1\n");
    assert_int_equal(got->n_buffers, 3);
    assert_pattern_buffer(&got->buffers[0], 10, 1);
    assert_pattern_buffer(&got->buffers[1], 1 << 20, 2);
    assert_pattern_buffer(&got->buffers[2], 0, 3);

    jp_msg *rep =
        jp_msg_reply(kernel, got, "execute_reply",
                     json_pack("{s:s,s:i}", "status", "ok", "execution_count", 1));
    add_pattern_buffer(rep, 300, 4);
    assert_int_equal(jp_send(kernel, router, &rep, NULL, &err), 0);
    jp_msg *back = recv_or_fail(client, dealer);
    assert_int_equal(back->n_idents, 0);
    assert_string_equal(jp_msg_type(back), "execute_reply");
    assert_true(json_equal(back->parent_header, got->header));
    assert_int_equal(back->n_buffers, 1);
    assert_pattern_buffer(&back->buffers[0], 300, 4);

    jp_msg_destroy(&back);
    jp_msg_destroy(&got);
    jp_session_destroy(&kernel);
    jp_session_destroy(&client);
    zmq_close(router);
    zmq_close(dealer);
    zmq_ctx_term(ctx);
}

static void test_wire__router_dealer_round_trip_over_inproc(void **state)
{
    (void)state;
    router_dealer_round_trip("inproc://wire-test-shell");
}

static void test_wire__router_dealer_round_trip_over_tcp(void **state)
{
    (void)state;
    router_dealer_round_trip("tcp://127.0.0.1:*");
}

static void pub_sub_round_trip(const char *endpoint)
{
    void *ctx = ctx_or_fail();
    void *pub = sock(ctx, ZMQ_PUB), *sub = sock(ctx, ZMQ_SUB);
    link_pair(pub, sub, endpoint);
    assert_int_equal(zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "", 0), 0);
    jp_session *kernel = session(KEY), *client = session(KEY);
    jp_error err = {0};

    /* A subscription takes a moment to reach the publisher: publish until
     * one message arrives (each is a new message, so no replay).  Hellos
     * sent meanwhile may still be on their way, over TCP through two I/O
     * threads: a last message with its own topic follows them down the one
     * pipe, so receiving up to it drains them all, however slow the
     * machine. */
    for (int i = 0;; i++) {
        assert_true(i < 3000); /* 30 s */
        jp_msg *hello = jp_msg_new(
            kernel, "status", json_pack("{s:s}", "execution_state", "starting"), NULL, 0);
        assert_int_equal(jp_send(kernel, pub, &hello, "hello", &err), 0);
        zmq_pollitem_t item = {sub, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, 10) == 1) {
            break;
        }
    }
    jp_msg *last = jp_msg_new(kernel, "status", NULL, NULL, 0);
    assert_int_equal(jp_send(kernel, pub, &last, "last-hello", &err), 0);
    for (int done = 0; !done;) {
        jp_msg *m = recv_or_fail(client, sub);
        done = m->n_idents == 1 && m->idents[0].size == strlen("last-hello") &&
               memcmp(m->idents[0].data, "last-hello", m->idents[0].size) == 0;
        jp_msg_destroy(&m);
    }

    jp_msg *parent = jp_msg_new(client, "execute_request", NULL, NULL, 0);
    jp_msg *out =
        jp_msg_iopub(kernel, parent, "display_data",
                     json_pack("{s:{s:s},s:{}}", "data", "text/plain", "42", "metadata"));
    add_pattern_buffer(out, 4096, 5);
    assert_int_equal(jp_send(kernel, pub, &out, "kernel.abc.display_data", &err), 0);
    jp_msg *got = recv_or_fail(client, sub);
    assert_int_equal(got->n_idents, 1);
    assert_int_equal(got->idents[0].size, strlen("kernel.abc.display_data"));
    assert_memory_equal(got->idents[0].data, "kernel.abc.display_data",
                        got->idents[0].size);
    assert_true(json_equal(got->parent_header, parent->header));
    assert_int_equal(got->n_buffers, 1);
    assert_pattern_buffer(&got->buffers[0], 4096, 5);
    jp_msg_destroy(&got);

    /* Without a topic the delimiter comes first. */
    out = jp_msg_iopub(kernel, parent, "status", NULL);
    assert_int_equal(jp_send(kernel, pub, &out, NULL, &err), 0);
    got = recv_or_fail(client, sub);
    assert_int_equal(got->n_idents, 0);
    jp_msg_destroy(&got);

    jp_msg_destroy(&parent);
    jp_session_destroy(&kernel);
    jp_session_destroy(&client);
    zmq_close(pub);
    zmq_close(sub);
    zmq_ctx_term(ctx);
}

static void test_wire__pub_sub_carries_topic_over_inproc(void **state)
{
    (void)state;
    pub_sub_round_trip("inproc://wire-test-iopub");
}

static void test_wire__pub_sub_carries_topic_over_tcp(void **state)
{
    (void)state;
    pub_sub_round_trip("tcp://127.0.0.1:*");
}

static void test_wire__recv_drops_malformed_message_and_keeps_serving(void **state)
{
    (void)state;
    void *ctx = ctx_or_fail();
    void *a = sock(ctx, ZMQ_PAIR), *b = sock(ctx, ZMQ_PAIR);
    link_pair(a, b, "inproc://wire-test-pair");
    jp_session *s = session(KEY);
    jp_error err = {0};

    /* Nothing waiting: EAGAIN, not a protocol error. */
    assert_null(jp_recv(s, a, ZMQ_DONTWAIT, &err));
    assert_int_equal(errno, EAGAIN);
    assert_error_contains(err, "receive failed");

    /* Garbage, more than the initial frame array holds. */
    for (int i = 0; i < 20; i++) {
        assert_true(zmq_send(b, "junk", 4, i < 19 ? ZMQ_SNDMORE : 0) == 4);
    }
    memset(&err, 0, sizeof err);
    assert_null(jp_recv(s, a, 0, &err));
    assert_int_equal(errno, EPROTO);
    assert_error_contains(err, "delimiter");

    jp_msg *m = jp_msg_new(s, "status", NULL, NULL, 0);
    assert_int_equal(jp_send(s, b, &m, NULL, NULL), 0);
    m = recv_or_fail(s, a);
    assert_string_equal(jp_msg_type(m), "status");
    jp_msg_destroy(&m);

    /* A NULL message is refused, not crashed on. */
    memset(&err, 0, sizeof err);
    assert_int_equal(jp_send(s, b, &m, NULL, &err), -1);
    assert_true(err.set);

    jp_session_destroy(&s);
    zmq_close(a);
    zmq_close(b);
    zmq_ctx_term(ctx);
}

static void test_wire__recv_drains_a_message_of_too_many_parts_unread(void **state)
{
    (void)state;
    void *ctx = ctx_or_fail();
    void *a = sock(ctx, ZMQ_PAIR), *b = sock(ctx, ZMQ_PAIR);
    link_pair(a, b, "inproc://wire-test-many-parts");
    jp_session *s = session(KEY);
    for (int i = 0; i < JP_MAX_FRAMES + 10; i++) {
        assert_true(zmq_send(b, "p", 1, i < JP_MAX_FRAMES + 9 ? ZMQ_SNDMORE : 0) == 1);
    }
    jp_error err = {0};
    assert_null(jp_recv(s, a, 0, &err));
    assert_int_equal(errno, EMSGSIZE);
    /* The rest of it was drained: the next message is read whole. */
    jp_msg *m = jp_msg_new(s, "status", NULL, NULL, 0);
    assert_int_equal(jp_send(s, b, &m, NULL, NULL), 0);
    m = recv_or_fail(s, a);
    assert_string_equal(jp_msg_type(m), "status");
    jp_msg_destroy(&m);
    jp_session_destroy(&s);
    zmq_close(a);
    zmq_close(b);
    zmq_ctx_term(ctx);
}

static void test_wire__send_failure_releases_the_message(void **state)
{
    (void)state;
    void *ctx = ctx_or_fail();
    void *pair = sock(ctx, ZMQ_PAIR); /* never connected */
    int timeout = 0;
    zmq_setsockopt(pair, ZMQ_SNDTIMEO, &timeout, sizeof timeout);
    jp_session *s = session(KEY);
    jp_msg *m = jp_msg_new(s, "status", NULL, NULL, 0);
    add_pattern_buffer(m, 1 << 16, 6);
    jp_error err = {0};
    assert_int_equal(jp_send(s, pair, &m, "topic", &err), -1);
    assert_null(m);
    assert_error_contains(err, "send failed");
    jp_session_destroy(&s);
    zmq_close(pair);
    zmq_ctx_term(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wire__decodes_a_valid_message),
        cmocka_unit_test(test_wire__rejects_missing_delimiter),
        cmocka_unit_test(test_wire__rejects_too_few_frames),
        cmocka_unit_test(test_wire__rejects_bad_signature),
        cmocka_unit_test(test_wire__rejects_missing_signature),
        cmocka_unit_test(test_wire__rejects_wrong_signature_length),
        cmocka_unit_test(test_wire__rejects_replayed_message),
        cmocka_unit_test(test_wire__rejects_invalid_utf8),
        cmocka_unit_test(test_wire__rejects_invalid_json),
        cmocka_unit_test(test_wire__rejects_wrong_json_types),
        cmocka_unit_test(test_wire__rejects_missing_header_fields),
        cmocka_unit_test(test_wire__rejects_wrongly_typed_header_fields),
        cmocka_unit_test(test_wire__accepts_nul_characters_in_strings),
        cmocka_unit_test(test_wire__empty_key_means_unsigned),
        cmocka_unit_test(test_wire__encode_lays_out_frames_in_order),
        cmocka_unit_test(test_wire__router_dealer_round_trip_over_inproc),
        cmocka_unit_test(test_wire__router_dealer_round_trip_over_tcp),
        cmocka_unit_test(test_wire__pub_sub_carries_topic_over_inproc),
        cmocka_unit_test(test_wire__pub_sub_carries_topic_over_tcp),
        cmocka_unit_test(test_wire__recv_drops_malformed_message_and_keeps_serving),
        cmocka_unit_test(test_wire__recv_drains_a_message_of_too_many_parts_unread),
        cmocka_unit_test(test_wire__send_failure_releases_the_message),
    };
    return cmocka_run_group_tests_name("wire", tests, NULL, NULL);
}
