"""Interrupts reach the cell's code only.

An interrupt (SIGINT, or an interrupt_request that C turns into one) is
raised by Python at the next bytecode boundary of the main thread, wherever
that is.  One that lands just as a cell ends would be raised inside the
kernel's own code (recording history, building the reply) and turn into an
internal error.  So the kernel's SIGINT handler raises KeyboardInterrupt only
while the cell's code runs (between `arm()` and `disarm()`); otherwise the
interrupt came too late for the cell and is dropped, as if it had arrived
while the kernel was idle.

`arm` and `disarm` are single C calls (set.add, set.clear): Python checks for
pending signals after a call returns, so a signal pending at the moment of
disarming is handled after the flag is down, never between.
"""
import os
import signal

_ARMED = set()  # non-empty while the cell's code may be interrupted
arm = _ARMED.add
disarm = _ARMED.clear
_KERNEL_PID = os.getpid()


def _on_sigint(signum, frame):
    # A child forked by a cell inherits this handler: there every SIGINT is
    # the child's own KeyboardInterrupt, as with Python's default handler.
    if _ARMED or os.getpid() != _KERNEL_PID:
        raise KeyboardInterrupt


def install():
    """Called once, on the main thread, before any cell runs."""
    global _KERNEL_PID
    _KERNEL_PID = os.getpid()
    signal.signal(signal.SIGINT, _on_sigint)
