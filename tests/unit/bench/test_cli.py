from __future__ import annotations

from pathlib import Path

import pytest

from ppd.bench.cli import build_config, parse_rates
from ppd.cli import build_parser
from ppd.errors import UsageError


def _config_of(*argv: str):  # type: ignore[no-untyped-def]
    return build_config(build_parser().parse_args(["bench", "--url", "http://h:1", *argv]))


def test_flags_build_the_typed_config(tmp_path: Path) -> None:
    config = _config_of(
        "--workload",
        "W2,W4",
        "--qps",
        "0.5,1",
        "--duration",
        "30",
        "--runs",
        "3",
        "--modes",
        "pd,ppd",
        "--turns",
        "4",
        "--warmup-s",
        "5",
        "--slo-ttft-ms",
        "200",
        "--output",
        str(tmp_path),
        "--api",
        "chat",
        "--no-session-id",
        "--arrivals",
        "constant",
        "--quiet",
        "--temperature",
        "0",
    )
    assert config.temperature == 0.0 and _config_of().temperature is None
    assert [w.name for w in config.workloads] == ["W2", "W4"]
    assert len(config.workloads[0].conversations[0]) == 4
    assert config.qps == (0.5, 1.0) and config.duration_s == 30.0 and config.runs == 3
    assert config.modes == ("pd", "ppd") and config.warmup_s == 5.0
    assert config.slo.ttft_ms == 200.0 and config.slo.tpot_ms is None
    assert config.api == "chat" and not config.send_session_id and not config.poisson and config.quiet
    assert config.output_dir == tmp_path


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--qps", "1,x"], "--qps"),
        (["--qps", "0"], "--qps"),
        (["--modes", "pd,fast"], "--modes: 'fast' is not one of"),
        (["--warmup-s", "60"], "warmup"),
        (["--turns", "0"], "--turns"),
        (["--workload", "nope"], "workload"),
        (["--runs", "0"], "runs"),
        (["--temperature", "-1"], "temperature"),
    ],
)
def test_bad_flags_are_usage_errors(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        _config_of(*argv)


def test_parse_rates() -> None:
    assert parse_rates("0.1, 2,16") == (0.1, 2.0, 16.0)
