"""%autoreload: modules edited on disk are reloaded before each cell."""
import os
import sys


class _Autoreloader:
    """%autoreload: before each cell, reload the modules whose source file
    changed, and point the old functions and classes' methods at the new
    code, so objects made before the edit see it too (IPython's mode 2).
    Modules of the standard library and of site/dist-packages are never
    reloaded."""

    def __init__(self):
        self.enabled = False
        self.mtimes = {}  # module name -> mtime of its file when last seen

    @staticmethod
    def _watched(module):
        path = getattr(module, "__file__", None)
        if not path or not path.endswith(".py"):
            return None
        if "-packages" + os.sep in path or path.startswith(sys.base_prefix + os.sep):
            return None
        if getattr(module, "__name__", "").startswith("ferry"):
            return None
        return path

    def check(self, force=False, reload=True):
        """Reloads what changed since last seen; a module seen for the first
        time only has its time noted (reload=False: note times only)."""
        for name, module in list(sys.modules.items()):
            path = self._watched(module) if module is not None else None
            if path is None:
                continue
            try:
                mtime = os.stat(path).st_mtime
            except OSError:
                continue
            seen = self.mtimes.get(name)
            if seen is not None and not reload:
                continue  # an edit made while a cell ran is reloaded before the next
            self.mtimes[name] = mtime
            if reload and seen is not None and (mtime != seen or force):
                self._reload(module)

    @staticmethod
    def _reload(module):
        import importlib
        import types
        old = dict(module.__dict__)
        try:
            importlib.reload(module)
        except Exception as e:
            print(f"[autoreload of {module.__name__} failed: {type(e).__name__}: {e}]",
                  file=sys.stderr)
            return
        for name, before in old.items():
            after = module.__dict__.get(name)
            if after is None or after is before:
                continue
            if isinstance(before, types.FunctionType) and isinstance(after, types.FunctionType):
                _update_function(before, after)
            elif isinstance(before, type) and isinstance(after, type):
                for attr, value in list(vars(after).items()):
                    current = before.__dict__.get(attr)
                    if isinstance(current, types.FunctionType) and \
                            isinstance(value, types.FunctionType):
                        _update_function(current, value)
                    elif attr not in ("__dict__", "__weakref__", "__doc__"):
                        try:
                            setattr(before, attr, value)
                        except (AttributeError, TypeError):
                            pass


def _update_function(old, new):
    for attr in ("__code__", "__defaults__", "__kwdefaults__", "__doc__", "__dict__",
                 "__annotations__"):
        try:
            setattr(old, attr, getattr(new, attr))
        except (AttributeError, TypeError, ValueError):
            pass  # e.g. a closure with a different number of free variables


autoreloader = _Autoreloader()

