"""Drawing helpers shared by the report's plots: panel grids, mode styles, series with 95% error bars.

matplotlib is imported by the caller (ppd.report.plots) with the Agg backend selected first.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ppd.report.labels import mode_label, qps_label
from ppd.report.stats import Estimate

QPS_AXIS_LABEL = "Offered load (conversations/s, log scale)"
_KNOWN_STYLES = {
    "pd": ("#1f77b4", "s"),
    "ppd": ("#2ca02c", "o"),
    "replication": ("#d62728", "^"),
    "auto": ("#9467bd", "D"),
}
_OTHER_COLORS = ("#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
_OTHER_MARKERS = ("v", "P", "X", "*", "h", "<")


@dataclass(frozen=True)
class ModeStyle:
    """How one mode is drawn in every plot."""

    color: str
    marker: str


def mode_styles(modes: Sequence[str]) -> dict[str, ModeStyle]:
    """A fixed color and marker per known mode; others take the next free ones."""
    styles = {}
    others = 0
    for mode in modes:
        if mode in _KNOWN_STYLES:
            styles[mode] = ModeStyle(*_KNOWN_STYLES[mode])
        else:
            index = others % len(_OTHER_COLORS)
            styles[mode] = ModeStyle(_OTHER_COLORS[index], _OTHER_MARKERS[index])
            others += 1
    return styles


def modes_title(modes: Sequence[str]) -> str:
    """'PD vs PPD vs Replication'."""
    return " vs ".join(mode_label(m) for m in modes)


def panel_grid(plt: Any, names: Sequence[str], rows_per_name: int = 1) -> tuple[Any, dict[str, list[Any]]]:
    """Panels per name in a grid 2 wide (1 for one name, 3 beyond 4); each name a column of rows_per_name."""
    num_cols = 1 if len(names) == 1 else 2 if len(names) <= 4 else 3
    num_rows = math.ceil(len(names) / num_cols) * rows_per_name
    fig, axes = plt.subplots(
        num_rows,
        num_cols,
        figsize=(6.5 * num_cols, 4.8 * num_rows + 1.0),
        squeeze=False,
        layout="constrained",
    )
    panels: dict[str, list[Any]] = {}
    for index, name in enumerate(names):
        block_row, col = divmod(index, num_cols)
        panels[name] = [axes[block_row * rows_per_name + r][col] for r in range(rows_per_name)]
    used = {id(ax) for column in panels.values() for ax in column}
    for ax in axes.flat:
        if id(ax) not in used:
            ax.set_visible(False)
    return fig, panels


@dataclass(frozen=True)
class SeriesPoint:
    """One QPS point of a plotted line: the value and its 95% interval (None: no interval)."""

    qps: float
    value: float
    low: float | None = None
    high: float | None = None


def series_points(series: Sequence[tuple[float, Estimate | None]], scale: float = 1.0) -> list[SeriesPoint]:
    """The points that have an estimate, scaled (e.g. 100 for percent); null points are left out."""
    return [
        SeriesPoint(
            qps,
            e.mean * scale,
            None if e.ci_low is None else e.ci_low * scale,
            None if e.ci_high is None else e.ci_high * scale,
        )
        for qps, e in series
        if e is not None
    ]


def dodge(index: int, count: int) -> float:
    """The factor that moves the index-th of count modes sideways on a log QPS axis (±~4%), so
    error bars of modes with close values stay apart."""
    return math.exp((index - (count - 1) / 2) * 0.03) if count > 1 else 1.0


def draw_series(
    ax: Any, points: Sequence[SeriesPoint], style: ModeStyle, label: str, x_factor: float = 1.0, **line: Any
) -> None:
    """A line with markers and asymmetric 95% error bars (none where a point has no interval)."""
    if not points:
        ax.plot([], [], color=style.color, marker=style.marker, label=label, **line)
        return
    xs = [p.qps * x_factor for p in points]
    ys = [p.value for p in points]
    # No interval: draw no bar rather than a zero-length one that reads as certainty. A percentile
    # interval may sit beside its point estimate (a P99's), hence the clamp at 0.
    errors = None
    if any(p.low is not None for p in points):
        errors = [
            [max(0.0, p.value - p.low) if p.low is not None else 0.0 for p in points],
            [max(0.0, p.high - p.value) if p.high is not None else 0.0 for p in points],
        ]
    ax.errorbar(
        xs, ys, yerr=errors, color=style.color, marker=style.marker, markersize=6,
        linewidth=1.8, capsize=3, label=label, **line,
    )  # fmt: skip


def finish_qps_axes(
    ax: Any, title: str, y_label: str, qps_values: Sequence[float], values: Sequence[float] = ()
) -> None:
    """Log-scale QPS axis ticked at the measured QPS, labels, grid; log y when values (given) span > 20x."""
    if qps_values:  # an empty panel (e.g. turns 2+ of one-turn traces) keeps a linear axis: log needs data
        ax.set_xscale("log")
        ax.set_xlim(min(qps_values) / 1.4, max(qps_values) * 1.4)
        ax.set_xticks(list(qps_values), [qps_label(q) for q in qps_values])
        ax.minorticks_off()
    ax.set_xlabel(QPS_AXIS_LABEL)
    ax.set_ylabel(y_label)
    ax.set_title(title, fontsize=12, fontweight="bold")
    positive = [v for v in values if v > 0]
    if positive and len(positive) == len(values) and max(positive) / min(positive) > 20:
        _plain_log_y(ax)
    ax.grid(True, alpha=0.3)


def _plain_log_y(ax: Any) -> None:
    """Log y (latency past saturation spans decades) with ticks written 20, 100, 500, not 2×10¹."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_yscale("log")
    # 1-2-5 steps: a panel spanning one or two decades still gets several labelled ticks.
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def legend_handles(axes: Sequence[Any]) -> dict[str, Any]:
    """Every label drawn in any panel, once, with its first handle."""
    handles: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    return handles


def figure_legend(fig: Any, handles: dict[str, Any], top_y: float | None = None) -> None:
    """One legend for the whole figure: below the panels (constrained layout makes room), or with
    its top at figure fraction top_y (in a strip the layout leaves free)."""
    if not handles:
        return
    where: dict[str, Any] = {"loc": "outside lower center"}
    if top_y is not None:
        where = {"loc": "upper center", "bbox_to_anchor": (0.5, top_y)}
    fig.legend(
        list(handles.values()), list(handles), ncol=_legend_columns(len(handles)), fontsize=10,
        frameon=False, **where,
    )  # fmt: skip


def _legend_columns(count: int) -> int:
    """Up to 5 entries on one row; more in rows of equal length (8 → 4 + 4, 12 → 4 × 3)."""
    if count <= 5:
        return count
    return 4 if count % 4 == 0 or count > 10 else math.ceil(count / 2)


def note_in_panel(ax: Any, text: str, centred: bool = True) -> None:
    """A grey note on a panel for what could not be drawn and why: centred, or top left over data."""
    x, y, ha, va = (0.5, 0.5, "center", "center") if centred else (0.02, 0.98, "left", "top")
    ax.text(
        x, y, text, transform=ax.transAxes, ha=ha, va=va, fontsize=8, color="dimgray",
        bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "lightgray", "alpha": 0.85},
    )  # fmt: skip


FOOTER_LINE_IN = 0.2  # height of one footer line at fontsize 9, inches
LEGEND_ROW_IN = 0.3  # height of one legend row at fontsize 10, inches
TITLE_FONT_PT = 14
AVERAGE_CHAR_EM = 0.55  # DejaVu Sans: an average character is ~0.55 of the font size wide


def wrap_to_width(text: str, width_in: float, font_pt: float) -> str:
    """Each line of text wrapped at word boundaries to fit width_in inches at font_pt points."""
    max_chars = max(20, int(width_in * 72 / (font_pt * AVERAGE_CHAR_EM)) - 2)
    return "\n".join(textwrap.fill(line, max_chars) for line in text.splitlines())


def save(fig: Any, plt: Any, path: Path, title: str, footer: Sequence[str] = ()) -> Path:
    """Title the figure, add the shared legend below the panels and the footer lines below that
    (details that would crowd the panels), save it as PNG and free it.

    Figures use matplotlib's constrained layout, which keeps the title and the legend clear of the
    panels. With a footer, the figure grows by a strip below the layout's area that holds the
    legend and then the footer, so neither can run into the other or into a panel.
    """
    handles = legend_handles([ax for ax in fig.axes if ax.get_visible()])
    fig.suptitle(wrap_to_width(title, fig.get_size_inches()[0], TITLE_FONT_PT), fontsize=TITLE_FONT_PT)
    if not footer:
        figure_legend(fig, handles)
    else:
        width_in, height_in = fig.get_size_inches()
        legend_rows = math.ceil(len(handles) / _legend_columns(len(handles))) if handles else 0
        legend_in = LEGEND_ROW_IN * legend_rows + 0.15
        footer_in = FOOTER_LINE_IN * len(footer) + 0.25
        total_in = height_in + legend_in + footer_in
        fig.set_size_inches(width_in, total_in)
        strip_fraction = (legend_in + footer_in) / total_in
        fig.get_layout_engine().set(rect=(0.0, strip_fraction, 1.0, 1.0 - strip_fraction))
        figure_legend(fig, handles, top_y=strip_fraction)
        fig.text(
            0.01, footer_in / total_in, "\n".join(footer), ha="left", va="top", fontsize=9, linespacing=1.5,
        )  # fmt: skip
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
