#!/usr/bin/python3
"""The standard-library (and joblib) side of the pool rows.

Run by pool_rows.py as a plain /usr/bin/python3 script, so that the task
functions are module-level functions of a real __main__ file: the way a
script (not a notebook) uses these pools, and the only way spawn and
forkserver can find them.

    pool_stdlib.py serve          JSON commands on stdin, one JSON answer a line
    pool_stdlib.py cold IMPL      one cold start, printed as JSON

Every time is taken in this process with perf_counter around the operation
alone: pools are created and warmed before a warm row, and arguments are
built before the clock starts.
"""

import concurrent.futures
import json
import multiprocessing
import os
import signal
import sys
import threading
import time

import numpy as np
import joblib

NPROC = len(os.sched_getaffinity(0))
ARRAY_ITEMS = 2**20 // 8          # float64: 1 MiB per argument


def inc(x):
    return x + 1


def asum(a):
    return float(a[0])


def nap(s):
    time.sleep(s)
    return s


BIG_ITEMS = 30 * 2**20 // 8       # float64: the 30 MiB global
big = None


def readbig(x):
    return x + int(big[0])


# ---------------------------------------------------------------- pools

def make(impl):
    if impl in ("fork", "spawn", "forkserver"):
        return multiprocessing.get_context(impl).Pool(NPROC)
    if impl == "ppe":
        return concurrent.futures.ProcessPoolExecutor(NPROC)
    if impl == "joblib":
        return joblib.Parallel(n_jobs=NPROC)
    raise ValueError(impl)


def close(impl, pool):
    if impl == "joblib":
        return
    if impl == "ppe":
        pool.shutdown(wait=True, cancel_futures=True)
    else:
        pool.terminate()
        pool.join()


def run_map(impl, pool, fn, items, chunksize):
    """fn over items; chunksize None means the implementation's default
    (Pool: len/(4·workers); ProcessPoolExecutor: 1; joblib: batch_size='auto')."""
    if impl in ("fork", "spawn", "forkserver"):
        if chunksize is None:
            return pool.map(fn, items)
        return pool.map(fn, items, chunksize)
    if impl == "ppe":
        return list(pool.map(fn, items, chunksize=chunksize or 1))
    if impl == "joblib":
        par = joblib.Parallel(n_jobs=NPROC, batch_size=chunksize or "auto")
        return par(joblib.delayed(fn)(x) for x in items)
    raise ValueError(impl)


def one(impl, pool):
    if impl in ("fork", "spawn", "forkserver"):
        return pool.apply(inc, (1,))
    if impl == "ppe":
        return pool.submit(inc, 1).result()
    return pool([joblib.delayed(inc)(1)])[0]


# ---------------------------------------------------------------- ops

def op_map(pools, impl, n, chunksize):
    items = list(range(n))
    t = time.perf_counter()
    r = run_map(impl, pools[impl], inc, items, chunksize)
    t = time.perf_counter() - t
    if r != [x + 1 for x in items]:
        raise RuntimeError("wrong results")
    return t


def op_rt(pools, impl, reps):
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        one(impl, pools[impl])
        ts.append(time.perf_counter() - t)
    ts.sort()
    return ts[len(ts) // 2]


def op_np(pools, impl, n):
    arrs = [np.full(ARRAY_ITEMS, float(i)) for i in range(n)]
    t = time.perf_counter()
    r = run_map(impl, pools[impl], asum, arrs, None)
    t = time.perf_counter() - t
    if r != [float(i) for i in range(n)]:
        raise RuntimeError("wrong results")
    return t


def op_big(pools, impl, n, value):
    """n tasks of readbig, chunksize=1, reading the module global big (30
    MiB, rebound to a new array first): a fork pool made after that (not
    timed) inherits it; joblib (loky) pickles readbig by value, with big."""
    global big
    big = np.full(BIG_ITEMS, float(value))
    items = list(range(n))
    pool = make(impl)
    try:
        t = time.perf_counter()
        if impl == "joblib":
            r = joblib.Parallel(n_jobs=NPROC, batch_size=1)(
                joblib.delayed(readbig)(x) for x in items)
        else:
            r = pool.map(readbig, items, 1)
        t = time.perf_counter() - t
    finally:
        close(impl, pool)
    if r != [x + value for x in items]:
        raise RuntimeError("wrong results")
    return t


def op_interrupt(pools, impl):
    """SIGINT to this process while pool.map(nap) runs; time from the kill
    to the KeyboardInterrupt in the caller (the pool is replaced after)."""
    t0 = []

    def fire():
        t0.append(time.perf_counter())
        os.kill(os.getpid(), signal.SIGINT)

    timer = threading.Timer(0.3, fire)
    timer.start()
    try:
        # 2 s, not 10: Pool.terminate() afterwards waits for the naps to end.
        run_map(impl, pools[impl], nap, [2] * (2 * NPROC), 1)
    except KeyboardInterrupt:
        t1 = time.perf_counter()
    else:
        raise RuntimeError("no KeyboardInterrupt")
    finally:
        timer.cancel()
    close(impl, pools[impl])
    pools[impl] = make(impl)
    run_map(impl, pools[impl], inc, range(10), 1)
    return t1 - t0[0]


def op_defs(n):
    """n more functions in this script's __main__ (the growth row's "after N
    definitions": a script's pool does not look at them)."""
    main = sys.modules["__main__"].__dict__
    exec("".join("def f%d(x):\n    return x + %d\n" % (i, i) for i in range(n)), main)
    return None


def _status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    return 0


def op_mapmem(pools, impl, n):
    """[seconds, peak RSS of this process over the map per item] for
    inc over range(n) with the default chunking."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS
    base = _status("VmRSS")
    t = time.perf_counter()
    r = run_map(impl, pools[impl], inc, range(n), None)
    t = time.perf_counter() - t
    peak = _status("VmHWM") - base
    if len(r) != n or r[-1] != n:
        raise RuntimeError("wrong results")
    del r
    return [t, peak / n]


def cold(impl):
    t = time.perf_counter()
    pool = make(impl)
    one(impl, pool)
    t = time.perf_counter() - t
    close(impl, pool)
    return t


def serve():
    pools = {}
    for line in sys.stdin:
        cmd = json.loads(line)
        try:
            op = cmd.pop("op")
            if op == "setup":
                for impl in cmd["impls"]:
                    if impl not in pools:
                        pools[impl] = make(impl)
                        run_map(impl, pools[impl], inc, list(range(100)), None)
                        one(impl, pools[impl])
                ans = {"ok": True}
            elif op == "map":
                ans = {"t": op_map(pools, **cmd)}
            elif op == "rt":
                ans = {"t": op_rt(pools, **cmd)}
            elif op == "np":
                ans = {"t": op_np(pools, **cmd)}
            elif op == "big":
                ans = {"t": op_big(pools, **cmd)}
            elif op == "defs":
                ans = {"t": op_defs(**cmd)}
            elif op == "mapmem":
                ans = {"t": op_mapmem(pools, **cmd)}
            elif op == "interrupt":
                ans = {"t": op_interrupt(pools, **cmd)}
            else:
                ans = {"error": "unknown op %r" % op}
        except Exception as e:      # reported as this sample's failure
            ans = {"error": "%s: %s" % (type(e).__name__, e)}
        print(json.dumps(ans), flush=True)
    for impl, pool in pools.items():
        close(impl, pool)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve()
    elif sys.argv[1] == "cold":
        print(json.dumps({"t": cold(sys.argv[2])}), flush=True)
