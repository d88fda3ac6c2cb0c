"""The kernel's entry points, called from C with one JSON text each.

Each function takes the request's content as JSON text and returns the
reply's content as JSON text: one crossing into Python per request.
"""
import json
import sys

shell = None
hist = None
_runtime_dir = None


def start(role, runtime_dir, python):
    """Kept small: the kernel answers kernel_info before the rest of the
    runner is imported (warm_up does that while the kernel is idle)."""
    global _runtime_dir
    import ferry
    ferry.runtime_dir = _runtime_dir = runtime_dir
    if role == "kernel":
        from . import _interrupt
        _interrupt.install()


def _ensure_shell():
    global shell, hist
    if shell is None:
        from . import _history, _shell
        from . import _magics
        shell = _shell.Shell(_runtime_dir)
        _magics.install(shell)
        hist = _history.History()
    return shell


def warm_up(_):
    """Imports and sets up what cells need, once, while the kernel is idle.
    Not completion and inspection (inspect and its kin, 1-2 MiB that an
    idle kernel would hold): the first such request imports them, a few ms
    beside what a completion costs anyway."""
    _ensure_shell()
    return "{}"


def run_task(frames):
    """Runs one pool task in a worker; returns (ok, frames)."""
    from . import _worker
    return _worker.run(frames)


def kernel_info(_):
    import ferry
    version = "%d.%d.%d" % sys.version_info[:3]
    return json.dumps({
        "status": "ok",
        "protocol_version": "5.3",
        "implementation": "ferry",
        "implementation_version": ferry.__version__,
        "language_info": {
            "name": "python",
            "version": version,
            "mimetype": "text/x-python",
            "file_extension": ".py",
            "pygments_lexer": "ipython3",
            "codemirror_mode": {"name": "ipython", "version": 3},
            "nbconvert_exporter": "python",
        },
        "banner": f"ferry {ferry.__version__} -- Python {version} ({sys.executable})\n"
                  "Definitions made in cells reach worker processes.",
        "help_links": [
            {"text": "Python Reference", "url": "https://docs.python.org/3/"},
        ],
        "debugger": False,
    })


def execute(text):
    from . import _magics
    _ensure_shell()
    req = json.loads(text)
    code = req.get("code", "")
    silent = bool(req.get("silent", False))
    store = bool(req.get("store_history", True)) and not silent
    _magics.pre_execute()
    reply = shell.run_cell(code, silent=silent, store_history=store,
                           user_expressions=req.get("user_expressions") or {},
                           allow_stdin=bool(req.get("allow_stdin", False)))
    _magics.post_execute(silent)
    if store:
        count = reply["execution_count"]
        hist.store(count, code, _output_text(count))
    return json.dumps(reply, default=repr)


def _output_text(count):
    """text/plain of cell count's result, for history output=True."""
    from . import _display
    if count not in shell.Out:
        return None
    try:
        return _display._plain(shell.Out[count])
    except Exception:  # a repr that fails now must not fail the reply
        return None


def _logged(what):
    # A user object whose dir() or property raises must not turn a completion
    # into an error reply; the kernel log keeps the traceback.
    import traceback
    print(f"ferry: {what} failed:\n{traceback.format_exc()}", file=sys.__stderr__)


def complete(text):
    from . import _complete
    _ensure_shell()
    req = json.loads(text)
    code, cursor = req.get("code", ""), req.get("cursor_pos")
    try:
        reply = _complete.complete(code, cursor, shell.ns)
    except Exception:
        _logged("complete")
        cursor = len(code) if cursor is None else cursor
        reply = {"status": "ok", "matches": [], "cursor_start": cursor, "cursor_end": cursor,
                 "metadata": {}}
    return json.dumps(reply)


def inspect(text):
    from . import _complete
    _ensure_shell()
    req = json.loads(text)
    try:
        reply = _complete.inspect_request(req.get("code", ""), req.get("cursor_pos"),
                                          req.get("detail_level", 0), shell.ns)
    except Exception:
        _logged("inspect")
        reply = {"status": "ok", "found": False, "data": {}, "metadata": {}}
    return json.dumps(reply)


def is_complete(text):
    from . import _magics
    return json.dumps(_magics.is_complete(json.loads(text).get("code", "")))


def history(text):
    _ensure_shell()
    return json.dumps(hist.request(json.loads(text)))


def comm_info(text):
    return json.dumps({"status": "ok", "comms": {}})
