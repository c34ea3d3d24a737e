"""One engine core on the fleet's virtual clock: the discrete-event twin of ppd.sim.engine.Engine.

The sequencing is the asyncio driver's, step for step: a queued KV-pull hold runs before the next
batch and its waiter registers for the following step before that step is scheduled; waiters of
"the step now due" resume after the next batch has been scheduled (in `ppd sim` they are futures
that run on a later loop turn); a request joins the scheduler when its API time is over.

Decode runs: when the batch is the same decode-only batch for several steps (EngineCore
.start_decode_run), they are priced at once and applied when the run ends, one event instead of one
per step, and each request's tokens are appended in one go. Anything from outside that looks at the
engine meanwhile (a prefix-cache lookup, P handing over a lease) first applies the steps that have
ended; anything that changes the next batch (a new request, a KV-pull hold, a step waiter
registered during the run) ends the run after the step in flight, its ended steps applied with the
rest at that new end. Step waiters registered before a run (a pulled request waiting for "the next
step") are released when its first step ends, without ending it. So what the outside sees is what
per-step driving gives (tests/unit/fleet/test_engines.py checks it row for row).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Final, cast

from ppd.fleet.clock import EventQueue
from ppd.sim.config import SimConfig
from ppd.sim.core import DecodeRun, EngineCore, Hold, Step, StepEvents
from ppd.sim.kv_handoff import KVLease, PullStats
from ppd.sim.request import Request, RequestStatus

Callback = Callable[[], None]
MAX_RUN_STEPS: Final = 64  # steps priced at once; a longer run continues as another one


class VirtualEngine:
    """An EngineCore plus the state of its step loop (busy, in a decode run, or idle)."""

    def __init__(
        self, name: str, url: str, config: SimConfig, clock: EventQueue, decode_runs: bool = True
    ) -> None:
        self.name = name
        self.url = url
        self.config = config
        self.core = EngineCore(config)
        self.clock = clock
        self.pulls = PullStats()
        self.decode_runs = decode_runs
        # End times of the steps whose tokens are being delivered (on_token callbacks read them): one
        # entry for an ordinary step, several for a decode run.
        self.delivered_step_end_s: list[float] = []
        self._busy = False
        self._run: DecodeRun | None = None
        # Told of every step as it starts (its end time, the tokens it streams) and of every decode
        # run (its step end times -- the run's own list, which a cut shortens --, its batch): the
        # proxy's event loop relays those tokens (fleet.proxy_loop). None: nobody listens.
        self.on_steps: Callable[[list[float], int], None] | None = None

    def after_api(self, request: Request, callback: Callable[[Request], None]) -> None:
        """Call callback(request) when the API server has handed it on (EngineCore.api_ready_s)."""
        self.clock.at(self.core.api_ready_s(self.clock.now_s, request), callback, request)

    def submit(self, request: Request) -> None:
        """Queue a request for the next batch."""
        self._cut_run()
        self.core.add_request(request)
        self._kick()

    def occupy(self, duration_s: float, on_done: Callback) -> None:
        """Hold the step loop for duration_s (modeled) between two steps, FIFO with other holds."""
        self._cut_run()
        self.core.queue_hold(duration_s * self.config.time_scale, on_done)
        self._kick()

    def after_next_step(self, callback: Callback) -> None:
        """Call back when the step now due has run, or at once when there is nothing to run."""
        self._cut_run()
        if not self.core.wait_for_next_step(callback):
            callback()

    def count_cached_prompt_blocks(self, request: Request) -> int:
        """Leading prompt blocks of `request` in this engine's prefix cache now."""
        self._catch_up()
        return self.core.count_cached_prompt_blocks(request)

    def take_lease(self, lease_id: str) -> KVLease | None:
        """As P: hand a lease's blocks to a D; the freed blocks may let waiting requests in. The
        run's ended steps are applied first: their blocks were taken before these are freed."""
        self._catch_up()
        lease = self.core.take_lease(lease_id)
        self._kick()
        return lease

    def _kick(self) -> None:
        if not self._busy:
            self._start()

    def _start(self) -> None:
        now_s = self.clock.now_s
        self.core.leases.expire_due(now_s)
        if self.decode_runs:
            run = self.core.start_decode_run(now_s, MAX_RUN_STEPS)
            if run is not None:
                self._busy, self._run = True, run
                self.clock.at(run.step_end_s[-1], self._end_run, run, len(run.step_end_s))
                if self.on_steps is not None:
                    self.on_steps(run.step_end_s, len(self.core.scheduler.running))
                if run.first_step_waiters:  # after the next step has been scheduled, as in _end
                    self.clock.at(run.step_end_s[0], _release, run.first_step_waiters)
                return
        work = self.core.next_work()
        if work is None:
            self._busy = False
            return
        self._busy = True
        self.clock.at(now_s + work.duration_s, self._end, work)
        if self.on_steps is not None and isinstance(work, Step):
            self.on_steps([now_s + work.duration_s], work.num_outputs)

    def _end(self, work: Hold | Step) -> None:
        if isinstance(work, Hold):
            waiter = self.core.complete_hold(work)
            cast(Callback, waiter)()  # registers for the next step before it is scheduled
            self._start()
            return
        events = self.core.complete_step(work, self.clock.now_s)
        self._deliver(events, [self.clock.now_s])
        self._start()
        _release(events.released_waiters)

    def _end_run(self, run: DecodeRun, num_steps: int) -> None:
        if run is not self._run or num_steps != len(run.step_end_s):
            return  # the run was cut short: a later event ends it
        self._run = None
        events = self._apply_run_steps(run, num_steps - run.num_applied)
        self._start()
        _release(events.released_waiters)

    def _catch_up(self) -> None:
        """Apply the steps of the run that have ended by now, so the engine's state is now's."""
        run = self._run
        if run is None:
            return
        num_ended = run.num_ended(self.clock.now_s) - run.num_applied
        if num_ended >= len(run.step_end_s) - run.num_applied:
            self._end_run(run, len(run.step_end_s))  # it ends now; its own event finds it gone
        elif num_ended > 0:
            self._apply_run_steps(run, num_ended)

    def _cut_run(self) -> None:
        """Before something changes the next batch: end the run after the step in flight, as a
        per-step loop would take the change into the step after it. The steps that have ended are
        not applied here but with the rest at the run's new end: what the callers change (a request
        queued, a hold, a step waiter) reads no running request, and a run finishes no request
        before its last step, so the engine's visible state (the running batch) is the same."""
        run = self._run
        if run is None:
            return
        num_ended = run.num_ended(self.clock.now_s)
        if num_ended >= len(run.step_end_s):
            self._end_run(run, num_ended)  # it ends now: the next batch starts before the change
            return
        num_steps = num_ended + 1
        if num_steps < len(run.step_end_s):
            run.cut_after(num_steps)
            self.clock.at(run.step_end_s[-1], self._end_run, run, num_steps)

    def _apply_run_steps(self, run: DecodeRun, num_steps: int) -> StepEvents:
        first = run.num_applied
        events = self.core.complete_decode_steps(run, num_steps)
        self._deliver(events, run.step_end_s[first : run.num_applied])
        return events

    def _deliver(self, events: StepEvents, step_end_s: list[float]) -> None:
        self.delivered_step_end_s = step_end_s
        num_new = len(step_end_s)
        for request in events.with_output:
            on_token = request.on_token
            if on_token is None:
                continue
            # A request that wants only its ends is told of its first tokens and of its finish.
            if (
                request.on_token_ends_only
                and request.status is RequestStatus.RUNNING
                and len(request.output_token_ids) > num_new
            ):
                continue
            on_token(request)


def _release(waiters: list[Hashable]) -> None:
    """Resume the waiters of a step that has ended (VirtualEngine.after_next_step callbacks)."""
    for waiter in waiters:
        cast(Callback, waiter)()
