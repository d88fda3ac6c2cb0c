"""The worker side of ferry's pool: run one pickled task, pickle the result.

A task is (context, fn, kind, work): context is the kernel's (cwd,
sys.path) at dispatch time, which the worker follows; kind "map" applies
fn to each item of work, kind "call" calls fn(*args, **kwargs) once.
Buffers of pickle protocol 5 travel as separate frames, out of band.
"""
import os
import pickle
import sys
import traceback

_context = None


def _follow(context):
    global _context
    if context == _context:
        return
    cwd, path = context
    if cwd != os.getcwd():
        try:
            os.chdir(cwd)
        except OSError:
            pass
    sys.path[:] = list(path)
    _context = context


def _dumps(obj):
    buffers = []
    payload = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    return [payload] + [b.raw() for b in buffers]


def _error_frames(exc):
    text = "".join(traceback.format_exception(exc))
    try:
        return _dumps((exc, text))
    except Exception:
        # The exception itself cannot travel: send its type name and text.
        return _dumps((None, f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}\n\n{text}"))


def run(frames):
    try:
        context, fn, kind, work = pickle.loads(frames[0], buffers=frames[1:])
        _follow(context)
        if kind == "map":
            result = [fn(item) for item in work]
        else:
            args, kwargs = work
            result = fn(*args, **kwargs)
        return True, _dumps(result)
    except BaseException as exc:  # everything a task raises goes back to the cell
        return False, _error_frames(exc)
