"""benchmarks/sim_vs_real.py's comparison and its run-to-run spread, on small result files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "sim_vs_real.py"


def _summary(mode: str, group: str, ttft_p50: float, tpot_p50: float) -> dict[str, object]:
    return {
        "mode": mode, "workload": "W1", "qps": 4.0, "run": 0, "turn_group": group,
        "ttft_ms": {"p50": ttft_p50, "p99": None}, "tpot_ms": {"p50": tpot_p50, "p99": None},
    }  # fmt: skip


def _result(path: Path, mode: str, ttft_t1: float, ttft_t2: float, tpot: float) -> Path:
    summaries = [
        _summary(mode, "1", ttft_t1, tpot),
        _summary(mode, "2+", ttft_t2, tpot),
        _summary(mode, "all", (ttft_t1 + ttft_t2) / 2, tpot),
    ]
    path.write_text(json.dumps({"schema": "ppd.result/1", "summaries": summaries}))
    return path


def _run(*args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.splitlines()


def test_spread_counts_agreeing_runs_and_where_the_sim_lies(tmp_path: Path) -> None:
    real = _result(tmp_path / "real.json", "", 100.0, 200.0, 10.0)
    again = _result(tmp_path / "again.json", "", 104.0, 400.0, 10.5)
    sim = _result(tmp_path / "sim.json", "replication", 130.0, 300.0, 10.2)
    lines = _run("--real", str(real), "--sim", str(sim), "--mode-map", "replication=",
                 "--real-again", str(again))  # fmt: skip
    # against the first run alone: only TPOT (+2%) is within 10%
    assert next(line for line in lines if line.startswith("sim_vs_real ")).endswith("within_goal=1/3")
    # ttft_t1: runs 100/104 agree, sim 130 is off both and outside [90, 114.4]
    # ttft_t2+: runs 200/400 disagree, sim 300 is near neither but inside [180, 440]
    # tpot: runs 10/10.5 agree, sim 10.2 near both
    assert lines[-1] == (
        "sim_vs_real_spread figures=3 real_runs_agree=2/3 sim_within_goal_of_a_run=1/3 sim_in_envelope=2/3"
    )


def test_without_repeats_no_spread_line_and_an_empty_again_path_is_an_error(tmp_path: Path) -> None:
    real = _result(tmp_path / "real.json", "", 100.0, 200.0, 10.0)
    sim = _result(tmp_path / "sim.json", "", 100.0, 200.0, 10.0)
    lines = _run("--real", str(real), "--sim", str(sim))
    assert lines[-1].startswith("sim_vs_real ") and lines[-1].endswith("within_goal=3/3")
    empty = tmp_path / "empty"
    empty.mkdir()
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--real", str(real), "--sim", str(sim), "--real-again", str(empty)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "no result files in" in done.stderr


def test_a_real_file_named_again_is_not_a_second_run(tmp_path: Path) -> None:
    real = _result(tmp_path / "real.json", "", 100.0, 200.0, 10.0)
    sim = _result(tmp_path / "sim.json", "", 100.0, 200.0, 10.0)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--real", str(real), "--sim", str(sim), "--real-again", str(real)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and "only --real's own result files" in done.stderr


def test_a_figure_with_a_null_run_is_left_out_of_both_tables(tmp_path: Path) -> None:
    # p99 with < 100 samples in one run is null: the figure's value is unknown there, so the spread
    # table leaves it out as the main table does (it kept the other runs as a figure measured twice)
    def with_p99(path: Path, p99: float | None) -> Path:
        result = json.loads(path.read_text())
        for summary in result["summaries"]:
            summary["ttft_ms"]["p99"] = p99
        path.write_text(json.dumps(result))
        return path

    real = with_p99(_result(tmp_path / "real.json", "", 100.0, 200.0, 10.0), 500.0)
    again = with_p99(_result(tmp_path / "again.json", "", 104.0, 210.0, 10.5), 520.0)
    short = with_p99(_result(tmp_path / "short.json", "", 102.0, 205.0, 10.2), None)
    sim = with_p99(_result(tmp_path / "sim.json", "", 101.0, 202.0, 10.1), 510.0)
    both = ("--real-again", str(again), "--real-again", str(short))
    lines = _run("--real", str(real), "--sim", str(sim), *both)
    assert next(line for line in lines if line.startswith("sim_vs_real ")).endswith("within_goal=5/5")
    assert lines[-1].startswith("sim_vs_real_spread figures=3 ")  # the p50s; no ttft p99
    lines = _run("--real", str(real), "--sim", str(sim), "--real-again", str(again))
    assert lines[-1].startswith("sim_vs_real_spread figures=5 ")  # without the null run: p99s too
