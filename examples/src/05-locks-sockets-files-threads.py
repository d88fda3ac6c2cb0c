# %% [markdown]
# # Pitfall 5 — objects holding locks, sockets, open files or threads
#
# Some objects are not data but a handle on something that lives in *this*
# process: a lock, a socket, an open file, a running thread, a database
# connection. pickle refuses them, and with them every object that holds one —
# often buried deep inside an innocent-looking argument. No kernel can fix this:
# a worker cannot share your lock or your open socket by copy. What helps is
# knowing **which** part is the problem, and the `__getstate__`/`__setstate__`
# fix: leave the handle out when pickling, re-create it after.

# %%
import multiprocessing as mp
import pickle
import socket
import threading
import ferry
from contrast import plain

# %% [markdown]
# ## Before — plain Python
#
# A small class that appends results to a log file, guarded by a lock. Sending it
# to a pool fails in the parent, with a message naming a type but not where it is:

# %%
plain("""
import multiprocessing as mp
import threading

class Recorder:
    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.file = open(path, "a")

    def record(self, x):
        with self.lock:
            self.file.write(f"{x}\\n")
            self.file.flush()
        return x * x

def work(args):
    recorder, x = args
    return recorder.record(x)

rec = Recorder("results.log")
with mp.Pool(2) as pool:
    print(pool.map(work, [(rec, x) for x in range(4)]))
""", expect="failed")

# %% [markdown]
# ## In ferry — the same error, and `ferry.check` says where and what to do
#
# ferry cannot send a lock either, and does not pretend to: the pool raises the
# same `TypeError`. `ferry.check(obj)` walks the object and names the innermost
# part that cannot be pickled, its path, the reason and the fix:

# %%
import os, tempfile
log_path = os.path.join(tempfile.mkdtemp(), "results.log")

class Recorder:
    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.file = open(path, "a")

    def record(self, x):
        with self.lock:
            self.file.write(f"{x}\n")
            self.file.flush()
        return x * x

def work(args):
    recorder, x = args
    return recorder.record(x)

rec = Recorder(log_path)
try:
    with mp.get_context("spawn").Pool(2) as pool:
        print(pool.map(work, [(rec, x) for x in range(4)]))
except TypeError as err:
    print(f"TypeError: {err}")

# %%
try:
    ferry.check([(rec, 0)])
except ferry.PicklingError as err:
    print(err)

# %% [markdown]
# The same for an open file and a thread:

# %%
thread = threading.Thread(target=print)
with open(log_path) as f:
    for name, obj in [("file", {"out": f}), ("thread", {"worker": thread})]:
        try:
            ferry.check(obj)
        except ferry.PicklingError as err:
            print(f"{name}: {err}", end="\n\n")

# %% [markdown]
# Sockets are a special case. `pickle` refuses them; `multiprocessing`'s own
# pickler *can* hand a socket to a child of this process, by duplicating the file
# descriptor — a second handle on the **same** connection, not a new one, which is
# rarely what a task wants. `ferry.check` says what to do instead:

# %%
sock = socket.socket()
try:
    pickle.dumps({"conn": sock})
except TypeError as err:
    print(f"pickle.dumps: TypeError: {err}")
try:
    ferry.check({"conn": sock})
    print("ferry.check: no objection (multiprocessing can duplicate it)")
except ferry.PicklingError as err:
    print(f"ferry.check: {err}")
sock.close()

# %% [markdown]
# ## After — `__getstate__` and `__setstate__`
#
# Tell pickle what the object's *state* is: the path, not the open file; nothing
# for the lock. `__setstate__` runs in the worker and re-creates the handles there
# — each worker gets its own lock and its own file handle. (A `threading.Lock`
# does not protect anything across processes anyway; appending whole lines to a
# file opened in append mode is safe enough for a log. Use `mp.Lock` passed
# through the pool's `initializer` when processes must really exclude each
# other — see notebook 7.)

# %%
class Recorder:
    def __init__(self, path):
        self.path = path
        self._open()

    def _open(self):
        self.lock = threading.Lock()
        self.file = open(self.path, "a")

    def __getstate__(self):
        return {"path": self.path}       # only data travels

    def __setstate__(self, state):
        self.path = state["path"]
        self._open()                     # fresh handles in the worker

    def record(self, x):
        with self.lock:
            self.file.write(f"{x}\n")
            self.file.flush()
        return x * x

rec = Recorder(log_path)
ferry.check([(rec, 0)])                  # returns quietly now
with mp.get_context("spawn").Pool(2) as pool:
    print(pool.map(work, [(rec, x) for x in range(4)]))
with open(log_path) as f:
    print(sorted(f.read().split()))

# %% [markdown]
# The same class under plain Python needs one more change — the class must be
# importable (notebooks 2 and 6) — but the `__getstate__`/`__setstate__` part is
# the standard fix everywhere:

# %%
plain("""
import multiprocessing as mp
import threading, pickle

class Recorder:
    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.file = open(path, "a")
    def __getstate__(self):
        return {"path": self.path}
    def __setstate__(self, state):
        self.__init__(state["path"])

copy = pickle.loads(pickle.dumps(Recorder("results.log")))
print("round trip:", copy.path, copy.file.closed, type(copy.lock).__name__)
""", expect="ok")
