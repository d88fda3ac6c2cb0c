"""Interrupts, shutdown, termination, and cells that try to exit."""

import os
import signal
import time

import pytest

SLEEPER = "print('started', flush=True)\nimport time\ntime.sleep(30)\nprint('not interrupted')"


# Cells expected to fail here say stop_on_error=False: the abort of queued
# requests is tested on its own (test_execution_count.py), and ipykernel also
# aborts requests sent just after the error reply.


def assert_keyboard_interrupt(x):
    assert x.status == "error", x.describe()
    assert x.content["ename"] == "KeyboardInterrupt"
    assert len(x.of_type("error")) == 1
    assert "not interrupted" not in x.stdout


def test_interrupt_signal_raises_keyboard_interrupt_in_running_cell(kernel):
    p = kernel.submit(SLEEPER, stop_on_error=False)
    p.wait_until_running()
    kernel.km.interrupt_kernel()  # interrupt_mode "signal": SIGINT
    assert_keyboard_interrupt(p.finish(timeout=10))
    assert kernel.execute("1 + 1").ok().text == "2"


def test_interrupt_while_idle_is_harmless(kernel):
    kernel.km.interrupt_kernel()
    time.sleep(0.5)
    x = kernel.execute("import time\ntime.sleep(0.2)\n'survived'")
    assert x.ok().text == "'survived'"
    assert x.of_type("error") == []


def test_interrupt_request_on_control_interrupts_running_cell(kernel):
    p = kernel.submit(SLEEPER, stop_on_error=False)
    p.wait_until_running()
    r = kernel.send("interrupt_request", {}, channel="control").wait_for_reply()
    assert r.reply["msg_type"] == "interrupt_reply"
    assert_keyboard_interrupt(p.finish(timeout=10))
    assert kernel.execute("1 + 1").ok().text == "2"


@pytest.mark.ipykernel_wrong("ipykernel echoes the request's empty content, no status")
def test_interrupt_reply_has_status_ok(kernel):
    r = kernel.send("interrupt_request", {}, channel="control").wait_for_reply()
    assert r.content.get("status") == "ok", r.content
    time.sleep(0.3)
    assert kernel.execute("1 + 1").ok().text == "2"


def test_interrupt_message_mode_interrupts_running_cell(kernel_factory):
    k = kernel_factory(interrupt_mode="message")
    p = k.submit(SLEEPER, stop_on_error=False)
    p.wait_until_running()
    k.km.interrupt_kernel()  # interrupt_mode "message": interrupt_request on control
    assert_keyboard_interrupt(p.finish(timeout=10))
    assert k.execute("1 + 1").ok().text == "2"


@pytest.mark.parametrize("restart", [False, True])
def test_shutdown_request_echoes_restart_and_exits_cleanly(fresh_kernel, restart):
    k = fresh_kernel
    k.execute("x = 1").ok()
    x = k.send("shutdown_request", {"restart": restart}, channel="control").wait_for_reply()
    assert x.reply["msg_type"] == "shutdown_reply"
    assert x.content["status"] == "ok"
    assert x.content["restart"] is restart
    assert k.wait_exit() == 0


def _all_states(k):
    return [m["content"]["execution_state"] for x in k._buckets.values()
            for m in x.iopub if m["msg_type"] == "status"]


def test_shutdown_restart_publishes_its_reply_and_never_dead(fresh_kernel):
    # Notebook reads a "dead" status as a failed restart and deletes the
    # session; the reply on iopub tells every frontend of the kernel.
    k = fresh_kernel
    k.execute("x = 1").ok()
    p = k.send("shutdown_request", {"restart": True}, channel="control")
    x = p.wait_for(lambda x: x.idle_seen and x.reply is not None, what="reply and idle")
    assert k.wait_exit() == 0
    k.pump(0.5)
    assert x.msg_types == ["status", "shutdown_reply", "status"], x.describe()
    assert x.states == ["busy", "idle"]
    assert x.of_type("shutdown_reply")[0]["content"] == {"status": "ok", "restart": True}
    assert "dead" not in _all_states(k)


def test_restart_through_jupyter_client_keeps_serving(fresh_kernel):
    k = fresh_kernel
    k.execute("x = 41").ok()
    old_pid = k.pid
    k.km.restart_kernel(now=False)  # what Kernel > Restart does
    k.pid = k.km.provisioner.process.pid
    k.kc.wait_for_ready(timeout=30)
    assert k.pid != old_pid
    x = k.execute("'x' in dir()")
    assert x.ok().text == "False"
    assert k.execute("x = 1\nx + 1").ok().text == "2"
    assert "dead" not in _all_states(k)


def test_sigterm_exits_cleanly(fresh_kernel):
    k = fresh_kernel
    k.execute("x = 1").ok()
    os.kill(k.pid, signal.SIGTERM)
    rc = k.wait_exit()
    # Exit 0 from a handler, or death by the re-raised signal: both are clean
    # as long as it went promptly and left nothing behind (checked at teardown).
    assert rc in (0, -signal.SIGTERM), f"exit status {rc}"


def test_sys_exit_in_cell_reports_error_and_kernel_survives(kernel):
    x = kernel.execute("import sys\nsys.exit(3)", stop_on_error=False)
    assert x.status == "error", x.describe()
    assert x.content["ename"] == "SystemExit"
    assert kernel.returncode() is None
    assert kernel.execute("1 + 1").ok().text == "2"


@pytest.mark.ferry_only("ipykernel shuts itself down after exit() (keepkernel False)")
def test_exit_in_cell_asks_frontend_and_kernel_survives(fresh_kernel):
    kernel = fresh_kernel
    x = kernel.execute("exit()", stop_on_error=False)
    if x.status == "ok":
        sources = [p.get("source") for p in x.content.get("payload", [])]
        assert "ask_exit" in sources, x.content
    else:
        assert x.content["ename"] == "SystemExit", x.content
    time.sleep(0.3)
    assert kernel.returncode() is None
    assert kernel.execute("1 + 1").ok().text == "2"


def test_processes_started_by_cells_inherit_no_blocked_signals(kernel):
    # A signal blocked in the kernel would stay blocked in every child, and
    # Popen.terminate() or a Pool's exit could no longer stop them.
    x = kernel.execute(
        "import subprocess\n"
        "out = subprocess.run(['grep', 'SigBlk', '/proc/self/status'],\n"
        "                     capture_output=True, text=True).stdout\n"
        "print(out.split()[1])")
    assert x.stdout.strip() == "0000000000000000"


def test_terminate_stops_a_child_started_by_a_cell(kernel):
    x = kernel.execute(
        "import subprocess, sys\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "p.terminate()\n"
        "print(p.wait(timeout=10))", timeout=30)
    assert x.stdout.strip() == str(-signal.SIGTERM)


@pytest.mark.ferry_only("ipykernel too, but not asserted there")
def test_interrupt_works_when_the_frontend_ignores_sigint(kernel_factory):
    # A frontend started in the background (`jupyter lab &`) passes SIGINT on
    # ignored; the kernel must still turn an interrupt into KeyboardInterrupt.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        k = kernel_factory()
    finally:
        signal.signal(signal.SIGINT, previous)
    p = k.submit(SLEEPER, stop_on_error=False)
    p.wait_until_running()
    k.km.interrupt_kernel()
    assert_keyboard_interrupt(p.finish(timeout=10))
