/* sign.c -- HMAC signatures over the four JSON frames of a message.
 *
 * The signature is HMAC(key, header || parent_header || metadata || content)
 * in lowercase hex, with the digest named by the connection file's
 * signature_scheme ("hmac-" + a hashlib name, as in jupyter_client).
 * Verification checks, in this order: the signature's length, the HMAC in
 * constant time, and that the signature was not seen recently (a replayed
 * message).  Only then does the caller parse JSON.
 */
#include "jp.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#define DEFAULT_REPLAY_WINDOW 65536
/* The history starts this small and doubles up to the window, so that a
 * session that sees few messages (a worker link, a test, a fuzz input) does
 * not pay for 65536 digests up front (3 MB with sha256). */
#define INITIAL_HISTORY 64
#define MAX_DIGEST 64

struct jp_signer {
    const EVP_MD *md;       /* digest; NULL when unsigned */
    EVP_MAC *mac;           /* the HMAC algorithm, fetched once */
    EVP_MAC_CTX *tmpl;      /* keyed context, duplicated per message */
    unsigned char *key;     /* owned copy of the key */
    size_t key_len;         /* bytes in key */
    size_t digest_len;      /* bytes of raw digest */
    pthread_mutex_t lock;   /* guards the replay history */
    unsigned char *history; /* ring of raw digests, cap * digest_len */
    size_t window;          /* how many digests to remember at most */
    size_t cap;             /* ring capacity now (<= window) */
    size_t count;           /* entries in use (<= cap) */
    size_t next;            /* next slot to overwrite */
    /* Linear-probing index over the ring for O(1) look-ups: slot -> ring
     * position + 1, 0 = empty; never more than half full. */
    size_t *index;     /* table of 2 * cap entries */
    size_t index_size; /* number of entries in index */
};

static const struct {
    const char *name;
    const EVP_MD *(*md)(void);
} schemes[] = {
    {"hmac-sha256", EVP_sha256}, {"hmac-sha1", EVP_sha1},     {"hmac-sha224", EVP_sha224},
    {"hmac-sha384", EVP_sha384}, {"hmac-sha512", EVP_sha512}, {"hmac-md5", EVP_md5},
};

static const EVP_MD *md_for_scheme(const char *scheme)
{
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
        if (strcmp(scheme, schemes[i].name) == 0) {
            return schemes[i].md();
        }
    }
    return NULL;
}

static int hmac_frames(const jp_signer *s, const void *const frames[4],
                       const size_t lens[4], unsigned char *out)
{
    /* Duplicating a keyed template skips the key schedule on every message
     * and leaves the template untouched, so threads can share it. */
    int rc = -1;
    size_t out_len = 0;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(s->tmpl);
    if (ctx == NULL) {
        return -1;
    }
    for (int i = 0; i < 4; i++) {
        if (!EVP_MAC_update(ctx, frames[i], lens[i])) {
            goto done;
        }
    }
    if (EVP_MAC_final(ctx, out, &out_len, MAX_DIGEST) && out_len == s->digest_len) {
        rc = 0;
    }
done:
    EVP_MAC_CTX_free(ctx);
    return rc;
}

static int keyed_template(jp_signer *s)
{
    OSSL_PARAM params[2];
    params[0] =
        OSSL_PARAM_construct_utf8_string("digest", (char *)EVP_MD_get0_name(s->md), 0);
    params[1] = OSSL_PARAM_construct_end();
    s->mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    s->tmpl = s->mac ? EVP_MAC_CTX_new(s->mac) : NULL;
    if (s->tmpl == NULL || !EVP_MAC_init(s->tmpl, s->key, s->key_len, params)) {
        return -1;
    }
    return 0;
}

jp_signer *jp_signer_new(const char *scheme, const char *key, size_t key_len,
                         size_t replay_window, jp_error *err)
{
    const EVP_MD *md = md_for_scheme(scheme ? scheme : "");
    if (md == NULL) {
        jp_error_set(err,
                     "unknown signature_scheme '%s' (supported: hmac-sha256, "
                     "hmac-sha1, hmac-sha224, hmac-sha384, hmac-sha512, hmac-md5)",
                     scheme ? scheme : "");
        return NULL;
    }
    jp_signer *s = calloc(1, sizeof *s);
    if (s == NULL) {
        jp_error_set(err, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&s->lock, NULL);
    if (key_len == 0) {
        return s; /* unsigned session: no digest, no history */
    }
    s->md = md;
    s->digest_len = (size_t)EVP_MD_get_size(md);
    s->window = replay_window ? replay_window : DEFAULT_REPLAY_WINDOW;
    s->cap = s->window < INITIAL_HISTORY ? s->window : INITIAL_HISTORY;
    s->index_size = 2 * s->cap;
    s->key = malloc(key_len);
    s->history = malloc(s->cap * s->digest_len);
    s->index = calloc(s->index_size, sizeof *s->index);
    if (s->key == NULL || s->history == NULL || s->index == NULL) {
        jp_signer_destroy(&s);
        jp_error_set(err, "out of memory");
        return NULL;
    }
    memcpy(s->key, key, key_len);
    s->key_len = key_len;
    if (keyed_template(s) < 0) {
        jp_signer_destroy(&s);
        jp_error_set(err, "cannot set up HMAC for %s", scheme);
        return NULL;
    }
    return s;
}

void jp_signer_destroy(jp_signer **sp)
{
    if (sp == NULL || *sp == NULL) {
        return;
    }
    jp_signer *s = *sp;
    if (s->key) {
        OPENSSL_cleanse(s->key, s->key_len);
    }
    EVP_MAC_CTX_free(s->tmpl);
    EVP_MAC_free(s->mac);
    free(s->key);
    free(s->history);
    free(s->index);
    pthread_mutex_destroy(&s->lock);
    free(s);
    *sp = NULL;
}

int jp_signer_enabled(const jp_signer *s)
{
    return s->md != NULL;
}

size_t jp_signer_hex_len(const jp_signer *s)
{
    return 2 * s->digest_len;
}

int jp_signer_sign(const jp_signer *s, const void *const frames[4], const size_t lens[4],
                   char *out, size_t out_size)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char digest[MAX_DIGEST];
    if (s->md == NULL) {
        if (out_size > 0) {
            out[0] = '\0';
        }
        return 0;
    }
    if (out_size < 2 * s->digest_len + 1 || hmac_frames(s, frames, lens, digest) < 0) {
        return -1;
    }
    for (size_t i = 0; i < s->digest_len; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 15];
    }
    out[2 * s->digest_len] = '\0';
    return 0;
}

static int hex_value(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static size_t digest_hash(const unsigned char *d, size_t len)
{
    /* The digest is already uniformly random: its first bytes are a hash. */
    size_t h = 0;
    memcpy(&h, d, len < sizeof h ? len : sizeof h);
    return h;
}

/* The index is a linear-probing table over ring positions.  Deleting by
 * shifting later entries back (instead of leaving tombstones) keeps it at
 * most half full forever: with tombstones, a long-running kernel would fill
 * every empty slot and each look-up would probe the whole table. */
static size_t home_slot(const jp_signer *s, const unsigned char *digest)
{
    return digest_hash(digest, s->digest_len) % s->index_size;
}

static const unsigned char *ring_entry(const jp_signer *s, size_t v)
{
    return s->history + (v - 1) * s->digest_len;
}

static void index_remove(jp_signer *s, size_t pos)
{
    size_t size = s->index_size;
    size_t hole = home_slot(s, s->history + pos * s->digest_len);
    while (s->index[hole] != pos + 1) {
        hole = (hole + 1) % size; /* present: the ring and index agree */
    }
    for (size_t j = (hole + 1) % size; s->index[j] != 0; j = (j + 1) % size) {
        size_t k = home_slot(s, ring_entry(s, s->index[j]));
        /* Move j into the hole unless its home lies cyclically in (hole, j]. */
        int stays = hole <= j ? (hole < k && k <= j) : (hole < k || k <= j);
        if (!stays) {
            s->index[hole] = s->index[j];
            hole = j;
        }
    }
    s->index[hole] = 0;
}

/* Doubles the ring (up to the window) when it is full, keeping its entries
 * oldest first, and rebuilds the index.  On failure nothing changes and the
 * caller keeps evicting at the current size: a smaller history, not a
 * rejected message. */
static int history_grow(jp_signer *s)
{
    size_t dl = s->digest_len;
    size_t cap = s->cap * 2 < s->window ? s->cap * 2 : s->window;
    unsigned char *history = malloc(cap * dl);
    size_t *index = calloc(2 * cap, sizeof *index);
    if (history == NULL || index == NULL) {
        free(history);
        free(index);
        return -1;
    }
    for (size_t i = 0; i < s->count; i++) { /* full ring: oldest at next */
        memcpy(history + i * dl, s->history + ((s->next + i) % s->cap) * dl, dl);
    }
    free(s->history);
    free(s->index);
    s->history = history;
    s->index = index;
    s->cap = cap;
    s->index_size = 2 * cap;
    s->next = s->count;
    for (size_t i = 0; i < s->count; i++) {
        size_t slot = home_slot(s, history + i * dl);
        while (index[slot] != 0) {
            slot = (slot + 1) % s->index_size;
        }
        index[slot] = i + 1;
    }
    return 0;
}

/* Returns 1 when digest was seen (and does nothing), else records it. */
static int history_check_and_add(jp_signer *s, const unsigned char *digest)
{
    size_t slot = home_slot(s, digest);
    for (; s->index[slot] != 0; slot = (slot + 1) % s->index_size) {
        if (memcmp(ring_entry(s, s->index[slot]), digest, s->digest_len) == 0) {
            return 1;
        }
    }
    /* A full ring grows, or else loses its oldest entry.  Either changes
     * the index, so find the free slot again afterwards. */
    if (s->count == s->cap && (s->cap == s->window || history_grow(s) < 0)) {
        index_remove(s, s->next);
        s->count--;
    }
    slot = home_slot(s, digest);
    while (s->index[slot] != 0) {
        slot = (slot + 1) % s->index_size;
    }
    s->count++;
    memcpy(s->history + s->next * s->digest_len, digest, s->digest_len);
    s->index[slot] = s->next + 1;
    s->next = (s->next + 1) % s->cap;
    return 0;
}

int jp_signer_verify(jp_signer *s, const void *sig, size_t sig_len,
                     const void *const frames[4], const size_t lens[4], jp_error *err)
{
    unsigned char want[MAX_DIGEST], got[MAX_DIGEST];
    if (s->md == NULL) {
        return 0; /* unsigned session: anything goes, as in jupyter_client */
    }
    if (sig_len == 0) {
        jp_error_set(err, "unsigned message (a signature is required)");
        return -1;
    }
    if (sig_len != 2 * s->digest_len) {
        jp_error_set(err, "bad signature length %zu (expected %zu)", sig_len,
                     2 * s->digest_len);
        return -1;
    }
    const unsigned char *h = sig;
    int bad = 0;
    for (size_t i = 0; i < s->digest_len; i++) {
        int hi = hex_value(h[2 * i]), lo = hex_value(h[2 * i + 1]);
        bad |= (hi | lo) < 0;
        got[i] = (unsigned char)(((hi & 15) << 4) | (lo & 15));
    }
    if (hmac_frames(s, frames, lens, want) < 0) {
        jp_error_set(err, "HMAC computation failed");
        return -1;
    }
    if (CRYPTO_memcmp(want, got, s->digest_len) != 0 || bad) {
        jp_error_set(err, "invalid signature");
        return -1;
    }
    pthread_mutex_lock(&s->lock);
    int seen = history_check_and_add(s, want);
    pthread_mutex_unlock(&s->lock);
    if (seen) {
        jp_error_set(err, "duplicate signature (replayed message)");
        return -1;
    }
    return 0;
}
