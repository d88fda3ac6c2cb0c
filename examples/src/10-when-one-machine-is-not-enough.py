# %% [markdown]
# # When one machine is not enough: the same `ferry.map` on a Dask cluster
#
# `ferry.use(client)` sends `ferry.map`, `ferry.submit` and `ferry.workers()` to a
# [Dask](https://distributed.dask.org) cluster. The notebook does not change: functions
# and classes defined in cells reach every Dask worker **by reference** (the workers
# need no copy of the notebook, nor ferry), prints come back to the cell, a task's
# exception is raised here with the cell and line it came from.
#
# On real machines you would start the cluster from a shell:
#
#     dask-scheduler                              # on one machine: tcp://HOST:8786
#     dask-worker tcp://HOST:8786 --nworkers 4   # on each machine with spare cores
#
# and in the notebook say `ferry.use("tcp://HOST:8786")`. Here a `LocalCluster` with two
# worker processes stands in for it.

# %%
import logging

import numpy as np
from distributed import Client, LocalCluster

import ferry

# dashboard_address=":0": the dashboard on any free port (the default, 8787, may be
# taken by another cluster on this machine).
cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                       dashboard_address=":0", silence_logs=logging.ERROR)
client = Client(cluster)
previous = ferry.use(client)  # None: before, ferry used its own local pool
assert previous is None
print("threads on the cluster:", ferry.workers())
assert ferry.workers() == 2

# %% [markdown]
# ## Cell definitions travel by reference
#
# `Point` and `norm` are defined right here. On the cluster they are looked up in the
# worker's copy of this notebook's definitions, so the instances that come back are
# instances of *this* `Point`.

# %%
import math

class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __repr__(self):
        return f"Point({self.x}, {self.y})"

def norm(p):
    return math.hypot(p.x, p.y)

def double(p):
    return Point(2 * p.x, 2 * p.y)

points = [Point(3, 4), Point(6, 8), Point(5, 12)]
print(ferry.map(norm, points))
doubled = ferry.map(double, points)
print(doubled)
assert ferry.map(norm, points) == [5.0, 10.0, 13.0]
assert all(type(p) is Point for p in doubled)

# %% [markdown]
# ## Redefine, and the next map uses the new definition on every worker
#
# Each version of the definitions is its own module on the workers, so none can run a
# stale one.

# %%
def norm(p):
    return abs(p.x) + abs(p.y)  # now the Manhattan norm

print(ferry.map(norm, points))
assert ferry.map(norm, points) == [7, 14, 17]

# %% [markdown]
# ## Prints come back, errors point at the cell
#
# What a task prints on a worker appears under the cell that ran the map. A task that
# raises is raised here as the same exception, with the worker's traceback.

# %% tags=["output-varies"]
def report(p):
    print(f"working on {p}")
    return p.x * p.y

assert sorted(ferry.map(report, points)) == [12, 48, 60]

# %% tags=["raises-exception"]
def fragile(p):
    return p.x / (p.y - 8)

ferry.map(fragile, points)

# %% [markdown]
# ## A large array crosses once
#
# A numpy array (or bytes) of 64 KiB or more that many tasks share is scattered to the
# cluster once and referenced by every task, instead of being sent with each of them.

# %%
weights = np.linspace(0, 1, 2 ** 17)  # 1 MiB

def weighted(w, k):
    return float(w.sum()) * k

futures = [ferry.submit(weighted, weights, k) for k in range(50)]
results = [f.result() for f in futures]
assert results == [float(weights.sum()) * k for k in range(50)]

def held(dask_scheduler):
    return [ts.nbytes for ts in dask_scheduler.tasks.values() if ts.nbytes >= 2 ** 20]

print("copies of the array held by the cluster:", len(client.run_on_scheduler(held)))
assert len(client.run_on_scheduler(held)) == 1

# %% [markdown]
# ## Back to the local pool
#
# `ferry.use(None)` returns what was in use. ferry never closes a `Client` you made; a
# client it made itself (from an address) it closes when you switch away or the kernel
# stops.

# %%
assert ferry.use(None) is client
assert ferry.map(norm, points) == [7, 14, 17]  # on the local pool now
client.close()
cluster.close()
