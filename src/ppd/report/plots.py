"""The report's six PNG plots, drawn from merged points (matplotlib, Agg backend, no display needed).

Every plot: one panel per workload, offered QPS on a log axis, one line per mode with error bars
of the 95% CI across runs (none for a single run), and a title saying what is compared.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ppd.report.crossover import MetricChoice, best_by_qps, find_crossings, pair_differences
from ppd.report.figure import (
    ModeStyle,
    SeriesPoint,
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
from ppd.report.stats import ratio_half_width

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


def plot_metric(
    plt: Any, merged: MergedResults, styles: dict[str, ModeStyle], path: Path, spec: MetricPlot
) -> Path:
    """One metric of one turn group vs QPS, a line per mode, a panel per workload."""
    fig, panels = panel_grid(plt, merged.workloads())
    for workload, (ax,) in panels.items():
        values = []
        for mode in merged.modes():
            series = merged.series(workload, mode, spec.turn_group, spec.metric)
            points = series_points(series, spec.scale)
            draw_series(ax, points, styles[mode], mode_label(mode))
            values += [p.value for p in points]
        if spec.y_limits is not None:
            ax.set_ylim(*spec.y_limits)
        log_y_values = values if spec.log_y_if_wide else ()
        finish_qps_axes(ax, workload, spec.y_label, merged.qps_values(workload), log_y_values)
    direction = "higher is better" if spec.higher_is_better else "lower is better"
    title = f"{spec.what}: {modes_title(merged.modes())} ({direction}; error bars: 95% CI across runs)"
    return save(fig, plt, path, title)


def plot_p99_ttft(plt: Any, merged: MergedResults, styles: dict[str, ModeStyle], path: Path) -> Path:
    """P99 TTFT vs QPS, turn 1 dashed and turns 2+ solid; points whose runs lack a P99 are left out."""
    fig, panels = panel_grid(plt, merged.workloads())
    for workload, (ax,) in panels.items():
        values: list[float] = []
        missing: dict[tuple[str, tuple[float, ...]], list[str]] = {}
        for mode in merged.modes():
            for turn_group, turns, line in _TURN_LINES:
                series = merged.series(workload, mode, turn_group, "ttft_ms.p99")
                points = series_points(series)
                if points:
                    draw_series(ax, points, styles[mode], f"{mode_label(mode)} {turns}", **line)
                    values += [p.value for p in points]
                gaps = tuple(qps for qps, estimate in series if estimate is None)
                if gaps:
                    missing.setdefault((turns, gaps), []).append(mode_label(mode))
        if missing:
            note_in_panel(ax, _missing_p99_note(missing, len(merged.modes())), centred=not values)
        finish_qps_axes(ax, workload, "P99 TTFT (ms)", merged.qps_values(workload), values)
    title = (
        f"P99 time to first token vs load: {modes_title(merged.modes())}\n"
        "(lower is better; dashed: turn 1, solid: turns 2+; error bars: 95% CI across runs)"
    )
    return save(fig, plt, path, title)


def _missing_p99_note(missing: dict[tuple[str, tuple[float, ...]], list[str]], num_modes: int) -> str:
    lines = ["No P99 where a run had < 100 requests (not drawn):"]
    for (turns, gaps), modes in missing.items():
        who = "all modes" if len(modes) == num_modes else ", ".join(modes)
        lines.append(f"{turns} at QPS {', '.join(qps_label(q) for q in gaps)} ({who})")
    return "\n".join(lines)


def plot_ratio_crossover(plt: Any, merged: MergedResults, styles: dict[str, ModeStyle], path: Path) -> Path:
    """Each mode's metric divided by the best mode's at that QPS; vertical lines where the best changes."""
    workloads = merged.workloads()
    fig, panels = panel_grid(plt, workloads, rows_per_name=len(RATIO_METRICS))
    for workload in workloads:
        for ax, choice in zip(panels[workload], RATIO_METRICS, strict=True):
            _draw_ratio_panel(ax, merged, styles, workload, choice)
    title = (
        f"Each mode relative to the best mode at each load: {modes_title(merged.modes())}\n"
        "(1.0 = best; dotted lines: where the best mode changes, shaded: its 95% interval)"
    )
    return save(fig, plt, path, title)


def _draw_ratio_panel(
    ax: Any, merged: MergedResults, styles: dict[str, ModeStyle], workload: str, choice: MetricChoice
) -> None:
    best = {row["qps"]: row["mode"] for row in best_by_qps(merged, workload, choice)}
    for mode in merged.modes():
        points: list[SeriesPoint] = []
        for qps, best_mode in best.items():
            mine = merged.estimate(workload, mode, qps, choice.turn_group, choice.metric)
            theirs = merged.estimate(workload, best_mode, qps, choice.turn_group, choice.metric)
            if mine is None or theirs is None or theirs.mean <= 0:
                continue
            half_width = None if mode == best_mode else ratio_half_width(mine, theirs)
            points.append(SeriesPoint(qps, mine.mean / theirs.mean, half_width))
        if points:
            draw_series(ax, points, styles[mode], mode_label(mode))
    ax.axhline(1.0, color="black", linewidth=0.8)
    _mark_best_changes(ax, merged, workload, choice, list(best.items()))
    if not best:
        note_in_panel(ax, f"No {choice.label} for two modes at the same QPS")
    finish_qps_axes(ax, f"{workload}: {choice.label}", "Relative to the best mode (×)", list(best))


def _mark_best_changes(
    ax: Any, merged: MergedResults, workload: str, choice: MetricChoice, best: list[tuple[float, str]]
) -> None:
    for (_, before), (qps_after, after) in itertools.pairwise(best):
        if before == after:
            continue
        diffs = pair_differences(merged, workload, before, after, choice)
        for crossing in find_crossings(diffs, before, after):
            if crossing.bracket_qps[1] != qps_after:
                continue
            ax.axvline(crossing.qps, color="gray", linestyle=":", linewidth=1.5)
            if crossing.qps_low is not None and crossing.qps_high is not None:
                ax.axvspan(crossing.qps_low, crossing.qps_high, color="gray", alpha=0.12)
            ax.annotate(
                crossing_label(crossing).replace(" at ", "\n@ ").replace(" (", " QPS\n("),
                xy=(crossing.qps, 1.0), xytext=(4, 12), textcoords="offset points", fontsize=8,
            )  # fmt: skip


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
                x, estimate.mean, width, yerr=estimate.half_width, capsize=3,
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
        "(higher is better; error bars: 95% CI across runs)"
    )
    return save(fig, plt, path, title)
