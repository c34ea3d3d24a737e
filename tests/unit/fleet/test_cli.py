"""`ppd fleet` on the command line: a result set for every point, clear errors for bad flags."""

import json
from pathlib import Path

import pytest

from ppd.cli import main


def test_fleet_writes_a_result_set_with_every_point(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    toml = tmp_path / "mixed.toml"
    toml.write_text(
        '[[instance]]\nport = 8100\nrole = "prefill"\n'
        '[[instance]]\nport = 8200\nrole = "decode"\n'
        '[[instance]]\nport = 8300\nrole = "replica"\n'
    )
    argv = ["fleet", "--topology", str(toml), "--modes", "ppd,replication", "--workload", "W1,64/8"]
    argv += [
        "--qps",
        "1",
        "--duration",
        "5",
        "--api",
        "chat",
        "--output",
        str(tmp_path),
        "--name",
        "f",
        "--quiet",
    ]
    assert main(argv) == 0
    meta = json.loads((tmp_path / "f.json").read_text())
    points = {(run["mode"], run["workload"]) for run in meta["runs"]}
    assert points == {(m, w) for m in ("ppd", "replication") for w in ("W1", "64x8")}
    assert meta["backend"] == "fleet" and meta["config"]["api"] == "chat"
    assert "results in" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--topology", "2r", "--modes", "ppd"], "needs prefill and decode"),
        (["--topology", "1p1d", "--modes", "fast"], "not one of"),
        (["--topology", "1p1d", "--qps", "0"], "qps"),
        (["--topology", "1p1d", "--hops", "/nonexistent.json"], "--hops"),
        (["--topology", "1p1d", "--proxy-cpu", "/nonexistent.json"], "--proxy-cpu"),
        (["--topology", "1p1d", "--proxy-processes", "0"], "--proxy-processes must be >= 1"),
        (["--topology", "1p1d", "--profile", "nope"], "no profile"),
        (["--topology", "1p1d", "--history-chunk-bytes", "0"], "--history-chunk-bytes must be >= 1"),
        (["--topology", "1p1d", "--history-keyed-bytes", "100"], "--history-keyed-bytes (100) must be"),
    ],
)
def test_bad_flags_are_one_line_errors(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["fleet", *flags, "--duration", "1"]) == 2
    assert message in capsys.readouterr().err


def test_chunk_recognition_flags_reach_the_fleets_router() -> None:
    from ppd.cli import build_parser
    from ppd.fleet.cli import build_configs
    from ppd.fleet.clock import EventQueue
    from ppd.fleet.fleet import Fleet

    argv = ["fleet", "--topology", "1p1d", "--modes", "ppd", "--no-session-id"]
    argv += ["--history-chunk-bytes", "512", "--history-chunks-per-instance", "100"]
    argv += ["--history-keyed-bytes", "8192"]
    [config] = build_configs(build_parser().parse_args(argv))
    chunks = Fleet(config, EventQueue()).router.conversations.chunks
    assert (chunks.chunk_bytes, chunks.max_chunks, chunks.keyed_bytes) == (512, 200, 8192)


def test_a_hops_file_is_labelled_by_its_path_and_its_costs_must_be_numbers(tmp_path: Path) -> None:
    from ppd.errors import UsageError
    from ppd.fleet.config import hops_from_spec

    good = tmp_path / "hops.json"
    good.write_text('{"proxy_to_engine_ms": 1.5}')
    hops = hops_from_spec(str(good))
    assert hops.proxy_to_engine_ms == 1.5
    assert hops.source == f"file: {good}"  # not the default's "zero: no HTTP path"
    bad = tmp_path / "bad.json"
    bad.write_text('{"proxy_to_engine_ms": "fast"}')
    with pytest.raises(UsageError, match="must be a number"):
        hops_from_spec(str(bad))
