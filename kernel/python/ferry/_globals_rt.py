"""Worker side of computed globals (private to ferry._globals).

A cell function that reads a notebook global bound to a computed value
(``data = load()``, ``cfg = {"k": 1}``) gets that value in the worker,
as it was when the task was dispatched.  The kernel side (ferry._globals)
decides what travels; this module puts the values where the function
looks for them: the globals of the re-export module the function was
looked up in (ferry._rx_rt.load(path)).

Two ways in:

* ferry's own workers: the task's head names each value by a digest and
  a file in the kernel's runtime directory (written once per distinct
  value).  bind() keeps one object per global name: a digest it holds
  already costs a dict assignment, a new one is read from its file once
  (mapped copy-on-write, so NumPy buffers are not copied) and replaces
  the old object, which is then dropped.
* multiprocessing and concurrent.futures children: the values travel
  pickled inside the reduction of the function (with_globals), with every
  task that names the function; there is no cache.

Imported in plain ``/usr/bin/python3`` children: only the standard library.
"""
import mmap
import pickle
import struct
import types

from . import _rx_rt

# File layout of one value: MAGIC, u32 count of out-of-band buffers, u64
# lengths of the payload and of each buffer, then the payload and each
# buffer, every part starting at a multiple of ALIGN (NumPy wants aligned
# data, and the mapping keeps the offsets).
MAGIC = b"FERRYGV1"
ALIGN = 64

# name -> (digest, object): the value this worker holds for each global.
_held = {}
# name -> [namespace, ...]: the module dicts the value was bound in.
_bound_in = {}


def _aligned(n):
    return (n + ALIGN - 1) // ALIGN * ALIGN


def header(lengths):
    """The bytes before the payload for parts of these lengths."""
    head = MAGIC + struct.pack("<I", len(lengths) - 1) + struct.pack(
        "<%dQ" % len(lengths), *lengths)
    return head + b"\0" * (_aligned(len(head)) - len(head))


def read_value(path):
    """The object stored at path (written by ferry._globals)."""
    with open(path, "rb") as f:
        # Private and writable: buffers that NumPy rebuilds on it are
        # shared with the page cache until a task writes to them.
        m = mmap.mmap(f.fileno(), 0, flags=mmap.MAP_PRIVATE,
                      prot=mmap.PROT_READ | mmap.PROT_WRITE)
    view = memoryview(m)
    if bytes(view[:8]) != MAGIC:
        raise ValueError("not a ferry value file")
    (count,) = struct.unpack_from("<I", view, 8)
    lengths = struct.unpack_from("<%dQ" % (count + 1), view, 12)
    offset = _aligned(12 + 8 * (count + 1))
    parts = []
    for length in lengths:
        parts.append(view[offset:offset + length])
        offset = _aligned(offset + length)
    try:
        return pickle.loads(parts[0], buffers=parts[1:])
    finally:
        parts[0].release()


def _namespaces(obj, path):
    """The dicts obj's code reads globals from: the version module's, and
    the one its functions were made in if that is another (a spawn child's
    __mp_main__ holds a copy of the dict runpy ran the version in)."""
    spaces = [_rx_rt.load(path).__dict__]
    obj = getattr(obj, "__func__", getattr(obj, "func", obj))
    if isinstance(obj, type):
        for v in vars(obj).values():
            v = getattr(v, "__func__", v)
            if isinstance(v, types.FunctionType):
                obj = v
                break
    ns = getattr(obj, "__globals__", None)
    if isinstance(ns, dict) and ns is not spaces[0]:
        spaces.append(ns)
    return spaces


def bind(spec, fn):
    """Binds the globals a task of fn reads, as its head names them: spec =
    (version path, ((name, digest, file), ...), names the notebook deleted)."""
    global _last
    path, values, gone = spec
    if gone:
        forget(gone)
    if _last[0] is spec and _last[1] is fn:
        spaces = _last[2]  # the next task of the same map: the same head
    else:
        spaces = _namespaces(fn, path)
        _last = (spec, fn, spaces)
    for ns in spaces:
        _bind_in(ns, values)


_last = (None, None, None)  # (spec, fn, namespaces) of the last task


def _bind_in(ns, values):
    for name, digest, file in values:
        held = _held.get(name)
        if held is None or held[0] != digest:
            obj = _find(digest)
            if obj is _MISSING:
                try:
                    obj = read_value(file)
                except OSError as exc:
                    raise _rx_rt.ReexportError(
                        "ferry could not load the value of the notebook global %r "
                        "in this worker process: %s" % (name, exc)) from None
            _replace(name, digest, obj)
        spaces = _bound_in.setdefault(name, [])
        if not any(s is ns for s in spaces):
            spaces.append(ns)
        ns[name] = _held[name][1]


_MISSING = object()


def _find(digest):
    """An object this worker already holds under another name with the
    same value (`a = b` in the notebook stays one object here too)."""
    for held_digest, obj in _held.values():
        if held_digest == digest:
            return obj
    return _MISSING


def _replace(name, digest, obj):
    """The new value of name replaces the old one everywhere it was bound,
    so nothing here keeps the old one alive."""
    _held[name] = (digest, obj)
    for ns in _bound_in.get(name, ()):
        ns[name] = obj


def forget(names):
    """Drops the values of globals the notebook no longer binds."""
    for name in names:
        if _held.pop(name, None) is not None:
            for ns in _bound_in.pop(name, ()):
                ns.pop(name, None)


def with_globals(path, blob, make, args):
    """make(*args) - a cell function or class of the re-export version at
    path (ferry._rx_rt.lookup or make_function) - with the notebook globals
    it reads (blob: ((name, pickled value), ...)) bound in that version's
    namespace.  For multiprocessing children, whose pool dies on an
    unpickling error: never raises, a failure becomes a stand-in that raises
    when the task uses it."""
    obj = make(*args)
    try:
        values = [(name, pickle.loads(payload)) for name, payload in blob]
        for ns in _namespaces(obj, path):
            ns.update(values)
    except Exception as exc:
        qualname = getattr(obj, "__qualname__", "the function")
        return _rx_rt.StandIn(qualname, (
            "ferry could not load the notebook globals that %s reads in this "
            "worker process: %s" % (qualname, _rx_rt._describe(exc))))
    return obj
