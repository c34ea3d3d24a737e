"""Where the winner between two modes changes along the QPS sweep, and how sure that is.

For a workload, a lower-is-better metric and two modes a and b, let d(q) = a(q) − b(q) at every
QPS both measured (across-run means). A crossing lies between neighbouring QPS points where d
changes sign; its QPS is found by linear interpolation of d in log(QPS):

    x* = x_i + (x_{i+1} − x_i) · d_i / (d_i − d_{i+1}),   x = ln(QPS),   QPS* = e^{x*}

Uncertainty: each d has a 95% half-width h = √(h_a² + h_b²) (independent runs' CIs combined in
quadrature). The band [d − h, d + h] is interpolated the same way, and the crossing's interval is
the stretch of log(QPS) around x* where the band still contains 0: there the data cannot tell the
two modes apart. An interval reaching the end of the sweep is open on that side. With single runs
there is no CI, so no interval.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

from ppd.report.merge import MergedResults
from ppd.report.stats import Estimate, difference_half_width


@dataclass(frozen=True)
class MetricChoice:
    """A lower-is-better metric in one turn group, with how to name it for people."""

    turn_group: str
    metric: str
    label: str
    unit: str


CROSSOVER_METRICS = (
    MetricChoice("2+", "ttft_ms.mean", "mean TTFT, turns 2+", "ms"),
    MetricChoice("2+", "ttft_ms.p50", "P50 TTFT, turns 2+", "ms"),
    MetricChoice("2+", "ttft_ms.p99", "P99 TTFT, turns 2+", "ms"),
    MetricChoice("all", "e2e_ms.mean", "mean E2E latency, all turns", "ms"),
)


@dataclass(frozen=True)
class DiffPoint:
    """d = a − b at one QPS, with its 95% half-width (None without CIs)."""

    qps: float
    diff: float
    half_width: float | None


@dataclass(frozen=True)
class Crossing:
    """One change of winner between two modes, at an interpolated QPS."""

    qps: float
    bracket_qps: tuple[float, float]  # the measured QPS points either side
    winner_below: str
    winner_above: str
    qps_low: float | None  # 95% interval of the crossing; None without CIs
    qps_high: float | None
    low_open: bool  # the interval runs to the lowest measured QPS (could be lower still)
    high_open: bool

    def to_json(self) -> dict[str, Any]:
        """The JSON form in qps_crossover_analysis.json."""
        return {
            "qps": self.qps,
            "between_measured_qps": list(self.bracket_qps),
            "winner_below": self.winner_below,
            "winner_above": self.winner_above,
            "ci95_qps_low": self.qps_low,
            "ci95_qps_high": self.qps_high,
            "ci95_low_open": self.low_open,
            "ci95_high_open": self.high_open,
        }


def pair_differences(
    merged: MergedResults, workload: str, mode_a: str, mode_b: str, choice: MetricChoice
) -> list[DiffPoint]:
    """d = a − b at every QPS where both modes have the metric, sorted by QPS."""
    points = []
    for qps in merged.qps_values(workload):
        a = _estimate(merged, workload, mode_a, qps, choice)
        b = _estimate(merged, workload, mode_b, qps, choice)
        if a is not None and b is not None:
            points.append(DiffPoint(qps, a.mean - b.mean, difference_half_width(a, b)))
    return points


def _estimate(
    merged: MergedResults, workload: str, mode: str, qps: float, choice: MetricChoice
) -> Estimate | None:
    return merged.estimate(workload, mode, qps, choice.turn_group, choice.metric)


def find_crossings(diffs: list[DiffPoint], mode_a: str, mode_b: str) -> list[Crossing]:
    """Every sign change of d = a − b (a wins where d < 0), interpolated in log(QPS)."""
    signed = [(i, p) for i, p in enumerate(diffs) if p.diff != 0]
    crossings = []
    for (i, left), (j, right) in itertools.pairwise(signed):
        if (left.diff < 0) == (right.diff < 0):
            continue
        exact_ties = [p for p in diffs[i + 1 : j] if p.diff == 0]
        if exact_ties:
            qps = exact_ties[0].qps
        else:
            x = _zero_of_line(math.log(left.qps), left.diff, math.log(right.qps), right.diff)
            qps = math.exp(x)
        below, above = (mode_a, mode_b) if left.diff < 0 else (mode_b, mode_a)
        crossings.append(_with_interval(diffs, qps, (left.qps, right.qps), below, above))
    return crossings


def _zero_of_line(x0: float, y0: float, x1: float, y1: float) -> float:
    """The x where the line through (x0, y0) and (x1, y1) is 0 (y0 and y1 of opposite signs)."""
    return x0 + (x1 - x0) * y0 / (y0 - y1)


def _with_interval(
    diffs: list[DiffPoint], qps: float, bracket: tuple[float, float], below: str, above: str
) -> Crossing:
    if any(p.half_width is None for p in diffs):
        return Crossing(qps, bracket, below, above, None, None, False, False)
    xs = [math.log(p.qps) for p in diffs]
    lows = [p.diff - (p.half_width or 0.0) for p in diffs]
    highs = [p.diff + (p.half_width or 0.0) for p in diffs]
    x_star = math.log(qps)
    x_low, low_open = _band_edge(xs, lows, highs, x_star, step=-1)
    x_high, high_open = _band_edge(xs, lows, highs, x_star, step=+1)
    return Crossing(qps, bracket, below, above, math.exp(x_low), math.exp(x_high), low_open, high_open)


def _band_edge(
    xs: list[float], lows: list[float], highs: list[float], x_star: float, step: int
) -> tuple[float, bool]:
    """Walk from x* (step −1: left, +1: right) while the band contains 0; (edge x, reached the end)."""
    # The band at x* contains 0 (d(x*) = 0, h ≥ 0); the first measured point beyond x* on this side:
    index = _first_index_beyond(xs, x_star, step)
    x_prev, low_prev, high_prev = x_star, *_band_at(xs, lows, highs, x_star)
    while 0 <= index < len(xs):
        low, high = lows[index], highs[index]
        if low > 0:
            return _zero_of_line(x_prev, low_prev, xs[index], low), False
        if high < 0:
            return _zero_of_line(x_prev, high_prev, xs[index], high), False
        x_prev, low_prev, high_prev = xs[index], low, high
        index += step
    return x_prev, True


def _first_index_beyond(xs: list[float], x_star: float, step: int) -> int:
    if step > 0:
        return next((i for i, x in enumerate(xs) if x > x_star), len(xs))
    return next((i for i in reversed(range(len(xs))) if xs[i] < x_star), -1)


def _band_at(xs: list[float], lows: list[float], highs: list[float], x: float) -> tuple[float, float]:
    """The band's (low, high) at x, linear between measured points."""
    for i in range(len(xs) - 1):
        if xs[i] <= x <= xs[i + 1]:
            fraction = 0.0 if xs[i + 1] == xs[i] else (x - xs[i]) / (xs[i + 1] - xs[i])
            return (
                lows[i] + fraction * (lows[i + 1] - lows[i]),
                highs[i] + fraction * (highs[i + 1] - highs[i]),
            )
    nearest = min(range(len(xs)), key=lambda i: abs(xs[i] - x))
    return lows[nearest], highs[nearest]


def winner(diff: DiffPoint, mode_a: str, mode_b: str) -> str:
    """The lower mode at one QPS, or "tie" when the 95% band of a − b contains 0."""
    if diff.half_width is not None and abs(diff.diff) <= diff.half_width:
        return "tie"
    if diff.diff == 0:
        return "tie"
    return mode_a if diff.diff < 0 else mode_b


def analyze(merged: MergedResults, choices: tuple[MetricChoice, ...] = CROSSOVER_METRICS) -> dict[str, Any]:
    """The whole qps_crossover_analysis.json: per workload, metric and pair of modes."""
    analyses = []
    modes = merged.modes()
    for workload in merged.workloads():
        for choice in choices:
            pairs = [
                _pair_json(merged, workload, a, b, choice)
                for i, a in enumerate(modes)
                for b in modes[i + 1 :]
            ]
            pairs = [p for p in pairs if p["qps"]]
            if pairs:
                analyses.append(
                    {
                        "workload": workload,
                        "turn_group": choice.turn_group,
                        "metric": choice.metric,
                        "label": choice.label,
                        "unit": choice.unit,
                        "best_by_qps": best_by_qps(merged, workload, choice),
                        "pairs": pairs,
                    }
                )
    return {
        "schema": "ppd.crossover/1",
        "method": (
            "d = mode_a - mode_b (lower is better) at each QPS both measured; crossings interpolated "
            "linearly in ln(QPS); 95% interval: where the band d ± sqrt(h_a^2 + h_b^2) contains 0"
        ),
        "analyses": analyses,
    }


def _pair_json(
    merged: MergedResults, workload: str, mode_a: str, mode_b: str, choice: MetricChoice
) -> dict[str, Any]:
    diffs = pair_differences(merged, workload, mode_a, mode_b, choice)
    crossings = find_crossings(diffs, mode_a, mode_b)
    return {
        "modes": [mode_a, mode_b],
        "qps": [d.qps for d in diffs],
        f"difference_{choice.unit}": [d.diff for d in diffs],
        f"ci95_half_width_{choice.unit}": [d.half_width for d in diffs],
        "winner": [winner(d, mode_a, mode_b) for d in diffs],
        "crossings": [c.to_json() for c in crossings],
        "note": _pair_note(diffs, crossings),
    }


def _pair_note(diffs: list[DiffPoint], crossings: list[Crossing]) -> str:
    if any(d.half_width is None for d in diffs):
        return "single run at some QPS: no confidence interval, crossings are point estimates"
    if not crossings:
        return "no change of winner within the measured QPS range"
    return "crossing intervals are where the 95% band of the difference contains 0"


def best_by_qps(merged: MergedResults, workload: str, choice: MetricChoice) -> list[dict[str, Any]]:
    """At each QPS, the mode with the lowest mean of the metric (among modes that have it)."""
    rows = []
    for qps in merged.qps_values(workload):
        values = {}
        for mode in merged.modes():
            estimate = _estimate(merged, workload, mode, qps, choice)
            if estimate is not None:
                values[mode] = estimate.mean
        if values:
            best = min(values, key=lambda m: values[m])
            rows.append({"qps": qps, "mode": best, "value": values[best]})
    return rows
