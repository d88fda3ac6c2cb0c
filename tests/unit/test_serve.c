/* test_serve.c -- serving shell and control requests (kernel/serve.c)
 * without Python: a stand-in interpreter behind the server, a real
 * publisher and real ZeroMQ sockets (inproc) around it.  Asserts what a
 * frontend sees: replies, and the order of busy and idle on iopub. */
#include "jp_test.h"

#include <zmq.h>

#include "log.h"
#include "serve.h"

#define WAIT_MS 10000 /* generous: a missing message fails, never hangs */

typedef struct rig {
    void *ctx, *shell, *control, *client, *ctl_client, *sub;
    jp_session *s;
    server sv;
    int executes; /* calls of the interpreter's execute */
    int stops, interrupts;
} rig;

static json_t *fake_call(void *ctx, const char *func, json_t *content, jp_error *err)
{
    (void)err;
    rig *r = ctx;
    if (strcmp(func, "execute") != 0) {
        return json_pack("{s:s}", "status", "ok");
    }
    r->executes++;
    const char *code = json_string_value(json_object_get(content, "code"));
    int fail = code != NULL && strcmp(code, "fail") == 0;
    return json_pack("{s:s, s:i}", "status", fail ? "error" : "ok", "execution_count",
                     r->executes);
}

static void on_stop(void *ctx)
{
    ((rig *)ctx)->stops++;
}

static void on_interrupt(void *ctx)
{
    ((rig *)ctx)->interrupts++;
}

static void *socket_at(rig *r, int type, const char *endpoint, int bind)
{
    void *s = zmq_socket(r->ctx, type);
    assert_non_null(s);
    assert_int_equal(bind ? zmq_bind(s, endpoint) : zmq_connect(s, endpoint), 0);
    return s;
}

static jp_msg *recv_within(rig *r, void *sock)
{
    zmq_pollitem_t item = {.socket = sock, .events = ZMQ_POLLIN};
    assert_int_equal(zmq_poll(&item, 1, WAIT_MS), 1);
    jp_error err = {0};
    jp_msg *m = jp_recv(r->s, sock, 0, &err);
    if (m == NULL) {
        fail_msg("jp_recv: %s", err.text);
    }
    return m;
}

/* Waits until the subscriber gets what the publisher sends (a SUB
 * connects asynchronously), then drains it. */
static void wait_subscribed(rig *r)
{
    for (int i = 0; i < 500; i++) {
        iopub_status(r->sv.io, "starting");
        zmq_pollitem_t item = {.socket = r->sub, .events = ZMQ_POLLIN};
        if (zmq_poll(&item, 1, 20) == 1) {
            break;
        }
    }
    iopub_flush(r->sv.io);
    zmq_pollitem_t item = {.socket = r->sub, .events = ZMQ_POLLIN};
    while (zmq_poll(&item, 1, 50) == 1) {
        jp_msg *m = recv_within(r, r->sub);
        jp_msg_destroy(&m);
    }
}

static int rig_setup(void **state)
{
    static int n;
    char endpoint[64];
    rig *r = calloc(1, sizeof *r);
    jp_error err = {0};
    r->ctx = zmq_ctx_new();
    r->s = jp_session_new("hmac-sha256", "key", 3, "tester", &err);
    assert_non_null(r->s);
    n++;
    snprintf(endpoint, sizeof endpoint, "inproc://serve-iopub-%d", n);
    serve_init(&r->sv);
    r->sv.session = r->s;
    r->sv.io = iopub_new(r->ctx, endpoint, r->s, 0, &err);
    assert_non_null(r->sv.io);
    r->sub = socket_at(r, ZMQ_SUB, endpoint, 0);
    assert_int_equal(zmq_setsockopt(r->sub, ZMQ_SUBSCRIBE, "", 0), 0);
    snprintf(endpoint, sizeof endpoint, "inproc://serve-shell-%d", n);
    r->shell = socket_at(r, ZMQ_ROUTER, endpoint, 1);
    r->client = socket_at(r, ZMQ_DEALER, endpoint, 0);
    snprintf(endpoint, sizeof endpoint, "inproc://serve-control-%d", n);
    r->control = socket_at(r, ZMQ_ROUTER, endpoint, 1);
    r->ctl_client = socket_at(r, ZMQ_DEALER, endpoint, 0);
    r->sv.py = (interp){.ctx = r, .call = fake_call};
    r->sv.kernel_info = json_pack("{s:s, s:s}", "status", "ok", "implementation", "test");
    r->sv.ctx = r;
    r->sv.stop = on_stop;
    r->sv.interrupt = on_interrupt;
    wait_subscribed(r);
    *state = r;
    return 0;
}

static int rig_teardown(void **state)
{
    rig *r = *state;
    iopub_destroy(&r->sv.io);
    json_decref(r->sv.kernel_info);
    serve_destroy(&r->sv);
    void *socks[] = {r->shell, r->control, r->client, r->ctl_client, r->sub};
    for (size_t i = 0; i < 5; i++) {
        zmq_close(socks[i]);
    }
    zmq_ctx_term(r->ctx);
    jp_session_destroy(&r->s);
    free(r);
    return 0;
}

/* Sends a request from sock; its msg_id is copied into id. */
static void send_request(rig *r, void *sock, const char *type, json_t *content, char *id)
{
    jp_msg *m = jp_msg_new(r->s, type, content, NULL, 0);
    assert_non_null(m);
    snprintf(id, 64, "%s", jp_msg_id(m));
    jp_error err = {0};
    assert_int_equal(jp_send(r->s, sock, &m, NULL, &err), 0);
}

static void execute(rig *r, const char *code, char *id)
{
    send_request(r, r->client, "execute_request", json_pack("{s:s}", "code", code), id);
}

/* Serves the next request waiting on the shell. */
static void serve_next_shell(rig *r)
{
    jp_msg *m = recv_within(r, r->shell);
    serve_shell(&r->sv, r->shell, &m);
    assert_null(m);
}

static void serve_next_control(rig *r)
{
    jp_msg *m = recv_within(r, r->control);
    serve_control(&r->sv, r->control, &m);
}

static const char *parent_id(const jp_msg *m)
{
    return json_string_value(json_object_get(m->parent_header, "msg_id"));
}

/* The next status on iopub is state, under the request id. */
static void expect_status(rig *r, const char *state, const char *id)
{
    jp_msg *m = recv_within(r, r->sub);
    while (strcmp(jp_msg_type(m), "status") != 0) {
        jp_msg_destroy(&m);
        m = recv_within(r, r->sub);
    }
    assert_string_equal(json_string_value(json_object_get(m->content, "execution_state")),
                        state);
    assert_string_equal(parent_id(m), id);
    jp_msg_destroy(&m);
}

/* The next reply on sock is of type under id, with status (or NULL). */
static void expect_reply(rig *r, void *sock, const char *type, const char *id,
                         const char *status)
{
    jp_msg *m = recv_within(r, sock);
    assert_string_equal(jp_msg_type(m), type);
    assert_string_equal(parent_id(m), id);
    if (status) {
        assert_string_equal(json_string_value(json_object_get(m->content, "status")),
                            status);
    }
    jp_msg_destroy(&m);
}

/* ---------------------------------------------------------------- tests */

static void test_serve__a_shell_request_is_wrapped_in_busy_and_idle(void **state)
{
    rig *r = *state;
    char id[64];
    send_request(r, r->client, "kernel_info_request", NULL, id);
    serve_next_shell(r);
    expect_reply(r, r->client, "kernel_info_reply", id, "ok");
    expect_status(r, "busy", id);
    expect_status(r, "idle", id);
    assert_int_equal(atomic_load(&r->sv.busy), 0);
}

/* A failed cell: the execute requests queued behind it are answered
 * "aborted" (busy and idle under their own header) before the failed
 * cell's idle, without reaching the interpreter; other requests are
 * answered after that idle, in order. */
static void
test_serve__requests_behind_a_failed_cell_are_aborted_before_its_idle(void **state)
{
    rig *r = *state;
    char failed[64], second[64], info[64], fourth[64];
    execute(r, "fail", failed);
    execute(r, "1", second);
    send_request(r, r->client, "kernel_info_request", NULL, info);
    execute(r, "2", fourth);
    serve_next_shell(r);
    assert_int_equal(r->executes, 1);
    expect_reply(r, r->client, "execute_reply", failed, "error");
    expect_reply(r, r->client, "execute_reply", second, "aborted");
    expect_reply(r, r->client, "execute_reply", fourth, "aborted");
    expect_reply(r, r->client, "kernel_info_reply", info, "ok");
    expect_status(r, "busy", failed);
    expect_status(r, "busy", second);
    expect_status(r, "idle", second);
    expect_status(r, "busy", fourth);
    expect_status(r, "idle", fourth);
    expect_status(r, "idle", failed);
    expect_status(r, "busy", info);
    expect_status(r, "idle", info);
}

/* stop_on_error false: the next cell runs. */
static void test_serve__stop_on_error_false_aborts_nothing(void **state)
{
    rig *r = *state;
    char failed[64], next[64];
    send_request(r, r->client, "execute_request",
                 json_pack("{s:s, s:b}", "code", "fail", "stop_on_error", 0), failed);
    execute(r, "1", next);
    serve_next_shell(r);
    serve_next_shell(r);
    assert_int_equal(r->executes, 2);
    expect_reply(r, r->client, "execute_reply", failed, "error");
    expect_reply(r, r->client, "execute_reply", next, "ok");
}

/* One table: kernel_info and shutdown are the same handlers on both
 * channels; interrupt is control's only.  Control's status goes under its
 * own request. */
static void test_serve__one_table_serves_shell_and_control(void **state)
{
    rig *r = *state;
    char id[64];
    send_request(r, r->ctl_client, "kernel_info_request", NULL, id);
    serve_next_control(r);
    expect_reply(r, r->ctl_client, "kernel_info_reply", id, "ok");
    expect_status(r, "busy", id);
    expect_status(r, "idle", id);
    send_request(r, r->ctl_client, "shutdown_request", NULL, id);
    serve_next_control(r);
    expect_reply(r, r->ctl_client, "shutdown_reply", id, "ok");
    send_request(r, r->client, "shutdown_request", NULL, id);
    serve_next_shell(r);
    expect_reply(r, r->client, "shutdown_reply", id, "ok");
    assert_int_equal(r->stops, 2);
    /* Not busy: an interrupt has nothing to interrupt, and is answered. */
    send_request(r, r->ctl_client, "interrupt_request", NULL, id);
    serve_next_control(r);
    expect_reply(r, r->ctl_client, "interrupt_reply", id, "ok");
    assert_int_equal(r->interrupts, 0);
    atomic_store(&r->sv.busy, 1);
    send_request(r, r->ctl_client, "interrupt_request", NULL, id);
    serve_next_control(r);
    expect_reply(r, r->ctl_client, "interrupt_reply", id, "ok");
    assert_int_equal(r->interrupts, 1);
    atomic_store(&r->sv.busy, 0);
}

int main(void)
{
    log_init(2, LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_serve__a_shell_request_is_wrapped_in_busy_and_idle, rig_setup,
            rig_teardown),
        cmocka_unit_test_setup_teardown(
            test_serve__requests_behind_a_failed_cell_are_aborted_before_its_idle,
            rig_setup, rig_teardown),
        cmocka_unit_test_setup_teardown(test_serve__stop_on_error_false_aborts_nothing,
                                        rig_setup, rig_teardown),
        cmocka_unit_test_setup_teardown(test_serve__one_table_serves_shell_and_control,
                                        rig_setup, rig_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
