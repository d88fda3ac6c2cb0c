# %% [markdown]
# # Pitfall 3 — classes defined under `if __name__ == "__main__":`
#
# Every multiprocessing tutorial says "protect the entry point":
# put the work under `if __name__ == "__main__":`, because a spawn or forkserver
# worker re-runs your script (as the module `__mp_main__`) to find your
# definitions, and must not start the work again. Then a natural step — putting
# a class or a helper function **inside** that block too — breaks the program:
# the worker re-runs the script, skips the block, and the class is not there.

# %%
import multiprocessing as mp
from contrast import plain

# %% [markdown]
# ## Before — the script, run by `python3 script.py`
#
# The class `Task` is defined under the guard. `multiprocessing.Pool` loses each
# worker on the unpickling error, starts a new one, and waits forever.

# %%
plain("""
import multiprocessing as mp

def run(task):
    return task.work()

if __name__ == "__main__":
    class Task:
        def __init__(self, n):
            self.n = n
        def work(self):
            return sum(range(self.n))

    mp.set_start_method("spawn")
    with mp.Pool(2) as pool:
        print(pool.map(run, [Task(10), Task(100)]))
""", script=True, timeout=3, expect="hung")

# %% [markdown]
# ## After — the same code as a ferry cell
#
# ferry exports the definitions found inside `if __name__ == "__main__":` blocks
# too (hoisted out of the block): in a notebook, `__name__` is always
# `"__main__"`, so they are ordinary definitions of the notebook. The same code,
# pasted from the script — with the start method taken from a context, since
# `set_start_method` may be called only once per process and a cell runs again:

# %%
def run(task):
    return task.work()

if __name__ == "__main__":
    class Task:
        def __init__(self, n):
            self.n = n
        def work(self):
            return sum(range(self.n))

    with mp.get_context("spawn").Pool(2) as pool:
        print(pool.map(run, [Task(10), Task(100)]))

# %% [markdown]
# ## The fix for the script
#
# Outside ferry, define everything at the top level of the script and keep only
# the *work* under the guard:

# %%
plain("""
import multiprocessing as mp

class Task:
    def __init__(self, n):
        self.n = n
    def work(self):
        return sum(range(self.n))

def run(task):
    return task.work()

if __name__ == "__main__":
    mp.set_start_method("spawn")
    with mp.Pool(2) as pool:
        print(pool.map(run, [Task(10), Task(100)]))
""", script=True, expect="ok")
