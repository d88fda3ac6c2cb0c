/* test_msg.c -- sessions, headers, replies and buffers. */
#include "jp_test.h"

#include <regex.h>
#include <stdio.h>
#include <time.h>

static jp_session *session(const char *key)
{
    jp_error err = {0};
    jp_session *s = jp_session_new("hmac-sha256", key, strlen(key), "tester", &err);
    if (s == NULL) {
        fail_msg("jp_session_new: %s", err.text);
    }
    return s;
}

static const char *hstr(const jp_msg *m, const char *field)
{
    const char *v = json_string_value(json_object_get(m->header, field));
    if (v == NULL) {
        fail_msg("header has no string '%s'", field);
    }
    return v;
}

static void assert_matches(const char *text, const char *pattern)
{
    regex_t re;
    assert_int_equal(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
    int rc = regexec(&re, text, 0, NULL, 0);
    regfree(&re);
    if (rc != 0) {
        fail_msg("\"%s\" does not match /%s/", text, pattern);
    }
}

static void test_msg__header_has_every_field(void **state)
{
    (void)state;
    jp_session *s = session("k");
    jp_msg *m = jp_msg_new(s, "kernel_info_request", NULL, NULL, 0);
    assert_non_null(m);
    assert_int_equal(json_object_size(m->header), 6);
    assert_string_equal(hstr(m, "msg_type"), "kernel_info_request");
    assert_string_equal(jp_msg_type(m), "kernel_info_request");
    assert_string_equal(hstr(m, "msg_id"), jp_msg_id(m));
    assert_true(strlen(jp_msg_id(m)) > 0);
    assert_string_equal(hstr(m, "session"), jp_session_id(s));
    assert_matches(
        jp_session_id(s),
        "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
    assert_string_equal(hstr(m, "username"), "tester");
    assert_string_equal(hstr(m, "version"), "5.3");
    assert_string_equal(JP_PROTOCOL_VERSION, "5.3");
    assert_true(json_is_object(m->content) && json_object_size(m->content) == 0);
    assert_true(json_is_object(m->metadata) && json_object_size(m->metadata) == 0);
    assert_true(json_is_object(m->parent_header) &&
                json_object_size(m->parent_header) == 0);
    assert_int_equal(m->n_idents, 0);
    assert_int_equal(m->n_buffers, 0);
    jp_msg_destroy(&m);
    assert_null(m);
    jp_session_destroy(&s);
    assert_null(s);
}

static void test_msg__date_is_iso8601_utc_with_microseconds(void **state)
{
    (void)state;
    jp_session *s = session("k");
    /* The same clock the header is stamped from: glibc's time() reads the
     * coarse clock, which can lag CLOCK_REALTIME by a tick, so a message
     * stamped at x.999 could land a second after a time() taken later. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    time_t before = ts.tv_sec;
    jp_msg *m = jp_msg_new(s, "status", NULL, NULL, 0);
    clock_gettime(CLOCK_REALTIME, &ts);
    time_t after = ts.tv_sec;
    const char *date = hstr(m, "date");
    assert_matches(date, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
                         "\\.[0-9]{6}Z$");
    /* And it is now, in UTC. */
    char lo[32], hi[32], got[32];
    strftime(lo, sizeof lo, "%Y-%m-%dT%H:%M:%S", gmtime(&before));
    strftime(hi, sizeof hi, "%Y-%m-%dT%H:%M:%S", gmtime(&after));
    snprintf(got, sizeof got, "%.19s", date);
    assert_true(strcmp(lo, got) <= 0 && strcmp(got, hi) <= 0);
    char buf[32];
    jp_now_iso8601(buf, sizeof buf);
    assert_int_equal(strlen(buf), 27);
    jp_msg_destroy(&m);
    jp_session_destroy(&s);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_msg__msg_ids_are_unique(void **state)
{
    (void)state;
    enum { N = 20000 };
    jp_session *s1 = session("k"), *s2 = session("k");
    char **ids = calloc(N, sizeof *ids);
    assert_non_null(ids);
    for (int i = 0; i < N; i++) {
        jp_msg *m = jp_msg_new(i % 2 ? s1 : s2, "status", NULL, NULL, 0);
        ids[i] = strdup(jp_msg_id(m));
        jp_msg_destroy(&m);
    }
    assert_string_not_equal(jp_session_id(s1), jp_session_id(s2));
    qsort(ids, N, sizeof *ids, cmp_str);
    for (int i = 1; i < N; i++) {
        assert_string_not_equal(ids[i - 1], ids[i]);
    }
    for (int i = 0; i < N; i++) {
        free(ids[i]);
    }
    free(ids);
    jp_session_destroy(&s1);
    jp_session_destroy(&s2);
}

static void test_msg__content_is_stolen(void **state)
{
    (void)state;
    jp_session *s = session("k");
    json_t *content = json_pack("{s:s}", "code", "print(1)");
    jp_msg *m = jp_msg_new(s, "execute_request", content, NULL, 0);
    assert_ptr_equal(m->content, content); /* same object, not a copy */
    assert_int_equal(content->refcount, 1);
    jp_msg_destroy(&m);
    jp_session_destroy(&s);
}

static jp_msg *request_with_idents(jp_session *s)
{
    jp_msg *req =
        jp_msg_new(s, "execute_request", json_pack("{s:s}", "code", "1"), NULL, 0);
    assert_non_null(req);
    req->idents = calloc(2, sizeof *req->idents);
    assert_non_null(req->idents);
    req->n_idents = 2;
    assert_int_equal(jp_frame_copy(&req->idents[0], "\x00\x80\x00\x41\xa7", 5), 0);
    assert_int_equal(jp_frame_copy(&req->idents[1], "second", 6), 0);
    return req;
}

static void test_msg__reply_copies_parent_header_and_idents(void **state)
{
    (void)state;
    jp_session *s = session("k");
    jp_msg *req = request_with_idents(s);
    jp_msg *rep =
        jp_msg_reply(s, req, "execute_reply", json_pack("{s:s}", "status", "ok"));
    assert_non_null(rep);
    assert_true(json_equal(rep->parent_header, req->header));
    assert_ptr_not_equal(rep->parent_header, req->header);
    assert_string_not_equal(jp_msg_id(rep), jp_msg_id(req));
    assert_string_equal(jp_msg_type(rep), "execute_reply");
    assert_int_equal(rep->n_idents, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(rep->idents[i].size, req->idents[i].size);
        assert_memory_equal(rep->idents[i].data, req->idents[i].data,
                            req->idents[i].size);
        assert_ptr_not_equal(rep->idents[i].data, req->idents[i].data);
    }
    jp_msg_destroy(&req); /* the reply owns its own copies */
    assert_int_equal(rep->idents[1].size, 6);
    jp_msg_destroy(&rep);
    jp_session_destroy(&s);
}

static void test_msg__iopub_has_parent_header_but_no_idents(void **state)
{
    (void)state;
    jp_session *s = session("k");
    jp_msg *req = request_with_idents(s);
    jp_msg *out = jp_msg_iopub(s, req, "stream",
                               json_pack("{s:s,s:s}", "name", "stdout", "text", "hi\n"));
    assert_non_null(out);
    assert_true(json_equal(out->parent_header, req->header));
    assert_int_equal(out->n_idents, 0);
    assert_null(out->idents);
    jp_msg_destroy(&out);
    jp_msg_destroy(&req);
    jp_session_destroy(&s);
}

static void test_msg__add_buffer_takes_over_the_frame(void **state)
{
    (void)state;
    jp_session *s = session("k");
    jp_msg *m = jp_msg_new(s, "comm_msg", NULL, NULL, 0);
    for (int i = 0; i < 3; i++) {
        jp_frame f;
        unsigned char bytes[4] = {0, 0xff, (unsigned char)i, 0};
        assert_int_equal(jp_frame_copy(&f, bytes, sizeof bytes), 0);
        void *data = f.data;
        assert_int_equal(jp_msg_add_buffer(m, &f), 0);
        assert_null(f.data);
        assert_int_equal(f.size, 0);
        assert_ptr_equal(m->buffers[i].data, data);
    }
    jp_frame empty;
    assert_int_equal(jp_frame_copy(&empty, NULL, 0), 0);
    assert_int_equal(jp_msg_add_buffer(m, &empty), 0);
    assert_int_equal(m->n_buffers, 4);
    assert_int_equal(m->buffers[3].size, 0);
    jp_msg_destroy(&m);
    jp_session_destroy(&s);
}

static void test_msg__username_defaults_to_user_then_ferry(void **state)
{
    (void)state;
    const char *saved = getenv("USER");
    char *keep = saved ? strdup(saved) : NULL;
    setenv("USER", "alice", 1);
    jp_session *s = jp_session_new("hmac-sha256", "", 0, NULL, NULL);
    jp_msg *m = jp_msg_new(s, "status", NULL, NULL, 0);
    assert_string_equal(hstr(m, "username"), "alice");
    jp_msg_destroy(&m);
    jp_session_destroy(&s);
    unsetenv("USER");
    s = jp_session_new("hmac-sha256", "", 0, NULL, NULL);
    m = jp_msg_new(s, "status", NULL, NULL, 0);
    assert_string_equal(hstr(m, "username"), "ferry");
    jp_msg_destroy(&m);
    jp_session_destroy(&s);
    if (keep) {
        setenv("USER", keep, 1);
        free(keep);
    }
}

static void test_msg__session_from_connection_uses_key_and_scheme(void **state)
{
    (void)state;
    const char *text =
        "{\"transport\": \"tcp\", \"ip\": \"127.0.0.1\", \"shell_port\": 1,"
        " \"iopub_port\": 2, \"stdin_port\": 3, \"control_port\": 4,"
        " \"hb_port\": 5, \"key\": \"abc\", \"signature_scheme\":"
        " \"hmac-sha384\"}";
    jp_connection c;
    assert_int_equal(jp_connection_parse(&c, text, strlen(text), NULL), 0);
    jp_session *s = jp_session_from_connection(&c, "u", NULL);
    assert_non_null(s);
    assert_int_equal(jp_signer_hex_len(jp_session_signer(s)), 96);
    jp_session_destroy(&s);
    free(c.key);
    c.key = NULL; /* a NULL key is an unsigned session */
    s = jp_session_from_connection(&c, "u", NULL);
    assert_int_equal(jp_signer_enabled(jp_session_signer(s)), 0);
    jp_session_destroy(&s);
    jp_connection_clear(&c);
}

static void test_msg__session_rejects_unknown_scheme(void **state)
{
    (void)state;
    jp_error err = {0};
    assert_null(jp_session_new("hmac-sha3", "k", 1, NULL, &err));
    assert_error_contains(err, "unknown signature_scheme");
}

static void test_msg__accessors_are_empty_when_fields_are_missing(void **state)
{
    (void)state;
    jp_msg m = {0};
    m.header = json_pack("{s:i}", "msg_type", 3);
    assert_string_equal(jp_msg_type(&m), "");
    assert_string_equal(jp_msg_id(&m), "");
    json_decref(m.header);
}

static void test_msg__destroy_accepts_null(void **state)
{
    (void)state;
    jp_msg *m = NULL;
    jp_msg_destroy(&m);
    jp_msg_destroy(NULL);
    jp_session *s = NULL;
    jp_session_destroy(&s);
    jp_session_destroy(NULL);
    jp_frame f = {0};
    jp_frame_clear(&f);
}

static void test_msg__two_messages_are_never_byte_identical(void **state)
{
    (void)state;
    jp_session *s = session("k");
    jp_frame *a, *b;
    size_t na, nb;
    jp_msg *m1 =
        jp_msg_new(s, "status", json_pack("{s:s}", "execution_state", "idle"), NULL, 0);
    jp_msg *m2 =
        jp_msg_new(s, "status", json_pack("{s:s}", "execution_state", "idle"), NULL, 0);
    assert_int_equal(jp_wire_encode(s, &m1, &a, &na, NULL), 0);
    assert_int_equal(jp_wire_encode(s, &m2, &b, &nb, NULL), 0);
    assert_int_equal(na, nb);
    /* Same content, but the header (msg_id) and so the signature differ. */
    for (size_t i = 1; i < 3; i++) {
        assert_true(a[i].size != b[i].size || memcmp(a[i].data, b[i].data, a[i].size));
    }
    test_frames_free(a, na);
    test_frames_free(b, nb);
    jp_session_destroy(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_msg__header_has_every_field),
        cmocka_unit_test(test_msg__date_is_iso8601_utc_with_microseconds),
        cmocka_unit_test(test_msg__msg_ids_are_unique),
        cmocka_unit_test(test_msg__content_is_stolen),
        cmocka_unit_test(test_msg__reply_copies_parent_header_and_idents),
        cmocka_unit_test(test_msg__iopub_has_parent_header_but_no_idents),
        cmocka_unit_test(test_msg__add_buffer_takes_over_the_frame),
        cmocka_unit_test(test_msg__username_defaults_to_user_then_ferry),
        cmocka_unit_test(test_msg__session_from_connection_uses_key_and_scheme),
        cmocka_unit_test(test_msg__session_rejects_unknown_scheme),
        cmocka_unit_test(test_msg__accessors_are_empty_when_fields_are_missing),
        cmocka_unit_test(test_msg__destroy_accepts_null),
        cmocka_unit_test(test_msg__two_messages_are_never_byte_identical),
    };
    return cmocka_run_group_tests_name("msg", tests, NULL, NULL);
}
