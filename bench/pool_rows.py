"""Pool rows: ferry.map / ferry.submit inside a ferry kernel against
multiprocessing.Pool (fork, spawn, forkserver), ProcessPoolExecutor and joblib
in a plain /usr/bin/python3 script (pool_stdlib.py).

Each side times its own operation in-process with perf_counter (the ferry
side inside the cell), so neither pays for the client or the cell around it.
Every ferry operation has a deadline: a hang is that sample's failure, the
kernel is killed and a fresh one set up for the next sample.
"""

import json
import os
import select
import shutil
import subprocess
import sys
import time

import psutil

import jclient
from report import Row

HERE = os.path.dirname(os.path.abspath(__file__))
STDLIB = os.path.join(HERE, "pool_stdlib.py")
PY = "/usr/bin/python3"
NPROC = len(os.sched_getaffinity(0))
NAMES = {"fork": "Pool(fork)", "spawn": "Pool(spawn)", "forkserver": "Pool(forkserver)",
         "ppe": "ProcessPoolExecutor", "joblib": "joblib(loky)"}

# ferry.Executor resolves ferry's pool module: imports done before any
# clock starts, as pool_stdlib.py has done its own at the top of the script.
SETUP = """\
import ferry, time, json, os
import numpy as np
ferry.Executor
def inc(x):
    return x + 1
def asum(a):
    return float(a[0])
def nap(s):
    time.sleep(s)
    return s
def readbig(x):
    return x + int(big[0])
"""
BIG_ITEMS = 30 * 2**20 // 8  # float64: a 30 MiB global


class Hung(RuntimeError):
    pass


def kill_tree(pid):
    try:
        procs = [psutil.Process(pid)]
        procs += procs[0].children(recursive=True)
    except psutil.Error:
        return
    for p in procs:
        try:
            p.kill()
        except psutil.Error:
            pass


class Stdlib:
    """The long-lived pool_stdlib.py server (pools warm across commands)."""

    def __init__(self, impls):
        self.impls = impls
        self.p = None

    def start(self, timeout):
        self.stop()
        self.p = subprocess.Popen([PY, STDLIB, "serve"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  text=True, start_new_session=True, cwd=HERE)
        self.ask({"op": "setup", "impls": self.impls}, timeout)

    def ask(self, cmd, timeout):
        if self.p is None:
            self.start(timeout * 2)
        self.p.stdin.write(json.dumps(cmd) + "\n")
        self.p.stdin.flush()
        ready, _, _ = select.select([self.p.stdout], [], [], timeout)
        line = self.p.stdout.readline() if ready else ""
        if not line:
            self.stop()
            raise Hung("%s: no answer within %.0f s" % (cmd.get("op"), timeout))
        ans = json.loads(line)
        if "error" in ans:
            raise RuntimeError(ans["error"])
        return ans.get("t")

    def stop(self):
        if self.p is not None:
            kill_tree(self.p.pid)
            self.p.wait()
            self.p = None


def stdlib_cold(impl, timeout):
    p = subprocess.Popen([PY, STDLIB, "cold", impl], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True, start_new_session=True,
                         cwd=HERE)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(p.pid)
        p.wait()
        raise Hung("cold %s: no answer within %.0f s" % (impl, timeout))
    if p.returncode != 0 or not out.strip():
        raise RuntimeError("cold %s exited %s" % (impl, p.returncode))
    return json.loads(out.splitlines()[-1])["t"]


class Ferry:
    """A ferry kernel with the task functions defined in a cell."""

    def __init__(self, argv, cfg, log):
        self.argv = argv
        self.cfg = cfg
        self.log = log
        self.k = None
        self.hangs = 0          # consecutive hangs; after two we stop trying

    def start(self, warm=True):
        self.stop()
        self.k = jclient.Kernel("ferry", self.argv)
        self.k.launch()
        self.k.wait_ready()
        self.k.execute(SETUP, timeout=self.cfg.timeout)
        if warm:
            self.eval("ferry.map(inc, range(100)); json.dumps(0)")

    def stop(self):
        if self.k is not None:
            self.k.stop()
            self.k = None

    def eval(self, code, timeout=None):
        """Runs a cell whose last line is json.dumps(x); returns x."""
        if self.hangs >= 2:
            raise Hung("not tried: the ferry pool hung twice in this run")
        timeout = timeout or self.cfg.pool_timeout
        if self.k is None or not self.k.alive():
            self.start()
        try:
            v = self.k.eval(code, timeout=timeout)
        except jclient.Timeout:
            self.hangs += 1
            self.stop()
            raise Hung("no reply within %.0f s (pool hang?)" % timeout)
        except (jclient.KernelDied, RuntimeError):
            self.stop()
            raise
        self.hangs = 0
        return v


def timed(expr_lines):
    """A cell that times expr_lines (the last assigns _r) and returns seconds."""
    return ("_t = time.perf_counter()\n" + expr_lines +
            "\n_t = time.perf_counter() - _t\njson.dumps(_t)")


def _ping_pong(kind, reps):
    """Median round trip of one byte between this process and a child over
    an AF_UNIX socketpair (as ferry's pool), ZeroMQ ipc (DEALER/ROUTER, the
    pool's link before the socketpair) or a pair of pipes (as
    multiprocessing's pools), no task around it: the floor of each
    transport's single-task round trip on this machine."""
    import socket
    import tempfile
    import zmq
    if kind == "socketpair":
        s, t = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:
            try:
                s.close()
                while t.recv(1) == b"x":
                    t.send(b"x")
            finally:
                os._exit(0)
        t.close()
        ts = []
        for _ in range(reps):
            tm = time.perf_counter()
            s.send(b"x")
            s.recv(1)
            ts.append(time.perf_counter() - tm)
        s.send(b"q")
        s.close()
    elif kind == "zmq":
        tmp = tempfile.mkdtemp(prefix="ferry-bench-")
        ep = "ipc://%s/ping" % tmp
        pid = os.fork()
        if pid == 0:
            try:
                s = zmq.Context().socket(zmq.DEALER)
                s.connect(ep)
                s.send(b"r")
                while s.recv() != b"q":
                    s.send(b"x")
            finally:
                os._exit(0)
        ctx = zmq.Context()
        r = ctx.socket(zmq.ROUTER)
        r.bind(ep)
        ident = r.recv_multipart()[0]
        ts = []
        for _ in range(reps):
            t = time.perf_counter()
            r.send_multipart([ident, b"x"])
            r.recv_multipart()
            ts.append(time.perf_counter() - t)
        r.send_multipart([ident, b"q"])
        r.close(0)
        ctx.term()
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        a, b = os.pipe()
        c, d = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                while os.read(a, 1) == b"x":
                    os.write(d, b"x")
            finally:
                os._exit(0)
        ts = []
        for _ in range(reps):
            t = time.perf_counter()
            os.write(b, b"x")
            os.read(c, 1)
            ts.append(time.perf_counter() - t)
        os.write(b, b"q")
        for fd in (a, b, c, d):
            os.close(fd)
    os.waitpid(pid, 0)
    ts.sort()
    return ts[len(ts) // 2]


def transport_floor(cfg, rows, log):
    """The pool's socketpair (and ZeroMQ ipc, its former link) vs pipes:
    what bounds the single-task row."""
    kinds = [("socketpair", "transport round trip, no task: socketpair (ferry) vs pipes",
              "the floor under the single-task row; same process pair, Python"),
             ("zmq", "transport round trip, no task: ZeroMQ ipc (ferry's former link) "
              "vs pipes", "for the record: the pool's link before the socketpair")]
    made = []
    for kind, title, note in kinds:
        r = Row("pool", title, "time", "s", "pipes (multiprocessing)", None, note)
        rows.append(r)
        made.append((kind, r))
    log("pool: transport floor, %d rounds" % cfg.pool_rounds)
    for rnd in range(cfg.pool_rounds):
        for kind, r in made:
            order = (kind, "pipe") if rnd % 2 == 0 else ("pipe", kind)
            got = {k: _ping_pong(k, 500 if cfg.quick else 2000) for k in order}
            r.add(got[kind], got["pipe"])


def run(cfg, ferry_argv, log):
    rows = []
    ferry = Ferry(ferry_argv, cfg, log)
    std = Stdlib([])
    try:
        _run(cfg, ferry, std, rows, log)
        transport_floor(cfg, rows, log)
    finally:                    # also on Ctrl-C: no kernel or pool outlives the run
        ferry.stop()
        std.stop()
    return rows


def _run(cfg, ferry, std, rows, log):
    cfg.pool_timeout = 8.0 if cfg.quick else 60.0
    n, nrt, nnp, nch = cfg.tasks, cfg.rt_tasks, cfg.np_tasks, cfg.chunk_tasks

    def row(title, kind, unit, impl, target=None, note=""):
        r = Row("pool", title, kind, unit, NAMES[impl], target, note)
        r.impl = impl
        rows.append(r)
        return r

    # (ferry cell, [(impl, stdlib command, row)]) for the warm rows.
    chk = "assert _r == list(range(1, %d))" % (n + 1)
    warm = [
        ("map %d trivial tasks, chunksize=1" % n,
         timed("_r = ferry.map(inc, range(%d), chunksize=1)" % n) .replace(
             "\njson", "\n" + chk + "\njson"),
         [("fork", (">=", 1.5)), ("spawn", None), ("forkserver", None),
          ("ppe", None), ("joblib", None)],
         lambda impl: {"op": "map", "impl": impl, "n": n, "chunksize": 1}),
        # ProcessPoolExecutor's default is chunksize=1 (the row above): at
        # a million tasks it would take a minute a round, so it is left out.
        ("map %d trivial tasks, default chunking" % nch,
         timed("_r = ferry.map(inc, range(%d))" % nch).replace(
             "\njson", "\nassert _r == list(range(1, %d))\ndel _r\njson" % (nch + 1)),
         [("fork", (">=", 1.0)), ("joblib", (">=", 1.5))],
         lambda impl: {"op": "map", "impl": impl, "n": nch, "chunksize": None}),
        ("single task round trip (median of %d)" % nrt,
         "_ts = []\nfor _ in range(%d):\n    _t = time.perf_counter()\n"
         "    ferry.submit(inc, 1).result()\n    _ts.append(time.perf_counter() - _t)\n"
         "_ts.sort()\njson.dumps(_ts[len(_ts) // 2])" % nrt,
         [("fork", ("<=", 0.5)), ("ppe", None), ("joblib", None)],
         lambda impl: {"op": "rt", "impl": impl, "reps": nrt}),
        ("map %d tasks with 1 MiB numpy arguments" % nnp,
         "_arrs = [np.full(%d, float(i)) for i in range(%d)]\n" % (2**20 // 8, nnp) +
         timed("_r = ferry.map(asum, _arrs)").replace(
             "\njson", "\nassert _r == [float(i) for i in range(%d)]\ndel _arrs\njson" % nnp),
         [("fork", (">=", 1.5)), ("ppe", None), ("joblib", None)],
         lambda impl: {"op": "np", "impl": impl, "n": nnp}),
    ]
    # A computed global read by every task: each round binds a new 30 MiB
    # array before the clock, so ferry's figure includes sending it (once to
    # each worker); a fork pool made after the binding (not timed) inherits
    # it, joblib pickles the function by value with it.
    rounds_seen = [0]

    def big_cmd(impl):
        return {"op": "big", "impl": impl, "n": n, "value": rounds_seen[0]}

    def big_cell(value):
        return ("big = np.full(%d, float(%d))\n" % (BIG_ITEMS, value) +
                timed("_r = ferry.map(readbig, range(%d), chunksize=1)" % n).replace(
                    "\njson", "\nassert _r == [x + %d for x in range(%d)]\njson" % (value, n)))
    warm.append(("map %d tasks reading a 30 MiB global, chunksize=1" % n, big_cell,
                 [("joblib", (">=", 5.0)), ("fork", (">=", 1.0))], big_cmd))
    warm_rows = []
    for title, cell, impls, cmd in warm:
        rs = []
        for impl, target in impls:
            # Rates: tasks per second, so that "≥ 1.5×" reads as throughput.
            if "round trip" in title:
                rs.append((impl, row(title, "time", "s", impl, target)))
            else:
                rs.append((impl, row(title, "rate", "tasks/s", impl, target)))
        warm_rows.append((title, cell, rs, cmd))
    impls_all = sorted({impl for _, _, rs, _ in warm_rows for impl, _ in rs} | {"fork"})

    std.impls = impls_all
    log("pool: starting a ferry kernel and the stdlib pools (%s)" % ", ".join(impls_all))
    try:
        std.start(cfg.pool_timeout * 2)
    except (Hung, RuntimeError) as e:
        log("  stdlib pools failed to start: %s" % e)
    try:
        ferry.start()
    except (Hung, jclient.Timeout, jclient.KernelDied, RuntimeError) as e:
        log("  ferry warm-up failed: %s" % str(e).splitlines()[0])
        if isinstance(e, jclient.Timeout):
            ferry.hangs += 1
        ferry.stop()

    def count(title, t):
        if t is None:
            return None
        if "round trip" in title:
            return t
        if "numpy" in title:
            return nnp / t
        if "default chunking" in title:
            return nch / t
        return n / t

    for rnd in range(cfg.pool_rounds):
        log("pool: round %d/%d" % (rnd + 1, cfg.pool_rounds))
        for title, cell, rs, cmd in warm_rows:
            rounds_seen[0] = rnd + 1

            def do_ferry():
                try:
                    if callable(cell):  # made for this round's value
                        return ferry.eval(cell(rnd + 1)), None
                    return ferry.eval(cell), None
                except (Hung, jclient.KernelDied, RuntimeError) as e:
                    return None, "ferry: " + str(e).splitlines()[0]

            def do_std():
                out = {}
                for impl, _ in rs:
                    try:
                        out[impl] = (std.ask(cmd(impl), cfg.pool_timeout), None)
                    except (Hung, RuntimeError) as e:
                        out[impl] = (None, "%s: %s" % (NAMES[impl], e))
                return out

            if rnd % 2 == 0:
                fv, ferr = do_ferry()
                sv = do_std()
            else:
                sv = do_std()
                fv, ferr = do_ferry()
            for impl, r in rs:
                ov, oerr = sv[impl]
                if ferr:
                    r.fail(ferr)
                if oerr:
                    r.fail(oerr)
                r.add(count(title, fv), count(title, ov))

    # ---- interrupt of a running map ------------------------------------------
    r_int = row("SIGINT during a map of sleep(10) → KeyboardInterrupt", "abs", "s", "fork",
                ("<=", 0.200), note="ferry: to the execute_reply; Pool: to the exception")
    r_after = []

    def ferry_interrupt():
        if ferry.hangs >= 2:
            raise Hung("not tried: the ferry pool hung twice in this run")
        if ferry.k is None or not ferry.k.alive():
            ferry.start()
        try:
            dt = ferry.k.interrupt_cell("ferry.map(nap, [10] * %d, chunksize=1)" % (2 * NPROC),
                                        0.3)
        except jclient.Timeout:
            ferry.stop()
            raise Hung("no reply within 15 s of SIGINT")
        # The pool must stay usable.
        try:
            ferry.eval("json.dumps(ferry.map(inc, range(10)))", timeout=15)
        except (Hung, RuntimeError, jclient.KernelDied) as e:
            r_after.append(str(e).splitlines()[0])
        return dt

    log("pool: interrupt of a running map, %d rounds" % cfg.pool_rounds)
    for rnd in range(cfg.pool_rounds):
        res = {}
        for side in (("ferry", "std") if rnd % 2 == 0 else ("std", "ferry")):
            try:
                if side == "ferry":
                    res[side] = ferry_interrupt()
                else:
                    res[side] = std.ask({"op": "interrupt", "impl": "fork"}, 30)
            except (Hung, RuntimeError, jclient.Timeout, jclient.KernelDied) as e:
                res[side] = None
                r_int.fail("%s: %s" % (side, str(e).splitlines()[0]))
        r_int.add(res["ferry"], res["std"])
    if r_after:
        r_int.fail("pool not usable after the interrupt: " + r_after[0])
    ferry.stop()
    std.stop()

    # ---- cold pool to first result ------------------------------------------------
    cold_impls = [("fork", ("<=", 1.0)), ("spawn", None), ("forkserver", None),
                  ("ppe", None), ("joblib", None)]
    r_cold = [row("cold pool → first result: ferry.submit, shared pool, fresh kernel",
                  "time", "s", impl, target) for impl, target in cold_impls]
    r_cold_ex = [row("cold pool → first result: ferry.Executor(%d)" % NPROC,
                     "time", "s", impl) for impl, _ in cold_impls]

    def ferry_cold():
        ferry.start(warm=False)
        a = ferry.eval(timed("_r = ferry.submit(inc, 1).result()"))
        b = ferry.eval("_t = time.perf_counter()\n_ex = ferry.Executor(%d)\n"
                       "_r = _ex.submit(inc, 1).result()\n_t = time.perf_counter() - _t\n"
                       "_ex.shutdown()\njson.dumps(_t)" % NPROC)
        ferry.stop()
        return a, b

    log("pool: cold starts, %d rounds" % cfg.cold_rounds)
    for rnd in range(cfg.cold_rounds):
        fres, ferr, sres = (None, None), None, {}
        for side in (("ferry", "std") if rnd % 2 == 0 else ("std", "ferry")):
            if side == "ferry":
                try:
                    fres = ferry_cold()
                except (Hung, RuntimeError, jclient.Timeout, jclient.KernelDied) as e:
                    ferr = "ferry: " + (str(e).splitlines() or [repr(e)])[0]
                    ferry.stop()
            else:
                for impl, _ in cold_impls:
                    try:
                        sres[impl] = (stdlib_cold(impl, cfg.pool_timeout), None)
                    except (Hung, RuntimeError) as e:
                        sres[impl] = (None, "%s: %s" % (NAMES[impl], e))
        for i, (impl, _) in enumerate(cold_impls):
            for r, fv in ((r_cold[i], fres[0]), (r_cold_ex[i], fres[1])):
                if ferr:
                    r.fail(ferr)
                if sres[impl][1]:
                    r.fail(sres[impl][1])
                r.add(fv, sres[impl][0])


if __name__ == "__main__":
    sys.exit("run bench/bench.py --only pool")
