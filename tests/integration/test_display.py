"""display(), update_display(), clear_output().

ferry has display, update_display and clear_output as built-ins; the prelude
imports them from IPython where they are not (ipykernel), so the same cells
run on both.
"""

from harness import DISPLAY_PRELUDE

HTML_CLASS = ("class Html:\n"
              "    def _repr_html_(self):\n"
              "        return '<i>shown</i>'\n"
              "    def __repr__(self):\n"
              "        return 'Html()'\n")


def test_display_sends_display_data(kernel):
    x = kernel.execute(DISPLAY_PRELUDE + HTML_CLASS + "display(Html())").ok()
    shown = x.of_type("display_data")
    assert len(shown) == 1, x.describe()
    assert shown[0]["content"]["data"] == {"text/plain": "Html()", "text/html": "<i>shown</i>"}
    assert isinstance(shown[0]["content"]["metadata"], dict)
    assert x.result is None


def test_display_of_several_objects_sends_one_message_each(kernel):
    x = kernel.execute(DISPLAY_PRELUDE + "display(1, 'two')").ok()
    assert [m["content"]["data"]["text/plain"] for m in x.of_type("display_data")] == \
        ["1", "'two'"]


def test_display_id_then_update_display_sends_update(kernel):
    x = kernel.execute(DISPLAY_PRELUDE +
                       "display('first', display_id='ferry-d1')\n"
                       "update_display('second', display_id='ferry-d1')").ok()
    assert x.msg_types.count("display_data") == 1
    shown = x.of_type("display_data")[0]["content"]
    assert shown["transient"]["display_id"] == "ferry-d1"
    assert shown["data"]["text/plain"] == "'first'"
    updates = x.of_type("update_display_data")
    assert len(updates) == 1
    assert updates[0]["content"]["transient"]["display_id"] == "ferry-d1"
    assert updates[0]["content"]["data"]["text/plain"] == "'second'"

    # A later cell can update the same display.
    y = kernel.execute(DISPLAY_PRELUDE + "update_display('third', display_id='ferry-d1')").ok()
    (upd,) = y.of_type("update_display_data")
    assert upd["content"]["transient"]["display_id"] == "ferry-d1"
    assert upd["content"]["data"]["text/plain"] == "'third'"


def test_display_id_true_returns_updatable_handle(kernel):
    x = kernel.execute(DISPLAY_PRELUDE +
                       "h = display('v1', display_id=True)\n"
                       "h.update('v2')\n"
                       "h.display_id").ok()
    (shown,) = x.of_type("display_data")
    (upd,) = x.of_type("update_display_data")
    did = shown["content"]["transient"]["display_id"]
    assert did and upd["content"]["transient"]["display_id"] == did
    assert x.text == repr(did)
    assert upd["content"]["data"]["text/plain"] == "'v2'"


def test_clear_output_wait_sends_clear_output(kernel):
    x = kernel.execute(DISPLAY_PRELUDE + "print('old')\nclear_output(wait=True)\nprint('new')"
                       ).ok()
    (clear,) = x.of_type("clear_output")
    assert clear["content"]["wait"] is True
    # 'old' must be published before the clear and 'new' after it, or the
    # frontend clears the wrong thing: buffered streams flush first.
    texts = [m["content"].get("text") if m["msg_type"] == "stream" else m["msg_type"]
             for m in x.merged_outputs()]
    assert texts == ["old\n", "clear_output", "new\n"], texts
    y = kernel.execute(DISPLAY_PRELUDE + "clear_output()").ok()
    (clear,) = y.of_type("clear_output")
    assert clear["content"]["wait"] is False


def test_display_keeps_order_with_prints(kernel):
    x = kernel.execute(DISPLAY_PRELUDE + "print('a')\ndisplay('shown')\nprint('b')").ok()
    seq = [m["content"]["text"] if m["msg_type"] == "stream"
           else m["content"]["data"]["text/plain"] for m in x.merged_outputs()]
    assert seq == ["a\n", "'shown'", "b\n"], seq
