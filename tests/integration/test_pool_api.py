"""ferry's pool through a real kernel: map, submit, workers, Executor, and
what a warm pool sees (new and redefined functions, cwd, sys.path).

All tests of this module share one kernel and its shared pool; each test
sets the pool size it relies on.  ferry-only: ipykernel has no `ferry`.
"""
import ast

import pytest

pytestmark = pytest.mark.ferry_only("the ferry module exists only in ferry")

T = 120.0  # one cell that starts or uses workers: a bound for a hang
PRELUDE = "import ferry, threading\nfrom ferry import _pool\n"


def run(k, code, timeout=T):
    return k.execute(PRELUDE + code, timeout=timeout).ok()


def value(k, expr, timeout=T):
    """The value of a literal expression, computed in the kernel.  Read from
    the execute_result: it is always filed under its cell, where a print at
    the very start of a cell can race the kernel's switch of iopub parent."""
    x = run(k, f"import ferry\n{expr}", timeout)
    return ast.literal_eval(x.text)


def test_first_map_in_a_kernel_returns(kernel):
    # It used to hang: the task's payload went out as a message of its own.
    assert value(kernel, "import math\nferry.map(math.sqrt, range(10))") \
        == [i ** 0.5 for i in range(10)]


def test_map_returns_results_in_order(kernel):
    assert value(kernel, "ferry.map(abs, range(-20, 0))") == list(range(20, 0, -1))


def test_map_applies_a_function_defined_in_a_cell(kernel):
    run(kernel, "def square(x):\n    return x * x")
    assert value(kernel, "ferry.map(square, range(6))") == [0, 1, 4, 9, 16, 25]


def test_map_of_ranges_and_tuples_in_chunks(kernel):
    # Sliced, not copied into a list: each chunk travels as a range or tuple.
    assert value(kernel, "ferry.map(abs, range(30, -31, -7), chunksize=2)") \
        == [abs(i) for i in range(30, -31, -7)]
    # Long chunks of a range travel as ranges, short ones as lists.
    assert value(kernel, "ferry.map(abs, range(300, -301, -3), chunksize=70)") \
        == [abs(i) for i in range(300, -301, -3)]
    assert value(kernel, "ferry.map(abs, tuple(range(-5, 5)), chunksize=3)") \
        == [abs(i) for i in range(-5, 5)]
    assert value(kernel, "ferry.map(abs, range(5, 5))") == []


def test_map_of_empty_iterable_is_empty(kernel):
    assert value(kernel, "ferry.map(abs, [])") == []


def test_warm_pool_runs_a_function_defined_after_it_started(kernel):
    run(kernel, "import ferry\nferry.map(abs, [1, 2, 3])")  # the pool is warm
    run(kernel, "def later(x):\n    return ('later', x)")
    assert value(kernel, "ferry.map(later, [1])") == [("later", 1)]


def test_warm_pool_runs_the_current_definition_after_a_redefinition(kernel):
    run(kernel, "def version(x):\n    return 1")
    assert value(kernel, "ferry.map(version, range(4), chunksize=1)") == [1] * 4
    run(kernel, "def version(x):\n    return 2")
    assert value(kernel, "ferry.map(version, range(4), chunksize=1)") == [2] * 4


def test_warm_pool_sees_a_redefined_helper_called_by_the_task(kernel):
    run(kernel, "def helper():\n    return 'old'\ndef task(x):\n    return helper()")
    assert value(kernel, "ferry.map(task, [0])") == ["old"]
    run(kernel, "def helper():\n    return 'new'")
    assert value(kernel, "ferry.map(task, [0])") == ["new"]


def test_function_defined_and_used_in_the_same_cell(kernel):
    assert value(kernel, "def same_cell(x):\n    return x + 100\n"
                         "ferry.map(same_cell, [1, 2])") == [101, 102]


def test_literal_constant_and_named_lambda_reach_workers(kernel):
    run(kernel, "OFFSET = 7\nadd = lambda x: x + OFFSET")
    assert value(kernel, "ferry.map(add, [1, 2])") == [8, 9]


def test_anonymous_lambda_is_sent_by_value(kernel):
    assert value(kernel, "ferry.map(lambda x: x * 3, [1, 2])") == [3, 6]


def test_cell_class_instances_round_trip_as_the_same_class(kernel):
    run(kernel, "import ferry\nclass Point:\n    def __init__(self, x):\n        self.x = x\n"
                "def make(x):\n    return Point(x)\n")
    assert value(kernel, "pts = ferry.map(make, [1, 2])\n"
                         "(all(type(p) is Point for p in pts), [p.x for p in pts])") \
        == (True, [1, 2])


def test_cell_objects_as_items_and_arguments_reach_workers(kernel):
    # Items and arguments are pickled apart from the function: a cell class,
    # a cell function and a lambda among them must still travel by lookup.
    run(kernel, "import ferry\nclass Box:\n    def __init__(self, v):\n        self.v = v\n"
                "def twice(x):\n    return 2 * x\n"
                "def open_box(b):\n    return type(b).__name__, b.v\n"
                "def apply(pair):\n    f, x = pair\n    return f(x)\n")
    assert value(kernel, "ferry.map(open_box, [Box(1), Box('__main__')], chunksize=1)") \
        == [("Box", 1), ("Box", "__main__")]
    assert value(kernel, "ferry.map(apply, [(twice, 4), (lambda x: x + 1, 4)], chunksize=1)") \
        == [8, 5]
    assert value(kernel, "ferry.submit(apply, (twice, 21)).result(timeout=15)") == 42


def test_submit_returns_a_future(kernel):
    run(kernel, "def power(b, e=2):\n    return b ** e")
    assert value(kernel, "import concurrent.futures as cf\nf = ferry.submit(power, 3, e=3)\n"
                         "(isinstance(f, cf.Future), f.result(timeout=15))") == (True, 27)


def test_result_with_a_timeout_raises_and_the_task_still_ends(kernel):
    # result() waits for a lone task's result itself (not through the
    # collector thread): its timeout must still hold, and a result that
    # comes after it must still settle the future.
    run(kernel, "import time\ndef slow(x):\n    time.sleep(1.5)\n    return x")
    assert value(kernel, "import concurrent.futures as cf, time\nferry.workers(2)\n"
                         "f = ferry.submit(slow, 7)\nt = time.monotonic()\n"
                         "try:\n    f.result(timeout=0.2)\n    r = 'no timeout'\n"
                         "except cf.TimeoutError:\n    r = 'timeout'\n"
                         "(r, time.monotonic() - t < 1.4, f.result(timeout=15), "
                         "f.exception(timeout=15))", timeout=40) \
        == ("timeout", True, 7, None)


def test_lone_submits_waited_on_from_many_threads_all_settle(kernel):
    # More threads wait on a task of their own than may wait directly: the
    # rest are settled by the collector; none is lost or crossed.
    assert value(kernel, "import threading\nferry.workers(2)\nout = {}\n"
                         "def ask(i):\n"
                         "    out[i] = [ferry.submit(pow, i, 2).result(timeout=60)"
                         " for _ in range(20)]\n"
                         "ts = [threading.Thread(target=ask, args=(i,)) for i in range(16)]\n"
                         "[t.start() for t in ts]; [t.join() for t in ts]\n"
                         "all(out[i] == [i * i] * 20 for i in range(16)) and len(out)",
                 timeout=120) == 16


def test_workers_reports_usable_cpus_and_resizes(kernel, tmp_path):
    import os
    # A fresh Pool sizes itself to the usable CPUs.
    assert value(kernel, "from ferry import _pool\n_pool.Pool().size()") \
        == len(os.sched_getaffinity(0))
    run(kernel, "import ferry\nferry.workers(3)")
    # Three tasks that each wait for the other two: they finish only if
    # three workers run them at once.
    run(kernel, f"BARRIER = {str(tmp_path)!r}\n"
                "def meet(x):\n    import os, time\n"
                "    open(os.path.join(BARRIER, str(os.getpid())), 'w').close()\n"
                "    end = time.time() + 120\n"
                "    while len(os.listdir(BARRIER)) < 3 and time.time() < end:\n"
                "        time.sleep(0.02)\n"
                "    return os.getpid()\n")
    assert value(kernel, "(ferry.workers(), len(set(ferry.map(meet, range(3), chunksize=1))))") \
        == (3, 3)
    run(kernel, "ferry.workers(2)")
    assert value(kernel, "import time\ndeadline = time.time() + 120\n"
                         "while len(_pool.shared().pids()) != 2 and time.time() < deadline:\n"
                         "    time.sleep(0.05)\n(ferry.workers(), len(_pool.shared().pids()))") \
        == (2, 2)


def test_workers_rejects_a_size_below_one(kernel):
    x = kernel.execute("import ferry\nferry.workers(0)", timeout=T, stop_on_error=False)
    assert x.status == "error" and x.content["ename"] == "ValueError"


SPY = (
    "from ferry import _pool\n"
    "def chunk_sizes(fn, items, **kw):\n"
    "    sizes, dumps = [], _pool._dumps\n"
    "    def spy(task):\n"
    "        sizes.append(len(task[-1]))  # ('map', chunk)\n"
    "        return dumps(task)\n"
    "    _pool._dumps = spy\n"
    "    try:\n"
    "        assert ferry.map(fn, items, **kw) == [fn(i) for i in items]\n"
    "    finally:\n"
    "        _pool._dumps = dumps\n"
    "    return sizes\n"
)


def test_chunksize_one_sends_each_item_as_its_own_task(kernel):
    run(kernel, "import ferry\nferry.workers(2)\n" + SPY)
    assert value(kernel, "chunk_sizes(abs, list(range(8)), chunksize=1)") == [1] * 8
    assert value(kernel, "chunk_sizes(abs, list(range(8)), chunksize=3)") == [3, 3, 2]


def test_chunksize_none_picks_a_chunk_size(kernel):
    run(kernel, "import ferry\nferry.workers(2)\n" + SPY)
    sizes = value(kernel, "chunk_sizes(abs, list(range(400)))")
    assert sum(sizes) == 400 and 1 < max(sizes) < 400 and len(sizes) >= 2


def test_chunksize_below_one_is_an_error(kernel):
    x = kernel.execute(PRELUDE + "ferry.map(abs, [1], chunksize=0)", timeout=T,
                       stop_on_error=False)
    assert x.status == "error" and x.content["ename"] == "ValueError"


def test_workers_follow_the_kernel_current_directory(kernel, tmp_path):
    d = tmp_path / "elsewhere"
    d.mkdir()
    run(kernel, "import os\ndef cwd(x):\n    return os.getcwd()")
    here = value(kernel, "os.getcwd()")
    try:
        assert value(kernel, f"[os.chdir({str(d)!r}), ferry.map(cwd, range(4), chunksize=1)][1]") \
            == [str(d)] * 4
    finally:
        run(kernel, f"os.chdir({here!r})")
    assert value(kernel, "ferry.map(cwd, range(2), chunksize=1)") == [here] * 2


def test_workers_follow_the_kernel_sys_path(kernel, tmp_path):
    (tmp_path / "ferry_probe_mod.py").write_text("WHO = 'probe'\n")
    run(kernel, "def probe(x):\n    import ferry_probe_mod\n    return ferry_probe_mod.WHO")
    run(kernel, f"import sys\nsys.path.append({str(tmp_path)!r})")
    try:
        assert value(kernel, "ferry.map(probe, range(2), chunksize=1)") == ["probe", "probe"]
    finally:
        run(kernel, f"sys.path.remove({str(tmp_path)!r})")


# Each test that uses it defines it: a test must pass when run alone.
CHATTY = ("import sys\ndef chatty(x):\n    for i in range(3):\n"
          "        print(f'task {x} line {i}')\n"
          "    print(f'task {x} err', file=sys.stderr)\n"
          "    print(f'task {x} last', end='')\n"
          "    return x")


def test_worker_output_appears_in_the_cell_that_submitted_the_task(kernel):
    run(kernel, CHATTY)
    x = run(kernel, "r = ferry.map(chatty, range(3), chunksize=1)\nprint('\\nafter', r)")
    out = x.stdout
    for t in range(3):
        lines = [out.index(f"task {t} line {i}") for i in range(3)]
        assert lines == sorted(lines), out  # in order per task
        assert f"task {t} last" in out  # what it printed just before returning
        assert out.index(f"task {t} last") < out.index("after [0, 1, 2]"), out
        assert f"task {t} err" in x.stderr
    # Nothing leaks into the next cell.
    assert run(kernel, "import time\ntime.sleep(0.2)\nprint('quiet')").stdout == "quiet\n"


def test_submit_output_appears_before_result_returns(kernel):
    run(kernel, CHATTY)
    x = run(kernel, "f = ferry.submit(chatty, 9)\nprint('\\ngot', f.result(timeout=15))")
    assert x.stdout.index("task 9 last") < x.stdout.index("got 9")


def test_numpy_arrays_travel_out_of_band_and_stay_writable(kernel):
    pytest.importorskip("numpy")
    run(kernel, "import numpy as np, pickle\n"
                "def double_in_place(a):\n    a *= 2\n    return a\n")
    x = run(kernel, "arrs = [np.arange(100000, dtype=np.float64) + i for i in range(4)]\n"
                    "out = ferry.map(double_in_place, arrs, chunksize=1)\n"
                    "print(all(np.array_equal(o, a * 2) for o, a in zip(out, arrs)),\n"
                    "      all(o.flags.writeable for o in out), out[0].dtype)")
    assert x.stdout.split() == ["True", "True", "float64"]


def test_numpy_buffers_are_separate_frames(kernel):
    pytest.importorskip("numpy")
    # The pickled task names the array's bytes as an out-of-band buffer.
    x = run(kernel, "from ferry import _pool\nimport numpy as np\n"
                    "frames = _pool._dumps((None, abs, 'map', [np.zeros(50000)]))\n"
                    "(len(frames), len(frames[0]) < 1000, frames[1].nbytes)")
    assert ast.literal_eval(x.text) == (2, True, 400000)


def test_pickle_buffer_arguments_and_results(kernel):
    # An out-of-band PickleBuffer arrives as the buffer it wrapped.
    run(kernel, "def to_buffer(b):\n    import pickle\n"
                "    return pickle.PickleBuffer(bytearray(bytes(memoryview(b))[::-1]))")
    x = run(kernel, "import pickle\nr = ferry.submit(to_buffer, pickle.PickleBuffer(b'abc'))"
                    ".result(timeout=15)\nbytes(r)")
    assert ast.literal_eval(x.text) == b"cba"


def test_executor_runs_tasks_in_workers_of_its_own(kernel):
    x = run(kernel, "import ferry, os, concurrent.futures as cf\n"
                    "def pid(x):\n    return os.getpid()\n"
                    "with ferry.Executor(max_workers=2) as ex:\n"
                    "    own = set(ex._pool.pids())\n"
                    "    fs = [ex.submit(pid, i) for i in range(6)]\n"
                    "    pids = {f.result(timeout=15) for f in fs}\n"
                    "    mapped = list(ex.map(abs, [-1, -2]))\n"
                    "    own = set(ex._pool.pids())\n"
                    "shared = set(ferry._pool.shared().pids())\n"
                    "(isinstance(ex, cf.Executor), pids <= own, not (pids & shared), mapped,\n"
                    " ex._pool.pids())")
    assert ast.literal_eval(x.text) == (True, True, True, [1, 2], [])


def test_two_pools_deliver_results_at_the_same_time(kernel):
    # Each pool has its own collector thread; both wait for results at once.
    x = run(kernel, "import ferry, threading\n"
                    "def square(x):\n    return x * x\n"
                    "got = {}\n"
                    "def on_shared():\n"
                    "    got['shared'] = ferry.map(square, range(3000), chunksize=1)\n"
                    "t = threading.Thread(target=on_shared)\n"
                    "with ferry.Executor(2) as ex:\n"
                    "    t.start()\n"
                    "    got['own'] = list(ex.map(square, range(3000, 6000)))\n"
                    "    t.join(30)\n"
                    "(got['shared'] == [i * i for i in range(3000)],\n"
                    " got['own'] == [i * i for i in range(3000, 6000)])")
    assert ast.literal_eval(x.text) == (True, True)


def test_executor_refuses_work_after_shutdown(kernel):
    x = kernel.execute(PRELUDE + "ex = ferry.Executor(1)\nex.submit(abs, 1).result(timeout=15)\n"
                       "ex.shutdown()\nex.submit(abs, 1)", timeout=T, stop_on_error=False)
    assert x.status == "error" and x.content["ename"] == "RuntimeError"


def test_numpy_arrays_are_rebuilt_on_the_received_message_without_a_copy(kernel):
    pytest.importorskip("numpy")
    # Both ways, the unpickled array's memory is the ZeroMQ message ferry
    # received (a _ferry_frame), not a bytes object it was copied into.
    run(kernel, "import numpy as np\n"
                "def owner(a):\n"
                "    while getattr(a, 'base', None) is not None:\n"
                "        a = a.base\n"
                "    return type(a.obj).__name__ if isinstance(a, memoryview) else type(a).__name__\n"
                "def inside(a):\n    return owner(a), a.flags.writeable\n")
    assert value(kernel, "ferry.submit(inside, np.zeros((100, 100))).result(timeout=15)") \
        == ("_ferry_frame", True)
    assert value(kernel, "owner(ferry.map(np.negative, [np.ones((300, 20))])[0])") \
        == "_ferry_frame"


def test_output_of_c_code_in_a_task_reaches_the_cell(kernel):
    run(kernel, "def c_print(x):\n    import ctypes\n"
                "    ctypes.CDLL(None).printf(b'from C %d\\n', x)\n    return x")
    x = run(kernel, "r = ferry.map(c_print, [1, 2], chunksize=1)\nprint('done', r)")
    assert "from C 1" in x.stdout and "from C 2" in x.stdout
    assert x.stdout.index("from C 2") < x.stdout.index("done [1, 2]")


def test_a_chunk_with_hundreds_of_buffers_arrives_whole(kernel):
    pytest.importorskip("numpy")
    # Each distinct array is a frame of its own, both ways.
    assert value(kernel, "import numpy as np\n"
                         "arrs = [np.full(100, i, dtype=np.int64) for i in range(300)]\n"
                         "out = ferry.map(np.negative, arrs, chunksize=150)\n"
                         "[int(a.sum()) for a in out] == [-100 * i for i in range(300)]")


def test_long_non_ascii_output_of_a_task_arrives_intact(kernel):
    # 300 kB of two- and three-byte characters cross many pipe reads.
    run(kernel, "def accents(n):\n    print('é€' * n, end='')\n    return n")
    x = run(kernel, "ferry.map(accents, [60000], chunksize=1)")
    assert x.stdout == "é€" * 60000


def test_submits_from_several_threads_all_complete(kernel):
    assert value(kernel, "import threading\nok = []\n"
                         "def go(k):\n"
                         "    fs = [ferry.submit(pow, k, i) for i in range(100)]\n"
                         "    ok.append([f.result(timeout=15) for f in fs] == "
                         "[k ** i for i in range(100)])\n"
                         "ts = [threading.Thread(target=go, args=(k,)) for k in range(2, 6)]\n"
                         "[t.start() for t in ts]\n[t.join(30) for t in ts]\nok") \
        == [True] * 4


def test_a_thread_submitting_while_requests_come_and_go(kernel):
    # A task's parent is the request being handled when it is submitted,
    # read from whichever thread submits: it used to be read through the
    # shell's own pointer, without a lock, while the shell freed the request
    # it pointed to (a use-after-free; an ASan build aborts on it).  Each
    # submit now holds the request it reads.  Quick requests, back to back,
    # while a thread submits without pause.
    run(kernel, "_stop = threading.Event()\n_sums = []\n"
                "def _submit_loop():\n"
                "    while not _stop.is_set():\n"
                "        futs = [ferry.submit(abs, -i) for i in range(20)]\n"
                "        _sums.append(sum(f.result() for f in futs))\n"
                "_t = threading.Thread(target=_submit_loop, daemon=True)\n_t.start()")
    pending = [kernel.send("kernel_info_request") for _ in range(1500)]
    # The submitting thread competes with the shell for the GIL: on a loaded
    # machine the 1500 replies can take minutes, so the bound is a hang guard.
    for p in pending:
        assert p.finish(6 * T).reply["content"]["status"] == "ok"
    assert value(kernel, "_stop.set(); _t.join(30); (_t.is_alive(), len(_sums) > 0, "
                         "set(_sums))") == (False, True, {190})
