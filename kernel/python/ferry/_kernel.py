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


def _ensure_shell():
    global shell, hist
    if shell is None:
        from . import _history, _shell
        shell = _shell.Shell(_runtime_dir)
        hist = _history.History()
    return shell


def warm_up(_):
    """Imports and sets up what cells need, once, while the kernel is idle."""
    _ensure_shell()
    from . import _complete  # noqa: F401
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
    _ensure_shell()
    req = json.loads(text)
    code = req.get("code", "")
    silent = bool(req.get("silent", False))
    store = bool(req.get("store_history", True)) and not silent
    reply = shell.run_cell(code, silent=silent, store_history=store,
                           user_expressions=req.get("user_expressions") or {},
                           allow_stdin=bool(req.get("allow_stdin", False)))
    if store:
        hist.store(reply["execution_count"], code)
    return json.dumps(reply, default=repr)


def complete(text):
    from . import _complete
    _ensure_shell()
    req = json.loads(text)
    return json.dumps(_complete.complete(req.get("code", ""), req.get("cursor_pos"), shell.ns))


def inspect(text):
    from . import _complete
    _ensure_shell()
    req = json.loads(text)
    return json.dumps(_complete.inspect_request(req.get("code", ""), req.get("cursor_pos"),
                                                req.get("detail_level", 0), shell.ns))


def is_complete(text):
    from . import _complete
    return json.dumps(_complete.is_complete(json.loads(text).get("code", "")))


def history(text):
    _ensure_shell()
    return json.dumps(hist.request(json.loads(text)))


def comm_info(text):
    return json.dumps({"status": "ok", "comms": {}})
