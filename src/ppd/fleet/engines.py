"""One engine core on the fleet's virtual clock: the discrete-event twin of ppd.sim.engine.Engine.

The sequencing is the asyncio driver's, step for step: a queued KV-pull hold runs before the next
batch and its waiter registers for the following step before that step is scheduled; waiters of
"the step now due" resume after the next batch has been scheduled (in `ppd sim` they are futures
that run on a later loop turn); a request joins the scheduler when its API time is over.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from ppd.fleet.clock import EventQueue
from ppd.sim.config import SimConfig
from ppd.sim.core import EngineCore, Hold, Step
from ppd.sim.kv_handoff import KVLease, PullStats
from ppd.sim.request import Request

Callback = Callable[[], None]


class VirtualEngine:
    """An EngineCore plus the state of its step loop (busy or idle) on the event queue."""

    def __init__(self, name: str, url: str, config: SimConfig, clock: EventQueue) -> None:
        self.name = name
        self.url = url
        self.config = config
        self.core = EngineCore(config)
        self.clock = clock
        self.pulls = PullStats()
        self._busy = False

    def new_request(
        self, request_id: str, prompt_token_ids: list[int], max_tokens: int, hold_kv_on_finish: bool
    ) -> Request:
        """A request arriving now at the API server."""
        return self.core.new_request(
            request_id, prompt_token_ids, max_tokens, self.clock.now_s, hold_kv_on_finish=hold_kv_on_finish
        )

    def after_api(self, request: Request, callback: Callable[[Request], None]) -> None:
        """Call callback(request) when the API server has handed it on (EngineCore.api_ready_s)."""
        self.clock.at(self.core.api_ready_s(self.clock.now_s, request), callback, request)

    def submit(self, request: Request) -> None:
        """Queue a request for the next batch."""
        self.core.add_request(request)
        self._kick()

    def occupy(self, duration_s: float, on_done: Callback) -> None:
        """Hold the step loop for duration_s (modeled) between two steps, FIFO with other holds."""
        self.core.queue_hold(duration_s * self.config.time_scale, on_done)
        self._kick()

    def after_next_step(self, callback: Callback) -> None:
        """Call back when the step now due has run, or at once when there is nothing to run."""
        if not self.core.wait_for_next_step(callback):
            callback()

    def take_lease(self, lease_id: str) -> KVLease | None:
        """As P: hand a lease's blocks to a D; the freed blocks may let waiting requests in."""
        lease = self.core.take_lease(lease_id)
        self._kick()
        return lease

    def _kick(self) -> None:
        if not self._busy:
            self._start()

    def _start(self) -> None:
        now_s = self.clock.now_s
        self.core.leases.expire_due(now_s)
        work = self.core.next_work()
        if work is None:
            self._busy = False
            return
        self._busy = True
        self.clock.at(now_s + work.duration_s, self._end, work)

    def _end(self, work: Hold | Step) -> None:
        if isinstance(work, Hold):
            waiter = self.core.complete_hold(work)
            cast(Callback, waiter)()  # registers for the next step before it is scheduled
            self._start()
            return
        events = self.core.complete_step(work, self.clock.now_s)
        for request in events.with_output:
            if request.on_token is not None:
                request.on_token(request)
        self._start()
        for waiter in events.released_waiters:
            cast(Callback, waiter)()
