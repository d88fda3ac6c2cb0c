"""get_ipython().kernel: what libraries written for ipykernel reach for.

Two flavours, one registry of comms (ferry._comm):

- Until ipykernel.kernelbase is imported, a light object: `comm_manager`,
  `session.send(iopub_socket, msg_type, content, ...)`, `get_parent()`,
  `shell`.  Nothing of ipykernel is imported.
- Once it is (ipywidgets 6 imports ipykernel.comm, whose Comm must belong to
  an `ipykernel.kernelbase.Kernel` instance and publishes through
  `kernel.session.send(kernel.iopub_socket, ...)`), a Kernel subclass is made
  the Kernel singleton.  It runs none of ipykernel's machinery (sockets,
  event loop): its session publishes through ferry, and comms the frontend
  opens become ipykernel Comm objects, as ipywidgets checks.  Kernels that
  never import ipykernel pay nothing for it.
"""
import builtins

import _ferry_kernel

from . import _comm, _display, _request


class _IOPub:
    """kernel.iopub_socket: only a token saying where a message goes."""

    def __repr__(self):
        return "<ferry iopub channel>"


IOPUB = _IOPub()


def send(stream, msg_or_type, content=None, metadata=None, buffers=None):
    """Session.send for iopub, through ferry's publisher.  The parent is the
    request being handled, whatever the caller names."""
    if stream is not IOPUB:
        raise ValueError("ferry: kernel.session.send() can send on "
                         "kernel.iopub_socket only")
    if isinstance(msg_or_type, dict):
        msg = msg_or_type
        msg_type = msg.get("msg_type") or msg["header"]["msg_type"]
        content = msg.get("content", {}) if content is None else content
        metadata = msg.get("metadata") if metadata is None else metadata
        buffers = msg.get("buffers") if buffers is None else buffers
    else:
        msg_type = msg_or_type
    _display.publish(msg_type, content or {}, metadata, buffers)
    return msg_type


def _parent(channel):
    return _request.parent_message() if channel == "shell" else {}


def _shell():
    return getattr(builtins, "get_ipython", lambda: None)()


class _LightSession:
    def send(self, stream, msg_or_type, content=None, parent=None, ident=None,
             buffers=None, track=False, header=None, metadata=None):
        send(stream, msg_or_type, content, metadata, buffers)


class _LightKernel:
    """get_ipython().kernel while ipykernel is not imported."""

    implementation = "ferry"
    iopub_socket = IOPUB

    def __init__(self):
        self.session = _LightSession()

    @property
    def comm_manager(self):
        return _comm.manager()

    @property
    def shell(self):
        return _shell()

    def get_parent(self, channel="shell"):
        return _parent(channel)

    @property
    def _parent_header(self):
        return _parent("shell")

    def __repr__(self):
        return "<ferry kernel: comm_manager, session.send(iopub_socket, ...)>"


_light = None
_ipykernel_instance = None


def kernel():
    """get_ipython().kernel: the ipykernel-flavoured one once it exists."""
    global _light
    if _ipykernel_instance is not None:
        return _ipykernel_instance
    if _light is None:
        _light = _LightKernel()
    return _light


def _ipykernel_comm(**kwargs):
    # Looked up at call time: ipykernel.comm imports kernelbase, whose import
    # is what calls install().
    from ipykernel.comm import Comm
    return Comm(**kwargs)


def install(kernelbase):
    """Makes a ferry-backed Kernel the ipykernel Kernel singleton."""
    global _ipykernel_instance
    if _ipykernel_instance is not None or kernelbase.Kernel.initialized():
        return
    from jupyter_client.session import Session

    class FerrySession(Session):
        def send(self, stream, msg_or_type, content=None, parent=None, ident=None,
                 buffers=None, track=False, header=None, metadata=None):
            send(stream, msg_or_type, content, metadata, buffers)

    class FerryKernel(kernelbase.Kernel):
        implementation = "ferry"
        comm_manager = _comm.CommManager(make_comm=_ipykernel_comm)

        @property
        def shell(self):
            return _shell()

        def get_parent(self, channel="shell"):
            return _parent(channel)

        @property
        def _parent_header(self):  # ipykernel 5's name, which ipywidgets 6 reads
            return _parent("shell")

    try:
        _ipykernel_instance = FerryKernel.instance(session=FerrySession(key=b""),
                                                   iopub_socket=IOPUB)
    except Exception:
        import traceback
        _ferry_kernel.log(0, "cannot stand in for ipykernel's Kernel (comms from "
                             f"ipywidgets will not work):\n{traceback.format_exc().rstrip()}")
