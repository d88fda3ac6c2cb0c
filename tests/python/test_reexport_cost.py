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


def _as_a_child(monkeypatch, compiled):
    """Makes this process load versions as a worker does, counting what it
    compiles, with an empty code cache."""
    from ferry import _rx_rt
    original = _rx_rt._compile_unit

    def counting(filename, source, pos, text, indexes, flags):
        compiled.append((filename, pos))
        return original(filename, source, pos, text, indexes, flags)
    monkeypatch.setattr(_rx_rt, "_compile_unit", counting)
    monkeypatch.setattr(_rx_rt, "kernel", None)  # not the kernel: run the file
    monkeypatch.setattr(_rx_rt, "_by_path", {})
    monkeypatch.setattr(_rx_rt, "_code_cache", {})
    monkeypatch.setattr(_rx_rt, "_precompile_flags", 0)
    return _rx_rt


def _load(rx, monkeypatch, path):
    """Loads a version as a child, without the kernel's alias of its name."""
    import os
    import sys
    name = os.path.splitext(os.path.basename(path))[0]
    monkeypatch.delitem(sys.modules, name, raising=False)
    return rx.load(path)


def test_a_child_compiles_each_definition_once_across_versions(kernel, monkeypatch):
    """Every version runs all of the notebook's definitions: a worker that
    loads a new one compiles only the statements it has not seen."""
    kernel.run_cell(defs(0, 200))
    first = kernel.rec.current()
    kernel.run_cell(defs(500, 1))
    second = kernel.rec.current()
    compiled = []
    rx = _as_a_child(monkeypatch, compiled)
    assert _load(rx, monkeypatch, first).f3(1) == 4
    assert len(compiled) == 200
    del compiled[:]
    m = _load(rx, monkeypatch, second)
    assert (m.f500(1), m.f3(1)) == (501, 4)
    assert [filename for filename, _ in compiled] == ["Cell In[2]"]  # f500 alone


def test_statements_compiled_ahead_are_not_compiled_again(kernel, monkeypatch):
    """What the template process compiles as cells record statements (with
    the __future__ flags they set) is what a version's run finds."""
    import json
    kernel.run_cell("from __future__ import annotations\n" + defs(0, 20) +
                    "def g(x: Undefined) -> int:\n    return x\n")
    kernel.run_cell(defs(100, 3))
    path = kernel.rec.current()
    compiled = []
    rx = _as_a_child(monkeypatch, compiled)
    seq, cells, statements = kernel.rec.statements_since(0)
    assert len(cells) == 2 and len(statements) == 25  # each cell's source once
    rx.precompile(*json.loads(json.dumps([cells, statements])))  # as it travels
    assert len(compiled) == 25
    del compiled[:]
    m = _load(rx, monkeypatch, path)
    assert compiled == []
    assert m.f102(1) == 103 and m.g.__annotations__ == {"x": "Undefined", "return": "int"}
    assert kernel.rec.statements_since(seq) == (seq, [], [])


def test_what_a_cell_recorded_is_found_without_walking_the_session(kernel):
    """After each cell the kernel asks for the statements it recorded (for
    the template process): finding them must not walk the session's."""
    kernel.run_cell(defs(0, 2000))
    seq, _, statements = kernel.rec.statements_since(0)
    assert len(statements) == 2000
    kernel.run_cell(defs(5000, 3))
    walked = []

    class Items:
        def __init__(self, entries):
            self.entries = entries

        def __iter__(self):
            for item in dict.items(self.entries):
                walked.append(1)
                yield item

        def __reversed__(self):
            for item in reversed(dict.items(self.entries)):
                walked.append(1)
                yield item

    class Entries(dict):
        def items(self):
            return Items(self)

    kernel.rec._entries = Entries(kernel.rec._entries)
    last, cells, statements = kernel.rec.statements_since(seq)
    assert len(statements) == 3 and last == seq + 3
    assert len(walked) <= 10  # was every entry of the session
