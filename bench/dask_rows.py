"""Dask rows: ferry.map and ferry.submit on a Dask cluster against Dask's
own client.map of an importable function (bench/dask_tasks.py), on the same
cluster, from the same kernel, through the same distributed.Client.

The cluster is deployed as users deploy one: a `dask-scheduler` and one
`dask-worker --nworkers 2 --nthreads 1` process on 127.0.0.1, no
dashboards, each in a session of its own and killed by pid at the end.
The workers' PYTHONPATH is bench/ (for dask_tasks); they have no ferry.
Both sides time their operation inside the cell with perf_counter and
check its results; the order of the sides flips every round.
"""
import os
import signal
import socket
import subprocess
import time

import jclient
from report import Row

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = "/usr/bin"
SPIN_TASKS = 1000
NP_TASKS = 200

SETUP = """\
import sys, time, json
sys.path.insert(0, {here!r})
import numpy as np
import ferry
import dask_tasks
ferry.use({address!r})
client = ferry._cluster.client
client.wait_for_workers(2, timeout=60)
def spin(x):
    t = time.perf_counter()
    while time.perf_counter() - t < 0.001:
        pass
    return x
def asum(a, i):
    return float(a[0]) + i
def asum2(job):
    return asum(*job)
big = np.full(2 ** 17, 1.0)  # 1 MiB
ferry.map(spin, range(20)); client.gather(client.map(dask_tasks.spin, range(20), pure=False))
json.dumps(0)
"""


def timed(lines, check):
    return ("_t = time.perf_counter()\n" + lines + "\n_t = time.perf_counter() - _t\n"
            + check + "\njson.dumps(_t)")


SPIN_OK = "assert _r == list(range(%d))" % SPIN_TASKS
NP_OK = "assert _r == [1.0 + i for i in range(%d)]" % NP_TASKS

# (title, ferry cell, Dask cell)
TIMED = [
    ("%d tasks of 1 ms: ferry.map (default chunks) vs client.map" % SPIN_TASKS,
     timed("_r = ferry.map(spin, range(%d))" % SPIN_TASKS, SPIN_OK),
     timed("_r = client.gather(client.map(dask_tasks.spin, range(%d), pure=False))"
           % SPIN_TASKS, SPIN_OK)),
    ("%d tasks of 1 ms: ferry.map(chunksize=1) vs client.map" % SPIN_TASKS,
     timed("_r = ferry.map(spin, range(%d), chunksize=1)" % SPIN_TASKS, SPIN_OK),
     timed("_r = client.gather(client.map(dask_tasks.spin, range(%d), pure=False))"
           % SPIN_TASKS, SPIN_OK)),
    ("%d tasks with a 1 MiB numpy argument: ferry.map(chunksize=1) vs client.map of a "
     "scattered array" % NP_TASKS,
     timed("_r = ferry.map(asum2, [(big, i) for i in range(%d)], chunksize=1)" % NP_TASKS,
           NP_OK),
     timed("_a = client.scatter(big)\n"
           "_r = client.gather(client.map(dask_tasks.asum, [_a] * %d, range(%d), "
           "pure=False))" % (NP_TASKS, NP_TASKS), NP_OK)),
    ("%d tasks with a 1 MiB numpy argument: ferry.submit each vs client.submit each "
     "of a scattered array" % NP_TASKS,
     timed("_fs = [ferry.submit(asum, big, i) for i in range(%d)]\n"
           "_r = [f.result() for f in _fs]" % NP_TASKS, NP_OK),
     timed("_a = client.scatter(big)\n"
           "_fs = [client.submit(dask_tasks.asum, _a, i, pure=False) for i in range(%d)]\n"
           "_r = client.gather(_fs)" % NP_TASKS, NP_OK)),
]

# After a redefinition, both sides must run the new definition: the share
# of correct results (1.0 is right).
REDEFINE = """\
def helper():
    return {n}
def cellf(x):
    return x + helper()
_want = [x + {n} for x in range(50)]
_f = ferry.map(cellf, range(50), chunksize=1) == _want
_d = client.gather(client.map(cellf, range(50), pure=False)) == _want
json.dumps([_f, _d])
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """dask-scheduler and dask-worker processes, killed by pid at stop()."""

    def __init__(self):
        self.procs = []
        self.address = None

    def start(self):
        import tempfile
        self.dir = tempfile.mkdtemp(prefix="fb-dask-", dir="/tmp")
        port = free_port()
        self.address = "tcp://127.0.0.1:%d" % port
        env = dict(os.environ, PYTHONPATH=HERE)
        self._spawn([BIN + "/dask-scheduler", "--host", "127.0.0.1", "--port", str(port),
                     "--no-dashboard", "--no-show"], env)
        self._spawn([BIN + "/dask-worker", self.address, "--nworkers", "2",
                     "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard",
                     "--local-directory", self.dir], env)

    def _spawn(self, argv, env):
        log = open(os.path.join(self.dir, os.path.basename(argv[0]) + ".log"), "wb")
        self.procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, env=env, cwd=self.dir,
                                           start_new_session=True))
        log.close()

    def stop(self):
        for p in reversed(self.procs):
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(p.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    p.wait(timeout=10)
                    time.sleep(0.5)  # the nanny's workers leave with it
                except subprocess.TimeoutExpired:
                    pass
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.procs = []
        if self.address is not None:
            import shutil
            shutil.rmtree(self.dir, ignore_errors=True)


def run(cfg, ferry_argv, log):
    rows = []
    cluster = Cluster()
    kernel = None
    try:
        cluster.start()
        kernel = jclient.Kernel("ferry", ferry_argv)
        kernel.launch()
        kernel.wait_ready()
        kernel.eval(SETUP.format(here=HERE, address=cluster.address), timeout=120)
        _measure(cfg, kernel, rows, log)
    finally:                    # also on Ctrl-C: nothing outlives the run
        if kernel is not None:
            kernel.stop()
        cluster.stop()
    return rows


def _measure(cfg, kernel, rows, log):
    timeout = 30.0 if cfg.quick else 120.0
    timed_rows = []
    for title, fcell, dcell in TIMED:
        other = "Dask client.submit" if "client.submit" in title else "Dask client.map"
        r = Row("dask", title, "time", "s", other, ("<=", 1.1),
                "same 2-worker cluster and Client; ferry's layer")
        rows.append(r)
        timed_rows.append((r, fcell, dcell))
    r_redef = Row("dask", "after a redefinition: results of the new definition "
                  "(ferry.map vs Dask client.map of the cell function)", "abs", "share",
                  "Dask client.map", (">=", 1.0), "1.0 = every result from the new code")
    r_int = Row("dask", "SIGINT during a cluster map of sleep(1) tasks → KeyboardInterrupt",
                "abs", "s", "(none)", ("<=", 1.0), "ferry only: to the execute_reply")
    rows += [r_redef, r_int]

    def ev(cell):
        try:
            return kernel.eval(cell, timeout=timeout), None
        except (jclient.Timeout, jclient.KernelDied, RuntimeError) as e:
            return None, str(e).splitlines()[0]

    for rnd in range(cfg.pool_rounds):
        log("dask: round %d/%d" % (rnd + 1, cfg.pool_rounds))
        for r, fcell, dcell in timed_rows:
            if rnd % 2 == 0:
                (fv, ferr), (dv, derr) = ev(fcell), ev(dcell)
            else:
                (dv, derr), (fv, ferr) = ev(dcell), ev(fcell)
            for side, err in (("ferry", ferr), ("dask", derr)):
                if err:
                    r.fail("%s: %s" % (side, err))
            r.add(fv, dv)
        got, err = ev(REDEFINE.format(n=1000 + rnd))
        if err:
            r_redef.fail(err)
            r_redef.add(None, None)
        else:
            r_redef.add(float(got[0]), float(got[1]))
        r_int.add(_interrupt(kernel, r_int), None)


def _interrupt(kernel, row):
    """Seconds from SIGINT to the execute_reply with KeyboardInterrupt."""
    try:
        dt = kernel.interrupt_cell("ferry.map(time.sleep, [1] * 40, chunksize=1)", 1.5)
    except (jclient.Timeout, jclient.KernelDied, RuntimeError) as e:
        row.fail(str(e).splitlines()[0])
        return None
    # The kernel is idle again (interrupt_cell waits for it): the next map
    # must work.
    try:
        if kernel.eval("json.dumps(ferry.map(abs, [-1, -2]))", timeout=60) != [1, 2]:
            row.fail("the map after the interrupt gave a wrong result")
    except (jclient.Timeout, jclient.KernelDied, RuntimeError) as e:
        row.fail("the map after the interrupt: " + str(e).splitlines()[0])
    return dt
