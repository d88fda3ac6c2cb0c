"""bench/: the ratios, verdicts and result files `make bench` reports, on
made-up samples (the measurements themselves run only under `make bench`),
and the transport floor probe on this machine."""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "bench"))

import pool_rows  # noqa: E402
import report  # noqa: E402


def test_ratio_is_the_median_of_paired_rounds_with_its_spread():
    r = report.Row("kernel", "t", "time", "s", "ipykernel", ("<=", 0.2))
    for ferry, other in ((1.0, 10.0), (3.0, 10.0), (2.0, 4.0)):
        r.add(ferry, other)
    s = r.summary()
    assert (s["ratio_median"], s["ratio_min"], s["ratio_max"]) == (0.3, 0.1, 0.5)
    assert s["verdict"] == "FAIL"


def test_verdicts_follow_the_direction_of_each_target():
    rate = report.Row("pool", "r", "rate", "tasks/s", "Pool(fork)", (">=", 1.5))
    rate.add(300.0, 100.0)
    absolute = report.Row("kernel", "a", "abs", "B", "ipykernel", ("<=", 5 * 2**20))
    absolute.add(6 * 2**20, 1.0)  # the target is on ferry's own value
    assert rate.summary()["verdict"] == "ok"
    assert absolute.summary()["verdict"] == "FAIL"


def test_a_row_whose_ferry_side_never_answered_fails_and_keeps_why():
    r = report.Row("pool", "hang", "time", "s", "Pool(fork)", ("<=", 1.0))
    r.add(None, 0.01)
    r.fail("ferry: no reply within 60 s (pool hang?)")
    s = r.summary()
    assert s["verdict"] == "FAIL" and s["errors"] == ["ferry: no reply within 60 s (pool hang?)"]


def test_result_files_hold_every_sample_and_the_table(tmp_path):
    r = report.Row("kernel", "execute `pass`", "time", "s", "ipykernel", ("<=", 0.2))
    r.add(300e-6, 2.5e-3)
    r.add(310e-6, 2.7e-3)
    js, md = report.write([r], report.meta("quick"), str(tmp_path))
    data = json.load(open(js))
    assert data["meta"]["mode"] == "quick"
    assert data["rows"][0]["ferry"] == [300e-6, 310e-6]
    assert data["rows"][0]["others"] == [2.5e-3, 2.7e-3]
    table = open(md).read()
    assert "| execute `pass` | 305 µs | ipykernel 2.6 ms |" in table
    assert table.rstrip().endswith("| ≤ 0.2× | ok |")


def test_transport_floor_measures_both_transports():
    zmq_rt, pipe_rt = pool_rows._ping_pong("zmq", 50), pool_rows._ping_pong("pipe", 50)
    assert 0 < pipe_rt < 1 and 0 < zmq_rt < 1
