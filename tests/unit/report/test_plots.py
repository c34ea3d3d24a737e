"""Every plot is drawn as a readable PNG, for full data and for awkward data shapes."""

from __future__ import annotations

import itertools
import struct
from pathlib import Path
from typing import Any

import pytest

from fixtures.results.synthetic import result_file
from ppd.report.build import build_report
from ppd.report.crossover import analyze
from ppd.report.inputs import read_result_file
from ppd.report.merge import MergedResults
from ppd.report.plots import PLOT_FILES, _missing_p99_note, write_plots

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
    note = _missing_p99_note({(0.5, 1.0): ["PD", "PPD"], (0.5,): ["PD"]}, 2)
    assert note.splitlines() == [
        "No P99 where a point had < 100 requests",
        "even over all turns (not drawn):",
        "QPS 0.5, 1 (all modes)",
        "QPS 0.5 (PD)",
    ]


def _overlapping_texts(fig: Any) -> list[tuple[str, str]]:
    """Pairs of texts (annotations, notes, footer, legends, title) whose drawn boxes overlap."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [
        (t.get_text(), t.get_window_extent(renderer)) for ax in fig.axes if ax.get_visible() for t in ax.texts
    ]
    boxes += [(t.get_text(), t.get_window_extent(renderer)) for t in fig.texts if t.get_text()]
    boxes += [("legend", legend.get_window_extent(renderer)) for legend in fig.legends]
    return [
        (first, second)
        for (first, box), (second, other) in itertools.combinations(boxes, 2)
        if box.overlaps(other)
    ]


def test_no_text_of_any_plot_overlaps_another(
    paired_rows_merged: MergedResults, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from matplotlib.figure import Figure

    overlaps: dict[str, list[tuple[str, str]]] = {}

    def checked_savefig(fig: Figure, path: Any, **kwargs: Any) -> None:
        # The texts' boxes are measured on the laid-out figure; writing the PNG as well would draw
        # it a second time (the other tests check the files).
        overlaps[Path(path).name] = _overlapping_texts(fig)

    monkeypatch.setattr(Figure, "savefig", checked_savefig)
    files = write_plots(paired_rows_merged, tmp_path)
    assert sorted(overlaps) == sorted(p.name for p in files)
    assert overlaps == {name: [] for name in overlaps}


def test_ratio_intervals_stay_positive(paired_rows_merged: MergedResults) -> None:
    analysis = analyze(paired_rows_merged)
    lows = [
        low
        for a in analysis["analyses"]
        for p in a["pairs"]
        for low in p["ratio_ci95_low"]
        if low is not None
    ]
    assert lows and min(lows) > 0


def test_an_empty_panel_saves(tmp_path: Path) -> None:
    """A one-turn trace (Azure) has no turns 2+: its ratio panels are empty and must still render."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ppd.report.figure import finish_qps_axes

    fig, ax = plt.subplots()
    ax.plot([], [], label="pd")  # draw_series of a mode without points
    ax.axhline(1.0, color="black", linewidth=0.8)  # as every ratio panel draws
    ax.text(0.5, 0.5, "No turn-2+ TTFT for two modes at the same QPS", transform=ax.transAxes)
    finish_qps_axes(ax, "W: turn-2+ TTFT", "ratio", [], [])
    fig.savefig(tmp_path / "empty.png")
    plt.close(fig)
    assert png_size(tmp_path / "empty.png")[0] > 0
