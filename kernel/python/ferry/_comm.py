"""Comms: the channel between objects in the kernel and in the frontend
(widgets are built on it), as in the messaging spec.

    kernel -> frontend   comm_open / comm_msg / comm_close on iopub
    frontend -> kernel   the same three on shell; comm_info_request lists
                         the open comms (those of one target_name if given)

A comm opened by the frontend goes to the function registered for its
target_name, called with the new comm and the comm_open message; without one
(or when it raises) the comm is closed again, as ipykernel does.  What a
callback publishes goes out under the message being handled, so a widget's
reply carries the comm_msg it answers.

One registry holds every open comm and every target, whichever way a library
reaches it: ferry's own `CommManager` (the `comm` package's
`get_comm_manager()` once the package is imported), or the ipykernel
`Kernel.comm_manager` that ipywidgets 6 uses (ferry._ipykernel_compat).  A
manager only decides what class a comm opened by the frontend gets, because
libraries check it (ipywidgets 6 wants ipykernel's Comm).
"""
import builtins
import json
import uuid

import _ferry_kernel

from . import _display

_comms = {}    # comm_id -> comm object (any flavour)
_targets = {}  # target_name -> (callback, the CommManager it was registered with)


def _log(what):
    """Library errors in comm callbacks go to the kernel's log, as
    ipykernel's CommManager logs them: never into a cell."""
    import traceback
    _ferry_kernel.log(0, f"{what}:\n{traceback.format_exc().rstrip()}")


def _clean(value):
    """JSON-safe data, as ipykernel's json_clean makes it (tuples become
    lists; objects json cannot write become their repr)."""
    return json.loads(json.dumps(value, default=repr))


class Comm:
    """A comm, with the API of the `comm` package's BaseComm and
    ipykernel's Comm: open/send/close, on_msg/on_close."""

    def __init__(self, target_name="comm", data=None, metadata=None, buffers=None,
                 comm_id=None, primary=True, target_module=None, topic=None,
                 _open_data=None, _close_data=None, **kwargs):
        self.comm_id = comm_id or uuid.uuid4().hex
        self.primary = primary
        self.target_name = target_name
        self.target_module = target_module
        self.topic = topic or ("comm-%s" % self.comm_id).encode("ascii")
        self._open_data = _open_data or {}
        self._close_data = _close_data or {}
        self._msg_callback = None
        self._close_callback = None
        self._closed = True
        if primary:
            self.open(data=data, metadata=metadata, buffers=buffers)
        else:
            self._closed = False
            manager().register_comm(self)

    def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        content = {"data": {} if data is None else data, "comm_id": self.comm_id, **keys}
        _display.publish(msg_type, _clean(content), _clean(metadata or {}), buffers)

    def open(self, data=None, metadata=None, buffers=None):
        manager().register_comm(self)
        try:
            self.publish_msg("comm_open", data=self._open_data if data is None else data,
                             metadata=metadata, buffers=buffers,
                             target_name=self.target_name,
                             target_module=self.target_module)
            self._closed = False
        except Exception:
            manager().unregister_comm(self)
            raise

    def close(self, data=None, metadata=None, buffers=None, deleting=False):
        if self._closed:
            return
        self._closed = True
        self.publish_msg("comm_close", data=self._close_data if data is None else data,
                         metadata=metadata, buffers=buffers)
        if not deleting:
            manager().unregister_comm(self)

    def __del__(self):
        try:
            self.close(deleting=True)
        except Exception:
            pass  # at interpreter exit the publisher may be gone

    def send(self, data=None, metadata=None, buffers=None):
        self.publish_msg("comm_msg", data=data, metadata=metadata, buffers=buffers)

    def on_msg(self, callback):
        """callback(msg) for each comm_msg; None removes it."""
        self._msg_callback = callback

    def on_close(self, callback):
        """callback(msg) when the frontend closes the comm; None removes it."""
        self._close_callback = callback

    def handle_msg(self, msg):
        if self._msg_callback is not None:
            shell = getattr(builtins, "get_ipython", lambda: None)()
            if shell is not None:
                shell.events.trigger("pre_execute")
            self._msg_callback(msg)
            if shell is not None:
                shell.events.trigger("post_execute")

    def handle_close(self, msg):
        if self._close_callback is not None:
            self._close_callback(msg)


class CommManager:
    """Targets and open comms, with the API of the `comm` package's
    CommManager (and ipykernel's).  make_comm(comm_id=, primary=False,
    target_name=) builds the comm for a comm_open from the frontend."""

    def __init__(self, make_comm=Comm):
        self._make_comm = make_comm
        self.targets = {}  # the targets registered through this manager

    @property
    def comms(self):
        return _comms

    def register_target(self, target_name, f):
        if isinstance(f, str):
            from importlib import import_module
            module, _, name = f.rpartition(".")
            f = getattr(import_module(module), name)
        self.targets[target_name] = f
        _targets[target_name] = (f, self)

    def unregister_target(self, target_name, f=None):
        _targets.pop(target_name, None)
        return self.targets.pop(target_name, None)

    def register_comm(self, comm):
        _comms[comm.comm_id] = comm
        return comm.comm_id

    def unregister_comm(self, comm):
        return _comms.pop(comm.comm_id, None)

    def get_comm(self, comm_id):
        return _comms.get(comm_id)

    # ipykernel's handler signatures, for code that calls them directly.
    def comm_open(self, stream, ident, msg):
        comm_open(msg)

    def comm_msg(self, stream, ident, msg):
        comm_msg(msg)

    def comm_close(self, stream, ident, msg):
        comm_close(msg)


_manager = None


def manager():
    """ferry's CommManager (also the `comm` package's)."""
    global _manager
    if _manager is None:
        _manager = CommManager()
    return _manager


def create_comm(*args, **kwargs):
    """The `comm` package's create_comm, in ferry."""
    return Comm(*args, **kwargs)


# ------------------------------------------------ messages from the frontend


def comm_open(msg):
    content = msg["content"]
    comm_id, target = content.get("comm_id"), content.get("target_name")
    found = _targets.get(target)
    if found is None:
        _found_late(target)
        found = _targets.get(target)
    if found is None:
        _ferry_kernel.log(2, f"comm_open for unknown target {target!r}: closed")
        Comm(comm_id=comm_id, target_name=target, primary=False).close()
        return
    callback, owner = found
    comm = owner._make_comm(comm_id=comm_id, primary=False, target_name=target)
    owner.register_comm(comm)
    try:
        callback(comm, msg)
    except Exception:
        _log(f"comm target {target!r} failed to open comm {comm_id}")
        comm.close()


def _found_late(target):
    """Targets ferry serves before their library is imported (widgets)."""
    if target in ("jupyter.widget.version", "jupyter.widget"):
        from . import _widgets
        _widgets.register_early_targets()


def comm_msg(msg):
    comm = _comms.get(msg["content"].get("comm_id"))
    if comm is None:
        return
    try:
        comm.handle_msg(msg)
    except Exception:
        _log(f"comm_msg for {comm.comm_id} failed")


def comm_close(msg):
    comm = _comms.pop(msg["content"].get("comm_id"), None)
    if comm is None:
        return
    comm._closed = True
    try:
        comm.handle_close(msg)
    except Exception:
        _log(f"comm_close for {comm.comm_id} failed")


def comm_info(msg):
    target = msg["content"].get("target_name")
    comms = {cid: {"target_name": c.target_name} for cid, c in list(_comms.items())
             if target is None or c.target_name == target}
    return {"status": "ok", "comms": comms}


_HANDLERS = {"comm_open": comm_open, "comm_msg": comm_msg, "comm_close": comm_close,
             "comm_info_request": comm_info}


def _malformed(kind, content):
    """Why a comm message from a client cannot be handled, or None."""
    if not isinstance(content, dict):
        return "its content is not an object"
    if kind != "comm_info_request" and not isinstance(content.get("comm_id"), str):
        return "'comm_id' must be a string"
    if kind == "comm_open" and not isinstance(content.get("target_name"), str):
        return "'target_name' must be a string"
    if kind == "comm_info_request" and not isinstance(content.get("target_name"),
                                                     (str, type(None))):
        return "'target_name' must be a string"
    return None


def handle(msg):
    """One comm message from the frontend; the reply content or None.
    Any client may send one: a malformed one is logged and dropped (a
    comm_info_request gets an error reply), never raised."""
    kind = msg["header"]["msg_type"]
    why = _malformed(kind, msg.get("content"))
    if why is not None:
        _ferry_kernel.log(1, f"{kind} dropped: {why}")
        if kind == "comm_info_request":
            return {"status": "error", "ename": "ValueError",
                    "evalue": f"comm_info_request: {why}", "traceback": []}
        return None
    return _HANDLERS[kind](msg)
