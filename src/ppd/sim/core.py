"""The engine core: one simulated vLLM engine as a synchronous state machine on its driver's clock.

It owns the KV cache, the scheduler, the time model, P's KV leases, D's KV links and the queue of
KV-pull holds, and never sleeps or does I/O. A driver asks it for the next piece of work, lets that
work's duration pass on its own clock, and hands it back with the time it ended:

    work = core.next_work()            # a Hold (a KV pull posting) or a Step (a batch), or None: idle
    ...the driver's clock advances by work.duration_s...
    events = core.complete_step(work, now_s)   # tokens, finished requests, waiters to wake

Two drivers use it: the asyncio `Engine` of `ppd sim` (engine.py: real time, HTTP) and virtual-clock
drivers (offline.py for one engine; ppd.fleet for many engines and the router). Durations the core
returns are on the driver's clock: modeled seconds x config.time_scale.

How a request meets the core, in order (server.py and ppd.fleet both follow it):
    1. new_request(...), then ready_s = api_ready_s(now_s, request): the API server's time;
    2. as D of a P->D turn: plan_pull(P's engine id, blocks lacking), wait plan.wait_s on the
       driver's clock, queue_hold(plan.hold_s) and wait for it, then wait_for_next_step(): vLLM
       learns of a finished read with a step's output and schedules the request after it;
    3. add_request(request); its tokens come back in StepEvents.with_output;
    4. as P, a finished request's blocks stay leased (request.lease_id) until take_lease or expiry.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass

from ppd.sim.config import SimConfig
from ppd.sim.kv_cache import KVCache, block_hashes_of
from ppd.sim.kv_handoff import KVLease, KVLinks, LeaseTable, PullPlan
from ppd.sim.request import Request
from ppd.sim.scheduler import ScheduledRequest, Scheduler, SchedulerConfig, batch_shape
from ppd.sim.timing import ApiServer, decode_step_durations_s, step_duration_s


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


@dataclass(init=False, frozen=True, slots=True)
class Hold:
    """Work that holds the step loop between two steps (a KV pull's posting); `waiter` is the
    driver's token for whoever waits for its end."""

    duration_s: float
    waiter: Hashable

    # Written out (init=False): mypyc runs a dataclass's generated __init__ interpreted (docs/fleet.md).
    def __init__(self, duration_s: float, waiter: Hashable) -> None:
        object.__setattr__(self, "duration_s", duration_s)
        object.__setattr__(self, "waiter", waiter)


@dataclass(init=False, frozen=True, slots=True)
class Step:
    """One batch: what it computes and how long it takes (as the clients see it: the engine's time,
    or the API server's when it cannot stream the step's tokens as fast)."""

    scheduled: list[ScheduledRequest]
    duration_s: float
    engine_s: float  # the engine's own time for the step
    num_outputs: int  # tokens it streams

    # Written out (init=False): mypyc runs a dataclass's generated __init__ interpreted (docs/fleet.md).
    def __init__(
        self,
        scheduled: list[ScheduledRequest],
        duration_s: float,
        engine_s: float = 0.0,
        num_outputs: int = 0,
    ) -> None:
        object.__setattr__(self, "scheduled", scheduled)
        object.__setattr__(self, "duration_s", duration_s)
        object.__setattr__(self, "engine_s", engine_s)
        object.__setattr__(self, "num_outputs", num_outputs)


@dataclass(init=False, slots=True)
class DecodeRun:
    """Several steps of the same decode-only batch, priced at once (EngineCore.start_decode_run):
    a virtual-clock driver's shortcut that per-step driving would reproduce exactly."""

    step_end_s: list[float]  # when each step ends, on the driver's clock
    step_duration_s: list[float]
    api_backlog_s: list[float]  # ApiServer backlog after each step (none when it is off)
    num_applied: int  # steps already applied (complete_decode_steps)
    # wait_for_next_step tokens registered before the run: the step now due is its first, so the
    # driver releases them when that step ends (they change no batch, so the run goes on).
    first_step_waiters: list[Hashable]

    # Written out (init=False): mypyc runs a dataclass's generated __init__ interpreted (docs/fleet.md).
    def __init__(
        self,
        step_end_s: list[float],
        step_duration_s: list[float],
        api_backlog_s: list[float] | None = None,
        num_applied: int = 0,
        first_step_waiters: list[Hashable] | None = None,
    ) -> None:
        self.step_end_s = step_end_s
        self.step_duration_s = step_duration_s
        self.api_backlog_s = [] if api_backlog_s is None else api_backlog_s
        self.num_applied = num_applied
        self.first_step_waiters = [] if first_step_waiters is None else first_step_waiters

    def num_ended(self, now_s: float) -> int:
        """Steps that have ended by now_s (applied or not)."""
        return bisect.bisect_right(self.step_end_s, now_s)

    def cut_after(self, num_steps: int) -> None:
        """End the run after its first num_steps steps (the step in flight stays)."""
        del self.step_end_s[num_steps:]
        del self.step_duration_s[num_steps:]
        del self.api_backlog_s[num_steps:]


@dataclass(init=False, slots=True)
class StepEvents:
    """What a finished step produced."""

    with_output: list[Request]  # got one new token (first_token_s is set on the first)
    finished: list[Request]  # done; as P, with lease_id set
    released_waiters: list[Hashable]  # wait_for_next_step tokens

    # Written out (init=False): mypyc runs a dataclass's generated __init__ interpreted (docs/fleet.md).
    def __init__(
        self,
        with_output: list[Request],
        finished: list[Request],
        released_waiters: list[Hashable] | None = None,
    ) -> None:
        self.with_output = with_output
        self.finished = finished
        self.released_waiters = [] if released_waiters is None else released_waiters


def _running_sums(start_s: float, durations_s: list[float]) -> list[float]:
    """The end of each step from start_s: the durations added one at a time, left to right, as a
    per-step driver's clock adds them (so the floats are the same)."""
    ends_s: list[float] = []
    end_s = start_s
    for duration_s in durations_s:
        end_s += duration_s
        ends_s.append(end_s)
    return ends_s


class EngineCore:
    """Scheduler, KV cache, time model, leases, links and holds of one engine; see the module doc."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.time_scale = config.time_scale
        self.kv_cache = KVCache(config.num_kv_blocks, config.block_size)
        self.scheduler = Scheduler(
            SchedulerConfig(config.max_num_batched_tokens, config.max_num_seqs), self.kv_cache
        )
        self.leases = LeaseTable(self.kv_cache, config.kv_lease_s)
        self.links = KVLinks(config.profile, config.kv_bandwidth_gbps, config.block_size)
        self.stats = EngineStats()
        profile = config.profile
        scale = config.time_scale
        self.api = ApiServer(
            stream_token_s=profile.api_stream_token_us * 1e-6 * scale,
            step_cost_s=profile.api_step_us * 1e-6 * scale,
            request_s=profile.api_request_ms * 1e-3 * scale,
            merge_max_seqs=profile.api_merge_max_seqs,
            max_load=profile.api_max_load,
            intake_turns=profile.api_intake_turns,
            serial_tokenizer=profile.api_serial_tokenizer,
        )
        self._decode_run: DecodeRun | None = None  # the run in flight, for the API server's load
        self._holds: deque[Hold] = deque()
        self._step_waiters: list[Hashable] = []
        # Asynchronous scheduling: whether a batch is running, and the requests that came while it
        # ran (they join the batch after next; see add_request).
        self._batch_in_flight = False
        self._arrived_in_flight: list[Request] = []

    def new_request(
        self,
        request_id: str,
        prompt_token_ids: list[int],
        max_tokens: int,
        now_s: float,
        *,
        hold_kv_on_finish: bool = False,
    ) -> Request:
        """A request ready to submit; its answer words depend only on the seed and the prompt."""
        block_size = self.config.block_size
        hashes = block_hashes_of(prompt_token_ids, block_size)
        tail = prompt_token_ids[len(hashes) * block_size :]
        return self.new_hashed_request(
            request_id,
            len(prompt_token_ids),
            hashes,
            tail,
            max_tokens,
            now_s,
            hold_kv_on_finish=hold_kv_on_finish,
        )

    def new_hashed_request(
        self,
        request_id: str,
        num_prompt_tokens: int,
        prompt_block_hashes: list[int],
        prompt_tail_token_ids: list[int],
        max_tokens: int,
        now_s: float,
        *,
        hold_kv_on_finish: bool = False,
    ) -> Request:
        """new_request of a prompt given as what the engine reads of it: the chained hashes of its
        full blocks (block_hashes_of) and its tokens after them. A caller that has those (ppd fleet:
        a P->D turn hashes its prompt once for both engines, a later turn only past the last turn's
        blocks) need not make the prompt's token list. The hashes are copied (the request extends
        its own); the tail is kept."""
        block_size = self.config.block_size
        num_full = num_prompt_tokens - len(prompt_tail_token_ids)
        if len(prompt_tail_token_ids) >= block_size or num_full != len(prompt_block_hashes) * block_size:
            raise ValueError(
                f"a prompt of {num_prompt_tokens} tokens in blocks of {block_size}: got "
                f"{len(prompt_block_hashes)} block hashes and {len(prompt_tail_token_ids)} tokens after them"
            )
        hashes = prompt_block_hashes
        seed_parts = (self.config.seed, hashes[-1] if hashes else 0, *prompt_tail_token_ids)
        return Request(
            request_id=request_id,
            num_prompt_tokens=num_prompt_tokens,
            prompt_tail_token_ids=prompt_tail_token_ids,
            max_tokens=max_tokens,
            block_hashes=list(hashes),
            answer_seed=hash(seed_parts) & 0xFFFF_FFFF,
            special_token_rate=self.config.special_token_rate,
            arrival_s=now_s,
            hold_kv_on_finish=hold_kv_on_finish,
        )

    def api_ready_s(self, now_s: float, request: Request) -> float:
        """When a request arriving at now_s leaves the API server for the engine (sets ready_s). Intakes
        of concurrent requests overlap; each shares the server with the engine's streaming and the
        other recent requests, and waits for the output the server is behind on (timing.ApiServer)."""
        profile = self.config.profile
        api_s = profile.api_overhead_ms * 1e-3 * self.time_scale
        tokenize_s = profile.api_overhead_per_token_us * 1e-6 * request.num_prompt_tokens * self.time_scale
        run = self._decode_run
        if run is not None:  # the run's steps ended by now_s, as a per-step driver has them
            ended = run.num_ended(now_s)
            in_flight = min(ended, len(run.step_end_s) - 1)
            self.api.start_step(run.step_duration_s[in_flight], len(self.scheduler.running))
            if ended and run.api_backlog_s:
                last = ended - 1
                self.api.backlog_s, self.api.backlog_at_s = run.api_backlog_s[last], run.step_end_s[last]
        request.ready_s = self.api.intake_done_s(
            now_s,
            api_s,
            streaming=bool(self.scheduler.running),
            engine_busy=self.scheduler.has_work(),
            tokenize_s=tokenize_s,
        )
        return request.ready_s

    def add_request(self, request: Request) -> None:
        """Queue a request for scheduling (after its API time and any KV pull).

        With asynchronous scheduling (vLLM's default), the engine schedules batch k+1 as batch k
        starts, before k's output is back, and keeps two batches queued: a request that arrives
        while batch k runs is first seen when k+1 is already decided, so it joins k+2. Traced on an
        H200 (results/h200-vllm0.25.1-single/README.md, "Fifth session"): 1,030 of 1,031 steps
        were scheduled before the previous step's output. On an idle engine it is scheduled at
        once."""
        if self.config.profile.async_scheduling and self._batch_in_flight:
            self._arrived_in_flight.append(request)
        else:
            self.scheduler.add(request)

    def _admit_arrived(self) -> None:
        """The requests that came during the step just ended wait for the next schedule()."""
        for request in self._arrived_in_flight:
            self.scheduler.add(request)
        self._arrived_in_flight.clear()

    def abort(self, request: Request) -> bool:
        """Stop a request (client went away); its blocks are freed. False if it had already ended."""
        if request.is_finished:
            return False
        if request in self._arrived_in_flight:
            self._arrived_in_flight.remove(request)
        self.scheduler.abort(request)
        self.stats.num_aborted_requests += 1
        return True

    def has_work(self) -> bool:
        """Whether a step or a hold is due."""
        return bool(self._holds) or self._has_requests()

    def _has_requests(self) -> bool:
        return self.scheduler.has_work() or bool(self._arrived_in_flight)

    def has_holds(self) -> bool:
        return bool(self._holds)

    @property
    def num_waiting_requests(self) -> int:
        """Requests not yet scheduled (vllm:num_requests_waiting), those held for the batch after
        next included."""
        return len(self.scheduler.waiting) + len(self._arrived_in_flight)

    def count_cached_prompt_blocks(self, request: Request) -> int:
        """Leading prompt blocks of `request` already in the prefix cache (the last token never counts)."""
        max_local_blocks = (request.num_prompt_tokens - 1) // self.config.block_size
        return self.kv_cache.count_cached(request.block_hashes, max_local_blocks)

    def plan_pull(self, remote_engine_id: str, num_blocks: int) -> PullPlan:
        """Price a KV pull of num_blocks from a remote P (modeled seconds, before time scaling)."""
        return self.links.plan(remote_engine_id, num_blocks)

    def queue_hold(self, duration_s: float, waiter: Hashable) -> None:
        """Hold the step loop for duration_s (driver clock) between two steps, FIFO with other holds:
        how vLLM's D spends posting a NIXL read (no step runs meanwhile)."""
        self._holds.append(Hold(duration_s, waiter))

    def wait_for_next_step(self, waiter: Hashable) -> bool:
        """Register `waiter` to be released when the step now due has run (StepEvents.released_waiters);
        False, registering nothing, when the engine has nothing to run: go on at once."""
        if not self._has_requests():
            return False
        self._step_waiters.append(waiter)
        return True

    def take_lease(self, lease_id: str) -> KVLease | None:
        """As P: hand the blocks held under lease_id to a D (they are freed here); None if unknown or
        expired. Freed blocks may admit waiting requests: the driver should wake its loop."""
        return self.leases.take(lease_id)

    def next_work(self) -> Hold | Step | None:
        """The next piece of work: queued holds first, then a batch; None when idle."""
        if self._holds:
            return self._holds.popleft()
        scheduled = self.scheduler.schedule()
        if self._arrived_in_flight:
            self._admit_arrived()
            if not scheduled:  # no batch was decided ahead of them: they go at once
                scheduled = self.scheduler.schedule()
        if not scheduled:
            return None
        self._batch_in_flight = True
        engine_s = step_duration_s(self.config.profile.step, batch_shape(scheduled)) * self.time_scale
        num_outputs = sum(1 for item in scheduled if item.completes_prompt)
        duration_s = self.api.step_s(engine_s, num_outputs)
        self.api.start_step(duration_s, num_outputs)
        return Step(scheduled, duration_s, engine_s, num_outputs)

    def complete_hold(self, hold: Hold) -> Hashable:
        """Account a hold that has passed; returns its waiter."""
        self.stats.num_stalls += 1
        self.stats.stall_s += hold.duration_s
        return hold.waiter

    def complete_step(self, step: Step, now_s: float) -> StepEvents:
        """Apply a step that ended at now_s: tokens, finished requests (P's leased), waiters released."""
        waiters, self._step_waiters = self._step_waiters, []
        self._batch_in_flight = False
        with_output, finished = self.scheduler.complete_step(step.scheduled)
        if self.api.enabled:
            self.api.record_step(now_s, step.engine_s, step.duration_s, step.num_outputs)
        stats = self.stats
        stats.num_steps += 1
        stats.busy_s += step.duration_s
        stats.num_generation_tokens += len(with_output)
        for request in with_output:
            if request.first_token_s is None:
                request.first_token_s = now_s
                stats.num_prompt_tokens += request.num_prompt_tokens
        for request in finished:
            stats.num_finished_requests += 1
            if request.hold_kv_on_finish:
                request.lease_id = self.leases.grant(request, now_s)
        return StepEvents(with_output, finished, waiters)

    def start_decode_run(self, now_s: float, max_steps: int) -> DecodeRun | None:
        """When the next steps are all the same decode-only batch (nothing else can change them until
        an outside event does), price up to max_steps of them; None otherwise. The driver applies them
        with complete_decode_steps, all at the run's end or the ones that ended before an event; an
        event that changes the next batch (a request, a hold, a step waiter) cuts the run short after
        the step in flight (DecodeRun.cut_after). Step waiters registered before it are handed to
        the driver in run.first_step_waiters, to release when the run's first step ends."""
        if self._holds or self._arrived_in_flight:
            return None
        num_steps = self.scheduler.decode_run_length(max_steps)
        if num_steps < 2:
            return None
        running = self.scheduler.running
        num_seqs = len(running)
        context_tokens = sum(request.num_computed_tokens for request in running) + num_seqs
        scale, api = self.time_scale, self.api
        costs = self.config.profile.step
        engine_steps_s = decode_step_durations_s(costs, num_seqs, context_tokens, num_steps)
        if scale != 1.0:
            engine_steps_s = [engine_s * scale for engine_s in engine_steps_s]
        if api.merges_output(num_seqs):  # step_s leaves such steps alone: they take the engine's time
            durations = engine_steps_s
        else:  # the API server may set the pace: each step's share depends on when the last ended
            durations = []
            since_s, end_s = api.backlog_at_s, now_s
            for engine_s in engine_steps_s:
                duration_s = api.step_s(engine_s, num_seqs, since_s)
                end_s += duration_s
                durations.append(duration_s)
                if api.enabled:
                    since_s = end_s
        # Each end as a per-step driver adds the durations up, so the times are the same floats.
        ends = _running_sums(now_s, durations)
        backlogs: list[float] = []
        if api.enabled:  # the backlog each step leaves, as record_step would have it
            backlog_s, since_s = api.backlog_s, api.backlog_at_s
            for engine_s, duration_s, end_s in zip(engine_steps_s, durations, ends, strict=True):
                backlog_s = api.backlog_after(backlog_s, since_s, end_s, engine_s, duration_s, num_seqs)
                since_s = end_s
                backlogs.append(backlog_s)
        api.start_step(durations[0], num_seqs)
        waiters, self._step_waiters = self._step_waiters, []
        self._decode_run = DecodeRun(ends, durations, backlogs, first_step_waiters=waiters)
        self._batch_in_flight = True
        return self._decode_run

    def complete_decode_steps(self, run: DecodeRun, num_steps: int) -> StepEvents:
        """Apply the next num_steps steps of a decode run; with_output got num_steps tokens each, the
        last at run.step_end_s[run.num_applied - 1] (after this call)."""
        with_output, finished = self.scheduler.complete_decode_steps(num_steps)
        first, run.num_applied = run.num_applied, run.num_applied + num_steps
        # Waiters registered while the run's last step was in flight (the driver then cut the run
        # short after that step): released by it, as by complete_step.
        waiters: list[Hashable] = []
        if run.api_backlog_s:
            last = run.num_applied - 1
            self.api.backlog_s, self.api.backlog_at_s = run.api_backlog_s[last], run.step_end_s[last]
        if run.num_applied == len(run.step_end_s):
            waiters, self._step_waiters = self._step_waiters, []
            self._decode_run = None
            self._batch_in_flight = False
        stats = self.stats
        stats.num_steps += num_steps
        stats.busy_s += sum(run.step_duration_s[first : run.num_applied])
        stats.num_generation_tokens += len(with_output) * num_steps
        end_s = run.step_end_s[run.num_applied - 1]
        for request in finished:
            stats.num_finished_requests += 1
            if request.hold_kv_on_finish:
                request.lease_id = self.leases.grant(request, end_s)
        return StepEvents(with_output, finished, waiters)

    def idle_clock_start(self, last_end_s: float, now_s: float) -> float:
        """Where the modeled clock resumes after idling: when the first new request was due, so a
        late timer in the API path does not delay its first step (never before the last step)."""
        waiting = [*self.scheduler.waiting, *self._arrived_in_flight]
        due_s = min((request.ready_s for request in waiting), default=now_s)
        return max(last_end_s, min(due_s, now_s))
