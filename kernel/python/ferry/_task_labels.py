"""What a task's failure says in the cell: the call or the map items a
crashed worker held, and the exception a task raised with the worker's
traceback (for ferry._traceback)."""
import pickle


def _fn_name(fn):
    return getattr(fn, "__qualname__", None) or type(fn).__name__


def _call_label(fn, args, kwargs):
    """fn(args...) short enough for a message, naming a submitted task."""
    import reprlib
    parts = [reprlib.repr(a) for a in args[:4]] + (["..."] if len(args) > 4 else [])
    parts += [f"{k}={reprlib.repr(v)}" for k, v in list(kwargs.items())[:4]]
    return f"{_fn_name(fn)}({', '.join(parts)})"


def _task_label(waiter):
    """Which task a WorkerCrashed is about: the submitted call, or the map's
    items the lost task held."""
    if isinstance(waiter, tuple):
        run, index = waiter
        start = sum(run.sizes[:index])
        end = start + run.sizes[index] - 1
        items = f"item {start}" if start == end else f"items {start}-{end}"
        return f"ferry.map({getattr(run, 'fn_name', '?')}) {items}"
    call = getattr(waiter, "_ferry_call", None)
    return _call_label(*call) if call is not None else "a task"


def _remote_error(payload, buffers=()):
    """The exception a task raised, with the worker's traceback attached as
    `_ferry_remote` (where, lines) for ferry._traceback to show: where is the
    local worker's pid, or the cluster worker's address (ferry._dask)."""
    try:
        exc, lines, where = pickle.loads(payload, buffers=buffers)
    except BaseException as err:
        return RuntimeError(f"a task failed and its exception could not be read: {err}")
    try:
        exc._ferry_remote = (where, lines)
    except Exception:
        pass
    return exc
