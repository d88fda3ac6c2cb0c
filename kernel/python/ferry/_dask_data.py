"""What a dispatch to a Dask cluster sends once rather than with each
task (private to ferry._dask and ferry._dask_ship): large arrays and bytes among its arguments,
and the notebook globals its function reads.

Large values (SHARE_BYTES and more) are pickled as persistent references
(ferry._dask_ship's cluster pickler asks _Shared) and scattered to the cluster
once, keyed by a digest of their contents, so one changed in place is sent
again.

Notebook globals that a worker cannot re-create (ferry._globals decides
which: computed values, mutable literals) travel by value, as they are
when map or submit is called: each is pickled at the dispatch and, when
its bytes differ from those sent last for that name, scattered once as one
Dask future; every task of the dispatch names (name, digest) and holds the
futures, and the worker runtime (ferry/_cluster_rt.py) rebinds the name
only when the digest changes.  The cost per dispatch is one pickle and one
compare of bytes per global read, plus a hash and a scatter for a new value.
"""
import hashlib
import io
import sys
import threading

from . import _globals

SHARE_BYTES = 64 * 1024  # an array or bytes this large is scattered once
KEEP_SCATTERED = 16  # scattered values kept on the cluster for later tasks
SNAPSHOT_BYTES = 8 * 2 ** 20  # arrays up to this size: a copy tells a change


class _Shared:
    """The large objects of one dispatch, each pickled as a reference."""

    def __init__(self):
        self.objects = []
        self._index = {}  # id -> position

    def add(self, obj):
        i = self._index.get(id(obj))
        if i is None:
            i = self._index[id(obj)] = len(self.objects)
            self.objects.append(obj)
        return i


def _large(obj):
    """True for a value worth sending once: bytes, or a numpy array of plain
    numbers, of SHARE_BYTES or more."""
    t = type(obj)
    if t is bytes:
        return len(obj) >= SHARE_BYTES
    np = sys.modules.get("numpy")
    return (np is not None and t is np.ndarray and obj.nbytes >= SHARE_BYTES
            and not obj.dtype.hasobject)


def _digest(obj):
    h = hashlib.sha256()  # hardware-assisted here: about 1.5 ms per MiB
    if type(obj) is bytes:
        h.update(b"bytes")
        h.update(obj)
    else:
        h.update(repr((obj.dtype.str, obj.shape)).encode())
        h.update(obj.data if obj.flags.c_contiguous else obj.tobytes())
    return h.digest()


def _raw(arr):
    """The bytes of a C-contiguous array as a flat uint8 array (no copy)."""
    return arr.reshape(-1).view("uint8")


class _Sent:
    """What the cluster holds of one large value the kernel sent: the Dask
    future, and how to tell that the object is unchanged the next time it
    is sent - itself for bytes (immutable), a copy of an array's bytes (ten
    times faster to compare than to hash again), or nothing (hash again)."""

    __slots__ = ("digest", "future", "obj", "ref", "copy")

    def __init__(self, obj, digest, future):
        import weakref
        self.digest, self.future = digest, future
        self.obj = self.ref = self.copy = None
        if type(obj) is bytes:
            self.obj = obj
        elif obj.flags.c_contiguous and obj.nbytes <= SNAPSHOT_BYTES:
            self.ref = weakref.ref(obj)
            self.copy = _raw(obj).copy()

    def same(self, obj):
        """True if obj is the object sent, unchanged since."""
        if self.obj is not None:
            return self.obj is obj
        if self.ref is None or self.ref() is not obj or not obj.flags.c_contiguous:
            return False
        np = sys.modules["numpy"]
        return np.array_equal(self.copy, _raw(obj))


class Scattered:
    """What one Cluster scattered: large values and notebook globals."""

    def __init__(self, client):
        self.client = client
        self._lock = threading.Lock()
        self._scattered = {}  # digest -> _Sent, oldest first
        self._by_id = {}  # id(object) -> _Sent, for the objects sent lately
        self._globals = {}  # global name -> (pickle, digest, Dask future)

    def share(self, shared):
        """Dask futures for the large objects of one dispatch, scattering
        those the cluster does not hold yet."""
        futures = []
        for obj in shared.objects:
            sent = self._by_id.get(id(obj))
            if sent is None or not sent.same(obj) or sent.future.status != "finished":
                digest = _digest(obj)
                sent = self._scattered.get(digest)
                if sent is None or sent.future.status != "finished":
                    sent = _Sent(obj, digest, self.client.scatter(obj, hash=False))
                elif not sent.same(obj):
                    sent = _Sent(obj, digest, sent.future)  # same value, other object
                self._by_id[id(obj)] = sent
            self._scattered.pop(sent.digest, None)
            self._scattered[sent.digest] = sent  # now the newest
            futures.append(sent.future)
        while len(self._scattered) > KEEP_SCATTERED:
            self._scattered.pop(next(iter(self._scattered)))
        live = {id(s) for s in self._scattered.values()}
        self._by_id = {k: v for k, v in self._by_id.items() if id(v) in live}
        return futures

    def pickle_globals(self, fn, rec, make_pickler, versions):
        """[(name, pickle)] of the notebook globals fn reads that travel by
        value, as they are now (make_pickler(file) makes the cluster
        pickler); ferry.PicklingError naming one that cannot be pickled.
        The re-export versions they refer to join versions."""
        if rec is None:
            return []
        values = _globals.globals_for(fn, rec)
        out = []
        for name in sorted(values):
            buf = io.BytesIO()
            pickler = make_pickler(buf)
            try:
                pickler.dump(values[name])
            except Exception as err:
                raise _globals._unpicklable(name, values[name], fn, err) from None
            versions |= pickler.versions
            payload = buf.getvalue()
            _globals._warn_size(name, len(payload), fn)
            out.append((name, payload))
        return out

    def send_globals(self, pickled):
        """((name, digest), ...) and the Dask futures of their pickles, for
        one dispatch: a value whose bytes are those sent last for its name
        is not sent again; a new one is scattered once, whatever the number
        of tasks that read it."""
        names, futures = [], []
        main = sys.modules["__main__"].__dict__
        with self._lock:
            for gone in [n for n in self._globals if n not in main]:
                del self._globals[gone]  # deleted in the notebook: Dask may drop it
            for name, payload in pickled:
                sent = self._globals.get(name)
                if sent is None or sent[0] != payload or sent[2].status != "finished":
                    digest = hashlib.sha256(payload).hexdigest()[:24]
                    same = [s for s in self._globals.values()
                            if s[1] == digest and s[2].status == "finished"]
                    future = same[0][2] if same else self.client.scatter(payload, hash=False)
                    sent = self._globals[name] = (payload, digest, future)
                names.append((name, sent[1]))
                futures.append(sent[2])
        return tuple(names), futures
