"""The worker side of ferry's pool: run one pickled task, pickle the result.

A task is (context, fn, kind, work): context is the kernel's (cwd,
sys.path) at dispatch time, which the worker follows; kind "map" applies
fn to each item of work, kind "call" calls fn(*args, **kwargs) once.
Buffers of pickle protocol 5 travel as separate frames, out of band.

A failed task answers (exception, traceback lines, pid): the exception
itself, so the cell re-raises the same type, and the worker's traceback,
formatted as the kernel formats its own (cell and line, ferry's frames
hidden), for the cell's traceback to show.
"""
import os
import pickle
import sys

from . import _traceback

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
    try:
        lines = _traceback.format_exception(exc)
    except Exception:
        import traceback
        lines = traceback.format_exception(exc)
    exc.__traceback__ = None  # frames do not pickle; the lines say it all
    try:
        payload = _dumps((exc, lines, os.getpid()))
        pickle.loads(payload[0], buffers=payload[1:])  # the kernel must read it
        return payload
    except Exception as err:
        # The exception itself cannot travel (its class lives only here, or
        # it holds something unpicklable): send one the kernel can build.
        name = f"{type(exc).__module__}.{type(exc).__qualname__}"
        stand_in = RuntimeError(f"{name}: {exc} (the original exception could not be sent "
                                f"back from the worker: {err})")
        return _dumps((stand_in, lines, os.getpid()))


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
