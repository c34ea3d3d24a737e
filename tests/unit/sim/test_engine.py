"""Engine.occupy: a KV pull holds D's step loop, so nothing is computed while it is posted."""

import asyncio
import time

import pytest

from ppd.sim.config import sim_config
from ppd.sim.engine import Engine
from ppd.sim.request import Request
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


async def _arrival_and_first_step() -> tuple[float, float, Request, list[float]]:
    engine = Engine(sim_config(load_profile("h100-llama3.1-8b"), time_scale=0.01))
    starts: list[float] = []
    engine.on_step = lambda step, start_s, end_s: starts.append(start_s)
    await engine.start()
    try:
        await asyncio.sleep(0.005)
        while time.monotonic() % 0.001 < 0.0006:  # late in a millisecond: uvloop's loop.time() is not
            pass
        before_s = time.monotonic()
        request = engine.new_request("r", [1, 2, 3, 4], 2)
        after_s = time.monotonic()
        engine.core.api_ready_s(request.arrival_s, request)  # as the server does; the API time is 0 here
        engine.submit(request)
        while not request.is_finished:
            await request.output_ready.wait()
            request.output_ready.clear()
        return before_s, after_s, request, starts
    finally:
        await engine.stop()


def test_the_modeled_clock_reads_now_exactly_not_a_whole_millisecond_before() -> None:
    # uvloop's loop.time() is the loop iteration's start cut to a whole millisecond: read there, a
    # request arrived and an idle engine's first step started up to ~1 ms early on the modeled clock
    uvloop = pytest.importorskip("uvloop")
    before_s, after_s, request, starts = uvloop.run(_arrival_and_first_step())
    assert before_s <= request.arrival_s <= after_s
    # ready = arrival + the API time: at time scale 0.01 about a microsecond, which can outlast the
    # call itself (once, under CI's load, ready_s was 0.9 us past after_s)
    assert 0.0 <= request.ready_s - request.arrival_s < 1e-4
    assert starts[0] == request.ready_s  # the idle engine's step starts when its request is ready, not before
