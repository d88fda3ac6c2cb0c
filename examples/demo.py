"""ferry in one file.  Run it with

    ferry examples/demo.py

The terminal REPL runs a file as one cell of a ferry kernel, so everything
defined here - a function, a lambda, a class - is defined "in a notebook":
in __main__, with no script a worker could re-import.  Under a plain
interpreter the spawn and forkserver pools below would fail to find them
(see examples/02-definitions-in-main.ipynb); under ferry they just work.
"""
import multiprocessing as mp
import sys
import threading
from concurrent.futures import ProcessPoolExecutor

try:
    import ferry
except ImportError:
    sys.exit("demo.py shows what the ferry kernel adds: run it with `ferry examples/demo.py`")


def collatz_steps(n):
    """How many steps n takes to reach 1 in the Collatz sequence."""
    steps = 0
    while n != 1:
        n = 3 * n + 1 if n % 2 else n // 2
        steps += 1
    return steps


cube = lambda x: x ** 3


class Interval:
    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi

    def longest(self):
        best = max(range(self.lo, self.hi), key=collatz_steps)
        return best, collatz_steps(best)

    def __repr__(self):
        return f"Interval({self.lo}, {self.hi})"


class Found:
    def __init__(self, interval, n, steps):
        self.interval, self.n, self.steps = interval, n, steps

    def __repr__(self):
        return f"{self.interval}: {self.n} takes {self.steps} steps"


def search(interval):
    return Found(interval, *interval.longest())


print(f"ferry {ferry.__version__}: {ferry.workers()} workers\n")

print("1. ferry.map with a function defined in this file")
print("  ", ferry.map(collatz_steps, range(1, 16)))

print("\n2. multiprocessing.Pool (spawn) with a lambda defined in this file")
with mp.get_context("spawn").Pool(2) as pool:
    print("  ", pool.map(cube, range(1, 11)))

print("\n3. ProcessPoolExecutor (forkserver): instances of this file's classes,")
print("   there and back")
intervals = [Interval(lo, lo + 25_000) for lo in range(1, 100_001, 25_000)]
with ProcessPoolExecutor(2, mp_context=mp.get_context("forkserver")) as ex:
    found = list(ex.map(search, intervals))
for f in found:
    print("  ", f)
print("   results are this file's class:", all(isinstance(f, Found) for f in found))

print("\n4. What cannot be sent says what, where and why")
jobs = [{"interval": Interval(1, 10), "lock": threading.Lock()}]
try:
    ferry.check(jobs)
except ferry.PicklingError as err:
    print("  ", err)


def make_step(k):
    def step(x):
        return x + k
    return step


try:
    ferry.check(make_step(1))
except ferry.PicklingError as err:
    print("  ", err)

print("\nMore: the notebooks in examples/ show each pitfall, before and after.")
