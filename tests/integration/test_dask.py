"""ferry on a real Dask cluster: ferry.use, map, submit, workers and
Executor(client=...), with the local pool's behaviour (definitions by
reference, prints, tracebacks, preflight, progress, interrupt, scatter).

One cluster for the module: `dask-scheduler` and `dask-worker --nworkers 2
--nthreads 1` as separate processes on 127.0.0.1 (tests/integration/
dask_cluster.py), whose workers do not have ferry on their path; one
kernel shared by the tests.  ferry-only: ipykernel has no `ferry`.
"""
import ast
import re

import pytest

import harness
from dask_cluster import DaskCluster

pytestmark = pytest.mark.ferry_only("the ferry module exists only in ferry")

T = 60.0  # one cell that talks to the cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = DaskCluster(tmp_path_factory.mktemp("dask"))
    try:
        c.start(nworkers=2)
        yield c
    finally:
        c.stop()


def run(k, code, timeout=T):
    return k.execute(code, timeout=timeout)


def value(k, code, timeout=T):
    x = run(k, code, timeout)
    assert x.status == "ok", harness.strip_ansi(x.traceback_text())
    return ast.literal_eval(x.text)


@pytest.fixture
def on_cluster(kernel, cluster):
    """The module's kernel with ferry.use(<the cluster>) in effect."""
    x = run(kernel, f"import ferry\nif ferry._cluster is None:\n"
                    f"    ferry.use({cluster.address!r})")
    assert x.status == "ok", harness.strip_ansi(x.traceback_text())
    return kernel


def test_use_switches_map_to_the_cluster_and_back(kernel, cluster):
    run(kernel, "import ferry\nferry.use(None)")
    assert value(kernel, f"ferry.use({cluster.address!r}) is None") is True
    assert value(kernel, "ferry.workers()") == 2
    # The tasks run in the cluster's worker processes, not the kernel's.
    got = value(kernel, "import os\ndef where(x):\n"
                        "    import distributed\n"
                        "    return distributed.get_worker().address, os.getppid()\n"
                        "sorted(set(ferry.map(where, range(40), chunksize=1)))")
    assert {addr for addr, _ in got} <= {a for a in value(
        kernel, "sorted(ferry._cluster.client.scheduler_info()['workers'])")}
    assert value(kernel, "ferry.use(None)") == cluster.address
    assert value(kernel, "ferry.workers() == len(os.sched_getaffinity(0))") is True
    assert value(kernel, f"ferry.use({cluster.address!r}) is None") is True


def test_map_returns_ordered_results_of_a_cell_function(on_cluster):
    assert value(on_cluster, "def square(x):\n    return x * x\n"
                             "ferry.map(square, range(30))") == [x * x for x in range(30)]
    assert value(on_cluster, "ferry.map(lambda x: -x, range(5), chunksize=1)") == \
        [0, -1, -2, -3, -4]


def test_instances_of_a_cell_class_come_back_as_that_class(on_cluster):
    got = value(on_cluster,
                "class Point:\n    def __init__(self, x):\n        self.x = x\n"
                "def make(x):\n    return Point(x)\n"
                "ps = ferry.map(make, range(6))\n"
                "[type(p) is Point for p in ps], [p.x for p in ps]")
    assert got == ([True] * 6, list(range(6)))
    # ... and travel there as the same class: the task sees them as Point.
    assert value(on_cluster, "def is_point(p):\n    return type(p).__name__, p.x\n"
                             "ferry.map(is_point, ps)") == [("Point", i) for i in range(6)]


def test_workers_need_no_ferry(on_cluster):
    # The cluster's workers cannot import ferry (dask_cluster.py keeps it off
    # their path): the notebook's `import ferry` replays as a stand-in there,
    # and the definitions still arrive.
    got = value(on_cluster, "import ferry\ndef probe(x):\n"
                            "    import importlib.machinery, sys\n"
                            "    on_path = importlib.machinery.PathFinder.find_spec('ferry')\n"
                            "    return on_path is None, sys.modules['ferry'].__doc__\n"
                            "ferry.map(probe, range(4), chunksize=1)")
    assert got == [(True, "ferry is not installed on this Dask worker")] * 4, got
    x = run(on_cluster, "def uses_ferry(x):\n    return ferry.map(abs, [x])\n"
                        "ferry.map(uses_ferry, [1])")
    assert x.status == "error" and x.content["ename"] == "ReexportError"
    assert "not installed there" in x.content["evalue"]


def test_redefinition_is_used_by_the_next_map_on_every_worker(on_cluster):
    code = ("def version(x):\n    import time, distributed\n    time.sleep(0.05)\n"
            "    return distributed.get_worker().address, {v}\n"
            "sorted(set(ferry.map(version, range(40), chunksize=1)))")
    for v in (1, 2, 3):
        got = value(on_cluster, code.format(v=v))
        assert len({addr for addr, _ in got}) == 2, got  # both workers took tasks
        assert {ver for _, ver in got} == {v}


def test_redefined_helper_called_by_the_task_is_current(on_cluster):
    run(on_cluster, "def helper():\n    return 'old'\ndef task(x):\n    return helper()")
    assert value(on_cluster, "ferry.map(task, range(4), chunksize=1)") == ["old"] * 4
    run(on_cluster, "def helper():\n    return 'new'")
    assert value(on_cluster, "ferry.map(task, range(4), chunksize=1)") == ["new"] * 4


def test_versions_replace_each_other_in_the_scheduler(on_cluster):
    for v in range(4):
        run(on_cluster, f"def again(x):\n    return {v}\nferry.map(again, [0])")
    plugins = value(on_cluster, "def plugins(dask_scheduler):\n"
                                "    return sorted(dask_scheduler.worker_plugins)\n"
                                "ferry._cluster.client.run_on_scheduler(plugins)")
    ours = [p for p in plugins if p.startswith("ferry-")]
    assert len(ours) == 2, plugins  # the runtime, and this kernel's current version
    assert len([p for p in ours if p.startswith("ferry-defs-")]) == 1


def test_workers_do_not_keep_every_version_loaded(on_cluster):
    for v in range(12):
        run(on_cluster, f"def again(x):\n    return {v}\nferry.map(again, range(4))")
    loaded = value(on_cluster,
                   "def versions():\n    import sys\n"
                   "    return len([n for n in sys.modules if n.startswith('ferry_')])\n"
                   "sorted(ferry._cluster.client.run(versions).values())")
    assert max(loaded) <= 8, loaded


def test_two_kernels_on_one_cluster_keep_their_own_definitions(on_cluster, cluster,
                                                               kernel_factory):
    other = kernel_factory()
    run(other, f"import ferry\nferry.use({cluster.address!r})")
    for k, answer in ((on_cluster, "mine"), (other, "theirs")):
        run(k, f"def whose(x):\n    return {answer!r}")
    for k, answer in ((on_cluster, "mine"), (other, "theirs")) * 2:
        assert value(k, "ferry.map(whose, range(6), chunksize=1)") == [answer] * 6


def test_task_prints_reach_the_cell(on_cluster):
    x = run(on_cluster, "import sys\ndef chatty(x):\n    print('out', x)\n"
                        "    print('err', x, file=sys.stderr)\n    return x\n"
                        "ferry.map(chatty, range(5), chunksize=1)")
    assert x.status == "ok"
    assert sorted(x.stdout.splitlines()) == [f"out {i}" for i in range(5)]
    assert sorted(x.stderr.splitlines()) == [f"err {i}" for i in range(5)]
    x = run(on_cluster, "ferry.submit(chatty, 9).result()")
    assert "out 9" in x.stdout and "err 9" in x.stderr


def test_task_exception_is_raised_as_its_type_with_the_cell_line(on_cluster):
    x = run(on_cluster, "class Bad(ValueError):\n    pass\n"
                        "def fails(x):\n    if x == 3:\n"
                        "        raise Bad(f'bad item {x}')\n    return x\n"
                        "try:\n    ferry.map(fails, range(6), chunksize=1)\n"
                        "except Bad as e:\n    caught = (type(e) is Bad, str(e))\n"
                        "caught")
    assert ast.literal_eval(x.text) == (True, "bad item 3")
    x = run(on_cluster, "ferry.map(fails, range(6))")
    assert x.status == "error" and x.content["ename"] == "Bad"
    tb = harness.strip_ansi(x.traceback_text())
    assert re.search(r"Cell In\[\d+\], line 5, in fails", tb), tb
    assert "raise Bad(f'bad item {x}')" in tb
    assert "Dask worker tcp://127.0.0.1:" in tb


def test_submit_returns_a_future_with_the_exception(on_cluster):
    assert value(on_cluster, "f = ferry.submit(fails, 3)\n"
                             "type(f.exception()).__name__, f.exception().args") == \
        ("Bad", ("bad item 3",))
    assert value(on_cluster, "ferry.submit(pow, 2, 10).result()") == 1024


def test_unpicklable_argument_fails_before_reaching_the_scheduler(on_cluster):
    count = ("def transitions(dask_scheduler):\n"
             "    return dask_scheduler.transition_counter\n"
             "ferry._cluster.client.run_on_scheduler(transitions)")
    before = value(on_cluster, count)
    x = run(on_cluster, "import threading\ndef use_lock(x):\n    return x\n"
                        "ferry.map(use_lock, [1, threading.Lock()])")
    assert x.status == "error" and x.content["ename"] == "PicklingError"
    assert "iterable[1]" in x.content["evalue"] and "lock" in x.content["evalue"]
    x = run(on_cluster, "ferry.submit(use_lock, threading.Lock())")
    assert x.status == "error" and "args[0]" in x.content["evalue"]
    assert value(on_cluster, count) == before  # no task reached the scheduler


def test_computed_global_travels_by_value_and_follows_rebinding(on_cluster, cluster):
    got = value(on_cluster, "scale = int('3')  # computed: the worker cannot replay it\n"
                            "def scaled(x):\n    return x * scale\n"
                            "first = ferry.map(scaled, range(8), chunksize=1)\n"
                            "scale = int('5')\n"
                            "first, ferry.map(scaled, range(8), chunksize=1), "
                            "ferry.submit(scaled, 2).result()")
    assert got == ([3 * x for x in range(8)], [5 * x for x in range(8)], 10)
    got = value(on_cluster, f"with ferry.Executor(client={cluster.address!r}) as ex:\n"
                            f"    a = list(ex.map(scaled, range(4)))\n"
                            f"    scale = int('2')\n"
                            f"    b = ex.submit(scaled, 4).result()\n"
                            f"a, b")
    assert got == ([0, 5, 10, 15], 8)
    # The same answer as the local pool gives.
    assert value(on_cluster, "prev = ferry.use(None)\n"
                             "try:\n    local = ferry.map(scaled, range(8))\n"
                             "finally:\n    ferry.use(prev)\nlocal") == [2 * x for x in range(8)]


def test_in_place_change_reaches_the_next_dispatch_not_tasks_already_sent(on_cluster):
    got = value(on_cluster, "import time\ncfg = {'k': 1}  # a mutable literal\n"
                            "def read_k(x):\n    time.sleep(x)\n    return cfg['k']\n"
                            "before = ferry.map(read_k, [0, 0, 0])\n"
                            "cfg['k'] = 5\n"
                            "sent = ferry.submit(read_k, 1)\n"
                            "cfg['k'] = 7  # after the submit: not seen by it\n"
                            "before, sent.result(), ferry.map(read_k, [0, 0, 0])")
    assert got == ([1, 1, 1], 5, [7, 7, 7])


def test_global_read_through_a_helper_function_travels(on_cluster):
    got = value(on_cluster, "table = {str(i): i * i for i in range(10)}\n"
                            "def lookup_sq(key):\n    return table[key]\n"
                            "def via_helper(i):\n    return lookup_sq(str(i)) + 1\n"
                            "ferry.map(via_helper, range(10))")
    assert got == [i * i + 1 for i in range(10)]


def test_each_value_of_a_global_crosses_once_not_per_task(on_cluster):
    held = ("def held(dask_scheduler):\n"
            "    return sorted(ts.nbytes for ts in dask_scheduler.tasks.values()\n"
            "                  if ts.nbytes >= 2 ** 21)\n")
    got = value(on_cluster, "import numpy as np\n"
                            "weights = np.arange(2 ** 18, dtype='float64')  # 2 MiB\n"
                            "def weigh(i):\n    return float(weights[i])\n"
                            "rs = ferry.map(weigh, range(40), chunksize=1)\n" + held +
                            "rs == [float(i) for i in range(40)], "
                            "ferry._cluster.client.run_on_scheduler(held)")
    ok, sizes = got
    assert ok
    assert len(sizes) == 1, sizes  # one copy for 40 tasks
    # Changed in place: the next map sends the new value, once.
    got = value(on_cluster, "weights[:] = -1\n"
                            "rs = ferry.map(weigh, range(40), chunksize=1)\n"
                            "set(rs), ferry._cluster.client.run_on_scheduler(held)")
    assert got[0] == {-1.0}
    assert len(got[1]) == 1, got[1]


def test_unpicklable_global_is_named_before_reaching_the_scheduler(on_cluster):
    # The keys the scheduler holds (values released by earlier tests may
    # leave in the meantime; a task or value sent would add one).
    keys = ("def keys(dask_scheduler):\n"
            "    return sorted(dask_scheduler.tasks)\n"
            "ferry._cluster.client.run_on_scheduler(keys)")
    before = set(value(on_cluster, keys))
    x = run(on_cluster, "import threading\nguard = threading.Lock()\n"
                        "def guarded(x):\n    with guard:\n        return x\n"
                        "ferry.map(guarded, range(4))")
    assert x.status == "error" and x.content["ename"] == "PicklingError"
    assert "'guard'" in x.content["evalue"] and "lock" in x.content["evalue"]
    x = run(on_cluster, "ferry.submit(guarded, 1)")
    assert x.status == "error" and "'guard'" in x.content["evalue"]
    assert not set(value(on_cluster, keys)) - before  # nothing reached the scheduler


def test_long_map_shows_progress(on_cluster):
    x = run(on_cluster, "import time\ndef slow(x):\n    time.sleep(0.1)\n    return x\n"
                        "len(ferry.map(slow, range(40), chunksize=1))")
    assert x.text == "40"
    shown = [m for m in x.outputs if m["msg_type"] in ("display_data", "update_display_data")]
    assert shown and shown[0]["msg_type"] == "display_data"
    assert "ferry.map" in shown[-1]["content"]["data"]["text/plain"]
    assert "40/40" in shown[-1]["content"]["data"]["text/plain"]


def test_large_array_shared_by_many_tasks_crosses_once(on_cluster):
    got = value(on_cluster,
                "import numpy as np\nbig = np.arange(2 ** 17, dtype='float64')  # 1 MiB\n"
                "def total(a, i):\n    return float(a.sum()) + i\n"
                "fs = [ferry.submit(total, big, i) for i in range(20)]\n"
                "rs = [f.result() for f in fs]\n"
                "def held(dask_scheduler):  # 1 MiB values: this array's size\n"
                "    return sorted(ts.nbytes for ts in dask_scheduler.tasks.values()\n"
                "                  if 2 ** 20 <= ts.nbytes < 2 ** 21)\n"
                "rs == [float(big.sum()) + i for i in range(20)], "
                "ferry._cluster.client.run_on_scheduler(held)")
    ok, held = got
    assert ok
    assert len(held) == 1, held  # one copy of the array on the cluster
    # Changed in place, it is sent again: tasks never see a stale value.
    assert value(on_cluster, "big[:] = 1\nferry.submit(total, big, 0).result()") == 2.0 ** 17


def test_interrupt_cancels_the_queued_tasks_of_a_map(on_cluster):
    run(on_cluster, "import time\ndef nap(x):\n    time.sleep(1)\n    return x")
    pending = on_cluster.submit("print('started', flush=True)\n"
                                "ferry.map(nap, range(60), chunksize=1)")
    pending.wait_for_stdout("started")
    import time
    time.sleep(2)  # tasks are running on both workers, the rest queued
    on_cluster.request("interrupt_request", channel="control")
    x = pending.finish(timeout=T)
    assert x.status == "error" and x.content["ename"] == "KeyboardInterrupt"
    # Nothing of that map is left queued on the cluster (at most the two
    # tasks that were running may still finish).  The cancel reaches the
    # scheduler in its own time: ask until it has (not after a fixed 2 s).
    # Had nothing been cancelled, 20 s would see fewer than 40 of the 58
    # queued one-second tasks run.
    left = value(on_cluster,
                 "def queued(dask_scheduler):\n"
                 "    return [k for k, ts in dask_scheduler.tasks.items()\n"
                 "            if str(k).startswith('ferry-') and ts.state != 'memory']\n"
                 "end = time.monotonic() + 20\n"
                 "while True:\n"
                 "    left = ferry._cluster.client.run_on_scheduler(queued)\n"
                 "    if len(left) <= 2 or time.monotonic() > end:\n"
                 "        break\n"
                 "    time.sleep(0.1)\n"
                 "left")
    assert len(left) <= 2, left
    assert value(on_cluster, "ferry.map(abs, [-1, -2])") == [1, 2]


def test_executor_with_a_client_runs_on_the_cluster(on_cluster, cluster):
    got = value(on_cluster,
                f"def addr(x):\n    import distributed\n"
                f"    return distributed.get_worker().address\n"
                f"with ferry.Executor(client={cluster.address!r}) as ex:\n"
                f"    got = sorted(set(ex.map(addr, range(20)))), ex.submit(square, 7).result()\n"
                f"    isinstance(ex, __import__('concurrent.futures').futures.Executor)\n"
                f"got")
    addrs, sq = got
    assert sq == 49 and addrs and all(a.startswith("tcp://127.0.0.1:") for a in addrs)


def test_users_client_is_not_closed_by_ferry(on_cluster, cluster):
    got = value(on_cluster, f"import distributed\nprev = ferry.use(None)\n"
                            f"mine = distributed.Client({cluster.address!r}, "
                            f"set_as_default=False)\n"
                            f"ferry.use(mine)\nr = ferry.map(abs, [-3])\n"
                            f"back = ferry.use(None)\n"
                            f"ferry.use(prev)\n"
                            f"out = r, back is mine, mine.status\nmine.close()\nout")
    assert got == ([3], True, "running")


def test_switching_away_never_leaves_a_submitted_future_waiting(on_cluster, cluster):
    got = value(on_cluster, "import time\nf = ferry.submit(time.sleep, 3)\n"
                            "prev = ferry.use(None)\n"
                            "e = f.exception(timeout=60)\n"
                            f"ferry.use({cluster.address!r})\n"
                            "prev, type(e).__name__")
    assert got[0] == cluster.address
    assert got[1] in ("ConnectionError", "CancelledError"), got


def test_local_map_does_not_import_distributed(kernel_factory):
    k = kernel_factory()
    assert value(k, "import ferry, sys\nferry.map(abs, [-1, -2])\n"
                    "'distributed' in sys.modules, 'ferry._dask' in sys.modules") == \
        (False, False)


def test_timeline_draws_a_map_on_the_cluster_one_lane_per_dask_worker(on_cluster, cluster):
    got = value(on_cluster, "import time\ndef nap_a_bit(x):\n    time.sleep(0.05)\n    return x\n"
                            "r = ferry.map(nap_a_bit, range(12), chunksize=1)\n"
                            "tl = ferry.timeline()\n"
                            "addrs = sorted(ferry._cluster.client.scheduler_info()['workers'])\n"
                            "(tl.summary(), sorted({t.status for t in tl.tasks}), "
                            "sorted(tl.lanes()), addrs, "
                            "min(t.ended - t.started for t in tl.tasks), "
                            "all(0 <= t.sent <= t.started <= t.ended for t in tl.tasks), "
                            "repr(tl), tl._repr_svg_())")
    summary, statuses, lanes, addrs, shortest_us, ordered, text, svg = got
    assert summary.startswith("ferry.map: 12 tasks on 2 workers"), summary
    assert statuses == ["ok"]
    assert lanes and set(lanes) <= set(addrs)  # a lane is a Dask worker's address
    assert shortest_us >= 50_000  # each bar is the task's own run on its worker
    assert ordered
    assert all(a in text for a in lanes) and all(a in svg for a in lanes)
    # A task that raises is drawn as such; an Executor(client=) keeps its maps.
    got = value(on_cluster, "def odd_fails(x):\n    if x % 2:\n        raise ValueError(x)\n"
                            "    return x\n"
                            "try:\n    ferry.map(odd_fails, range(4), chunksize=1)\n"
                            "except ValueError:\n    pass\n"
                            "bad = [t for t in ferry.timeline().tasks if t.status == 'error']\n"
                            f"with ferry.Executor(client={cluster.address!r}) as ex:\n"
                            "    list(ex.map(nap_a_bit, range(3)))\n"
                            "    mine = ferry.timeline(ex)\n"
                            "len(bad) >= 1, all(b.pid in addrs for b in bad), len(mine.tasks), "
                            "sorted({t.pid in addrs for t in mine.tasks})")
    assert got == (True, True, 3, [True])
