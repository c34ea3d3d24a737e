"""Every plot is drawn as a readable PNG, for full data and for awkward data shapes."""

from __future__ import annotations

import struct
from pathlib import Path

from fixtures.results.synthetic import result_file
from ppd.report.build import build_report
from ppd.report.inputs import read_result_file
from ppd.report.plots import PLOT_FILES, _missing_p99_note

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; fails on anything that is not a PNG."""
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE, f"{path.name} is not a PNG"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_all_six_plots_for_four_modes(tmp_path: Path) -> None:
    inputs = [
        read_result_file(result_file(tmp_path, "three", ("pd", "ppd", "replication"))),
        read_result_file(result_file(tmp_path, "auto", ("auto",))),
    ]
    files = build_report(inputs, tmp_path / "out")
    assert [p.name for p in files.plots] == list(PLOT_FILES)
    for path in files.plots:
        width, height = png_size(path)
        assert width >= 600 and height >= 400, path.name
        assert path.stat().st_size > 20_000, path.name


def test_plots_survive_single_runs_no_p99_odd_modes_and_many_workloads(tmp_path: Path) -> None:
    source = result_file(
        tmp_path, "odd", ("", "custom"), workloads=("W1", "W2", "W3", "W4", "chat.json"),
        qps_values=(0.1, 0.2), offsets=(0.0,), ttft=lambda mode, qps: 100.0 + qps,
    )  # fmt: skip
    files = build_report([read_result_file(source)], tmp_path / "out")
    for path in files.plots:
        assert png_size(path)[0] >= 600, path.name


def test_missing_p99_note_names_the_qps_and_who() -> None:
    note = _missing_p99_note({("turns 2+", (0.5, 1.0)): ["PD", "PPD"], ("turn 1", (0.5,)): ["PD"]}, 2)
    assert note.splitlines() == [
        "No P99 where a point had < 100 requests (not drawn):",
        "turns 2+ at QPS 0.5, 1 (all modes)",
        "turn 1 at QPS 0.5 (PD)",
    ]
