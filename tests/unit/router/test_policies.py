"""Routing rules, without HTTP: each mode's choice from explicit state."""

from __future__ import annotations

import pytest

from fake_instance import Inst
from ppd.router.policies import (
    ROUTE_PD,
    ROUTE_PPD_DIRECT,
    ROUTE_REPLICA,
    Candidates,
    NoHealthyUpstream,
    Route,
    RouteOptions,
    Turn,
    choose_route,
    estimated_prefill_tokens,
    least_loaded_decode,
    least_loaded_prefill,
)

P1, P2 = Inst("http://p1"), Inst("http://p2")
D1, D2 = Inst("http://d1"), Inst("http://d2")


def candidates(prefills=(P1, P2), decodes=(D1, D2), replicas=None) -> Candidates:
    replicas = replicas if replicas is not None else (*prefills, *decodes)
    return Candidates(list(prefills), list(decodes), list(replicas))


def test_prefill_is_the_one_with_fewest_outstanding_prefill_tokens() -> None:
    busy, idle = Inst("http://p1", outstanding_prefill_tokens=900), Inst("http://p2", outstanding_requests=5)
    assert least_loaded_prefill([busy, idle], rotation=0) is idle


def test_decode_is_the_one_with_fewest_outstanding_requests() -> None:
    busy, idle = Inst("http://d1", outstanding_requests=3), Inst("http://d2", outstanding_prefill_tokens=50)
    assert least_loaded_decode([busy, idle], rotation=0) is idle


def test_ties_rotate_so_an_idle_pool_spreads_work() -> None:
    chosen = {least_loaded_decode([D1, D2], rotation=r).url for r in range(4)}
    assert chosen == {D1.url, D2.url}


def test_unhealthy_instances_are_never_chosen() -> None:
    sick = Inst("http://d1", healthy=False)
    assert least_loaded_decode([sick, Inst("http://d2", outstanding_requests=99)], 0).url == "http://d2"
    with pytest.raises(NoHealthyUpstream, match="no healthy decode"):
        least_loaded_decode([sick], 0)


def test_pd_turn_one_goes_prefill_then_least_loaded_decode() -> None:
    busy_d1 = Inst("http://d1", outstanding_requests=2)
    route = choose_route("pd", Turn(1), candidates(decodes=(busy_d1, D2)), RouteOptions())
    assert route.kind == ROUTE_PD
    assert route.prefill_url in (P1.url, P2.url)
    assert route.target_url == D2.url


def test_pd_with_affinity_sends_later_turns_to_the_holder_even_when_busier() -> None:
    busy_d1 = Inst("http://d1", outstanding_requests=5)
    turn = Turn(2, holder_url=busy_d1.url)
    route = choose_route("pd", turn, candidates(decodes=(busy_d1, D2)), RouteOptions(pd_decode_affinity=True))
    assert (route.kind, route.target_url) == (ROUTE_PD, busy_d1.url)
    assert route.prefill_url is not None


def test_pd_without_affinity_picks_least_loaded_decode() -> None:
    busy_d1 = Inst("http://d1", outstanding_requests=5)
    turn = Turn(2, holder_url=busy_d1.url)
    options = RouteOptions(pd_decode_affinity=False)
    route = choose_route("pd", turn, candidates(decodes=(busy_d1, D2)), options)
    assert route.target_url == D2.url


def test_ppd_turn_one_is_pd() -> None:
    route = choose_route("ppd", Turn(1), candidates(), RouteOptions())
    assert route.kind == ROUTE_PD and route.prefill_url is not None


def test_ppd_later_turns_go_straight_to_the_holding_decode() -> None:
    busy_d2 = Inst("http://d2", outstanding_requests=9)
    route = choose_route(
        "ppd", Turn(3, holder_url=busy_d2.url), candidates(decodes=(D1, busy_d2)), RouteOptions()
    )
    assert route == Route(ROUTE_PPD_DIRECT, busy_d2.url, None, route.reason)


def test_ppd_unhealthy_holder_goes_prefill_to_another_decode() -> None:
    sick_d1 = Inst("http://d1", healthy=False)
    route = choose_route(
        "ppd", Turn(2, holder_url=sick_d1.url), candidates(decodes=(sick_d1, D2)), RouteOptions()
    )
    assert (route.kind, route.target_url) == (ROUTE_PD, D2.url)
    assert route.prefill_url is not None
    assert "holder unavailable" in route.reason


def test_ppd_holder_that_is_not_a_decode_instance_goes_prefill_to_decode() -> None:
    # e.g. after replication served the conversation on a prefill instance
    route = choose_route("ppd", Turn(2, holder_url=P1.url), candidates(), RouteOptions())
    assert route.kind == ROUTE_PD and route.target_url in (D1.url, D2.url)


def test_replication_new_conversation_least_loaded_then_sticky() -> None:
    r1, r2 = Inst("http://r1", outstanding_requests=1), Inst("http://r2")
    cands = candidates(replicas=(r1, r2))
    first = choose_route("replication", Turn(1), cands, RouteOptions())
    assert (first.kind, first.target_url) == (ROUTE_REPLICA, r2.url)
    r2.outstanding_requests = 10
    later = choose_route("replication", Turn(2, holder_url=r2.url), cands, RouteOptions())
    assert later.target_url == r2.url


def test_replication_rehomes_when_the_replica_is_unhealthy() -> None:
    r1, r2 = Inst("http://r1"), Inst("http://r2", healthy=False)
    route = choose_route(
        "replication", Turn(2, holder_url=r2.url), candidates(replicas=(r1, r2)), RouteOptions()
    )
    assert route.target_url == r1.url


def test_replication_after_ppd_keeps_the_decode_that_holds_the_history() -> None:
    route = choose_route("replication", Turn(2, holder_url=D2.url), candidates(), RouteOptions(rotation=0))
    assert route.target_url == D2.url


def test_no_healthy_prefill_is_an_error_naming_the_role() -> None:
    sick = Inst("http://p1", healthy=False)
    with pytest.raises(NoHealthyUpstream) as info:
        choose_route("pd", Turn(1), candidates(prefills=(sick,)), RouteOptions())
    assert info.value.role == "prefill"


def test_estimated_prefill_tokens_per_route() -> None:
    turn = Turn(2, holder_url=D1.url, num_prompt_tokens=1000, num_history_tokens=800)
    assert estimated_prefill_tokens(Route(ROUTE_PD, D1.url, P1.url), turn) == (1000, 0)
    assert estimated_prefill_tokens(Route(ROUTE_PPD_DIRECT, D1.url), turn) == (0, 200)
    assert estimated_prefill_tokens(Route(ROUTE_REPLICA, D2.url), turn) == (0, 1000)
