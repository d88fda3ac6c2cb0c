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
        from . import _facade, _history, _ipython_compat, _session, _shell
        shell = _shell.Shell(_runtime_dir)
        _session.recorder = shell.recorder
        _facade.install(shell)
        _ipython_compat.install()
        hist = _history.History()
    return shell


def warm_up(_):
    """Imports and sets up what cells need, once, while the kernel is idle.
    Not completion and inspection (inspect and its kin, 1-2 MiB that an
    idle kernel would hold): the first such request imports them, a few ms
    beside what a completion costs anyway."""
    # The template first: its start (an exec'd interpreter, ~20 ms) runs
    # beside the shell's set-up, and is over sooner for the first pool.
    _template_hook("at_idle")
    _ensure_shell()
    return "{}"


def _template_hook(name, *args):
    """Tells the pool's template process (ferry._template) what the kernel
    does; its failures go to the log, never into a cell."""
    try:
        from . import _template
        getattr(_template, name)(*args)
    except Exception:
        _logged("the pool's template process (%s)" % name)


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


# Requests come from any client: a field of the wrong type gets a clear
# error reply or its default, never an exception in the runner.

def _request(text):
    req = json.loads(text)
    return req if isinstance(req, dict) else {}


def _text_field(req, name):
    """The string field name ("" when absent), or None when it is not one."""
    value = req.get(name, "")
    return value if isinstance(value, str) else None


def _cursor(req, code):
    """cursor_pos, kept inside code; the end when absent or not a number."""
    pos = req.get("cursor_pos")
    if not isinstance(pos, int) or isinstance(pos, bool):
        return len(code)
    return min(max(pos, 0), len(code))


def _bad_request(what):
    return {"status": "error", "ename": "ValueError", "evalue": what,
            "traceback": [f"ValueError: {what}"]}


def execute(text):
    from . import _facade
    _ensure_shell()
    req = _request(text)
    code = _text_field(req, "code")
    if code is None:
        reply = _bad_request("execute_request: 'code' must be a string")
        reply.update(execution_count=shell.execution_count, payload=[],
                     user_expressions={})
        return json.dumps(reply)
    silent = bool(req.get("silent", False))
    store = bool(req.get("store_history", True)) and not silent
    expressions = req.get("user_expressions")
    expressions = {k: v for k, v in expressions.items() if isinstance(v, str)} \
        if isinstance(expressions, dict) else {}
    _facade.pre_execute(code, silent, store)
    _template_hook("before_cell", code)
    reply = shell.run_cell(code, silent=silent, store_history=store,
                           user_expressions=expressions,
                           allow_stdin=bool(req.get("allow_stdin", False)))
    _facade.post_execute(code, silent, store, reply)
    _template_hook("after_cell")
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
    import _ferry_kernel
    _ferry_kernel.log(0, f"{what} failed:\n{traceback.format_exc().rstrip()}")


def complete(text):
    from . import _complete
    _ensure_shell()
    req = _request(text)
    code = _text_field(req, "code")
    if code is None:
        return json.dumps(_bad_request("complete_request: 'code' must be a string"))
    cursor = _cursor(req, code)
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
    req = _request(text)
    code = _text_field(req, "code")
    if code is None:
        return json.dumps(_bad_request("inspect_request: 'code' must be a string"))
    detail = 1 if req.get("detail_level") == 1 else 0
    try:
        reply = _complete.inspect_request(code, _cursor(req, code), detail, shell.ns)
    except Exception:
        _logged("inspect")
        reply = {"status": "ok", "found": False, "data": {}, "metadata": {}}
    return json.dumps(reply)


def is_complete(text):
    from . import _transform
    code = _text_field(_request(text), "code")
    if code is None:
        return json.dumps(_bad_request("is_complete_request: 'code' must be a string"))
    return json.dumps(_transform.is_complete(code))


def history(text):
    _ensure_shell()
    return json.dumps(hist.request(_request(text)))


def comm(frames):
    """A comm message from the frontend: frames[0] is the message as JSON,
    its buffers follow.  Returns (True, [reply content]) for
    comm_info_request, (True, []) for the rest."""
    from . import _comm
    _ensure_shell()
    msg = json.loads(bytes(frames[0]))
    msg["msg_id"] = msg["header"].get("msg_id")
    msg["msg_type"] = msg["header"].get("msg_type")
    msg["buffers"] = list(frames[1:])
    try:
        reply = _comm.handle(msg)
    except BaseException:  # an interrupt during a callback too: no cell to show it
        _logged(msg["msg_type"])
        reply = None
    return True, [json.dumps(reply).encode()] if reply is not None else []
