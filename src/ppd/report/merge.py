"""Merge the runs of many result files into one point per mode x workload x QPS x turn group.

Two sources, the second overriding the first where it applies:
- The per-run summaries: every numeric leaf becomes a metric named by its path ("ttft_ms.p99",
  "success_rate"), so new bench fields flow through without changes here; a point's value is the
  across-run mean with a Student t interval (ppd.report.stats). When any run has a metric null
  (P99 with fewer than 100 samples, a mean over zero successes) the point has no value for it:
  averaging only the runs that have one would report a number no run set measured. Counts
  (`count`, `num_*`, `*.n`) are also summed into `totals`.
- The rows, where every run of the point has them (ppd.report.resampled): latencies, success,
  SLO attainment and throughputs pooled over the runs, with conversation-bootstrap intervals that
  pair modes measured on the same schedules.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ppd.modes import MODES
from ppd.report.bootstrap import BootstrapConfig
from ppd.report.inputs import ResultFile
from ppd.report.resampled import row_estimates
from ppd.report.stats import Estimate, estimate_all_or_none

KEY_FIELDS = frozenset({"mode", "workload", "qps", "run", "turn_group"})
KNOWN_MODE_ORDER: tuple[str, ...] = MODES  # result files may name other modes: those sort after
TURN_GROUP_ORDER = ("1", "2+", "all")


@dataclass(frozen=True, order=True)
class PointKey:
    """Where a merged point sits: which mode, workload, offered QPS and turn group."""

    workload: str
    mode: str
    qps: float
    turn_group: str


@dataclass
class MergedPoint:
    """All runs of one point: each metric's across-run estimate, and summed counts."""

    key: PointKey
    run_ids: list[str]  # "<file stem>#<run>" for every run merged here
    metrics: dict[str, Estimate | None]  # None: some run had it null (e.g. p99 with n < 100)
    num_null_runs: dict[str, int]  # per metric, how many runs had it null
    totals: dict[str, int]
    from_rows: bool = False  # row metrics pooled over runs with bootstrap intervals

    @property
    def num_runs(self) -> int:
        """How many runs were merged into this point."""
        return len(self.run_ids)

    def metric(self, name: str) -> Estimate | None:
        """The estimate of a metric, or None when no run had it."""
        return self.metrics.get(name)


@dataclass
class MergedResults:
    """Every merged point plus the result files they came from."""

    points: dict[PointKey, MergedPoint]
    inputs: list[ResultFile] = field(default_factory=list)

    def modes(self) -> list[str]:
        """The modes present: pd, ppd, replication, auto first (in that order), then others."""
        return order_modes({k.mode for k in self.points})

    def workloads(self) -> list[str]:
        """The workloads present, W1 < W2 < ... < W10, then file workloads by name."""
        return sorted({k.workload for k in self.points}, key=_workload_sort_key)

    def qps_values(self, workload: str, mode: str | None = None) -> list[float]:
        """Sorted offered QPS values measured for a workload (and mode, if given)."""
        return sorted(
            {k.qps for k in self.points if k.workload == workload and (mode is None or k.mode == mode)}
        )

    def point(self, workload: str, mode: str, qps: float, turn_group: str) -> MergedPoint | None:
        """The merged point, if it was measured."""
        return self.points.get(PointKey(workload, mode, normalize_qps(qps), turn_group))

    def estimate(self, workload: str, mode: str, qps: float, turn_group: str, metric: str) -> Estimate | None:
        """One metric's estimate at one point; None when not measured or null."""
        point = self.point(workload, mode, qps, turn_group)
        return None if point is None else point.metric(metric)

    def series(
        self, workload: str, mode: str, turn_group: str, metric: str
    ) -> list[tuple[float, Estimate | None]]:
        """(qps, estimate) along the QPS sweep for one mode, sorted by QPS."""
        series = []
        for qps in self.qps_values(workload, mode):
            point = self.point(workload, mode, qps, turn_group)
            if point is not None:
                series.append((qps, point.metric(metric)))
        return series


def order_modes(modes: Iterable[str]) -> list[str]:
    """Known modes in their canonical order, then any others alphabetically."""
    present = set(modes)
    known = [m for m in KNOWN_MODE_ORDER if m in present]
    return known + sorted(present - set(KNOWN_MODE_ORDER))


def _workload_sort_key(name: str) -> tuple[int, int, str]:
    if name[:1] == "W" and name[1:].isdigit():
        return (0, int(name[1:]), name)
    return (1, 0, name)


def normalize_qps(qps: float) -> float:
    """QPS as a dict key: float noise from JSON round trips must not split a point in two."""
    return round(float(qps), 9)


def flatten_numbers(summary: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, float | None]]:
    """(dotted name, value) for every numeric or null leaf, skipping the key fields."""
    for name, value in summary.items():
        if not prefix and name in KEY_FIELDS:
            continue
        path = f"{prefix}{name}"
        if isinstance(value, dict):
            yield from flatten_numbers(value, f"{path}.")
        elif value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
            yield path, None if value is None else float(value)


def is_count(metric: str) -> bool:
    """Counts are summed across runs as well as averaged: count, num_ok, ttft_ms.n, ..."""
    last = metric.rsplit(".", 1)[-1]
    return last in ("count", "n") or last.startswith("num_")


def merge(inputs: list[ResultFile], bootstrap: BootstrapConfig | None = None) -> MergedResults:
    """Group every summary of every file by point and estimate each metric; from the rows, with
    bootstrap intervals, where every run of a point has its rows."""
    per_point: dict[PointKey, dict[str, dict[str, Any]]] = defaultdict(dict)
    for result in inputs:
        for summary in result.summaries:
            key = PointKey(
                workload=str(summary["workload"]),
                mode=str(summary["mode"]),
                qps=normalize_qps(summary["qps"]),
                turn_group=str(summary["turn_group"]),
            )
            # A file rewrites its summaries after every run, so a repeated run id is the same run.
            per_point[key][f"{result.path.stem}#{summary['run']}"] = summary
    points = {key: _merge_point(key, runs) for key, runs in per_point.items()}
    _use_rows(points, row_estimates(inputs, bootstrap or BootstrapConfig(), normalize_qps))
    return MergedResults(points=points, inputs=list(inputs))


def _use_rows(
    points: dict[PointKey, MergedPoint],
    from_rows: dict[tuple[str, str, float], tuple[set[str], dict[str, dict[str, Estimate | None]]]],
) -> None:
    """Replace the row metrics of every point whose runs all have rows by their pooled estimates."""
    for key, point in points.items():
        found = from_rows.get((key.workload, key.mode, key.qps))
        if found is None or found[0] != set(point.run_ids):
            continue
        point.metrics.update(found[1][key.turn_group])
        point.from_rows = True


def _merge_point(key: PointKey, runs: dict[str, dict[str, Any]]) -> MergedPoint:
    values: dict[str, list[float | None]] = defaultdict(list)
    for summary in runs.values():
        for name, value in flatten_numbers(summary):
            values[name].append(value)
    totals = {
        name: int(sum(v for v in vals if v is not None)) for name, vals in values.items() if is_count(name)
    }
    return MergedPoint(
        key=key,
        run_ids=sorted(runs),
        metrics={name: estimate_all_or_none(vals) for name, vals in values.items()},
        num_null_runs={name: sum(v is None for v in vals) for name, vals in values.items()},
        totals=totals,
    )
