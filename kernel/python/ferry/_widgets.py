"""The widget version check, answered before ipywidgets is imported.

Notebook's widget extension opens a `jupyter.widget.version` comm as soon as
it connects to a kernel, and ipywidgets 6 registers that target only when it
is imported, later if ever: without an answer the page logs a failed check
and every widget displayed afterwards prints "Widget Javascript not
detected".  Importing ipywidgets at every kernel start would cost about
0.3 s and 25 MiB, so ferry answers the check itself with the version read
from ipywidgets' `_version.py`, keeps what the page replies, and hands it to
ipywidgets' Widget class when ipywidgets is imported.
"""
import os

_reply = None  # what the page answered: {"validated": bool, "frontend_version": str}


def _frontend_version():
    """ipywidgets' __frontend_version__, without importing ipywidgets; None
    when it is not installed or has no such version check (7 and later)."""
    import importlib.util
    try:
        spec = importlib.util.find_spec("ipywidgets")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    path = os.path.join(os.path.dirname(spec.origin), "_version.py")
    names = {}
    try:
        with open(path) as f:
            exec(compile(f.read(), path, "exec"), names)
    except Exception:
        return None
    return names.get("__frontend_version__")


def _version_opened(comm, msg):
    version = _frontend_version()
    if version is None:
        comm.close()
        return

    def answered(msg):
        global _reply
        _reply = dict(msg["content"].get("data") or {})
        _apply()

    comm.on_msg(answered)
    comm.send({"version": version})


def register_early_targets():
    """Called for a widget comm_open with no target: serves the version
    check while ipywidgets is not imported."""
    import sys
    if "ipywidgets" in sys.modules:
        return
    from . import _comm
    _comm.manager().register_target("jupyter.widget.version", _version_opened)


def _apply():
    import sys
    module = sys.modules.get("ipywidgets.widgets.widget")
    if module is None or _reply is None:
        return
    module.Widget._version_validated = bool(_reply.get("validated"))
    module.Widget._version_frontend = _reply.get("frontend_version", "")


def widgets_imported(module):
    """ipywidgets.widgets.widget was just executed."""
    _apply()
