"""ferry.explain and ferry.timeline through a real kernel: the parts, marks
and reasons explain shows; the lanes and task counts of maps whose shape is
known (a fixed pool size, one long task, a worker that dies).

All tests share one kernel; each sets the pool size it relies on.
"""
import ast
import re

import pytest

pytestmark = pytest.mark.ferry_only("ferry.explain and ferry.timeline exist only in ferry")

T = 120.0  # a bound for a hang, not a measure
MARKS = ("by reference", "by value", "refused")


def run(k, code, timeout=T):
    return k.execute(code, timeout=timeout).ok()


def value(k, expr, timeout=T):
    return ast.literal_eval(run(k, expr, timeout).text)


def lines_of(text):
    """{path: (mark, rest)} of explain's text form (indentation dropped)."""
    parts = {}
    for line in text.splitlines():
        if line.lstrip().startswith("..."):
            continue
        m = re.match(r"^\s*(.+?)\s{2,}(by reference|by value|refused)\s{2,}(.*)$", line)
        assert m, f"a line without exactly one mark: {line!r}"
        parts[m.group(1)] = (m.group(2), m.group(3))
    return parts


# ------------------------------------------------------------------ explain

def test_explain_marks_each_part_of_a_dict_biggest_first(kernel):
    run(kernel, "import ferry, threading, math\n"
                "job = {'n': 3, 'lock': threading.Lock(), 'blob': b'x' * 50000,\n"
                "       'fn': math.sqrt, 'small': b'y' * 100}")
    x = run(kernel, "ferry.explain(job)")
    parts = lines_of(x.text)
    assert parts["obj"][0] == "refused" and "obj['lock']" in parts["obj"][1]
    assert parts["obj['lock']"][0] == "refused"
    # The reason and the fix, as ferry.check words them.
    check = value(kernel, "try:\n    ferry.check(job['lock'])\nexcept ferry.PicklingError "
                          "as e:\n    m = str(e)\nm.replace('obj', \"obj['lock']\", 1)")
    assert parts["obj['lock']"][1] == check and "Fix:" in check
    assert parts["obj['blob']"][0] == "by value" and "48.8 KiB" in parts["obj['blob']"][1]
    assert parts["obj['fn']"] == ("by reference",
                                  "math.sqrt: a worker can import math (yes)")
    assert parts["obj['n']"][0] == "by value"
    order = [p for p in parts if p != "obj"]
    # Refused first, then by size: the 50 kB blob before the 100-byte one.
    assert order[0] == "obj['lock']"
    assert order.index("obj['blob']") < order.index("obj['small']") < order.index("obj['n']")
    html = x.data["text/html"]
    assert html.count("<tr>") == 1 + len(parts)  # the header, one row per part
    for mark in MARKS:
        assert mark in html


def test_explain_shows_what_a_cell_function_reads_and_how_each_travels(kernel):
    run(kernel, "import ferry, math\nLIMIT = 10\ntable = [i * i for i in range(50)]\n"
                "def lookup(x):\n    return table[x] + LIMIT + math.floor(x)")
    parts = lines_of(run(kernel, "ferry.explain(lookup)").text)
    # A computed global travels with the task, by value (tests/integration/
    # test_globals.py); one that cannot be pickled is refused.
    assert parts["obj"][0] == "by reference"
    assert parts["obj.__globals__['table']"][0] == "by value"
    assert "travels with" in parts["obj.__globals__['table']"][1]
    assert parts["obj.__globals__['LIMIT']"][0] == "by reference"
    run(kernel, "import threading\nguard = threading.Lock()\n"
                "def locked(x):\n    return guard")
    bad = lines_of(run(kernel, "ferry.explain(locked)").text)
    assert bad["obj"][0] == "refused" and bad["obj.__globals__['guard']"][0] == "refused"
    assert parts["obj.__globals__['math']"] == ("by reference",
                                                "module math: a worker imports it (yes)")
    ok = lines_of(run(kernel, "def add(x):\n    return x + LIMIT\nferry.explain(add)").text)
    assert ok["obj"][0] == "by reference" and ok["obj"][1].startswith("__main__.add")


def test_explain_follows_getstate_and_names_the_cell_class(kernel):
    run(kernel, "import ferry, threading\n"
                "class Counter:\n"
                "    def __init__(self):\n"
                "        self.n, self.lock = 0, threading.Lock()\n"
                "    def __getstate__(self):\n"
                "        return {'n': self.n}\n"
                "    def __setstate__(self, s):\n"
                "        self.n, self.lock = s['n'], threading.Lock()\n"
                "class Bare:\n"
                "    def __init__(self):\n"
                "        self.lock = threading.Lock()")
    good = lines_of(run(kernel, "ferry.explain(Counter())").text)
    assert good["obj"][0] == "by value" and "__getstate__" in good["obj"][1]
    assert good["type(obj)"][0] == "by reference" and "__main__.Counter" in good["type(obj)"][1]
    assert set(good) == {"obj", "type(obj)", "obj.n"}  # the lock stays behind
    bad = lines_of(run(kernel, "ferry.explain(Bare())").text)
    assert bad["obj"][0] == "refused" and bad["obj.lock"][0] == "refused"


def test_explain_refuses_a_nested_function_with_checks_reason(kernel):
    run(kernel, "import ferry\ndef make(k):\n    def scaled(x):\n        return k * x\n"
                "    return scaled")
    parts = lines_of(run(kernel, "ferry.explain(make(3))").text)
    assert parts["obj"][0] == "refused"
    assert "nested function 'scaled' defined inside make()" in parts["obj"][1]
    assert parts["obj (closure variable 'k')"][0] == "by value"


def test_explain_says_when_a_module_cannot_be_imported_by_a_worker(kernel, tmp_path):
    (tmp_path / "hidden_mod.py").write_text("def f(x):\n    return x\n")
    run(kernel, f"import importlib.util, ferry\n"
                f"spec = importlib.util.spec_from_file_location('hidden_mod', "
                f"{str(tmp_path / 'hidden_mod.py')!r})\n"
                f"hm = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(hm)\n"
                f"import sys\nsys.modules['hidden_mod'] = hm")
    parts = lines_of(run(kernel, "ferry.explain(hm.f)").text)
    assert parts["obj"][0] == "by reference" and "(NO" in parts["obj"][1]


# ----------------------------------------------------------------- timeline

def test_timeline_of_a_known_map_has_a_lane_per_worker_and_a_rect_per_task(kernel, tmp_path):
    # Task 0 holds its worker until the eleven others have ended (each leaves
    # a mark), however slow the machine: a fixed 0.4 s against eleven short
    # tasks let a loaded machine give the long task's worker a second one.
    run(kernel, f"import ferry, os, time\nferry.workers(2)\nMARKS = {str(tmp_path)!r}\n"
                "def nap(x):\n"
                "    if x == 0:\n"
                "        end = time.monotonic() + 60\n"
                "        while len(os.listdir(MARKS)) < 11 and time.monotonic() < end:\n"
                "            time.sleep(0.01)\n"
                "    else:\n"
                "        open(os.path.join(MARKS, str(x)), 'w').close()\n"
                "    return x\n"
                "assert ferry.map(nap, range(12), chunksize=1) == list(range(12))")
    x = run(kernel, "ferry.timeline()")
    svg = x.data["image/svg+xml"]
    assert svg.startswith("<svg") and svg.count("<g class='worker'") == 2
    assert len(re.findall(r"<rect class='task ok'", svg)) == 12
    pids = set(re.findall(r"data-pid='(\d+)'", svg))
    assert pids == {str(p) for p in value(kernel, "ferry._pool.shared().pids()")}
    assert re.search(r"ferry\.map: 12 tasks on 2 workers, [\d.]+ m?s wall, busy \d+%", svg)
    text = x.text
    assert text.splitlines()[0].startswith("ferry.map: 12 tasks on 2 workers")
    counts = sorted(int(n) for n in re.findall(r"\| (\d+) tasks?$", text, re.M))
    # The long task keeps one worker; the other eleven go to the other worker.
    assert sum(counts) == 12 and counts[0] == 1
    # Chunks: one rect per chunk, items counted in the summary.
    run(kernel, "ferry.map(abs, range(40), chunksize=10)")
    summary = value(kernel, "ferry.timeline().summary()")
    assert summary.startswith("ferry.map: 4 tasks (40 items)")


def test_timeline_shows_a_crashed_worker_and_its_replacement(kernel):
    run(kernel, "import ferry, os, time\nferry.workers(2)\nferry.map(abs, range(4))\n"
                "def fragile(x):\n    if x == 1:\n        os._exit(7)\n"
                "    time.sleep(0.05)\n    return x")
    before = set(value(kernel, "ferry._pool.shared().pids()"))
    run(kernel, "try:\n    ferry.map(fragile, range(2), chunksize=1)\n"
                "except ferry.WorkerCrashed:\n    pass")
    x = run(kernel, "ferry.timeline()")
    svg, text = x.data["image/svg+xml"], x.text
    assert len(re.findall(r"<rect class='task crashed'", svg)) == 1
    dead = re.findall(r"pid (\d+) died", text)
    assert len(dead) == 1 and int(dead[0]) in before
    assert "1 crashed" in text.splitlines()[0]
    # The replacement starts in the background: under load the surviving
    # worker may take both tasks of a map before it is ready, so map until
    # it shows up (bounded), rather than betting on a start-up time.
    run(kernel, "for _ in range(50):\n"
                "    ferry.map(time.sleep, [0.2, 0.2], chunksize=1)\n"
                f"    if set(ferry.timeline().lanes()) - set({sorted(before)!r}):\n"
                "        break")
    lanes = value(kernel, "list(ferry.timeline().lanes())")
    assert int(dead[0]) not in lanes and set(lanes) - before  # the replacement ran


def test_timeline_of_an_executor_counts_its_submits_and_maps(kernel):
    x = run(kernel, "import ferry\n"
                    "with ferry.Executor(2) as ex:\n"
                    "    [f.result() for f in [ex.submit(abs, -i) for i in range(5)]]\n"
                    "    list(ex.map(abs, range(3)))\n"
                    "    tl = ferry.timeline(ex)\n"
                    "tl")
    assert x.text.splitlines()[0].startswith("Executor: 8 tasks on")
    assert len(re.findall(r"<rect class='task ok'", x.data["image/svg+xml"])) == 8
    maps = value(kernel, "[t.summary().split(':')[0] for t in ferry.timelines()]")
    assert maps[-1] == "Executor.map"


def test_timeline_before_any_map_and_of_a_wrong_object_says_so(kernel_factory):
    k = kernel_factory()
    x = k.execute("import ferry\nferry.timeline()", timeout=T)
    assert x.content["ename"] == "LookupError" and "run ferry.map first" in x.content["evalue"]
    x = k.execute("ferry.timeline(3)", timeout=T)
    assert x.content["ename"] == "TypeError" and "ferry.Executor" in x.content["evalue"]
    assert value(k, "1 + 1") == 2  # the kernel goes on
