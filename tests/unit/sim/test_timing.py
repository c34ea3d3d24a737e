import json
from dataclasses import replace
from pathlib import Path

import pytest

from ppd.sim.timing import (
    PROFILES_DIR,
    ApiServer,
    BatchShape,
    ProfileError,
    StepCosts,
    api_overhead_s,
    decode_step_durations_s,
    kv_pull_duration_s,
    load_profile,
    prefill_attention_pairs,
    step_duration_s,
    transfer_duration_s,
)

COSTS = StepCosts(
    base_ms=5.0,
    prefill_min_ms=10.0,
    prefill_token_us=20.0,
    attention_pair_ns=1.0,
    decode_seq_us=10.0,
    decode_context_ns=40.0,
    cudagraph_max_tokens=2048,
    eager_step_ms=7.0,
    mixed_step_ms=3.0,
)


def test_step_duration_adds_each_term() -> None:
    shape = BatchShape(
        num_prefill_tokens=1000,
        num_attention_pairs=1_000_000,
        num_decode_seqs=10,
        num_decode_context_tokens=10_000,
    )
    expected_ms = 5.0 + 20.0 + 1.0 + 0.1 + 0.4
    assert step_duration_s(COSTS, shape) == pytest.approx(expected_ms / 1e3)


def test_small_prefill_pays_the_floor_and_decode_only_does_not() -> None:
    assert step_duration_s(COSTS, BatchShape(num_prefill_tokens=10)) == pytest.approx(15.0e-3)
    assert step_duration_s(COSTS, BatchShape(num_decode_seqs=1, num_decode_context_tokens=100)) == (
        pytest.approx((5.0 + 0.01 + 0.004) / 1e3)
    )


def test_a_step_above_the_cuda_graph_size_pays_the_eager_cost() -> None:
    at_limit = BatchShape(num_prefill_tokens=2040, num_decode_seqs=8)
    above = BatchShape(num_prefill_tokens=2040, num_decode_seqs=9)
    assert step_duration_s(COSTS, above) - step_duration_s(COSTS, at_limit) == pytest.approx(
        (7.0 + 0.01) / 1e3
    )


def test_a_prefill_chunk_beside_decodes_pays_the_mixed_step_cost_a_one_token_recompute_does_not() -> None:
    decodes = BatchShape(num_decode_seqs=8, num_decode_context_tokens=800)
    with_chunk = BatchShape(
        num_prefill_tokens=100, num_prefill_chunks=1, num_decode_seqs=8, num_decode_context_tokens=800
    )
    with_recompute = BatchShape(num_prefill_tokens=1, num_decode_seqs=8, num_decode_context_tokens=800)
    base_s = step_duration_s(COSTS, decodes)
    assert step_duration_s(COSTS, with_chunk) - base_s == pytest.approx((2.0 + 3.0) / 1e3)
    assert step_duration_s(COSTS, with_recompute) - base_s == pytest.approx(0.02 / 1e3)


def test_decodes_beside_a_prefill_chunk_pay_the_mixed_context_cost_per_context_token() -> None:
    costs = replace(COSTS, mixed_context_ns=10.0)
    decodes = BatchShape(num_decode_seqs=8, num_decode_context_tokens=800)
    with_chunk = BatchShape(
        num_prefill_tokens=100, num_prefill_chunks=1, num_decode_seqs=8, num_decode_context_tokens=800
    )
    assert step_duration_s(costs, decodes) == step_duration_s(COSTS, decodes)  # decodes alone: no term
    extra_s = step_duration_s(costs, with_chunk) - step_duration_s(COSTS, with_chunk)
    assert extra_s == pytest.approx(800 * 10e-9)


def test_optional_profile_keys_default_to_the_model_without_them(tmp_path: Path) -> None:
    data = json.loads(Path(PROFILES_DIR, "h200-llama3.1-8b.json").read_text())
    profile = load_profile("h200-llama3.1-8b")
    assert profile.async_scheduling is False and profile.step.mixed_context_ns == 0.0
    data["async_scheduling"] = True
    data["step"]["mixed_context_ns"] = 9.9
    path = tmp_path / "loaded.json"
    path.write_text(json.dumps(data))
    loaded = load_profile(str(path))
    assert loaded.async_scheduling is True and loaded.step.mixed_context_ns == 9.9
    assert profile.api_intake_turns == 0 and profile.api_serial_tokenizer is False
    data["api_intake_turns"], data["api_serial_tokenizer"] = 10, True
    path.write_text(json.dumps(data))
    loaded = load_profile(str(path))
    assert loaded.api_intake_turns == 10 and loaded.api_serial_tokenizer is True
    for key, bad in (("api_intake_turns", -1), ("api_intake_turns", 2.5), ("api_serial_tokenizer", 1)):
        path.write_text(json.dumps({**data, key: bad}))
        with pytest.raises(ProfileError, match=key):
            load_profile(str(path))


def test_a_kv_pull_costs_per_descriptor_so_bigger_blocks_pull_faster() -> None:
    profile = load_profile("h100-llama3.1-8b")
    # 8192 tokens: 512 blocks of 16 = 32,768 descriptors; 64 blocks of 128 = 4,096 (the probe: 125 vs 17 ms)
    block16 = kv_pull_duration_s(profile, 512, 16, profile.kv_bandwidth_gbps)
    block128 = kv_pull_duration_s(profile, 64, 128, profile.kv_bandwidth_gbps)
    assert block16 == pytest.approx(0.125, rel=0.1) and block128 == pytest.approx(0.017, rel=0.2)


def test_attention_pairs_are_causal() -> None:
    assert prefill_attention_pairs(0, 4) == 10  # 1+2+3+4
    assert prefill_attention_pairs(100, 1) == 101


def test_transfer_of_8192_tokens_at_8_3_gbps_is_about_129_ms() -> None:
    assert transfer_duration_s(8192, 131072, 8.3) == pytest.approx(0.1294, abs=1e-3)


def test_default_profile_loads_and_names_its_source() -> None:
    profile = load_profile("h100-llama3.1-8b")
    assert "calibration" in profile.source
    assert profile.kv_bytes_per_token == 131072
    assert api_overhead_s(profile, 0) == pytest.approx(profile.api_overhead_ms / 1e3)


def test_profile_with_unknown_key_is_rejected(tmp_path: Path) -> None:
    data = json.loads(Path(PROFILES_DIR, "h100-llama3.1-8b.json").read_text())
    data["step"]["bogus_ms"] = 1
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ProfileError, match="bogus_ms"):
        load_profile(str(path))
    with pytest.raises(ProfileError, match="no profile"):
        load_profile("no-such-profile")


def _api(**overrides: float) -> ApiServer:
    settings = {"stream_token_s": 80e-6, "step_cost_s": 0.0, "request_s": 0.0, "merge_max_seqs": 128,
                "max_load": 0.7, **overrides}  # fmt: skip
    return ApiServer(**settings)  # type: ignore[arg-type]


def test_the_api_server_paces_only_steps_too_big_to_merge_a_streams_tokens() -> None:
    api = _api(step_cost_s=0.3e-3)
    assert api.step_s(0.010, 64) == pytest.approx(0.010)  # 64 tokens stream in 5.4 ms: the engine paces
    # 128 take 10.5 ms, but a stream the server falls behind on gets merged chunks: still the engine
    assert api.step_s(0.010, 128) == pytest.approx(0.010)
    assert api.step_s(0.010, 256) == pytest.approx(0.3e-3 + 256 * 80e-6)  # 20.8 ms: the stream paces
    # the one merge rule, as EngineCore.start_decode_run asks it before pricing a run of steps
    assert api.merges_output(128) and not api.merges_output(129)


def test_recent_requests_take_their_share_from_a_paced_step() -> None:
    api = _api(request_s=0.010)
    for k in range(20):  # 20 requests in one second: 10 ms each of server time, ~0.2 of it
        api.intake_done_s(k * 0.05, 0.001, streaming=False, engine_busy=False)
    share = api.recent_requests_share(0.95)
    assert 0.1 < share < 0.2
    assert api.step_s(0.010, 256, since_s=0.95) == pytest.approx(256 * 80e-6 / (1 - share))
    assert api.step_s(0.010, 100, since_s=0.95) == 0.010  # merged: the engine's pace all the same
    assert api.recent_requests_share(10.0) < 1e-4  # it decays once they stop


def test_the_backlog_grows_while_the_engine_runs_ahead_and_drains_when_it_does_not() -> None:
    api = _api()
    engine_s, paced_s = 0.010, 256 * 80e-6
    api.record_step(1.0 + paced_s, engine_s, paced_s, 256)
    # the engine needed 10 ms of the 20.5: in the stretched step's time it ran 2.05 steps ahead
    assert api.backlog_s == pytest.approx(paced_s * (paced_s / engine_s - 1))
    backlog_s = api.backlog_s
    assert api.backlog_now_s(5.0, engine_busy=True) == backlog_s  # busy: still behind
    assert api.backlog_now_s(1.0 + paced_s + 0.004, engine_busy=False) == pytest.approx(backlog_s - 0.004)
    # a merged step (64 streams) of 10 ms leaves the server 10 ms to catch up
    api.record_step(1.0 + paced_s + engine_s, engine_s, engine_s, 64)
    assert api.backlog_s == pytest.approx(max(0.0, backlog_s - engine_s))
    api.record_step(9.0, engine_s, engine_s, 64)  # after idling: nothing left
    assert api.backlog_s == 0.0


def test_an_intake_shares_the_server_with_streaming_and_recent_requests_then_waits_the_backlog() -> None:
    api = _api(request_s=0.005)
    assert api.intake_done_s(1.0, 0.010, streaming=True) == pytest.approx(1.010)  # nothing else yet
    api.intake_load = 0.0
    api.start_step(0.010, 50)  # 4 ms of streaming per 10 ms step: load 0.4
    assert api.stream_load == pytest.approx(0.4)
    assert api.intake_done_s(1.0, 0.010, streaming=True) == pytest.approx(1.0 + 0.010 / 0.6)
    # that request now takes 5 ms/s of the server (decaying over ~1 s): the next one shares it too
    assert api.intake_done_s(1.0, 0.010, streaming=True) == pytest.approx(1.0 + 0.010 / (1 - 0.405))
    api.intake_load = 0.0
    assert api.intake_done_s(1.0, 0.010, streaming=False, engine_busy=False) == pytest.approx(1.010)
    api.intake_load = 0.0
    api.start_step(256 * 80e-6, 256)  # a stream-paced step: capped
    api.backlog_s, api.backlog_at_s = 0.5, 0.9
    assert api.intake_done_s(1.0, 0.010, streaming=True) == pytest.approx(1.0 + 0.010 / 0.3 + 0.5)


def test_an_intake_takes_its_loop_turns_behind_steps_of_more_than_one_output_chunk() -> None:
    api = _api(intake_turns=10, merge_max_seqs=200)  # the turns do not depend on the merge limit
    api.start_step(0.010, 100)  # 100 outputs, one chunk for the output handler: no turns wait
    assert api.intake_done_s(1.0, 0.010, streaming=True) == pytest.approx(1.0 + 0.010 / (1 - 0.7))  # capped
    api.start_step(0.025, 200)  # 200 streams, a 25 ms step: each turn waits one step's output
    load = 200 * 80e-6 / 0.025  # 0.64
    assert api.intake_done_s(1.0, 0.010, streaming=True) == pytest.approx(1.0 + 0.010 / (1 - load) + 0.25)
    assert api.intake_done_s(1.0, 0.010, streaming=False, engine_busy=False) == pytest.approx(1.010)
    assert _api().turns_wait_s() == 0.0  # off: the model without the queue


def test_prompts_that_come_while_the_tokenizer_thread_is_busy_wait_for_its_next_batch() -> None:
    api = _api(serial_tokenizer=True)

    def tokenized(now_s: float, tokenize_s: float) -> float:
        return api.intake_done_s(now_s, 0.002, False, engine_busy=False, tokenize_s=tokenize_s)

    # three 40 ms prompts at once: the first at once, the other two together in the batch after it
    assert [tokenized(1.0, 0.04) for _ in range(3)] == pytest.approx([1.042, 1.082, 1.082])
    # at 1.05 the batch of those two runs (1.04-1.08): a 10 ms prompt waits for it, with one at 1.07
    assert tokenized(1.05, 0.01) == pytest.approx(1.08 + 0.01 + 0.002)
    assert tokenized(1.07, 0.01) == pytest.approx(1.08 + 0.01 + 0.002)
    assert tokenized(2.0, 0.04) == pytest.approx(2.042)  # the thread is free again: at once
    side_by_side = _api()
    assert side_by_side.intake_done_s(1.0, 0.002, False, False, 0.04) == side_by_side.intake_done_s(
        1.0, 0.002, False, False, 0.04
    )


@pytest.mark.parametrize("num_seqs", [1, 7, 256, 2049])
def test_decode_step_durations_are_the_floats_step_duration_gives(num_seqs: int) -> None:
    # Decode runs price their steps this way; per-step driving uses step_duration_s: equal floats,
    # not approximately equal, or a run's times would drift from per-step driving's.
    for costs in (COSTS, load_profile("h100-llama3.1-8b").step):
        got = decode_step_durations_s(costs, num_seqs, 12_345, 9)
        shapes = [
            BatchShape(num_decode_seqs=num_seqs, num_decode_context_tokens=12_345 + step * num_seqs)
            for step in range(9)
        ]
        assert got == [step_duration_s(costs, shape) for shape in shapes]
