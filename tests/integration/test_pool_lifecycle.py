"""Worker processes never outlive what owns them: an Executor's with block,
the kernel's shutdown, restart, SIGTERM or SIGKILL.  And a long map shows
an updating progress display.
"""
import ast
import os
import signal
import time
import warnings

import psutil
import pytest

import harness

pytestmark = pytest.mark.ferry_only("the ferry module exists only in ferry")

T = 120.0  # a bound for a hang, not a measure


def result(k, code):
    return ast.literal_eval(k.execute(code, timeout=T).ok().text)


def start_workers(k, n=2):
    """Starts the shared pool; returns its workers as psutil.Process objects."""
    pids = result(k, f"import ferry, time\nferry.workers({n})\n"
                     f"ferry.map(abs, range({n}), chunksize=1)\n"
                     "from ferry import _pool\n_pool.shared().pids()")
    assert len(pids) == n
    procs = [psutil.Process(p) for p in pids]
    for p in procs:
        assert p.ppid() == k.pid  # the kernel's own children
        # A worker the map did not need may still be between fork and exec
        # (a loaded machine): its command line is then the kernel's.
        deadline = time.monotonic() + T
        while "--worker" not in p.cmdline() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "--worker" in p.cmdline()
    return procs


def assert_gone(procs, timeout=harness.EXIT_TIMEOUT):
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for p in alive:
        p.kill()
    assert not alive, f"workers outlived their kernel: {[p.pid for p in alive]}"


def test_workers_are_in_their_own_process_group(fresh_kernel):
    for p in start_workers(fresh_kernel):
        # A frontend's SIGINT to the kernel's group must not reach idle ones.
        assert os.getpgid(p.pid) != os.getpgid(fresh_kernel.pid)


def test_shutdown_stops_the_workers(fresh_kernel):
    procs = start_workers(fresh_kernel)
    fresh_kernel.stop()
    assert_gone(procs)


def test_shutdown_during_a_map_stops_the_busy_workers(fresh_kernel):
    procs = start_workers(fresh_kernel)
    p = fresh_kernel.submit("print('started', flush=True)\n"
                            "ferry.map(time.sleep, [60] * 4, chunksize=1)")
    p.wait_until_running()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a kernel that had to be killed fails
        fresh_kernel.stop()
    assert_gone(procs)


def test_restart_stops_the_old_workers_and_the_new_kernel_starts_new_ones(fresh_kernel):
    k = fresh_kernel
    procs = start_workers(k)
    k.km.restart_kernel(now=False)
    k.pid = k.km.provisioner.process.pid
    k.kc.wait_for_ready(timeout=harness.STARTUP_TIMEOUT)
    assert_gone(procs)
    new = start_workers(k)
    assert not {p.pid for p in new} & {p.pid for p in procs}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_killing_the_kernel_takes_the_workers_down(fresh_kernel, sig):
    procs = start_workers(fresh_kernel)
    os.kill(fresh_kernel.pid, sig)
    fresh_kernel.wait_exit()
    assert_gone(procs)


def test_killing_the_kernel_mid_task_takes_busy_workers_down(fresh_kernel):
    procs = start_workers(fresh_kernel)
    p = fresh_kernel.submit("print('started', flush=True)\n"
                            "ferry.map(time.sleep, [60, 60], chunksize=1)")
    p.wait_until_running()
    os.kill(fresh_kernel.pid, signal.SIGKILL)
    fresh_kernel.wait_exit()
    assert_gone(procs)


def test_executor_with_block_stops_its_workers(kernel):
    pids = result(kernel, "import ferry\n"
                          "with ferry.Executor(2) as ex:\n"
                          "    ex.submit(abs, 1).result(timeout=15)\n"
                          "    pids = ex._pool.pids()\n"
                          "pids")
    assert len(pids) == 2
    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass
    assert_gone(procs, timeout=60)


def test_executor_shutdown_waits_for_a_map_running_in_another_thread(kernel):
    x = kernel.execute(
        "import ferry, threading, time\n"
        "def slow_double(x):\n    import time\n    time.sleep(0.05)\n    return 2 * x\n"
        "ex = ferry.Executor(2)\nout = {}\nsubmitted = threading.Event()\n"
        "def job():\n"
        "    try:\n        it = ex.map(slow_double, range(20))\n"
        "        submitted.set()\n        out['r'] = list(it)\n"
        "    except BaseException as e:\n        out['r'] = repr(e)\n"
        "        submitted.set()\n"
        "t = threading.Thread(target=job)\nt.start()\nsubmitted.wait(120)\n"
        "ex.shutdown(wait=True)\nt.join(30)\n"
        "(out['r'] == [2 * i for i in range(20)], ex._pool.pids())", timeout=T).ok()
    assert x.text == "(True, [])", x.text


def test_long_map_shows_a_progress_display_that_ends_at_100_percent(kernel):
    x = kernel.execute("import ferry, time\nferry.workers(2)\n"
                       "r = ferry.map(time.sleep, [0.25] * 12, chunksize=1)", timeout=T).ok()
    shown = x.of_type("display_data")
    updates = x.of_type("update_display_data")
    assert len(shown) == 1, x.describe()
    display_id = shown[0]["content"]["transient"]["display_id"]
    assert updates, x.describe()
    assert all(u["content"]["transient"]["display_id"] == display_id for u in updates)
    last = updates[-1]["content"]["data"]["text/plain"]
    assert "12/12" in last and "100%" in last
    assert "text/html" in updates[-1]["content"]["data"]


def test_short_map_shows_no_progress(kernel):
    x = kernel.execute("ferry.map(abs, range(100))", timeout=T).ok()
    assert not x.of_type("display_data") and not x.of_type("update_display_data")


def test_pool_starts_on_first_use(fresh_kernel):
    k = fresh_kernel
    assert result(k, "import ferry\nferry.workers()") >= 1
    # Asking the size starts no worker (the template process, which forks
    # them, may run already: kernel/pool/template.h).
    started = [p for p in harness.process_tree(k.pid)[1:] if "--template" not in p.cmdline()]
    assert started == []
    start_workers(k)
