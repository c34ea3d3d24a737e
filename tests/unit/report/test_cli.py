"""`ppd report` argument handling and its run, in process."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from fixtures.results.synthetic import result_file
from ppd.cli import main
from ppd.errors import UsageError
from ppd.report.cli import add_arguments, build_config


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_config_defaults() -> None:
    config = build_config(_parse("--auto"))
    assert (config.inputs, config.auto, config.out_dir) == ([Path("results")], True, Path("results/report"))
    config = build_config(_parse("x/a.json", "--out", "o"))
    assert (config.inputs, config.auto, config.out_dir) == ([Path("x/a.json")], False, Path("o"))
    assert build_config(_parse("x/a.json")).out_dir == Path("x/report")


def test_bootstrap_options_are_checked() -> None:
    config = build_config(_parse("a.json", "--resamples", "500", "--seed", "7"))
    assert (config.bootstrap.num_resamples, config.bootstrap.seed) == (500, 7)
    with pytest.raises(UsageError, match="--resamples"):
        build_config(_parse("a.json", "--resamples", "10"))


def test_no_inputs_without_auto_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="--auto"):
        build_config(_parse())


def test_bad_input_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert main(["report", str(bad), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ppd report: error:") and "schema" in err and "\n" not in err


def test_report_writes_every_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = result_file(tmp_path / "results", "a", ("pd", "ppd"), workloads=("W1",), qps_values=(1.0, 2.0))
    out = tmp_path / "out"
    assert main(["report", str(source), "--out", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [
            "merged_results.json",
            "qps_crossover_analysis.json",
            "summary.md",
            "qps_p99_ttft.png",
            "qps_avg_e2e.png",
            "qps_ratio_crossover.png",
            "qps_success_rate.png",
            "qps_throughput.png",
            "qps_throughput_comparison.png",
        ]
    )
    merged = json.loads((out / "merged_results.json").read_text())
    assert merged["schema"] == "ppd.report/1"
    assert merged["modes"] == ["pd", "ppd"]
    point = next(p for p in merged["points"] if (p["mode"], p["qps"], p["turn_group"]) == ("ppd", 1.0, "2+"))
    assert point["num_runs"] == 3
    assert point["metrics"]["ttft_ms.mean"]["ci95_half_width"] > 0
    assert point["metrics"]["ttft_ms.p99"] is None and point["null_runs"]["ttft_ms.p99"] == 3
    assert merged["inputs"][0]["config"]["modes"] == ["pd", "ppd"]
    assert f"wrote {out / 'summary.md'}" in capsys.readouterr().out
