"""The Key Results numbers: PPD vs PD improvement, head-to-head winners, metric grids."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from fixtures.results.synthetic import CROSS_QPS, result_file
from ppd.report.comparisons import head_to_head, improvements, metric_tables
from ppd.report.inputs import read_result_file
from ppd.report.merge import MergedResults, merge


@pytest.fixture
def merged(tmp_path: Path) -> MergedResults:
    return merge([read_result_file(result_file(tmp_path, "a", ("pd", "ppd", "replication")))])


def test_ppd_vs_pd_improvement_average_min_max(merged: MergedResults) -> None:
    rows = improvements(merged, "ppd", "pd")
    assert [r.workload for r in rows] == ["W1", "W2"]
    row = rows[0]
    assert [i.percent for i in row.per_qps] == pytest.approx([60, 50, 40, 30, 20])
    assert row.average_percent == pytest.approx(40.0)
    assert (row.worst.qps, row.worst.percent) == (8.0, pytest.approx(20.0))
    assert (row.best.qps, row.best.percent) == (0.5, pytest.approx(60.0))
    # with ±10% runs, only the larger improvements clear the 95% CI of the difference
    assert [i.significant for i in row.per_qps] == [True, True, True, False, False]


def test_ppd_vs_replication_winners_without_rows_are_ties_and_no_crossing(merged: MergedResults) -> None:
    (row, _) = head_to_head(merged, "ppd", "replication")
    assert [o.winner for o in row.outcomes] == ["ppd", "tie", "tie", "tie", "tie"]
    ppd_at_half = 200 + 50 * math.log(0.5 / CROSS_QPS)
    assert row.outcomes[0].margin_percent == pytest.approx((200 - ppd_at_half) / 200 * 100)
    assert row.crossings == []  # PPD is never significantly slower: nothing to cross to


def test_paired_rows_win_both_ways_and_cross(paired_rows_merged: MergedResults) -> None:
    merged = paired_rows_merged
    (row, _) = head_to_head(merged, "ppd", "replication")
    assert [o.winner for o in row.outcomes] == ["ppd", "ppd", "ppd", "replication", "replication"]
    assert all(o.significant for o in row.outcomes)
    assert [c.qps for c in row.crossings] == [pytest.approx(CROSS_QPS)]
    improvement = improvements(merged, "ppd", "pd")[0].per_qps[0]  # QPS 0.5: 60%
    assert improvement.percent == pytest.approx(60.0)
    assert improvement.low_percent is not None and improvement.high_percent is not None
    assert 50.0 < improvement.low_percent < 60.0 < improvement.high_percent < 70.0


def test_missing_mode_gives_no_rows(tmp_path: Path) -> None:
    only_pd = merge([read_result_file(result_file(tmp_path, "a", ("pd",)))])
    assert improvements(only_pd, "ppd", "pd") == []
    assert head_to_head(only_pd, "ppd", "replication") == []


def test_metric_tables_hold_every_mode_and_qps(merged: MergedResults) -> None:
    tables = metric_tables(merged, "all", "goodput_rps")
    assert [t.workload for t in tables] == ["W1", "W2"]
    assert list(tables[0].by_mode) == ["pd", "ppd", "replication"]
    cell = tables[0].by_mode["ppd"][1]  # QPS 1: 90 requests per run over 30 s, 90% good
    assert cell is not None and cell.mean == pytest.approx(0.9 * 90 / 30)
    assert metric_tables(merged, "all", "no_such_metric") == []
