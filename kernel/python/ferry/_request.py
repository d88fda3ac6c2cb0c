"""The request being handled, as Python code sees it (IPython's
shell.parent_header, ipykernel's kernel.get_parent())."""
import json

import _ferry_kernel

_last = {}  # the last request seen on the kernel's thread


def parent_message():
    """The request being handled as a message dict with its header ({}
    outside a request).  From another thread: the last one the kernel's
    thread saw (the kernel reads its request on that thread only)."""
    global _last
    text = _ferry_kernel.parent_header()
    if text is not None:
        header = json.loads(text)
        _last = {"header": header, "msg_id": header.get("msg_id"),
                 "msg_type": header.get("msg_type"), "parent_header": {},
                 "metadata": {}, "content": {}}
    return _last
