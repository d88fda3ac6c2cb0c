"""Rich output: turning objects into MIME bundles, and display().

A bundle is what Jupyter frontends render: {"text/plain": ..., "text/html":
...}.  Objects opt in through IPython's conventions (`_repr_html_`,
`_repr_mimebundle_`, ...), so libraries that support IPython work unchanged.
"""
import json
import os
import sys

import _ferry_kernel

# Method name -> MIME type, in the order IPython's formatter tries them.
_REPR_METHODS = (
    ("_repr_html_", "text/html"),
    ("_repr_markdown_", "text/markdown"),
    ("_repr_svg_", "image/svg+xml"),
    ("_repr_png_", "image/png"),
    ("_repr_jpeg_", "image/jpeg"),
    ("_repr_pdf_", "application/pdf"),
    ("_repr_latex_", "text/latex"),
    ("_repr_json_", "application/json"),
    ("_repr_javascript_", "application/javascript"),
)
_BINARY = {"image/png", "image/jpeg", "application/pdf"}
_CONTAINERS = (dict, list, tuple, set, frozenset)
_WIDTH = 80  # pprint's default line width


# The kernel's own process.  A child forked from it (multiprocessing's fork
# start method, os.fork) inherits this module but not the publisher thread:
# its queue is a copy no one reads, and its lock may have been held by that
# thread at the fork, so publishing there would be lost or would hang.
_KERNEL_PID = os.getpid()


def publish(msg_type, content, metadata=None, buffers=None):
    """Sends an iopub message under the request being handled; metadata
    and binary buffers (bytes-like) are for comm messages."""
    if os.getpid() != _KERNEL_PID:
        _publish_in_child(msg_type, content)
        return
    if metadata is None and not buffers:
        _ferry_kernel.publish(msg_type, json.dumps(content, default=repr))
        return
    _ferry_kernel.publish(msg_type, json.dumps(content, default=repr),
                          json.dumps(metadata or {}, default=repr), list(buffers or ()))


def _publish_in_child(msg_type, content):
    """display() in a forked child: print the plain-text form instead.  Its
    stdout is the kernel's captured fd 1, so the text reaches the cell."""
    if msg_type not in ("display_data", "update_display_data", "execute_result"):
        return
    text = content.get("data", {}).get("text/plain")
    if text is not None:
        # One write: lines of children writing at once do not interleave.
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


def _plain(obj):
    if type(obj) in _CONTAINERS:
        # IPython keeps insertion order and wraps long containers.  One that
        # fits on a line is its repr, as pprint would print it; pprint (with
        # dataclasses and inspect behind it) is imported when one does not.
        # Each item takes three characters at least ("1, "), so only short
        # containers are worth a repr first.
        if len(obj) <= _WIDTH // 3:
            text = repr(obj)
            if len(text) <= _WIDTH:
                return text
        import pprint
        return pprint.pformat(obj, sort_dicts=False)
    return repr(obj)


def _new_id():
    """A display id, made as IPython makes them (uuid would cost an import)."""
    return os.urandom(16).hex()


def _encode(mime, value):
    if mime in _BINARY and isinstance(value, (bytes, bytearray)):
        import base64  # binary display data is rare: not at start
        return base64.b64encode(value).decode("ascii")
    return value


def _call_repr(obj, name, **kwargs):
    """obj.name(**kwargs) when obj's class has that method (never for a
    class itself, as IPython), else None."""
    method = getattr(type(obj), name, None)
    if method is None or isinstance(obj, type):
        return None
    try:
        return getattr(obj, name)(**kwargs)
    except Exception:  # a broken repr must not lose the cell's result
        return None


# Extra MIME types: mime -> callable(obj) returning the value or None
# (get_ipython().display_formatter.formatters; pandas puts its table schema here).
extra_formatters = {}


def ipython_display(obj):
    """Calls obj._ipython_display_() if its class has one, as IPython does
    before formatting; True when it did (the object showed itself)."""
    if isinstance(obj, type) or not callable(getattr(type(obj), "_ipython_display_", None)):
        return False
    method = getattr(obj, "_ipython_display_", None)
    if not callable(method):  # an instance may switch it off (a closed widget)
        return False
    method()
    return True


def format_bundle(obj, include=None, exclude=None):
    """Returns (data, metadata) for obj, as IPython's display formatter: the
    object's _repr_mimebundle_(include, exclude) first, then each
    _repr_*_ method for the types it did not give."""
    data, metadata = {}, {}
    bundle = _call_repr(obj, "_repr_mimebundle_", include=include, exclude=exclude)
    if isinstance(bundle, tuple) and len(bundle) == 2:
        bundle, md = bundle
        metadata.update(md or {})
    if isinstance(bundle, dict):
        for mime, value in bundle.items():
            data[mime] = _encode(mime, value)
    for name, mime in _REPR_METHODS:
        if mime in data or (include is not None and mime not in include) or \
                (exclude is not None and mime in exclude):
            continue
        value = _call_repr(obj, name)
        if value is None:
            continue
        if isinstance(value, tuple) and len(value) == 2:
            value, md = value
            if md:
                metadata[mime] = md
        data[mime] = _encode(mime, value)
    for mime, formatter in list(extra_formatters.items()):
        if mime not in data:
            try:
                value = formatter(obj)
            except Exception:
                value = None
            if value is not None:
                data[mime] = _encode(mime, value)
    if "text/plain" not in data:
        try:
            data["text/plain"] = _plain(obj)
        except Exception as e:
            data["text/plain"] = f"<repr of {type(obj).__name__} failed: {e!r}>"
    if include is not None:
        data = {k: v for k, v in data.items() if k in include}
    if exclude is not None:
        data = {k: v for k, v in data.items() if k not in exclude}
    return data, metadata


class DisplayHandle:
    """A handle to update or clear one display, as IPython's."""

    def __init__(self, display_id=None):
        self.display_id = display_id or _new_id()

    def __repr__(self):
        return f"<DisplayHandle display_id={self.display_id}>"

    def display(self, obj, **kwargs):
        display(obj, display_id=self.display_id, **kwargs)

    def update(self, obj, **kwargs):
        display(obj, display_id=self.display_id, update=True, **kwargs)


def display(*objs, include=None, exclude=None, metadata=None, transient=None,
            display_id=None, raw=False, clear=False, update=False, **kwargs):
    """Shows objects in the frontend, as IPython.display.display does."""
    if clear:
        clear_output(wait=True)
    if display_id is True:
        display_id = _new_id()
    transient = dict(transient or {})
    if display_id:
        transient["display_id"] = display_id
    msg_type = "update_display_data" if update else "display_data"
    for obj in objs:
        if raw:
            data, md = obj, {}
        elif ipython_display(obj):
            continue
        else:
            data, md = format_bundle(obj, include, exclude)
        if metadata:
            md = {**md, **metadata}
        publish(msg_type, {"data": data, "metadata": md, "transient": transient})
    if display_id and not update:
        return DisplayHandle(display_id)
    return None


def update_display(obj, *, display_id, **kwargs):
    """Replaces the output shown under display_id."""
    display(obj, display_id=display_id, update=True, **kwargs)


def clear_output(wait=False):
    """Clears the cell's output, now or (wait=True) when new output comes."""
    publish("clear_output", {"wait": bool(wait)})
