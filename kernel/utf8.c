/* utf8.c -- a strict UTF-8 decoder with replacement (RFC 3629).
 *
 * Lead bytes: 0xxxxxxx (1 byte), 110xxxxx (2), 1110xxxx (3), 11110xxx (4);
 * continuation bytes are 10xxxxxx.  Overlong forms, surrogates (U+D800 to
 * U+DFFF) and values above U+10FFFF are invalid, as in Python's decoder. */
#include "utf8.h"

#include <stdint.h>
#include <string.h>

static const char replacement[] = "\xef\xbf\xbd";

/* Length of the sequence starting at lead byte c, or 0 when c cannot start
 * one; *min receives the smallest code point it may encode. */
static size_t sequence_length(unsigned char c, unsigned *min)
{
    if (c < 0x80) {
        *min = 0;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        *min = 0x80;
        return 2;
    }
    if (c >= 0xe0 && c <= 0xef) {
        *min = 0x800;
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        *min = 0x10000;
        return 4;
    }
    return 0;
}

/* Returns how many bytes from src form a valid sequence (its length), 0 when
 * invalid at its first byte, or SIZE_MAX when valid so far but cut off. */
static size_t valid_prefix(const unsigned char *src, size_t avail)
{
    unsigned min;
    size_t n = sequence_length(src[0], &min);
    if (n <= 1) {
        return n;
    }
    unsigned cp = src[0] & (0xff >> (n + 1));
    for (size_t i = 1; i < n; i++) {
        if (i == avail) {
            return SIZE_MAX;
        }
        if ((src[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (src[i] & 0x3f);
        /* Reject overlongs, surrogates and > U+10FFFF as soon as the second
         * byte tells, so "\xed\xa0" is invalid even before a third byte. */
        if (i == 1) {
            unsigned hi = cp << 6 * (unsigned)(n - 2);
            if (hi < (min & ~0x3fu) || (hi >= 0xd800 && hi <= 0xdfff) || hi > 0x10ffff) {
                return 0;
            }
        }
    }
    return cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ? 0 : n;
}

size_t utf8_sanitize(const unsigned char *src, size_t len, int final, char *dst,
                     size_t *dst_len)
{
    size_t i = 0, o = 0;
    while (i < len) {
        size_t n = valid_prefix(src + i, len - i);
        if (n == SIZE_MAX) {
            if (!final) {
                break; /* the rest of the sequence is still on its way */
            }
            n = 0;
        }
        if (n == 0) {
            memcpy(dst + o, replacement, 3);
            o += 3;
            i++;
            continue;
        }
        memcpy(dst + o, src + i, n);
        o += n;
        i += n;
    }
    dst[o] = '\0';
    *dst_len = o;
    return i;
}
