"""ferry on a Dask cluster when things go wrong or change: a worker that
joins later, a worker that dies mid-task, an address that does not answer,
a scheduler that dies mid-map, a worker on another Python, and kernel
shutdown.  Each test deploys its own cluster (tests/integration/
dask_cluster.py: real dask-scheduler and dask-worker processes), since it
breaks or changes it.  ferry-only: ipykernel has no `ferry`.
"""
import ast
import re
import subprocess
import sys

import pytest

import harness
from dask_cluster import DaskCluster, free_port

pytestmark = pytest.mark.ferry_only("the ferry module exists only in ferry")

T = 60.0


@pytest.fixture
def deploy(tmp_path, kernel):
    """deploy(nworkers) -> a started cluster; at the end the module's kernel
    goes back to its local pool, then the clusters stop."""
    started = []

    def start(nworkers=2, **kw):
        c = DaskCluster(tmp_path / f"dask{len(started)}")
        (tmp_path / f"dask{len(started)}").mkdir()
        started.append(c)
        return c.start(nworkers=nworkers, **kw)

    yield start
    try:
        kernel.execute("import ferry\nferry.use(None)", timeout=T)
    finally:
        for c in started:
            c.stop()


def run(k, code, timeout=T):
    return k.execute(code, timeout=timeout)


def value(k, code, timeout=T):
    x = run(k, code, timeout)
    assert x.status == "ok", harness.strip_ansi(x.traceback_text())
    return ast.literal_eval(x.text)


def test_worker_joining_later_gets_the_current_version(deploy, kernel):
    cluster = deploy(nworkers=1)
    run(kernel, f"import ferry\nferry.use({cluster.address!r})")
    code = ("def version(x):\n    import time, distributed\n    time.sleep(0.1)\n"
            "    return distributed.get_worker().address, {v}\n"
            "sorted(set(ferry.map(version, range({n}), chunksize=1)))")
    assert {v for _, v in value(kernel, code.format(v=1, n=4))} == {1}
    run(kernel, "def version(x):\n    return None, 0")  # a version never sent
    first = value(kernel, code.format(v=2, n=4))
    cluster.add_worker(nworkers=1)
    got = value(kernel, code.format(v=2, n=40))
    new = {addr for addr, _ in got} - {addr for addr, _ in first}
    assert new, got  # the worker that joined ran tasks ...
    assert {v for _, v in got} == {2}  # ... of the current version only
    run(kernel, "ferry.use(None)")


def test_worker_dying_mid_task_is_worker_crashed_and_the_rest_complete(deploy, kernel):
    cluster = deploy(nworkers=2, scheduler_env={
        "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1"})
    run(kernel, f"import ferry, os\nferry.use({cluster.address!r})")
    got = value(kernel, "import time\ndef crash(x):\n    if x == 7:\n        time.sleep(1)  # the others end first\n"
                        "        os._exit(3)\n    return x\n"
                        "fs = [ferry.submit(crash, i) for i in range(8)]\n"
                        "out = []\nfor f in fs:\n"
                        "    e = f.exception()\n"
                        "    out.append(f.result() if e is None else "
                        "(type(e).__name__, str(e)))\nout", timeout=120)
    assert got[:7] == list(range(7))
    name, message = got[7]
    assert name == "WorkerCrashed" and "KilledWorker" in message, message
    assert "more than once" in message
    x = run(kernel, "ferry.map(crash, range(8), chunksize=1)", timeout=120)
    assert x.status == "error" and x.content["ename"] == "WorkerCrashed"
    # The nanny restarts the workers; the next map works.
    assert value(kernel, "ferry.map(abs, range(-3, 0))", timeout=120) == [3, 2, 1]
    run(kernel, "ferry.use(None)")


def test_unreachable_address_fails_within_the_timeout_and_ferry_stays_local(kernel):
    address = f"tcp://127.0.0.1:{free_port()}"
    x = run(kernel, f"import ferry\nferry.use({address!r}, timeout=3)")
    assert x.status == "error" and x.content["ename"] == "ConnectionError"
    assert address in x.content["evalue"] and "within 3 s" in x.content["evalue"]
    assert value(kernel, "ferry._cluster is None, ferry.map(abs, [-1])") == (True, [1])


def test_scheduler_dying_mid_map_fails_the_cell(deploy, kernel):
    cluster = deploy(nworkers=2)
    run(kernel, f"import ferry, time\nferry.use({cluster.address!r})\n"
                "def nap(x):\n    time.sleep(0.5)\n    return x")
    pending = kernel.submit("print('started', flush=True)\n"
                            "ferry.map(nap, range(200), chunksize=1)")
    pending.wait_for_stdout("started")
    pending.wait_for(lambda x: any(m["msg_type"] == "display_data" for m in x.outputs),
                     timeout=T, what="the map's progress display")
    cluster.kill_scheduler()
    x = pending.finish(timeout=T)
    assert x.status == "error" and x.content["ename"] == "ConnectionError"
    assert cluster.address in x.content["evalue"]
    assert value(kernel, "ferry.use(None) is not None, ferry.map(abs, [-2])") == (True, [2])


def test_worker_on_another_python_is_refused_before_any_task(deploy, kernel, tmp_path):
    preload = tmp_path / "other_python.py"
    preload.write_text("import platform\nplatform.python_version = lambda: '3.99.1'\n")
    cluster = deploy(nworkers=1)
    run(kernel, f"import ferry\nferry.use({cluster.address!r})\n"
                "def task(x):\n    return x")
    cluster.add_worker(nworkers=1, extra=("--preload", str(preload)))
    run(kernel, "ferry._cluster.client.wait_for_workers(2, timeout=30)")
    x = run(kernel, "ferry.map(task, range(4))")
    assert x.status == "error" and x.content["ename"] == "RuntimeError"
    mine = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert "3.99.1" in x.content["evalue"] and f"Python {mine}" in x.content["evalue"]
    assert "the Dask worker tcp://127.0.0.1:" in x.content["evalue"]  # said before dispatch
    run(kernel, "ferry.use(None)")
    # Choosing that cluster is refused too, and ferry stays local.
    x = run(kernel, f"ferry.use({cluster.address!r})")
    assert x.status == "error" and "3.99.1" in x.content["evalue"]
    assert value(kernel, "ferry._cluster is None") is True


def _scheduler_clients(address):
    code = ("import sys, distributed\n"
            "c = distributed.Client(sys.argv[1], timeout=30)\n"
            "print(sorted(c.run_on_scheduler(lambda dask_scheduler: "
            "list(dask_scheduler.clients))))\n"
            "c.close()\n")
    out = subprocess.run([sys.executable, "-c", code, address], check=True, timeout=90,
                         capture_output=True, text=True).stdout
    return ast.literal_eval(out.strip().splitlines()[-1])


def test_kernel_shutdown_closes_the_client_ferry_made(deploy, kernel_factory):
    cluster = deploy(nworkers=1)
    k = kernel_factory()
    client_id = value(k, f"import ferry\nferry.use({cluster.address!r})\n"
                         f"ferry.map(abs, [-1])\nferry._cluster.client.id")
    assert client_id in _scheduler_clients(cluster.address)
    k.stop()  # fails if the kernel leaves any process behind
    assert client_id not in _scheduler_clients(cluster.address)
    log = cluster.log("scheduler")
    assert re.search(rf"Remove client {re.escape(client_id)}", log), log[-2000:]
