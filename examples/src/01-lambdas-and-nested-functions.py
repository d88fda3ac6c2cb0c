# %% [markdown]
# # Pitfall 1 — lambdas and nested functions
#
# `pickle` sends a function **by name**: it writes "module `__main__`, attribute
# `square`", and the worker process imports the module and looks the name up. A
# lambda's name is `<lambda>`, which no module has, and a function defined inside
# another function is `make_scaler.<locals>.scale`, which no module has either. So
# the standard pools refuse both, before any worker sees them.
#
# Each "before" cell below runs the code in a fresh plain `python3` (the code fed
# to an interactive `__main__`, as a notebook kernel has) and shows the real
# output; the "after" cell runs the same code in this ferry kernel.

# %%
import multiprocessing as mp
from contrast import plain

# %% [markdown]
# ## A lambda
#
# ### Before — plain Python (Linux's default start method, fork)

# %%
plain("""
import multiprocessing as mp

square = lambda x: x * x

with mp.Pool(2) as pool:
    print(pool.map(square, range(8)))
""", expect="failed")

# %% [markdown]
# ### After — the same code in ferry
#
# ferry re-exports each cell's top-level definitions to a module that workers
# can import; a lambda bound to a name gets that name, so it travels by name like
# a `def`. We use the `spawn` start method (the default on macOS and Windows, and
# the strictest: the worker is a fresh interpreter that inherits nothing).

# %%
square = lambda x: x * x

with mp.get_context("spawn").Pool(2) as pool:
    print(pool.map(square, range(8)))

# %% [markdown]
# Even an anonymous lambda written inline works: ferry sends its code by value,
# with the notebook's current definitions as its globals.

# %%
offset = 100
with mp.get_context("spawn").Pool(2) as pool:
    print(pool.map(lambda x: x + offset, range(8)))

# %% [markdown]
# ## A nested function (a closure)
#
# ### Before — plain Python

# %%
plain("""
import multiprocessing as mp

def make_scaler(k):
    def scale(x):
        return k * x
    return scale

with mp.Pool(2) as pool:
    print(pool.map(make_scaler(3), range(8)))
""", expect="failed")

# %% [markdown]
# ### In ferry: still refused — with the reason and the fix
#
# A `def` inside a function is created anew on every call, and no module holds it,
# so ferry cannot re-export it either. It refuses it in the notebook, right away,
# saying why — no worker ever sees a task it cannot unpickle.

# %%
def make_scaler(k):
    def scale(x):
        return k * x
    return scale

try:
    with mp.get_context("spawn").Pool(2) as pool:
        print(pool.map(make_scaler(3), range(8)))
except Exception as err:
    print(f"{type(err).__name__}: {err}")

# %% [markdown]
# ### After — two fixes
#
# Move the function to the top level and bind the data with `functools.partial`
# (this works everywhere, ferry or not, as long as the function is importable):

# %%
import functools

def scale(k, x):
    return k * x

with mp.get_context("spawn").Pool(2) as pool:
    print(pool.map(functools.partial(scale, 3), range(8)))

# %% [markdown]
# Or, in ferry, return a lambda: ferry sends a lambda by value, closure included.

# %%
def make_scaler(k):
    return lambda x: k * x

with mp.get_context("spawn").Pool(2) as pool:
    print(pool.map(make_scaler(3), range(8)))
