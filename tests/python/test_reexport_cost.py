"""How the Recorder's work grows: recording a statement touches only the
entries of the names it binds, and a dispatch with nothing new recorded
touches no entry.  Counted, not timed (bench/ times it: the growth rows)."""

import pytest

from fakekernel import FakeKernel
from ferry import _reexport


_SLOT = _reexport._Entry.live  # the slot, before the fixture swaps the class


class _CountingEntry(_reexport._Entry):
    """An _Entry that counts how often anything reads which names it provides."""
    __slots__ = ()
    reads = 0

    @property
    def live(self):
        type(self).reads += 1
        return _SLOT.__get__(self)

    @live.setter
    def live(self, value):
        _SLOT.__set__(self, value)


@pytest.fixture
def kernel(tmp_path, monkeypatch):
    monkeypatch.setattr(_reexport, "_Entry", _CountingEntry)
    _CountingEntry.reads = 0
    return FakeKernel(str(tmp_path / "rt"))


def defs(first, n):
    return "".join("def f%d(x):\n    return x + %d\n" % (i, i) for i in range(first, first + n))


def test_recording_a_cell_does_not_walk_the_session_history(kernel):
    kernel.run_cell(defs(0, 2000))
    kernel.run_cell("class Base:\n    pass\n")
    _CountingEntry.reads = 0
    # New names, a redefinition, a class reading an earlier one, a `del`.
    kernel.run_cell(defs(5000, 10) + defs(7, 1) + "class D(Base):\n    pass\ndel f8\n")
    assert _CountingEntry.reads <= 50  # was one per earlier entry per statement
    names = kernel.rec.exported_names()
    assert names[-12:] == ["f%d" % i for i in range(5000, 5010)] + ["f7", "D"]
    assert "f8" not in names and names.index("Base") < names.index("D")


def test_repeated_dispatch_with_nothing_new_does_not_walk_the_definitions(kernel, monkeypatch):
    kernel.run_cell(defs(0, 1000))
    path = kernel.rec.current()
    checks = []
    original = _reexport.Recorder._check_objects
    monkeypatch.setattr(_reexport.Recorder, "_check_objects",
                        lambda self: checks.append(1) or original(self))
    _CountingEntry.reads = 0
    for _ in range(100):
        assert kernel.rec.current() == path
        assert "f500" in kernel.rec.latest[1]
        assert kernel.rec.version_exporting("f999") == path
    assert checks == [] and _CountingEntry.reads == 0
    kernel.run_cell("X = 1\n")  # a statement ran: one check, at the next dispatch
    kernel.rec.current()
    kernel.rec.current()
    assert checks == [1]


def test_a_rebinding_between_dispatches_still_ends_the_export(kernel):
    kernel.run_cell(defs(0, 100) + "def rebind():\n    global f5\n    f5 = object()\n")
    path = kernel.rec.current()
    kernel.ns["rebind"]()  # inside one statement: no record() in between
    assert "f5" not in kernel.rec.latest[1]
    assert kernel.rec.version_exporting("f5") is None
    assert kernel.rec.current() != path
    assert "f5" not in kernel.rec.exported_names()
