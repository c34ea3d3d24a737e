"""Estimates with bootstrap intervals, computed from the rows of every run of every point.

A point (workload, mode, QPS) pools the rows of its runs: its mean TTFT is the mean over all their
turns, its P99 the P99 of all of them (null below 100 turns in total), its throughput the tokens of
all of them over the summed measured durations. For a single run these are exactly the bench's
summary figures. Intervals come from ppd.report.bootstrap; every mode measured on the same arrival
schedules at a (workload, QPS) gets the same resample plan, which pairs them.

A run's schedule is what the bench seeds it from: (seed, run index, arrival window); conversations
with the same index in two modes are the same conversation (same arrival time and turn shapes).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ppd.report.bootstrap import (
    BootstrapConfig,
    FloatArray,
    IntArray,
    ResamplePlan,
    make_plan,
    per_conversation_sums,
    quantiles,
    ratio_of_sums,
)
from ppd.report.inputs import ResultFile
from ppd.report.rows import RunRows, read_run_rows
from ppd.report.stats import Estimate, bootstrap_estimate

MIN_SAMPLES_FOR_P99 = 100  # as the bench: a P99 of fewer samples is mostly its maximum
LATENCIES = ("ttft_ms", "e2e_ms", "tpot_ms")
QUANTILES = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99))
TURN_GROUPS = ("1", "2+", "all")

PointId = tuple[str, str, float]  # workload, mode, qps


@dataclass(frozen=True)
class RunSample:
    """One run of a point: its rows and the schedule it was measured on."""

    run_id: str  # "<file stem>#<run>", as the merged points name runs
    schedule: tuple[object, ...]  # (seed, run index, arrival window): what the bench seeds it from
    rows: RunRows


@dataclass(frozen=True)
class PointSample:
    """Every run of one point, mapped onto the columns of its resample plan."""

    runs: list[RunSample]
    plan: ResamplePlan
    run_indices: list[int]  # each run's index in the plan
    universes: list[IntArray]  # each run's schedule's conversation indices, sorted: column order

    def columns(self, position: int, conversations: IntArray) -> IntArray:
        """The plan columns of conversations (bench indices) of the position-th run."""
        dense = np.searchsorted(self.universes[position], conversations)
        return self.plan.columns(self.run_indices[position], dense)


def collect_runs(
    inputs: list[ResultFile], qps_key: Callable[[Any], float]
) -> dict[PointId, dict[str, RunSample]]:
    """Per point, its runs that have rows, keyed by run id (files without rows add nothing)."""
    points: dict[PointId, dict[str, RunSample]] = defaultdict(dict)
    for result in inputs:
        run_rows = read_run_rows(result, qps_key)
        if not run_rows:
            continue
        infos = {
            (str(r.get("mode")), str(r.get("workload")), qps_key(r.get("qps", 0.0)), int(r.get("run", -1))): r
            for r in result.meta.get("runs", [])
        }
        for key, rows in run_rows.items():
            mode, workload, qps, run = key
            info = infos.get(key, {})
            schedule = (
                info.get("seed", result.meta.get("seed")),
                run,
                info.get("duration_s", result.meta.get("config", {}).get("duration_s")),
            )
            run_id = f"{result.path.stem}#{run}"
            points[(workload, mode, qps)][run_id] = RunSample(run_id, schedule, rows)
    return points


def plan_points(
    points: dict[PointId, dict[str, RunSample]], config: BootstrapConfig
) -> dict[PointId, PointSample]:
    """One resample plan per (workload, QPS, set of schedules), shared by the modes measured on it.

    A schedule's conversations are the union of the indices any mode has rows for, numbered
    densely, so that index i is the same column in every mode (and sparse indices cost nothing).
    """
    universes: dict[tuple[str, float, tuple[object, ...]], IntArray] = {}
    schedules: dict[PointId, list[tuple[object, ...]]] = {}
    for (workload, mode, qps), by_id in points.items():
        # The same schedule twice in one point (a set re-measured under another name) is two runs.
        seen: dict[tuple[object, ...], int] = defaultdict(int)
        keys = []
        for run in sorted(by_id.values(), key=lambda r: r.run_id):
            key = (*run.schedule, seen[run.schedule])
            seen[run.schedule] += 1
            known = universes.get((workload, qps, key), np.empty(0, dtype=np.int64))
            universes[(workload, qps, key)] = np.union1d(known, run.rows.conversation)
            keys.append(key)
        schedules[(workload, mode, qps)] = keys
    plans: dict[tuple[object, ...], ResamplePlan] = {}
    sampled = {}
    for point, keys in schedules.items():
        workload, _, qps = point
        ordered = sorted(keys, key=repr)
        plan_key: tuple[object, ...] = (workload, qps, tuple(ordered))
        if plan_key not in plans:
            sizes = [max(1, universes[(workload, qps, k)].size) for k in ordered]
            plans[plan_key] = make_plan(plan_key, sizes, config)
        in_order = sorted(points[point].values(), key=lambda r: r.run_id)
        sampled[point] = PointSample(
            in_order,
            plans[plan_key],
            [ordered.index(k) for k in keys],
            [universes[(workload, qps, k)] for k in keys],
        )
    return sampled


def point_estimates(sample: PointSample, group: str) -> dict[str, Estimate | None]:
    """Every row metric of one turn group of a point: pooled value and bootstrap interval."""
    plan = sample.plan
    num_columns = plan.run_offsets[-1]
    masks = [run.rows.in_turn_group(group) for run in sample.runs]
    columns = np.concatenate(
        [
            sample.columns(position, run.rows.conversation[mask])
            for position, (run, mask) in enumerate(zip(sample.runs, masks, strict=True))
        ]
    )
    pick = _column_picker(sample, masks)
    sent, ok, good = pick("sent"), pick("ok"), pick("good")
    estimates: dict[str, Estimate | None] = {}
    make = _estimate_maker(sample, num_conversations=int(np.unique(columns).size))

    def sums(values: FloatArray) -> FloatArray:
        return per_conversation_sums(columns, values, num_columns)

    num_sent, num_ok, num_good = sums(sent), sums(ok), sums(good)
    estimates["success_rate"] = make(_fraction(ok, sent), ratio_of_sums(plan, num_ok, num_sent))
    estimates["slo_attainment"] = make(_fraction(good, sent), ratio_of_sums(plan, num_good, num_sent))
    for latency in LATENCIES:
        estimates.update(_latency_estimates(plan, latency, pick(latency), ok, columns, make))
    if all(run.rows.prompt_tokens is not None for run in sample.runs):
        prompt, cached = pick("prompt_tokens"), pick("cached_tokens")
        if prompt.sum() > 0:
            estimates["cache_hit_rate"] = make(
                _fraction(cached, prompt), ratio_of_sums(plan, sums(cached), sums(prompt))
            )
    return estimates


def _column_picker(sample: PointSample, masks: list[Any]) -> Callable[[str], FloatArray]:
    """name -> that row column of every run, masked to the turn group, concatenated, as floats."""

    def pick(name: str) -> FloatArray:
        parts = [getattr(run.rows, name)[mask] for run, mask in zip(sample.runs, masks, strict=True)]
        return np.concatenate(parts).astype(np.float64)

    return pick


def _fraction(part: FloatArray, whole: FloatArray) -> float | None:
    total = float(whole.sum())
    return float(part.sum()) / total if total > 0 else None


EstimateMaker = Callable[[float | None, FloatArray], Estimate | None]


def _estimate_maker(sample: PointSample, num_conversations: int) -> EstimateMaker:
    def make(value: float | None, replicates: FloatArray) -> Estimate | None:
        if value is None or not np.isfinite(value):
            return None
        return bootstrap_estimate(value, replicates, sample.plan.key, len(sample.runs), num_conversations)

    return make


def _latency_estimates(
    plan: ResamplePlan,
    latency: str,
    values: FloatArray,
    ok: FloatArray,
    columns: IntArray,
    make: EstimateMaker,
) -> dict[str, Estimate | None]:
    """mean, p50, p90, p99 of one latency over ok turns that have it (p99: ≥ 100 of them)."""
    present = (ok > 0) & np.isfinite(values)
    kept, kept_columns = values[present], columns[present]
    num_columns = plan.run_offsets[-1]
    estimates: dict[str, Estimate | None] = {f"{latency}.{name}": None for name in ("mean", *dict(QUANTILES))}
    if kept.size == 0:
        return estimates
    mean_replicates = ratio_of_sums(
        plan,
        per_conversation_sums(kept_columns, kept, num_columns),
        per_conversation_sums(kept_columns, np.ones_like(kept), num_columns),
    )
    estimates[f"{latency}.mean"] = make(float(kept.mean()), mean_replicates)
    fractions = [f for name, f in QUANTILES if name != "p99" or kept.size >= MIN_SAMPLES_FOR_P99]
    replicate_sets = quantiles(plan, kept, kept_columns, fractions)
    for (name, fraction), replicates in zip(QUANTILES, replicate_sets, strict=False):
        estimates[f"{latency}.{name}"] = make(float(np.percentile(kept, fraction * 100.0)), replicates)
    return estimates


def row_estimates(
    inputs: list[ResultFile], config: BootstrapConfig, qps_key: Callable[[Any], float]
) -> dict[PointId, tuple[set[str], dict[str, dict[str, Estimate | None]]]]:
    """Per point: the run ids the rows cover, and per turn group every row metric's estimate."""
    sampled = plan_points(collect_runs(inputs, qps_key), config)
    return {
        point: (
            {run.run_id for run in sample.runs},
            {group: point_estimates(sample, group) for group in TURN_GROUPS},
        )
        for point, sample in sampled.items()
    }
