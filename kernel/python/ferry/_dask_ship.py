"""ferry on a Dask cluster, what ships the code: the worker runtime and
re-export version files the worker plugins carry, and the pickling of a
dispatch's parts (private to ferry._dask, which tells how a task travels).
Imports no `distributed`.
"""
import hashlib
import io
import os
import pickle
import platform
import re
import sys
import threading
import types
import uuid

from . import _check, _rx_rt
from ._dask_data import SHARE_BYTES, _large

_KERNEL_ID = uuid.uuid4().hex[:12]  # module names unique per kernel
_PYTHON = platform.python_version()  # tasks load only where major.minor is the same
_runtime = None  # (module name, file, module) of the worker runtime
_runtime_lock = threading.Lock()
_RUNTIME_PARTS = ("_rx_rt.py", "_traceback.py", "_cluster_rt.py")


def _files_dir():
    d = sys.modules["ferry"].runtime_dir
    if d is None:  # outside a ferry kernel
        import tempfile
        d = sys.modules["ferry"].runtime_dir = tempfile.mkdtemp(prefix="ferry-")
    return d


def runtime():
    """(name, path, module): the worker runtime, loaded in the kernel under
    the name the workers know it by (so that task pickles name it)."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            here = os.path.dirname(os.path.abspath(__file__))
            parts = []
            for part in _RUNTIME_PARTS:
                with open(os.path.join(here, part), encoding="utf-8") as f:
                    parts.append(f.read())
            source = "\n".join(parts)
            name = "_ferry_rt_" + hashlib.sha1(source.encode()).hexdigest()[:12]
            path = os.path.join(_files_dir(), name + ".py")
            _write(path, source)
            mod = types.ModuleType(name)
            mod.__file__ = path
            sys.modules[name] = mod
            exec(compile(source, path, "exec", dont_inherit=True), mod.__dict__)
            _runtime = (name, path, mod)
        return _runtime


def _write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def _version_module(path):
    """The module name a Dask worker knows the re-export version at path by."""
    m = re.search(r"(\d+)\.py$", path)
    tag = m.group(1) if m else hashlib.sha1(path.encode()).hexdigest()[:8]
    return "ferry_%s_v%s" % (_KERNEL_ID, tag)


# ------------------------------------------------------------- pickling

class _ClusterPickler(_check.TaskPickler):
    """The local pool's task pickler, with cell definitions looked up in
    the worker's module for their version, and large values by reference.
    The notebook globals a cell function reads are not carried inside its
    reduction (the multiprocessing way): they travel once per value, as
    Dask futures (Cluster._globals_for)."""

    ferry_globals_elsewhere = True

    def __init__(self, file, rt, shared):
        super().__init__(file, 5)
        self._rt = rt
        self._shared = shared
        self.versions = set()  # re-export files the pickle refers to

    def reducer_override(self, obj):
        try:
            reduce = super().reducer_override(obj)
        except AttributeError:  # the re-export hook is not installed
            return NotImplemented
        if isinstance(reduce, tuple) and reduce[0] in (_rx_rt.lookup, _rx_rt.make_function):
            path, rest = reduce[1][0], reduce[1][1:]
            self.versions.add(path)
            fn = self._rt.lookup if reduce[0] is _rx_rt.lookup else self._rt.make_function
            return (fn, (_version_module(path),) + rest)
        return reduce

    def persistent_id(self, obj):
        if self._shared is not None and _large(obj):
            return self._shared.add(obj)
        return None


class _Dumper:
    """Pickles the parts of one dispatch: one cluster pickler for all of
    them (making one costs more than pickling a small task)."""

    def __init__(self, rt, shared):
        self._buf = io.BytesIO()
        self._pickler = _ClusterPickler(self._buf, rt, shared)

    @property
    def versions(self):
        return self._pickler.versions

    def dumps(self, obj):
        # Most task bodies (numbers, strings, small arrays) need none of the
        # cluster pickler's hooks: plain pickling is several times cheaper.
        # Anything naming __main__, or large enough to hold a value worth
        # sharing, or that fails, goes through the cluster pickler.
        # (Buffers out of band only to see them without copying them: a
        # value that has one, an array, may be worth sharing.)
        buffers = []
        try:
            payload = pickle.dumps(obj, 5, buffer_callback=buffers.append)
            if not buffers and len(payload) < SHARE_BYTES and b"__main__" not in payload:
                return payload
        except Exception:
            pass
        del buffers
        self._buf.seek(0)
        self._buf.truncate()
        self._pickler.clear_memo()
        self._pickler.dump(obj)
        return self._buf.getvalue()


# --------------------------------------------------------------- output

def _write_output(output):
    for which, text in output:
        stream = sys.stdout if which == "stdout" else sys.stderr
        stream.write(text)

