"""A matplotlib backend that shows figures in the cell, as PNG images.

The kernel selects it when matplotlib is imported (unless MPLBACKEND names
another), and `%matplotlib inline` selects it in any case.  As with IPython's
inline backend, figures drawn by a cell are shown when the cell ends
(flush(), called by the kernel after each cell) or at plt.show(), then
closed, so the next cell starts with none.
"""
import base64
import io

from matplotlib.backend_bases import FigureManagerBase
from matplotlib.backends.backend_agg import FigureCanvasAgg

FigureCanvas = FigureCanvasAgg
FigureManager = FigureManagerBase


def _png_size(png):
    """(width, height) of a PNG, from its IHDR chunk: the size of the image
    sent, after the tight crop (the figure's own size is larger, and the
    page would stretch the image to it)."""
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def _publish(figure):
    from . import _display  # only in the kernel; show() is never reached elsewhere
    buf = io.BytesIO()
    figure.savefig(buf, format="png", bbox_inches="tight",
                   facecolor=figure.get_facecolor())
    png = buf.getvalue()
    width, height = _png_size(png)
    _display.publish("display_data", {
        "data": {"image/png": base64.b64encode(png).decode("ascii"),
                 "text/plain": repr(figure)},
        "metadata": {"image/png": {"width": width, "height": height}},
        "transient": {}})


def show(close=True, block=None):
    """Shows every open figure in the cell; closes them unless close=False."""
    from matplotlib import pyplot
    from matplotlib._pylab_helpers import Gcf
    try:
        for manager in Gcf.get_all_fig_managers():
            _publish(manager.canvas.figure)
    finally:
        if close and Gcf.get_all_fig_managers():
            pyplot.close("all")


def flush():
    """Called after each cell: shows what the cell drew."""
    from matplotlib._pylab_helpers import Gcf
    if Gcf.get_all_fig_managers():
        show(close=True)
