"""`python -m ppd report --auto DIR` as a user runs it: a real process, real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from fixtures.results.synthetic import result_file


def test_report_auto_merges_the_newest_invocations_into_a_four_mode_report(tmp_path: Path) -> None:
    results = tmp_path / "results"
    result_file(results, "old", ("pd",), ttft=lambda mode, qps: 9999.0, updated_utc="2024-12-01T00:00:00Z")
    result_file(results, "three", ("pd", "ppd", "replication"), updated_utc="2025-01-01T00:00:00Z")
    result_file(results, "auto", ("auto",), updated_utc="2025-01-02T00:00:00Z")
    done = subprocess.run(
        [sys.executable, "-m", "ppd", "report", "--auto", str(results)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = results / "report"
    merged = json.loads((out / "merged_results.json").read_text())
    assert merged["modes"] == ["pd", "ppd", "replication", "auto"]
    assert sorted(Path(i["path"]).name for i in merged["inputs"]) == ["auto.json", "three.json"]
    pd = next(p for p in merged["points"] if (p["mode"], p["turn_group"]) == ("pd", "2+"))
    assert pd["metrics"]["ttft_ms.mean"]["mean"] < 9999.0  # the older pd file was left out
    summary = (out / "summary.md").read_text()
    assert "| W1 | 40.0% | 20.0% (QPS 8) | 60.0% (QPS 0.5) | 0.5: 60.0% (43.2–71.8%);" in summary
    assert "| Auto |" in summary
    assert len(json.loads((out / "qps_crossover_analysis.json").read_text())["analyses"]) == 8


def test_report_without_inputs_is_a_usage_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ppd", "report", "--auto", str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith("ppd report: error: no result files")
