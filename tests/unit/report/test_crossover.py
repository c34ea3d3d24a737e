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
from ppd.report.merge import MergedResults, merge


def _diff(qps: float, diff: float, half_width: float | None) -> DiffPoint:
    if half_width is None:
        return DiffPoint(qps, diff, None, None)
    return DiffPoint(qps, diff, diff - half_width, diff + half_width)


def test_crossing_is_interpolated_in_log_qps_with_its_band() -> None:
    # d = a − b: −10, +10, +30 at QPS 1, 10, 100; half-width 5 everywhere: all significant.
    diffs = [_diff(1.0, -10.0, 5.0), _diff(10.0, 10.0, 5.0), _diff(100.0, 30.0, 5.0)]
    (crossing,) = find_crossings(diffs, "a", "b")
    assert crossing.qps == pytest.approx(math.sqrt(10))  # halfway between 1 and 10 in log
    assert (crossing.winner_below, crossing.winner_above) == ("a", "b")
    assert crossing.bracket_qps == (1.0, 10.0)
    # the band d ± 5 contains 0 from a quarter to three quarters of the way, in log
    assert crossing.qps_low == pytest.approx(10**0.25)
    assert crossing.qps_high == pytest.approx(10**0.75)
    assert not crossing.low_open and not crossing.high_open


def test_ties_between_two_opposite_wins_widen_the_interval_but_keep_the_crossing() -> None:
    # b significantly lower at 1, a tie at 4 (d = −1 ± 19), a significantly lower at 16.
    diffs = [
        DiffPoint(1.0, 10.0, 2.0, 18.0),
        DiffPoint(4.0, -1.0, -20.0, 18.0),
        DiffPoint(16.0, -20.0, -30.0, -10.0),
    ]
    (crossing,) = find_crossings(diffs, "a", "b")
    assert (crossing.winner_below, crossing.winner_above) == ("b", "a")
    assert crossing.bracket_qps == (1.0, 16.0)
    assert crossing.qps == pytest.approx(4 ** (10 / 11))  # d from +10 to −1 between 1 and 4
    # right edge: the upper band end goes from +18 at 4 to −10 at 16
    assert crossing.qps_high == pytest.approx(math.exp(math.log(4) + math.log(4) * 18 / 28))
    assert 1.0 < crossing.qps_low < crossing.qps
    assert not crossing.low_open and not crossing.high_open


def test_an_exact_zero_at_a_measured_point_is_the_crossing() -> None:
    diffs = [_diff(1.0, -10.0, 1.0), _diff(2.0, 0.0, 1.0), _diff(4.0, 10.0, 1.0)]
    (crossing,) = find_crossings(diffs, "a", "b")
    assert crossing.qps == 2.0
    assert crossing.bracket_qps == (1.0, 4.0)


def test_no_crossing_through_ties_alone_or_without_intervals() -> None:
    # the point estimates change sign, but only one end is significant
    assert (
        find_crossings([_diff(1.0, -10.0, 5.0), _diff(4.0, 3.0, 5.0), _diff(16.0, 8.0, 50.0)], "a", "b") == []
    )
    # one run, no rows: nothing is significant, so nothing crosses
    assert find_crossings([_diff(1.0, -1.0, None), _diff(2.0, 1.0, None)], "a", "b") == []


def test_several_changes_are_each_found() -> None:
    diffs = [_diff(q, d, 0.5) for q, d in [(1.0, -1.0), (2.0, 1.0), (4.0, -1.0)]]
    crossings = find_crossings(diffs, "a", "b")
    assert [c.winner_above for c in crossings] == ["b", "a"]
    assert all(c.has_interval for c in crossings)


def test_winner_is_a_tie_when_the_interval_contains_zero() -> None:
    assert winner(_diff(1.0, -3.0, 5.0), "a", "b") == "tie"
    assert winner(_diff(1.0, -6.0, 5.0), "a", "b") == "a"
    assert winner(_diff(1.0, 6.0, 5.0), "a", "b") == "b"
    assert winner(_diff(1.0, 6.0, None), "a", "b") == "b"  # untested: the lower one
    assert _diff(1.0, 6.0, None).direction is None


def test_across_run_intervals_alone_declare_no_crossing_in_the_synthetic_set(tmp_path: Path) -> None:
    # Without rows, PPD is significantly faster only at QPS 0.5 and never significantly slower.
    merged = merge([read_result_file(result_file(tmp_path, "a", ("ppd", "replication")))])
    diffs = pair_differences(merged, "W1", "ppd", "replication", CROSSOVER_METRICS[0])
    assert [d.direction for d in diffs] == [-1, 0, 0, 0, 0]
    assert find_crossings(diffs, "ppd", "replication") == []


def test_paired_rows_cross_at_the_constructed_qps(paired_rows_merged: MergedResults) -> None:
    merged = paired_rows_merged
    diffs = pair_differences(merged, "W1", "ppd", "replication", CROSSOVER_METRICS[0])
    assert all(d.paired for d in diffs)
    assert [d.direction for d in diffs] == [-1, -1, -1, 1, 1]
    (crossing,) = find_crossings(diffs, "ppd", "replication")
    assert crossing.qps == pytest.approx(CROSS_QPS)  # ppd − replication = 50·ln(QPS / 2.8)
    assert (crossing.winner_below, crossing.winner_above) == ("ppd", "replication")
    assert crossing.bracket_qps == (2.0, 4.0)
    assert crossing.qps_low is not None and crossing.qps_high is not None
    assert 2.0 < crossing.qps_low < CROSS_QPS < crossing.qps_high < 4.0


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
    # without rows the ±10% runs leave PPD and Replication tied from QPS 1 up
    assert [row["best"] for row in first["best_by_qps"]] == ["ppd", "tie", "tie", "tie", "tie"]
    assert first["best_by_qps"][1]["tied_with"] == ["replication"]
    assert first["pairs"][2]["winner"] == ["ppd", "tie", "tie", "tie", "tie"]
    p99 = next(a for a in analysis["analyses"] if a["metric"] == "ttft_ms.p99")
    assert p99["pairs"][0]["qps"] == [2.0, 4.0, 8.0]  # no P99 at QPS 0.5 and 1 (n < 100)
