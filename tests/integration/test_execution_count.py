"""execution_count, silent, store_history, user_expressions, stop_on_error."""

import pytest


def counts(x):
    """(reply, execute_input, execute_result) execution counts; None if absent."""
    inp = x.of_type("execute_input")
    res = x.of_type("execute_result")
    return (x.execution_count,
            inp[0]["content"]["execution_count"] if inp else None,
            res[0]["content"]["execution_count"] if res else None)


def test_execution_count_increments_by_one_per_execute(kernel):
    a = kernel.execute("1").ok().execution_count
    b = kernel.execute("x = 2").ok().execution_count
    c = kernel.execute("3").ok().execution_count
    assert (b, c) == (a + 1, a + 2)


def test_execution_counts_agree_across_reply_input_and_result(kernel):
    x = kernel.execute("40 + 2").ok()
    r, i, e = counts(x)
    assert r == i == e and isinstance(r, int) and r >= 1


def test_silent_execute_does_not_increment_or_publish(kernel):
    before = kernel.execute("1").ok().execution_count
    x = kernel.execute("print('quiet'); 99", silent=True).ok()
    assert x.of_type("execute_input") == []
    assert x.of_type("execute_result") == []
    assert x.states == ["busy", "idle"]
    assert kernel.execute("2").ok().execution_count == before + 1


def test_store_history_false_does_not_increment(kernel):
    before = kernel.execute("1").ok().execution_count
    kernel.execute("5", store_history=False).ok()
    assert kernel.execute("2").ok().execution_count == before + 1


@pytest.mark.ipykernel_wrong("with store_history=False ipykernel's reply gives the last "
                             "count, execute_input and execute_result the next one")
def test_store_history_false_counts_agree(kernel):
    kernel.execute("1").ok()
    x = kernel.execute("5", store_history=False).ok()
    r, i, e = counts(x)
    assert r == i == e, (r, i, e)


def test_user_expressions_are_evaluated(kernel):
    kernel.execute("ue_value = 20").ok()
    x = kernel.execute("pass", user_expressions={"a": "ue_value + 1", "b": "'s' * 3"}).ok()
    ue = x.content["user_expressions"]
    assert ue["a"]["status"] == "ok"
    assert ue["a"]["data"]["text/plain"] == "21"
    assert isinstance(ue["a"]["metadata"], dict)
    assert ue["b"]["data"]["text/plain"] == "'sss'"


def test_user_expression_errors_are_reported_per_expression(kernel):
    x = kernel.execute("pass", user_expressions={"good": "1 + 1", "bad": "1 / 0"}).ok()
    ue = x.content["user_expressions"]
    assert ue["good"]["status"] == "ok" and ue["good"]["data"]["text/plain"] == "2"
    assert ue["bad"]["status"] == "error"
    assert ue["bad"]["ename"] == "ZeroDivisionError"
    assert "evalue" in ue["bad"] and isinstance(ue["bad"]["traceback"], list)
    assert x.of_type("error") == [], "user_expression errors are not cell errors"


def gated_failure(gate, message):
    """A cell that fails once the test opens GATE (a path)."""
    return ("import os, time\nprint('started', flush=True)\nt0 = time.monotonic()\n"
            f"while not os.path.exists({str(gate)!r}) and time.monotonic() - t0 < 300:\n"
            "    time.sleep(0.02)\n"
            f"raise ValueError({message!r})")


def test_stop_on_error_aborts_queued_requests(kernel, tmp_path):
    # The requests must be queued behind the cell when it fails (a request
    # sent after the error reply runs, see below).  Not a head start of
    # 0.5 s, which a loaded machine can eat: the cell fails only once they
    # were sent and a control round trip on the same client came back after
    # them.
    gate = tmp_path / "gate"
    failing = kernel.submit(gated_failure(gate, "stop"))
    failing.wait_until_running()
    queued = [kernel.submit("aborted_marker = 1"), kernel.submit("'second'")]
    kernel.request("kernel_info_request", channel="control")
    gate.touch()
    assert failing.finish().status == "error"
    for p in queued:
        x = p.finish()
        assert x.status == "aborted", x.describe()
        assert x.of_type("execute_input") == [] and x.outputs == []
    x = kernel.execute("'aborted_marker' in globals()").ok()
    assert x.text == "False"


def test_stop_on_error_false_runs_queued_requests(kernel, tmp_path):
    gate = tmp_path / "gate"
    failing = kernel.submit(gated_failure(gate, "go on"), stop_on_error=False)
    failing.wait_until_running()
    queued = kernel.submit("'ran'")
    kernel.request("kernel_info_request", channel="control")
    gate.touch()
    assert failing.finish().status == "error"
    assert queued.finish().ok().text == "'ran'"


@pytest.mark.ipykernel_wrong("ipykernel keeps aborting for a moment after the error reply",
                             strict=False)
def test_request_sent_after_error_reply_is_not_aborted(kernel):
    assert kernel.execute("raise ValueError('x')").status == "error"
    assert kernel.execute("'runs'").ok().text == "'runs'"
