"""The asyncio driver of the engine core (core.py): real time for `ppd sim`.

It asks the core for work, sleeps until that work's modeled end, hands it back and wakes the streams
that got tokens. The loop keeps a modeled clock: each step ends exactly `step duration x time_scale`
after the previous one while the engine is busy. Drift is how late real time wakes up past that
modeled end; it is measured every step and exposed in /metrics, so a sim that cannot keep up is never
mistaken for a slow model.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from ppd.sim.config import SimConfig
from ppd.sim.core import EngineCore, EngineStats, Hold, Step, StepEvents
from ppd.sim.kv_cache import KVCache
from ppd.sim.kv_handoff import KVLease, LeaseTable
from ppd.sim.request import Request
from ppd.sim.scheduler import Scheduler

# If real time falls this far behind the modeled clock (a stalled machine), restart the clock from
# now instead of racing through back-to-back steps to catch up.
_RESYNC_LAG_S = 0.5

# Event-loop timers fire up to ~1 ms late (millisecond resolution); waking this much early centres
# the real emission time on the modeled one instead of always trailing it.
TIMER_EARLY_S = 0.0005


def model_now_s() -> float:
    """Now on the modeled clock: CLOCK_MONOTONIC, read exactly. Not loop.time(): uvloop's is libuv's
    uv_now, the loop iteration's start cut to a whole millisecond, which put a request's arrival
    (hence its API time's end) and an idle engine's first step up to ~1 ms early, and so every step of
    a busy engine ahead of the requests coming to it (the H200 host's traced grid: steps started at a
    whole millisecond before their request's ready time). The asyncio loop's time() is this clock.
    Timers stay on loop.time(), their own base."""
    return time.monotonic()


class Engine:
    """One simulated vLLM engine on the event loop: an EngineCore and the task that paces it."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.core = EngineCore(config)
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Called with (step, modeled start, modeled end) as each step is decided (the server's
        # per-request trace, PPD_TURN_TRACE); None, the default, costs one test per step.
        self.on_step: Callable[[Step, float, float], None] | None = None

    @property
    def kv_cache(self) -> KVCache:
        return self.core.kv_cache

    @property
    def scheduler(self) -> Scheduler:
        return self.core.scheduler

    @property
    def leases(self) -> LeaseTable:
        return self.core.leases

    @property
    def stats(self) -> EngineStats:
        return self.core.stats

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ppd-sim-engine")

    async def stop(self) -> None:
        self.core.leases.release_all()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def new_request(
        self,
        request_id: str,
        prompt_token_ids: list[int],
        max_tokens: int,
        *,
        hold_kv_on_finish: bool = False,
    ) -> Request:
        """A request arriving now; its answer words depend only on the seed and the prompt."""
        now_s = model_now_s()
        return self.core.new_request(
            request_id, prompt_token_ids, max_tokens, now_s, hold_kv_on_finish=hold_kv_on_finish
        )

    def submit(self, request: Request) -> None:
        self.core.add_request(request)
        self._wakeup.set()

    def abort(self, request: Request) -> None:
        """Stop a request (client went away); its blocks go back to the free queue."""
        if self.core.abort(request):
            request.output_ready.set()
            self._wakeup.set()

    def take_lease(self, lease_id: str) -> KVLease | None:
        """As P: hand a lease's blocks to a D; freed blocks may let waiting requests in."""
        lease = self.core.take_lease(lease_id)
        if lease is not None:
            self._wakeup.set()
        return lease

    async def occupy(self, duration_s: float) -> None:
        """Hold the step loop for duration_s (modeled, before time scaling) between two steps, FIFO
        with other holds: how vLLM's D spends posting a NIXL read (no step runs meanwhile)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.core.queue_hold(duration_s * self.config.time_scale, done)
        self._wakeup.set()
        await done

    async def after_next_step(self) -> None:
        """Return when the step now due has run, or at once if the engine has nothing to run: how a
        finished NIXL read reaches vLLM's scheduler (reported with a step's output, scheduled after)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.core.wait_for_next_step(done):
            await done

    async def _run(self) -> None:
        clock_s = model_now_s()
        idle = True
        while True:
            work = self.core.next_work()
            if work is None:
                self._wakeup.clear()
                await self._wakeup.wait()
                if not self.core.has_holds():
                    clock_s = self.core.idle_clock_start(clock_s, model_now_s())
                idle = True
                continue
            if isinstance(work, Hold):
                if idle:
                    clock_s = max(clock_s, model_now_s())
                clock_s = await self._run_hold(work, clock_s)
            else:
                clock_s = await self._run_step(work, clock_s)
            idle = False

    async def _run_hold(self, hold: Hold, clock_s: float) -> float:
        """Let a hold pass on the modeled clock; returns the clock after it."""
        loop = asyncio.get_running_loop()
        end_s = clock_s + hold.duration_s
        delay_s = end_s - loop.time() - TIMER_EARLY_S
        await asyncio.sleep(delay_s if delay_s > 0 else 0)
        now_s = model_now_s()
        done = self.core.complete_hold(hold)
        if isinstance(done, asyncio.Future) and not done.done():
            done.set_result(None)
            # Let the puller ask for the next step's end (after_next_step) before that step is
            # scheduled.
            await asyncio.sleep(0)
        return end_s if now_s - end_s < _RESYNC_LAG_S else now_s

    async def _run_step(self, step: Step, clock_s: float) -> float:
        """Let a step pass on the modeled clock, apply it, wake its streams; returns the clock after."""
        loop = asyncio.get_running_loop()
        end_s = clock_s + step.duration_s
        if self.on_step is not None:
            self.on_step(step, clock_s, end_s)
        delay_s = end_s - loop.time() - TIMER_EARLY_S
        await asyncio.sleep(delay_s if delay_s > 0 else 0)
        now_s = model_now_s()
        self.core.stats.record_drift(max(0.0, now_s - end_s))
        self._deliver(self.core.complete_step(step, now_s))
        return end_s if now_s - end_s < _RESYNC_LAG_S else now_s

    def _deliver(self, events: StepEvents) -> None:
        for waiter in events.released_waiters:
            if isinstance(waiter, asyncio.Future) and not waiter.done():
                waiter.set_result(None)
        for request in events.with_output:
            if request.on_token is not None:
                request.on_token(request)
            else:
                request.output_ready.set()
        for request in events.finished:
            request.output_ready.set()
            if request.lease_id is not None:
                lease_id = request.lease_id
                asyncio.get_running_loop().call_later(self.config.kv_lease_s, self._expire, lease_id)

    def _expire(self, lease_id: str) -> None:
        if self.core.leases.expire(lease_id):
            self._wakeup.set()
