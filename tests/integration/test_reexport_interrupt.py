"""Interrupts and shutdown with standard pools alive.

jupyter_client interrupts a kernel with SIGINT to its whole process group,
and interrupts it again before every shutdown request.  A stdlib pool worker
killed by that SIGINT while it holds its pool's task-queue lock leaves the
pool - and the kernel's exit, which finalises the pool - waiting on that lock
forever.  The interrupt is meant for the cell: pool workers started from the
kernel ignore it, and the cell's KeyboardInterrupt ends the pool if the cell
wants it ended (`with Pool(...)`).
"""

import time

import pytest

import harness

pytestmark = pytest.mark.skipif(harness.is_ipykernel(),
                                reason="ipykernel's pool workers die on interrupts")

METHODS = ["spawn", "forkserver", "fork"]
TIMEOUT = 30

SETUP = ("import multiprocessing as mp, concurrent.futures as cf, os, time\n"
         "ctx = mp.get_context({method!r})\n"
         "T = 20\n"
         "def slow(x):\n"
         "    time.sleep(x)\n"
         "    return x\n"
         "def pid(_):\n"
         "    time.sleep(0.05)\n"
         "    return os.getpid()\n"
         "def gated(gate):\n"  # ends when the test opens the gate, not by the clock
         "    end = time.monotonic() + 300\n"
         "    while not os.path.exists(gate) and time.monotonic() < end:\n"
         "        time.sleep(0.02)\n"
         "    return os.path.exists(gate)\n")


def interrupt_running(kernel, code):
    """Start CODE, interrupt it once it printed 'started', return its Exchange.
    (stop_on_error=False: the next request may reach the kernel while it
    still aborts what was queued behind the failed cell.)"""
    p = kernel.submit(code, stop_on_error=False)
    p.wait_for_stdout("started", timeout=TIMEOUT)
    time.sleep(0.3)  # let the pool's workers get back to waiting for tasks
    kernel.km.interrupt_kernel()
    return p.finish(timeout=TIMEOUT)


@pytest.mark.parametrize("method", METHODS)
def test_pool_survives_an_interrupt_of_another_cell(kernel, method):
    kernel.execute(SETUP.format(method=method) +
                   "pool = ctx.Pool(2)\n"
                   "ex = cf.ProcessPoolExecutor(2, mp_context=ctx)\n"
                   "before = set(pool.map(pid, range(8), chunksize=1))\n"
                   "ex_before = set(ex.map(pid, range(8)))", timeout=TIMEOUT).ok()
    try:
        x = interrupt_running(kernel, "print('started', flush=True)\ntime.sleep(20)")
        assert x.content.get("ename") == "KeyboardInterrupt", (x.content.get("status"), x.describe())
        assert "KeyboardInterrupt" not in x.stderr, f"workers died: {x.stderr}"
        got = kernel.execute("after = set(pool.map(pid, range(8), chunksize=1))\n"
                             "ex_after = set(ex.map(pid, range(8), timeout=T))\n"
                             "after == before, ex_after == ex_before, sorted(pool.map(slow, [0, 0]))",
                             timeout=TIMEOUT).ok()
        assert got.text == "(True, True, [0, 0])", "the workers were replaced"
    finally:
        kernel.execute("pool.terminate(); pool.join(); ex.shutdown()", timeout=TIMEOUT)


@pytest.mark.parametrize("method", METHODS)
def test_interrupting_a_pool_map_ends_the_cell_and_keeps_the_pool(kernel, method, tmp_path):
    kernel.execute(SETUP.format(method=method) + "pool = ctx.Pool(2)\npool.map(slow, [0, 0])",
                   timeout=TIMEOUT).ok()
    gate = tmp_path / "gate"
    try:
        # No task of the map can end before the gate opens, so a reply to
        # the interrupted cell proves it did not wait for the map, however
        # slow the machine.
        x = interrupt_running(kernel, "print('started', flush=True)\n"
                                      f"pool.map(gated, [{str(gate)!r}] * 6, chunksize=1)")
        assert x.content.get("ename") == "KeyboardInterrupt", (x.content.get("status"), x.describe())
        gate.touch()  # the map's tasks end; the pool must still take new ones
        got = kernel.execute("pool.map(slow, [0, 0, 0])", timeout=TIMEOUT).ok()
        assert got.text == "[0, 0, 0]"
    finally:
        gate.touch()
        kernel.execute("pool.terminate(); pool.join()", timeout=TIMEOUT)


@pytest.mark.parametrize("method", METHODS)
def test_interrupting_a_with_pool_block_stops_its_workers(kernel, method):
    kernel.execute(SETUP.format(method=method), timeout=TIMEOUT).ok()
    # terminate() stops busy workers; it does not wait for their tasks, which
    # would take 10 minutes: a with block that waited gets no reply in TIMEOUT.
    x = interrupt_running(kernel, "print('started', flush=True)\n"
                                  "with ctx.Pool(2) as p:\n"
                                  "    p.map(slow, [600] * 4, chunksize=1)")
    assert x.content["ename"] == "KeyboardInterrupt", x.describe()
    left = kernel.execute("import multiprocessing as mp, time\n"
                          "t0 = time.monotonic()\n"
                          "while [c for c in mp.active_children() if 'Pool' in c.name] "
                          "and time.monotonic() - t0 < 20:\n"
                          "    time.sleep(0.05)\n"
                          "[c.name for c in mp.active_children() if 'Pool' in c.name]",
                          timeout=TIMEOUT).ok()
    assert left.text == "[]"


@pytest.mark.parametrize("method", METHODS)
def test_kernel_with_open_pools_shuts_down_promptly(kernel_factory, method):
    k = kernel_factory()
    k.execute(SETUP.format(method=method) +
              "pool = ctx.Pool(2)\n"
              "ex = cf.ProcessPoolExecutor(2, mp_context=ctx)\n"
              "pool.map(pid, range(4), chunksize=1), list(ex.map(pid, range(4)))",
              timeout=TIMEOUT).ok()
    k.stop()  # interrupts, then asks; fails if any process outlives the kernel
    # A kernel stuck in its exit is ended by its shutdown watchdog, which
    # says so on the log: that, not a stopwatch, tells a stuck exit from a
    # slow machine.
    assert "shutdown did not finish" not in k.log_tail(100000), k.log_tail()


@pytest.mark.parametrize("method", METHODS)
def test_terminate_stops_busy_children(kernel, method):
    # The kernel's main thread keeps SIGTERM blocked; children must not
    # inherit that, or terminate() cannot stop them and they outlive the kernel.
    got = kernel.execute(SETUP.format(method=method) + """
p = ctx.Process(target=slow, args=(600,))
p.start()
time.sleep(0.3)
p.terminate()
p.join(T)
pool = ctx.Pool(2)
pool.map_async(slow, [600, 600], chunksize=1)
time.sleep(0.3)
pool.terminate()
pool.join()  # waits the tasks' 10 minutes (no reply in TIMEOUT) if SIGTERM is blocked
p.exitcode
""", timeout=TIMEOUT).ok()
    assert got.text == "-15"


def test_terminate_stops_a_subprocess(fresh_kernel):
    # A fresh kernel: multiprocessing's resource tracker, once started,
    # unblocks SIGTERM in the thread that started it, which would hide a
    # mask the kernel's main thread passes on to its children.
    got = fresh_kernel.execute("import subprocess, time\n"
                         "s = subprocess.Popen(['sleep', '30'])\n"
                         "time.sleep(0.2)\n"
                         "s.terminate()\n"
                         "try:\n"
                         "    rc = s.wait(3)\n"
                         "except subprocess.TimeoutExpired:\n"
                         "    s.kill()\n"
                         "    rc = ('ignored SIGTERM', s.wait())\n"
                         "rc", timeout=TIMEOUT).ok()
    assert got.text == "-15"
