"""Status: every request is wrapped in busy ... idle on iopub."""

import time

import pytest

# (msg_type, content, channel) — one of each request a kernel must serve.
REQUESTS = [
    ("kernel_info_request", {}, "shell"),
    ("execute_request", {"code": "print('x')", "silent": False, "store_history": True,
                         "user_expressions": {}, "allow_stdin": False,
                         "stop_on_error": True}, "shell"),
    ("complete_request", {"code": "pri", "cursor_pos": 3}, "shell"),
    ("inspect_request", {"code": "print", "cursor_pos": 5, "detail_level": 0}, "shell"),
    ("is_complete_request", {"code": "x = 1"}, "shell"),
    ("history_request", {"hist_access_type": "tail", "n": 1, "output": False,
                         "raw": True}, "shell"),
    ("comm_info_request", {}, "shell"),
    ("kernel_info_request", {}, "control"),
]


@pytest.mark.parametrize("msg_type,content,channel", REQUESTS,
                         ids=[f"{c}-{t}" for t, _, c in REQUESTS])
def test_status_busy_then_idle_around_every_request(kernel, msg_type, content, channel):
    x = kernel.request(msg_type, content, channel=channel, settle=0.3)
    assert x.reply["msg_type"] == msg_type.replace("_request", "_reply")
    assert x.states == ["busy", "idle"], x.describe()
    assert x.iopub[0]["msg_type"] == "status", "busy must come first"
    assert x.iopub[-1]["msg_type"] == "status", "idle must come last"
    assert x.late == [], f"messages after idle: {x.late}"


@pytest.mark.ipykernel_wrong(
    "ipykernel publishes idle before its reply leaves (usually by 0.1 ms, at times by 50)",
    strict=False)
def test_status_idle_follows_reply_and_all_output(kernel):
    code = ("import sys\n"
            "for i in range(50):\n"
            "    print(i)\n"
            "    print(i, file=sys.stderr)\n"
            "'done'")
    x = kernel.execute(code, settle=0.5)
    assert x.late == [], f"messages after idle: {x.late}"
    order = [k for k, t in x.order]
    idle_at = len(order) - 1 - order[::-1].index("iopub")
    assert x.order[idle_at] == ("iopub", "status")
    idle = x.iopub[-1]
    assert idle["content"]["execution_state"] == "idle"
    # Reply and idle travel on different sockets, so the order in which they
    # reach this client says nothing certain (a loaded machine can hold
    # either back for milliseconds).  The kernel's own stamps say which it
    # made first: the reply, or idle (ipykernel's mistake).
    assert x.reply["header"]["date"] <= idle["header"]["date"], x.describe()


def test_status_unknown_request_gets_busy_idle_and_no_reply(kernel):
    p = kernel.send("ferry_no_such_request", {}, expect_reply=False)
    x = p.finish(settle=0.5)
    assert x.states == ["busy", "idle"], x.describe()
    assert x.reply is None, f"unexpected reply {x.reply}"
    assert kernel.execute("6 * 7").ok().text == "42"


@pytest.mark.watchdog(300)
def test_no_iopub_message_is_lost_when_the_client_reads_late(kernel):
    # A client may read iopub late: a burst of requests sent before it
    # reads, or a cell that publishes faster than the client takes.  It must
    # still get every message, above all each request's idle.  ZeroMQ's PUB
    # socket drops what a subscriber has not taken once its high-water mark
    # (1000 messages by default) is full.  Here 3000 messages of 8 KiB
    # (more than the socket buffers hold) wait while the client reads only
    # the shell channel.
    n = 3000
    x = kernel.submit("from IPython.display import display\n"
                      "_pad = 'x' * 8192\n"
                      f"for _i in range({n}):\n"
                      "    display({'text/plain': _pad + str(_i)}, raw=True)\n")
    deadline = time.monotonic() + 120
    while x.x.reply is None and time.monotonic() < deadline:
        kernel._take("shell", 0.1)  # the reply: every display is published
    x.finish(timeout=150)  # times out when the idle was lost
    shown = [m for m in x.x.iopub if m["msg_type"] == "display_data"]
    assert len(shown) == n
    assert x.x.states == ["busy", "idle"]
