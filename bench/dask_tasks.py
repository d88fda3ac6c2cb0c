"""Dask's side of the dask rows (bench/dask_rows.py): the same task bodies
as the ferry side's cell functions, in a module the Dask workers import
(their PYTHONPATH holds bench/), as Dask users write them."""
import time


def spin(x):
    """About 1 ms of CPU."""
    t = time.perf_counter()
    while time.perf_counter() - t < 0.001:
        pass
    return x


def asum(a, i):
    return float(a[0]) + i
