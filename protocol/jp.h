/* jp.h -- libjp, the Jupyter wire protocol in C (no Python inside).
 *
 * Five parts, each with its own file:
 *   connection.c  connection files: load and validate, create new ones.
 *   sign.c        HMAC signing and verification, with replay rejection.
 *   frames.c      frames and frame arrays: freed and sent without copies.
 *   msg.c         the message model: header creation, replies.
 *   wire.c        multipart framing to and from ZeroMQ sockets.
 *
 * Conventions (jansson's and CZMQ's):
 *   - functions return 0 / -1 or pointer / NULL; details land in an optional
 *     caller-owned jp_error (the first error wins);
 *   - S_destroy(S **p) accepts NULL and clears the caller's pointer;
 *   - a json_t * argument named "steal" is owned by the callee afterwards,
 *     even on failure, and may be NULL.
 */
#ifndef JP_H
#define JP_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define JP_PROTOCOL_VERSION "5.3"
#define JP_DELIMITER "<IDS|MSG>"

#if defined(__GNUC__)
#define JP_WUR __attribute__((warn_unused_result))
#define JP_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define JP_WUR
#define JP_PRINTF(f, a)
#endif

/* ---------------------------------------------------------------- errors */

typedef struct jp_error {
    int set;        /* nonzero once an error was recorded */
    char text[240]; /* one line, human readable, no trailing newline */
} jp_error;

/* Records a formatted error in err unless err is NULL or already set. */
void jp_error_set(jp_error *err, const char *fmt, ...) JP_PRINTF(2, 3);

/* ------------------------------------------------------ connection files */

typedef enum jp_channel {
    JP_SHELL = 0,
    JP_IOPUB,
    JP_STDIN,
    JP_CONTROL,
    JP_HB,
    JP_NCHANNELS
} jp_channel;

/* Name of a channel as in the connection file, without "_port" ("shell"). */
const char *jp_channel_name(jp_channel ch);

typedef struct jp_connection {
    char transport[8];         /* "tcp" or "ipc" */
    char ip[256];              /* address, or path prefix for ipc */
    int ports[JP_NCHANNELS];   /* indexed by jp_channel */
    char *key;                 /* HMAC key, owned; "" means unsigned */
    char signature_scheme[32]; /* "hmac-sha256", ... */
    char kernel_name[128];     /* may be empty */
} jp_connection;

/* Loads and validates a connection file.  Every field the spec names is
 * checked; an unknown signature scheme is an error here.  On success the
 * caller owns c and releases it with jp_connection_clear. */
int jp_connection_load(jp_connection *c, const char *path, jp_error *err) JP_WUR;

/* Same, from a JSON text already in memory (used by the fuzzer). */
int jp_connection_parse(jp_connection *c, const char *text, size_t len,
                        jp_error *err) JP_WUR;

/* Fills c with a new tcp connection on ip: five free ports, a random key,
 * hmac-sha256.  Free ports are found by binding port 0; they can in theory be
 * taken before the kernel binds them, as with jupyter_client. */
int jp_connection_init_new(jp_connection *c, const char *ip, const char *kernel_name,
                           jp_error *err) JP_WUR;

/* Writes c to path with mode 0600 (atomically: temp file + rename). */
int jp_connection_save(const jp_connection *c, const char *path, jp_error *err) JP_WUR;

/* Writes "tcp://ip:port" (or "ipc://ip-port") for ch into buf. */
int jp_connection_endpoint(const jp_connection *c, jp_channel ch, char *buf, size_t size);

/* Releases what c owns; c may then be reused.  Accepts a zeroed c. */
void jp_connection_clear(jp_connection *c);

/* -------------------------------------------------- signing and replays */

typedef struct jp_signer jp_signer;

/* Creates a signer for scheme ("hmac-sha256", "hmac-sha1", "hmac-sha224",
 * "hmac-sha384", "hmac-sha512") and key.  An empty key means messages are
 * neither signed nor checked.  replay_window is how many recent signatures
 * are remembered to reject duplicates (0 picks the default).
 * Thread-safe after creation.  Free with jp_signer_destroy. */
jp_signer *jp_signer_new(const char *scheme, const char *key, size_t key_len,
                         size_t replay_window, jp_error *err) JP_WUR;
void jp_signer_destroy(jp_signer **s);

/* 1 when the signer has a key, 0 for unsigned sessions. */
int jp_signer_enabled(const jp_signer *s);

/* Length in hex characters of this signer's signatures (0 when unsigned). */
size_t jp_signer_hex_len(const jp_signer *s);

/* Signs the four JSON frames; writes a NUL-terminated lowercase hex
 * signature into out (size >= 129).  Writes "" when unsigned. */
int jp_signer_sign(const jp_signer *s, const void *const frames[4], const size_t lens[4],
                   char *out, size_t out_size);

/* Checks sig (not NUL-terminated, sig_len bytes) against the four frames:
 * length first, then the HMAC in constant time, then the replay history.
 * Returns 0 when valid, -1 with a reason otherwise. */
int jp_signer_verify(jp_signer *s, const void *sig, size_t sig_len,
                     const void *const frames[4], const size_t lens[4], jp_error *err);

/* --------------------------------------------------------------- frames */

/* A byte buffer that may own its memory through a free function, so that
 * buffers move between ZeroMQ and the application without copies. */
typedef struct jp_frame {
    void *data;                              /* bytes, possibly not owned */
    size_t size;                             /* length of data */
    void (*free_fn)(void *data, void *hint); /* NULL: data not owned */
    void *hint;                              /* second argument to free_fn */
} jp_frame;

/* A frame that copies size bytes of data (malloc'd, freed with free). */
int jp_frame_copy(jp_frame *f, const void *data, size_t size) JP_WUR;
/* Releases the frame's memory if owned and zeroes it. */
void jp_frame_clear(jp_frame *f);

/* An array of frames: the parts of a multipart message, or a task's
 * payload and buffers.  v is malloc'd when libjp hands it out
 * (jp_recv_frames, jp_wire_encode); a jp_frames may also view an array of
 * the caller's (on the stack) for jp_frames_send. */
typedef struct jp_frames {
    jp_frame *v; /* the frames */
    size_t n;    /* how many */
} jp_frames;

/* Clears every frame, frees the array and empties fs.  Accepts NULL and
 * an empty fs. */
void jp_frames_clear(jp_frames *fs);
/* Moves frames [at, n) of fs into a new array *tail; their places in fs
 * are zeroed (fs->n stays).  An empty tail when at >= n.  0, or -1 when out
 * of memory (then nothing moved). */
int jp_frames_split(jp_frames *fs, size_t at, jp_frames *tail) JP_WUR;
/* Sends the frames, in order, as parts of one message on a ZeroMQ socket;
 * with more, the last is not the message's end (ZMQ_SNDMORE).  A large
 * frame that owns its memory goes to ZeroMQ without a copy, the others are
 * copied.  Every frame is cleared, sent or not; the array stays the
 * caller's.  Retries on EINTR; after a failed part the rest are not sent.
 * 0, or -1 with errno set. */
int jp_frames_send(void *socket, jp_frames *fs, int more);

/* -------------------------------------------------------------- message */

typedef struct jp_msg {
    jp_frame *idents;      /* routing identities (ROUTER sockets) */
    size_t n_idents;       /* number of identities */
    json_t *header;        /* object: msg_id, session, username, date, ... */
    json_t *parent_header; /* object, {} when none */
    json_t *metadata;      /* object */
    json_t *content;       /* object */
    jp_frame *buffers;     /* extra binary frames after content */
    size_t n_buffers;      /* number of buffers */
} jp_msg;

/* A session names the sender in every header it creates and holds the
 * signer.  Thread-safe: message ids come from an atomic counter. */
typedef struct jp_session jp_session;

/* Creates a session; takes no ownership of its arguments.  username may be
 * NULL (then $USER or "ferry").  Free with jp_session_destroy. */
jp_session *jp_session_new(const char *scheme, const char *key, size_t key_len,
                           const char *username, jp_error *err) JP_WUR;
jp_session *jp_session_from_connection(const jp_connection *c, const char *username,
                                       jp_error *err) JP_WUR;
void jp_session_destroy(jp_session **s);

/* The session id (a UUID string), valid as long as the session. */
const char *jp_session_id(const jp_session *s);
jp_signer *jp_session_signer(jp_session *s);

/* Creates a message of msg_type with a fresh header (unique msg_id, this
 * session, username, date in ISO-8601 UTC with microseconds and "Z",
 * version 5.3).  content is stolen (NULL means {}).  When parent is not
 * NULL, parent_header is a copy of parent's header and, when
 * copy_idents, parent's routing identities are copied (for replies).
 * Caller frees with jp_msg_destroy. */
jp_msg *jp_msg_new(jp_session *s, const char *msg_type, json_t *steal_content,
                   const jp_msg *parent, int copy_idents) JP_WUR;

/* Shorthands: a reply on the parent's socket (identities copied), and an
 * iopub message under parent (no identities; topic set at send time). */
jp_msg *jp_msg_reply(jp_session *s, const jp_msg *parent, const char *msg_type,
                     json_t *steal_content) JP_WUR;
jp_msg *jp_msg_iopub(jp_session *s, const jp_msg *parent, const char *msg_type,
                     json_t *steal_content) JP_WUR;

void jp_msg_destroy(jp_msg **m);

/* header["msg_type"], or "" when missing. */
const char *jp_msg_type(const jp_msg *m);
/* header["msg_id"], or "". */
const char *jp_msg_id(const jp_msg *m);

/* Appends a buffer frame, taking over *f (zeroed afterwards). */
int jp_msg_add_buffer(jp_msg *m, jp_frame *f) JP_WUR;

/* Writes the current time as "2026-11-25T12:48:18.123456Z" into buf (>= 32). */
void jp_now_iso8601(char *buf, size_t size);

/* ------------------------------------------------------------ the wire */

/* Turns received frames into a message: finds the delimiter, checks the
 * signature (length, then HMAC, then replay), then parses and type-checks
 * the four JSON frames.  Frames are taken over in every case (the array
 * itself stays the caller's, its entries are zeroed).  Returns NULL with a
 * reason in err for any malformed input. */
jp_msg *jp_wire_decode(jp_session *s, jp_frame *frames, size_t n_frames,
                       jp_error *err) JP_WUR;

/* Turns a message into frames (identities, delimiter, signature, four JSON
 * frames, buffers).  The message is taken over and *m set to NULL: its
 * buffers move into the frames without copies.  On success *out is a
 * malloc'd array of *n_out frames that the caller clears and frees. */
int jp_wire_encode(jp_session *s, jp_msg **m, jp_frame **out, size_t *n_out,
                   jp_error *err) JP_WUR;

/* Receives one raw multipart message (any protocol) from a ZeroMQ socket
 * into frames that keep their ZeroMQ messages, so no byte is copied.  flags
 * apply to the first part (0 or ZMQ_DONTWAIT).  Retries on EINTR.  On
 * success *out is a malloc'd array of *n_out frames that the caller clears
 * and frees; on failure (errno set: EAGAIN, ENOMEM, ...) the rest of a
 * half-read message is drained and nothing is returned.  0 or -1. */
int jp_recv_frames(void *socket, int flags, jp_frame **out, size_t *n_out) JP_WUR;
/* The same, but a message of more than max parts fails with EMSGSIZE: the
 * parts past max are drained unread and the rest released. */
int jp_recv_frames_max(void *socket, int flags, size_t max, jp_frame **out,
                       size_t *n_out) JP_WUR;

/* Parts jp_recv takes in one message: identities, delimiter, signature, four
 * JSON frames and the buffers.  An unauthenticated peer cannot make the
 * receiver hold more than this many. */
#define JP_MAX_FRAMES 4096

/* Receives one multipart message from a ZeroMQ socket (void * as in zmq.h)
 * and decodes it.  flags are zmq_recv flags (0 or ZMQ_DONTWAIT).  Retries on
 * EINTR.  Returns NULL with err set on a malformed message (already
 * consumed from the socket) or a socket error (err text says which). */
jp_msg *jp_recv(jp_session *s, void *socket, int flags, jp_error *err) JP_WUR;

/* Encodes and sends *m on socket, taking over the message (set to NULL).
 * For a PUB socket, topic (may be NULL) becomes the first frame when the
 * message has no identities.  Retries on EINTR. */
int jp_send(jp_session *s, void *socket, jp_msg **m, const char *topic, jp_error *err);

#endif /* JP_H */
