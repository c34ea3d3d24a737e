"""Crossover QPS: interpolation in log(QPS) and its 95% interval, on constructed differences."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from fixtures.results.synthetic import CROSS_QPS, result_file
from ppd.report.crossover import (
    CROSSOVER_METRICS,
    DiffPoint,
    analyze,
    find_crossings,
    pair_differences,
    winner,
)
from ppd.report.inputs import read_result_file
from ppd.report.merge import merge


def test_crossing_is_interpolated_in_log_qps_with_its_band() -> None:
    # d = a − b: −10, +10, +30 at QPS 1, 10, 100; half-width 5 everywhere.
    diffs = [DiffPoint(1.0, -10.0, 5.0), DiffPoint(10.0, 10.0, 5.0), DiffPoint(100.0, 30.0, 5.0)]
    (crossing,) = find_crossings(diffs, "a", "b")
    assert crossing.qps == pytest.approx(math.sqrt(10))  # halfway between 1 and 10 in log
    assert (crossing.winner_below, crossing.winner_above) == ("a", "b")
    assert crossing.bracket_qps == (1.0, 10.0)
    # the band d ± 5 contains 0 from a quarter to three quarters of the way, in log
    assert crossing.qps_low == pytest.approx(10**0.25)
    assert crossing.qps_high == pytest.approx(10**0.75)
    assert not crossing.low_open and not crossing.high_open


def test_a_wide_band_leaves_the_interval_open_at_both_ends() -> None:
    diffs = [DiffPoint(1.0, 10.0, 50.0), DiffPoint(4.0, -10.0, 50.0), DiffPoint(16.0, -20.0, 50.0)]
    (crossing,) = find_crossings(diffs, "a", "b")
    assert crossing.qps == pytest.approx(2.0)
    assert (crossing.winner_below, crossing.winner_above) == ("b", "a")
    assert (crossing.qps_low, crossing.qps_high) == pytest.approx((1.0, 16.0))
    assert crossing.low_open and crossing.high_open


def test_an_exact_tie_at_a_measured_point_is_the_crossing() -> None:
    diffs = [DiffPoint(1.0, -10.0, 1.0), DiffPoint(2.0, 0.0, 1.0), DiffPoint(4.0, 10.0, 1.0)]
    (crossing,) = find_crossings(diffs, "a", "b")
    assert crossing.qps == 2.0
    assert crossing.bracket_qps == (1.0, 4.0)


def test_no_sign_change_no_crossing_and_several_changes_each_found() -> None:
    assert find_crossings([DiffPoint(1.0, -1.0, None), DiffPoint(2.0, -5.0, None)], "a", "b") == []
    diffs = [DiffPoint(q, d, None) for q, d in [(1.0, -1.0), (2.0, 1.0), (4.0, -1.0)]]
    crossings = find_crossings(diffs, "a", "b")
    assert [c.winner_above for c in crossings] == ["b", "a"]
    assert all(c.qps_low is None and c.qps_high is None for c in crossings)  # single runs: no CI


def test_winner_is_a_tie_when_the_band_contains_zero() -> None:
    assert winner(DiffPoint(1.0, -3.0, 5.0), "a", "b") == "tie"
    assert winner(DiffPoint(1.0, -6.0, 5.0), "a", "b") == "a"
    assert winner(DiffPoint(1.0, 6.0, None), "a", "b") == "b"


def test_synthetic_results_cross_at_the_constructed_qps(tmp_path: Path) -> None:
    merged = merge([read_result_file(result_file(tmp_path, "a", ("ppd", "replication")))])
    diffs = pair_differences(merged, "W1", "ppd", "replication", CROSSOVER_METRICS[0])
    (crossing,) = find_crossings(diffs, "ppd", "replication")
    assert crossing.qps == pytest.approx(CROSS_QPS)  # ppd − replication = 50·ln(QPS / 2.8)
    assert (crossing.winner_below, crossing.winner_above) == ("ppd", "replication")
    assert crossing.qps_low == pytest.approx(_expected_low_edge(), rel=1e-3)
    assert crossing.high_open  # PPD is never significantly slower up to QPS 8


def _expected_low_edge() -> float:
    """Where the upper band edge of ppd − replication reaches 0 between QPS 1 and 0.5, by hand."""
    c = 4.3027 * 0.1 / math.sqrt(3)  # half-width per unit of value: t(0.975, 2) · δ / √3

    def upper(qps: float) -> float:
        ppd = 200 + 50 * math.log(qps / CROSS_QPS)
        return ppd - 200 + c * math.hypot(ppd, 200)

    x1, x0 = math.log(1.0), math.log(0.5)
    return math.exp(x1 + (x0 - x1) * upper(1.0) / (upper(1.0) - upper(0.5)))


def test_analysis_json_covers_every_workload_metric_and_pair(tmp_path: Path) -> None:
    merged = merge([read_result_file(result_file(tmp_path, "a", ("pd", "ppd", "replication")))])
    analysis = analyze(merged)
    assert analysis["schema"] == "ppd.crossover/1"
    keys = {(a["workload"], a["metric"]) for a in analysis["analyses"]}
    assert keys == {(w, c.metric) for w in ("W1", "W2") for c in CROSSOVER_METRICS}
    first = analysis["analyses"][0]
    assert [p["modes"] for p in first["pairs"]] == [
        ["pd", "ppd"],
        ["pd", "replication"],
        ["ppd", "replication"],
    ]
    assert [row["mode"] for row in first["best_by_qps"]] == [
        "ppd",
        "ppd",
        "ppd",
        "replication",
        "replication",
    ]
    p99 = next(a for a in analysis["analyses"] if a["metric"] == "ttft_ms.p99")
    assert p99["pairs"][0]["qps"] == [2.0, 4.0, 8.0]  # no P99 at QPS 0.5 and 1 (n < 100)
