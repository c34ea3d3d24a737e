"""EngineCore on a hand-driven clock: holds before steps, step waiters, leases, freeing what finished."""

from dataclasses import replace

import pytest

from ppd.sim.config import sim_config
from ppd.sim.core import EngineCore, Hold, Step
from ppd.sim.kv_cache import block_hashes_of
from ppd.sim.timing import load_profile


def make_core(**overrides: object) -> EngineCore:
    return EngineCore(sim_config(load_profile("h100-llama3.1-8b"), **overrides))


def drive(core: EngineCore, now_s: float) -> float:
    """Run the core until idle; returns the clock."""
    while (work := core.next_work()) is not None:
        now_s += work.duration_s
        if isinstance(work, Hold):
            core.complete_hold(work)
        else:
            core.complete_step(work, now_s)
    return now_s


def test_a_queued_hold_runs_before_the_next_step_and_is_time_scaled() -> None:
    core = make_core(time_scale=0.5)
    core.queue_hold(0.2, "pull")
    core.add_request(core.new_request("r", list(range(1, 40)), 2, now_s=0.0))
    work = core.next_work()
    assert isinstance(work, Hold) and work.duration_s == 0.2
    assert core.complete_hold(work) == "pull"
    assert isinstance(core.next_work(), Step)
    assert core.stats.num_stalls == 1


def test_step_waiters_are_released_by_the_next_step_only_when_there_is_work() -> None:
    core = make_core()
    assert core.wait_for_next_step("early") is False  # idle: nothing to wait for
    request = core.new_request("r", list(range(1, 40)), 3, now_s=0.0)
    core.add_request(request)
    assert core.wait_for_next_step("pulled") is True
    step = core.next_work()
    assert isinstance(step, Step)
    events = core.complete_step(step, step.duration_s)
    assert events.released_waiters == ["pulled"]
    assert events.with_output == [request] and request.first_token_s == step.duration_s


def test_finished_requests_free_their_blocks_and_p_requests_lease_them() -> None:
    core = make_core(kv_lease_s=30.0)
    free_before = core.kv_cache.num_free_blocks
    plain = core.new_request("plain", list(range(1, 100)), 2, now_s=0.0)
    prefill = core.new_request("p", list(range(200, 300)), 1, now_s=0.0, hold_kv_on_finish=True)
    core.add_request(plain)
    core.add_request(prefill)
    drive(core, 0.0)
    assert prefill.lease_id is not None
    assert core.kv_cache.num_free_blocks == free_before - len(prefill.block_ids)
    assert core.take_lease(prefill.lease_id) is not None
    assert core.take_lease(prefill.lease_id) is None  # taken once
    assert core.kv_cache.num_free_blocks == free_before


def test_unpulled_leases_expire_on_the_drivers_clock() -> None:
    core = make_core(kv_lease_s=5.0)
    request = core.new_request("p", list(range(1, 50)), 1, now_s=0.0, hold_kv_on_finish=True)
    core.add_request(request)
    end_s = drive(core, 0.0)
    assert core.leases.expire_due(end_s + 4.9) == 0
    assert core.leases.expire_due(end_s + 5.0) == 1
    assert core.leases.num_expired == 1 and len(core.leases) == 0


def test_a_pull_is_priced_with_the_first_connection_once_per_pair() -> None:
    core = make_core()
    first, second = core.plan_pull("p0", 32), core.plan_pull("p0", 32)
    assert first.wait_s > second.wait_s  # kv_first_connect_ms only once
    assert first.hold_s == second.hold_s > 0 and first.num_tokens == 32 * 16


def test_streaming_slows_a_new_requests_intake_and_paces_a_step_it_cannot_keep_up_with() -> None:
    core = EngineCore(sim_config(load_profile("h200-llama3.1-8b")))
    profile = core.config.profile
    for k in range(256):
        core.add_request(core.new_request(f"d{k}", [k + 1] * 32, 50, now_s=0.0))
    now_s = 0.0
    while (work := core.next_work()) is not None and not all(
        r.num_output_tokens for r in core.scheduler.running
    ):
        now_s += work.duration_s
        core.complete_step(work, now_s)
    decode = core.next_work()
    assert isinstance(decode, Step)
    # 256 tokens take the API server ~19 ms to stream, longer than the engine's decode step
    stream_s = (profile.api_step_us + 256 * profile.api_stream_token_us) * 1e-6
    assert decode.duration_s == pytest.approx(stream_s) and decode.engine_s < stream_s
    now_s += decode.duration_s
    core.complete_step(decode, now_s)
    backlog_s = core.api.backlog_s
    assert backlog_s == pytest.approx(stream_s * (stream_s / decode.engine_s - 1))  # the engine ran ahead
    core.next_work()  # the next step is in flight while the new request comes in
    tokenize_s = profile.api_overhead_per_token_us * 1e-6 * 64  # in a worker thread: not slowed
    late = core.new_request("late", [7] * 64, 2, now_s=now_s)
    expected_s = profile.api_overhead_ms * 1e-3 / (1 - profile.api_max_load) + tokenize_s + backlog_s
    assert core.api_ready_s(now_s, late) - now_s == pytest.approx(expected_s)


def test_the_intake_queue_takes_turns_behind_a_step_of_256_outputs_and_tokenizes_in_turn() -> None:
    profile = replace(load_profile("h200-llama3.1-8b"), api_intake_turns=10, api_serial_tokenizer=True)
    core = EngineCore(sim_config(profile))
    for k in range(256):
        core.add_request(core.new_request(f"d{k}", [k + 1] * 32, 50, now_s=0.0))
    now_s = drive_until_all_decode(core)
    decode = core.next_work()  # 256 streams: two output chunks
    assert isinstance(decode, Step) and decode.num_outputs == 256
    tokenize_s = profile.api_overhead_per_token_us * 1e-6 * 64
    backlog_s = core.api.backlog_s  # what the server is behind on from the steps before
    first, second = (core.new_request(name, [7] * 64, 2, now_s=now_s) for name in ("x", "y"))
    first_s, second_s = core.api_ready_s(now_s, first), core.api_ready_s(now_s, second)
    intake_s = profile.api_overhead_ms * 1e-3 / (1 - profile.api_max_load)
    assert first_s - now_s == pytest.approx(intake_s + 10 * decode.duration_s + tokenize_s + backlog_s)
    assert second_s - first_s == pytest.approx(tokenize_s)  # the one tokenizer thread: in turn
    off = EngineCore(sim_config(load_profile("h200-llama3.1-8b")))
    assert off.api.intake_turns == 0 and off.api.serial_tokenizer is False


def drive_until_all_decode(core: EngineCore) -> float:
    """Run steps until every running request has its first token; returns the clock."""
    now_s = 0.0
    while True:
        work = core.next_work()
        assert isinstance(work, Step)
        now_s += work.duration_s
        core.complete_step(work, now_s)
        if all(r.num_output_tokens for r in core.scheduler.running):
            return now_s


def async_core() -> EngineCore:
    """An H100-profile core with vLLM's asynchronous scheduling turned on."""
    profile = replace(load_profile("h100-llama3.1-8b"), async_scheduling=True)
    return EngineCore(sim_config(profile))


def scheduled_ids(step: Step | Hold | None) -> list[str]:
    assert isinstance(step, Step)
    return [item.request.request_id for item in step.scheduled]


def test_async_scheduling_puts_a_request_that_came_during_a_step_into_the_batch_after_next() -> None:
    core = async_core()
    first = core.new_request("a", list(range(1, 40)), 4, now_s=0.0)
    core.add_request(first)  # idle engine: scheduled at once
    step1 = core.next_work()
    assert scheduled_ids(step1) == ["a"]
    core.add_request(core.new_request("b", list(range(100, 140)), 4, now_s=0.0))  # while step 1 runs
    assert core.num_waiting_requests == 1 and core.has_work()
    assert isinstance(step1, Step)
    core.complete_step(step1, step1.duration_s)
    step2 = core.next_work()
    assert scheduled_ids(step2) == ["a"]  # decided as step 1 began: without b
    assert isinstance(step2, Step)
    core.complete_step(step2, step1.duration_s + step2.duration_s)
    assert scheduled_ids(core.next_work()) == ["a", "b"]


def test_async_scheduling_takes_a_held_request_at_once_when_no_batch_was_decided_ahead() -> None:
    core = async_core()
    core.add_request(core.new_request("a", list(range(1, 40)), 1, now_s=0.0))
    step1 = core.next_work()
    held = core.new_request("b", list(range(100, 140)), 2, now_s=0.0)
    core.add_request(held)
    assert isinstance(step1, Step)
    assert core.complete_step(step1, step1.duration_s).finished  # "a" is done: nothing runs
    assert scheduled_ids(core.next_work()) == ["b"]
    other = core.new_request("c", list(range(200, 240)), 2, now_s=0.0)
    core.add_request(other)  # held while b's step runs, then aborted: it never runs
    assert core.abort(other) and core.num_waiting_requests == 0


def test_without_async_scheduling_a_request_joins_the_next_batch() -> None:
    core = make_core()
    core.add_request(core.new_request("a", list(range(1, 40)), 4, now_s=0.0))
    step1 = core.next_work()
    core.add_request(core.new_request("b", list(range(100, 140)), 4, now_s=0.0))
    assert isinstance(step1, Step)
    core.complete_step(step1, step1.duration_s)
    assert scheduled_ids(core.next_work()) == ["a", "b"]


def test_a_prompt_given_as_its_block_hashes_and_tail_is_the_same_request() -> None:
    prompt = list(range(1, 40))  # two full blocks of 16 and 7 tokens after them
    made, hashed = make_core(), make_core()
    request = made.new_request("r", prompt, 20, now_s=0.0)
    twin = hashed.new_hashed_request("r", 39, block_hashes_of(prompt, 16), prompt[32:], 20, 0.0)
    assert (twin.num_prompt_tokens, twin.prompt_tail_token_ids) == (39, prompt[32:])
    assert (twin.block_hashes, twin.answer_seed) == (request.block_hashes, request.answer_seed)
    for core, each in ((made, request), (hashed, twin)):
        core.add_request(each)
        drive(core, 0.0)
    # the output's blocks, the first of them completing the prompt's tail, hash the same
    assert twin.output_token_ids == request.output_token_ids
    whole = prompt + request.output_token_ids
    assert twin.block_hashes == request.block_hashes == block_hashes_of(whole, 16)[:3]


@pytest.mark.parametrize(
    ("num_hashes", "tail"), [(1, list(range(17, 40))), (3, []), (2, list(range(33, 39)))]
)
def test_a_hashed_prompt_must_be_its_full_blocks_and_the_rest(num_hashes: int, tail: list[int]) -> None:
    hashes = block_hashes_of(list(range(1, 49)), 16)[:num_hashes]
    with pytest.raises(ValueError, match="a prompt of 39 tokens in blocks of 16"):
        make_core().new_hashed_request("r", 39, hashes, tail, 2, 0.0)
