"""IPython, matplotlib, the `comm` package, ipykernel and ipywidgets in a
ferry kernel, adjusted as each is imported.

ferry never imports these itself (they are slow to import, and most kernels
never use them): ferry._importhook waits for the user or a library to
import one, and adjusts it the moment its module has been executed.

- IPython.core.display_functions: display, update_display, clear_output and
  publish_display_data become ferry's.  Everything in IPython.display that
  shows something goes through those four (display_html, DisplayHandle,
  HTML(...) as a cell result), so HTML, Markdown, Image, Math, JSON and
  friends reach the frontend unchanged.  Without this, IPython's display()
  prints a repr and clear_output() writes terminal escapes.
- IPython.core.getipython: get_ipython() returns ferry's facade
  (ferry._facade), in cells and in libraries, as IPython's does.
- matplotlib: ferry's inline backend, unless MPLBACKEND says otherwise
  (ferry._mpl_backend).
- comm: create_comm and get_comm_manager are ferry's (ferry._comm), as each
  kernel installs its own.
- ipykernel.kernelbase: a Kernel instance that publishes through ferry
  (ferry._ipykernel_compat), for ipywidgets 6, which makes ipykernel's Comm.
- ipywidgets.widgets.widget: what the Notebook said of the widget version
  before ipywidgets was imported (ferry._widgets).
"""
from . import _display, _importhook, _mpl_backend


def publish_display_data(data, metadata=None, source=None, *, transient=None, **kwargs):
    """IPython's publish_display_data: sends a ready MIME bundle."""
    _display.publish("display_data", {"data": data, "metadata": metadata or {},
                                      "transient": transient or {}})


def _clear_output(wait=False):
    _display.clear_output(wait)


def _wrap_get_ipython(original):
    """IPython.get_ipython() returns ferry's facade, wherever it is called."""
    def get_ipython():
        from . import _facade
        shell = _facade.get_ipython()
        return shell if shell is not None else original()
    get_ipython.__doc__ = original.__doc__
    get_ipython.__wrapped__ = original
    return get_ipython


def _patch_display(module):
    module.display = _display.display
    module.update_display = _display.update_display
    module.clear_output = _clear_output
    module.publish_display_data = publish_display_data


def _patch_get_ipython(module):
    if not hasattr(module.get_ipython, "__wrapped__"):
        module.get_ipython = _wrap_get_ipython(module.get_ipython)


def _patch_comm(module):
    from . import _comm
    module.create_comm = _comm.create_comm
    module.get_comm_manager = _comm.manager


def _patch_kernelbase(module):
    from . import _ipykernel_compat
    _ipykernel_compat.install(module)


def _patch_widget(module):
    from . import _widgets
    _widgets.widgets_imported(module)


_PATCHES = {
    "IPython.core.display_functions": _patch_display,
    "IPython.core.getipython": _patch_get_ipython,
    "matplotlib": _mpl_backend.select,
    "comm": _patch_comm,
    "ipykernel.kernelbase": _patch_kernelbase,
    "ipywidgets.widgets.widget": _patch_widget,
}


def install():
    for name, patch in _PATCHES.items():
        _importhook.when_imported(name, patch)
