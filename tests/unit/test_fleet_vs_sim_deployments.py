"""benchmarks/fleet_vs_sim.py: a workload run on the deployment of the one before it starts with the
proxy's idle connections that one left (one `ppd proxy` across two `ppd bench` invocations)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import fleet_vs_sim


def _http_set(path: Path, engines: list[str], runs: list[tuple[str, float]]) -> Path:
    """An HTTP result set's JSON with its engines and (started_utc, elapsed_s) per run."""
    meta = {
        "engines": [{"url": url} for url in engines],
        "runs": [{"started_utc": started, "elapsed_s": elapsed} for started, elapsed in runs],
    }
    path.write_text(json.dumps(meta))
    return path


def test_the_gap_between_two_benches_on_one_deployment(tmp_path: Path) -> None:
    one = ["http://127.0.0.1:1", "http://127.0.0.1:2"]
    first = _http_set(
        tmp_path / "a.json", one, [("2026-12-03T09:07:16+00:00", 11.5), ("2026-12-03T09:08:37+00:00", 11.6)]
    )
    second = _http_set(tmp_path / "b.json", one, [("2026-12-03T09:08:52+00:00", 10.5)])
    other = _http_set(tmp_path / "c.json", ["http://127.0.0.1:3"], [("2026-12-03T09:08:52+00:00", 10.5)])
    at_once = _http_set(tmp_path / "d.json", one, [("2026-12-03T09:08:48+00:00", 10.5)])
    before = _http_set(tmp_path / "e.json", one, [("2026-12-03T09:07:00+00:00", 10.5)])
    assert abs(fleet_vs_sim.same_deployment_gap_s(first, second) - 3.4) < 1e-6  # 09:08:48.6 -> 09:08:52
    assert fleet_vs_sim.same_deployment_gap_s(first, other) is None  # another deployment's engines
    assert fleet_vs_sim.same_deployment_gap_s(first, at_once) == 0.0  # whole-second stamps: at once
    assert fleet_vs_sim.same_deployment_gap_s(first, before) is None  # not one after the other
