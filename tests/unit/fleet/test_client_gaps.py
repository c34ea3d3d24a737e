"""The bench's time between turns in the fleet (client_gaps) and the later chunks' shorter way back:
quantile draws, seeded reproducibility, the rows' due times and lags, and hop files with spreads."""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from ppd.bench.workloads import parse_workloads
from ppd.errors import UsageError
from ppd.fleet import FleetConfig, HopCosts, fleet_topology, simulate
from ppd.fleet.client_gaps import ClientGaps, quantile_value
from ppd.fleet.config import hops_from_spec, validate

GAPS = HopCosts(
    stream_end_ms=(0.1, 0.2, 0.4),
    send_lag_ms=0.2,
    send_lag_us_per_answer_token=2.0,
    send_lag_us_per_prompt_token=0.05,
    send_lag_spread=(0.5, 1.0, 1.5),
)


def lone_turns(hops: HopCosts, seed: int = 0) -> FleetConfig:
    """Two-turn 128/16 conversations, one at a time (5 s apart), in replication mode."""
    workload = parse_workloads("128/16", 2)[0]
    return FleetConfig(
        fleet_topology("1r"),
        "replication",
        workload,
        qps=0.2,
        duration_s=20.0,
        poisson=False,
        hops=hops,
        seed=seed,
    )


def test_a_quantile_value_is_linear_between_equally_spaced_quantiles() -> None:
    quantiles = (0.0, 1.0, 3.0)  # p0, p50, p100
    assert quantile_value(quantiles, 0.0) == 0.0
    assert quantile_value(quantiles, 0.25) == 0.5
    assert quantile_value(quantiles, 0.5) == 1.0
    assert quantile_value(quantiles, 0.75) == 2.0
    assert quantile_value(quantiles, 1.0) == 3.0


def test_without_figures_there_is_no_gap_and_no_draw() -> None:
    gaps = ClientGaps(HopCosts(), seed=1)
    assert gaps.is_zero
    assert gaps.stream_end_s() == 0.0
    assert gaps.send_lag_s(1024, 2048) == 0.0


def test_draws_stay_in_the_measured_range_and_repeat_for_a_seed() -> None:
    first, second = ClientGaps(GAPS, seed=7), ClientGaps(GAPS, seed=7)
    ends = [first.stream_end_s() for _ in range(200)]
    assert ends == [second.stream_end_s() for _ in range(200)]
    assert min(ends) >= 0.1e-3 and max(ends) <= 0.4e-3
    assert len(set(ends)) > 100  # a spread, not one value
    line_s = (200 + 2.0 * 100 + 0.05 * 1000) * 1e-6  # 100 answer tokens, 1000 prompt tokens
    lags = [first.send_lag_s(100, 1000) for _ in range(200)]
    assert min(lags) >= 0.5 * line_s - 1e-12 and max(lags) <= 1.5 * line_s + 1e-12


def test_a_line_without_spread_is_the_line() -> None:
    gaps = ClientGaps(replace(GAPS, send_lag_spread=()), seed=0)
    assert gaps.send_lag_s(10, 0) == pytest.approx((200 + 20) * 1e-6)


def test_turn_two_leaves_after_the_stream_end_and_the_send_lag() -> None:
    plain, gapped = simulate(lone_turns(HopCosts())), simulate(lone_turns(GAPS))
    for before, after in zip(plain.rows, gapped.rows, strict=True):
        if before.turn == 1:
            assert vars(before) == vars(after)  # nothing changes before the first answer ends
            continue
        assert before.schedule_lag_ms == 0.0  # no figures: sent the instant turn 1's stream ends
        end_ms = (after.scheduled_s - before.scheduled_s) * 1000.0
        assert 0.1 - 1e-3 <= end_ms <= 0.4 + 1e-3
        line_ms = 0.2 + 2.0 * 16 / 1000 + 0.05 * (128 + 16 + 128) / 1000
        assert after.schedule_lag_ms is not None
        assert 0.5 * line_ms - 1e-3 <= after.schedule_lag_ms <= 1.5 * line_ms + 1e-3


def test_gapped_runs_repeat_for_a_seed_and_differ_across_seeds() -> None:
    first, again = simulate(lone_turns(GAPS, seed=3)), simulate(lone_turns(GAPS, seed=3))
    assert [vars(row) for row in first.rows] == [vars(row) for row in again.rows]
    other = simulate(lone_turns(GAPS, seed=4))
    assert [row.schedule_lag_ms for row in first.rows] != [row.schedule_lag_ms for row in other.rows]


def test_the_think_time_hides_the_send_lag() -> None:
    run = simulate(replace(lone_turns(GAPS), think_time_s=0.5))
    assert all(row.schedule_lag_ms == 0.0 for row in run.rows if row.turn == 2)


def test_later_chunks_come_back_sooner_by_the_saving() -> None:
    hops = HopCosts(engine_to_proxy_ms=0.5, proxy_to_client_ms=0.4)
    plain, saving = simulate(lone_turns(hops)), simulate(lone_turns(replace(hops, later_chunk_saving_ms=0.3)))
    row, faster = plain.rows[0], saving.rows[0]
    assert faster.ttft_ms == row.ttft_ms  # the first chunk's way back is the hops'
    assert row.e2e_ms is not None and faster.e2e_ms is not None
    assert faster.e2e_ms == pytest.approx(row.e2e_ms - 0.3, abs=1e-3)
    capped = simulate(lone_turns(replace(hops, later_chunk_saving_ms=5.0))).rows[0]
    assert capped.e2e_ms == pytest.approx(row.e2e_ms - 0.9, abs=1e-3)  # at most the whole way back


def test_a_hops_file_carries_spreads_and_an_older_one_has_none(tmp_path: Path) -> None:
    path = tmp_path / "hops.json"
    path.write_text(json.dumps({"proxy_to_engine_ms": 0.5, "stream_end_ms": [0.1, 0.3], "send_lag_ms": 0.4}))
    hops = hops_from_spec(str(path))
    assert hops.stream_end_ms == (0.1, 0.3) and hops.send_lag_ms == 0.4
    path.write_text(json.dumps({"proxy_to_engine_ms": 0.5}))  # written before the gap figures
    old = hops_from_spec(str(path))
    assert (old.stream_end_ms, old.send_lag_spread, old.later_chunk_saving_ms) == ((), (), 0.0)
    assert ClientGaps(old, seed=0).is_zero


@pytest.mark.parametrize(
    "figures",
    [
        {"stream_end_ms": 0.2},
        {"stream_end_ms": [0.3, 0.1]},
        {"send_lag_spread": [1.0]},
        {"send_lag_ms": [1.0]},
    ],
)
def test_a_bad_spread_in_a_hops_file_is_refused(tmp_path: Path, figures: dict[str, object]) -> None:
    path = tmp_path / "hops.json"
    path.write_text(json.dumps(figures))
    with pytest.raises(UsageError, match=next(iter(figures))):
        hops_from_spec(str(path))


def test_a_config_with_unordered_quantiles_is_refused() -> None:
    with pytest.raises(UsageError, match="stream_end_ms"):
        validate(lone_turns(HopCosts(stream_end_ms=(0.5, 0.2))))


def test_a_turn_cut_off_by_the_drain_keeps_its_due_time_and_lag() -> None:
    config = replace(lone_turns(GAPS), workload=parse_workloads("128/1024", 2)[0], drain_timeout_s=0.0)
    cut = [row for row in simulate(config).rows if row.turn == 2 and row.sent and not row.ok]
    assert cut, "a 1,024-token turn 2 is still running when the window closes"
    assert all(row.schedule_lag_ms is not None and row.schedule_lag_ms > 0 for row in cut)
