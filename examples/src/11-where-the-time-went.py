# %% [markdown]
# # Where the time went: pictures of a pool at work
#
# "It ran in parallel" hides a lot: which worker ran what, how long tasks waited,
# whether a worker sat idle while another had a queue. Every `ferry.map` records,
# for each task, the worker that ran it, when the task was sent there, when it
# started and when its result came back. `ferry.timeline()` draws the last map:
#
# - one **lane per worker** (its process id on the left);
# - one **bar per task** (or per chunk of items) while it runs — blue when it
#   returned, orange when it raised, red when its worker died;
# - a **pale bar** before it while it waited in the worker behind the tasks sent
#   ahead of it, and the **top band**, how many tasks waited in the pool's queue;
# - **gaps** are idle time; the line on top sums it up: tasks, workers, wall time
#   and how busy the workers were.
#
# In the terminal REPL the same picture is drawn in text. Timings differ from run
# to run, so each cell below asserts what it shows instead of comparing its output.

# %%
import os
import time
import ferry

ferry.workers(2)

def work(seconds):
    time.sleep(seconds)
    return seconds

# %% [markdown]
# ## One long task, and the short ones around it
#
# Twelve tasks, one of them ten times longer than the others, sent one by one
# (`chunksize=1`). ferry sends each worker a few short tasks ahead, so that it
# never waits on a round trip; a worker busy with a long task gets no more, and
# the tasks behind it go to the worker that is free. The long task's lane shows one
# long bar; the other worker runs everything else.

# %% tags=["output-varies"]
durations = [1.0] + [0.05] * 11
assert ferry.map(work, durations, chunksize=1) == durations
tl = ferry.timeline()
lanes = tl.lanes()
ran_long = [len(tasks) for tasks in lanes.values() if any(t.label == "task 0" for t in tasks)]
ran_short = [len(tasks) for tasks in lanes.values() if all(t.label != "task 0" for t in tasks)]
assert len(tl.tasks) == 12 and len(lanes) == 2 and ran_long[0] < ran_short[0]
tl

# %% [markdown]
# ## Chunks: fewer, longer bars
#
# By default `ferry.map` groups items into about four chunks per worker, so tiny
# tasks do not each pay for a round trip. The same 200 tiny items, one by one and
# then chunked: count the bars.

# %% tags=["output-varies"]
ferry.map(abs, range(200), chunksize=1)
one_by_one = ferry.timeline()
ferry.map(abs, range(200))
chunked = ferry.timeline()
assert len(one_by_one.tasks) == 200 and len(chunked.tasks) == 8
print(one_by_one.summary())
print(chunked.summary())
chunked

# %% [markdown]
# ## A worker that dies, and its replacement
#
# A task that kills its own process (here `os._exit`, in real life a segfault in
# an extension or the kernel's out-of-memory killer) fails with
# `ferry.WorkerCrashed`; the pool starts a new worker in its place. An
# `Executor`'s timeline covers all its recent work, so the dead worker's lane (in
# red) and its replacement's lane show in one picture.

# %% tags=["output-varies"]
def fragile(x):
    time.sleep(0.1)
    if x == 3:
        os._exit(1)
    return x

with ferry.Executor(2) as ex:
    try:
        list(ex.map(fragile, range(6)))
    except ferry.WorkerCrashed as err:
        print("WorkerCrashed:", err)
    # The replacement starts in the background: on a busy machine the other
    # worker may run a whole map before it is ready, so map until it has run
    # tasks too (a few maps at most; the timeline keeps the last eight).
    for _ in range(5):
        assert list(ex.map(work, [0.25] * 8)) == [0.25] * 8
        tl = ferry.timeline(ex)
        if len(tl.lanes()) == 3:
            break

assert sum(t.status == "crashed" for t in tl.tasks) == 1
assert len(tl.lanes()) == 3  # two workers, and the one that replaced the dead one
tl

# %% [markdown]
# ## Idle workers
#
# Fewer tasks than workers leaves workers idle, and the summary says so: here four
# workers, two tasks.

# %% tags=["output-varies"]
ferry.workers(4)
ferry.map(work, [0.3, 0.3], chunksize=1)
tl = ferry.timeline()
assert len(tl.lanes()) == 2 and "4 workers (2 ran tasks)" in tl.summary()
ferry.workers(2)
tl
