"""benchmarks/fleet_intervals.py: the fleet's TTFT p50 and mean against the HTTP side's bootstrap
intervals, on result sets written by ppd fleet (two runs standing in for the two sides)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from fleet_intervals import interval_checks, interval_line
from ppd.bench.workloads import builtin_workload
from ppd.fleet import FleetConfig, HopCosts, fleet_topology, simulate, write_result_set


def _side(folder: Path, side: str, client_to_proxy_ms: float) -> None:
    config = FleetConfig(
        fleet_topology("1p1d"), "replication", builtin_workload("W1", 2), qps=2.0, duration_s=10.0,
        hops=HopCosts(client_to_proxy_ms=client_to_proxy_ms),
    )  # fmt: skip
    write_result_set([simulate(config)], folder, f"{side}-1p1d-W1")


def test_the_same_run_lies_inside_its_own_intervals_and_a_slower_one_outside(tmp_path: Path) -> None:
    _side(tmp_path, "http", 0.0)
    _side(tmp_path, "fleet", 0.0)
    checks = interval_checks(tmp_path, ["1p1d"], ["W1"])
    assert [c.figure for c in checks] == ["ttft_t1", "ttft_t2+"]
    assert all(c.p50_in_ci and c.mean_in_ci and c.p50_err == 0.0 for c in checks)
    assert (
        interval_line(checks)
        == "fleet_intervals ttft_figures=2 p50_in_http_ci=2 mean_in_http_ci=2 mean_within_5pct=2"
    )
    repeat = interval_checks(tmp_path, ["1p1d"], ["W1"], other=tmp_path)  # an HTTP run against itself
    assert len(repeat) == 2 and all(c.p50_in_ci and c.mean_err == 0.0 for c in repeat)
    (tmp_path / "slower").mkdir()
    _side(tmp_path / "slower", "http", 0.0)
    _side(tmp_path / "slower", "fleet", 50.0)  # every turn 50 ms later: far outside any interval
    checks = interval_checks(tmp_path / "slower", ["1p1d"], ["W1"])
    assert not any(c.p50_in_ci or c.mean_in_ci for c in checks)
    assert all(c.http_p50.ci_low is not None and c.http_p50.ci_low <= c.http_p50.mean for c in checks)
