#!/usr/bin/python3
"""make bench: ferry against ipykernel, the standard pools and jupyter console,
and how ferry's cost grows with the work (the growth rows).

    /usr/bin/python3 bench/bench.py [--quick] [--only kernel,pool,dask,repl,growth]
                                    [--rounds N] [--out bench/results]

Prints one table of ratios measured in this run, on this machine, the two
sides interleaved round by round; writes bench/results/MODE.json and
bench/results/MODE.md (MODE is `full` or `quick`).  Never fails on a missed
target: the verdict column says it, the exit status does not.  It exits
non-zero only if the harness itself could not run.
"""

import argparse
import os
import signal
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import report  # noqa: E402


class Config:
    """How much to measure.  quick keeps every row but shrinks the counts
    (noted in each row's title) so the whole run stays under a minute."""

    def __init__(self, quick, rounds=None):
        self.quick = quick
        if quick:
            self.start_rounds = 3
            self.rounds = 3
            self.rt_reps = 15
            self.req_reps = 5
            self.pipelined = 500
            self.lines = 20_000
            self.line_rounds = 2
            self.cells = 1_000
            self.cell_rounds = 1
            self.settle = 0.3
            self.timeout = 20.0
            self.tasks = 2_000
            self.chunk_tasks = 100_000
            self.rt_tasks = 30
            self.np_tasks = 50
            self.pool_rounds = 2
            self.cold_rounds = 2
            self.repl_rounds = 2
        else:
            self.start_rounds = 7
            self.rounds = 5
            self.rt_reps = 50
            self.req_reps = 20
            self.pipelined = 2_000
            self.lines = 100_000
            self.line_rounds = 3
            self.cells = 10_000
            self.cell_rounds = 1
            self.settle = 1.0
            self.timeout = 60.0
            self.tasks = 10_000
            # Default chunking needs many tasks to be measurable at all:
            # 10,000 trivial ones finish in about a millisecond.
            self.chunk_tasks = 1_000_000
            self.rt_tasks = 200
            self.np_tasks = 200
            self.pool_rounds = 5
            self.cold_rounds = 5
            self.repl_rounds = 5
        if rounds:
            self.rounds = self.start_rounds = self.pool_rounds = rounds
            self.cold_rounds = self.repl_rounds = rounds


def git_commit():
    import subprocess
    try:
        out = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    return out or "unknown"


def log(msg):
    print("[%6.1fs] %s" % (time.perf_counter() - T0, msg), file=sys.stderr, flush=True)


T0 = time.perf_counter()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="every row, smaller counts (< 1 min)")
    ap.add_argument("--only", default="kernel,pool,dask,repl,growth", help="groups to run")
    ap.add_argument("--rounds", type=int, help="override the number of rounds")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--tag", help="appended to the result file names (MODE-TAG.json)")
    ap.add_argument("--kernel", default=os.path.join(ROOT, "build", "ferry-kernel"))
    ap.add_argument("--repl", default=os.environ.get("FERRY_REPL",
                                                     os.path.join(ROOT, "build", "ferry")))
    args = ap.parse_args()
    # A shell starts background jobs (`make bench &`) with SIGINT ignored, and
    # an ignored signal stays ignored across exec: the kernels and pools we
    # start would then never see the interrupts we time.  Frontends started
    # from a terminal give their kernels the default disposition; so do we.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    cfg = Config(args.quick, args.rounds)
    mode = "quick" if args.quick else "full"
    groups = [g.strip() for g in args.only.split(",") if g.strip()]
    m = report.meta(mode)
    if groups != ["kernel", "pool", "dask", "repl", "growth"]:
        m["mode"] = mode = mode + "-" + "-".join(groups)
    if args.tag:
        m["mode"] = mode = mode + "-" + args.tag
    m["kernel"] = args.kernel
    m["commit"] = git_commit()

    if not os.access(args.kernel, os.X_OK):
        sys.exit("bench: %s is not built (run make)" % args.kernel)
    ferry_argv = [args.kernel, "-f", "{connection_file}"]

    log("mode %s, load average %s, %d CPUs" % (mode, m["loadavg"], m["cpus"]))
    rows = []
    broken = []
    for g in groups:
        try:
            if g == "kernel":
                import kernel_rows
                rows += kernel_rows.run(cfg, ferry_argv, log)
            elif g == "pool":
                import pool_rows
                rows += pool_rows.run(cfg, ferry_argv, log)
            elif g == "dask":
                import dask_rows
                rows += dask_rows.run(cfg, ferry_argv, log)
            elif g == "repl":
                import repl_rows
                rows += repl_rows.run(cfg, args.repl, log)
            elif g == "growth":
                import growth_rows
                rows += growth_rows.run(cfg, ferry_argv, log)
            else:
                sys.exit("bench: unknown group %r" % g)
        except Exception:       # a harness bug: report it, keep the other groups
            traceback.print_exc()
            broken.append(g)

    m["seconds"] = round(time.perf_counter() - T0, 1)
    m["loadavg_after"] = "%.2f %.2f %.2f" % os.getloadavg()
    print()
    report.print_table(rows)
    js, md = report.write(rows, m, args.out)
    print("\n%d rows in %.0f s; load average %s before, %s after.\nwrote %s and %s" % (
        len(rows), m["seconds"], m["loadavg"], m["loadavg_after"],
        os.path.relpath(js), os.path.relpath(md)))
    if broken:
        sys.exit("bench: the harness failed in group(s) %s (traceback above)" % ", ".join(broken))


if __name__ == "__main__":
    main()
