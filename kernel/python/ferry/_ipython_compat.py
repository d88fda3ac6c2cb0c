"""IPython.display, IPython.get_ipython and matplotlib in a ferry kernel.

Without a running IPython shell, IPython's own display() prints a repr and
clear_output() writes terminal escapes.  ferry never imports IPython itself
(it is slow to import): ferry._importhook waits for the user to import it,
and the moment IPython.core.display_functions has been executed, points its
display, update_display, clear_output and publish_display_data at
ferry's.  IPython.core.getipython is wrapped the same way (see
_wrap_get_ipython).  Everything in IPython.display that shows something goes through
those four (display_html, DisplayHandle, HTML(...) as a cell result), so
HTML, Markdown, Image, Math, JSON and friends reach the frontend unchanged.

matplotlib gets the same treatment: once it is imported, it is pointed at
ferry's inline backend, unless MPLBACKEND says otherwise.  The environment
variable itself is left alone, because every child process inherits it: a
plain `python plot.py` run from a cell cannot import ferry's backend.
"""
import sys

from . import _display, _importhook

_DISPLAY = "IPython.core.display_functions"
_GETIPYTHON = "IPython.core.getipython"
_MATPLOTLIB = "matplotlib"
_TARGETS = (_DISPLAY, _GETIPYTHON, _MATPLOTLIB)
INLINE_BACKEND = "module://ferry._mpl_inline"
force_inline = False  # %matplotlib inline ran before matplotlib was imported


def publish_display_data(data, metadata=None, source=None, *, transient=None, **kwargs):
    """IPython's publish_display_data: sends a ready MIME bundle."""
    _display.publish("display_data", {"data": data, "metadata": metadata or {},
                                      "transient": transient or {}})


def _clear_output(wait=False):
    _display.clear_output(wait)


def _wrap_get_ipython(original):
    """IPython.get_ipython(), as called from a cell, returns ferry's shell
    (what the builtin get_ipython() returns); called from anywhere else, it
    returns what IPython says (None: no IPython shell runs), so libraries
    that probe for IPython do not take ferry for it."""
    def get_ipython():
        from . import _magics
        shell = _magics.get_ipython()
        if shell is not None and sys._getframe(1).f_globals is shell.user_ns:
            return shell
        return original()
    get_ipython.__doc__ = original.__doc__
    get_ipython.__wrapped__ = original
    return get_ipython


def select_inline_backend(matplotlib):
    if force_inline or "MPLBACKEND" not in __import__("os").environ:
        matplotlib.use(INLINE_BACKEND)


def patch(module):
    if module.__name__ == _MATPLOTLIB:
        select_inline_backend(module)
        return
    if module.__name__ == _GETIPYTHON:
        if not hasattr(module.get_ipython, "__wrapped__"):
            module.get_ipython = _wrap_get_ipython(module.get_ipython)
        return
    module.display = _display.display
    module.update_display = _display.update_display
    module.clear_output = _clear_output
    module.publish_display_data = publish_display_data


def install():
    for name in _TARGETS:
        _importhook.when_imported(name, patch)
