"""Failover routes (pure), ejection of failing instances with backoff, and the health check's part."""

from __future__ import annotations

import pytest

from fake_instance import Inst
from ppd.router.failover import (
    FAILOVER_NO_PREFILL,
    ROUTE_PD_FALLBACK,
    decode_only_route,
    prefill_failed_route,
    retry_route,
    route_with_failover,
    without_instance,
)
from ppd.router.instances import EJECT_AFTER_FAILURES, InstancePool
from ppd.router.policies import Candidates, NoHealthyUpstream, Route, RouteOptions, Turn


def candidates(prefills: list[Inst], decodes: list[Inst]) -> Candidates:
    return Candidates(prefills, decodes, prefills + decodes)


OPTIONS = RouteOptions()


def test_no_healthy_prefill_leaves_the_turn_to_the_holding_decode() -> None:
    pool = candidates([Inst("p", healthy=False)], [Inst("d1"), Inst("d2")])
    route, failover = route_with_failover("pd", Turn(3, "d2", 100, 80), pool, OPTIONS)
    assert (route.kind, route.target_url, route.prefill_url, failover) == (
        ROUTE_PD_FALLBACK,
        "d2",
        None,
        FAILOVER_NO_PREFILL,
    )


def test_no_healthy_prefill_new_conversation_goes_to_least_loaded_decode() -> None:
    pool = candidates([Inst("p", healthy=False)], [Inst("d1", outstanding_requests=3), Inst("d2")])
    route, _ = route_with_failover("ppd", Turn(1, None, 10, 0), pool, OPTIONS)
    assert route.target_url == "d2" and route.kind == ROUTE_PD_FALLBACK


def test_a_healthy_prefill_means_no_failover() -> None:
    pool = candidates([Inst("p")], [Inst("d1")])
    route, failover = route_with_failover("pd", Turn(1), pool, OPTIONS)
    assert (route.kind, route.prefill_url, failover) == ("pd", "p", None)


def test_no_healthy_decode_is_still_an_error() -> None:
    pool = candidates([Inst("p", healthy=False)], [Inst("d1", healthy=False)])
    with pytest.raises(NoHealthyUpstream, match="decode"):
        route_with_failover("pd", Turn(1), pool, OPTIONS)
    with pytest.raises(NoHealthyUpstream, match="decode"):
        decode_only_route(Turn(1), pool, OPTIONS, "why")


def test_replication_without_healthy_replica_does_not_fall_back() -> None:
    dead = Inst("r", healthy=False)
    with pytest.raises(NoHealthyUpstream, match="replica"):
        route_with_failover("replication", Turn(1), Candidates([], [], [dead]), OPTIONS)


def test_prefill_failed_route_keeps_the_chosen_decode() -> None:
    route = prefill_failed_route(Route("pd", "d1", "p", "x"), "timeout")
    assert (route.kind, route.target_url, route.prefill_url) == (ROUTE_PD_FALLBACK, "d1", None)
    assert "timeout" in route.reason


def test_retry_after_a_dead_holder_goes_through_prefill_to_another_decode() -> None:
    pool = candidates([Inst("p")], [Inst("d1", healthy=False), Inst("d2")])
    failed = Route("ppd-direct", "d1", None, "decode holds history")
    route = retry_route("ppd", Turn(2, "d1", 50, 40), pool, OPTIONS, failed)
    assert (route.kind, route.target_url, route.prefill_url) == ("pd", "d2", "p")
    assert route.reason.startswith("retry: d1 failed")


def test_retry_in_replication_picks_another_replica() -> None:
    replicas = [Inst("r1", healthy=False), Inst("r2")]
    route = retry_route(
        "replication", Turn(2, "r1"), Candidates([], [], replicas), OPTIONS, Route("replica", "r1")
    )
    assert route.target_url == "r2"


def test_a_retry_after_a_5xx_leaves_out_the_instance_that_answered_it() -> None:
    # A 5xx leaves the instance healthy (one failure of a streak), so the retry must not pick it again.
    pool = candidates([Inst("p")], [Inst("d1"), Inst("d2", outstanding_requests=5)])
    failed = Route("ppd-direct", "d1", None, "decode holds history")
    route = retry_route("ppd", Turn(2, "d1", 50, 40), without_instance(pool, "d1"), OPTIONS, failed)
    assert (route.kind, route.target_url, route.prefill_url) == ("pd", "d2", "p")
    replicas = without_instance(Candidates([], [], [Inst("r1"), Inst("r2", outstanding_requests=9)]), "r1")
    assert retry_route("replication", Turn(1), replicas, OPTIONS, Route("replica", "r1")).target_url == "r2"
    with pytest.raises(NoHealthyUpstream):
        retry_route("replication", Turn(1), without_instance(replicas, "r2"), OPTIONS, Route("replica", "r2"))


def pool_of_one() -> InstancePool:
    return InstancePool((), (), ("http://r:1",))


def test_unreachable_takes_an_instance_out_at_once() -> None:
    pool = pool_of_one()
    upstream = pool.replicas[0]
    pool.note_request_failure(upstream, "refused", True, now_s=100.0, interval_s=2.0, max_backoff_s=30.0)
    assert upstream.healthy is False and upstream.next_check_s <= 102.0 and upstream.ejected_until_s == 0.0


def test_repeated_failures_eject_with_a_hold_that_doubles() -> None:
    pool = pool_of_one()
    upstream = pool.replicas[0]
    holds = []
    for _ in range(EJECT_AFTER_FAILURES + 2):
        upstream.healthy = True
        pool.note_request_failure(upstream, "timeout", False, now_s=0.0, interval_s=2.0, max_backoff_s=30.0)
        holds.append(upstream.ejected_until_s if not upstream.healthy else None)
    assert holds == [None] * (EJECT_AFTER_FAILURES - 1) + [2.0, 4.0, 8.0]
    pool.note_request_success(upstream)
    assert upstream.request_failure_streak == 0 and upstream.num_failures == EJECT_AFTER_FAILURES + 2
