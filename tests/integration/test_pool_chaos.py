"""The pool under chaos: a 2,000-task run while workers are SIGKILLed at
random (seeded, bounded).  Every task either returns its correct result or
fails with WorkerCrashed naming it; none is lost; none runs twice (each task
appends its number to a log file when it starts: count the lines); the pool
heals and serves afterwards."""

import collections
import json

import pytest

pytestmark = pytest.mark.ferry_only("ferry's pool")

N_TASKS = 2000
MAX_KILLS = 25

CHAOS = """
import ferry, json, os, random, signal, threading, time
from ferry import _pool
LOG = {log!r}
def logged_square(i):
    with open(LOG, 'a') as f:
        f.write(f'{{i}}\\n')
    time.sleep(0.002)
    return i * i
ferry.workers(3)
ferry.map(abs, range(6), chunksize=1)  # the workers up
stop, kills = threading.Event(), []
def killer(rng=random.Random({seed})):
    while not stop.is_set() and len(kills) < {max_kills}:
        time.sleep(rng.uniform(0.02, 0.12))
        pids = _pool.shared().pids()
        if pids:
            pid = rng.choice(sorted(pids))
            try:
                os.kill(pid, signal.SIGKILL)
                kills.append(pid)
            except ProcessLookupError:
                pass
t = threading.Thread(target=killer)
t.start()
futures = [ferry.submit(logged_square, i) for i in range({n})]
outcomes = []
for i, f in enumerate(futures):
    try:
        outcomes.append(['ok', f.result(timeout=300)])
    except ferry.WorkerCrashed as e:
        outcomes.append(['crashed', str(e)])
    except BaseException as e:
        outcomes.append(['other', repr(e)])
stop.set()
t.join()
print(json.dumps({{'kills': len(kills), 'outcomes': outcomes}}))
"""


@pytest.mark.parametrize("seed", [14, 2026])
def test_tasks_survive_random_worker_kills_exactly_once(kernel, tmp_path, seed):
    log = tmp_path / "ran.log"
    log.touch()
    x = kernel.execute(CHAOS.format(log=str(log), seed=seed, max_kills=MAX_KILLS,
                                    n=N_TASKS), timeout=600).ok()
    report = json.loads(x.stdout.strip().splitlines()[-1])
    outcomes = report["outcomes"]
    assert report["kills"] > 0
    assert len(outcomes) == N_TASKS  # none lost: every future settled
    runs = collections.Counter(int(line) for line in log.read_text().split())
    crashed = 0
    for i, (kind, value) in enumerate(outcomes):
        if kind == "ok":
            assert value == i * i, (i, value)
            assert runs[i] == 1, f"task {i} ran {runs[i]} times"
        else:
            assert kind == "crashed", (i, value)
            assert f"logged_square({i})" in value, value  # names the task
            assert runs[i] <= 1, f"task {i} ran {runs[i]} times"
            crashed += 1
    # One kill may fail more than the task it interrupted: tasks it had
    # finished whose results died with it fail too (they ran once).
    print(f"kills {report['kills']}, crashed {crashed}")
    assert max(runs.values()) == 1, "a task ran twice"
    # The pool healed: full size, and serving.
    y = kernel.execute("sorted(ferry.map(abs, range(-20, 0), chunksize=1)), "
                       "len(_pool.shared().pids())", timeout=120).ok()
    assert eval(y.text) == (sorted(range(1, 21)), 3)
