"""What goes wrong with ferry's pool, and what the cell is told: pickling
preflight and ferry.check, notebook globals, task exceptions with
the worker's traceback, crashed workers, interrupts.
"""
import ast
import os
import time

import pytest

import harness


pytestmark = pytest.mark.ferry_only("the ferry module exists only in ferry")

T = 120.0  # one cell that starts or uses workers: a bound for a hang
PRELUDE = "import ferry, threading\nfrom ferry import _pool\n"


def run(k, code, timeout=T):
    return k.execute(PRELUDE + code, timeout=timeout).ok()


def fails(k, code, timeout=T):
    # stop_on_error=False: the kernel aborts what it receives just after a
    # failed cell's idle, which can be this test's next request.
    x = k.execute(PRELUDE + code, timeout=timeout, stop_on_error=False)
    assert x.status == "error", x.describe()
    return x


def result(k, code):
    """The value of the cell's last expression (a literal).  Read from the
    execute_result: it is always filed under its cell, where a print at the
    very start of a cell can race the kernel's switch of iopub parent."""
    return ast.literal_eval(run(k, code).text)


def wait_for(cond, timeout=120):
    """Polls cond until true: a bound for a hang, not a measure of speed."""
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.05)
    return cond()


def worker_pids(k):
    return set(result(k, "from ferry import _pool\n_pool.shared().pids()"))


# ------------------------------------------------------------ preflight

def test_unpicklable_argument_is_named_before_anything_is_sent(kernel):
    run(kernel, "import ferry, threading\nferry.workers(2)\n"
                "def first(x):\n    return x\nferry.map(first, [0])")
    before = worker_pids(kernel)
    x = fails(kernel, "ferry.submit(first, {'lock': threading.Lock()})")
    assert x.content["ename"] == "PicklingError"
    msg = x.content["evalue"]
    assert "args[0]['lock']" in msg  # where
    assert "_thread.lock" in msg  # what
    assert "live OS resource" in msg  # why
    assert "Fix:" in msg  # and what to do
    assert "During handling" not in x.traceback_text()
    run(kernel, "import pickle\nassert issubclass(ferry.PicklingError, pickle.PicklingError)")
    assert worker_pids(kernel) == before  # no worker was touched


# Tests define what they use: each must pass when run alone.
FIRST = "def first(x):\n    return x\n"


def test_unpicklable_item_of_map_is_named(kernel):
    x = fails(kernel, FIRST + "ferry.map(first, [1, 2, {'k': [threading.Lock()]}])")
    assert x.content["ename"] == "PicklingError"
    assert "iterable[2]['k'][0]" in x.content["evalue"]
    assert "_thread.lock" in x.content["evalue"]
    assert "During handling" not in x.traceback_text()


def test_map_with_one_bad_item_runs_no_task_at_all(kernel, tmp_path):
    run(kernel, f"MARK_DIR = {str(tmp_path)!r}\n"
                "def mark(x):\n    import os\n"
                "    open(os.path.join(MARK_DIR, str(x)), 'w').close()\n")
    x = fails(kernel, "ferry.map(mark, list(range(20)) + [threading.Lock()], chunksize=1)")
    assert x.content["ename"] == "PicklingError" and "iterable[20]" in x.content["evalue"]
    assert os.listdir(tmp_path) == []


def test_unpicklable_keyword_argument_is_named(kernel):
    x = fails(kernel, FIRST + "ferry.submit(first, x=open(__import__('os').devnull))")
    assert x.content["ename"] == "PicklingError"
    assert "kwargs['x']" in x.content["evalue"]
    assert "open file" in x.content["evalue"]


def test_nested_function_is_explained_with_its_enclosing_function(kernel):
    x = fails(kernel, "def outer():\n    def inner(x):\n        return x\n    return inner\n"
                      "ferry.map(outer(), [1])")
    assert x.content["ename"] == "PicklingError"
    msg = x.content["evalue"]
    assert "inner" in msg and "outer()" in msg and "top level" in msg


def test_closure_over_a_value_travels(kernel):
    # A lambda made inside a cell function goes by value, with its closure.
    run(kernel, "def adder(k):\n    return lambda x: x + k")
    assert result(kernel, "ferry.map(adder(10), [1, 2])") == [11, 12]


def test_closure_over_a_lock_names_the_variable(kernel):
    x = fails(kernel, "def guarded():\n    lk = threading.Lock()\n"
                      "    return lambda x: lk\nferry.map(guarded(), [1])")
    msg = x.content["evalue"]
    assert x.content["ename"] == "PicklingError"
    assert "guarded" in msg and "'lk'" in msg and "_thread.lock" in msg


def test_check_returns_quietly_or_raises_the_same_diagnosis(kernel):
    run(kernel, FIRST + "ferry.check([1, 'two', {3: first}])")
    x = fails(kernel, "ferry.check({'conn': __import__('socket').socket()})")
    assert x.content["ename"] == "PicklingError"
    assert "['conn']" in x.content["evalue"] and "socket" in x.content["evalue"]


def test_function_reading_a_computed_global_gets_its_value(kernel):
    # Computed globals travel with the task (tests/integration/test_globals.py
    # has every rule); here: no refusal is left in the preflight.
    run(kernel, "def load():\n    return [1, 2, 3]\ndata = load()\n"
                "def uses_data(i):\n    return data[i]")
    assert result(kernel, "ferry.map(uses_data, [0, 1])") == [1, 2]


def test_check_of_a_function_reading_a_computed_global_passes(kernel):
    run(kernel, "ferry.check(uses_data)")


def test_computed_global_read_through_a_helper_travels(kernel):
    run(kernel, "def via_helper(i):\n    return uses_data(i)")
    assert result(kernel, "ferry.submit(via_helper, 2).result()") == 3


def test_attribute_named_like_a_computed_global_is_not_an_error(kernel):
    run(kernel, "class Box:\n    data = 5\ndef attr(b):\n    return b.data")
    assert result(kernel, "ferry.map(attr, [Box()])") == [5]


# ------------------------------------------------------------- exceptions

def test_task_exception_is_reraised_as_its_type_with_worker_traceback(kernel):
    run(kernel, "def explode(x):\n    if x == 3:\n        raise KeyError(f'bad {x}')\n"
                "    return x")
    x = fails(kernel, "ferry.map(explode, range(6), chunksize=1)")
    assert x.content["ename"] == "KeyError"
    assert "bad 3" in x.content["evalue"]
    tb = x.traceback_text()
    assert "In worker process" in tb
    assert "in explode()" in tb
    assert "raise KeyError(f'bad {x}')" in tb  # the worker's line, with its source
    assert "concurrent/futures" not in tb and "_worker.py" not in tb
    assert result(kernel, "ferry.map(explode, [1, 2])") == [1, 2]  # the pool goes on


def test_cell_defined_exception_class_can_be_caught(kernel):
    x = run(kernel, "class Oops(Exception):\n    pass\n"
                    "def oops(x):\n    raise Oops(x)\n"
                    "try:\n    ferry.submit(oops, 5).result(timeout=15)\n"
                    "except Oops as e:\n    print('caught', type(e) is Oops, e.args)")
    assert x.stdout.strip() == "caught True (5,)"


def test_unpicklable_result_is_a_task_error(kernel):
    x = fails(kernel, "def give_lock(x):\n    import threading\n"
                      "    return threading.Lock()\nferry.map(give_lock, [1])")
    assert x.content["ename"] == "TypeError" and "lock" in x.content["evalue"]


# ----------------------------------------------------------------- crashes

CRASHERS = {
    "exit": ("__import__('os')._exit(7)", "code 7"),
    "sigkill": ("__import__('os').kill(__import__('os').getpid(), 9)", "SIGKILL"),
    "segfault": ("__import__('ctypes').string_at(0)", "SIGSEGV"),
}


def _sanitized():
    """True when the kernel under test is an AddressSanitizer build."""
    program = harness.REPO_ROOT / harness.kernel_argv()[0]
    try:
        return b"__asan_init" in program.read_bytes()
    except OSError:
        return False


@pytest.mark.parametrize("how", sorted(CRASHERS))
def test_worker_crash_fails_only_its_task_and_is_replaced(kernel, how):
    body, named = CRASHERS[how]
    run(kernel, "import ferry\nferry.workers(2)\nferry.map(abs, range(4), chunksize=1)")
    before = worker_pids(kernel)
    run(kernel, f"def crash_{how}(x):\n    if x == 2:\n        {body}\n"
                "    import time\n    time.sleep(0.05)\n    return x * 10\n"
                f"futures = [ferry.submit(crash_{how}, i) for i in range(6)]")
    lines = result(kernel, "import concurrent.futures as cf\ncf.wait(futures, timeout=15)\n"
                           "[type(f.exception()).__name__ + ': ' + str(f.exception())\n"
                           " if f.exception() else str(f.result()) for f in futures]")
    assert lines[:2] == ["0", "10"] and lines[3:] == ["30", "40", "50"], lines
    if how == "segfault" and _sanitized():
        named = "exited with code 1"  # AddressSanitizer catches the SIGSEGV
    assert lines[2].startswith("WorkerCrashed: ") and named in lines[2], lines[2]
    # The dead worker was replaced: the pool has two workers again.
    after = set(result(kernel, "import time\nend = time.time() + 10\n"
                               "while len(_pool.shared().pids()) != 2 and time.time() < end:\n"
                               "    time.sleep(0.05)\n_pool.shared().pids()"))
    assert len(after) == 2 and after != before
    assert value_of(kernel, "ferry.map(abs, [-1, -2, -3], chunksize=1)") == "[1, 2, 3]"


def test_worker_crash_in_map_raises_worker_crashed(kernel):
    x = fails(kernel, "def die(x):\n    import os\n    os._exit(3)\nferry.map(die, [1])")
    assert x.content["ename"] == "WorkerCrashed"
    assert "code 3" in x.content["evalue"]
    run(kernel, "assert issubclass(ferry.WorkerCrashed, Exception)")
    assert value_of(kernel, "ferry.map(abs, [-5])") == "[5]"


def value_of(k, expr):
    return repr(result(k, expr))


# --------------------------------------------------------------- interrupt

def test_interrupt_during_map_cancels_and_leaves_the_pool_usable(kernel, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    run(kernel, "import ferry\nferry.workers(2)\nferry.map(abs, range(4), chunksize=1)")
    before = worker_pids(kernel)
    run(kernel, f"MARKS = {str(marks)!r}\n"
                "def slow(x):\n    import os, time\n"
                "    open(os.path.join(MARKS, str(x)), 'w').close()\n"
                "    time.sleep(30)\n    return x")
    p = kernel.submit("print('started', flush=True)\nferry.map(slow, range(8), chunksize=1)",
                      stop_on_error=False)
    p.wait_until_running()
    assert wait_for(lambda: len(os.listdir(marks)) >= 2)
    assert len(os.listdir(marks)) == 2  # two running, six queued
    kernel.km.interrupt_kernel()
    x = p.finish(timeout=60)
    assert x.status == "error" and x.content["ename"] == "KeyboardInterrupt"
    time.sleep(0.5)
    assert sorted(os.listdir(marks)) == ["0", "1"]  # the queued ones never ran
    # Same workers (SIGINT interrupted their tasks, it did not kill them),
    # and they take new work at once.
    assert worker_pids(kernel) == before
    assert value_of(kernel, "ferry.map(abs, [-1, -2, -3, -4], chunksize=1)") == "[1, 2, 3, 4]"


def test_workers_that_cannot_start_fail_the_tasks_instead_of_hanging(kernel):
    # Workers read FERRY_PACKAGE_DIR at start: a wrong one makes each of
    # them exit before it is ready.
    x = fails(kernel, "import os\nos.environ['FERRY_PACKAGE_DIR'] = '/nonexistent'\n"
                      "try:\n"
                      "    with ferry.Executor(1) as ex:\n"
                      "        ex.submit(abs, -1).result(timeout=15)\n"
                      "finally:\n"
                      "    del os.environ['FERRY_PACKAGE_DIR']")
    assert x.content["ename"] == "WorkerCrashed"
    assert "no worker process could start" in x.content["evalue"]
    assert "code 1" in x.content["evalue"]
    assert result(kernel, "with ferry.Executor(1) as ex:\n"
                          "    r = ex.submit(abs, -1).result(timeout=15)\nr") == 1


def test_interrupt_request_message_during_map_works_the_same(kernel_factory, tmp_path):
    k = kernel_factory(interrupt_mode="message")
    run(k, f"MARKS = {str(tmp_path)!r}\n"
           "def slow(x):\n    import os, time\n"
           "    open(os.path.join(MARKS, str(x)), 'w').close()\n"
           "    time.sleep(30)\n")
    p = k.submit("print('started', flush=True)\nferry.workers(2)\n"
                 "ferry.map(slow, range(6), chunksize=1)", stop_on_error=False)
    p.wait_until_running()
    assert wait_for(lambda: len(os.listdir(tmp_path)) >= 2)
    k.send("interrupt_request", {}, channel="control").wait_for_reply()
    x = p.finish(timeout=60)
    assert x.content["ename"] == "KeyboardInterrupt"
    assert value_of(k, "ferry.map(abs, [-1, -2], chunksize=1)") == "[1, 2]"
    assert sorted(os.listdir(tmp_path)) == ["0", "1"]


def test_input_in_a_task_fails_at_once(kernel):
    x = fails(kernel, "def ask(x):\n    return input('name? ')\nferry.map(ask, [1])")
    assert x.content["ename"] == "EOFError"


def test_interrupting_the_wait_for_a_submitted_task_interrupts_the_task(kernel, tmp_path):
    run(kernel, f"DONE_DIR = {str(tmp_path)!r}\n"
                "def nap(x):\n    import os, time\n"
                "    open(os.path.join(DONE_DIR, 'running'), 'w').close()\n"
                "    time.sleep(30)\n"
                "    open(os.path.join(DONE_DIR, 'finished'), 'w').close()\n"
                "ferry.map(abs, [1])\n")  # the workers up, to compare with after
    before = worker_pids(kernel)
    p = kernel.submit("f = ferry.submit(nap, 1)\nprint('started', flush=True)\nf.result()",
                      stop_on_error=False)
    p.wait_until_running()
    # The task runs (not only queued: interrupting then would cancel it).
    assert wait_for(lambda: os.path.exists(os.path.join(tmp_path, "running")))
    kernel.km.interrupt_kernel()
    assert p.finish(timeout=60).content["ename"] == "KeyboardInterrupt"
    # The task ended with KeyboardInterrupt in its worker, which lives on.
    assert result(kernel, "type(f.exception(timeout=10)).__name__") == "KeyboardInterrupt"
    assert os.listdir(tmp_path) == ["running"]
    assert worker_pids(kernel) == before


def test_a_task_that_ignores_the_interrupt_loses_its_worker(kernel, tmp_path):
    run(kernel, "ferry.workers(2)\nferry.map(abs, range(2), chunksize=1)\n"
                f"MARKS = {str(tmp_path)!r}\n"
                "def stubborn(x):\n    import os, signal, time\n"
                "    signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                "    open(os.path.join(MARKS, str(x)), 'w').close()\n"
                "    time.sleep(60)\n")
    before = worker_pids(kernel)
    p = kernel.submit("print('started', flush=True)\nferry.map(stubborn, [1, 2], chunksize=1)",
                      stop_on_error=False)
    p.wait_until_running()
    assert wait_for(lambda: len(os.listdir(tmp_path)) == 2)  # both ignore SIGINT now
    kernel.km.interrupt_kernel()
    assert p.finish(timeout=60).content["ename"] == "KeyboardInterrupt"
    # Killed after the grace period and replaced, and the pool goes on.
    assert value_of(kernel, "ferry.map(abs, [-1, -2], chunksize=1)") == "[1, 2]"
    after = set(result(kernel, f"import time\nend = time.time() + 120\n"
                               f"while (len(_pool.shared().pids()) != 2 or\n"
                               f"       set(_pool.shared().pids()) & {before!r}) \\\n"
                               f"        and time.time() < end:\n"
                               f"    time.sleep(0.05)\n_pool.shared().pids()"))
    assert len(after) == 2 and not after & before


def test_a_forked_child_neither_uses_nor_stops_the_kernel_pools(kernel):
    # A child that exits normally runs atexit handlers (here called by hand,
    # as a cell cannot exit): they must not touch the parent's pools, whose
    # dispatcher threads the child does not have.
    assert result(kernel, "import os\nferry.map(abs, [1])\npid = os.fork()\n"
                          "if pid == 0:\n"
                          "    code = 1\n"
                          "    try:\n        ferry.map(abs, [1])\n"
                          "    except RuntimeError:\n        code = 7\n"
                          "    finally:\n"
                          "        _pool._stop_all()\n        os._exit(code)\n"
                          "os.waitpid(pid, 0)[1] >> 8") == 7
    assert value_of(kernel, "ferry.map(abs, [-3])") == "[3]"


# ------------------------------------------------- tasks sent ahead

# Small tasks are sent ahead to the workers (kernel/pool/sched.c).  The first
# items of these maps are quick, so the pool learns to send the later ones
# ahead; what the tests check is that a task sent ahead behaves like one
# still queued in the kernel.

def test_a_crash_fails_only_the_running_task_not_those_sent_ahead(kernel):
    run(kernel, "ferry.workers(2)\n"
                "def die_at_300(x):\n"
                "    if x == 300:\n        import os\n        os._exit(9)\n"
                "    return x\n"
                "futures = [ferry.submit(die_at_300, i) for i in range(600)]")
    outcome = result(kernel, "import concurrent.futures as cf\ncf.wait(futures, timeout=15)\n"
                             "[(i, str(f.exception())) for i, f in enumerate(futures)\n"
                             " if f.exception() or f.result() != i]")
    failed = dict(outcome)
    assert "code 9 while running a task" in failed.pop(300), outcome
    # The tasks the dead worker held but had not started ran elsewhere: all
    # after 300 succeeded.  Results it had sent just before it died can be
    # lost with the process; those tasks say so (they ran: not run again).
    for i, message in failed.items():
        assert i < 300, outcome
        assert "after the task ended, before its result reached the kernel" in message


def test_an_interrupt_cancels_the_tasks_sent_ahead(kernel, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    run(kernel, "ferry.workers(2)\n"
                f"MARKS = {str(marks)!r}\n"
                "def quick_then_slow(x):\n    import os, time\n"
                "    if x >= 400:\n"
                "        open(os.path.join(MARKS, str(x)), 'w').close()\n"
                "        time.sleep(30)\n"
                "    return x")
    p = kernel.submit("print('started', flush=True)\n"
                      "ferry.map(quick_then_slow, range(440), chunksize=1)",
                      stop_on_error=False)
    p.wait_until_running()
    assert wait_for(lambda: len(os.listdir(marks)) >= 2)
    assert len(os.listdir(marks)) == 2
    kernel.km.interrupt_kernel()
    assert p.finish(timeout=60).content["ename"] == "KeyboardInterrupt"
    time.sleep(0.5)
    assert len(os.listdir(marks)) == 2  # none of the slow tasks sent ahead ran
    assert value_of(kernel, "ferry.map(abs, [-1, -2, -3], chunksize=1)") == "[1, 2, 3]"


def test_long_tasks_after_a_burst_of_short_ones_are_not_sent_ahead(kernel):
    # The pool forgets what it learned once it is idle: a long task must not
    # hold back short ones that another worker could run meanwhile.
    run(kernel, "ferry.workers(2)\nferry.map(abs, range(2000), chunksize=1)\n"
                "def nap_pid(t):\n    import os, time\n    time.sleep(t)\n"
                "    return os.getpid()")
    pids = result(kernel, "ferry.map(nap_pid, [3.0] + [0.1] * 6, chunksize=1)")
    assert pids[0] not in pids[1:], pids


@pytest.mark.parametrize("wait", ["timeout=60", ""])  # result() without one: its own way
def test_an_interrupt_as_the_wait_takes_the_result_does_not_lose_it(kernel, wait):
    # SIGINT raises KeyboardInterrupt as soon as a call returns: here, the
    # instant next_one has taken the result from the pool.  The future must
    # still complete with it (before, it never completed).  The collector
    # thread may take a result before the waiting cell does (then next_one
    # took nothing and nothing is interrupted): submits repeat until a wait
    # took one.
    run(kernel, "import types\n"
                "_real = _pool._ferry_pool\n"
                "def _next_one_then_interrupted(*a):\n"
                "    n = _real.next_one(*a)\n"
                "    if n:\n"
                "        raise KeyboardInterrupt\n"
                "    return n\n"
                "_pool._ferry_pool = types.SimpleNamespace(**{k: getattr(_real, k)\n"
                "    for k in dir(_real) if not k.startswith('__')})\n"
                "_pool._ferry_pool.next_one = _next_one_then_interrupted\n"
                "interrupted = None\n"
                "for i in range(1, 500):\n"
                "    f = ferry.submit(abs, -i)\n"
                "    try:\n"
                f"        f.result({wait})\n"
                "    except KeyboardInterrupt:\n"
                "        interrupted = (f, i)\n"
                "        break\n"
                "_pool._ferry_pool = _real\n")
    f_i = "interrupted[0].result(timeout=10) == interrupted[1]"
    assert result(kernel, "interrupted is not None") is True
    assert result(kernel, f_i) is True
