"""benchmarks/fleet_vs_sim.py's measurement floor: a second HTTP run compared with the first as the
fleet is (--against), and the fleet's figures outside the goal held to that repeat spread."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import fleet_vs_sim
from sim_vs_real import Comparison


def _summary(
    mode: str, group: str, ttft_ms: tuple[float, float | None], tpot_p50_ms: float
) -> dict[str, object]:
    return {
        "mode": mode, "workload": "W1", "qps": 2.0, "run": 0, "turn_group": group,
        "ttft_ms": {"p50": ttft_ms[0], "p99": ttft_ms[1]}, "tpot_ms": {"p50": tpot_p50_ms, "p99": None},
    }  # fmt: skip


def _http_run(folder: Path, ttft_t1_ms: float, ttft_t1_p99_ms: float | None, tpot_ms: float) -> Path:
    """One --out folder with http-1p1d-W1.json: turn 1, turns 2+ (fixed) and all-turns summaries."""
    folder.mkdir()
    summaries = [
        _summary("pd", "1", (ttft_t1_ms, ttft_t1_p99_ms), tpot_ms),
        _summary("pd", "2+", (50.0, None), tpot_ms),
        _summary("pd", "all", (60.0, None), tpot_ms),
    ]
    (folder / "http-1p1d-W1.json").write_text(json.dumps({"schema": "ppd.result/1", "summaries": summaries}))
    return folder


def test_a_repeat_is_compared_with_the_fleets_metric_and_goal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _http_run(tmp_path / "a", 100.0, 200.0, 10.0)
    again = _http_run(tmp_path / "b", 108.0, 210.0, 10.2)  # t1 p50 +8% (out), p99 +5% (in), tpot +2%
    monkeypatch.setattr(
        sys, "argv",
        ["fleet_vs_sim.py", "--out", str(first), "--fleet-only", "--http-only", "--against", str(again),
         "--topologies", "1p1d", "--workloads", "W1"],
    )  # fmt: skip
    assert fleet_vs_sim.main() == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == (
        "http_repeat points=1 ttft_p50_max_rel_err=0.0800 tpot_p50_max_rel_err=0.0200 "
        "ttft_p99_max_rel_err=0.0500 within_goal=3/4 beyond_reach=0"
    )
    assert not any(line.startswith("fleet_agreement") for line in lines)  # --http-only: no fleet


def _figure(figure: str, percentile: str, http_ms: float, other_ms: float) -> Comparison:
    return Comparison(("W1", 2.0, "pd"), figure, percentile, http_ms, other_ms)


@pytest.mark.parametrize(
    ("http_ms", "other_ms", "percentile", "beyond"),
    [
        (100.0, 110.0, "p50", False),  # 104.5-105 is within 5% of both
        (100.0, 111.0, "p50", True),  # 105.45 > 105: no value is
        (100.0, 90.6, "p50", False),  # the same bound seen from the higher run: 90.6 * 1.05 > 95
        (100.0, 90.0, "p50", True),
        (100.0, 121.0, "p99", False),  # p99's goal is 10%: 121 * 0.9 = 108.9 <= 110
        (100.0, 123.0, "p99", True),
    ],
)
def test_a_repeat_figure_is_beyond_reach_when_no_value_is_within_the_goal_of_both_runs(
    http_ms: float, other_ms: float, percentile: str, beyond: bool
) -> None:
    figure = _figure("ttft_t1", percentile, http_ms, other_ms)
    assert fleet_vs_sim.beyond_reach(figure) is beyond
    assert fleet_vs_sim.beyond_reach(_figure("ttft_t1", percentile, other_ms, http_ms)) is beyond  # symmetric


def test_the_fleet_outside_the_goal_is_held_to_the_largest_repeat_spread() -> None:
    fleet = [
        ("1p1d", _figure("ttft_t1", "p50", 100.0, 103.0)),  # within the goal
        ("1p1d", _figure("ttft_t2+", "p50", 100.0, 92.0)),  # -8%: the repeats differ by 3% and 10%
        ("1p1d", _figure("tpot", "p50", 100.0, 108.0)),  # +8%: the repeat by 2% only
        ("1p1d", _figure("ttft_t1", "p99", 100.0, 130.0)),  # no repeat has this p99
    ]
    repeats = [
        [("1p1d", _figure("ttft_t2+", "p50", 100.0, 103.0)), ("1p1d", _figure("tpot", "p50", 100.0, 98.0))],
        [("1p1d", _figure("ttft_t2+", "p50", 100.0, 110.0))],
    ]
    verdicts = [
        (c.figure, floor, verdict) for _, c, floor, verdict in fleet_vs_sim.floor_verdicts(fleet, repeats)
    ]
    assert verdicts[0] == ("ttft_t1", None, "goal")
    assert verdicts[1] == ("ttft_t2+", pytest.approx(0.10), "repeat")
    assert verdicts[2] == ("tpot", pytest.approx(0.02), "beyond")
    assert verdicts[3] == ("ttft_t1", None, "no repeat")
    assert fleet_vs_sim.floor_line(fleet, repeats) == (
        "fleet_vs_repeat figures=4 within_goal=1 outside_goal_within_repeat_spread=1 "
        "beyond_repeat_spread=1 no_repeat=1"
    )
    table = fleet_vs_sim.floor_table(fleet, repeats).splitlines()
    assert len(table) == 2 + 3 and table[3].endswith("beyond")  # the three figures outside the goal
