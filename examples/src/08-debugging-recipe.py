# %% [markdown]
# # Recipe 8 — finding what cannot be pickled
#
# A pool call fails with `TypeError: cannot pickle '_thread.RLock' object`. Your
# code has no RLock. Which of the thousand arguments holds one, and where? And a
# task that pickles fine in the notebook can still fail in the worker. Here is the
# manual recipe — it works anywhere — and then what `ferry.check` tells you
# instead.

# %%
import logging
import multiprocessing as mp
import pickle
import subprocess
import sys
from dataclasses import dataclass, field
import ferry
from contrast import plain

# %% [markdown]
# ## The symptom
#
# Jobs that carry a reporter; the reporter logs through a handler. Looks like data.

# %%
class Reporter:
    def __init__(self, name):
        self.name = name
        self.handler = logging.StreamHandler(sys.stdout)

    def report(self, text):
        return f"[{self.name}] {text}"

@dataclass
class Job:
    name: str
    size: int
    options: dict = field(default_factory=dict)

def run_job(job):
    return job.options["reporter"].report(f"{job.name}: {job.size ** 2}")

jobs = [Job("a", 3), Job("b", 4, {"retries": 2}),
        Job("c", 5, {"retries": 1, "reporter": Reporter("nightly")})]
for job in jobs:
    job.options.setdefault("reporter", Reporter("default"))

try:
    with mp.get_context("spawn").Pool(2) as pool:
        print(pool.map(run_job, jobs))
except Exception as err:
    print(f"{type(err).__name__}: {err}")

# %% [markdown]
# ## The manual recipe
#
# **1. Run one task in the notebook.** If it fails here, it is a bug in the
# task, not in the sending.

# %%
run_job(jobs[0])

# %% [markdown]
# **2. Pickle each piece on its own:** the function, then each argument.

# %%
for label, obj in [("run_job", run_job)] + [(f"jobs[{i}]", j) for i, j in enumerate(jobs)]:
    try:
        pickle.dumps(obj)
        print(f"{label}: ok")
    except Exception as err:
        print(f"{label}: {type(err).__name__}: {err}")

# %% [markdown]
# **3. Descend into the failing one**, attribute by attribute, item by item, until
# the failing part has no failing parts of its own:

# %%
def first_failing(obj, path):
    parts = (obj.items() if isinstance(obj, dict) else
             enumerate(obj) if isinstance(obj, (list, tuple)) else
             vars(obj).items() if hasattr(obj, "__dict__") else ())
    for key, value in parts:
        try:
            pickle.dumps(value)
        except Exception:
            sub = f"{path}[{key!r}]" if isinstance(obj, (dict, list, tuple)) else f"{path}.{key}"
            return first_failing(value, sub)
    return path, type(obj).__name__

print(first_failing(jobs, "jobs"))

# %% [markdown]
# The handler holds an RLock (every `logging.Handler` does). The fix is the one
# from notebook 5: give `Reporter` a `__getstate__` that leaves the handler out and
# a `__setstate__` that makes a new one — or create the reporter inside the task.
#
# **4. Round-trip in a fresh interpreter.** `pickle.dumps` succeeding in the
# notebook is not enough: a function or class of `__main__` pickles as a *name*,
# and only the worker finds out that the name is missing. Load the bytes in a new
# `python3`, as a spawn worker would. In a plain interpreter:

# %%
plain("""
import pickle, subprocess, sys

def square(x):
    return x * x

data = pickle.dumps(square)
print("dumps:", len(data), "bytes - fine")
check = subprocess.run([sys.executable, "-c",
                        "import pickle, sys; pickle.loads(sys.stdin.buffer.read())"],
                       input=data, capture_output=True)
print("loads in a new interpreter:", check.stderr.decode().strip().splitlines()[-1])
""", expect="ok")

# %% [markdown]
# ## What `ferry.check` tells you instead
#
# `ferry.check(obj)` does steps 2–4 in one call, with the pickler the pools use:
# it names the innermost part that cannot be sent, its path, why, and the fix.

# %%
try:
    ferry.check(jobs)
except ferry.PicklingError as err:
    print(err)

# %% [markdown]
# ## Every part at once: `ferry.explain`
#
# `ferry.check` stops at the part that fails. `ferry.explain(obj)` shows what pickle
# would do with *every* part, each marked with one of: **by reference** (a module
# and a name, which the worker imports — and whether it can), **by value** (its
# contents travel; the size is what it adds to each task) or **refused** (why, and
# the fix). Refused parts come first, then the biggest. In a notebook it is a
# table; in the terminal REPL, one line per part.

# %%
ferry.explain(jobs[2])

# %% [markdown]
# For a function it also lists the notebook globals it reads, and how each one
# reaches a worker:

# %%
LABEL = "size"
sizes = [job.size for job in jobs]

def describe(i):
    return f"{LABEL} {sizes[i]} of {len(sizes)}"

ferry.explain(describe)

# %% [markdown]
# `ferry.map` runs the same check before it sends anything, so with ferry's own
# pool the error you get is already the diagnosis:

# %%
try:
    ferry.map(run_job, jobs)
except ferry.PicklingError as err:
    print(f"ferry.PicklingError: {err}")

# %% [markdown]
# It also knows what a worker will and will not be able to look up — the part
# `pickle.dumps` cannot tell you:

# %%
def make_task(k):
    def task(x):
        return k * x
    return task

Dynamic = type("Dynamic", (), {})

for obj in [make_task(2), Dynamic, lambda x: x]:
    try:
        ferry.check(obj)
        print(f"{obj!r:.60}: can be sent")
    except ferry.PicklingError as err:
        print(err)
    print()

# %% [markdown]
# ## After — the fix, checked

# %%
class Reporter:
    def __init__(self, name):
        self.name = name
        self.handler = logging.StreamHandler(sys.stdout)

    def __getstate__(self):
        return {"name": self.name}

    def __setstate__(self, state):
        self.__init__(state["name"])

    def report(self, text):
        return f"[{self.name}] {text}"

for job in jobs:
    job.options["reporter"] = Reporter(job.options["reporter"].name)

ferry.check(jobs)
with mp.get_context("spawn").Pool(2) as pool:
    print(pool.map(run_job, jobs))

# %% [markdown]
# And `ferry.explain` shows how the reporter travels now: by value, through its
# `__getstate__`, without the handler.

# %%
ferry.explain(jobs[2])
