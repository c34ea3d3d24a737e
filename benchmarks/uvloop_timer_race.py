"""Does a `ppd sim` intake that is due just before an engine step make that step? `ppd sim` decides a
step's batch when the step's `asyncio.sleep` returns (sim/engine.py, `_run_step` then `next_work`),
and an intake enters the scheduler when its API-time sleep returns (sim/server.py, `_generate`). On
the virtual clock (`ppd fleet`) an intake ready before the step's end is in its batch. Over HTTP the
two sleeps race on the event loop's timers: uvloop's (libuv's) are kept in whole milliseconds and
run in the order they were set within one, so an intake due a fraction of a millisecond before the
step, set after it, can still return after it and wait a whole step more.

Per loop and per lead d (the intake due d ms before the step; the step's sleep set first, 8 ms; the
intake's set 0-3 ms later, uniformly), the share of trials where the step's sleep returned first,
and the window: the lead, in ms, integrated over that share (the mean extra lead an intake needs).

    python benchmarks/uvloop_timer_race.py [--trials 200]

Ends with `uvloop_timer_race uvloop_window_ms=W asyncio_window_ms=A trials=N`. A figure of the machine
it runs on: the loops' timers, not ppd's code, set it.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import time
from collections.abc import Callable, Coroutine
from importlib.metadata import version
from typing import Any

import uvloop

STEP_S = 0.008
LEADS_MS = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0)


async def step_returns_first(lead_ms: float, rng: random.Random) -> bool:
    """One race: does the step's sleep (set first) return before the intake's (due lead_ms sooner)?"""
    order: list[str] = []

    async def sleeper(name: str, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        order.append(name)

    set_s = time.perf_counter()
    step = asyncio.ensure_future(sleeper("step", STEP_S))
    await asyncio.sleep(0)
    arrival_s = rng.uniform(0.0, 0.003)  # the intake comes at a random phase, the loop busy meanwhile
    while time.perf_counter() - set_s < arrival_s:
        pass
    elapsed_s = time.perf_counter() - set_s
    intake = asyncio.ensure_future(sleeper("intake", STEP_S - lead_ms / 1e3 - elapsed_s))
    await asyncio.gather(step, intake)
    return order[0] == "step"


async def shares(trials: int) -> list[float]:
    rng = random.Random(0)
    result = []
    for lead_ms in LEADS_MS:
        won = [await step_returns_first(lead_ms, rng) for _ in range(trials)]
        result.append(sum(won) / trials)
    return result


def window_ms(step_first: list[float]) -> float:
    """The lead integrated over the share that loses (trapezoids between the measured leads)."""
    pairs = list(zip(LEADS_MS, step_first, strict=True))
    return sum((b[0] - a[0]) * (a[1] + b[1]) / 2 for a, b in itertools.pairwise(pairs))


def measure(name: str, run: Callable[[Coroutine[Any, Any, list[float]]], list[float]], trials: int) -> float:
    step_first = run(shares(trials))
    for lead_ms, share in zip(LEADS_MS, step_first, strict=True):
        print(f"{name:8} intake due {lead_ms:4.2f} ms before the step: step first in {share:6.1%}")
    window = window_ms(step_first)
    print(f"{name:8} window {window:.3f} ms")
    return window


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200, help="races per lead and loop (default 200)")
    args = parser.parse_args()
    uv = measure(f"uvloop {version('uvloop')}", uvloop.run, args.trials)
    plain = measure("asyncio", asyncio.run, args.trials)
    print(f"uvloop_timer_race uvloop_window_ms={uv:.3f} asyncio_window_ms={plain:.3f} trials={args.trials}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
