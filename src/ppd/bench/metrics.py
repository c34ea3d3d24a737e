"""Metrics from raw stamps, and run summaries from rows: pure functions, shared with `ppd report`.

Definitions (DESIGN.md, "Measurement rules"), all from time.perf_counter() stamps taken as bytes
arrived:
    TTFT = first content-bearing chunk - send
    E2E  = last content-bearing chunk - send
    TPOT = (E2E - TTFT) / (output tokens - 1), output tokens from usage.completion_tokens
    ITL  = gaps between consecutive content-bearing chunks
Summaries are over ok, non-warmup turns; P99 is None when fewer than 100 samples (n is always given).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ppd.results import TURN_GROUPS, RunInfo, TurnRow

MIN_SAMPLES_FOR_P99 = 100


@dataclass(init=False, frozen=True)
class TurnTimings:
    """A turn's latencies in ms; None where undefined."""

    ttft_ms: float | None
    e2e_ms: float | None
    tpot_ms: float | None
    itl_ms: list[float]

    # Written out (init=False): mypyc runs a dataclass's generated __init__ interpreted (docs/fleet.md).
    def __init__(
        self,
        ttft_ms: float | None,
        e2e_ms: float | None,
        tpot_ms: float | None,
        itl_ms: list[float],
    ) -> None:
        object.__setattr__(self, "ttft_ms", ttft_ms)
        object.__setattr__(self, "e2e_ms", e2e_ms)
        object.__setattr__(self, "tpot_ms", tpot_ms)
        object.__setattr__(self, "itl_ms", itl_ms)


@dataclass(frozen=True)
class Slo:
    """Objectives a turn must meet to count toward goodput; None: not applied."""

    ttft_ms: float | None = None
    tpot_ms: float | None = None


def turn_timings(sent_at: float, chunk_times: Sequence[float], num_output_tokens: int | None) -> TurnTimings:
    """Latencies from the send stamp and the content-chunk stamps (perf_counter seconds)."""
    if not chunk_times:
        return TurnTimings(None, None, None, [])
    ttft_ms = _ms(chunk_times[0] - sent_at)
    e2e_ms = _ms(chunk_times[-1] - sent_at)
    tpot_ms = None
    if num_output_tokens is not None and num_output_tokens > 1:
        tpot_ms = round((e2e_ms - ttft_ms) / (num_output_tokens - 1), 4)
    itl_ms = [_ms(later - earlier) for earlier, later in itertools.pairwise(chunk_times)]
    return TurnTimings(ttft_ms, e2e_ms, tpot_ms, itl_ms)


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 4)


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Linear-interpolated percentile (numpy's default method) of ascending values; fraction in [0, 1]."""
    position = fraction * (len(sorted_values) - 1)
    lower = math.floor(position)
    upper = min(lower + 1, len(sorted_values) - 1)
    weight = position - lower
    return sorted_values[lower] * (1.0 - weight) + sorted_values[upper] * weight


def distribution(values: Iterable[float]) -> dict[str, float | int | None]:
    """{"mean", "p50", "p90", "p99", "n"}; all None when empty, p99 None below 100 samples."""
    ordered = sorted(values)
    count = len(ordered)
    if not count:
        return {"mean": None, "p50": None, "p90": None, "p99": None, "n": 0}
    return {
        "mean": sum(ordered) / count,
        "p50": percentile(ordered, 0.50),
        "p90": percentile(ordered, 0.90),
        "p99": percentile(ordered, 0.99) if count >= MIN_SAMPLES_FOR_P99 else None,
        "n": count,
    }


def lag_distribution(values: Iterable[float]) -> dict[str, float | int | None]:
    """{"p50", "p99", "n"} of schedule lags in ms."""
    full = distribution(values)
    return {"p50": full["p50"], "p99": full["p99"], "n": full["n"]}


def in_group(row: TurnRow, group: str) -> bool:
    """Whether a row belongs to turn group "1", "2+" or "all"."""
    if group == "1":
        return row.turn == 1
    if group == "2+":
        return row.turn >= 2
    return True


def meets_slo(row: TurnRow, slo: Slo) -> bool:
    """An ok turn within both objectives (an objective on an undefined latency is met)."""
    if not row.ok:
        return False
    if slo.ttft_ms is not None and (row.ttft_ms is None or row.ttft_ms > slo.ttft_ms):
        return False
    return slo.tpot_ms is None or row.tpot_ms is None or row.tpot_ms <= slo.tpot_ms


def measured_duration_s(rows: Iterable[TurnRow]) -> float:
    """Sum over the runs present of (last completion - first due time) of their sent rows, in s.

    Summing per run makes throughput right for rows pooled from several runs. Callers pass every
    turn group's rows, so the throughputs of groups "1" and "2+" add up to that of "all".
    """
    spans: dict[tuple[str, str, float, int], list[float]] = {}
    for row in rows:
        if row.sent_s is None:
            continue
        end_s = row.sent_s + (row.e2e_ms or 0.0) / 1000.0
        key = (row.mode, row.workload, row.qps, row.run)
        span = spans.setdefault(key, [row.scheduled_s, end_s])
        span[0] = min(span[0], row.scheduled_s)
        span[1] = max(span[1], end_s)
    return sum(end_s - start_s for start_s, end_s in spans.values())


def summarize(rows: Sequence[TurnRow], run_info: RunInfo | None, slo: Slo) -> list[dict[str, Any]]:
    """One summary per turn group ("1", "2+", "all") of the given rows (one run, or pooled runs)."""
    measured = [row for row in rows if not row.in_warmup]
    duration_s = measured_duration_s(measured)
    return [
        summarize_group([row for row in measured if in_group(row, group)], group, duration_s, run_info, slo)
        for group in TURN_GROUPS
    ]


def summarize_group(
    rows: Sequence[TurnRow], group: str, duration_s: float, run_info: RunInfo | None, slo: Slo
) -> dict[str, Any]:
    """The summary dict of one turn group's non-warmup rows (the shape `ppd report` reads);
    `duration_s` is the measured time of all groups (measured_duration_s)."""
    sent = [row for row in rows if row.sent]
    ok = [row for row in sent if row.ok]
    num_good = sum(1 for row in ok if meets_slo(row, slo))
    summary = _labels(run_info, rows, group)
    summary.update(
        count=len(sent),
        num_ok=len(ok),
        num_failed=len(sent) - len(ok),
        num_not_sent=len(rows) - len(sent),
        success_rate=len(ok) / len(sent) if sent else None,
        duration_s=duration_s,
        ttft_ms=distribution(row.ttft_ms for row in ok if row.ttft_ms is not None),
        tpot_ms=distribution(row.tpot_ms for row in ok if row.tpot_ms is not None),
        e2e_ms=distribution(row.e2e_ms for row in ok if row.e2e_ms is not None),
        itl_ms=distribution(gap for row in ok for gap in row.itl_ms),
        request_throughput_rps=_per_s(len(ok), duration_s),
        output_throughput_tps=_per_s(sum(row.output_tokens or 0 for row in ok), duration_s),
        goodput_rps=_per_s(num_good, duration_s),
        slo_attainment=num_good / len(sent) if sent else None,
        offered_rate=run_info.offered_rate if run_info else None,
        achieved_rate=run_info.achieved_rate if run_info else None,
        schedule_lag_ms=lag_distribution(
            row.schedule_lag_ms for row in sent if row.schedule_lag_ms is not None
        ),
        cache_hit_rate=cache_hit_rate(ok),
    )
    return summary


def served_cached_tokens(row: TurnRow) -> int | None:
    """Prompt tokens the instance that prefilled the turn found in its prefix cache: P's on a P -> D
    route (D's cached_tokens there counts the pulled KV), else the answering instance's."""
    return row.prefill_cached_tokens if row.prefill_cached_tokens is not None else row.cached_tokens


def cache_hit_rate(rows: Iterable[TurnRow]) -> float | None:
    """Cached over prompt tokens, summed over the rows that report both (served_cached_tokens)."""
    num_cached = num_prompt = 0
    for row in rows:
        cached = served_cached_tokens(row)
        if cached is not None and row.prompt_tokens:
            num_cached += cached
            num_prompt += row.prompt_tokens
    return num_cached / num_prompt if num_prompt else None


def _labels(run_info: RunInfo | None, rows: Sequence[TurnRow], group: str) -> dict[str, Any]:
    if run_info is not None:
        return {
            "mode": run_info.mode,
            "workload": run_info.workload,
            "qps": run_info.qps,
            "run": run_info.run,
            "turn_group": group,
        }
    first = rows[0] if rows else None
    return {
        "mode": first.mode if first else None,
        "workload": first.workload if first else None,
        "qps": first.qps if first else None,
        "run": None,
        "turn_group": group,
    }


def _per_s(count: float, duration_s: float) -> float | None:
    return count / duration_s if duration_s > 0 else None


def conversation_rates(
    num_planned: int, start_times_s: Sequence[float], duration_s: float
) -> tuple[float, float]:
    """(offered, achieved) conversations/s: planned over the arrival window, and started over the
    window stretched to the last actual start, so a client that falls behind shows a lower rate."""
    offered = num_planned / duration_s
    window_s = max([duration_s, *start_times_s])
    return offered, len(start_times_s) / window_s
