"""The engine's scheduler and time model on a virtual clock: no sleeping, no HTTP.

Used to fit the time model (benchmarks/sim_calibration.py) and for quick what-ifs: the same
Scheduler, KVCache and step formula as the served engine, so a request's modeled token times here
are the ones a sim at time-scale 1 aims for (minus HTTP on loopback).
"""

from __future__ import annotations

import heapq
import itertools

from ppd.sim.config import SimConfig
from ppd.sim.kv_cache import KVCache, block_hashes_of
from ppd.sim.request import Request
from ppd.sim.scheduler import Scheduler, SchedulerConfig, batch_shape
from ppd.sim.timing import step_duration_s


class OfflineEngine:
    """One engine whose clock jumps from step to step. Keeps its prefix cache between runs."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.kv_cache = KVCache(config.num_kv_blocks, config.block_size)
        self.scheduler = Scheduler(
            SchedulerConfig(config.max_num_batched_tokens, config.max_num_seqs), self.kv_cache
        )
        self.now_s = 0.0
        self._ids = itertools.count()

    def new_request(
        self, prompt_token_ids: list[int], max_tokens: int, num_external_tokens: int = 0
    ) -> Request:
        """A request as the server would build it (num_external_tokens: prompt KV pulled from a P)."""
        return Request(
            request_id=f"offline-{next(self._ids)}",
            token_ids=list(prompt_token_ids),
            num_prompt_tokens=len(prompt_token_ids),
            max_tokens=max_tokens,
            block_hashes=block_hashes_of(prompt_token_ids, self.config.block_size),
            answer_seed=len(prompt_token_ids),
            special_token_rate=self.config.special_token_rate,
            num_external_tokens=num_external_tokens,
        )

    def run(self, arrivals: list[tuple[float, Request]]) -> dict[str, list[float]]:
        """Serve requests arriving at the given engine times (s); returns each one's token times (s)."""
        pending = [(arrival_s, index, request) for index, (arrival_s, request) in enumerate(arrivals)]
        heapq.heapify(pending)
        token_times: dict[str, list[float]] = {request.request_id: [] for _, request in arrivals}
        while pending or self.scheduler.has_work():
            while pending and pending[0][0] <= self.now_s:
                self.scheduler.add(heapq.heappop(pending)[2])
            scheduled = self.scheduler.schedule()
            if not scheduled:
                if not pending:
                    break  # nothing can ever be admitted (a cache too small); stop rather than spin
                self.now_s = pending[0][0]
                continue
            self.now_s += step_duration_s(self.config.profile.step, batch_shape(scheduled))
            with_output, finished = self.scheduler.complete_step(scheduled)
            for request in with_output:
                token_times[request.request_id].append(self.now_s)
            for request in finished:
                self.kv_cache.free(request.block_ids)
        return token_times
