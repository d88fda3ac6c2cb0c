"""A lone task's way through ferry's pool: the thread waiting in result()
reads the result from its worker's socket itself, lent to it by the
dispatcher for the wait (kernel/pool/pool_lone.c).  What a user checks: the
result, the output, a crash or an interrupt still reach the cell as before,
also when the worker dies or other work shares it; and the dispatcher thread
sleeps through a lone round trip that its waiter waits for (the point of
the loan: one thread woken per result instead of two), and in a loop of
submits neither the worker nor the waiting thread sleeps per task.
"""
import ast
import os
import signal

import pytest

pytestmark = pytest.mark.ferry_only("the ferry module exists only in ferry")

T = 120.0  # one cell that starts or uses workers: a bound for a hang
PRELUDE = "import ferry\nferry.workers(2)\n"

# Voluntary context switches of the kernel's pool dispatcher threads
# (named ferry-dispatch): how often they slept and were woken.
DISPATCHER_SWITCHES = """\
def dispatcher_switches():
    import os
    total = 0
    for tid in os.listdir('/proc/self/task'):
        try:
            with open(f'/proc/self/task/{tid}/comm') as f:
                if f.read().strip() != 'ferry-dispatch':
                    continue
            with open(f'/proc/self/task/{tid}/status') as f:
                total += sum(int(l.split()[1]) for l in f
                             if l.startswith('voluntary_ctxt_switches'))
        except FileNotFoundError:
            pass
    return total
"""


def run(k, code, timeout=T):
    return k.execute(PRELUDE + code, timeout=timeout).ok()


def value(k, expr, timeout=T):
    return ast.literal_eval(run(k, expr, timeout).text)


def test_a_waited_lone_result_leaves_the_dispatcher_asleep(kernel):
    # Each task runs long enough (2 ms) for its waiter to be reading the
    # socket when the result comes.  Through the dispatcher each result
    # would wake it at least once (100).
    run(kernel, DISPATCHER_SWITCHES + "import time\n"
                "def nap_inc(x):\n    time.sleep(0.002)\n    return x + 1\n"
                "ferry.submit(nap_inc, 0).result(timeout=60)")
    got, woken = value(kernel, "before = dispatcher_switches()\n"
                               "r = [ferry.submit(nap_inc, i).result(timeout=60) "
                               "for i in range(100)]\n"
                               "(r == list(range(1, 101)), dispatcher_switches() - before)")
    assert got
    # A waiter the machine's load kept from the socket for 2 ms still has
    # its result read by the dispatcher: room for that, not for one each.
    assert woken < 50, woken


VOLUNTARY = """\
def voluntary(path):
    with open(path) as f:
        return sum(int(l.split()[1]) for l in f if l.startswith('voluntary_ctxt_switches'))
"""


def test_a_loop_of_lone_submits_keeps_both_ends_awake(kernel):
    # A worker that just answered spins a while for its next task, and the
    # thread in result() spins a while for its answer, instead of sleeping
    # (kernel/pool/spin.h): in a loop of small submits neither end sleeps
    # per task.  Sleeping, each would sleep once a task (200).
    run(kernel, VOLUNTARY + "import threading\nfrom ferry import _pool\n"
                "def inc(x):\n    return x + 1\n"
                "ferry.submit(inc, 0).result(timeout=60)")
    cell, workers = value(kernel, "pids = _pool.shared().pids()\n"
                                  "me = f'/proc/self/task/{threading.get_native_id()}/status'\n"
                                  "b = voluntary(me), sum(voluntary(f'/proc/{p}/status') for p in pids)\n"
                                  "r = [ferry.submit(inc, i).result(timeout=60) for i in range(200)]\n"
                                  "assert r == list(range(1, 201))\n"
                                  "(voluntary(me) - b[0], "
                                  "sum(voluntary(f'/proc/{p}/status') for p in pids) - b[1])")
    # A loaded machine can keep one end from the other past its spin now
    # and then: room for that, not for a sleep per task.
    assert cell < 100 and workers < 100, (cell, workers)


@pytest.mark.parametrize("how,named", [("os._exit(7)", "code 7"),
                                       ("os.kill(os.getpid(), 9)", "SIGKILL")])
def test_a_lone_task_whose_worker_dies_fails_with_worker_crashed(kernel, how, named):
    run(kernel, f"import os, time\ndef die(x):\n    time.sleep(0.2)\n    {how}\n"
                "ferry.submit(abs, -1).result(timeout=60)")
    text = value(kernel, "try:\n    ferry.submit(die, 1).result(timeout=60)\n"
                         "    r = 'no error'\n"
                         "except ferry.WorkerCrashed as e:\n    r = str(e)\nr")
    assert named in text, text
    assert value(kernel, "ferry.submit(abs, -3).result(timeout=60)") == 3


def test_a_lone_task_whose_worker_dies_leaving_its_socket_open_fails(kernel, tmp_path):
    # A process the task forked keeps the worker's end of the socket open:
    # the socket never says the worker died; its pidfd does.
    pidfile = tmp_path / "child"
    run(kernel, f"import os, time\nPIDFILE = {str(pidfile)!r}\n"
                "def fork_and_die(x):\n    pid = os.fork()\n    if pid == 0:\n"
                "        time.sleep(60)\n        os._exit(0)\n"
                "    with open(PIDFILE, 'w') as f:\n        f.write(str(pid))\n"
                "    os._exit(5)\n"
                "ferry.submit(abs, -1).result(timeout=60)")
    try:
        text = value(kernel, "try:\n    ferry.submit(fork_and_die, 1).result(timeout=60)\n"
                             "    r = 'no error'\n"
                             "except ferry.WorkerCrashed as e:\n    r = str(e)\nr")
        assert "code 5" in text, text
        assert value(kernel, "ferry.submit(abs, -4).result(timeout=60)") == 4
    finally:
        if pidfile.exists():
            try:
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_a_lone_task_flooding_output_keeps_it_in_order_before_its_result(kernel):
    # More output messages than one read of the socket handles: the rest
    # are read by the waiting thread too, before the result.
    run(kernel, "def chatter(n):\n    for i in range(n):\n        print('line', i, flush=True)\n"
                "    return n\n")
    x = run(kernel, "r = ferry.submit(chatter, 3000).result(timeout=60)\nprint('got', r)")
    lines = x.stdout.splitlines()
    assert lines == [f"line {i}" for i in range(3000)] + ["got 3000"], lines[-3:]


def test_a_map_runs_while_a_lone_task_is_waited_on(kernel):
    # One thread waits on a lone task (its socket lent to it) while the cell
    # maps over both workers: the map's tasks queue for that worker or go to
    # the other, the loan ends with the lone result, and both end complete.
    assert value(kernel, "import threading, time\n"
                         "def slow(x):\n    time.sleep(0.3)\n    return x\n"
                         "def inc(x):\n    return x + 1\n"
                         "got = []\n"
                         "t = threading.Thread(target=lambda: got.append("
                         "ferry.submit(slow, 42).result(timeout=60)))\n"
                         "t.start()\ntime.sleep(0.05)\n"
                         "m = ferry.map(inc, range(3000), chunksize=1)\nt.join(60)\n"
                         "(got, m == list(range(1, 3001)))") == ([42], True)
