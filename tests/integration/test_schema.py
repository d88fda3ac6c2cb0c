"""Every message the kernel sends matches the messaging schema
(jupyter_kernel_test's msgspec_v5), for each kind of request."""

import pytest
from jupyter_kernel_test.msgspec_v5 import validate_message

from harness import DISPLAY_PRELUDE

RICH = ("class R:\n"
        "    def _repr_html_(self): return '<p>r</p>'\n"
        "    def _repr_json_(self): return {'r': 1}\n"
        "R()")

SCENARIOS = {
    "kernel_info": lambda k: [k.kernel_info()],
    "execute_streams_and_result": lambda k: [k.execute(
        "import sys\nprint('o')\nprint('e', file=sys.stderr)\n1")],
    "execute_rich_result": lambda k: [k.execute(RICH)],
    "display_update_clear": lambda k: [k.execute(
        DISPLAY_PRELUDE + "display('a', display_id='schema-1')\n"
        "update_display('b', display_id='schema-1')\nclear_output(wait=True)")],
    "error": lambda k: [k.execute("1 / 0", stop_on_error=False)],
    "user_expressions": lambda k: [k.execute(
        "pass", user_expressions={"ok": "1", "bad": "1 / 0"})],
    "input": lambda k: [k.execute("input('p: ')", stdin_handler=lambda c: "v")],
    "complete": lambda k: [k.request("complete_request", {"code": "import o", "cursor_pos": 8})],
    "inspect": lambda k: [k.request("inspect_request",
                                    {"code": "len", "cursor_pos": 3, "detail_level": 0})],
    "is_complete": lambda k: [k.request("is_complete_request", {"code": "for x in y:"})],
    "history": lambda k: [k.request("history_request", {"hist_access_type": "tail", "n": 2,
                                                        "output": False, "raw": True})],
    "comm_info": lambda k: [k.request("comm_info_request", {})],
    "control_kernel_info": lambda k: [k.request("kernel_info_request", channel="control")],
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_messages_match_schema(kernel, scenario):
    checked = 0
    for x in SCENARIOS[scenario](kernel):
        for msg in [x.reply] + x.iopub + x.stdin:
            if msg["msg_type"] == "input_request":
                # msgspec_v5 wants a number; the spec (and every kernel) says bool.
                assert isinstance(msg["content"]["password"], bool)
                msg = dict(msg, content=dict(msg["content"],
                                             password=int(msg["content"]["password"])))
            try:
                validate_message(msg, None, x.msg_id)
            except Exception as e:
                raise AssertionError(f"{msg['msg_type']} breaks the schema: {e}\n{msg}") from None
            checked += 1
    assert checked >= 3
