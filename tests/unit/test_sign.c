/* test_sign.c -- HMAC signing, verification order, replay rejection. */
#include "jp_test.h"

#include <pthread.h>
#include <stdio.h>

/* RFC 2202 / RFC 4231 test case 2 (key "Jefe"), the data split over the four
 * frames: the signature covers their concatenation, as in jupyter_client. */
static const char *const rfc_parts[4] = {"what do ", "ya want ", "for ", "nothing?"};
static const struct {
    const char *scheme;
    const char *hex;
} rfc_cases[] = {
    {"hmac-sha256", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
    {"hmac-sha1", "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"},
    {"hmac-sha224", "a30e01098bc6dbbf45690f3a7e9e6d0f8bbea2a39e6148008fd05e44"},
    {"hmac-sha384", "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e"
                    "8e2240ca5e69e2c78b3239ecfab21649"},
    {"hmac-sha512", "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554"
                    "9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"},
    {"hmac-md5", "750c783e6ab0b503eaa86e310a5db738"},
};

static jp_signer *signer(const char *scheme, const char *key, size_t window)
{
    jp_error err = {0};
    jp_signer *s = jp_signer_new(scheme, key, strlen(key), window, &err);
    if (s == NULL) {
        fail_msg("jp_signer_new(%s): %s", scheme, err.text);
    }
    return s;
}

/* Verifies a signature given as a C string over four C-string frames. */
static int verify(jp_signer *s, const char *sig, const char *const parts[4],
                  jp_error *err)
{
    const void *frames[4];
    size_t lens[4];
    for (int i = 0; i < 4; i++) {
        frames[i] = parts[i];
        lens[i] = strlen(parts[i]);
    }
    return jp_signer_verify(s, sig, strlen(sig), frames, lens, err);
}

static void test_sign__matches_rfc_vectors_for_every_scheme(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rfc_cases / sizeof rfc_cases[0]; i++) {
        jp_signer *s = signer(rfc_cases[i].scheme, "Jefe", 0);
        char sig[130];
        test_sign4(s, rfc_parts, sig);
        assert_string_equal(sig, rfc_cases[i].hex);
        assert_int_equal(jp_signer_hex_len(s), strlen(rfc_cases[i].hex));
        assert_int_equal(jp_signer_enabled(s), 1);
        jp_error err = {0};
        assert_int_equal(verify(s, sig, rfc_parts, &err), 0);
        assert_false(err.set);
        jp_signer_destroy(&s);
        assert_null(s);
    }
}

static void test_sign__rejects_signature_of_other_frames(void **state)
{
    (void)state;
    jp_signer *s = signer("hmac-sha256", "Jefe", 0);
    const char *const other[4] = {"what do ", "ya want ", "for ", "nothing!"};
    jp_error err = {0};
    assert_int_equal(verify(s, rfc_cases[0].hex, other, &err), -1);
    assert_error_contains(err, "invalid signature");
    jp_signer_destroy(&s);
}

static void test_sign__rejects_bad_signature(void **state)
{
    (void)state;
    jp_signer *s = signer("hmac-sha256", "Jefe", 0);
    char sig[130];
    snprintf(sig, sizeof sig, "%s", rfc_cases[0].hex);
    sig[10] = sig[10] == '0' ? '1' : '0';
    jp_error err = {0};
    assert_int_equal(verify(s, sig, rfc_parts, &err), -1);
    assert_error_contains(err, "invalid signature");
    /* Right length, not hex: rejected even though the rest matches. */
    snprintf(sig, sizeof sig, "%s", rfc_cases[0].hex);
    sig[0] = 'g';
    memset(&err, 0, sizeof err);
    assert_int_equal(verify(s, sig, rfc_parts, &err), -1);
    assert_error_contains(err, "invalid signature");
    jp_signer_destroy(&s);
}

static void test_sign__rejects_wrong_signature_length(void **state)
{
    (void)state;
    jp_signer *s = signer("hmac-sha256", "Jefe", 0);
    char sig[200];
    /* A sha1 signature for a sha256 session, one char short, one too long. */
    const char *cases[3] = {rfc_cases[1].hex, NULL, NULL};
    char shorter[130], longer[200];
    snprintf(shorter, sizeof shorter, "%.63s", rfc_cases[0].hex);
    snprintf(longer, sizeof longer, "%s0", rfc_cases[0].hex);
    cases[1] = shorter;
    cases[2] = longer;
    for (int i = 0; i < 3; i++) {
        jp_error err = {0};
        snprintf(sig, sizeof sig, "%s", cases[i]);
        assert_int_equal(verify(s, sig, rfc_parts, &err), -1);
        assert_error_contains(err, "bad signature length");
    }
    jp_signer_destroy(&s);
}

static void test_sign__rejects_missing_signature(void **state)
{
    (void)state;
    jp_signer *s = signer("hmac-sha256", "Jefe", 0);
    jp_error err = {0};
    assert_int_equal(verify(s, "", rfc_parts, &err), -1);
    assert_error_contains(err, "unsigned message");
    jp_signer_destroy(&s);
}

static void test_sign__accepts_uppercase_hex_once(void **state)
{
    (void)state;
    jp_signer *s = signer("hmac-sha256", "Jefe", 0);
    char upper[130];
    size_t n = strlen(rfc_cases[0].hex);
    for (size_t i = 0; i <= n; i++) {
        char c = rfc_cases[0].hex[i];
        upper[i] = (char)(c >= 'a' && c <= 'f' ? c - 'a' + 'A' : c);
    }
    jp_error err = {0};
    assert_int_equal(verify(s, upper, rfc_parts, &err), 0);
    /* The same digest in lowercase is the same message: a replay. */
    assert_int_equal(verify(s, rfc_cases[0].hex, rfc_parts, &err), -1);
    assert_error_contains(err, "replayed");
    jp_signer_destroy(&s);
}

static void test_sign__rejects_replayed_signature(void **state)
{
    (void)state;
    jp_signer *s = signer("hmac-sha256", "Jefe", 0);
    jp_error err = {0};
    assert_int_equal(verify(s, rfc_cases[0].hex, rfc_parts, &err), 0);
    assert_int_equal(verify(s, rfc_cases[0].hex, rfc_parts, &err), -1);
    assert_error_contains(err, "duplicate signature");
    jp_signer_destroy(&s);
}

/* Four frames that differ by a counter, and their signature. */
static void numbered(jp_signer *s, unsigned i, char buf[32], const char *parts[4],
                     char sig[130])
{
    snprintf(buf, 32, "{\"n\":%u}", i);
    parts[0] = buf;
    parts[1] = parts[2] = parts[3] = "{}";
    test_sign4(s, parts, sig);
}

static int verify_numbered(jp_signer *s, unsigned i)
{
    char buf[32], sig[130];
    const char *parts[4];
    numbered(s, i, buf, parts, sig);
    return verify(s, sig, parts, NULL);
}

static void test_sign__replay_history_is_bounded(void **state)
{
    (void)state;
    jp_signer *s = signer("hmac-sha256", "k", 3);
    for (unsigned i = 0; i < 4; i++) {
        assert_int_equal(verify_numbered(s, i), 0);
    }
    /* Window 3 holds 1, 2, 3: message 0 was forgotten and is accepted again
     * (it then evicts 1); 2 and 3 are still remembered. */
    assert_int_equal(verify_numbered(s, 0), 0);
    assert_int_equal(verify_numbered(s, 2), -1);
    assert_int_equal(verify_numbered(s, 3), -1);
    assert_int_equal(verify_numbered(s, 0), -1);
    assert_int_equal(verify_numbered(s, 1), 0);
    jp_signer_destroy(&s);
}

static void test_sign__replay_history_stays_exact_after_many_evictions(void **state)
{
    (void)state;
    /* Eviction churns the look-up index; after a hundred thousand messages
     * it must still remember exactly the last `window` signatures. */
    const unsigned window = 64, total = 100000;
    jp_signer *s = signer("hmac-sha1", "k", window);
    for (unsigned i = 0; i < total; i++) {
        assert_int_equal(verify_numbered(s, i), 0);
    }
    for (unsigned i = total - window; i < total; i++) {
        assert_int_equal(verify_numbered(s, i), -1);
    }
    /* Each of these evicts the oldest remembered one; none was remembered. */
    for (unsigned i = total - 2 * window; i < total - window; i++) {
        assert_int_equal(verify_numbered(s, i), 0);
    }
    jp_signer_destroy(&s);
}

static void test_sign__replay_history_grows_to_the_window(void **state)
{
    (void)state;
    /* The ring starts small and doubles; across each doubling and past the
     * window (not a power of two) it remembers exactly what it should. */
    const unsigned window = 1000;
    jp_signer *s = signer("hmac-sha256", "k", window);
    for (unsigned i = 0; i < 700; i++) {
        assert_int_equal(verify_numbered(s, i), 0);
    }
    for (unsigned i = 0; i < 700; i++) {
        assert_int_equal(verify_numbered(s, i), -1);
    }
    for (unsigned i = 700; i < 2500; i++) {
        assert_int_equal(verify_numbered(s, i), 0);
    }
    for (unsigned i = 2500 - window; i < 2500; i++) {
        assert_int_equal(verify_numbered(s, i), -1);
    }
    assert_int_equal(verify_numbered(s, 2500 - window - 1), 0);
    jp_signer_destroy(&s);
}

static void test_sign__empty_key_means_unsigned(void **state)
{
    (void)state;
    jp_error err = {0};
    jp_signer *s = jp_signer_new("hmac-sha256", "", 0, 0, &err);
    assert_non_null(s);
    assert_int_equal(jp_signer_enabled(s), 0);
    assert_int_equal(jp_signer_hex_len(s), 0);
    char sig[130] = "x";
    test_sign4(s, rfc_parts, sig);
    assert_string_equal(sig, "");
    /* Nothing is checked, nothing remembered: as jupyter_client does. */
    assert_int_equal(verify(s, "", rfc_parts, &err), 0);
    assert_int_equal(verify(s, "", rfc_parts, &err), 0);
    assert_int_equal(verify(s, "not even hex", rfc_parts, &err), 0);
    assert_false(err.set);
    jp_signer_destroy(&s);
}

static void test_sign__rejects_unknown_scheme(void **state)
{
    (void)state;
    const char *bad[] = {"hmac-whirlpool", "sha256", "HMAC-SHA256", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        jp_error err = {0};
        assert_null(jp_signer_new(bad[i], "k", 1, 0, &err));
        assert_error_contains(err, "unknown signature_scheme");
        /* Even without a key: a typo must not silently disable signing. */
        memset(&err, 0, sizeof err);
        assert_null(jp_signer_new(bad[i], "", 0, 0, &err));
        assert_error_contains(err, "unknown signature_scheme");
    }
    jp_error err = {0};
    assert_null(jp_signer_new(NULL, "k", 1, 0, &err));
    assert_true(err.set);
}

static void test_sign__sign_refuses_too_small_output(void **state)
{
    (void)state;
    jp_signer *s = signer("hmac-sha512", "k", 0);
    const void *frames[4] = {"a", "b", "c", "d"};
    const size_t lens[4] = {1, 1, 1, 1};
    char out[128];
    assert_int_equal(jp_signer_sign(s, frames, lens, out, sizeof out), -1);
    jp_signer_destroy(&s);
}

static void test_sign__destroy_accepts_null(void **state)
{
    (void)state;
    jp_signer *s = NULL;
    jp_signer_destroy(&s);
    jp_signer_destroy(NULL);
}

struct worker_arg {
    jp_signer *s;  /* shared signer */
    unsigned base; /* first message number of this thread */
    int failures;  /* verifications that failed */
};

static void *verify_range(void *p)
{
    struct worker_arg *a = p;
    for (unsigned i = 0; i < 2000; i++) {
        a->failures += verify_numbered(a->s, a->base + i) != 0;
    }
    return NULL;
}

static void test_sign__verify_is_thread_safe(void **state)
{
    (void)state;
    jp_signer *s = signer("hmac-sha256", "k", 0);
    pthread_t t[4];
    struct worker_arg args[4];
    for (unsigned i = 0; i < 4; i++) {
        args[i] = (struct worker_arg){s, i * 100000, 0};
        assert_int_equal(pthread_create(&t[i], NULL, verify_range, &args[i]), 0);
    }
    for (unsigned i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(args[i].failures, 0);
    }
    for (unsigned i = 0; i < 4; i++) {
        assert_int_equal(verify_numbered(s, i * 100000 + 1999), -1);
    }
    jp_signer_destroy(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign__matches_rfc_vectors_for_every_scheme),
        cmocka_unit_test(test_sign__rejects_signature_of_other_frames),
        cmocka_unit_test(test_sign__rejects_bad_signature),
        cmocka_unit_test(test_sign__rejects_wrong_signature_length),
        cmocka_unit_test(test_sign__rejects_missing_signature),
        cmocka_unit_test(test_sign__accepts_uppercase_hex_once),
        cmocka_unit_test(test_sign__rejects_replayed_signature),
        cmocka_unit_test(test_sign__replay_history_is_bounded),
        cmocka_unit_test(test_sign__replay_history_stays_exact_after_many_evictions),
        cmocka_unit_test(test_sign__replay_history_grows_to_the_window),
        cmocka_unit_test(test_sign__empty_key_means_unsigned),
        cmocka_unit_test(test_sign__rejects_unknown_scheme),
        cmocka_unit_test(test_sign__sign_refuses_too_small_output),
        cmocka_unit_test(test_sign__destroy_accepts_null),
        cmocka_unit_test(test_sign__verify_is_thread_safe),
    };
    return cmocka_run_group_tests_name("sign", tests, NULL, NULL);
}
