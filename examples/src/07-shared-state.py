# %% [markdown]
# # Pitfall 7 — shared state: globals, `Value`, `Array` and `Manager`
#
# Worker processes do not share memory with the notebook. A task that appends to
# a global list appends to the *worker's* copy; the notebook's list stays empty,
# and no error says so. The first fix is to **return** results instead of
# mutating globals. When processes really must share state while they run,
# `multiprocessing` offers shared memory (`Value`, `Array`) and a server process
# (`Manager`) — each with rules of its own.

# %%
import multiprocessing as mp
from contrast import plain

# %% [markdown]
# ## A global list stays empty — everywhere
#
# Plain Python with fork: no error, and no results.

# %%
plain("""
import multiprocessing as mp

results = []

def work(x):
    results.append(x * x)

with mp.Pool(2) as pool:
    pool.map(work, range(5))
print("results:", results)
""", expect="ok")

# %% [markdown]
# ferry cannot change that — processes are separate, which is the point — but the
# fix is simple: return the value.

# %%
def work(x):
    return x * x

with mp.get_context("spawn").Pool(2) as pool:
    results = pool.map(work, range(5))
print("results:", results)

# %% [markdown]
# ## `Value` and `Array`: shared memory, passed at process creation
#
# ### Before — plain Python, spawn: the task function is not found

# %%
plain("""
import multiprocessing as mp

def fill(i, squares, total):
    squares[i] = i * i
    with total.get_lock():
        total.value += i * i

ctx = mp.get_context("spawn")
squares = ctx.Array("i", 4)
total = ctx.Value("i", 0)
procs = [ctx.Process(target=fill, args=(i, squares, total)) for i in range(4)]
for p in procs: p.start()
for p in procs: p.join()
print(list(squares), total.value, [p.exitcode for p in procs])
""", expect="ok", head=14, tail=2)

# %% [markdown]
# The run "finished normally": `Process` does not raise when its child fails. The
# children died (exit code 1) and the shared memory stayed zero.
#
# ### After — the same code in ferry

# %%
def fill(i, squares, total):
    squares[i] = i * i
    with total.get_lock():
        total.value += i * i

ctx = mp.get_context("spawn")
squares = ctx.Array("i", 4)
total = ctx.Value("i", 0)
procs = [ctx.Process(target=fill, args=(i, squares, total)) for i in range(4)]
for p in procs: p.start()
for p in procs: p.join()
print(list(squares), total.value, [p.exitcode for p in procs])

# %% [markdown]
# ### `Value` cannot be a task argument
#
# Shared memory is handed to a process **when it starts**. A pool's workers are
# already running, so passing a `Value` as a `map` argument is refused — by
# multiprocessing itself, under any kernel:

# %%
def add_to(args):
    total, x = args
    with total.get_lock():
        total.value += x

total = ctx.Value("i", 0)
try:
    with ctx.Pool(2) as pool:
        pool.map(add_to, [(total, x) for x in range(10)])
except RuntimeError as err:
    print(f"RuntimeError: {err}")

# %% [markdown]
# The fix: give it to the workers when they start, through the pool's
# `initializer`, and keep it in a global of the worker.

# %%
def init_worker(shared_total):
    global total
    total = shared_total

def add(x):
    with total.get_lock():
        total.value += x

total = ctx.Value("i", 0)
with ctx.Pool(2, initializer=init_worker, initargs=(total,)) as pool:
    pool.map(add, range(10))
print("total:", total.value)

# %% [markdown]
# ### `+=` is not atomic
#
# `total.value += 1` reads, adds and writes; two processes can interleave and lose
# updates. Hold the value's lock (as above), or use one value per worker and add
# them up at the end.

# %% tags=["output-varies"]
def bump(counter, n, locked):
    for _ in range(n):
        if locked:
            with counter.get_lock():
                counter.value += 1
        else:
            counter.value += 1

for locked in (False, True):
    counter = ctx.Value("i", 0)
    procs = [ctx.Process(target=bump, args=(counter, 20_000, locked)) for _ in range(3)]
    for p in procs: p.start()
    for p in procs: p.join()
    print(f"locked={locked}: {counter.value} of 60000")
    # How many updates are lost varies from run to run (sometimes none).
    assert counter.value == 60000 if locked else counter.value <= 60000

# %% [markdown]
# ## `Manager`: shared objects that *can* be task arguments
#
# A `Manager` runs a server process that owns ordinary Python objects; the other
# processes get **proxies**, which pickle fine and may be passed as task
# arguments. Every access is a round trip to the server: convenient, not fast.
# And `counts[w] = counts.get(w, 0) + 1` is two round trips, not atomic: hold a
# manager lock around it.

# %%
def tally(args):
    counts, lock, word = args
    with lock:
        counts[word] = counts.get(word, 0) + 1

words = "the ferry crossed the river and the ferry came back".split()
with ctx.Manager() as manager:
    counts, lock = manager.dict(), manager.Lock()
    with ctx.Pool(2) as pool:
        pool.map(tally, [(counts, lock, w) for w in words])
    print(dict(sorted(counts.items())))
