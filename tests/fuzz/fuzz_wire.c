/* fuzz_wire.c -- libFuzzer harness for jp_wire_decode.
 *
 * Input format (the seeds in build/interop/seeds-wire follow it):
 *   byte 0     mode: bits 0-1 pick how the signature is treated
 *                0  checked as given against FUZZ_KEY (hmac-sha256): the
 *                   signature path itself is fuzzed
 *                1  the harness re-signs the four JSON frames, so mutated
 *                   JSON gets past the HMAC and reaches the parser
 *                2  unsigned session (empty key): no signature at all
 *                3  like 1, under the scheme picked by bits 2-4
 *   rest       the frames, separated by F5 F5 F5 F5 (never valid UTF-8, so
 *              it cannot occur inside the JSON frames)
 * A decoded message must survive a round trip: re-encoded by libjp and
 * decoded by a second session, it must come back with equal JSON parts,
 * identities and buffers; anything else aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jp.h"

#define FUZZ_KEY "ferry-fuzz-key" /* keep in sync with make_vectors.py */
#define MAX_FRAMES 64

static const unsigned char sep[4] = {0xf5, 0xf5, 0xf5, 0xf5};
static const char *const schemes[5] = {"hmac-sha256", "hmac-sha1", "hmac-sha224",
                                       "hmac-sha384", "hmac-sha512"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Splits data into frames at every separator; returns the count, or 0
 * (nothing held) when there are too many. */
static size_t split(const uint8_t *data, size_t size, jp_frame *f)
{
    size_t n = 0, start = 0;
    for (size_t i = 0; i + 4 <= size;) {
        if (memcmp(data + i, sep, 4) == 0) {
            if (n == MAX_FRAMES - 1) {
                for (size_t k = 0; k < n; k++) {
                    jp_frame_clear(&f[k]);
                }
                return 0;
            }
            if (jp_frame_copy(&f[n++], data + start, i - start) < 0) {
                abort();
            }
            i += 4;
            start = i;
        } else {
            i++;
        }
    }
    if (jp_frame_copy(&f[n++], data + start, size - start) < 0) {
        abort();
    }
    return n;
}

static void resign(jp_session *s, jp_frame *f, size_t n)
{
    size_t d = 0;
    while (d < n && !(f[d].size == 9 && memcmp(f[d].data, JP_DELIMITER, 9) == 0)) {
        d++;
    }
    if (n - d < 6) {
        return;
    }
    const void *parts[4];
    size_t lens[4];
    for (int i = 0; i < 4; i++) {
        parts[i] = f[d + 2 + i].data;
        lens[i] = f[d + 2 + i].size;
    }
    char sig[130];
    if (jp_signer_sign(jp_session_signer(s), parts, lens, sig, sizeof sig) < 0) {
        abort();
    }
    jp_frame_clear(&f[d + 1]);
    if (jp_frame_copy(&f[d + 1], sig, strlen(sig)) < 0) {
        abort();
    }
}

static int frames_equal(const jp_frame *a, size_t na, const jp_frame *b, size_t nb)
{
    if (na != nb) {
        return 0;
    }
    for (size_t i = 0; i < na; i++) {
        if (a[i].size != b[i].size ||
            (a[i].size && memcmp(a[i].data, b[i].data, a[i].size) != 0)) {
            return 0;
        }
    }
    return 1;
}

/* Re-encodes m with s and decodes it with a fresh session of the same key. */
static void round_trip(jp_session *s, const char *scheme, const char *key, jp_msg *m)
{
    jp_msg *copy = calloc(1, sizeof *copy);
    if (copy == NULL) {
        abort();
    }
    copy->header = json_deep_copy(m->header);
    copy->parent_header = json_deep_copy(m->parent_header);
    copy->metadata = json_deep_copy(m->metadata);
    copy->content = json_deep_copy(m->content);
    for (size_t i = 0; i < m->n_buffers; i++) {
        jp_frame b;
        if (jp_frame_copy(&b, m->buffers[i].data, m->buffers[i].size) < 0 ||
            jp_msg_add_buffer(copy, &b) < 0) {
            abort();
        }
    }
    if (m->n_idents) {
        copy->idents = calloc(m->n_idents, sizeof *copy->idents);
        copy->n_idents = m->n_idents;
        for (size_t i = 0; i < m->n_idents; i++) {
            if (jp_frame_copy(&copy->idents[i], m->idents[i].data, m->idents[i].size) <
                0) {
                abort();
            }
        }
    }
    jp_frame *f;
    size_t n;
    jp_error err = {0};
    if (jp_wire_encode(s, &copy, &f, &n, &err) < 0) {
        abort();
    }
    jp_session *other = jp_session_new(scheme, key, strlen(key), "fuzz", NULL);
    jp_msg *back = other ? jp_wire_decode(other, f, n, &err) : NULL;
    free(f);
    if (back == NULL || !json_equal(back->header, m->header) ||
        !json_equal(back->parent_header, m->parent_header) ||
        !json_equal(back->metadata, m->metadata) ||
        !json_equal(back->content, m->content) ||
        !frames_equal(back->idents, back->n_idents, m->idents, m->n_idents) ||
        !frames_equal(back->buffers, back->n_buffers, m->buffers, m->n_buffers)) {
        abort(); /* what libjp accepts, libjp must be able to send */
    }
    jp_msg_destroy(&back);
    jp_session_destroy(&other);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    int mode = data[0] & 3;
    const char *scheme = mode == 3 ? schemes[(data[0] >> 2) % 5] : schemes[0];
    const char *key = mode == 2 ? "" : FUZZ_KEY;
    jp_frame f[MAX_FRAMES];
    memset(f, 0, sizeof f);
    size_t n = split(data + 1, size - 1, f);
    jp_session *s = jp_session_new(scheme, key, strlen(key), "fuzz", NULL);
    if (s == NULL) {
        abort();
    }
    if (mode == 1 || mode == 3) {
        resign(s, f, n);
    }
    jp_error err = {0};
    jp_msg *m = jp_wire_decode(s, f, n, &err);
    if (m == NULL && !err.set) {
        abort(); /* every rejection says why */
    }
    if (m != NULL) {
        (void)jp_msg_type(m);
        (void)jp_msg_id(m);
        round_trip(s, scheme, key, m);
        jp_msg_destroy(&m);
    }
    for (size_t i = 0; i < n; i++) {
        if (f[i].data != NULL) {
            abort(); /* decode takes every frame over */
        }
    }
    jp_session_destroy(&s);
    return 0;
}
