from ppd.sim.kv_cache import KVCache, block_hashes_of
from ppd.sim.request import Request
from ppd.sim.scheduler import Scheduler, SchedulerConfig, batch_shape


def make_request(name: str, prompt: list[int], max_tokens: int = 4, external: int = 0) -> Request:
    hashes = block_hashes_of(prompt, 16)
    return Request(
        request_id=name,
        num_prompt_tokens=len(prompt),
        prompt_tail_token_ids=prompt[len(hashes) * 16 :],
        max_tokens=max_tokens,
        block_hashes=hashes,
        answer_seed=1,
        num_external_tokens=external,
    )


def run_to_completion(scheduler: Scheduler) -> int:
    steps = 0
    while scheduler.has_work():
        scheduler.complete_step(scheduler.schedule())  # frees what finished
        steps += 1
    return steps


def test_long_prompt_is_chunked_by_the_token_budget() -> None:
    scheduler = Scheduler(SchedulerConfig(max_num_batched_tokens=100, max_num_seqs=8), KVCache(64, 16))
    scheduler.add(make_request("a", list(range(1, 251)), max_tokens=1))
    chunks = []
    while scheduler.has_work():
        step = scheduler.schedule()
        chunks.append(step[0].num_new_tokens)
        with_output, _ = scheduler.complete_step(step)
        assert bool(with_output) == (sum(chunks) == 250)  # a token only after the whole prompt
    assert chunks == [100, 100, 50]


def test_running_decodes_come_before_new_prefill() -> None:
    scheduler = Scheduler(SchedulerConfig(max_num_batched_tokens=64, max_num_seqs=8), KVCache(64, 16))
    first = make_request("a", list(range(1, 33)), max_tokens=5)
    scheduler.add(first)
    scheduler.complete_step(scheduler.schedule())
    scheduler.add(make_request("b", list(range(100, 300))))
    step = scheduler.schedule()
    assert [(s.request.request_id, s.num_new_tokens) for s in step] == [("a", 1), ("b", 63)]
    shape = batch_shape(step)
    assert (shape.num_decode_seqs, shape.num_prefill_tokens) == (1, 63)


def test_repeated_prompt_hits_whole_blocks_but_recomputes_the_last_token() -> None:
    scheduler = Scheduler(SchedulerConfig(8192, 8), KVCache(64, 16))
    prompt = list(range(1, 33))  # exactly two blocks
    scheduler.add(make_request("a", prompt))
    run_to_completion(scheduler)
    again = make_request("b", prompt)
    scheduler.add(again)
    step = scheduler.schedule()
    assert again.num_cached_tokens == 16  # the last token is always computed, so block 2 is not a hit
    assert step[0].num_new_tokens == 16
    longer = make_request("c", [*prompt, 7, 8, 9])
    scheduler.add(longer)
    scheduler.schedule()
    assert longer.num_cached_tokens == 32


def test_pulled_prompt_counts_as_cached_and_only_the_last_token_is_computed() -> None:
    scheduler = Scheduler(SchedulerConfig(8192, 8), KVCache(64, 16))
    request = make_request("d", list(range(1, 41)), external=40)
    scheduler.add(request)
    step = scheduler.schedule()
    assert request.num_cached_tokens == 40
    assert step[0].num_new_tokens == 1
    with_output, _ = scheduler.complete_step(step)
    assert with_output == [request]
    assert scheduler.kv_cache.count_cached(request.block_hashes) == 2  # pulled full blocks now cached


def test_out_of_blocks_preempts_the_newest_request_and_everything_finishes() -> None:
    scheduler = Scheduler(SchedulerConfig(8192, 8), KVCache(6, 16))  # 96 tokens of KV
    requests = [
        make_request(name, [i] * 30 + list(range(1, 11)), max_tokens=20)
        for i, name in enumerate("abc", start=1000)
    ]
    for request in requests:
        scheduler.add(request)
    run_to_completion(scheduler)
    assert scheduler.num_preemptions >= 1
    assert all(r.num_output_tokens == 20 for r in requests)
    assert scheduler.kv_cache.num_free_blocks == 6
