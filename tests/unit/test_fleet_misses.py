"""benchmarks/fleet_misses.py: a judged folder whose grid was cut short (a lost device machine) has
the figures of the workloads it holds, and none of the others, beside complete folders."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import fleet_misses


def _result_set(path: Path, workload: str, ttft_p50_ms: float) -> None:
    """A result set with one pd run at 2/s: its turn-1 TTFT p50 and nothing else."""
    summary = {"mode": "pd", "workload": workload, "qps": 2.0, "turn_group": "1"}
    summary |= {"ttft_ms": {"p50": ttft_p50_ms, "p99": None}, "tpot_ms": {"p50": None, "p99": None}}
    path.write_text(json.dumps({"schema": "ppd.result/1", "summaries": [summary]}))


def test_a_grid_cut_short_has_the_figures_of_the_workloads_it_holds(tmp_path: Path) -> None:
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    for folder, workloads in ((whole, ("W1", "W2")), (cut, ("W1",))):
        folder.mkdir()
        for workload in workloads:
            _result_set(folder / f"http-1p1d-{workload}.json", workload, 100.0)
            _result_set(folder / f"fleet-1p1d-{workload}.json", workload, 104.0)
    assert fleet_misses.run_comparisons(cut, ["1p1d", "2p2d"], ["W1", "W2"]).keys() == {
        ("1p1d", "W1", 2.0, "pd", "ttft_t1", "p50")
    }
    assert len(fleet_misses.run_comparisons(whole, ["1p1d"], ["W1", "W2"])) == 2
    assert fleet_misses.main([f"whole={whole}", f"cut={cut}", "--topologies", "1p1d"]) == 0
