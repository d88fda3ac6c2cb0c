"""Task functions for the examples, in a real module.

Outside ferry, a worker started with spawn or forkserver can only run
functions it can import, so the standard recipe is to move them out of the
notebook into a module like this one (notebook 06).  Notebook 09 times these
against the same functions defined in a cell and run with ferry.map.
"""
import random
import re
from collections import Counter

WORD = re.compile(r"[a-z']+")


def count_words(path):
    """The words of one text file, lower-cased, as a Counter."""
    with open(path, encoding="utf-8") as f:
        return Counter(WORD.findall(f.read().lower()))


def pi_hits(job):
    """job = (seed, n): how many of n random points of the unit square fall
    inside the quarter circle.  Pure Python on purpose: CPU-bound work."""
    seed, n = job
    rng = random.Random(seed)
    hits = 0
    for _ in range(n):
        x, y = rng.random(), rng.random()
        if x * x + y * y <= 1.0:
            hits += 1
    return hits
