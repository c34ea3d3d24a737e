"""The numbers behind summary.md's Key Results, computed from merged points (pure; no formatting)."""

from __future__ import annotations

from dataclasses import dataclass

from ppd.report.crossover import (
    Crossing,
    DiffPoint,
    MetricChoice,
    find_crossings,
    pair_differences,
    winner,
)
from ppd.report.merge import MergedResults
from ppd.report.stats import Estimate

TURN2_TTFT_MEAN = MetricChoice("2+", "ttft_ms.mean", "mean TTFT, turns 2+", "ms")


@dataclass(frozen=True)
class Improvement:
    """How much lower `mode` is than `baseline` at one QPS, in percent of the baseline."""

    qps: float
    percent: float
    significant: bool | None  # the 95% interval of the difference excludes 0; None without one
    low_percent: float | None = None  # 95% interval of the improvement (from that of the ratio)
    high_percent: float | None = None


@dataclass(frozen=True)
class ImprovementRow:
    """One workload's improvements over the QPS sweep, with their average, minimum and maximum."""

    workload: str
    per_qps: list[Improvement]

    @property
    def average_percent(self) -> float:
        """Mean of the per-QPS improvements (each QPS point weighs the same)."""
        return sum(i.percent for i in self.per_qps) / len(self.per_qps)

    @property
    def worst(self) -> Improvement:
        """The QPS point with the smallest improvement."""
        return min(self.per_qps, key=lambda i: i.percent)

    @property
    def best(self) -> Improvement:
        """The QPS point with the largest improvement."""
        return max(self.per_qps, key=lambda i: i.percent)


def improvements(
    merged: MergedResults, mode: str, baseline: str, choice: MetricChoice = TURN2_TTFT_MEAN
) -> list[ImprovementRow]:
    """Per workload, (baseline − mode) / baseline · 100 at each QPS both measured."""
    rows = []
    for workload in merged.workloads():
        per_qps = []
        for diff in pair_differences(merged, workload, mode, baseline, choice):
            baseline_value = _mean(merged, workload, baseline, diff.qps, choice)
            if baseline_value:
                per_qps.append(_improvement(diff, baseline_value))
        if per_qps:
            rows.append(ImprovementRow(workload, per_qps))
    return rows


def _improvement(diff: DiffPoint, baseline_value: float) -> Improvement:
    """(baseline − mode) / baseline = 1 − mode / baseline, so its interval is that of the ratio."""
    significant = None if diff.direction is None else diff.direction != 0
    low = high = None
    if diff.ratio_low is not None and diff.ratio_high is not None:
        low, high = (1.0 - diff.ratio_high) * 100, (1.0 - diff.ratio_low) * 100
    return Improvement(diff.qps, -diff.diff / baseline_value * 100, significant, low, high)


def _mean(merged: MergedResults, workload: str, mode: str, qps: float, choice: MetricChoice) -> float | None:
    estimate = merged.estimate(workload, mode, qps, choice.turn_group, choice.metric)
    return None if estimate is None else estimate.mean


@dataclass(frozen=True)
class PairOutcome:
    """At one QPS: which of two modes is lower, and by how much (percent of the loser)."""

    qps: float
    winner: str  # a mode, or "tie" when the 95% interval of the difference contains 0
    margin_percent: float
    significant: bool | None  # the interval of the difference excludes 0; None without one


@dataclass(frozen=True)
class PairRow:
    """One workload's head-to-head of two modes along the QPS sweep."""

    workload: str
    outcomes: list[PairOutcome]
    crossings: list[Crossing]


def head_to_head(
    merged: MergedResults, mode_a: str, mode_b: str, choice: MetricChoice = TURN2_TTFT_MEAN
) -> list[PairRow]:
    """Per workload: the winner of a vs b at each QPS, and where the winner changes."""
    rows = []
    for workload in merged.workloads():
        diffs = pair_differences(merged, workload, mode_a, mode_b, choice)
        if diffs:
            outcomes = [_outcome(merged, workload, d, mode_a, mode_b, choice) for d in diffs]
            rows.append(PairRow(workload, outcomes, find_crossings(diffs, mode_a, mode_b)))
    return rows


def _outcome(
    merged: MergedResults, workload: str, diff: DiffPoint, mode_a: str, mode_b: str, choice: MetricChoice
) -> PairOutcome:
    loser_value = max(
        _mean(merged, workload, mode_a, diff.qps, choice) or 0.0,
        _mean(merged, workload, mode_b, diff.qps, choice) or 0.0,
    )
    margin = abs(diff.diff) / loser_value * 100 if loser_value else 0.0
    significant = None if diff.direction is None else diff.direction != 0
    return PairOutcome(diff.qps, winner(diff, mode_a, mode_b), margin, significant)


@dataclass(frozen=True)
class MetricTable:
    """One workload's metric estimate for every mode at every QPS (None: not measured or null)."""

    workload: str
    qps_values: list[float]
    by_mode: dict[str, list[Estimate | None]]


def metric_tables(merged: MergedResults, turn_group: str, metric: str) -> list[MetricTable]:
    """Per workload: mode x QPS grid of one metric's across-run estimates."""
    tables = []
    for workload in merged.workloads():
        qps_values = merged.qps_values(workload)
        by_mode: dict[str, list[Estimate | None]] = {}
        for mode in merged.modes():
            cells = [merged.estimate(workload, mode, qps, turn_group, metric) for qps in qps_values]
            if any(c is not None for c in cells):
                by_mode[mode] = cells
        if by_mode:
            tables.append(MetricTable(workload, qps_values, by_mode))
    return tables
