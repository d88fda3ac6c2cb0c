"""Comms and widgets over the protocol, as a frontend's widget manager
exchanges them: both directions, comm_info, buffers, parents, and
Debian's ipywidgets (6.0) with its IntSlider, interact and Output."""

import importlib.util
import uuid

import pytest

needs_comm = pytest.mark.skipif(importlib.util.find_spec("comm") is None,
                                reason="the comm package is not installed")
needs_widgets = pytest.mark.skipif(importlib.util.find_spec("ipywidgets") is None,
                                   reason="ipywidgets is not installed")

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def send_comm(k, msg_type, content, buffers=None):
    """Sends a comm message on shell as a frontend does; returns the
    Exchange of what it caused (comm messages have no reply)."""
    msg = k.kc.session.msg(msg_type, content)
    if buffers:
        msg["buffers"] = buffers
    k.kc.shell_channel.send(msg)
    msg_id = msg["header"]["msg_id"]
    from harness import Exchange, Pending
    x = k._buckets.setdefault(msg_id, Exchange(msg_id, msg_type))
    return Pending(k, x, False, None).finish()


def comms_of(x, msg_type):
    return [m["content"] for m in x.of_type(msg_type)]


def comm_info(k, target=None):
    content = {} if target is None else {"target_name": target}
    return k.request("comm_info_request", content).content


@pytest.fixture
def k(kernel):
    return kernel


@needs_comm
@pytest.mark.ferry_only("ipykernel 6.17 does not install the comm package's create_comm")
def test_comm_opened_by_the_kernel_reaches_the_frontend_and_is_listed(k):
    x = k.execute("import comm\n"
                  "c = comm.create_comm(target_name='ferry.test', data={'a': 1},\n"
                  "                     metadata={'m': 2})\n"
                  "c.send({'b': 2}, buffers=[b'xyz'])").ok()
    [opened] = comms_of(x, "comm_open")
    assert opened["target_name"] == "ferry.test"
    assert opened["data"] == {"a": 1}
    assert x.of_type("comm_open")[0]["metadata"] == {"m": 2}
    [sent] = x.of_type("comm_msg")
    assert sent["content"] == {"comm_id": opened["comm_id"], "data": {"b": 2}}
    assert [bytes(b) for b in sent["buffers"]] == [b"xyz"]
    info = comm_info(k)
    assert info["status"] == "ok"
    assert info["comms"][opened["comm_id"]] == {"target_name": "ferry.test"}
    assert opened["comm_id"] not in comm_info(k, "another.target")["comms"]
    assert opened["comm_id"] in comm_info(k, "ferry.test")["comms"]
    x = k.execute("c.close({'bye': 1})").ok()
    assert comms_of(x, "comm_close") == [{"comm_id": opened["comm_id"], "data": {"bye": 1}}]
    assert opened["comm_id"] not in comm_info(k)["comms"]


ECHO_TARGET = """
import comm
opened, closed = [], []
def on_open(c, msg):
    opened.append(msg['content']['data'])
    def on_msg(msg):
        c.send({'echo': msg['content']['data'],
                'buffers': [bytes(b).decode() for b in msg['buffers']]})
        print('callback ran')
    c.on_msg(on_msg)
    c.on_close(lambda msg: closed.append(msg['content']['data']))
comm.get_comm_manager().register_target('ferry.echo', on_open)
"""


@needs_comm
@pytest.mark.ferry_only("ipykernel 6.17 does not install the comm package's get_comm_manager")
def test_comm_opened_by_the_frontend_reaches_its_target_and_answers_under_its_message(k):
    k.execute(ECHO_TARGET).ok()
    comm_id = uuid.uuid4().hex
    send_comm(k, "comm_open", {"comm_id": comm_id, "target_name": "ferry.echo",
                               "data": {"hello": 1}})
    assert k.execute("opened").ok().text == "[{'hello': 1}]"
    assert comm_info(k, "ferry.echo")["comms"] == {comm_id: {"target_name": "ferry.echo"}}
    x = send_comm(k, "comm_msg", {"comm_id": comm_id, "data": {"n": 5}}, buffers=[b"abc"])
    # What the callback publishes carries the comm_msg it answers as parent.
    assert comms_of(x, "comm_msg") == [{"comm_id": comm_id,
                                        "data": {"echo": {"n": 5}, "buffers": ["abc"]}}]
    assert x.stdout == "callback ran\n"
    assert x.states == ["busy", "idle"]
    send_comm(k, "comm_close", {"comm_id": comm_id, "data": {"why": "done"}})
    assert k.execute("closed").ok().text == "[{'why': 'done'}]"
    assert comm_info(k)["comms"] == {}


def test_comm_open_for_an_unknown_target_is_closed(k):
    comm_id = uuid.uuid4().hex
    x = send_comm(k, "comm_open", {"comm_id": comm_id, "target_name": "no.such.target",
                                   "data": {}})
    assert [c["comm_id"] for c in comms_of(x, "comm_close")] == [comm_id]
    assert comm_id not in comm_info(k)["comms"]
    assert k.execute("1 + 1").ok().text == "2"


@needs_comm
@pytest.mark.ferry_only("ipykernel 6.17 does not install the comm package's get_comm_manager")
def test_a_failing_target_closes_the_comm_and_the_kernel_keeps_serving(k):
    k.execute("import comm\n"
              "def broken(c, msg):\n"
              "    raise ValueError('target broke')\n"
              "comm.get_comm_manager().register_target('ferry.broken', broken)").ok()
    comm_id = uuid.uuid4().hex
    x = send_comm(k, "comm_open", {"comm_id": comm_id, "target_name": "ferry.broken",
                                   "data": {}})
    assert [c["comm_id"] for c in comms_of(x, "comm_close")] == [comm_id]
    assert x.of_type("error") == [] and "target broke" not in x.stderr
    assert "target broke" in k.log_tail()  # in the kernel's log, not a cell
    assert k.execute("1 + 1").ok().text == "2"


# ----------------------------------------------------------------- widgets


@pytest.fixture
def w(kernel):
    kernel.execute("import ipywidgets\nfrom ipywidgets import IntSlider, Output, interact\n"
                   "from IPython.display import display", timeout=60).ok()
    return kernel


def widget_opened(x, model):
    found = [c for c in comms_of(x, "comm_open") if c["data"].get("_model_name") == model]
    assert len(found) == 1, x.describe()
    assert found[0]["target_name"] == "jupyter.widget"
    return found[0]["comm_id"]


@needs_widgets
def test_slider_is_created_shown_and_synced_both_ways(w):
    x = w.execute("s = IntSlider(value=3, min=0, max=10)\ndisplay(s)").ok()
    comm_id = widget_opened(x, "IntSliderModel")
    # ipywidgets 6 shows a view by a "display" comm message: under the
    # execute request, so the page finds the cell to show it in.
    displays = [c for c in comms_of(x, "comm_msg") if c["data"] == {"method": "display"}]
    assert [c["comm_id"] for c in displays] == [comm_id]
    [shown] = x.of_type("display_data")
    assert shown["content"]["data"][WIDGET_VIEW] == {"model_id": comm_id}
    assert "text/plain" not in shown["content"]["data"]  # no repr instead
    # The kernel moves it: an update message with the new value.
    x = w.execute("s.value = 7").ok()
    updates = [c["data"] for c in comms_of(x, "comm_msg") if c["comm_id"] == comm_id]
    assert {"method": "update", "state": {"value": 7}, "buffers": []} in updates
    # The page moves it: the kernel sees the new value.
    send_comm(w, "comm_msg", {"comm_id": comm_id,
                              "data": {"method": "backbone", "sync_data": {"value": 9}}})
    assert w.execute("s.value").ok().text == "9"
    assert comm_id in comm_info(w, "jupyter.widget")["comms"]


@needs_widgets
def test_interact_calls_the_function_on_changes_with_output_in_its_widget(w):
    x = w.execute("def f(x):\n    print('x is', x)\nui = interact(f, x=(0, 10))").ok()
    slider = widget_opened(x, "IntSliderModel")
    output = widget_opened(x, "OutputModel")
    assert "x is 5" in x.stdout  # the first call, at display
    x = send_comm(w, "comm_msg", {"comm_id": slider,
                                  "data": {"method": "backbone", "sync_data": {"value": 8}}})
    assert x.stdout == "x is 8\n"
    # While f runs, the Output widget names the message its output is under.
    states = [c["data"]["state"] for c in comms_of(x, "comm_msg")
              if c["comm_id"] == output and c["data"].get("method") == "update"]
    assert {"msg_id": x.msg_id} in states


@needs_widgets
def test_output_widget_captures_prints_under_the_cell(w):
    x = w.execute("out = Output()\ndisplay(out)\nwith out:\n    print('captured')").ok()
    output = widget_opened(x, "OutputModel")
    states = [c["data"]["state"] for c in comms_of(x, "comm_msg")
              if c["comm_id"] == output and c["data"].get("method") == "update"]
    assert states[:2] == [{"msg_id": x.msg_id}, {"msg_id": ""}]
    assert x.stdout == "captured\n"


@needs_widgets
@pytest.mark.ferry_only("ipykernel answers the version check only once ipywidgets is imported")
def test_widget_version_check_is_answered_before_ipywidgets_is_imported(fresh_kernel):
    k = fresh_kernel
    comm_id = uuid.uuid4().hex
    x = send_comm(k, "comm_open", {"comm_id": comm_id,
                                   "target_name": "jupyter.widget.version", "data": {}})
    [asked] = comms_of(x, "comm_msg")
    assert asked["comm_id"] == comm_id and "version" in asked["data"]
    send_comm(k, "comm_msg", {"comm_id": comm_id,
                              "data": {"validated": True, "frontend_version": "2.1.4"}})
    assert k.execute("'ipywidgets' in __import__('sys').modules").ok().text == "False"
    x = k.execute("from ipywidgets import IntSlider\n"
                  "from IPython.display import display\n"
                  "display(IntSlider())", timeout=60).ok()
    assert "Widget Javascript not detected" not in x.stderr
