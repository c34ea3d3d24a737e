"""Does `ppd sim`'s real-time driver put a new request into the step the virtual clock would? One
`Engine` in this process (time scale 1, no HTTP): background requests keep it decoding; probes (256
prompt tokens, one output token) arrive at random phases and go through the server's intake as
sim/server.py does (the API time's sleep, then submit). On the virtual clock (`ppd fleet`) a probe
joins the first step decided at or after its `ready_s`; here each probe's step is read off the
driver's own step ends. Per loop and background size it prints how many probes joined a later step
(late) or an earlier one, and for the late ones how long before the decision they were ready.

    python benchmarks/sim_intake_phase.py [--background 8,32,64] [--probes 300]

Ends with `sim_intake_phase uvloop_late_share=U asyncio_late_share=A probes=N` (over all background
sizes). Without HTTP, this is the driver alone: a request's bytes reaching the sim's handler late
(its loop writing streams, the proxy's forward) is not in it.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import random
import statistics
from collections.abc import Awaitable, Callable
from typing import Any

import uvloop

from ppd.sim.config import sim_config
from ppd.sim.core import Step
from ppd.sim.engine import TIMER_EARLY_S, Engine
from ppd.sim.request import Request
from ppd.sim.timing import DEFAULT_PROFILE, load_profile

PROMPT_TOKENS = 256
SETTLE_S = 0.5


async def intake(engine: Engine, request_id: str, prompt: list[int], max_tokens: int) -> Request:
    """The sim server's intake: the API time's sleep (woken early as the server does), then submit."""
    request = engine.new_request(request_id, prompt, max_tokens)
    api_s = engine.core.api_ready_s(request.arrival_s, request) - request.arrival_s
    await asyncio.sleep(max(0.0, api_s - TIMER_EARLY_S))
    engine.submit(request)
    return request


def record_step_ends(engine: Engine, ends_s: list[float]) -> None:
    """Wrap the driver's step so each step's modelled end (the next decision) is kept in ends_s."""
    run_step: Callable[[Step, float], Awaitable[float]] = engine._run_step

    async def recorded(step: Step, clock_s: float) -> float:
        end_s = await run_step(step, clock_s)
        ends_s.append(end_s)
        return end_s

    engine._run_step = recorded  # type: ignore[method-assign]


async def run_probes(num_background: int, num_probes: int) -> tuple[int, int, list[float], float]:
    """(late, early, late probes' lead before the decision in ms, median step ms)."""
    engine = Engine(sim_config(load_profile(DEFAULT_PROFILE), time_scale=1.0))
    ends_s: list[float] = []
    record_step_ends(engine, ends_s)
    await engine.start()
    rng = random.Random(1)

    def prompt() -> list[int]:
        return [rng.randrange(1000, 30000) for _ in range(PROMPT_TOKENS)]

    for i in range(num_background):
        await intake(engine, f"background-{i}", prompt(), 1_000_000)
    await asyncio.sleep(SETTLE_S)
    joined: list[tuple[float, int]] = []  # (ready_s, steps ended when its token came)

    async def probe(i: int) -> None:
        request = await intake(engine, f"probe-{i}", prompt(), 1)
        await request.output_ready.wait()
        joined.append((request.ready_s, len(ends_s)))

    tasks = []
    for i in range(num_probes):
        await asyncio.sleep(rng.uniform(0.01, 0.03))
        tasks.append(asyncio.ensure_future(probe(i)))
    await asyncio.gather(*tasks)
    await engine.stop()
    late, early, leads_ms = 0, 0, []
    for ready_s, num_ended in joined:
        first = bisect.bisect_left(ends_s, ready_s)  # the first decision at or after ready_s
        expected = first + 2  # that step ends at ends_s[first + 1]: then first + 2 have ended
        if num_ended > expected:
            late += 1
            leads_ms.append((ends_s[first] - ready_s) * 1e3)
        early += num_ended < expected
    steps_ms = [(b - a) * 1e3 for a, b in itertools.pairwise(ends_s)]
    return late, early, leads_ms, statistics.median(steps_ms)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--background", default="8,32,64", help="decoding requests, comma-separated")
    parser.add_argument("--probes", type=int, default=300, help="probes per run (default 300)")
    args = parser.parse_args()
    loops: dict[str, Callable[[Any], Any]] = {"uvloop": uvloop.run, "asyncio": asyncio.run}
    sizes = [int(n) for n in args.background.split(",")]
    shares = {}
    for name, run in loops.items():
        total_late = 0
        for num_background in sizes:
            late, early, leads_ms, step_ms = run(run_probes(num_background, args.probes))
            total_late += late
            leads = ", ".join(f"{lead:.2f}" for lead in sorted(leads_ms))
            print(
                f"{name:8} background={num_background:3} step_p50_ms={step_ms:5.2f} probes={args.probes}"
                f" late={late} ({late / args.probes:.1%}) earlier={early};"
                f" late ones ready before the step by [{leads}] ms"
            )
        shares[name] = total_late / (args.probes * len(sizes))
    print(
        f"sim_intake_phase uvloop_late_share={shares['uvloop']:.3f}"
        f" asyncio_late_share={shares['asyncio']:.3f} probes={args.probes * len(sizes)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
