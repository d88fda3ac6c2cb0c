/* jp_test.h -- helpers shared by the libjp cmocka programs.
 *
 * Each program includes this once; the helpers are static inline so a
 * program that does not use one does not warn.
 */
#ifndef JP_TEST_H
#define JP_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "jp.h"

/* Asserts that a libjp call failed and that err says so, containing want. */
#define assert_error_contains(err, want)                                                 \
    do {                                                                                 \
        assert_true((err).set);                                                          \
        if (strstr((err).text, (want)) == NULL) {                                        \
            fail_msg("error \"%s\" does not mention \"%s\"", (err).text, (want));        \
        }                                                                                \
    } while (0)

/* Lowercase hex of the HMAC of four frames, via libjp's signer. */
static inline void test_sign4(jp_signer *sg, const char *const parts[4], char out[130])
{
    const void *frames[4];
    size_t lens[4];
    for (int i = 0; i < 4; i++) {
        frames[i] = parts[i];
        lens[i] = strlen(parts[i]);
    }
    assert_int_equal(jp_signer_sign(sg, frames, lens, out, 130), 0);
}

/* A malloc'd array of n frames holding copies of the NUL-terminated parts. */
static inline jp_frame *test_frames(const char *const *parts, size_t n)
{
    jp_frame *f = calloc(n ? n : 1, sizeof *f);
    assert_non_null(f);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(jp_frame_copy(&f[i], parts[i], strlen(parts[i])), 0);
    }
    return f;
}

/* Frees an array of frames (cleared or not). */
static inline void test_frames_free(jp_frame *f, size_t n)
{
    jp_frames_clear(&(jp_frames){f, f ? n : 0});
}

#endif /* JP_TEST_H */
