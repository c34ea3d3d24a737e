"""summary.md: the Key Results tables hold the numbers computed from the data."""

from __future__ import annotations

from pathlib import Path

from fixtures.results.synthetic import RUN_OFFSETS, result_file
from ppd.report.crossover import analyze
from ppd.report.inputs import read_result_file
from ppd.report.merge import MergedResults, merge
from ppd.report.summary import render_summary, table


def _summary(tmp_path: Path, modes: tuple[str, ...], offsets: tuple[float, ...] = RUN_OFFSETS) -> str:
    merged = merge([read_result_file(result_file(tmp_path, "a", modes, offsets=offsets))])
    return render_summary(merged, analyze(merged))


def test_key_results_tables_hold_the_known_numbers(tmp_path: Path) -> None:
    text = _summary(tmp_path, ("pd", "ppd", "replication"))
    assert "### PPD vs PD (turn-2 TTFT improvement)" in text
    assert (
        "| W1 | 40.0% | 20.0% (QPS 8) | 60.0% (QPS 0.5) | 0.5: 60.0% (43.2–71.8%); 1: 50.0% (29.0–64.8%); "
        "2: 40.0% (14.7–57.8%); 4: 30.0% (0.5–50.7%, tie); 8: 20.0% (-13.7 to 43.7%, tie) |"
    ) in text
    assert "### PPD vs Replication: which wins where" in text
    assert "| W2 | 0.5 (−43.1%) | — | 1, 2, 4, 8 | no change |" in text
    assert "### Goodput per mode" in text
    assert "SLO: TTFT ≤ 500 ms." in text
    assert "| PPD | 1.35 (1.35–1.35) | 2.70 (2.70–2.70) | 5.40 (5.40–5.40) | 10.8 (10.8–10.8) |" in text
    assert "| Replication | 200 (150–250) |" in text  # t(0.975, 2) across the ±10% runs
    assert "- W1, mean TTFT, turns 2+: QPS 0.5: PPD; QPS 1: tie (PPD, Replication);" in text
    assert "No mode overtakes another significantly" in text
    assert "| W1 | PD | 0.5 | 3 | 45 | 90 | 0 | 0 |" in text  # samples: 3 runs x 15 / x 30 requests
    assert "| a.json | 2025-01-01T00:00:00Z | 0.1.0 | sim (sim-8b) | 0 | PD, PPD, Replication | 90 |" in text


def test_single_runs_without_rows_say_there_is_no_interval(tmp_path: Path) -> None:
    text = _summary(tmp_path, ("pd", "ppd", "replication"), offsets=(0.0,))
    assert "| PPD | 114 (no CI) |" in text
    assert "0.5: 60.0% (no CI)" in text
    assert "| W1 | 0.5* (−43.1%), 1* (−25.7%), 2* (−8.4%) | 4* (−8.2%), 8* (−20.8%) | — | no change |" in text
    assert "Points marked * have no interval" in text
    assert "QPS 4: Replication*" in text


def test_paired_rows_give_intervals_wins_and_the_crossing(paired_rows_merged: MergedResults) -> None:
    merged = paired_rows_merged
    text = render_summary(merged, analyze(merged))
    assert (
        "| W1 | 0.5 (−43.1%), 1 (−25.7%), 2 (−8.4%) | 4 (−8.2%), 8 (−20.8%) | — | PPD→Replication at 2.80"
        in text
    )
    assert "| W1 | mean TTFT, turns 2+ | PPD vs Replication | PPD → Replication | 2.80 |" in text
    assert "resamples whole conversations" in text


def test_missing_modes_are_explained_not_invented(tmp_path: Path) -> None:
    text = _summary(tmp_path, ("auto",))
    assert "Not available: needs both PD and PPD results" in text
    assert "Not available: needs both PPD and Replication results" in text
    assert "No mode overtakes another" in text


def test_table_escapes_pipes() -> None:
    assert table(["a"], [["x|y"]]) == ["| a |", "|---|", "| x/y |"]
