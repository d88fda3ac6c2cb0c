"""Running a function on a module the moment it has been imported.

The kernel adjusts a few modules it does not import itself: IPython's
display functions, matplotlib, multiprocessing's pickler and spawn
preparation.  Importing them up front would cost start-up time and memory
in every kernel (multiprocessing alone is about 1 MiB) for sessions that
never use them, so a finder first on sys.meta_path wraps their loaders,
and the function runs right after the module's code, before the importer
sees the module.
"""
import sys

_hooks = {}  # module name -> [function(module)]


def when_imported(name, fn):
    """Calls fn(module) now if `name` is imported, else right after its
    import (and again after a reload)."""
    fns = _hooks.setdefault(name, [])
    if fn in fns:
        return
    fns.append(fn)
    module = sys.modules.get(name)
    if module is not None:
        fn(module)
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())


def _run_hooks(module):
    for fn in _hooks.get(module.__name__, ()):
        fn(module)


# Plain classes, not importlib.abc's: the import system only calls these
# methods, and importlib.abc pulls in typing and importlib.resources.
class _Loader:
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        _run_hooks(module)

    def __getattr__(self, name):
        # get_source, get_resource_reader, is_package...: the real loader's.
        return getattr(self._loader, name)


class _Finder:
    def find_spec(self, fullname, path, target=None):
        if fullname not in _hooks:
            return None
        spec = _real_spec(self, fullname, path, target)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _Loader(spec.loader)
        return spec


def _real_spec(me, fullname, path, target):
    """The spec the other finders give, asked as the import system asks them
    (a parent package is already imported: path is its __path__)."""
    for finder in list(sys.meta_path):
        find_spec = getattr(finder, "find_spec", None)
        if finder is me or find_spec is None:
            continue
        spec = find_spec(fullname, path, target)
        if spec is not None:
            return spec
    return None
