# %% [markdown]
# # Pitfall 2 — functions and classes defined in `__main__`
#
# A function defined in a notebook cell lives in the module `__main__`. With the
# **fork** start method (Linux's default until Python 3.14) a worker is a copy of
# the notebook process and finds it there. With **spawn** (the default on macOS
# and Windows) and **forkserver** (Linux's default from Python 3.14) a worker is a
# fresh interpreter: it re-runs the *script* that `__main__` came from — and a
# notebook has no script. The worker cannot find `slow_square`, and the task dies
# while being unpickled, inside the worker, where the notebook never sees it.
#
# What that looks like depends on the pool: `multiprocessing.Pool` loses the
# worker, starts another one, and waits for the lost task **forever**;
# `ProcessPoolExecutor` fails with `BrokenProcessPool`.

# %%
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from contrast import plain, ipykernel

# %% [markdown]
# ## Before — `multiprocessing.Pool` in ipykernel hangs
#
# The cell runs in a fresh ipykernel (the kernel Jupyter ships with). The notebook
# shows the workers' tracebacks (ipykernel forwards what they write), once for
# every worker the pool starts in place of a dead one — and the cell never ends.
# We give up after four seconds.

# %%
ipykernel("""
import multiprocessing as mp

def slow_square(x):
    return x * x

with mp.get_context("spawn").Pool(2) as pool:
    print(pool.map(slow_square, range(8)))
""", expect="hung")

# %% [markdown]
# ## Before — `ProcessPoolExecutor` in a plain interpreter
#
# The same definitions typed into a plain interactive `python3`, with the
# executor: this time an error, after the worker process has died.

# %%
plain("""
from concurrent.futures import ProcessPoolExecutor
import multiprocessing as mp

class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y

def norm2(p):
    return p.x ** 2 + p.y ** 2

with ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as ex:
    print(list(ex.map(norm2, [Point(1, 2), Point(3, 4)])))
""", expect="failed")

# %% [markdown]
# ## After — the same code in ferry
#
# ferry writes the cell's definitions (imports, `def`, `class`, literal
# assignments) to a module in its private runtime directory and tells spawn and
# forkserver children to load it as their `__main__`; its pickler sends a cell
# function as "look it up in that module". No code changes:

# %%
def slow_square(x):
    return x * x

with mp.get_context("spawn").Pool(2) as pool:
    print(pool.map(slow_square, range(8)))

# %%
class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y

def norm2(p):
    return p.x ** 2 + p.y ** 2

with ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as ex:
    print(list(ex.map(norm2, [Point(1, 2), Point(3, 4)])))

# %% [markdown]
# `forkserver` works the same way:

# %%
with mp.get_context("forkserver").Pool(2) as pool:
    print(pool.map(slow_square, range(8)))

# %% [markdown]
# ## Redefining a function
#
# The exported module always matches the notebook's current state. Redefine a
# function and even a pool created **before** the change runs the new version:

# %%
pool = mp.get_context("spawn").Pool(2)
print(pool.map(slow_square, [1, 2, 3]))

def slow_square(x):
    return -x * x   # changed our mind

print(pool.map(slow_square, [1, 2, 3]))
pool.close()
pool.join()

# %% [markdown]
# ## What ferry cannot export
#
# Only statements it can replay are exported: imports, `def`, `class`, and
# assignments of literals or lambdas. A class made by a computed expression cannot
# be re-created in a worker, so ferry refuses it in the notebook with an
# explanation — instead of a worker failing where nobody sees it.

# %%
Dynamic = type("Dynamic", (), {"value": 1})

def value_of(obj):
    return obj.value

try:
    with mp.get_context("spawn").Pool(2) as pool:
        print(pool.map(value_of, [Dynamic()]))
except Exception as err:
    print(f"{type(err).__name__}: {err}")
