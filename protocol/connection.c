/* connection.c -- Jupyter connection files.
 *
 * A connection file is a JSON object naming how to reach a kernel:
 *   {"transport": "tcp", "ip": "127.0.0.1", "shell_port": 53794,
 *    "iopub_port": 53795, "stdin_port": 53796, "control_port": 53797,
 *    "hb_port": 53798, "key": "a0436f6c-...", "signature_scheme":
 *    "hmac-sha256", "kernel_name": "ferry"}
 * The key signs every message, so the file is private (0600).
 */
#include "jp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>

static const char *const channel_names[JP_NCHANNELS] = {
    "shell", "iopub", "stdin", "control", "hb",
};

const char *jp_channel_name(jp_channel ch)
{
    return ch < JP_NCHANNELS ? channel_names[ch] : "?";
}

void jp_connection_clear(jp_connection *c)
{
    free(c->key);
    memset(c, 0, sizeof *c);
}

static int copy_string_field(json_t *root, const char *name, char *dst, size_t size,
                             int required, jp_error *err)
{
    json_t *v = json_object_get(root, name);
    if (v == NULL) {
        if (required) {
            jp_error_set(err, "connection file: missing field '%s'", name);
            return -1;
        }
        return 0;
    }
    if (!json_is_string(v)) {
        jp_error_set(err, "connection file: '%s' must be a string", name);
        return -1;
    }
    if (json_string_length(v) >= size) {
        jp_error_set(err, "connection file: '%s' is too long", name);
        return -1;
    }
    memcpy(dst, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

static int read_fields(jp_connection *c, json_t *root, jp_error *err)
{
    if (!json_is_object(root)) {
        jp_error_set(err, "connection file: not a JSON object");
        return -1;
    }
    if (copy_string_field(root, "transport", c->transport, sizeof c->transport, 1, err) <
            0 ||
        copy_string_field(root, "ip", c->ip, sizeof c->ip, 1, err) < 0 ||
        copy_string_field(root, "signature_scheme", c->signature_scheme,
                          sizeof c->signature_scheme, 0, err) < 0 ||
        copy_string_field(root, "kernel_name", c->kernel_name, sizeof c->kernel_name, 0,
                          err) < 0) {
        return -1;
    }
    if (strcmp(c->transport, "tcp") != 0 && strcmp(c->transport, "ipc") != 0) {
        jp_error_set(err,
                     "connection file: transport must be \"tcp\" or \"ipc\", not \"%s\"",
                     c->transport);
        return -1;
    }
    if (c->ip[0] == '\0') {
        jp_error_set(err, "connection file: 'ip' is empty");
        return -1;
    }
    if (c->signature_scheme[0] == '\0') {
        strcpy(c->signature_scheme, "hmac-sha256");
    }
    for (int ch = 0; ch < JP_NCHANNELS; ch++) {
        char name[32];
        snprintf(name, sizeof name, "%s_port", channel_names[ch]);
        json_t *v = json_object_get(root, name);
        if (v == NULL) {
            jp_error_set(err, "connection file: missing field '%s'", name);
            return -1;
        }
        if (!json_is_integer(v) || json_integer_value(v) <= 0 ||
            json_integer_value(v) > 65535) {
            jp_error_set(err, "connection file: '%s' must be a port number 1-65535",
                         name);
            return -1;
        }
        c->ports[ch] = (int)json_integer_value(v);
    }
    json_t *key = json_object_get(root, "key");
    if (key == NULL) {
        jp_error_set(err, "connection file: missing field 'key'");
        return -1;
    }
    if (!json_is_string(key)) {
        jp_error_set(err, "connection file: 'key' must be a string");
        return -1;
    }
    c->key = strdup(json_string_value(key));
    if (c->key == NULL) {
        jp_error_set(err, "out of memory");
        return -1;
    }
    /* An unknown scheme must fail here, not at the first message. */
    jp_signer *probe = jp_signer_new(c->signature_scheme, c->key, strlen(c->key), 1, err);
    if (probe == NULL) {
        return -1;
    }
    jp_signer_destroy(&probe);
    return 0;
}

int jp_connection_parse(jp_connection *c, const char *text, size_t len, jp_error *err)
{
    json_error_t jerr;
    memset(c, 0, sizeof *c);
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        jp_error_set(err, "connection file: invalid JSON at line %d: %s", jerr.line,
                     jerr.text);
        return -1;
    }
    int rc = read_fields(c, root, err);
    json_decref(root);
    if (rc < 0) {
        jp_connection_clear(c);
    }
    return rc;
}

int jp_connection_load(jp_connection *c, const char *path, jp_error *err)
{
    memset(c, 0, sizeof *c);
    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
     * writer forever; it changes nothing for the regular files we accept. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        jp_error_set(err, "cannot open connection file %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        jp_error_set(err, "connection file %s is not a regular file", path);
        close(fd);
        return -1;
    }
    /* Anyone who can write the file can redirect the kernel's ports. */
    if (st.st_mode & S_IWOTH) {
        jp_error_set(err,
                     "connection file %s is writable by other users (mode %04o); "
                     "run: chmod 600 %s",
                     path, (unsigned)(st.st_mode & 07777), path);
        close(fd);
        return -1;
    }
    if (st.st_size > 1 << 20) {
        jp_error_set(err, "connection file %s is too large", path);
        close(fd);
        return -1;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    ssize_t got = buf ? 0 : -1;
    while (buf && got < st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)(st.st_size - got));
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            got = -1;
            break;
        }
        got += r;
    }
    close(fd);
    if (got < 0 || got != st.st_size) {
        jp_error_set(err, "cannot read connection file %s", path);
        free(buf);
        return -1;
    }
    int rc = jp_connection_parse(c, buf, (size_t)got, err);
    free(buf);
    if (rc == 0 && c->key[0] != '\0' && (st.st_mode & S_IROTH)) {
        /* A readable key lets any local user run code in the kernel. */
        jp_error_set(err,
                     "connection file %s holds a key but is readable by other "
                     "users (mode %04o); run: chmod 600 %s",
                     path, (unsigned)(st.st_mode & 07777), path);
        jp_connection_clear(c);
        return -1;
    }
    return rc;
}

/* Binds n TCP sockets to ip:0 together so the kernel gets n distinct free
 * ports, then releases them for the kernel to bind. */
static int pick_free_ports(const char *ip, int *ports, int n, jp_error *err)
{
    int fds[JP_NCHANNELS];
    int rc = 0, opened = 0;
    for (; opened < n; opened++) {
        struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
        socklen_t alen = sizeof addr;
        if (inet_pton(AF_INET, ip, &addr.sin_addr) != 1) {
            jp_error_set(err, "not an IPv4 address: %s", ip);
            rc = -1;
            break;
        }
        fds[opened] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fds[opened] < 0 ||
            bind(fds[opened], (struct sockaddr *)&addr, sizeof addr) < 0 ||
            getsockname(fds[opened], (struct sockaddr *)&addr, &alen) < 0) {
            jp_error_set(err, "cannot find a free port on %s: %s", ip, strerror(errno));
            if (fds[opened] >= 0) {
                close(fds[opened]);
            }
            rc = -1;
            break;
        }
        ports[opened] = ntohs(addr.sin_port);
    }
    for (int i = 0; i < opened; i++) {
        close(fds[i]);
    }
    return rc;
}

int jp_connection_init_new(jp_connection *c, const char *ip, const char *kernel_name,
                           jp_error *err)
{
    unsigned char raw[16];
    memset(c, 0, sizeof *c);
    strcpy(c->transport, "tcp");
    snprintf(c->ip, sizeof c->ip, "%s", ip ? ip : "127.0.0.1");
    snprintf(c->kernel_name, sizeof c->kernel_name, "%s", kernel_name ? kernel_name : "");
    strcpy(c->signature_scheme, "hmac-sha256");
    if (RAND_bytes(raw, sizeof raw) != 1) {
        jp_error_set(err, "no randomness for a key");
        return -1;
    }
    c->key = malloc(2 * sizeof raw + 1);
    if (c->key == NULL) {
        jp_error_set(err, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < sizeof raw; i++) {
        snprintf(c->key + 2 * i, 3, "%02x", raw[i]);
    }
    if (pick_free_ports(c->ip, c->ports, JP_NCHANNELS, err) < 0) {
        jp_connection_clear(c);
        return -1;
    }
    return 0;
}

int jp_connection_save(const jp_connection *c, const char *path, jp_error *err)
{
    json_t *root = json_pack("{s:s, s:s, s:s, s:s, s:s}", "transport", c->transport, "ip",
                             c->ip, "key", c->key ? c->key : "", "signature_scheme",
                             c->signature_scheme, "kernel_name", c->kernel_name);
    for (int ch = 0; root && ch < JP_NCHANNELS; ch++) {
        char name[32];
        snprintf(name, sizeof name, "%s_port", channel_names[ch]);
        json_object_set_new(root, name, json_integer(c->ports[ch]));
    }
    char *text = root ? json_dumps(root, JSON_INDENT(1) | JSON_SORT_KEYS) : NULL;
    json_decref(root);
    if (text == NULL) {
        jp_error_set(err, "out of memory");
        return -1;
    }
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 8);
    int rc = -1;
    if (tmp == NULL) {
        jp_error_set(err, "out of memory");
        goto done;
    }
    /* mkstemp makes a new file with mode 0600: a stale temp file of any mode,
     * or a symlink planted at a predictable name, cannot be reused. */
    snprintf(tmp, plen + 8, "%s.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        jp_error_set(err, "cannot write %s: %s", tmp, strerror(errno));
        goto done;
    }
    size_t len = strlen(text);
    ssize_t put = write(fd, text, len);
    if (close(fd) < 0 || put != (ssize_t)len || rename(tmp, path) < 0) {
        jp_error_set(err, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        goto done;
    }
    rc = 0;
done:
    free(tmp);
    free(text);
    return rc;
}

int jp_connection_endpoint(const jp_connection *c, jp_channel ch, char *buf, size_t size)
{
    int n;
    if (strcmp(c->transport, "ipc") == 0) {
        n = snprintf(buf, size, "ipc://%s-%d", c->ip, c->ports[ch]);
    } else {
        n = snprintf(buf, size, "tcp://%s:%d", c->ip, c->ports[ch]);
    }
    return n < 0 || (size_t)n >= size ? -1 : 0;
}
