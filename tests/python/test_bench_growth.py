"""bench/: the growth rows' exponent and how a series reports it, on
made-up totals (the measurements themselves run only under `make bench`)."""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "bench"))

import growth_rows  # noqa: E402
import report  # noqa: E402


@pytest.mark.parametrize("power", [0, 0.5, 1, 2])
def test_exponent_is_the_power_of_the_size_the_cost_follows(power):
    sizes = (300, 3_000, 10_000)
    totals = [0.002 * n ** power for n in sizes]
    assert report.growth_exponent(sizes, totals) == pytest.approx(power)


def test_exponent_is_a_least_squares_slope_over_noisy_points():
    # Linear with a 20% slow middle point: between 0.9 and 1.1, not 1.2+.
    exp = report.growth_exponent((100, 1_000, 10_000), (1.0, 12.0, 100.0))
    assert 0.95 < exp < 1.05
    # A cost quadratic in the size stays far above the 1.1 target.
    assert report.growth_exponent((300, 3_000, 10_000), (0.03, 2.9, 33.0)) > 1.9


def test_exponent_needs_two_measured_points():
    assert report.growth_exponent((10, 100, 1_000), (None, None, 1.0)) is None
    assert report.growth_exponent((10, 100, 1_000), (None, 0.5, 5.0)) == pytest.approx(1)
    assert report.growth_exponent((10, 10), (1.0, 2.0)) is None


def test_series_has_a_row_per_size_and_judges_the_largest_and_the_exponent():
    rows = []
    s = growth_rows.Series(rows, "statements in one cell", "s", "ipykernel",
                           (300, 3_000, 10_000))
    # ferry quadratic but faster at every size; ipykernel linear.
    for i, n in enumerate(s.ns):
        s.add(i, 1e-7 * n * n, 1e-3 * n)
    s.finish()
    titles = [r.title for r in rows]
    assert titles == ["statements in one cell: 300", "statements in one cell: 3,000",
                      "statements in one cell: 10,000",
                      "statements in one cell: growth exponent (300 / 3,000 / 10,000)"]
    verdicts = [r.summary()["verdict"] for r in rows]
    assert verdicts == ["", "", "ok", "FAIL"]  # exponent 2 > 1.1
    exp = rows[-1].summary()
    assert exp["ferry_median"] == pytest.approx(2) and exp["other_median"] == pytest.approx(1)
    table = report.table_rows(rows)
    assert table[-1][1:3] == ["2.00", "ipykernel 1.00"] and table[-1][4] == "≤ 1.10"


def test_series_with_a_failed_size_still_fits_the_others():
    rows = []
    s = growth_rows.Series(rows, "items in a map", "s", "Pool(fork)", (10, 100, 1_000))
    s.add(0, 0.01, 0.02)
    s.add(1, None, 0.2, ["ferry: no reply within 60 s (pool hang?)"])
    s.add(2, 1.0, 2.0)
    s.finish()
    assert rows[1].summary()["errors"] == ["ferry: no reply within 60 s (pool hang?)"]
    assert rows[-1].summary()["ferry_median"] == pytest.approx(1)
