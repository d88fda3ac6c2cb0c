# %% [markdown]
# # Pitfall 4 — instances of classes defined in a cell
#
# pickle copies an instance's *data* (its `__dict__`) but sends its *class* by
# name, exactly like a function: "class `Order` of module `__main__`". A worker
# started with spawn or forkserver has no such class, so it cannot rebuild the
# object — even though the function it is passed to is perfectly importable.
# Results are no better: an instance a worker returns must be rebuilt in the
# notebook from the class the worker knew.

# %%
import multiprocessing as mp
import statistics
from contrast import plain

# %% [markdown]
# ## Before — plain Python with forkserver (Linux's default from Python 3.14)
#
# The task function, `operator.attrgetter("price")`, comes from the standard
# library; only the arguments' class comes from the notebook.

# %%
plain("""
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from operator import attrgetter

class Order:
    def __init__(self, item, price):
        self.item, self.price = item, price

orders = [Order("tea", 3.5), Order("cake", 4.0), Order("tea", 3.5)]
with ProcessPoolExecutor(2, mp_context=mp.get_context("forkserver")) as ex:
    print(list(ex.map(attrgetter("price"), orders)))
""", expect="failed")

# %% [markdown]
# ## After — the same code in ferry

# %%
from concurrent.futures import ProcessPoolExecutor
from operator import attrgetter

class Order:
    def __init__(self, item, price):
        self.item, self.price = item, price

orders = [Order("tea", 3.5), Order("cake", 4.0), Order("tea", 3.5)]
with ProcessPoolExecutor(2, mp_context=mp.get_context("forkserver")) as ex:
    print(list(ex.map(attrgetter("price"), orders)))

# %% [markdown]
# ## Instances come back as the notebook's own class
#
# A worker can build and return instances of cell classes; they arrive as
# instances of the class you defined, so `isinstance` and methods work:

# %%
class Summary:
    def __init__(self, count, mean):
        self.count, self.mean = count, mean
    def __repr__(self):
        return f"Summary(count={self.count}, mean={self.mean:.2f})"

def summarize(prices):
    return Summary(len(prices), statistics.fmean(prices))

with mp.get_context("spawn").Pool(2) as pool:
    results = pool.map(summarize, [[1.0, 2.0], [3.5, 4.0, 3.5]])

print(results)
print(all(isinstance(r, Summary) for r in results))

# %% [markdown]
# ## An instance of an *old* definition
#
# Redefine a class and the objects made before still belong to the old class,
# which no longer exists anywhere a worker could look. Plain `pickle` refuses with
# "it's not the same object as `__main__.Order`"; ferry says what happened and
# what to do:

# %%
old_order = Order("coffee", 2.8)

class Order:   # redefined, say with a new method
    def __init__(self, item, price):
        self.item, self.price = item, price
    def with_tax(self):
        return self.price * 1.2

try:
    with mp.get_context("spawn").Pool(2) as pool:
        print(pool.map(attrgetter("price"), [old_order]))
except Exception as err:
    print(f"{type(err).__name__}: {err}")

# %% [markdown]
# The fix is the one the message gives: re-create the objects with the current
# class.

# %%
new_order = Order(old_order.item, old_order.price)
with mp.get_context("spawn").Pool(2) as pool:
    print(pool.map(Order.with_tax, [new_order]))
