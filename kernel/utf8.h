/* utf8.h -- turning captured output bytes into valid UTF-8 text. */
#ifndef FERRY_UTF8_H
#define FERRY_UTF8_H

#include <stddef.h>

/* Copies the valid UTF-8 in src[0..len) to dst (capacity >= 3 * len + 1),
 * replacing each invalid byte with U+FFFD, and NUL-terminates it.  A
 * multi-byte sequence cut off at the end is left unconsumed unless final, so
 * that the next read completes it.  Returns the number of bytes of src
 * consumed; *dst_len receives the bytes written to dst. */
size_t utf8_sanitize(const unsigned char *src, size_t len, int final, char *dst,
                     size_t *dst_len);

#endif
