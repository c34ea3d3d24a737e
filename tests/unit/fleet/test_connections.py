"""Kept-alive connections in the fleet (fleet.connections): a request on an idle pooled connection
pays the hops alone, one that finds none opens a connection first; the oldest idle one is taken, an
expired one is dropped; a cut-off stream's connection is not kept; a run starts with what the
previous run of the same client left (fleet.sequence), and with one idle connection in each pool
(the bench's admin requests, the proxy's health checks); the proxy's health checks every 2 s open a
connection when every one to an engine is busy, which a later turn reuses (not counted as the turn's)."""

from dataclasses import fields, replace

import pytest

from ppd.bench.workloads import parse_workloads
from ppd.fleet import FleetConfig, HopCosts, fleet_topology, simulate, simulate_in_order
from ppd.fleet.connections import ConnectionPool, IdleConnections
from ppd.proxy.config import ProxyConfig

CONNECT = HopCosts(client_connect_ms=1.0, proxy_connect_ms=0.5)
# ppd proxy's default
HEALTH_INTERVAL_S = next(f.default for f in fields(ProxyConfig) if f.name == "health_interval_s")


def test_an_empty_pool_opens_a_connection_and_a_released_one_is_reused() -> None:
    pool = ConnectionPool(connect_s=0.001, keepalive_s=15.0)
    assert pool.take(0.0) == 0.001
    assert pool.num_opened == 1
    pool.give(1.0)
    assert pool.take(2.0) == 0.0
    assert pool.num_opened == 1
    assert pool.take(2.0) == 0.001  # the one idle connection is in use again


def test_the_oldest_idle_connection_is_taken_and_expired_ones_are_dropped() -> None:
    pool = ConnectionPool(connect_s=0.001, keepalive_s=15.0)
    for released_s in (1.0, 10.0, 12.0):
        pool.give(released_s)
    assert pool.take(17.0) == 0.0  # 1.0 has been idle 16 s: closed; 10.0 taken
    assert pool.idle_for_s(17.0) == (5.0,)  # 12.0 is left
    assert pool.take(28.0) == 0.001  # idle 16 s by now: closed, a new one opened
    assert pool.idle_for_s(28.0) == ()


def test_a_pool_starts_with_the_idle_connections_it_is_given() -> None:
    pool = ConnectionPool(connect_s=0.001, keepalive_s=15.0, idle_for_s=(14.0, 2.0))
    assert pool.idle_for_s(0.0) == (14.0, 2.0)
    assert pool.take(2.0) == 0.0  # the 14-s one has expired by now (16 s); the other is taken
    assert pool.take(2.0) == 0.001


def replication_run(
    replicas: int, workload: str, qps: float, duration_s: float, hops: HopCosts, **values: object
) -> FleetConfig:
    """Two-turn conversations of `workload` at `qps` for `duration_s` on `replicas` replicas."""
    config = FleetConfig(
        fleet_topology(f"{replicas}r"),
        "replication",
        parse_workloads(workload, 2)[0],
        qps=qps,
        duration_s=duration_s,
        hops=hops,
    )
    return replace(config, **values)  # type: ignore[arg-type]


def lone_conversations(hops: HopCosts, **values: object) -> FleetConfig:
    """Two-turn 128/16 conversations one at a time (5 s apart), replication on one replica."""
    return replication_run(1, "128/16", 0.2, 20.0, hops, poisson=False, **values)


def ttfts(config: FleetConfig) -> dict[tuple[int, int], float]:
    rows = simulate(config).rows
    return {(row.conversation, row.turn): row.ttft_ms for row in rows if row.ttft_ms is not None}


def test_a_pool_exchange_leaves_one_idle_connection_and_drops_expired_ones() -> None:
    pool = ConnectionPool(connect_s=0.001, keepalive_s=15.0, idle_for_s=(20.0,))
    pool.exchange(0.0, 2)  # the expired one is closed; the first request opens one, the second reuses it
    assert pool.idle_for_s(1.0) == (1.0,)
    assert pool.num_opened == 0  # before the run: not one of its connections
    pool.give(0.5)
    pool.exchange(2.0)  # the oldest is taken and comes back the newest
    assert pool.idle_for_s(2.0) == (1.5, 0.0)


def test_no_turn_opens_a_connection_when_the_client_is_never_busier() -> None:
    # the bench's admin requests and the proxy's health check leave one idle in each pool at the start
    pooled = ttfts(lone_conversations(HopCosts()))
    connecting = ttfts(lone_conversations(CONNECT))
    assert pooled.keys() == connecting.keys() and len(pooled) == 6  # three conversations
    for key in sorted(pooled):
        assert connecting[key] == pytest.approx(pooled[key], abs=1e-6)


def test_a_run_starts_with_the_idle_connections_of_the_run_before() -> None:
    first = simulate(lone_conversations(CONNECT))
    left = first.idle_connections
    assert len(left.client_s) == 1  # one conversation at a time: one connection, idle at the end
    assert [len(idle_s) for _, idle_s in left.engines_s] == [1]
    pooled = ttfts(lone_conversations(HopCosts()))
    warm = ttfts(lone_conversations(CONNECT, idle_connections=left))
    assert warm[(0, 1)] == pytest.approx(pooled[(0, 1)], abs=1e-6)


def test_idle_connections_age_by_the_pause_between_runs() -> None:
    idle = IdleConnections((1.0, 0.5), (("http://e", (2.0,)),), next_health_check_s=1.5)
    aged = IdleConnections((1.25, 0.75), (("http://e", (2.25,)),), next_health_check_s=1.25)
    assert idle.aged(0.25) == aged


def test_points_in_order_hand_on_their_idle_connections_aged_by_the_pause() -> None:
    configs = [overlapping(CONNECT), replace(overlapping(CONNECT), mode="auto")]
    runs = simulate_in_order(configs, pause_s=0.5)
    assert runs[1].config.idle_connections == runs[0].idle_connections.aged(0.5)
    assert len(runs[0].idle_connections.client_s) > 1
    alone = simulate(configs[1])  # a run of its own starts with only the admin requests' connection
    assert ttfts_of(runs[1]) != ttfts_of(alone)


def ttfts_of(run: object) -> dict[tuple[int, int], float]:
    rows = run.rows  # type: ignore[attr-defined]
    return {(row.conversation, row.turn): row.ttft_ms for row in rows if row.ttft_ms is not None}


def overlapping(hops: HopCosts, drain_timeout_s: float = 120.0) -> FleetConfig:
    """Two-turn 128/256 conversations at 4/s for 8 s: many streams at once on two replicas."""
    return replication_run(2, "128/256", 4.0, 8.0, hops, drain_timeout_s=drain_timeout_s)


def test_a_busier_client_opens_as_many_connections_as_it_has_streams_open_at_once() -> None:
    run = simulate(overlapping(CONNECT))
    rows = [row for row in run.rows if row.sent]
    assert all(row.ok for row in rows) and rows
    # streams open at once: each turn from its send to its end (no client gaps: the stream ends at
    # its last chunk), the most at any send; the rows' stamps are rounded to 1 us
    spans = [(row.sent_s, row.sent_s + row.e2e_ms / 1000.0) for row in rows if row.e2e_ms is not None]
    peak = max(sum(1 for start, end in spans if start <= sent < end - 1e-5) for sent, _ in spans)
    opened = len(run.idle_connections.client_s)  # none was cut off: every one is idle at the end
    assert 1 < opened == peak < len({row.conversation for row in rows})
    # recorded as `ppd bench` records its own: the one its admin requests opened before the run is not
    assert run.run_info.connections_opened == opened - 1
    # and as `ppd proxy`'s decision log counts them: not those its health checks opened (one per
    # engine at the start, and one at each later check that found every connection to it busy)
    engines = run.idle_connections.engines_s
    num_checks = len(engines) * (1 + int(run.run_info.elapsed_s / HEALTH_INTERVAL_S))
    all_opened = sum(len(ages_s) for _, ages_s in engines)
    assert 1 < run.proxy["connections_opened"] < all_opened - len(engines)  # a check found all busy
    assert all_opened - run.proxy["connections_opened"] <= num_checks


def test_a_health_check_that_finds_every_connection_busy_opens_one_for_the_next_request() -> None:
    pool = ConnectionPool(connect_s=0.001, keepalive_s=60.0, check_interval_s=2.0, next_check_s=0.0)
    assert pool.take(0.5) == 0.0  # the check at 0 left an idle connection
    assert pool.take(1.0) == 0.001 and pool.num_opened == 1  # both busy
    assert pool.take(2.5) == 0.0  # the check at 2 found none idle and opened one: not counted
    assert pool.num_opened == 1
    pool.give(3.0)
    assert pool.idle_for_s(4.5) == (0.5,)  # the check at 4 took the one idle and gave it back
    assert pool.next_check_s == 6.0


def test_no_health_checks_without_an_interval() -> None:
    pool = ConnectionPool(connect_s=0.001, keepalive_s=15.0)
    assert pool.take(100.0) == 0.001
    with pytest.raises(ValueError, match="interval must be > 0"):
        ConnectionPool(connect_s=0.001, keepalive_s=15.0, check_interval_s=0.0)


def test_the_proxy_pools_check_health_as_ppd_proxy_does_and_hand_on_the_phase() -> None:
    configs = [overlapping(CONNECT), replace(overlapping(CONNECT), mode="auto")]
    runs = simulate_in_order(configs, pause_s=0.5)
    interval_s = HEALTH_INTERVAL_S
    left = runs[0].idle_connections
    # the checks go on from the first run's start (0, interval, ...): the next one after its end
    assert left.next_health_check_s == pytest.approx(-runs[0].run_info.elapsed_s % interval_s)
    handed_on = runs[1].config.idle_connections
    assert handed_on.next_health_check_s == pytest.approx(left.next_health_check_s - 0.5)


def test_a_stream_cut_off_by_the_drain_does_not_return_its_connection() -> None:
    whole = simulate(overlapping(CONNECT))
    cut = simulate(overlapping(CONNECT, drain_timeout_s=1.0))
    num_cut = sum(1 for row in cut.rows if row.sent and not row.ok)
    assert num_cut > 0
    assert len(cut.idle_connections.client_s) < len(whole.idle_connections.client_s)
