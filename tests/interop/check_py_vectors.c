/* check_py_vectors.c -- libjp decodes what jupyter_client's Session encodes.
 *
 * Usage: check_py_vectors DIR, where DIR was filled by make_vectors.py.
 * Every vector is decoded with a session keyed as the vector says; the
 * message must come out with the same identities, header, parent header,
 * metadata, content and buffers as jupyter_client put in, or be rejected
 * for the reason the vector names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "jp.h"

static const char *vector_dir;

static unsigned char *unhex(const char *hex, size_t *len)
{
    size_t n = strlen(hex) / 2;
    unsigned char *out = malloc(n ? n : 1);
    assert_non_null(out);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (unsigned char)v;
    }
    *len = n;
    return out;
}

static jp_frame *frames_from_hex(json_t *list, size_t *n)
{
    *n = json_array_size(list);
    jp_frame *f = calloc(*n ? *n : 1, sizeof *f);
    assert_non_null(f);
    for (size_t i = 0; i < *n; i++) {
        size_t len;
        unsigned char *bytes = unhex(json_string_value(json_array_get(list, i)), &len);
        assert_int_equal(jp_frame_copy(&f[i], bytes, len), 0);
        free(bytes);
    }
    return f;
}

static void assert_frames_equal_hex(const char *name, const char *what, const jp_frame *f,
                                    size_t n, json_t *hexes)
{
    if (n != json_array_size(hexes)) {
        fail_msg("%s: %zu %s, expected %zu", name, n, what, json_array_size(hexes));
    }
    for (size_t i = 0; i < n; i++) {
        size_t len;
        unsigned char *want = unhex(json_string_value(json_array_get(hexes, i)), &len);
        if (f[i].size != len || (len && memcmp(f[i].data, want, len) != 0)) {
            free(want);
            fail_msg("%s: %s %zu differs", name, what, i);
        }
        free(want);
    }
}

static void assert_json_same(const char *name, const char *what, json_t *got,
                             json_t *want)
{
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, JSON_SORT_KEYS), *w = json_dumps(want, JSON_SORT_KEYS);
        print_error("%s: %s\n  got:  %s\n  want: %s\n", name, what, g, w);
        free(g);
        free(w);
        fail_msg("%s: %s differs", name, what);
    }
}

static json_t *load_json(const char *file)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", vector_dir, file);
    json_error_t jerr;
    json_t *v = json_load_file(path, JSON_ALLOW_NUL, &jerr);
    if (v == NULL) {
        fail_msg("%s: %s", path, jerr.text);
    }
    return v;
}

static void check_vector(json_t *v, int *accepted, int *rejected)
{
    const char *name = json_string_value(json_object_get(v, "name"));
    const char *scheme = json_string_value(json_object_get(v, "scheme"));
    const char *key = json_string_value(json_object_get(v, "key"));
    json_t *reject = json_object_get(v, "reject");
    json_t *expect = json_object_get(v, "expect");
    jp_error err = {0};
    jp_session *s = jp_session_new(scheme, key, strlen(key), NULL, &err);
    if (s == NULL) {
        fail_msg("%s: %s", name, err.text);
    }
    size_t n;
    jp_frame *f = frames_from_hex(json_object_get(v, "frames"), &n);
    jp_msg *m = jp_wire_decode(s, f, n, &err);
    free(f);
    if (json_is_string(reject)) {
        if (m != NULL) {
            fail_msg("%s: accepted, expected rejection (%s)", name,
                     json_string_value(reject));
        }
        if (strstr(err.text, json_string_value(reject)) == NULL) {
            fail_msg("%s: rejected for \"%s\", expected \"%s\"", name, err.text,
                     json_string_value(reject));
        }
        (*rejected)++;
        jp_session_destroy(&s);
        return;
    }
    if (m == NULL) {
        fail_msg("%s: rejected: %s", name, err.text);
    }
    assert_frames_equal_hex(name, "identity", m->idents, m->n_idents,
                            json_object_get(expect, "idents"));
    assert_json_same(name, "header", m->header, json_object_get(expect, "header"));
    assert_json_same(name, "parent_header", m->parent_header,
                     json_object_get(expect, "parent_header"));
    assert_json_same(name, "metadata", m->metadata, json_object_get(expect, "metadata"));
    assert_json_same(name, "content", m->content, json_object_get(expect, "content"));
    assert_frames_equal_hex(name, "buffer", m->buffers, m->n_buffers,
                            json_object_get(expect, "buffers"));
    assert_string_equal(jp_msg_type(m), "execute_request");
    assert_string_equal(jp_msg_id(m), json_string_value(json_object_get(
                                          json_object_get(expect, "header"), "msg_id")));
    jp_msg_destroy(&m);
    (*accepted)++;
    if (json_is_true(json_object_get(v, "replay"))) {
        f = frames_from_hex(json_object_get(v, "frames"), &n);
        memset(&err, 0, sizeof err);
        m = jp_wire_decode(s, f, n, &err);
        free(f);
        if (m != NULL) {
            jp_msg_destroy(&m);
            fail_msg("%s: accepted the same message twice", name);
        }
        assert_non_null(strstr(err.text, "replayed"));
        (*rejected)++;
    }
    jp_session_destroy(&s);
}

static void test_interop__decodes_every_jupyter_client_message(void **state)
{
    (void)state;
    json_t *vectors = load_json("py2c.json");
    int accepted = 0, rejected = 0;
    size_t i;
    json_t *v;
    json_array_foreach(vectors, i, v)
    {
        check_vector(v, &accepted, &rejected);
    }
    json_decref(vectors);
    /* 5 schemes + unsigned, each with and without buffers, plus a replay per
     * scheme; 5 rejections per scheme. */
    assert_int_equal(accepted, 6 * 2 + 5);
    assert_int_equal(rejected, 5 * 5);
    printf("[   INFO   ] %d jupyter_client messages decoded, %d rejected as they "
           "should be\n",
           accepted, rejected);
}

static void test_interop__loads_jupyter_client_connection_files(void **state)
{
    (void)state;
    static const char *const schemes[] = {"hmac-sha256", "hmac-sha1", "hmac-sha224",
                                          "hmac-sha384", "hmac-sha512"};
    for (size_t i = 0; i < 5; i++) {
        char file[64], path[4096];
        snprintf(file, sizeof file, "conn-%s.json", schemes[i]);
        snprintf(path, sizeof path, "%s/%s", vector_dir, file);
        json_t *want = load_json(file);
        jp_connection c;
        jp_error err = {0};
        if (jp_connection_load(&c, path, &err) < 0) {
            fail_msg("%s: %s", file, err.text);
        }
        assert_string_equal(c.transport,
                            json_string_value(json_object_get(want, "transport")));
        assert_string_equal(c.ip, json_string_value(json_object_get(want, "ip")));
        assert_string_equal(c.key, json_string_value(json_object_get(want, "key")));
        assert_string_equal(c.signature_scheme, schemes[i]);
        assert_string_equal(c.kernel_name, "ferry");
        for (int ch = 0; ch < JP_NCHANNELS; ch++) {
            char field[32];
            snprintf(field, sizeof field, "%s_port", jp_channel_name((jp_channel)ch));
            assert_int_equal(c.ports[ch],
                             json_integer_value(json_object_get(want, field)));
        }
        jp_session *s = jp_session_from_connection(&c, NULL, &err);
        assert_non_null(s);
        jp_session_destroy(&s);
        jp_connection_clear(&c);
        json_decref(want);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s VECTOR_DIR\n", argv[0]);
        return 2;
    }
    vector_dir = argv[1];
    setvbuf(stdout, NULL, _IONBF, 0); /* keep our lines in order with cmocka's */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_interop__decodes_every_jupyter_client_message),
        cmocka_unit_test(test_interop__loads_jupyter_client_connection_files),
    };
    return cmocka_run_group_tests_name("interop python -> C", tests, NULL, NULL);
}
