"""Computed globals travel with the task, by value.

A cell function reads notebook globals.  Those the re-export module
re-creates by reference - imports, def/class statements, immutable
literals, named lambdas - a worker already has.  Every other global it
reads - a computed value (``data = load()``) or a mutable literal
(``cfg = {"k": 1}``, ``chunks = []``), whose contents the notebook may
have changed since - travels by value, as it is when the task is
dispatched (map or submit called), and only the globals the function
reads: the names its code loads, followed through the cell functions it
calls, the methods of cell classes it uses, functools.partial objects,
closures and ``__wrapped__`` (never the whole namespace).  A global that
a cell function assigns (``global total`` in a pool's initializer) is the
worker's own state and is not sent.

ferry's own pool (ferry.map, ferry.submit, ferry.Executor).  At each
dispatch each such global is pickled (protocol 5, NumPy buffers out of
band) and its bytes compared with those of the value last sent for that
name, kept in a file in the kernel's runtime directory: equal bytes keep
the value's identity (its digest, "v<N>"), a rebinding or an in-place
change (``cfg["k"] = 5``, ``arr[0] = 1``) makes a new digest and a new
file.  The task's head names the digest and the file; a worker reads a
file only for a digest it does not hold, so each distinct value crosses to
each worker once, and the object it rebuilt serves all its tasks until
the head names another digest for that name.  The cost per dispatch is
one pickle and one compare of memory per global the function reads (for a
small value against a copy kept in memory, else against its file; a few
milliseconds for 30 MB of array; an array's pickle is its buffer, not a
copy), plus writing the file when the value changed; nothing for a
function that reads none.  A file is deleted once its value is no longer
current and no task that names it is pending; a worker drops a global's
old object when a new value arrives, and the object of a name the
notebook deleted at its next task.

multiprocessing and concurrent.futures pools have no such cache: the
values travel inside the reduction of the function, with every task
(ferry._globals_stdlib).
"""
import dis
import functools
import hmac
import mmap
import io
import os
import pickle
import re
import sys
import threading
import types
import weakref

from . import _globals_rt

# A value whose pickle (without out-of-band buffers) is at most this big is
# also kept in memory, to compare the next dispatch's pickle with.
SMALL_BYTES = 64 << 10
# A value bigger than this, pickled, gets a one-time warning in the cell.
WARN_BYTES = int(os.environ.get("FERRY_GLOBALS_WARN_BYTES") or (1 << 30))

# IPython's and the kernel's own names, never sent.
_SKIP = {"In", "Out", "_", "__", "___", "_ih", "_oh", "_dh", "exit", "quit",
         "get_ipython", "display", "update_display", "clear_output"}
_HISTORY = re.compile(r"^_(i{1,3}|i?\d+)$")
_GLOBAL_OPS = {"LOAD_GLOBAL", "LOAD_NAME", "DELETE_GLOBAL", "STORE_GLOBAL"}
# What an assignment of a literal can bind that the notebook can change in
# place: these travel by value even though the re-export module replays them.
_MUTABLE = (list, dict, set, bytearray)
_MISSING = object()

_reads = weakref.WeakKeyDictionary()  # code object -> global names it reads
_stores = weakref.WeakKeyDictionary()  # code object -> global names it assigns
_STORE_OPS = {"STORE_GLOBAL", "DELETE_GLOBAL"}


def _names_by_ops(code, ops, cache):
    """Names that instructions in ops use in code (and code nested in it),
    kept per code object: reading its instructions costs more than a small
    task."""
    names = cache.get(code)
    if names is None:
        found, stack = set(), [code]
        while stack:
            c = stack.pop()
            for ins in dis.get_instructions(c):
                if ins.opname in ops:
                    found.add(ins.argval)
            stack.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
        names = cache[code] = frozenset(found)
    return names


def _global_reads(code):
    """Names code (and code nested in it) reads as globals."""
    return _names_by_ops(code, _GLOBAL_OPS, _reads)


def _global_stores(code):
    """Names code (and code nested in it) assigns or deletes as globals."""
    return _names_by_ops(code, _STORE_OPS, _stores)


_owned = (None, frozenset())  # (re-export version, names cell functions assign)


def _worker_owned(main, version):
    """Names that a cell function assigns with a `global` statement: state a
    worker keeps for itself (a pool's initializer sets it there), which a
    value from the notebook must not overwrite.  Computed again only when
    the definitions change (a new re-export version)."""
    global _owned
    if _owned[0] != version:
        names = set()
        for value in list(main.values()):
            if isinstance(value, type) and value.__module__ == "__main__":
                funcs = _parts(value, main)
            else:
                funcs = [value]
            for f in funcs:
                if isinstance(f, types.FunctionType) and f.__globals__ is main:
                    names |= _global_stores(f.__code__)
        _owned = (version, frozenset(names))
    return _owned[1]


def globals_for(root, rec, skip=()):
    """read_globals for root in the kernel of recorder rec (after its
    current()), leaving out the names cell functions assign."""
    main = rec.main.__dict__
    path, exported = rec.latest
    owned = _worker_owned(main, path)
    return read_globals(root, main, exported, owned.union(skip) if skip else owned)


def _holds_mutable(value, depth=0):
    if type(value) in _MUTABLE:
        return True
    if type(value) in (tuple, frozenset) and depth < 8:
        return any(_holds_mutable(v, depth + 1) for v in value)
    return False


def _by_value(name, value, exported):
    """True if a worker must get this global's value from the task."""
    if isinstance(value, types.ModuleType):
        return False
    if name not in exported:
        return True
    return _holds_mutable(value)


def _parts(obj, main):
    """What a worker may run or read when obj runs: the objects to follow."""
    if isinstance(obj, types.FunctionType):
        out = []
        for cell in obj.__closure__ or ():
            try:
                out.append(cell.cell_contents)
            except ValueError:
                pass
        wrapped = obj.__dict__.get("__wrapped__")
        if wrapped is not None:
            out.append(wrapped)
        return out
    if isinstance(obj, type):
        out = []
        for klass in obj.__mro__:
            if klass.__module__ != "__main__":
                continue
            for v in vars(klass).values():
                if isinstance(v, (staticmethod, classmethod)):
                    v = v.__func__
                if isinstance(v, property):
                    out.extend(f for f in (v.fget, v.fset, v.fdel) if f is not None)
                elif isinstance(v, types.FunctionType):
                    out.append(v)
        return out
    if isinstance(obj, types.MethodType):
        return [obj.__func__, obj.__self__]
    if isinstance(obj, functools.partial):
        return [obj.func, *obj.args, *obj.keywords.values()]
    out = []
    cls = type(obj)
    if cls.__module__ == "__main__":
        out.append(cls)
    try:
        state = object.__getattribute__(obj, "__dict__")
        wrapped = state.get("__wrapped__") if isinstance(state, dict) else None
    except Exception:
        wrapped = None
    if wrapped is not None:
        out.append(wrapped)
    return out


def read_globals(root, main, exported, skip=(), deps=None):
    """{name: value} of the notebook globals that must travel by value for
    root (a function, class, method, partial or callable instance) to run
    in a worker, followed through what it calls.  With deps, a pair of
    lists, also appends to the first each (name, value or _MISSING) the
    walk looked up, and to the second each object it visited."""
    values, seen, todo = {}, set(), [root]
    keep = []  # objects visited, alive until the walk ends (ids stay unique)
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        keep.append(obj)
        if isinstance(obj, types.FunctionType) and obj.__globals__ is main:
            for name in _global_reads(obj.__code__):
                if name in _SKIP or name in skip or _HISTORY.match(name) or (
                        name.startswith("__") and name.endswith("__")):
                    continue
                value = main.get(name, _MISSING)
                if deps is not None:
                    deps[0].append((name, value))
                if value is _MISSING:
                    continue
                if _by_value(name, value, exported):
                    values[name] = value
                todo.append(value)
        todo.extend(_parts(obj, main))
    if deps is not None:
        deps[1].extend(keep)
    return values


# ---------------------------------------------------------------------------
# Pickling a value, and what cannot travel
# ---------------------------------------------------------------------------

def _reader_name(reader):
    return getattr(reader, "__qualname__", None) or type(reader).__qualname__


def _unpicklable(name, value, reader, err):
    from . import _check
    message = _check.diagnose(value, "it") or (
        "it (%s.%s) cannot be pickled: %s"
        % (type(value).__module__, type(value).__qualname__, err))
    return _check.PicklingError(
        "%s reads the notebook global %r, which cannot be sent to a worker "
        "process: %s" % (_reader_name(reader), name, message))


def _pickle(name, value, reader, out_of_band):
    """(payload, [buffer views]) of value, pickled as a task's parts are;
    ferry.PicklingError naming the global if it cannot be."""
    from . import _check
    # Plain pickling first, as for a task's arguments (ferry._pool._dumps):
    # the task pickler's hooks act only on what belongs to __main__, and it
    # costs several times more for a small value.
    buffers = []
    try:
        payload = pickle.dumps(value, 5, buffer_callback=buffers.append if out_of_band
                               else None)
    except Exception:
        payload = None
    if payload is not None and b"__main__" not in payload:
        return memoryview(payload), [b.raw() for b in buffers]
    buf, buffers = io.BytesIO(), []
    try:
        _check.TaskPickler(buf, 5, True,
                           buffers.append if out_of_band else None).dump(value)
        views = [b.raw() for b in buffers]
    except Exception as err:
        raise _unpicklable(name, value, reader, err) from None
    return buf.getbuffer(), views


_warned = set()


def _warn_size(name, size, reader):
    """A one-time warning in the cell for a value over WARN_BYTES."""
    if size <= WARN_BYTES or name in _warned:
        return
    _warned.add(name)
    sys.stderr.write(
        "ferry: the notebook global %r that %s reads is %s pickled; it is "
        "sent to the workers with the task (to each of ferry's workers once, with "
        "every task to a multiprocessing pool), which takes time and that much "
        "memory in each worker. Loading it inside the task (from a file) avoids "
        "that.\n" % (name, _reader_name(reader), _human(size)))


def _human(size):
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return "%.0f %s" % (size, unit) if unit == "bytes" else "%.1f %s" % (size, unit)
        size /= 1024


# ---------------------------------------------------------------------------
# ferry's own pool: the value store
# ---------------------------------------------------------------------------

class Store:
    """The values sent to ferry's workers, one file per distinct value.

    holds: digest -> number of pending dispatches naming it.  A file is
    deleted when its digest is neither current for a name nor held.
    """

    GONE_KEPT = 64  # deleted names told to workers, newest first

    def __init__(self, runtime_dir):
        self.dir = os.path.join(runtime_dir, "globals")
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        self._lock = threading.Lock()
        self._holds = {}     # digest -> pending dispatches naming it
        self._current = {}   # name -> digest of its value at the last dispatch
        self._gone = {}      # name -> None: deleted in the notebook since sent
        self._seq = 0        # digests are "v<seq>": a new one for each new value
        # name -> (digest, payload) of a current value small enough to keep
        # here too: its compare needs no open and map of its file.
        self._small = {}

    def _file(self, digest):
        return os.path.join(self.dir, digest)

    def capture(self, values, reader, main):
        """The task spec part for values {name: value}, held until release():
        (((name, digest, file), ...), names to forget)."""
        entries = []
        for name in sorted(values):
            payload, views = _pickle(name, values[name], reader, True)
            lengths = [len(payload)] + [v.nbytes for v in views]
            _warn_size(name, sum(lengths), reader)
            with self._lock:
                digest = self._current.get(name)
                self._hold(digest)
            if digest is None or not self._unchanged(name, digest, lengths, payload,
                                                     views):
                with self._lock:
                    self._release(digest)
                    self._seq += 1
                    digest = "v%d" % self._seq
                    self._hold(digest)
                self._write(self._file(digest), lengths, payload, views)
            if not views and len(payload) <= SMALL_BYTES:
                self._small[name] = (digest, bytes(payload))
            else:
                self._small.pop(name, None)
            entries.append((name, digest, self._file(digest)))
        with self._lock:
            for name, digest, _ in entries:
                old = self._current.get(name)
                self._current[name] = digest
                self._gone.pop(name, None)
                if old is not None and old != digest:
                    self._maybe_delete(old)
            for name in [n for n in self._current if n not in main]:
                self._maybe_delete(self._current.pop(name))
                self._small.pop(name, None)
                self._gone[name] = None
                while len(self._gone) > self.GONE_KEPT:
                    del self._gone[next(iter(self._gone))]
            forget = tuple(self._gone)
        return tuple(entries), forget

    def _unchanged(self, name, digest, lengths, payload, views):
        """True if the value stored under digest pickles to these parts."""
        small = self._small.get(name)
        if small is not None and small[0] == digest and not views:
            return payload == small[1]
        return _same_bytes(self._file(digest), lengths, payload, views)

    def _hold(self, digest):
        if digest is not None:
            self._holds[digest] = self._holds.get(digest, 0) + 1

    def _release(self, digest):
        """Under the lock."""
        if digest is None:
            return
        n = self._holds.get(digest, 0) - 1
        if n > 0:
            self._holds[digest] = n
        else:
            self._holds.pop(digest, None)
            self._maybe_delete(digest)

    def release(self, entries):
        with self._lock:
            for _, digest, _ in entries:
                self._release(digest)

    def _maybe_delete(self, digest):
        """Under the lock: removes a value's file nothing needs any more."""
        if digest in self._holds or digest in self._current.values():
            return
        try:
            os.unlink(self._file(digest))
        except OSError:
            pass

    def _write(self, path, lengths, payload, views):
        tmp = "%s.%d.tmp" % (path, threading.get_ident())
        with open(tmp, "wb") as f:
            f.write(_globals_rt.header(lengths))
            for part, length in zip([payload] + views, lengths):
                f.write(part)
                f.write(b"\0" * (_globals_rt._aligned(length) - length))
        os.replace(tmp, path)


def _same_bytes(path, lengths, payload, views):
    """True if the file at path holds exactly these parts: the proof that a
    value has not changed since it was stored (cheaper than hashing it:
    a compare of memory, and the first difference in the pickle ends it)."""
    try:
        with open(path, "rb") as f:
            m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
    except (OSError, ValueError):
        return False
    with m:
        head = _globals_rt.header(lengths)
        if m[:len(head)] != head:
            return False
        offset = len(head)
        for view, length in zip([payload] + views, lengths):
            if not _equal_buffers(m, offset, view, length):
                return False
            offset = _globals_rt._aligned(offset + length)
        return True


_STEP = 1 << 20  # compare a megabyte at a time: a changed value ends early


def _equal_buffers(m, offset, view, length):
    np = sys.modules.get("numpy")  # loaded: out-of-band buffers are its arrays
    for start in range(0, length, _STEP):
        size = min(_STEP, length - start)
        if np is not None:
            same = np.array_equal(np.frombuffer(m, np.uint8, size, offset + start),
                                  np.frombuffer(view, np.uint8, size, start))
        else:
            stored = memoryview(m)[offset + start:offset + start + size]
            try:
                same = hmac.compare_digest(stored, view[start:start + size])
            finally:
                stored.release()
        if not same:
            return False
    return True


_store = None
_store_lock = threading.Lock()


def _the_store(rec):
    global _store
    with _store_lock:
        if _store is None or not _store.dir.startswith(rec.runtime_dir + os.sep):
            _store = Store(rec.runtime_dir)
        return _store


class Dispatch:
    """The globals one dispatch (a map or a submit) sends: spec for the
    task's head (None when the function reads none), held until release()."""

    __slots__ = ("spec", "_entries", "_store")

    def __init__(self, spec=None, entries=(), store=None):
        self.spec, self._entries, self._store = spec, entries, store

    def release(self, *_):
        entries, self._entries = self._entries, ()
        if entries:
            self._store.release(entries)


_NONE = NOTHING_SENT = Dispatch()  # nothing to hold or release


def capture(fn, rec):
    """The Dispatch for fn: each notebook global fn reads that a worker
    does not have, pickled and stored, or _NONE.  Raises ferry.PicklingError
    naming a global that cannot travel."""
    if rec is None:
        return _NONE
    return _dispatch(fn, rec, globals_for(fn, rec))


def _dispatch(fn, rec, values):
    """capture's Dispatch for the values {name: value} fn reads."""
    store = _store
    if not values and (store is None or not (store._gone or store._current)):
        return _NONE  # nothing to send, nothing to tell workers to drop
    store = _the_store(rec)
    entries, forget = store.capture(values, fn, rec.main.__dict__)
    if not entries and not forget:
        return _NONE
    return Dispatch((rec.latest[0], entries, forget), entries, store)


# What a walk may visit and still be kept (Reads): objects whose part in the
# walk cannot change while they stay bound to the same names - exactly these
# types (no instance __dict__, nothing _parts follows), and modules.
_LEAVES = frozenset((types.BuiltinFunctionType, int, float, complex, str, bytes, bool,
                     type(None), list, dict, set, frozenset, tuple, bytearray))


class Reads:
    """A walk of read_globals kept for the next dispatch of the same
    function (a loop of submits walks once).  It still holds while the
    re-export version is the same, every name the walk looked up is bound to
    the same object (or still unbound), and each function it visited has
    the same code and no attributes of its own (a `__wrapped__` would be
    followed).  Made only for walks through plain functions without closures,
    modules and the _LEAVES: a class, an instance or a closure can change
    what it reaches without a name being rebound.  The values it names are
    still pickled and compared at every dispatch (capture): one changed in
    place travels as it is now.  A name whose value travels and is of a
    _LEAVES type is checked by that exact type, not by the object, which it
    does not keep alive (a deleted global gives its memory back): any such
    value travels, and the walk goes no further into it."""

    __slots__ = ("path", "names", "funcs", "sends")

    def __init__(self, path, names, funcs, sends):
        self.path = path    # the re-export version walked against
        self.names = names  # ((name, object or _MISSING), ...) looked up
        self.funcs = funcs  # ((function, its __code__), ...) visited
        self.sends = sends  # ((name, type of its value), ...) that travel

    def hold(self, rec):
        """True if the walk would find the same now."""
        if rec.latest[0] is not self.path:
            return False
        get = rec.main.__dict__.get
        for name, value in self.names:
            if get(name, _MISSING) is not value:
                return False
        for f, code in self.funcs:
            if f.__code__ is not code or f.__dict__:
                return False
        for name, kind in self.sends:
            if type(get(name, None)) is not kind:
                return False
        return True

    def dispatch(self, fn, rec):
        """capture(fn, rec) for a walk that holds."""
        get = rec.main.__dict__.get
        values = {}
        for name, _ in self.sends:
            value = values[name] = get(name, _MISSING)
            if value is _MISSING:  # deleted by another thread since hold()
                return capture(fn, rec)
        return _dispatch(fn, rec, values)


def capture_reads(fn, rec):
    """(capture(fn, rec), Reads or None): the Reads when the walk can be
    kept."""
    if rec is None:
        return _NONE, None
    main = rec.main.__dict__
    path, exported = rec.latest
    names, visited = [], []
    values = read_globals(fn, main, exported, _worker_owned(main, path),
                          (names, visited))
    funcs = []
    for obj in visited:
        if isinstance(obj, types.FunctionType):
            if obj.__closure__ is not None or obj.__dict__:
                break
            funcs.append((obj, obj.__code__))
        elif type(obj) not in _LEAVES and not isinstance(obj, types.ModuleType):
            break
    else:
        # A value that travels and that the walk did not enter is checked by
        # its type only (hold): any other such value travels the same way.
        kept = tuple((name, value) for name, value in names
                     if name not in values or type(value) not in _LEAVES)
        sends = tuple((name, type(value)) for name, value in values.items())
        return _dispatch(fn, rec, values), Reads(path, kept, tuple(funcs), sends)
    return _dispatch(fn, rec, values), None


def check(fn, rec):
    """ferry.check's part: raises ferry.PicklingError for a global fn reads
    that cannot be pickled."""
    if rec is None:
        return
    values = globals_for(fn, rec)
    for name in sorted(values):
        _pickle(name, values[name], fn, False)
