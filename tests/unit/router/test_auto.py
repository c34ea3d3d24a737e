"""The auto mode's cost model (auto.py): the formula by hand, and which option it prefers when."""

from __future__ import annotations

import pytest

from ppd.router.auto import (
    DECISION_DIRECT,
    DECISION_PD,
    DECISION_REPLICA,
    AutoModel,
    InstanceCosts,
    Option,
    choose,
    estimate,
)

# Round numbers: step(N) = 5 + 0.1 N ms, prefill 10 ms + 0.01 ms/token, KV 20 ms + 0.005 ms/token.
MODEL = AutoModel(kv_fixed_ms=20.0, kv_ms_per_token=0.005, mean_output_tokens=100.0)


def instance(url: str, queued: int = 0, decodes: int = 0) -> InstanceCosts:
    return InstanceCosts(url, queued, decodes, 5.0, 0.1, 10.0, 0.01)


def test_local_option_costs_match_the_docstring_formula() -> None:
    holder = instance("h", queued=1000, decodes=10)
    got = estimate(Option(DECISION_DIRECT, holder, None, 500), MODEL)
    ttft = 10 + (5 + 0.1 * 10) + 0.01 * (1000 + 500)  # F + step(N) + c (Q + n) = 31
    assert got.ttft_ms == pytest.approx(ttft)
    assert got.tpot_ms == pytest.approx(5 + 0.1 * 11)
    decode = 100 * (5 + 0.1 * 11) + 0.5 * 100 * 0.1 * 10  # own steps + slowing the 10 others
    stall = 10 * (0.01 * 500 + 5)  # the 10 running decodes wait for the prefill step
    work = 0.01 * 500  # the GPU time taken from later turns
    assert got.cost_ms == pytest.approx(ttft + decode + stall + work)
    assert got.meets_slo


def test_pd_option_adds_the_pull_and_the_targets_first_step() -> None:
    prefill, target = instance("p", queued=0, decodes=0), instance("d", queued=200, decodes=4)
    got = estimate(Option(DECISION_PD, target, prefill, 1000, num_kv_tokens=600), MODEL)
    at_p = 10 + 5 + 0.01 * 1000
    pull = 20 + 0.005 * 600 + 0.01 * 200 + (5 + 0.1 * 4)
    assert got.ttft_ms == pytest.approx(at_p + pull)
    decode = 100 * (5 + 0.1 * 5) + 0.5 * 100 * 0.1 * 4
    stall = 0 * (0.01 * 1000 + 5) + 4 * 5  # nothing decodes on P; D runs one step for the pulled KV
    assert got.cost_ms == pytest.approx(at_p + pull + decode + stall + 0.01 * 1000)


def test_idle_holder_serves_the_next_turn_directly() -> None:
    holder, other = instance("h"), instance("o")
    options = [
        Option(DECISION_DIRECT, holder, None, 500),
        Option(DECISION_REPLICA, other, None, 1800),
        Option(DECISION_PD, holder, other, 1800, num_kv_tokens=500),
    ]
    assert choose(options, MODEL)[0].decision == DECISION_DIRECT


def test_a_holder_with_a_long_queue_loses_the_turn_to_an_idle_replica() -> None:
    busy_holder, idle = instance("h", queued=20_000, decodes=2), instance("o")
    options = [Option(DECISION_DIRECT, busy_holder, None, 500), Option(DECISION_REPLICA, idle, None, 1800)]
    assert choose(options, MODEL)[0].decision == DECISION_REPLICA


def test_a_slightly_busier_holder_keeps_the_turn_rather_than_recompute_the_history() -> None:
    holder, other = instance("h", queued=600, decodes=3), instance("o", decodes=2)
    options = [Option(DECISION_DIRECT, holder, None, 500), Option(DECISION_REPLICA, other, None, 1800)]
    assert choose(options, MODEL)[0].decision == DECISION_DIRECT


def test_long_prompt_goes_to_an_idle_prefill_when_the_target_is_full_of_decodes() -> None:
    prefill, decode = instance("p"), instance("d", decodes=60)
    local = Option(DECISION_REPLICA, decode, None, 8000)
    remote = Option(DECISION_PD, decode, prefill, 8000, num_kv_tokens=8000)
    # Locally the 60 decodes would stall for the whole 80 ms prefill; remotely only for one step.
    assert choose([local, remote], MODEL)[0].decision == DECISION_PD


def test_new_conversations_go_where_fewer_decodes_run() -> None:
    crowded, quiet = instance("a", decodes=50), instance("b", decodes=5)
    options = [Option(DECISION_REPLICA, crowded, None, 500), Option(DECISION_REPLICA, quiet, None, 500)]
    assert choose(options, MODEL)[0].target.url == "b"


def test_an_option_meeting_the_slo_beats_a_cheaper_one_that_does_not() -> None:
    model = AutoModel(20.0, 0.005, 100.0, slo_ttft_ms=40.0)
    fast_but_costly = Option(DECISION_REPLICA, instance("a", decodes=200), None, 500)  # ttft 40, many stalled
    slow = Option(DECISION_REPLICA, instance("b", queued=5000), None, 500)  # ttft 70
    assert estimate(fast_but_costly, model).cost_ms > estimate(slow, model).cost_ms
    assert choose([slow, fast_but_costly], model)[0] is fast_but_costly
    assert choose([slow, fast_but_costly], MODEL)[0] is slow  # without the SLO: cheapest


def test_when_no_option_meets_the_slo_the_cheapest_is_chosen() -> None:
    model = AutoModel(20.0, 0.005, 100.0, slo_ttft_ms=1.0, slo_tpot_ms=1.0)
    options = [Option(DECISION_REPLICA, instance("a", decodes=9), None, 500),
               Option(DECISION_REPLICA, instance("b"), None, 500)]  # fmt: skip
    chosen, expected = choose(options, model)
    assert chosen.target.url == "b" and not expected.meets_slo


def test_ties_keep_the_order_given() -> None:
    first, second = instance("a"), instance("b")
    options = [Option(DECISION_REPLICA, first, None, 500), Option(DECISION_REPLICA, second, None, 500)]
    assert choose(options, MODEL)[0].target is first
    assert choose(options[::-1], MODEL)[0].target is second


def test_choose_needs_an_option() -> None:
    with pytest.raises(ValueError, match="at least one option"):
        choose([], MODEL)


def test_the_default_is_kept_unless_another_option_is_clearly_cheaper() -> None:
    holder, other = instance("h", queued=2800), instance("o")
    direct = Option(DECISION_DIRECT, holder, None, 500)
    elsewhere = Option(DECISION_REPLICA, other, None, 1800)
    assert estimate(elsewhere, MODEL).cost_ms < estimate(direct, MODEL).cost_ms  # a little cheaper
    assert choose([direct, elsewhere], MODEL)[0] is elsewhere
    assert choose([direct, elsewhere], MODEL, default=direct)[0] is direct
    swamped = Option(DECISION_DIRECT, instance("h", queued=200_000), None, 500)
    assert choose([swamped, elsewhere], MODEL, default=swamped)[0] is elsewhere


def test_an_option_that_alone_meets_the_slo_replaces_the_default() -> None:
    model = AutoModel(20.0, 0.005, 100.0, slo_ttft_ms=60.0)
    default = Option(DECISION_DIRECT, instance("h", queued=5_000), None, 500)  # ttft 10 + 5 + 55
    other = Option(DECISION_REPLICA, instance("o"), None, 1800)  # ttft 33
    assert estimate(other, model).cost_ms > 0.8 * estimate(default, model).cost_ms  # not 20% cheaper
    assert choose([default, other], model, default=default)[0] is other
