/* frames.c -- frames and frame arrays: owned or borrowed bytes, freed
 * and sent without copies. */
#include "jp.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

/* Frames copied into ZeroMQ rather than handed over: cheaper when small. */
#define SMALL_FRAME 256

static void free_malloced(void *data, void *hint)
{
    (void)hint;
    free(data);
}

int jp_frame_copy(jp_frame *f, const void *data, size_t size)
{
    memset(f, 0, sizeof *f);
    f->data = malloc(size ? size : 1);
    if (f->data == NULL) {
        return -1;
    }
    if (size) {
        memcpy(f->data, data, size);
    }
    f->size = size;
    f->free_fn = free_malloced;
    return 0;
}

void jp_frame_clear(jp_frame *f)
{
    if (f->free_fn) {
        f->free_fn(f->data, f->hint);
    }
    memset(f, 0, sizeof *f);
}

void jp_frames_clear(jp_frames *fs)
{
    if (fs == NULL) {
        return;
    }
    for (size_t i = 0; i < fs->n; i++) {
        jp_frame_clear(&fs->v[i]);
    }
    free(fs->v);
    fs->v = NULL;
    fs->n = 0;
}

int jp_frames_split(jp_frames *fs, size_t at, jp_frames *tail)
{
    *tail = (jp_frames){0};
    if (at >= fs->n) {
        return 0;
    }
    size_t k = fs->n - at;
    tail->v = malloc(k * sizeof *tail->v);
    if (tail->v == NULL) {
        return -1;
    }
    memcpy(tail->v, fs->v + at, k * sizeof *tail->v);
    memset(fs->v + at, 0, k * sizeof *tail->v);
    tail->n = k;
    return 0;
}

static int send_copy(void *socket, jp_frame *f, int flags)
{
    int rc;
    do {
        rc = zmq_send(socket, f->data, f->size, flags);
    } while (rc < 0 && errno == EINTR);
    jp_frame_clear(f);
    return rc < 0 ? -1 : 0;
}

/* Sends f, handing its memory to ZeroMQ when it owns it and is large; f is
 * cleared either way.  When the hand-over cannot be set up the bytes are
 * copied instead: giving up would leave the parts already sent as the start
 * of a message that the next send would silently complete. */
static int send_frame(void *socket, jp_frame *f, int flags)
{
    if (f->free_fn == NULL || f->size <= SMALL_FRAME) {
        return send_copy(socket, f, flags);
    }
    zmq_msg_t zm;
    if (zmq_msg_init_data(&zm, f->data, f->size, f->free_fn, f->hint) < 0) {
        return send_copy(socket, f, flags);
    }
    memset(f, 0, sizeof *f); /* ZeroMQ frees it once sent */
    int rc;
    do {
        rc = zmq_msg_send(&zm, socket, flags);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0) {
        int saved = errno;
        zmq_msg_close(&zm);
        errno = saved;
        return -1;
    }
    return 0;
}

int jp_frames_send(void *socket, jp_frames *fs, int more)
{
    int rc = 0;
    for (size_t i = 0; i < fs->n; i++) {
        int flags = i + 1 < fs->n || more ? ZMQ_SNDMORE : 0;
        /* After a failed part, the rest are still released. */
        if (rc == 0 && send_frame(socket, &fs->v[i], flags) < 0) {
            rc = -1;
        }
        jp_frame_clear(&fs->v[i]);
    }
    return rc;
}
