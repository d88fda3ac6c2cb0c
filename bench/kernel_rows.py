"""Kernel rows: ferry-kernel against ipykernel (the `python3` kernelspec argv),
both driven by jclient over the wire protocol."""

import time

import jclient
from report import Row, median

GiB = 2**30
MiB = 2**20


class Side:
    """A named kernel that is relaunched when it died or a row broke it."""

    def __init__(self, name, argv):
        self.name = name
        self.argv = argv
        self.k = None

    def start(self):
        self.stop()
        self.k = jclient.Kernel(self.name, self.argv)
        t0 = self.k.launch()
        t = self.k.wait_ready()
        return t - t0

    def get(self):
        if self.k is None or not self.k.alive():
            self.start()
            self.k.execute("import os, sys, time", timeout=30)
        return self.k

    def broken(self):
        """After a timeout: the kernel's state is unknown, start again next time."""
        self.stop()

    def stop(self):
        if self.k is not None:
            self.k.stop()
            self.k = None


def mem(k):
    """(RSS, USS) of the kernel process in bytes."""
    import psutil
    p = psutil.Process(k.proc.pid)
    info = p.memory_full_info()
    return info.rss, info.uss


def tree_rss(k):
    total = 0
    for p in k.tree():
        try:
            total += p.memory_info().rss
        except Exception:
            pass
    return total


def paired(rnd, sides, fn):
    """Runs fn(side) for both sides, in an order that alternates by round;
    returns {name: value or exception}."""
    order = sides if rnd % 2 == 0 else sides[::-1]
    out = {}
    for s in order:
        try:
            out[s.name] = fn(s)
        except (jclient.Timeout, jclient.KernelDied, RuntimeError, OSError) as e:
            out[s.name] = e
            s.broken()
    return out


def record(row, res, fname="ferry", oname="ipykernel"):
    f, o = res.get(fname), res.get(oname)
    for name, v in ((fname, f), (oname, o)):
        if isinstance(v, Exception):
            row.fail("%s: %s" % (name, v))
    row.add(None if isinstance(f, Exception) else f,
            None if isinstance(o, Exception) else o)


def run(cfg, ferry_argv, log):
    sides = [Side("ferry", ferry_argv), Side("ipykernel", jclient.kernelspec_argv("python3"))]
    rows = []
    try:
        _run(cfg, sides, rows, log)
    finally:                    # also on Ctrl-C: no kernel outlives the run
        for s in sides:
            s.stop()
    return rows


def _run(cfg, sides, rows, log):

    def row(*a, **kw):
        r = Row("kernel", *a, **kw)
        rows.append(r)
        return r

    # ---- start-up and memory after start ---------------------------------
    r_start = row("launch → first kernel_info_reply", "time", "s", "ipykernel",
                  ("<=", 0.1))
    r_rss0 = row("RSS after start (kernel process)", "time", "B", "ipykernel",
                 ("<=", 0.3))
    r_uss0 = row("USS after start (kernel process)", "time", "B", "ipykernel")
    r_tree0 = row("RSS after start (kernel + children)", "time", "B", "ipykernel")

    def start_once(s):
        t = s.start()
        time.sleep(cfg.settle)
        rss, uss = mem(s.k)
        tr = tree_rss(s.k)
        s.stop()
        return t, rss, uss, tr

    log("kernel: start-up, %d rounds" % cfg.start_rounds)
    for rnd in range(cfg.start_rounds):
        res = paired(rnd, sides, start_once)
        for i, rw in enumerate((r_start, r_rss0, r_uss0, r_tree0)):
            record(rw, {k: (v if isinstance(v, Exception) else v[i]) for k, v in res.items()})

    # ---- execute round trips ----------------------------------------------
    rt_rows = {}
    for code in ("pass", "1+1", "print(1)"):
        rt_rows[code] = (
            row("execute `%s` → execute_reply" % code, "time", "s", "ipykernel", ("<=", 0.2)),
            row("execute `%s` → status idle" % code, "time", "s", "ipykernel", ("<=", 0.2)))

    def rt(code):
        def fn(s):
            k = s.get()
            reps, idles = [], []
            for _ in range(cfg.rt_reps):
                r = k.execute(code, timeout=cfg.timeout)
                reps.append(r["t_reply"] - r["t0"])
                idles.append(r["t_idle"] - r["t0"])
            return median(reps), median(idles)
        return fn

    log("kernel: execute round trips, %d rounds × %d" % (cfg.rounds, cfg.rt_reps))
    for s in sides:
        s.get()
        for _ in range(20):       # warm both up the same way
            s.k.execute("1+1", timeout=cfg.timeout)
    for rnd in range(cfg.rounds):
        for code, (r_reply, r_idle) in rt_rows.items():
            res = paired(rnd, sides, rt(code))
            record(r_reply, {k: (v if isinstance(v, Exception) else v[0]) for k, v in res.items()})
            record(r_idle, {k: (v if isinstance(v, Exception) else v[1]) for k, v in res.items()})

    # ---- pipelined executes -------------------------------------------------
    n = cfg.pipelined
    r_pipe = row("%d pipelined executes of `pass` (throughput)" % n, "rate", "cells/s",
                 "ipykernel", (">=", 5))

    def pipelined(s):
        k = s.get()
        k.drain(0.02)
        t0 = time.perf_counter()
        ids = [k.execute_send("pass") for _ in range(n)]
        last = ids[-1]
        want = set(ids)
        got = {"replies": 0}

        def on_msg(m):
            if m.channel == "shell" and m.type == "execute_reply" and m.parent_id in want:
                got["replies"] += 1
                if m.content.get("status") != "ok":
                    got["bad"] = m.content.get("status")
            elif (m.channel == "iopub" and m.type == "status" and m.parent_id == last
                  and m.content["execution_state"] == "idle"):
                got["t_idle"] = m.t

        k.run_until(lambda: got["replies"] == n and "t_idle" in got, cfg.timeout, on_msg)
        if "bad" in got:
            raise RuntimeError("a pipelined execute replied %s" % got["bad"])
        return n / (got["t_idle"] - t0)

    log("kernel: %d pipelined executes, %d rounds" % (n, cfg.rounds))
    for rnd in range(cfg.rounds):
        record(r_pipe, paired(rnd, sides, pipelined))

    # ---- printed lines -----------------------------------------------------
    nl = cfg.lines
    r_lines = row("%d printed lines → idle, all delivered" % nl, "time", "s", "ipykernel",
                  ("<=", 0.5))
    code_lines = "for i in range(%d):\n    print(i)" % nl

    def lines(s):
        k = s.get()
        r = k.execute(code_lines, timeout=cfg.timeout * 3, want_stream=True)
        text = "".join(r["stream"])
        expect = "".join("%d\n" % i for i in range(nl))
        if text != expect:
            got = text.count("\n")
            raise RuntimeError("%d of %d lines delivered intact" % (got, nl))
        return r["t_idle"] - r["t0"]

    log("kernel: %d printed lines, %d rounds" % (nl, cfg.line_rounds))
    for rnd in range(cfg.line_rounds):
        record(r_lines, paired(rnd, sides, lines))

    # ---- completion and inspection -----------------------------------------
    reqs = [
        ("complete_request `pri`", "complete_request",
         {"code": "pri", "cursor_pos": 3}, "complete_reply", "print"),
        ("complete_request `os.pa`", "complete_request",
         {"code": "os.pa", "cursor_pos": 5}, "complete_reply", "path"),
        ("inspect_request `print`", "inspect_request",
         {"code": "print", "cursor_pos": 5, "detail_level": 0}, "inspect_reply", None),
    ]
    req_rows = [row(t, "time", "s", "ipykernel", ("<=", 0.3)) for t, *_ in reqs]

    def request(spec):
        _, mtype, content, rtype, must = spec

        def fn(s):
            k = s.get()
            ts = []
            for _ in range(cfg.req_reps):
                dt, c = k.request("shell", mtype, content, rtype, timeout=cfg.timeout)
                if c.get("status") != "ok":
                    raise RuntimeError("%s status %s" % (rtype, c.get("status")))
                if must and not any(must in m for m in c.get("matches", [])):
                    raise RuntimeError("%s lacks %r: %s" % (rtype, must, c.get("matches")[:5]))
                if rtype == "inspect_reply" and not c.get("found"):
                    raise RuntimeError("inspect_reply found nothing")
                ts.append(dt)
                k.drain(0.005)        # the busy/idle on iopub
            return median(ts)
        return fn

    log("kernel: complete/inspect, %d rounds × %d" % (cfg.rounds, cfg.req_reps))
    for s in sides:            # the first completion loads jedi: not what we time
        try:
            s.get().request("shell", "complete_request", {"code": "os.pa", "cursor_pos": 5},
                            "complete_reply", timeout=cfg.timeout)
        except (jclient.Timeout, jclient.KernelDied) as e:
            log("  %s: warm-up completion failed: %s" % (s.name, e))
            s.broken()
    for rnd in range(cfg.rounds):
        for spec, rw in zip(reqs, req_rows):
            record(rw, paired(rnd, sides, request(spec)))

    # ---- interrupt -----------------------------------------------------------
    r_int = row("SIGINT during `time.sleep(10)` → KeyboardInterrupt reply", "abs", "s",
                "ipykernel", ("<=", 0.050))

    def interrupt(s):
        # 0.2 s: well inside the sleep.
        return s.get().interrupt_cell("time.sleep(10)", 0.2, cfg.timeout)

    log("kernel: interrupt, %d rounds" % cfg.rounds)
    for rnd in range(cfg.rounds):
        record(r_int, paired(rnd, sides, interrupt))

    # ---- memory over many cells ------------------------------------------------
    nc = cfg.cells
    r_rss1 = row("RSS after %d cells" % nc, "time", "B", "ipykernel")
    r_uss1 = row("USS after %d cells" % nc, "time", "B", "ipykernel")
    r_grow = row("RSS growth over %d cells" % nc, "abs", "B", "ipykernel", ("<=", 5 * MiB),
                 note="cells `print(i)\\ni`, 20 in flight")
    r_ugrow = row("USS growth over %d cells" % nc, "abs", "B", "ipykernel")

    def cells(s):
        s.start()
        k = s.k
        k.execute("import os, sys, time", timeout=cfg.timeout)
        time.sleep(cfg.settle)
        rss0, uss0 = mem(k)
        window = 20
        sent, done = 0, {"n": 0}
        pending = set()

        def on_msg(m):
            if m.channel == "shell" and m.type == "execute_reply" and m.parent_id in pending:
                pending.discard(m.parent_id)
                done["n"] += 1

        last = time.perf_counter()
        while done["n"] < nc:
            while sent < nc and len(pending) < window:
                pending.add(k.execute_send("print(%d)\n%d" % (sent, sent)))
                sent += 1
            before = done["n"]
            for m in k.poll(1.0):
                on_msg(m)
            if done["n"] != before:
                last = time.perf_counter()
            elif time.perf_counter() - last > cfg.timeout:
                raise jclient.Timeout("%s: no reply for %.0f s after %d of %d cells" % (
                    s.name, cfg.timeout, done["n"], nc))
            if not k.alive():
                raise jclient.KernelDied("%s died during the cells" % s.name)
        k.drain(0.1)
        time.sleep(cfg.settle)
        rss1, uss1 = mem(k)
        s.stop()
        return rss1, uss1, rss1 - rss0, uss1 - uss0

    log("kernel: memory over %d cells, %d rounds" % (nc, cfg.cell_rounds))
    for rnd in range(cfg.cell_rounds):
        res = paired(rnd, sides, cells)
        for i, rw in enumerate((r_rss1, r_uss1, r_grow, r_ugrow)):
            record(rw, {k: (v if isinstance(v, Exception) else v[i]) for k, v in res.items()})

