/* fuzz_connection.c -- libFuzzer harness for jp_connection_parse.
 *
 * The input is the connection file's text.  A file that parses must hold a
 * usable connection: ports in range, a key, a known scheme, endpoints that
 * format; a file that does not must say why.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    jp_connection c;
    jp_error err = {0};
    if (jp_connection_parse(&c, (const char *)data, size, &err) < 0) {
        if (!err.set || c.key != NULL) {
            abort();
        }
        return 0;
    }
    if (c.key == NULL ||
        (strcmp(c.transport, "tcp") != 0 && strcmp(c.transport, "ipc") != 0)) {
        abort();
    }
    for (int ch = 0; ch < JP_NCHANNELS; ch++) {
        char ep[300];
        if (c.ports[ch] < 1 || c.ports[ch] > 65535 ||
            jp_connection_endpoint(&c, (jp_channel)ch, ep, sizeof ep) < 0) {
            abort();
        }
    }
    jp_signer *s = jp_signer_new(c.signature_scheme, c.key, strlen(c.key), 1, NULL);
    if (s == NULL) {
        abort();
    }
    jp_signer_destroy(&s);
    jp_connection_clear(&c);
    return 0;
}
