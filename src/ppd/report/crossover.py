"""Where the winner between two modes changes along the QPS sweep, and how sure that is.

For a workload, a lower-is-better metric and two modes a and b, let d(q) = a(q) − b(q) at every
QPS both measured, with its 95% interval (ppd.report.stats.compare: the paired bootstrap when both
modes ran on the same schedules). At each QPS the outcome is a win for a (interval below 0), a
win for b (above 0), or a tie (the interval contains 0). Without an interval (one run, no rows)
the outcome is untested.

A crossing is declared only between two measured points that are significant in opposite
directions, with nothing but ties between them. Its QPS is where d, interpolated linearly in
x = ln(QPS), changes sign in that bracket:

    x* = x_i + (x_{i+1} − x_i) · d_i / (d_i − d_{i+1}),   QPS* = e^{x*}

Its 95% interval is the stretch of ln(QPS) around x* where the interval band of d (its ends
interpolated the same way) still contains 0: there the data cannot tell the two modes apart. The
bracket's ends exclude 0, so the interval never leaves the bracket.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

from ppd.report.merge import MergedResults
from ppd.report.stats import Comparison, Estimate, compare


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
    """d = a − b at one QPS, with its 95% interval (None without one)."""

    qps: float
    diff: float
    low: float | None
    high: float | None
    ratio: float | None = None  # a / b
    ratio_low: float | None = None
    ratio_high: float | None = None
    paired: bool = False

    @property
    def direction(self) -> int | None:
        """-1: a significantly lower; +1: b significantly lower; 0: a tie; None: no interval."""
        if self.low is None or self.high is None:
            return None
        return -1 if self.high < 0 else 1 if self.low > 0 else 0


def diff_point(qps: float, comparison: Comparison) -> DiffPoint:
    """A DiffPoint from a comparison of two estimates."""
    c = comparison
    return DiffPoint(
        qps, c.difference, c.difference_low, c.difference_high, c.ratio, c.ratio_low, c.ratio_high, c.paired
    )


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

    @property
    def has_interval(self) -> bool:
        """Whether the crossing has a 95% interval of its QPS."""
        return self.qps_low is not None and self.qps_high is not None


def pair_differences(
    merged: MergedResults, workload: str, mode_a: str, mode_b: str, choice: MetricChoice
) -> list[DiffPoint]:
    """d = a − b at every QPS where both modes have the metric, sorted by QPS."""
    points = []
    for qps in merged.qps_values(workload):
        a = _estimate(merged, workload, mode_a, qps, choice)
        b = _estimate(merged, workload, mode_b, qps, choice)
        if a is not None and b is not None:
            points.append(diff_point(qps, compare(a, b)))
    return points


def _estimate(
    merged: MergedResults, workload: str, mode: str, qps: float, choice: MetricChoice
) -> Estimate | None:
    return merged.estimate(workload, mode, qps, choice.turn_group, choice.metric)


def find_crossings(diffs: list[DiffPoint], mode_a: str, mode_b: str) -> list[Crossing]:
    """Every change of significant winner of a vs b (a wins where d < 0), ties between allowed."""
    significant = [(i, p) for i, p in enumerate(diffs) if p.direction in (-1, 1)]
    crossings = []
    for (i, left), (j, right) in itertools.pairwise(significant):
        if left.direction == right.direction:
            continue
        bracket = diffs[i : j + 1]
        qps = _sign_change_qps(bracket)
        below, above = (mode_a, mode_b) if left.direction == -1 else (mode_b, mode_a)
        crossings.append(_with_interval(bracket, qps, (left.qps, right.qps), below, above))
    return crossings


def _sign_change_qps(bracket: list[DiffPoint]) -> float:
    """Where d first reaches 0 from the bracket's left end: at a measured point, or interpolated."""
    for left, right in itertools.pairwise(bracket):
        if right.diff == 0:
            return right.qps
        if (left.diff < 0) != (right.diff < 0):
            return math.exp(_zero_of_line(math.log(left.qps), left.diff, math.log(right.qps), right.diff))
    raise ValueError("the bracket's ends have the same sign")  # callers pass opposite significant ends


def _zero_of_line(x0: float, y0: float, x1: float, y1: float) -> float:
    """The x where the line through (x0, y0) and (x1, y1) is 0 (y0 and y1 of opposite signs)."""
    return x0 + (x1 - x0) * y0 / (y0 - y1)


def _with_interval(
    bracket: list[DiffPoint], qps: float, ends: tuple[float, float], below: str, above: str
) -> Crossing:
    xs = [math.log(p.qps) for p in bracket]
    lows = [p.low if p.low is not None else -math.inf for p in bracket]
    highs = [p.high if p.high is not None else math.inf for p in bracket]
    x_star = math.log(qps)
    x_low, low_open = _band_edge(xs, lows, highs, x_star, step=-1)
    x_high, high_open = _band_edge(xs, lows, highs, x_star, step=+1)
    return Crossing(qps, ends, below, above, math.exp(x_low), math.exp(x_high), low_open, high_open)


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
            return _edge_between(x_prev, low_prev, xs[index], low), False
        if high < 0:
            return _edge_between(x_prev, high_prev, xs[index], high), False
        x_prev, low_prev, high_prev = xs[index], low, high
        index += step
    return x_prev, True


def _edge_between(x_inside: float, y_inside: float, x_outside: float, y_outside: float) -> float:
    """Where a band end crosses 0 between a point whose band contains 0 and one whose band does not."""
    if not math.isfinite(y_inside) or (y_inside > 0) == (y_outside > 0):
        return x_outside  # no interval at the inner point, or its band misses 0 too: stop at the outer one
    return _zero_of_line(x_inside, y_inside, x_outside, y_outside)


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
    """The significantly lower mode, "tie" when the 95% interval of a − b contains 0, or without an
    interval the lower mode (untested: DiffPoint.direction is None)."""
    if diff.direction == 0 or (diff.direction is None and diff.diff == 0):
        return "tie"
    if diff.direction is not None:
        return mode_a if diff.direction < 0 else mode_b
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
            "d = mode_a - mode_b (lower is better) at each QPS both measured, with its 95% interval: "
            "paired conversation bootstrap where both modes ran on the same schedules, else independent "
            "intervals combined; winner 'tie' where the interval contains 0; a crossing only between two "
            "points significant in opposite directions (ties between), interpolated linearly in ln(QPS); "
            "its 95% interval: where the interpolated interval band of d contains 0"
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
        f"ci95_low_{choice.unit}": [d.low for d in diffs],
        f"ci95_high_{choice.unit}": [d.high for d in diffs],
        "ratio": [d.ratio for d in diffs],
        "ratio_ci95_low": [d.ratio_low for d in diffs],
        "ratio_ci95_high": [d.ratio_high for d in diffs],
        "paired": [d.paired for d in diffs],
        "winner": [winner(d, mode_a, mode_b) for d in diffs],
        "significant": [None if d.direction is None else d.direction != 0 for d in diffs],
        "crossings": [c.to_json() for c in crossings],
        "note": _pair_note(diffs, crossings),
    }


def _pair_note(diffs: list[DiffPoint], crossings: list[Crossing]) -> str:
    untested = [d.qps for d in diffs if d.direction is None]
    if untested:
        return (
            f"no interval at QPS {', '.join(f'{q:g}' for q in untested)} (one run and no rows): the winner "
            "there is only the lower value, and no crossing can be declared through it"
        )
    if not crossings:
        return "no change of significant winner within the measured QPS range"
    return "crossing intervals are where the 95% band of the difference contains 0"


def best_by_qps(merged: MergedResults, workload: str, choice: MetricChoice) -> list[dict[str, Any]]:
    """At each QPS: the lowest mode, the modes tied with it (95% interval of the difference contains
    0), and "best": the lowest mode when it beats every other significantly, else "tie"."""
    rows = []
    modes = merged.modes()
    for qps in merged.qps_values(workload):
        estimates = {m: e for m in modes if (e := _estimate(merged, workload, m, qps, choice)) is not None}
        if not estimates:
            continue
        lowest = min(estimates, key=lambda m: estimates[m].mean)
        outcomes = {m: compare(e, estimates[lowest]).direction for m, e in estimates.items() if m != lowest}
        tied = [m for m, direction in outcomes.items() if direction == 0]
        untested = [m for m, direction in outcomes.items() if direction is None]
        rows.append(
            {
                "qps": qps,
                "mode": lowest,
                "value": estimates[lowest].mean,
                "best": "tie" if tied else lowest,
                "tied_with": tied,
                "untested": untested,
            }
        )
    return rows
