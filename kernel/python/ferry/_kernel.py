"""The kernel's entry points, called from C with one JSON text each.

Each function takes the request's content as JSON text and returns the
reply's content as JSON text: one crossing into Python per request.
"""
import json
import platform
import sys

from . import _complete, _display, _history, _magics, _shell

shell = None
hist = None


def start(role, runtime_dir, python):
    global shell, hist
    import ferry
    ferry.runtime_dir = runtime_dir
    if role == "worker":
        return
    shell = _shell.Shell(runtime_dir)
    _magics.install(shell)
    hist = _history.History()


def run_task(frames):
    """Runs one pool task in a worker; returns (ok, frames)."""
    from . import _worker
    return _worker.run(frames)


def kernel_info(_):
    import ferry
    version = platform.python_version()
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
    req = json.loads(text)
    try:
        reply = _complete.inspect_request(req.get("code", ""), req.get("cursor_pos"),
                                          req.get("detail_level", 0), shell.ns)
    except Exception:
        _logged("inspect")
        reply = {"status": "ok", "found": False, "data": {}, "metadata": {}}
    return json.dumps(reply)


def is_complete(text):
    return json.dumps(_magics.is_complete(json.loads(text).get("code", "")))


def history(text):
    return json.dumps(hist.request(json.loads(text)))


def comm_info(text):
    return json.dumps({"status": "ok", "comms": {}})
