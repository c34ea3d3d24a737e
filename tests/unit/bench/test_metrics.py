from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from ppd.bench.metrics import (
    Slo,
    conversation_rates,
    distribution,
    measured_duration_s,
    percentile,
    summarize,
    turn_timings,
)
from ppd.results import RunInfo, TurnRow


def _row(turn: int = 1, ok: bool = True, sent: bool = True, **fields: Any) -> TurnRow:
    values: dict[str, Any] = dict(
        mode="ppd",
        workload="W1",
        qps=2.0,
        run=0,
        conversation=0,
        conversation_id="c",
        turn=turn,
        sent=sent,
        ok=ok,
        status=200 if ok else 500,
        error=None if ok else "x",
        scheduled_s=1.0,
        sent_s=1.0 if sent else None,
        schedule_lag_ms=0.5 if sent else None,
        ttft_ms=10.0 if ok else None,
        e2e_ms=100.0 if ok else None,
        tpot_ms=2.0 if ok else None,
        itl_ms=[1.0, 3.0] if ok else [],
        output_tokens=46 if ok else None,
    )
    values.update(fields)
    return TurnRow(**values)


RUN = RunInfo("ppd", "W1", 2.0, 0, "2026-01-01T00:00:00+00:00", 10.0, 12.0, 20, 2.0, 1.9, 0)


def test_turn_timings_follow_the_definitions() -> None:
    timings = turn_timings(10.0, [10.05, 10.06, 10.08, 10.15], num_output_tokens=11)
    assert timings.ttft_ms == pytest.approx(50.0)
    assert timings.e2e_ms == pytest.approx(150.0)
    assert timings.tpot_ms == pytest.approx(10.0)  # (150 - 50) / (11 - 1)
    assert timings.itl_ms == pytest.approx([10.0, 20.0, 70.0])


def test_turn_timings_without_chunks_or_with_one_token() -> None:
    assert turn_timings(1.0, [], 5).ttft_ms is None
    one = turn_timings(1.0, [1.2], 1)
    assert one.ttft_ms == pytest.approx(200.0) and one.tpot_ms is None and one.itl_ms == []
    assert turn_timings(1.0, [1.2, 1.3], None).tpot_ms is None


def test_percentile_matches_numpy_linear() -> None:
    rng = random.Random(1)
    values = sorted(rng.random() for _ in range(37))
    for q in (0.0, 0.5, 0.9, 0.99, 1.0):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q * 100)))


def test_p99_needs_100_samples() -> None:
    small = distribution(float(v) for v in range(99))
    assert small["n"] == 99 and small["p99"] is None and small["p50"] == 49.0
    big = distribution(float(v) for v in range(100))
    assert big["p99"] == pytest.approx(98.01)
    assert distribution([]) == {"mean": None, "p50": None, "p90": None, "p99": None, "n": 0}


def test_summary_shape_groups_and_warmup_exclusion() -> None:
    rows = [
        _row(turn=1, ttft_ms=30.0),
        _row(turn=2, ttft_ms=5.0),
        _row(turn=1, ttft_ms=1000.0, in_warmup=True),
        _row(turn=1, conversation=1, ok=False),
        _row(turn=2, conversation=1, ok=False, sent=False),
    ]
    by_group = {summary["turn_group"]: summary for summary in summarize(rows, RUN, Slo())}
    assert set(by_group) == {"1", "2+", "all"}
    first = by_group["1"]
    assert (first["count"], first["num_ok"], first["num_failed"], first["num_not_sent"]) == (2, 1, 1, 0)
    assert first["success_rate"] == 0.5
    assert first["ttft_ms"] == {"mean": 30.0, "p50": 30.0, "p90": 30.0, "p99": None, "n": 1}
    second = by_group["2+"]
    assert (second["count"], second["num_ok"], second["num_not_sent"]) == (1, 1, 1)
    assert second["ttft_ms"]["p50"] == 5.0
    everything = by_group["all"]
    assert everything["count"] == 3 and everything["itl_ms"]["n"] == 4 and everything["itl_ms"]["mean"] == 2.0
    assert (everything["offered_rate"], everything["achieved_rate"]) == (2.0, 1.9)
    assert everything["schedule_lag_ms"] == {"p50": 0.5, "p99": None, "n": 3}
    assert {key: everything[key] for key in ("mode", "workload", "qps", "run")} == {
        "mode": "ppd",
        "workload": "W1",
        "qps": 2.0,
        "run": 0,
    }
    expected_keys = {
        "mode",
        "workload",
        "qps",
        "run",
        "turn_group",
        "count",
        "num_ok",
        "num_failed",
        "num_not_sent",
        "success_rate",
        "duration_s",
        "ttft_ms",
        "tpot_ms",
        "e2e_ms",
        "itl_ms",
        "request_throughput_rps",
        "output_throughput_tps",
        "goodput_rps",
        "slo_attainment",
        "offered_rate",
        "achieved_rate",
        "schedule_lag_ms",
        "cache_hit_rate",
    }
    assert set(everything) == expected_keys


def test_throughput_and_goodput_under_slos() -> None:
    rows = [
        _row(scheduled_s=0.0, sent_s=0.0, e2e_ms=1000.0, ttft_ms=10.0, tpot_ms=1.0),
        _row(scheduled_s=1.0, sent_s=1.0, e2e_ms=1000.0, ttft_ms=50.0, tpot_ms=1.0),  # misses the TTFT SLO
        _row(scheduled_s=2.0, sent_s=2.0, e2e_ms=2000.0, ttft_ms=10.0, tpot_ms=9.0),  # misses the TPOT SLO
        _row(scheduled_s=3.0, sent_s=3.0, ok=False),
    ]
    everything = summarize(rows, RUN, Slo(ttft_ms=20.0, tpot_ms=5.0))[2]
    assert everything["duration_s"] == pytest.approx(4.0)  # first send 0 s, last completion 4 s
    assert everything["request_throughput_rps"] == pytest.approx(3 / 4)
    assert everything["output_throughput_tps"] == pytest.approx(3 * 46 / 4)
    assert everything["goodput_rps"] == pytest.approx(1 / 4)
    assert everything["slo_attainment"] == pytest.approx(1 / 4)
    no_slo = summarize(rows, RUN, Slo())
    assert no_slo[2]["goodput_rps"] == no_slo[2]["request_throughput_rps"]
    second_turns = [_row(turn=2, scheduled_s=3.5, sent_s=3.5, e2e_ms=500.0)]
    groups = summarize(rows + second_turns, RUN, Slo())
    assert groups[0]["duration_s"] == groups[1]["duration_s"] == groups[2]["duration_s"] == pytest.approx(4.0)
    assert groups[0]["request_throughput_rps"] + groups[1]["request_throughput_rps"] == pytest.approx(
        groups[2]["request_throughput_rps"]
    )


def test_pooled_rows_sum_per_run_durations() -> None:
    rows = [
        _row(run=0, scheduled_s=0.0, sent_s=0.0, e2e_ms=2000.0),
        _row(run=1, scheduled_s=0.4, sent_s=0.5, e2e_ms=1500.0),
    ]
    assert measured_duration_s(rows) == pytest.approx(2.0 + 1.6)
    pooled = summarize(rows, None, Slo())[2]
    assert pooled["run"] is None and pooled["mode"] == "ppd" and pooled["offered_rate"] is None
    assert pooled["request_throughput_rps"] == pytest.approx(2 / 3.6)


def test_conversation_rates_show_a_client_that_falls_behind() -> None:
    assert conversation_rates(10, [0.5 * i for i in range(10)], 5.0) == (2.0, 2.0)
    offered, achieved = conversation_rates(10, [1.0 * i for i in range(10)], 5.0)
    assert offered == 2.0 and achieved == pytest.approx(10 / 9)
    assert conversation_rates(10, [0.1] * 5, 5.0) == (2.0, 1.0)


def test_cache_hit_rate_counts_what_the_prefilling_instance_found() -> None:
    rows = [
        _row(prompt_tokens=100, cached_tokens=80),  # served from the answering instance's cache
        _row(prompt_tokens=100, cached_tokens=100, prefill_cached_tokens=20),  # P -> D: P's counts
        _row(prompt_tokens=50),  # no usage details: left out
        _row(ok=False, prompt_tokens=100, cached_tokens=0),  # failed: left out
    ]
    [everything] = [s for s in summarize(rows, RUN, Slo()) if s["turn_group"] == "all"]
    assert everything["cache_hit_rate"] == 0.5
    assert summarize([_row()], RUN, Slo())[0]["cache_hit_rate"] is None
