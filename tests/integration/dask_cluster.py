"""A real Dask cluster for the tests, deployed as users deploy one: a
`dask-scheduler` process and `dask-worker` processes on 127.0.0.1, on ports
they choose themselves, without dashboards.  Each process is the leader of its own session,
so stop() ends it and everything it started (the nanny's worker processes)
by its process group, and checks that none is left.

    cluster = DaskCluster(tmp_path)
    cluster.start(nworkers=2)        # one dask-worker process, 2 workers
    cluster.address                  # "tcp://127.0.0.1:PORT"
    cluster.add_worker(nworkers=1)   # another dask-worker joins
    cluster.stop()
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time

START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
BIN = "/usr/bin"


def free_port():
    """A port nothing listens on now (for an address that must not answer;
    a server must choose its own port: this one may be taken by then)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def _group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


class DaskCluster:
    def __init__(self, workdir, env=None):
        self.workdir = str(workdir)
        self.env = dict(os.environ, **(env or {}))
        # The workers must not find ferry: a cluster's machines need not
        # have it installed.
        self.env.pop("PYTHONPATH", None)
        self.procs = []
        self.address = None
        self.workers_started = 0

    def _spawn(self, argv, name, env=None):
        log = open(os.path.join(self.workdir, f"{name}.log"), "wb")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=self.workdir,
                                env=env or self.env, start_new_session=True)
        log.close()
        self.procs.append(proc)
        return proc

    def start(self, nworkers=2, scheduler_env=None):
        # Port 0: the scheduler binds a port the kernel gives it and writes
        # its address to the scheduler file once it listens.  (A port picked
        # here and bound later can be taken in between by any process of a
        # busy machine.)
        env = dict(self.env, **(scheduler_env or {}))
        info = os.path.join(self.workdir, "scheduler.json")
        # The HTTP server (health checks) runs without the dashboard too, on
        # 8787 unless told otherwise: another run's scheduler may hold it.
        self.scheduler = self._spawn(
            [f"{BIN}/dask-scheduler", "--host", "127.0.0.1", "--port", "0",
             "--scheduler-file", info, "--no-dashboard", "--dashboard-address", "127.0.0.1:0",
             "--no-show"], "scheduler", env)
        self.address = self._wait_for_address(info)
        if nworkers:
            self.add_worker(nworkers)
        return self

    def _wait_for_address(self, info, timeout=START_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            try:
                with open(info) as f:
                    return json.load(f)["address"]
            except (OSError, ValueError, KeyError):
                pass  # not written yet, or written halfway
            if self.scheduler.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("dask-scheduler did not start:\n" +
                                     self.log("scheduler")[-3000:])
            time.sleep(0.1)

    def add_worker(self, nworkers=1, wait=True, extra=(), env=None):
        self.workers_started += nworkers
        name = f"worker{len(self.procs)}"
        proc = self._spawn(
            [f"{BIN}/dask-worker", self.address, "--nworkers", str(nworkers),
             "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard",
             "--local-directory", os.path.join(self.workdir, name), *extra],
            name, dict(self.env, **(env or {})))
        if wait:
            self.wait_for_workers(self.workers_started)
        return proc

    def wait_for_workers(self, n, timeout=START_TIMEOUT):
        """Waits until the scheduler knows n workers (asked with a Client in
        a child process, so this test process never imports distributed)."""
        code = ("import sys, distributed\n"
                "c = distributed.Client(sys.argv[1], timeout=30)\n"
                "c.wait_for_workers(int(sys.argv[2]), timeout=float(sys.argv[3]))\n"
                "c.close()\n")
        subprocess.run([sys.executable, "-c", code, self.address, str(n), str(timeout)],
                       check=True, timeout=timeout + 30, env=self.env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def log(self, name):
        with open(os.path.join(self.workdir, f"{name}.log"), errors="replace") as f:
            return f.read()

    def kill_scheduler(self):
        os.killpg(self.scheduler.pid, signal.SIGKILL)
        self.scheduler.wait(timeout=STOP_TIMEOUT)

    def stop(self):
        """Stops every process started, workers first; raises if one is left."""
        for proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + STOP_TIMEOUT
        for proc in reversed(self.procs):
            while time.monotonic() < deadline and (proc.poll() is None
                                                   or _group_alive(proc.pid)):
                time.sleep(0.1)
            for target in (proc.pid,):
                if _group_alive(target):
                    os.killpg(target, signal.SIGKILL)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        left = [p.pid for p in self.procs if p.poll() is None or _group_alive(p.pid)]
        self.procs = []
        assert not left, f"Dask processes left running: {left}"
