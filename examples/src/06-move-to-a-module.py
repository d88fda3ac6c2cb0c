# %% [markdown]
# # Fix 6 — moving definitions to a module
#
# The standard fix for pitfalls 1–4, with or without ferry: put the functions and
# classes a worker needs in a `.py` file next to the notebook and import them.
# pickle then sends `tasks.count_words` — a name any worker can import — and
# every start method works.
#
# This notebook uses [`tasks.py`](tasks.py), a module of two task functions, and
# the text corpus in `data/corpus/`.

# %%
import glob
import multiprocessing as mp
import pickle
import pickletools
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from contrast import plain

paths = sorted(glob.glob("data/corpus/*.txt"))
len(paths)

# %% [markdown]
# ## What pickle sends for a function
#
# Not its code: the module and the name. For a function of a module that is
# `tasks` / `count_words`:

# %%
import tasks
pickletools.dis(pickle.dumps(tasks.count_words))

# %% [markdown]
# ## Before — defined in the notebook, plain Python, spawn

# %%
plain("""
import glob, re
import multiprocessing as mp
from collections import Counter
from concurrent.futures import ProcessPoolExecutor

def count_words(path):
    with open(path, encoding="utf-8") as f:
        return Counter(re.findall(r"[a-z']+", f.read().lower()))

paths = sorted(glob.glob("data/corpus/*.txt"))
with ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as ex:
    total = sum(ex.map(count_words, paths), Counter())
print(total.most_common(3))
""", cwd=".", head=0, tail=3, expect="failed")

# %% [markdown]
# ## After — imported from `tasks.py`, plain Python, spawn
#
# The same program with the function moved to the module. The notebook's folder
# is on `sys.path` for the notebook and for its spawn workers alike.

# %%
plain("""
import glob
import multiprocessing as mp
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from tasks import count_words

paths = sorted(glob.glob("data/corpus/*.txt"))
with ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as ex:
    total = sum(ex.map(count_words, paths), Counter())
print(total.most_common(3))
""", cwd=".", expect="ok")

# %% [markdown]
# ## In ferry, both work
#
# ferry also exports `import` statements, so a worker imports `tasks` just as the
# notebook did; and a function still being worked on can stay in the notebook.

# %%
from tasks import count_words

with ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as ex:
    total = sum(ex.map(count_words, paths), Counter())
print(total.most_common(3))

# %%
import re

def count_long_words(path, min_len=9):
    with open(path, encoding="utf-8") as f:
        return Counter(w for w in re.findall(r"[a-z']+", f.read().lower())
                       if len(w) >= min_len)

with ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as ex:
    total = sum(ex.map(count_long_words, paths), Counter())
print(total.most_common(3))

# %% [markdown]
# ## When to move code to a module anyway
#
# - The code is used by scripts, tests or other notebooks too.
# - The job must also run outside ferry: under ipykernel, in a batch job, on a
#   cluster.
# - It is settled. A module is where code goes to be reviewed and tested.
#
# One caveat: a worker imports a module **once**. After editing `tasks.py`,
# restart long-lived pools (and `importlib.reload` it in the notebook, or restart
# the kernel), or workers keep running the old code.
