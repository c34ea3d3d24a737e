"""The engine: a step loop that asks the scheduler for a batch, lets the modeled step time pass, then
applies the step (advance, sample, cache blocks) and wakes the streams that got tokens.

The loop keeps a modeled clock: each step ends exactly `step duration x time_scale` after the
previous one while the engine is busy. Drift is how late real time wakes up past that modeled end;
it is measured every step and exposed in /metrics, so a sim that cannot keep up is never mistaken
for a slow model.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass

from ppd.sim.config import SimConfig
from ppd.sim.kv_cache import KVCache, block_hashes_of
from ppd.sim.kv_transfer import LeaseTable
from ppd.sim.request import Request
from ppd.sim.scheduler import ScheduledRequest, Scheduler, SchedulerConfig, batch_shape
from ppd.sim.timing import step_duration_s

# If real time falls this far behind the modeled clock (a stalled machine), restart the clock from
# now instead of racing through back-to-back steps to catch up.
_RESYNC_LAG_S = 0.5

# Event-loop timers fire up to ~1 ms late (millisecond resolution); waking this much early centres
# the real emission time on the modeled one instead of always trailing it.
TIMER_EARLY_S = 0.0005


@dataclass
class EngineStats:
    """Counters and gauges for /metrics (vLLM names where vLLM has them)."""

    num_steps: int = 0
    num_prompt_tokens: int = 0
    num_generation_tokens: int = 0
    num_finished_requests: int = 0
    num_aborted_requests: int = 0
    last_drift_s: float = 0.0
    max_drift_s: float = 0.0
    sum_drift_s: float = 0.0
    num_drift_samples: int = 0
    busy_s: float = 0.0  # modeled (scaled) time spent in steps
    num_stalls: int = 0  # KV pulls that held the step loop (NIXL posts from D's worker)
    stall_s: float = 0.0  # modeled (scaled) time they held it

    def record_drift(self, drift_s: float) -> None:
        self.last_drift_s = drift_s
        self.max_drift_s = max(self.max_drift_s, drift_s)
        self.sum_drift_s += drift_s
        self.num_drift_samples += 1

    def reset_drift(self) -> None:
        self.last_drift_s = self.max_drift_s = self.sum_drift_s = 0.0
        self.num_drift_samples = 0


class Engine:
    """One simulated vLLM engine core: KV cache, scheduler, step loop, KV leases for remote decode."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.kv_cache = KVCache(config.num_kv_blocks, config.block_size)
        self.scheduler = Scheduler(
            SchedulerConfig(config.max_num_batched_tokens, config.max_num_seqs), self.kv_cache
        )
        self.leases = LeaseTable(self.kv_cache, config.kv_lease_s, on_release=self._wake)
        self.stats = EngineStats()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Work that holds the step loop between two steps (KV pulls), with who waits for its end.
        self._stalls: deque[tuple[float, asyncio.Future[None]]] = deque()
        self._step_waiters: list[asyncio.Future[None]] = []

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ppd-sim-engine")

    async def stop(self) -> None:
        self.leases.release_all()
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
        """A request ready to submit; its answer words depend only on the seed and the prompt."""
        hashes = block_hashes_of(prompt_token_ids, self.config.block_size)
        tail = prompt_token_ids[len(hashes) * self.config.block_size :]
        answer_seed = hash((self.config.seed, hashes[-1] if hashes else 0, *tail)) & 0xFFFF_FFFF
        return Request(
            request_id=request_id,
            token_ids=list(prompt_token_ids),
            num_prompt_tokens=len(prompt_token_ids),
            max_tokens=max_tokens,
            block_hashes=hashes,
            answer_seed=answer_seed,
            special_token_rate=self.config.special_token_rate,
            arrival_s=asyncio.get_running_loop().time(),
            hold_kv_on_finish=hold_kv_on_finish,
        )

    def _wake(self) -> None:
        self._wakeup.set()

    def submit(self, request: Request) -> None:
        self.scheduler.add(request)
        self._wakeup.set()

    def abort(self, request: Request) -> None:
        """Stop a request (client went away); its blocks go back to the free queue."""
        if request.is_finished:
            return
        self.scheduler.abort(request)
        self.stats.num_aborted_requests += 1
        request.output_ready.set()
        self._wakeup.set()

    async def occupy(self, duration_s: float) -> None:
        """Hold the step loop for duration_s (modeled, before time scaling) between two steps, FIFO
        with other holds: how vLLM's D spends posting a NIXL read (no step runs meanwhile)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._stalls.append((duration_s, done))
        self._wakeup.set()
        await done

    async def after_next_step(self) -> None:
        """Return when the step now due has run, or at once if the engine has nothing to run: how a
        finished NIXL read reaches vLLM's scheduler (reported with a step's output, scheduled after)."""
        if not self.scheduler.has_work():
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._step_waiters.append(done)
        await done

    def count_cached_prompt_blocks(self, prompt_block_hashes: list[int]) -> int:
        """Leading prompt blocks already in this engine's prefix cache."""
        return self.kv_cache.count_cached(prompt_block_hashes)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        clock_s = loop.time()
        time_scale = self.config.time_scale
        costs = self.config.profile.step
        idle = True
        while True:
            if self._stalls:
                if idle:
                    clock_s = max(clock_s, loop.time())
                clock_s = await self._run_stall(clock_s)
                idle = False
                continue
            scheduled = self.scheduler.schedule()
            if not scheduled:
                self._wakeup.clear()
                await self._wakeup.wait()
                if not self._stalls:
                    clock_s = self._idle_clock_start(clock_s, loop.time())
                idle = True
                continue
            idle = False
            duration_s = step_duration_s(costs, batch_shape(scheduled)) * time_scale
            end_s = clock_s + duration_s
            delay_s = end_s - loop.time() - TIMER_EARLY_S
            await asyncio.sleep(delay_s if delay_s > 0 else 0)
            now_s = loop.time()
            self.stats.record_drift(max(0.0, now_s - end_s))
            self.stats.busy_s += duration_s
            self._apply_step(scheduled, now_s)
            clock_s = end_s if now_s - end_s < _RESYNC_LAG_S else now_s

    async def _run_stall(self, clock_s: float) -> float:
        """Let the first queued hold pass on the modeled clock; returns the clock after it."""
        loop = asyncio.get_running_loop()
        duration_s, done = self._stalls.popleft()
        end_s = clock_s + duration_s * self.config.time_scale
        delay_s = end_s - loop.time() - TIMER_EARLY_S
        await asyncio.sleep(delay_s if delay_s > 0 else 0)
        now_s = loop.time()
        self.stats.num_stalls += 1
        self.stats.stall_s += duration_s * self.config.time_scale
        if not done.done():
            done.set_result(None)
            # Let the puller ask for the next step's end (Engine.after_next_step) before that step
            # is scheduled.
            await asyncio.sleep(0)
        return end_s if now_s - end_s < _RESYNC_LAG_S else now_s

    def _idle_clock_start(self, last_end_s: float, now_s: float) -> float:
        """Where the modeled clock resumes after idling: when the first new request was due, so a
        late timer in the API path does not delay its first step (never before the last step)."""
        due_s = min((request.ready_s for request in self.scheduler.waiting), default=now_s)
        return max(last_end_s, min(due_s, now_s))

    def _apply_step(self, scheduled: list[ScheduledRequest], now_s: float) -> None:
        waiters, self._step_waiters = self._step_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        with_output, finished = self.scheduler.complete_step(scheduled)
        stats = self.stats
        stats.num_steps += 1
        stats.num_generation_tokens += len(with_output)
        for request in with_output:
            if request.first_token_s is None:
                request.first_token_s = now_s
                stats.num_prompt_tokens += request.num_prompt_tokens
            if request.on_token is not None:
                request.on_token(request)
            else:
                request.output_ready.set()
        for request in finished:
            request.output_ready.set()
            stats.num_finished_requests += 1
            if request.hold_kv_on_finish:
                request.lease_id = self.leases.grant(request)
            else:
                self.kv_cache.free(request.block_ids)
