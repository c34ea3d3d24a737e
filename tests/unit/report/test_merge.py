"""Merging runs of several result files into points with across-run estimates."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from fixtures.results.synthetic import RELATIVE_DELTA, result_file, turn2_ttft_ms
from ppd.report.inputs import read_result_file
from ppd.report.merge import flatten_numbers, is_count, merge, normalize_qps, order_modes

T_975_DF2 = 4.3027


def test_each_point_is_the_mean_and_t_interval_of_its_runs(tmp_path: Path) -> None:
    merged = merge([read_result_file(result_file(tmp_path, "a", ("pd", "ppd")))])
    point = merged.point("W1", "pd", 2.0, "2+")
    assert point is not None and point.num_runs == 3
    ttft = point.metric("ttft_ms.mean")
    expected = turn2_ttft_ms("pd", 2.0)
    assert ttft is not None
    assert ttft.mean == pytest.approx(expected)
    # runs at expected·(1 − δ, 1, 1 + δ): s = δ·expected
    assert ttft.half_width == pytest.approx(T_975_DF2 * RELATIVE_DELTA * expected / math.sqrt(3), rel=1e-4)


def test_p99_is_null_where_runs_had_fewer_than_100_samples(tmp_path: Path) -> None:
    merged = merge([read_result_file(result_file(tmp_path, "a", ("ppd",)))])
    small = merged.point("W1", "ppd", 1.0, "2+")  # n = 60 per run
    large = merged.point("W1", "ppd", 2.0, "2+")  # n = 120 per run
    assert small is not None and large is not None
    assert small.metric("ttft_ms.p99") is None
    assert small.num_null_runs["ttft_ms.p99"] == 3
    assert large.metric("ttft_ms.p99") is not None


def test_counts_are_summed_over_runs(tmp_path: Path) -> None:
    merged = merge([read_result_file(result_file(tmp_path, "a", ("ppd",)))])
    point = merged.point("W2", "ppd", 4.0, "2+")
    assert point is not None
    assert point.totals["count"] == 3 * 240
    assert point.totals["ttft_ms.n"] == 3 * 240
    assert point.totals["num_failed"] == 0


def test_files_of_several_invocations_add_runs_and_modes(tmp_path: Path) -> None:
    first = result_file(tmp_path, "first", ("pd", "ppd"), offsets=(-1.0, 1.0))
    second = result_file(tmp_path, "second", ("ppd", "auto"), offsets=(0.0,))
    merged = merge([read_result_file(first), read_result_file(second)])
    assert merged.modes() == ["pd", "ppd", "auto"]
    ppd = merged.point("W1", "ppd", 8.0, "all")
    assert ppd is not None and ppd.run_ids == ["first#0", "first#1", "second#0"]
    pd = merged.point("W1", "pd", 8.0, "all")
    assert pd is not None and pd.num_runs == 2


def test_series_follows_the_qps_sweep(tmp_path: Path) -> None:
    merged = merge([read_result_file(result_file(tmp_path, "a", ("replication",), workloads=("W2",)))])
    series = merged.series("W2", "replication", "2+", "ttft_ms.mean")
    assert [qps for qps, _ in series] == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert all(e is not None and e.mean == pytest.approx(200.0) for _, e in series)
    assert merged.series("W1", "replication", "2+", "ttft_ms.mean") == []


def test_flatten_takes_every_numeric_leaf_but_the_key_fields() -> None:
    summary = {"mode": "pd", "qps": 1.0, "run": 0, "count": 3, "ok": True, "ttft_ms": {"p99": None, "n": 3}}
    assert dict(flatten_numbers(summary)) == {"count": 3.0, "ttft_ms.p99": None, "ttft_ms.n": 3.0}


def test_helpers_order_modes_and_normalize_keys() -> None:
    assert order_modes(["zeta", "auto", "pd", "replication", "ppd", ""]) == [
        "pd", "ppd", "replication", "auto", "", "zeta",
    ]  # fmt: skip
    assert normalize_qps(0.1 + 0.2) == normalize_qps(0.3)
    assert is_count("num_ok") and is_count("ttft_ms.n") and not is_count("ttft_ms.mean")
