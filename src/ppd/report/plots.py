"""The report's six PNG plots, drawn from merged points (matplotlib, Agg backend, no display needed).

Every plot: one panel per workload, offered QPS on a log axis, one line per mode (nudged sideways
a little so that close error bars stay apart) with error bars of the 95% interval (none where a
point has none), and a title saying what is compared and how the intervals were made.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ppd.report.crossover import Crossing, MetricChoice, best_by_qps, find_crossings, pair_differences
from ppd.report.figure import (
    ModeStyle,
    SeriesPoint,
    dodge,
    draw_series,
    finish_qps_axes,
    mode_styles,
    modes_title,
    note_in_panel,
    panel_grid,
    save,
    series_points,
)
from ppd.report.labels import crossing_label, mode_label, number, qps_label
from ppd.report.merge import MergedResults
from ppd.report.stats import Estimate, compare

PLOT_FILES = (
    "qps_p99_ttft.png",
    "qps_avg_e2e.png",
    "qps_ratio_crossover.png",
    "qps_success_rate.png",
    "qps_throughput.png",
    "qps_throughput_comparison.png",
)
RATIO_METRICS = (
    MetricChoice("2+", "ttft_ms.mean", "mean TTFT, turns 2+", "ms"),
    MetricChoice("all", "e2e_ms.mean", "mean E2E latency, all turns", "ms"),
)
_TURN_LINES: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("1", "turn 1", {"linestyle": "--", "markerfacecolor": "none"}),
    ("2+", "turns 2+", {}),
)


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (files only; works without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@dataclass(frozen=True)
class MetricPlot:
    """One metric of one turn group against QPS: what to read and how to label it."""

    turn_group: str
    metric: str
    y_label: str
    what: str
    higher_is_better: bool
    scale: float = 1.0  # 100 for a fraction shown in percent
    log_y_if_wide: bool = False  # latencies past saturation span decades
    y_limits: tuple[float, float] | None = None


E2E_PLOT = MetricPlot("all", "e2e_ms.mean", "Mean E2E latency (ms)", "Mean end-to-end latency vs load",
                      higher_is_better=False, log_y_if_wide=True)  # fmt: skip
SUCCESS_PLOT = MetricPlot("all", "success_rate", "Successful requests (%)", "Success rate vs load",
                          higher_is_better=True, scale=100.0, y_limits=(0.0, 105.0))  # fmt: skip
THROUGHPUT_PLOT = MetricPlot("all", "output_throughput_tps", "Output throughput (tokens/s)",
                             "Output token throughput vs load", higher_is_better=True)  # fmt: skip


def write_plots(merged: MergedResults, out_dir: Path) -> list[Path]:
    """Draw all six plots into out_dir; returns their paths."""
    plt = pyplot()
    styles = mode_styles(merged.modes())
    return [
        plot_p99_ttft(plt, merged, styles, out_dir / PLOT_FILES[0]),
        plot_metric(plt, merged, styles, out_dir / PLOT_FILES[1], E2E_PLOT),
        plot_ratio_crossover(plt, merged, styles, out_dir / PLOT_FILES[2]),
        plot_metric(plt, merged, styles, out_dir / PLOT_FILES[3], SUCCESS_PLOT),
        plot_metric(plt, merged, styles, out_dir / PLOT_FILES[4], THROUGHPUT_PLOT),
        plot_throughput_bars(plt, merged, styles, out_dir / PLOT_FILES[5]),
    ]


def interval_phrase(merged: MergedResults) -> str:
    """How this report's error bars were made, for plot titles."""
    from_rows = {point.from_rows for point in merged.points.values()}
    if from_rows == {True}:
        return "error bars: 95% CI, conversation bootstrap"
    if from_rows == {False}:
        return "error bars: 95% CI across runs, none for one run"
    return "error bars: 95% CI, conversation bootstrap, or across runs where rows are absent"


def plot_metric(
    plt: Any, merged: MergedResults, styles: dict[str, ModeStyle], path: Path, spec: MetricPlot
) -> Path:
    """One metric of one turn group vs QPS, a line per mode, a panel per workload."""
    fig, panels = panel_grid(plt, merged.workloads())
    for workload, (ax,) in panels.items():
        values = []
        modes = merged.modes()
        for index, mode in enumerate(modes):
            series = merged.series(workload, mode, spec.turn_group, spec.metric)
            points = series_points(series, spec.scale)
            draw_series(ax, points, styles[mode], mode_label(mode), dodge(index, len(modes)))
            values += [p.value for p in points]
        if spec.y_limits is not None:
            ax.set_ylim(*spec.y_limits)
        log_y_values = values if spec.log_y_if_wide else ()
        finish_qps_axes(ax, workload, spec.y_label, merged.qps_values(workload), log_y_values)
    direction = "higher is better" if spec.higher_is_better else "lower is better"
    title = f"{spec.what}: {modes_title(merged.modes())}\n({direction}; {interval_phrase(merged)})"
    return save(fig, plt, path, title)


def plot_p99_ttft(plt: Any, merged: MergedResults, styles: dict[str, ModeStyle], path: Path) -> Path:
    """P99 TTFT vs QPS, turn 1 dashed and turns 2+ solid; where a turn group has < 100 requests but
    the point has ≥ 100 over all turns, the all-turns P99 (dotted) instead; the rest left out."""
    fig, panels = panel_grid(plt, merged.workloads())
    modes = merged.modes()
    for workload, (ax,) in panels.items():
        values: list[float] = []
        missing: dict[tuple[float, ...], list[str]] = {}
        for index, mode in enumerate(modes):
            drawn = _draw_p99_lines(ax, merged, workload, mode, styles[mode], dodge(index, len(modes)))
            values += drawn
            everything = merged.series(workload, mode, "all", "ttft_ms.p99")
            gaps = tuple(qps for qps, estimate in everything if estimate is None)
            if gaps:
                missing.setdefault(gaps, []).append(mode_label(mode))
        if missing:
            note_in_panel(ax, _missing_p99_note(missing, len(modes)), centred=not values)
        finish_qps_axes(ax, workload, "P99 TTFT (ms)", merged.qps_values(workload), values)
    title = (
        f"P99 time to first token vs load: {modes_title(modes)}\n(lower is better; dashed: turn 1, "
        "solid: turns 2+, dotted with grey markers: all turns\nwhere a turn group has < 100 requests; "
        f"{interval_phrase(merged)})"
    )
    return save(fig, plt, path, title)


def _draw_p99_lines(
    ax: Any, merged: MergedResults, workload: str, mode: str, style: ModeStyle, x_factor: float
) -> list[float]:
    """A mode's P99 lines on one panel; returns the values drawn."""
    by_group = {
        group: dict(merged.series(workload, mode, group, "ttft_ms.p99")) for group in ("1", "2+", "all")
    }
    values = []
    for turn_group, turns, line in _TURN_LINES:
        points = series_points(list(by_group[turn_group].items()))
        if points:
            draw_series(ax, points, style, f"{mode_label(mode)} {turns}", x_factor, **line)
            values += [p.value for p in points]
    short = [q for q, e in by_group["all"].items() if any(by_group[g].get(q) is None for g in ("1", "2+"))]
    fallback = series_points([(q, by_group["all"][q]) for q in short])
    if fallback:
        label = f"{mode_label(mode)} all turns"
        draw_series(ax, fallback, style, label, x_factor, linestyle=":", markerfacecolor="lightgray")
        values += [p.value for p in fallback]
    return values


def _missing_p99_note(missing: dict[tuple[float, ...], list[str]], num_modes: int) -> str:
    lines = ["No P99 where a point had < 100 requests", "even over all turns (not drawn):"]
    for gaps, modes in missing.items():
        who = "all modes" if len(modes) == num_modes else ", ".join(modes)
        lines.append(f"QPS {', '.join(qps_label(q) for q in gaps)} ({who})")
    return "\n".join(lines)


def plot_ratio_crossover(plt: Any, merged: MergedResults, styles: dict[str, ModeStyle], path: Path) -> Path:
    """Each mode's metric divided by the best mode's at that QPS, with paired ratio intervals; grey
    bands where the best is a tie; numbered lines where the significant best changes (listed below)."""
    workloads = merged.workloads()
    fig, panels = panel_grid(plt, workloads, rows_per_name=len(RATIO_METRICS))
    footer: list[str] = []
    for workload in workloads:
        for ax, choice in zip(panels[workload], RATIO_METRICS, strict=True):
            _draw_ratio_panel(ax, merged, styles, workload, choice, footer)
    title = (
        f"Each mode relative to the lowest mode at each load: {modes_title(merged.modes())}\n"
        "(1.0 = lowest; error bars: 95% CI of the ratio; grey band: tie for lowest;\n"
        "numbered dotted lines: where the significantly lowest mode changes, shaded: its 95% interval)"
    )
    if footer:
        footer.insert(0, "Where the significantly best mode changes (QPS, 95% interval):")
    return save(fig, plt, path, title, footer)


def _draw_ratio_panel(
    ax: Any,
    merged: MergedResults,
    styles: dict[str, ModeStyle],
    workload: str,
    choice: MetricChoice,
    footer: list[str],
) -> None:
    rows = best_by_qps(merged, workload, choice)
    modes = merged.modes()
    values: list[float] = []
    for index, mode in enumerate(modes):
        points = _ratio_points(merged, workload, mode, choice, rows)
        draw_series(ax, points, styles[mode], mode_label(mode), dodge(index, len(modes)))
        values += [p.value for p in points] + [p.high for p in points if p.high is not None]
    ax.axhline(1.0, color="black", linewidth=0.8)
    qps_values = [row["qps"] for row in rows]
    _mark_ties(ax, merged, workload, choice, rows, qps_values)
    _mark_best_changes(ax, merged, workload, choice, rows, footer)
    if not rows:
        note_in_panel(ax, f"No {choice.label} for two modes at the same QPS")
    finish_qps_axes(ax, f"{workload}: {choice.label}", "Relative to the lowest mode (×)", qps_values, values)


def _ratio_points(
    merged: MergedResults, workload: str, mode: str, choice: MetricChoice, rows: list[dict[str, Any]]
) -> list[SeriesPoint]:
    """mode / lowest at each QPS, with the (paired, where possible) 95% interval of the ratio."""
    points = []
    for row in rows:
        mine = merged.estimate(workload, mode, row["qps"], choice.turn_group, choice.metric)
        lowest = merged.estimate(workload, row["mode"], row["qps"], choice.turn_group, choice.metric)
        if mine is None or lowest is None or lowest.mean <= 0:
            continue
        if mode == row["mode"]:
            points.append(SeriesPoint(row["qps"], 1.0))
            continue
        comparison = compare(mine, lowest)
        if comparison.ratio is not None:
            points.append(
                SeriesPoint(row["qps"], comparison.ratio, comparison.ratio_low, comparison.ratio_high)
            )
    return points


def _mark_ties(
    ax: Any,
    merged: MergedResults,
    workload: str,
    choice: MetricChoice,
    rows: list[dict[str, Any]],
    qps_values: list[float],
) -> None:
    """A grey band at each QPS where the best is a tie, up to the highest interval end of the tied."""
    for row in rows:
        if row["best"] != "tie":
            continue
        lowest = merged.estimate(workload, row["mode"], row["qps"], choice.turn_group, choice.metric)
        tops = [1.0]
        for mode in row["tied_with"]:
            mine = merged.estimate(workload, mode, row["qps"], choice.turn_group, choice.metric)
            if mine is not None and lowest is not None:
                comparison = compare(mine, lowest)
                tops.append(comparison.ratio_high or comparison.ratio or 1.0)
        low_x, high_x = _neighbourhood(row["qps"], qps_values)
        ax.fill_between(
            [low_x, high_x], 1.0, max(tops), color="gray", alpha=0.25, linewidth=0,
            label="tie for lowest (95% CI of the difference contains 0)",
        )  # fmt: skip


def _neighbourhood(qps: float, qps_values: list[float]) -> tuple[float, float]:
    """A third of the way (in log QPS) to each neighbouring measured QPS (or ×1.15 at the ends)."""
    index = qps_values.index(qps)
    below = qps_values[index - 1] if index > 0 else qps / 1.5
    above = qps_values[index + 1] if index + 1 < len(qps_values) else qps * 1.5
    return qps * (below / qps) ** (1 / 3), qps * (above / qps) ** (1 / 3)


def _mark_best_changes(
    ax: Any,
    merged: MergedResults,
    workload: str,
    choice: MetricChoice,
    rows: list[dict[str, Any]],
    footer: list[str],
) -> None:
    """A numbered dotted line (and its shaded 95% interval) where the significantly best mode changes."""
    decided = [row for row in rows if row["best"] != "tie" and not row["untested"]]
    placed: list[float] = []  # ln(QPS) of the tags drawn on this panel
    span = math.log(rows[-1]["qps"] * 1.4) - math.log(rows[0]["qps"] / 1.4) if rows else 1.0
    for before, after in itertools.pairwise(decided):
        if before["best"] == after["best"]:
            continue
        crossing = _crossing_between(merged, workload, choice, before, after)
        if crossing is None:
            continue
        number_tag = len([line for line in footer if line.startswith("[")]) + 1
        ax.axvline(crossing.qps, color="dimgray", linestyle=":", linewidth=1.5)
        if crossing.has_interval:
            ax.axvspan(crossing.qps_low, crossing.qps_high, color="orange", alpha=0.12, linewidth=0)
        # Tags closer than 8% of the axis to an earlier one go a line lower, so none overlaps.
        close = sum(abs(math.log(crossing.qps) - x) < 0.08 * span for x in placed)
        placed.append(math.log(crossing.qps))
        ax.annotate(
            f"[{number_tag}]", xy=(crossing.qps, 1.0), xycoords=("data", "axes fraction"),
            xytext=(0, -3 - 13 * close), textcoords="offset points", ha="center", va="top", fontsize=9,
            bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none"},
        )  # fmt: skip
        footer.append(f"[{number_tag}] {workload}, {choice.label}: {crossing_label(crossing)}")


def _crossing_between(
    merged: MergedResults, workload: str, choice: MetricChoice, before: dict[str, Any], after: dict[str, Any]
) -> Crossing | None:
    """The crossing of the two best modes between the QPS where each was significantly best."""
    diffs = pair_differences(merged, workload, before["best"], after["best"], choice)
    for crossing in find_crossings(diffs, before["best"], after["best"]):
        if before["qps"] <= crossing.qps <= after["qps"]:
            return crossing
    return None


def plot_throughput_bars(plt: Any, merged: MergedResults, styles: dict[str, ModeStyle], path: Path) -> Path:
    """Output token throughput per mode at each workload's highest QPS that every mode measured."""
    workloads, modes = merged.workloads(), merged.modes()
    fig, ax = plt.subplots(
        figsize=(max(7.0, 2.2 * len(workloads) * max(1, len(modes)) / 2), 5.5), layout="constrained"
    )
    width = 0.8 / max(1, len(modes))
    tick_labels, labelled = [], set()
    for index, workload in enumerate(workloads):
        common = set.intersection(*(set(merged.qps_values(workload, m)) for m in modes))
        peak = max(common) if common else None
        tick_labels.append(f"{workload}\n(QPS {qps_label(peak)})" if peak else f"{workload}\n(no common QPS)")
        if peak is None:
            continue
        for offset, mode in enumerate(modes):
            estimate = merged.estimate(workload, mode, peak, "all", "output_throughput_tps")
            if estimate is None:
                continue
            x = index + (offset - (len(modes) - 1) / 2) * width
            bar = ax.bar(
                x, estimate.mean, width, yerr=_bar_error(estimate), capsize=3,
                color=styles[mode].color, label=None if mode in labelled else mode_label(mode),
            )  # fmt: skip
            labelled.add(mode)
            ax.bar_label(bar, labels=[number(estimate.mean)], fontsize=8, padding=2)
    ax.set_xticks(range(len(workloads)), tick_labels)
    ax.set_xlabel("Workload (at its highest QPS measured by every mode)")
    ax.set_ylabel("Output throughput (tokens/s)")
    ax.grid(True, axis="y", alpha=0.3)
    title = (
        f"Throughput at peak common load: {modes_title(modes)}\n"
        f"(higher is better; error bars: 95% CI across runs, none for one run)"
    )
    return save(fig, plt, path, title)


def _bar_error(estimate: Estimate) -> list[list[float]] | None:
    if estimate.ci_low is None or estimate.ci_high is None:
        return None
    return [[max(0.0, estimate.mean - estimate.ci_low)], [max(0.0, estimate.ci_high - estimate.mean)]]
