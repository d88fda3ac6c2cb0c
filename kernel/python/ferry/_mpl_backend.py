"""Which matplotlib backend a cell gets: ferry's inline one, as under
ipykernel, unless MPLBACKEND names another; `%matplotlib inline` insists.

The environment variable itself is left alone, because every child process
inherits it: a plain `python plot.py` run from a cell cannot import ferry's
backend.
"""
import os
import sys

INLINE_BACKEND = "module://ferry._mpl_inline"
_forced = False  # %matplotlib inline ran


def select(matplotlib):
    """Called when matplotlib is imported."""
    if _forced or "MPLBACKEND" not in os.environ:
        matplotlib.use(INLINE_BACKEND)


def force_inline():
    """%matplotlib inline: the inline backend, even over MPLBACKEND or a
    backend chosen at import."""
    global _forced
    _forced = True
    if "matplotlib" in sys.modules:
        sys.modules["matplotlib"].use(INLINE_BACKEND)
