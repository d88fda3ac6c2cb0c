/* test_connection.c -- loading, validating and writing connection files. */
#include "jp_test.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *const valid_json =
    "{\"transport\": \"tcp\", \"ip\": \"127.0.0.1\", \"shell_port\": 53794,"
    " \"iopub_port\": 53795, \"stdin_port\": 53796, \"control_port\": 53797,"
    " \"hb_port\": 53798, \"key\": \"a0436f6c-1916-498b-8eb9-e81ab9368e84\","
    " \"signature_scheme\": \"hmac-sha512\", \"kernel_name\": \"ferry\"}";

/* A private scratch directory per test, removed (with its files) after. */
static int dir_setup(void **state)
{
    char *dir = strdup("/tmp/jp-test-connection-XXXXXX");
    if (dir == NULL || mkdtemp(dir) == NULL) {
        free(dir);
        return -1;
    }
    *state = dir;
    return 0;
}

static int dir_teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", (char *)*state);
    int rc = system(cmd);
    free(*state);
    return rc == 0 ? 0 : -1;
}

static void path_in(void **state, const char *name, char *buf, size_t size)
{
    snprintf(buf, size, "%s/%s", (const char *)*state, name);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(close(fd), 0);
    assert_int_equal(chmod(path, mode), 0); /* whatever the umask */
}

/* Parses valid_json with one field replaced (value NULL: removed). */
static int parse_with(const char *field, const char *value, jp_error *err)
{
    json_t *root = json_loads(valid_json, 0, NULL);
    assert_non_null(root);
    if (value == NULL) {
        json_object_del(root, field);
    } else {
        json_t *v = json_loads(value, JSON_DECODE_ANY, NULL);
        assert_non_null(v);
        json_object_set_new(root, field, v);
    }
    char *text = json_dumps(root, 0);
    json_decref(root);
    jp_connection c;
    int rc = jp_connection_parse(&c, text, strlen(text), err);
    free(text);
    if (rc == 0) {
        jp_connection_clear(&c);
    }
    return rc;
}

static void test_connection__parses_every_field(void **state)
{
    (void)state;
    jp_connection c;
    jp_error err = {0};
    assert_int_equal(jp_connection_parse(&c, valid_json, strlen(valid_json), &err), 0);
    assert_string_equal(c.transport, "tcp");
    assert_string_equal(c.ip, "127.0.0.1");
    for (int ch = 0; ch < JP_NCHANNELS; ch++) {
        assert_int_equal(c.ports[ch], 53794 + ch);
    }
    assert_string_equal(c.key, "a0436f6c-1916-498b-8eb9-e81ab9368e84");
    assert_string_equal(c.signature_scheme, "hmac-sha512");
    assert_string_equal(c.kernel_name, "ferry");
    char ep[64];
    assert_int_equal(jp_connection_endpoint(&c, JP_CONTROL, ep, sizeof ep), 0);
    assert_string_equal(ep, "tcp://127.0.0.1:53797");
    assert_int_equal(jp_connection_endpoint(&c, JP_CONTROL, ep, 10), -1);
    jp_connection_clear(&c);
    assert_null(c.key);
    jp_connection_clear(&c); /* a cleared connection can be cleared again */
}

static void test_connection__names_channels_as_the_file_does(void **state)
{
    (void)state;
    assert_string_equal(jp_channel_name(JP_SHELL), "shell");
    assert_string_equal(jp_channel_name(JP_IOPUB), "iopub");
    assert_string_equal(jp_channel_name(JP_STDIN), "stdin");
    assert_string_equal(jp_channel_name(JP_CONTROL), "control");
    assert_string_equal(jp_channel_name(JP_HB), "hb");
}

static void test_connection__ipc_endpoint_is_path_dash_port(void **state)
{
    (void)state;
    jp_error err = {0};
    assert_int_equal(parse_with("transport", "\"ipc\"", &err), 0);
    jp_connection c;
    const char *text = "{\"transport\": \"ipc\", \"ip\": \"/run/k\", \"shell_port\": 1,"
                       " \"iopub_port\": 2, \"stdin_port\": 3, \"control_port\": 4,"
                       " \"hb_port\": 5, \"key\": \"\"}";
    assert_int_equal(jp_connection_parse(&c, text, strlen(text), &err), 0);
    char ep[64];
    assert_int_equal(jp_connection_endpoint(&c, JP_HB, ep, sizeof ep), 0);
    assert_string_equal(ep, "ipc:///run/k-5");
    jp_connection_clear(&c);
}

static void test_connection__defaults_scheme_to_hmac_sha256(void **state)
{
    (void)state;
    json_t *root = json_loads(valid_json, 0, NULL);
    json_object_del(root, "signature_scheme");
    json_object_del(root, "kernel_name");
    char *text = json_dumps(root, 0);
    json_decref(root);
    jp_connection c;
    assert_int_equal(jp_connection_parse(&c, text, strlen(text), NULL), 0);
    assert_string_equal(c.signature_scheme, "hmac-sha256");
    assert_string_equal(c.kernel_name, "");
    jp_connection_clear(&c);
    free(text);
}

static void test_connection__rejects_missing_field(void **state)
{
    (void)state;
    const char *required[] = {"transport",  "ip",      "shell_port",   "iopub_port",
                              "stdin_port", "hb_port", "control_port", "key"};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        jp_error err = {0};
        assert_int_equal(parse_with(required[i], NULL, &err), -1);
        assert_error_contains(err, "missing field");
        assert_error_contains(err, required[i]);
    }
}

static void test_connection__rejects_bad_port(void **state)
{
    (void)state;
    const char *bad[] = {"0", "-1", "65536", "\"53794\"", "5379.5", "null", "1e3", "[1]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        jp_error err = {0};
        assert_int_equal(parse_with("hb_port", bad[i], &err), -1);
        assert_error_contains(err, "hb_port");
    }
    assert_int_equal(parse_with("hb_port", "65535", NULL), 0);
    assert_int_equal(parse_with("hb_port", "1", NULL), 0);
}

static void test_connection__rejects_wrong_types_and_values(void **state)
{
    (void)state;
    const struct {
        const char *field, *value, *why;
    } bad[] = {
        {"transport", "\"udp\"", "transport"},
        {"transport", "1", "transport"},
        {"ip", "\"\"", "'ip' is empty"},
        {"ip", "127", "'ip' must be a string"},
        {"key", "null", "'key' must be a string"},
        {"signature_scheme", "\"hmac-whirlpool\"", "unknown signature_scheme"},
        {"signature_scheme", "\"sha256\"", "unknown signature_scheme"},
        {"signature_scheme", "[]", "must be a string"},
        {"kernel_name", "{}", "must be a string"},
        {"transport", "\"tcp-but-much-longer\"", "too long"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        jp_error err = {0};
        assert_int_equal(parse_with(bad[i].field, bad[i].value, &err), -1);
        assert_error_contains(err, bad[i].why);
    }
}

static void test_connection__rejects_text_that_is_not_an_object(void **state)
{
    (void)state;
    const char *bad[] = {"",          "[1, 2]", "{\"ip\": ",
                         "\"tcp\"",   "{} {}",  "{\"ip\": \"a\", \"ip\": \"b\"}",
                         "\xff\xfe{}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        jp_connection c;
        jp_error err = {0};
        assert_int_equal(jp_connection_parse(&c, bad[i], strlen(bad[i]), &err), -1);
        assert_true(err.set);
        assert_null(c.key);
    }
}

static void test_connection__unknown_scheme_fails_at_load(void **state)
{
    char path[256];
    path_in(state, "kernel.json", path, sizeof path);
    char *text = strdup(valid_json);
    char *p = strstr(text, "hmac-sha512");
    memcpy(p, "hmac-shaXYZ", 11);
    write_file(path, text, 0600);
    free(text);
    jp_connection c;
    jp_error err = {0};
    assert_int_equal(jp_connection_load(&c, path, &err), -1);
    assert_error_contains(err, "unknown signature_scheme 'hmac-shaXYZ'");
    assert_null(c.key);
}

static void test_connection__loads_a_private_file(void **state)
{
    char path[256];
    path_in(state, "kernel.json", path, sizeof path);
    write_file(path, valid_json, 0600);
    jp_connection c;
    jp_error err = {0};
    assert_int_equal(jp_connection_load(&c, path, &err), 0);
    assert_int_equal(c.ports[JP_HB], 53798);
    jp_connection_clear(&c);
    /* Group bits are the user's business; only "other" is checked. */
    write_file(path, valid_json, 0640);
    assert_int_equal(jp_connection_load(&c, path, &err), 0);
    jp_connection_clear(&c);
}

static void test_connection__rejects_unreadable_file(void **state)
{
    jp_connection c;
    jp_error err = {0};
    char path[256];
    path_in(state, "does-not-exist.json", path, sizeof path);
    assert_int_equal(jp_connection_load(&c, path, &err), -1);
    assert_error_contains(err, "cannot open");
    assert_error_contains(err, "No such file");
}

static void test_connection__rejects_file_without_read_permission(void **state)
{
    jp_connection c;
    jp_error err = {0};
    char path[256];
    path_in(state, "locked.json", path, sizeof path);
    write_file(path, valid_json, 0000);
    if (geteuid() != 0) {
        assert_int_equal(jp_connection_load(&c, path, &err), -1);
        assert_error_contains(err, "Permission denied");
        return;
    }
    /* Root reads a mode-0000 file anyway: check as "nobody" in a child. */
    assert_int_equal(chmod((const char *)*state, 0711), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (setgid(65534) < 0 || setuid(65534) < 0) {
            _exit(3);
        }
        int rc = jp_connection_load(&c, path, &err);
        _exit(rc == -1 && strstr(err.text, "Permission denied") ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_connection__rejects_what_is_not_a_file(void **state)
{
    jp_connection c;
    jp_error err = {0};
    assert_int_equal(jp_connection_load(&c, (const char *)*state, &err), -1);
    assert_error_contains(err, "not a regular file");
    /* A FIFO must fail at once, not wait for a writer. */
    char path[256];
    path_in(state, "fifo", path, sizeof path);
    assert_int_equal(mkfifo(path, 0600), 0);
    memset(&err, 0, sizeof err);
    assert_int_equal(jp_connection_load(&c, path, &err), -1);
    assert_error_contains(err, "not a regular file");
    memset(&err, 0, sizeof err);
    assert_int_equal(jp_connection_load(&c, "/dev/null", &err), -1);
    assert_error_contains(err, "not a regular file");
}

static void test_connection__rejects_world_writable_file(void **state)
{
    char path[256];
    path_in(state, "kernel.json", path, sizeof path);
    write_file(path, valid_json, 0602);
    jp_connection c;
    jp_error err = {0};
    assert_int_equal(jp_connection_load(&c, path, &err), -1);
    assert_error_contains(err, "writable by other users");
    assert_error_contains(err, "chmod 600");
    assert_null(c.key);
}

static void test_connection__rejects_world_readable_file_with_key(void **state)
{
    char path[256];
    path_in(state, "kernel.json", path, sizeof path);
    write_file(path, valid_json, 0644);
    jp_connection c;
    jp_error err = {0};
    assert_int_equal(jp_connection_load(&c, path, &err), -1);
    assert_error_contains(err, "readable by other users");
    assert_null(c.key);
    /* Without a key there is nothing to protect. */
    const char *keyless =
        "{\"transport\": \"tcp\", \"ip\": \"127.0.0.1\", \"shell_port\": 1,"
        " \"iopub_port\": 2, \"stdin_port\": 3, \"control_port\": 4,"
        " \"hb_port\": 5, \"key\": \"\"}";
    write_file(path, keyless, 0644);
    assert_int_equal(jp_connection_load(&c, path, NULL), 0);
    assert_string_equal(c.key, "");
    jp_connection_clear(&c);
}

static void test_connection__new_file_is_private_and_round_trips(void **state)
{
    char path[256];
    path_in(state, "kernel-new.json", path, sizeof path);
    jp_connection c, back;
    jp_error err = {0};
    assert_int_equal(jp_connection_init_new(&c, "127.0.0.1", "ferry", &err), 0);
    assert_string_equal(c.transport, "tcp");
    assert_string_equal(c.signature_scheme, "hmac-sha256");
    assert_int_equal(strlen(c.key), 32);
    for (int i = 0; i < JP_NCHANNELS; i++) {
        assert_true(c.ports[i] > 0 && c.ports[i] <= 65535);
        for (int j = 0; j < i; j++) {
            assert_int_not_equal(c.ports[i], c.ports[j]);
        }
    }
    mode_t old = umask(0); /* the file must be 0600 even with a lax umask */
    int rc = jp_connection_save(&c, path, &err);
    umask(old);
    assert_int_equal(rc, 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(jp_connection_load(&back, path, &err), 0);
    assert_memory_equal(back.ports, c.ports, sizeof c.ports);
    assert_string_equal(back.key, c.key);
    assert_string_equal(back.ip, c.ip);
    assert_string_equal(back.transport, c.transport);
    assert_string_equal(back.signature_scheme, c.signature_scheme);
    assert_string_equal(back.kernel_name, "ferry");
    jp_connection_clear(&back);
    /* Two new connections never share a key. */
    assert_int_equal(jp_connection_init_new(&back, NULL, NULL, &err), 0);
    assert_string_not_equal(back.key, c.key);
    assert_string_equal(back.ip, "127.0.0.1");
    jp_connection_clear(&back);
    jp_connection_clear(&c);
}

static void test_connection__save_replaces_a_public_file_privately(void **state)
{
    char path[256];
    path_in(state, "kernel.json", path, sizeof path);
    write_file(path, "old", 0644);
    jp_connection c;
    assert_int_equal(jp_connection_init_new(&c, "127.0.0.1", NULL, NULL), 0);
    assert_int_equal(jp_connection_save(&c, path, NULL), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    jp_connection_clear(&c);
    /* Nothing but the file itself is left in the directory. */
    char cmd[512];
    snprintf(cmd, sizeof cmd, "test \"$(ls -A '%s')\" = kernel.json", (char *)*state);
    assert_int_equal(system(cmd), 0);
}

static void test_connection__save_reports_unwritable_directory(void **state)
{
    char path[256];
    path_in(state, "no/such/dir/kernel.json", path, sizeof path);
    jp_connection c;
    assert_int_equal(jp_connection_init_new(&c, "127.0.0.1", NULL, NULL), 0);
    jp_error err = {0};
    assert_int_equal(jp_connection_save(&c, path, &err), -1);
    assert_error_contains(err, "cannot write");
    jp_connection_clear(&c);
}

static void test_connection__init_new_rejects_non_ipv4_address(void **state)
{
    (void)state;
    jp_connection c;
    jp_error err = {0};
    assert_int_equal(jp_connection_init_new(&c, "localhost", NULL, &err), -1);
    assert_error_contains(err, "not an IPv4 address");
    assert_null(c.key);
}

#define DIR_TEST(f) cmocka_unit_test_setup_teardown(f, dir_setup, dir_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connection__parses_every_field),
        cmocka_unit_test(test_connection__names_channels_as_the_file_does),
        cmocka_unit_test(test_connection__ipc_endpoint_is_path_dash_port),
        cmocka_unit_test(test_connection__defaults_scheme_to_hmac_sha256),
        cmocka_unit_test(test_connection__rejects_missing_field),
        cmocka_unit_test(test_connection__rejects_bad_port),
        cmocka_unit_test(test_connection__rejects_wrong_types_and_values),
        cmocka_unit_test(test_connection__rejects_text_that_is_not_an_object),
        DIR_TEST(test_connection__unknown_scheme_fails_at_load),
        DIR_TEST(test_connection__loads_a_private_file),
        DIR_TEST(test_connection__rejects_unreadable_file),
        DIR_TEST(test_connection__rejects_file_without_read_permission),
        DIR_TEST(test_connection__rejects_what_is_not_a_file),
        DIR_TEST(test_connection__rejects_world_writable_file),
        DIR_TEST(test_connection__rejects_world_readable_file_with_key),
        DIR_TEST(test_connection__new_file_is_private_and_round_trips),
        DIR_TEST(test_connection__save_replaces_a_public_file_privately),
        DIR_TEST(test_connection__save_reports_unwritable_directory),
        cmocka_unit_test(test_connection__init_new_rejects_non_ipv4_address),
    };
    return cmocka_run_group_tests_name("connection", tests, NULL, NULL);
}
