"""summary.md: the Key Results tables hold the numbers computed from the data."""

from __future__ import annotations

from pathlib import Path

from fixtures.results.synthetic import RUN_OFFSETS, result_file
from ppd.report.crossover import analyze
from ppd.report.inputs import read_result_file
from ppd.report.merge import merge
from ppd.report.summary import render_summary, table


def _summary(tmp_path: Path, modes: tuple[str, ...], offsets: tuple[float, ...] = RUN_OFFSETS) -> str:
    merged = merge([read_result_file(result_file(tmp_path, "a", modes, offsets=offsets))])
    return render_summary(merged, analyze(merged))


def test_key_results_tables_hold_the_known_numbers(tmp_path: Path) -> None:
    text = _summary(tmp_path, ("pd", "ppd", "replication"))
    assert "### PPD vs PD (turn-2 TTFT improvement)" in text
    assert "| W1 | 40.0% | 20.0% (QPS 8) | 60.0% (QPS 0.5) | 5 | 0.5, 1, 2 |" in text
    assert "### PPD vs Replication: which wins where" in text
    assert "| W2 | 0.5 (−43.1%) | — | 1, 2, 4, 8 | PPD→Replication at 2.80 (95%: 0.833–≥8.00) |" in text
    assert "### Goodput per mode" in text
    assert "SLO: TTFT ≤ 500 ms." in text
    assert "| PPD | 1.35 ± 0.00 | 2.70 ± 0.00 | 5.40 ± 0.00 | 10.8 ± 0.0 | 21.6 ± 0.0 |" in text
    assert "| W1 | PD | 0.5 | 3 | 45 | 90 | 0 | 0 |" in text  # samples: 3 runs x 15 / x 30 requests
    assert "| a.json | 2025-01-01T00:00:00Z | 0.1.0 | sim (sim-8b) | 0 | PD, PPD, Replication | 90 |" in text


def test_single_runs_say_there_is_no_interval(tmp_path: Path) -> None:
    text = _summary(tmp_path, ("pd", "ppd", "replication"), offsets=(0.0,))
    assert "(1 run)" in text
    assert "no CI (1 run)" in text
    assert "PPD→Replication at 2.80 (no CI)" in text


def test_missing_modes_are_explained_not_invented(tmp_path: Path) -> None:
    text = _summary(tmp_path, ("auto",))
    assert "Not available: needs both PD and PPD results" in text
    assert "Not available: needs both PPD and Replication results" in text
    assert "No mode overtakes another" in text


def test_table_escapes_pipes() -> None:
    assert table(["a"], [["x|y"]]) == ["| a |", "|---|", "| x/y |"]
