"""route_auto: turns and live instances in, a Route with its decision out (no HTTP)."""

from __future__ import annotations

import pytest

from fake_instance import Inst
from ppd.router.auto import AutoInputs, AutoModel, InstanceCosts
from ppd.router.policies import (
    AUTO_DIRECT,
    AUTO_PD,
    AUTO_REPLICA,
    ROUTE_PD,
    ROUTE_PPD_DIRECT,
    ROUTE_REPLICA,
    Candidates,
    NoHealthyUpstream,
    RouteOptions,
    Turn,
    auto_options,
    choose_route,
)

SPEED = InstanceCosts("", 0, 0, 5.0, 0.1, 10.0, 0.01)
INPUTS = AutoInputs(AutoModel(20.0, 0.005, 100.0), SPEED)


def topology(p: Inst, d: Inst) -> Candidates:
    return Candidates([p], [d], [p, d])  # 1p1d: P and D also serve as replicas


def route(turn: Turn, candidates: Candidates, rotation: int = 0):
    return choose_route("auto", turn, candidates, RouteOptions(rotation=rotation, auto=INPUTS))


def test_second_turn_goes_direct_to_the_idle_holder() -> None:
    p, d = Inst("http://p"), Inst("http://d")
    got = route(Turn(2, "http://d", num_prompt_tokens=1280, num_history_tokens=768), topology(p, d))
    assert (got.kind, got.target_url, got.prefill_url) == (ROUTE_PPD_DIRECT, d.url, None)
    assert got.decision == AUTO_DIRECT
    assert got.reason.startswith("auto-direct http://d: ttft") and "runner-up auto-" in got.reason


def test_new_conversations_spread_over_an_idle_pool_as_replicas() -> None:
    p, d = Inst("http://p"), Inst("http://d")
    routes = [route(Turn(1, None, 512), topology(p, d), rotation) for rotation in range(4)]
    assert {r.decision for r in routes} == {AUTO_REPLICA}
    assert {r.kind for r in routes} == {ROUTE_REPLICA}
    assert {r.target_url for r in routes} == {p.url, d.url}


def test_a_new_conversation_avoids_the_instance_full_of_decodes() -> None:
    p, d = Inst("http://p"), Inst("http://d", running_decodes=40)
    assert route(Turn(1, None, 512), topology(p, d)).target_url == p.url


def test_long_tail_is_prefilled_on_an_idle_p_rather_than_stall_the_holders_decodes() -> None:
    p, d = Inst("http://p", running_decodes=60), Inst("http://d", running_decodes=60)
    pd_only = Candidates([p], [d], [d])  # P is a prefill instance only
    turn = Turn(2, d.url, num_prompt_tokens=16_000, num_history_tokens=8_000)
    assert route(turn, pd_only).decision == AUTO_DIRECT  # P as busy as D: the holder's cache wins
    idle_p = Inst("http://p")
    got = route(turn, Candidates([idle_p], [d], [d]))
    assert (got.kind, got.prefill_url, got.target_url, got.decision) == (ROUTE_PD, idle_p.url, d.url, AUTO_PD)


def test_an_idle_instance_that_can_also_decode_takes_the_whole_conversation() -> None:
    p, d = Inst("http://p"), Inst("http://d", running_decodes=60)
    got = route(Turn(2, d.url, num_prompt_tokens=16_000, num_history_tokens=8_000), topology(p, d))
    assert (got.kind, got.target_url, got.decision) == (ROUTE_REPLICA, p.url, AUTO_REPLICA)


def test_unhealthy_holder_is_not_offered() -> None:
    p, d = Inst("http://p"), Inst("http://d", healthy=False)
    got = route(Turn(3, d.url, 900, 600), topology(p, d))
    assert (got.target_url, got.decision) == (p.url, AUTO_REPLICA)


def test_options_cover_direct_replicas_and_pairs_with_pull_sizes() -> None:
    p, d = Inst("http://p", outstanding_prefill_tokens=7, running_decodes=3), Inst("http://d")
    options = auto_options(Turn(2, d.url, 1000, 600), topology(p, d), 0, SPEED)
    described = [(o.decision, o.target.url, o.prefill.url if o.prefill else None, o.num_prefill_tokens,
                  o.num_kv_tokens) for o in options]  # fmt: skip
    assert described == [
        ("direct", d.url, None, 400, 0),
        ("replica", p.url, None, 1000, 0),
        ("pd", d.url, p.url, 1000, 400),  # D holds the history: it pulls only the new blocks
    ]
    assert (options[1].target.queued_prefill_tokens, options[1].target.running_decodes) == (7, 3)


def test_no_healthy_instance_is_a_503() -> None:
    p, d = Inst("http://p", healthy=False), Inst("http://d", healthy=False)
    with pytest.raises(NoHealthyUpstream):
        route(Turn(1, None, 10), topology(p, d))


def test_without_estimates_the_priors_are_used() -> None:
    p, d = Inst("http://p"), Inst("http://d")
    got = choose_route("auto", Turn(1, None, 512), topology(p, d), RouteOptions())
    assert got.decision == AUTO_REPLICA


def test_replicas_only_deployment_never_offers_pd() -> None:
    a, b = Inst("http://a"), Inst("http://b", running_decodes=5)
    got = route(Turn(1, None, 512), Candidates([], [], [a, b]))
    assert (got.decision, got.target_url) == (AUTO_REPLICA, a.url)
