/* error.c -- the caller-owned error record shared by every libjp call. */
#include "jp.h"

#include <stdarg.h>
#include <stdio.h>

void jp_error_set(jp_error *err, const char *fmt, ...)
{
    /* The first error is the one that explains the failure; later ones are
     * usually consequences, so they never overwrite it. */
    if (err == NULL || err->set) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->text, sizeof err->text, fmt, ap);
    va_end(ap);
    err->set = 1;
}
