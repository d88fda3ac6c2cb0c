/* write_c_vectors.c -- messages encoded by libjp, for jupyter_client to check.
 *
 * Usage: write_c_vectors OUT.json
 * Writes a list of messages signed and framed by libjp under every scheme
 * (and unsigned), with and without buffers and identities.  Each names its
 * key, its frames (hex) and the ids libjp chose; check_c_vectors.py feeds
 * them to jupyter_client's Session and compares every field with what it
 * expects independently (the content is fixed on both sides).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jp.h"

/* Keep in sync with CONTENT in check_c_vectors.py. */
static json_t *content(void)
{
    return json_pack("{s:s, s:b, s:i, s:I, s:f, s:{s:[i,s,n,b,{s:[]}]}, s:s%, s:s}",
                     "code", "print('h\xc3\xa9llo \xe2\x98\x83 \xf0\x9f\x9a\x80')\n",
                     "silent", 0, "n", 42, "big", (json_int_t)1 << 53, "pi", 3.25,
                     "nested", "list", 1, "two", 1, "deep", "nul", "a\0b", (size_t)3,
                     "escapes", "tab\tquote\"backslash\\newline\n\x1f");
}

static json_t *hex_frames(const jp_frame *f, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        char *hex = malloc(2 * f[i].size + 1);
        const unsigned char *d = f[i].data;
        for (size_t k = 0; k < f[i].size; k++) {
            hex[2 * k] = digits[d[k] >> 4];
            hex[2 * k + 1] = digits[d[k] & 15];
        }
        hex[2 * f[i].size] = '\0';
        json_array_append_new(list, json_string(hex));
        free(hex);
    }
    return list;
}

static int add_buffer(jp_msg *m, size_t size, unsigned seed)
{
    unsigned char *data = malloc(size ? size : 1);
    for (size_t i = 0; i < size; i++) {
        data[i] = (unsigned char)((i * 7 + seed) % 251);
    }
    jp_frame f;
    int rc = jp_frame_copy(&f, data, size);
    free(data);
    return rc < 0 ? -1 : jp_msg_add_buffer(m, &f);
}

/* Encodes one message under scheme/key and appends its vector to out. */
static int write_one(json_t *out, const char *scheme, const char *key, int buffers)
{
    jp_error err = {0};
    jp_session *s = jp_session_new(scheme, key, strlen(key), "c-tester", &err);
    if (s == NULL) {
        fprintf(stderr, "write_c_vectors: %s\n", err.text);
        return -1;
    }
    jp_msg *parent = jp_msg_new(s, "kernel_info_request", NULL, NULL, 0);
    if (parent == NULL || (parent->idents = calloc(2, sizeof *parent->idents)) == NULL) {
        return -1;
    }
    parent->n_idents = 2;
    if (jp_frame_copy(&parent->idents[0], "ident-1", 7) < 0 ||
        jp_frame_copy(&parent->idents[1], "\x00\x80\x00\x41\xa7", 5) < 0) {
        return -1;
    }
    jp_msg *m = jp_msg_reply(s, parent, "execute_request", content());
    if (m == NULL) {
        return -1;
    }
    json_object_set_new(m->metadata, "cellId", json_string("c-1"));
    if (buffers && (add_buffer(m, 3, 1) < 0 || add_buffer(m, 0, 2) < 0 ||
                    add_buffer(m, 70000, 3) < 0)) {
        return -1;
    }
    json_t *v =
        json_pack("{s:s%, s:s, s:s, s:s, s:s, s:s}", "name", scheme, strlen(scheme),
                  "scheme", scheme, "key", key, "msg_id", jp_msg_id(m), "parent_msg_id",
                  jp_msg_id(parent), "session", jp_session_id(s));
    json_object_set_new(v, "buffers", json_boolean(buffers));
    jp_frame *f;
    size_t n;
    if (jp_wire_encode(s, &m, &f, &n, &err) < 0) {
        fprintf(stderr, "write_c_vectors: %s\n", err.text);
        return -1;
    }
    json_object_set_new(v, "frames", hex_frames(f, n));
    json_array_append_new(out, v);
    for (size_t i = 0; i < n; i++) {
        jp_frame_clear(&f[i]);
    }
    free(f);
    jp_msg_destroy(&parent);
    jp_session_destroy(&s);
    return 0;
}

int main(int argc, char **argv)
{
    static const char *const schemes[] = {"hmac-sha256", "hmac-sha1", "hmac-sha224",
                                          "hmac-sha384", "hmac-sha512"};
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUT.json\n", argv[0]);
        return 2;
    }
    json_t *out = json_array();
    for (int buffers = 0; buffers < 2; buffers++) {
        for (size_t i = 0; i < 5; i++) {
            char key[64];
            snprintf(key, sizeof key, "c-key-for-%s-\xc3\xa9", schemes[i]);
            if (write_one(out, schemes[i], key, buffers) < 0) {
                return 1;
            }
        }
        if (write_one(out, "hmac-sha256", "", buffers) < 0) {
            return 1;
        }
    }
    int rc = json_dump_file(out, argv[1], JSON_INDENT(1));
    json_decref(out);
    if (rc < 0) {
        fprintf(stderr, "write_c_vectors: cannot write %s\n", argv[1]);
        return 1;
    }
    return 0;
}
