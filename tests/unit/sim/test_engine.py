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
