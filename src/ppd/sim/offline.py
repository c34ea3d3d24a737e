"""One engine core on a virtual clock: no sleeping, no HTTP.

Used to fit the time model (benchmarks/sim_calibration.py) and for quick what-ifs. It drives the same
EngineCore as the served engine (core.py), so a request's modeled token times here are the ones a sim
at time-scale 1 aims for (minus HTTP on loopback). Many engines and the router on one virtual clock
are ppd.fleet.
"""

from __future__ import annotations

import heapq
import itertools

from ppd.sim.config import SimConfig
from ppd.sim.core import EngineCore, Hold
from ppd.sim.request import Request


class OfflineEngine:
    """One engine whose clock jumps from step to step. Keeps its prefix cache between runs."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.core = EngineCore(config)
        self.kv_cache = self.core.kv_cache
        self.scheduler = self.core.scheduler
        self.now_s = 0.0
        self._ids = itertools.count()

    def new_request(
        self, prompt_token_ids: list[int], max_tokens: int, num_external_tokens: int = 0
    ) -> Request:
        """A request as the server would build it (num_external_tokens: prompt KV pulled from a P)."""
        request_id = f"offline-{next(self._ids)}"
        request = self.core.new_request(request_id, prompt_token_ids, max_tokens, self.now_s)
        request.num_external_tokens = num_external_tokens
        return request

    def run(self, arrivals: list[tuple[float, Request]]) -> dict[str, list[float]]:
        """Serve requests arriving at the given engine times (s); returns each one's token times (s)."""
        pending = [(arrival_s, index, request) for index, (arrival_s, request) in enumerate(arrivals)]
        heapq.heapify(pending)
        token_times: dict[str, list[float]] = {request.request_id: [] for _, request in arrivals}
        core = self.core
        while pending or core.has_work():
            while pending and pending[0][0] <= self.now_s:
                core.add_request(heapq.heappop(pending)[2])
            work = core.next_work()
            if work is None:
                if not pending:
                    break  # nothing can ever be admitted (a cache too small); stop rather than spin
                self.now_s = pending[0][0]
                continue
            self.now_s += work.duration_s
            if isinstance(work, Hold):
                core.complete_hold(work)
                continue
            while pending and pending[0][0] < self.now_s:  # they came while the step ran
                core.add_request(heapq.heappop(pending)[2])
            for request in core.complete_step(work, self.now_s).with_output:
                token_times[request.request_id].append(self.now_s)
        return token_times
