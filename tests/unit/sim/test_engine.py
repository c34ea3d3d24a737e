"""Engine.occupy: a KV pull holds D's step loop, so nothing is computed while it is posted."""

import asyncio

from ppd.sim.config import sim_config
from ppd.sim.engine import Engine
from ppd.sim.timing import load_profile


async def _first_token_after_a_hold() -> tuple[float, float, Engine]:
    engine = Engine(sim_config(load_profile("h100-llama3.1-8b"), time_scale=0.01))
    await engine.start()
    try:
        loop = asyncio.get_running_loop()
        hold = asyncio.create_task(engine.occupy(2.0))  # 2 modeled s = 20 ms here
        await asyncio.sleep(0)  # the hold is queued first, as a pull posted before the request came
        request = engine.new_request("r", [1, 2, 3, 4], 2)
        engine.submit(request)
        await hold
        hold_end_s = loop.time()
        while not request.is_finished:
            await request.output_ready.wait()
            request.output_ready.clear()
        assert request.first_token_s is not None
        return request.first_token_s, hold_end_s, engine
    finally:
        await engine.stop()


def test_a_request_waits_for_a_queued_kv_pull_hold() -> None:
    first_token_s, hold_end_s, engine = asyncio.run(_first_token_after_a_hold())
    assert first_token_s >= hold_end_s  # no step ran while the loop was held
    assert engine.stats.num_stalls == 1
    assert abs(engine.stats.stall_s - 0.02) < 1e-9  # the modeled hold, time-scaled


async def _steps_taking(lead_s: float) -> tuple[list[tuple[float, list[str]]], float]:
    """A busy engine (one long decode) and a request whose API time ends lead_s before the start of
    a step (on the modelled clock): the steps as decided (start, request ids) and that start."""
    engine = Engine(sim_config(load_profile("h100-llama3.1-8b"), time_scale=1.0))
    steps: list[tuple[float, list[str]]] = []
    engine.on_step = lambda step, start_s, end_s: steps.append(
        (start_s, [item.request.request_id for item in step.scheduled])
    )
    await engine.start()
    try:
        decoding = engine.new_request("decoding", [1, 2, 3, 4], 400)
        await engine.api_time(decoding)
        while len(steps) < 3:
            await asyncio.sleep(0.001)
        step_start_s = steps[-1][0]
        next_start_s = step_start_s + (step_start_s - steps[-2][0])  # decode steps of one length
        late = engine.new_request("new", [5, 6, 7, 8], 2)
        late.ready_s = next_start_s - lead_s
        await engine.api_time(late)
        while not late.is_finished:
            await late.output_ready.wait()
            late.output_ready.clear()
        return steps, next_start_s
    finally:
        await engine.stop()


def test_an_intake_joins_the_first_step_that_starts_after_its_api_time() -> None:
    for lead_s, joins_that_step in ((50e-6, True), (-50e-6, False)):
        steps, start_s = asyncio.run(_steps_taking(lead_s))
        taking = next(s for s, ids in steps if "new" in ids)
        # decided on the modelled clock, not by which of two real-time timers fired first
        assert abs(taking - start_s) < 1e-6 if joins_that_step else taking > start_s + 1e-6
