"""Does the holder still have the history: the check of one turn, and the model learnt from checks."""

from __future__ import annotations

import pytest

from ppd.router.conversations import Identity
from ppd.router.core import Router, RouterConfig
from ppd.router.holding import (
    LOST_BELOW,
    HistoryCheck,
    HoldingModel,
    age_bucket,
    history_check,
    size_bucket,
)
from ppd.router.records import TurnRecord


def test_a_check_needs_the_holder_a_history_and_usage() -> None:
    assert history_check(None, "d", 5.0, 1000, 1200, 0) is None  # a new conversation
    assert history_check("d1", "d2", 5.0, 1000, 1200, 0) is None  # not the holder: nothing to expect
    assert history_check("d", "d", 5.0, 0, 1200, 0) is None
    assert history_check("d", "d", 5.0, 1000, None, 0) is None  # usage without prompt tokens
    assert history_check("d", "d", 5.0, 1000, 1200, None) is None  # no prompt_tokens_details
    check = history_check("d", "d", 5.0, 1000, 1200, 992)
    assert check == HistoryCheck("d", 5.0, 1000, 992)
    assert check is not None and not check.lost and check.num_missed_tokens == 8


def test_the_reusable_history_is_at_most_the_prompt_less_its_last_token() -> None:
    check = history_check("d", "d", 1.0, 5000, 3000, 2999)  # a prompt that repeats less than all of it
    assert check is not None and check.num_history_tokens == 2999 and check.held_share == 1.0


def test_lost_means_less_than_half_found() -> None:
    assert HistoryCheck("d", 1.0, 1000, int(1000 * LOST_BELOW) - 1).lost
    assert not HistoryCheck("d", 1.0, 1000, int(1000 * LOST_BELOW)).lost
    assert HistoryCheck("d", 1.0, 1000, 0).num_missed_tokens == 1000


def test_buckets_are_log2() -> None:
    assert [age_bucket(a) for a in (0.0, 0.9, 1.0, 1.9, 2.0, 300.0, 1e9)] == [0, 0, 1, 1, 2, 9, 16]
    assert [size_bucket(n) for n in (0, 1, 2, 3, 4, 1023, 1024, 10**9)] == [0, 1, 2, 2, 3, 10, 11, 20]


def test_the_model_starts_from_held_and_learns_per_holder_age_and_size() -> None:
    model = HoldingModel()
    assert model.expected_share("d", 100.0, 8000) == 1.0 and model.lost_share is None
    for _ in range(50):
        model.observe(HistoryCheck("d", 100.0, 8000, 0))  # old histories are gone
        model.observe(HistoryCheck("d", 0.5, 8000, 8000))  # fresh ones are there
    assert model.expected_share("d", 100.0, 8000) < 0.1
    assert model.expected_share("d", 0.5, 8000) == pytest.approx(1.0)
    assert model.expected_share("d", 110.0, 500) < 0.2  # another size of the same age: the age's mean
    assert model.expected_share("other", 100.0, 8000) == 1.0  # another holder: nothing learnt yet
    assert model.num_checks == 100 and model.num_lost == 50 and model.lost_share == 0.5
    status = model.status()
    assert status["checks"] == 100 and status["missed_token_share"] == 0.5


def test_recent_observations_weigh_more() -> None:
    model = HoldingModel()
    for _ in range(200):
        model.observe(HistoryCheck("d", 10.0, 1000, 1000))
    for _ in range(100):
        model.observe(HistoryCheck("d", 10.0, 1000, 0))  # the cache came under pressure
    assert model.expected_share("d", 10.0, 1000) < 0.2


def _serve(router: Router, session: str, num_prompt: int, num_cached: int, now_s: float) -> TurnRecord:
    record = TurnRecord(started_s=now_s)
    route = router.decide(record, Identity(session_id=session), num_prompt, now_s)
    if route.prefill_url is not None:
        router.finish(router.begin(record, "prefill", now_s), now_s + 0.05, succeeded=True)
    hop = router.begin(record, "target", now_s + 0.05)
    router.first_byte(hop, now_s + 0.08)
    router.finish(hop, now_s + 0.5, succeeded=True, last_byte=True)
    details = {"cached_tokens": num_cached}
    record.usage = {"prompt_tokens": num_prompt, "completion_tokens": 100, "prompt_tokens_details": details}
    router.commit(record, now_s + 0.5)
    router.learn(record)
    return record


def test_the_router_checks_turns_its_holder_served_and_learns_the_share() -> None:
    router = Router(RouterConfig("ppd", prefill_urls=("p",), decode_urls=("d",)))
    first = _serve(router, "c", 8000, 0, now_s=0.0)
    assert first.history_check is None  # P -> D: D's cached tokens count the pulled KV
    second = _serve(router, "c", 9000, 0, now_s=300.0)  # the holder lost all of it
    assert second.route is not None and second.route.kind == "ppd-direct"
    assert second.turn is not None and second.turn.history_age_s == pytest.approx(299.5)
    assert second.history_check == HistoryCheck("d", 299.5, 8100, 0)
    assert router.holding.num_lost == 1 and router.holding.num_history_tokens == 8100
    third = _serve(router, "c", 10000, 9000, now_s=301.0)  # a second later it is all there
    assert third.history_check is not None and not third.history_check.lost
    # one observation each, pulled toward the prior (held) by PRIOR_WEIGHT observations' worth
    assert router.holding.expected_share("d", 300.0, 8100) == pytest.approx(4 / 9)  # its cell
    assert router.holding.expected_share("d", 300.0, 20000) == pytest.approx(2 / 3)  # its age only
    assert router.holding.expected_share("d", 0.6, 9100) > 0.99


def test_auto_leaves_a_busy_holder_that_lost_the_history_for_p_to_d() -> None:
    config = RouterConfig("auto", prefill_urls=("p",), decode_urls=("d",))
    trusting, learnt = Router(config), Router(config)
    for _ in range(40):  # the holder was always found empty at this age and size
        learnt.holding.observe(HistoryCheck("d", 300.0, 8100, 0))
    routes = {}
    for name, router in (("trusting", trusting), ("learnt", learnt)):
        _serve(router, "c", 8000, 0, now_s=0.0)
        for index in range(32):  # d is decoding for 32 other conversations
            record = TurnRecord(started_s=299.0)
            router.decide(record, Identity(session_id=f"busy-{index}"), 100, 299.0)
            router.first_byte(router.begin(record, "target", 299.0), 299.1)
        record = TurnRecord(started_s=300.0)
        routes[name] = router.decide(record, Identity(session_id="c"), 9000, 300.0)
        assert record.turn is not None
        expected_share = 1.0 if name == "trusting" else pytest.approx(0.05, abs=0.05)
        assert record.turn.history_held_share == expected_share
    # Trusting, the holder would prefill only the 900 new tokens beside its 32 decodes: cheapest.
    assert routes["trusting"].kind == "ppd-direct"
    # Knowing it lost the history, it would prefill all 9000 there and stall its decodes: P does it.
    assert routes["learnt"].prefill_url == "p" and routes["learnt"].target_url == "d"
