"""Running estimates: the forgetting least-squares line, and what each completed turn teaches."""

from __future__ import annotations

import pytest

from ppd.router.estimates import Estimates, HopLoad, LinearFit, Priors, TurnObservation
from ppd.router.policies import Route, Turn
from ppd.router.records import TurnRecord, turn_observation


def test_fit_starts_at_the_prior() -> None:
    fit = LinearFit(prior_a=6.0, prior_b=0.1, prior_x=(1.0, 100.0))
    assert fit.coefficients() == pytest.approx((6.0, 0.1))


def test_fit_learns_a_line_and_the_prior_fades() -> None:
    fit = LinearFit(prior_a=6.0, prior_b=0.1, prior_x=(1.0, 100.0), forget=0.95)
    for index in range(200):
        x = float(index % 50)
        fit.observe(x, 2.0 + 0.5 * x)
    _, b = fit.coefficients()
    assert b == pytest.approx(0.5, rel=0.05)  # the prior (0.1) keeps only a small pull on the slope
    assert fit.predict(25.0) == pytest.approx(2.0 + 0.5 * 25.0, rel=0.02)


def test_fit_follows_a_change_within_a_few_dozen_observations() -> None:
    fit = LinearFit(prior_a=1.0, prior_b=1.0, prior_x=(0.0, 10.0), forget=0.9)
    for index in range(100):
        fit.observe(float(index % 10), 1.0 + float(index % 10))
    for index in range(60):
        fit.observe(float(index % 10), 4.0 * (1.0 + float(index % 10)))  # the engine got 4x slower
    assert fit.predict(5.0) == pytest.approx(24.0, rel=0.05)


def test_fit_with_one_x_keeps_the_prior_slope_and_moves_the_level() -> None:
    fit = LinearFit(prior_a=10.0, prior_b=0.02, prior_x=(512.0, 8192.0), forget=0.9)
    for _ in range(100):
        fit.observe(1000.0, 5.0)  # every observation at the same x: the slope is not identifiable
    assert fit.predict(1000.0) == pytest.approx(5.0, abs=0.3)
    assert fit.coefficients()[1] > 0.0


def test_fit_never_goes_negative() -> None:
    fit = LinearFit(prior_a=1.0, prior_b=1.0, prior_x=(0.0, 10.0), forget=0.5)
    for x in range(20):
        fit.observe(float(x), 100.0 - 10.0 * x)  # noise that would give a negative slope
    a, b = fit.coefficients()
    assert a >= 0.0 and b == 0.0


def observation(**overrides) -> TurnObservation:
    fields = dict(
        route_kind="replica", target_url="http://d", holder_url=None, num_prompt_tokens=1000,
        num_history_tokens=0, is_first_turn=True,
        usage={"prompt_tokens": 1000, "completion_tokens": 11,
               "prompt_tokens_details": {"cached_tokens": 200}},
        target_load=HopLoad(queued_prefill_tokens=300, running_decodes=4),
        target_sent_s=10.0, first_byte_s=10.05, last_byte_s=10.15,
    )  # fmt: skip
    fields.update(overrides)
    return TurnObservation(**fields)


def test_a_local_turn_teaches_prefill_step_and_output_length() -> None:
    estimates = Estimates(Priors(mean_output_tokens=100.0))
    estimates.observe(observation())
    counts = estimates.status()["observations"]
    assert counts == {"step": 1, "prefill": 1, "kv": 0, "outputs": 1}
    assert estimates.step._sums[1] == pytest.approx(5.0)  # x: 4 running + itself
    assert estimates.step._sums[2] == pytest.approx(10.0)  # y: 100 ms over 10 gaps
    assert estimates.prefill._sums[1] == pytest.approx(300 + 800)  # queued + uncached tokens
    step_ms = estimates.step.predict(4)
    assert estimates.prefill._sums[2] == pytest.approx(50.0 - step_ms)
    assert estimates.mean_output_tokens == pytest.approx(100.0 + 0.5 * (11 - 100.0))


def test_a_pd_turn_teaches_the_pull_of_the_tokens_d_lacked() -> None:
    estimates = Estimates()
    pulled = observation(route_kind="pd", holder_url="http://d", num_history_tokens=700,
                         target_load=HopLoad(0, 2), prefill_load=HopLoad(0, 0), prefill_ms=30.0)  # fmt: skip
    estimates.observe(pulled)
    assert estimates.kv.num_observations == 1
    assert estimates.kv._sums[1] == pytest.approx(300)  # D held 700 of the 1000 tokens
    assert estimates.prefill.num_observations == 1  # P's turn-1 answer time
    assert estimates.prefill._sums[1] == pytest.approx(1000)


def test_pull_is_not_learnt_behind_a_queue_nor_p_on_later_turns() -> None:
    estimates = Estimates()
    estimates.observe(observation(route_kind="pd", target_load=HopLoad(5000, 2), is_first_turn=False,
                                  prefill_load=HopLoad(0, 0), prefill_ms=30.0))  # fmt: skip
    assert estimates.kv.num_observations == 0 and estimates.prefill.num_observations == 0


def test_short_answers_do_not_teach_the_step_time() -> None:
    estimates = Estimates()
    estimates.observe(observation(usage={"prompt_tokens": 10, "completion_tokens": 2}))
    assert estimates.step.num_observations == 0 and estimates.num_outputs == 1


def test_inputs_carry_the_fits_and_slos() -> None:
    inputs = Estimates(Priors(step_base_ms=7.0, kv_fixed_ms=30.0)).inputs(slo_ttft_ms=500.0)
    assert inputs.speed.step_base_ms == pytest.approx(7.0)
    assert inputs.model.kv_fixed_ms == pytest.approx(30.0)
    assert (inputs.model.slo_ttft_ms, inputs.model.slo_tpot_ms) == (500.0, None)


def test_only_clean_completed_turns_are_observations() -> None:
    record = TurnRecord(started_s=1.0, route=Route("replica", "http://d"), turn=Turn(1, None, 10))
    assert turn_observation(record) is None  # still pending
    record.end("completed", 200)
    assert turn_observation(record) is not None
    record.end("errored", 502, "stream broken off")
    assert turn_observation(record) is None
    record.end("completed", 200)
    record.failovers = ["retried"]
    assert turn_observation(record) is None
