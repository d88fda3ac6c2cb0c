#!/usr/bin/python3
"""make soak: one ferry kernel under mixed cells for a while (10 minutes by
default), its memory and answer times compared at start and end.

    /usr/bin/python3 bench/soak.py [--minutes 10] [--kernel build/ferry-kernel]
                                   [--out bench/results/soak.json]

Each cycle runs: an output flood (20k lines), a ferry.map of 400 tasks, a
cell interrupted while it sleeps, completions and inspections (one of a
100k-character name), and a probe cell (`1 + 1`) whose answer time is
recorded; none is stored in history (In and Out grow by design).  The kernel's RSS (the kernel process, not its workers) is read
after every cycle.  The first and the last minute are compared: RSS growth
should stay under 5 MiB and the probe's median answer time should not grow.
Not part of `make test`: it takes minutes, and its verdicts are ratios of
one run, not assertions.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import psutil
from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpec

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MiB = 1 << 20

FLOOD = "for i in range(20_000):\n    print('line', i)"
MAP = "import ferry\nsum(ferry.map(abs, range(-200, 200), chunksize=8))"
SLEEP = "print('started', flush=True)\nimport time\ntime.sleep(10)"


def run(kc, code, timeout=120, on_started=None):
    # Not stored in history: In, Out and _iN grow with every stored cell by
    # design (as in IPython); the soak looks for what should not grow.
    msg_id = kc.execute(code, stop_on_error=False, store_history=False)
    started = False
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if on_started and not started and msg["msg_type"] == "stream" \
                and "started" in msg["content"]["text"]:
            started = True
            on_started()
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    return kc.get_shell_msg(timeout=timeout)["content"]


def probe(kc):
    t = time.perf_counter()
    reply = run(kc, "1 + 1")
    assert reply["status"] == "ok", reply
    return time.perf_counter() - t


def cycle(km, kc):
    run(kc, FLOOD)
    run(kc, MAP)
    reply = run(kc, SLEEP, on_started=km.interrupt_kernel)
    assert reply.get("ename") == "KeyboardInterrupt", reply
    for code in ("import os\nos.pa", "d = {'alpha': 1}\nd['", "x" * 100_000 + "."):
        kc.complete(code, len(code), reply=True, timeout=60)
        kc.inspect(code, len(code), reply=True, timeout=60)


def summary(samples):
    return {"rss_mib": round(statistics.median(s["rss"] for s in samples) / MiB, 2),
            "probe_ms": round(statistics.median(s["probe"] for s in samples) * 1000, 3)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--kernel", default=os.path.join(ROOT, "build", "ferry-kernel"))
    ap.add_argument("--out", default=os.path.join(HERE, "results", "soak.json"))
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="ferry-soak-")
    km = KernelManager(connection_file=os.path.join(work, "k.json"), ip="127.0.0.1")
    km.kernel_name = ""
    km._kernel_spec = KernelSpec(argv=[args.kernel, "-f", "{connection_file}"],
                                 display_name="soak", language="python",
                                 interrupt_mode="signal", env={}, metadata={})
    env = dict(os.environ, FERRY_HISTORY_FILE=":memory:")
    km.start_kernel(cwd=work, env=env)
    kc = km.client()
    kc.start_channels()
    samples = []
    try:
        kc.wait_for_ready(timeout=60)
        proc = psutil.Process(km.provisioner.process.pid)
        begin = time.monotonic()
        end = begin + args.minutes * 60
        window = min(60.0, args.minutes * 60 / 4)
        while time.monotonic() < end:
            cycle(km, kc)
            samples.append({"t": time.monotonic() - begin, "rss": proc.memory_info().rss,
                            "probe": probe(kc)})
            if len(samples) % 50 == 0:
                print(f"{samples[-1]['t']:7.1f} s  cycles {len(samples):5d}  "
                      f"rss {samples[-1]['rss'] / MiB:7.1f} MiB", flush=True)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)
    total = samples[-1]["t"]
    first = [s for s in samples if s["t"] <= window] or samples[:1]
    last = [s for s in samples if s["t"] >= total - window] or samples[-1:]
    start, finish = summary(first), summary(last)
    growth = finish["rss_mib"] - start["rss_mib"]
    slower = finish["probe_ms"] / start["probe_ms"]
    result = {"minutes": round(total / 60, 2), "cycles": len(samples),
              "window_s": window, "start": start, "end": finish,
              "rss_growth_mib": round(growth, 2), "probe_time_ratio": round(slower, 3),
              "verdict": {"rss_growth_under_5_mib": growth < 5,
                          "answers_not_slower": slower <= 1.25}}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
