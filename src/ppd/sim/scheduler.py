"""The vLLM V1 scheduling policy: one token budget per step, running requests first (decodes and
unfinished prefill chunks), then waiting requests in arrival order; chunked prefill; prefix-cache
hits on admission; recompute preemption of the newest running request when blocks run out."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from ppd.sim.kv_cache import ROOT_BLOCK_HASH, KVBlock, KVCache
from ppd.sim.request import Request, RequestStatus
from ppd.sim.timing import BatchShape, prefill_attention_pairs


@dataclass(frozen=True)
class SchedulerConfig:
    max_num_batched_tokens: int
    max_num_seqs: int


@dataclass(init=False, slots=True)
class ScheduledRequest:
    request: Request
    num_new_tokens: int

    # Written out (init=False): mypyc runs a dataclass's generated __init__ interpreted (docs/fleet.md).
    def __init__(self, request: Request, num_new_tokens: int) -> None:
        self.request = request
        self.num_new_tokens = num_new_tokens

    @property
    def completes_prompt(self) -> bool:
        """Whether this step reaches the end of what the request has so far: it yields a token."""
        return self.request.num_computed_tokens + self.num_new_tokens >= self.request.num_tokens


class Scheduler:
    """Decides what each step computes and applies the step's results."""

    def __init__(self, config: SchedulerConfig, kv_cache: KVCache) -> None:
        self.config = config
        self.kv_cache = kv_cache
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []
        self.num_preemptions = 0

    def add(self, request: Request) -> None:
        self.waiting.append(request)

    def has_work(self) -> bool:
        return bool(self.running or self.waiting)

    def abort(self, request: Request) -> None:
        """Drop a request wherever it is and release its blocks."""
        if request in self.running:
            self.running.remove(request)
        elif request in self.waiting:
            self.waiting.remove(request)
        self.kv_cache.free(request.blocks)
        request.blocks = []
        request.status = RequestStatus.ABORTED

    def schedule(self) -> list[ScheduledRequest]:
        """Pick this step's work within the token budget."""
        budget = self.config.max_num_batched_tokens
        scheduled: list[ScheduledRequest] = []
        preempted = False
        index = 0
        while index < len(self.running) and budget > 0:
            request = self.running[index]
            num_new = min(request.num_tokens - request.num_computed_tokens, budget)
            if self._grow(request, num_new):
                scheduled.append(ScheduledRequest(request, num_new))
                budget -= num_new
                index += 1
                continue
            preempted = True
            victim = self.running.pop()
            self._preempt(victim)
            if victim is request:
                break
        if not preempted:
            budget = self._admit_waiting(scheduled, budget)
        return scheduled

    def _admit_waiting(self, scheduled: list[ScheduledRequest], budget: int) -> int:
        while self.waiting and budget > 0 and len(self.running) < self.config.max_num_seqs:
            request = self.waiting[0]
            hit_blocks = self._prefix_hit(request)
            num_new = min(request.num_tokens - request.num_computed_tokens, budget)
            if not self._admit(request, hit_blocks, num_new):
                request.num_computed_tokens = 0
                break
            self.waiting.popleft()
            request.status = RequestStatus.RUNNING
            self.running.append(request)
            scheduled.append(ScheduledRequest(request, num_new))
            budget -= num_new
        return budget

    def _prefix_hit(self, request: Request) -> list[KVBlock]:
        """Find cached blocks and set num_computed_tokens; the last prompt token is always computed."""
        block_size = self.kv_cache.block_size
        max_hit_blocks = (request.num_tokens - 1) // block_size
        hit_blocks = self.kv_cache.cached_prefix(request.block_hashes, max_hit_blocks)
        num_local = len(hit_blocks) * block_size
        if request.num_cached_tokens < 0:
            self.kv_cache.record_query(request.num_tokens, num_local)
            request.num_cached_tokens = max(num_local, request.num_external_tokens)
        # KV pulled from a remote P counts as computed, except the last token, which vLLM recomputes.
        request.num_computed_tokens = max(num_local, request.num_external_tokens - 1)
        request.num_committed_blocks = len(hit_blocks)
        return hit_blocks

    def _admit(self, request: Request, hit_blocks: list[KVBlock], num_new: int) -> bool:
        num_needed = self._blocks_needed(request.num_computed_tokens + num_new) - len(hit_blocks)
        if num_needed + self.kv_cache.num_evictable(hit_blocks) > self.kv_cache.num_free_blocks:
            return False
        self.kv_cache.touch(hit_blocks)
        new_blocks = self.kv_cache.allocate(num_needed)
        if new_blocks is None:  # cannot happen after the check above; keep the state consistent
            self.kv_cache.free(hit_blocks)
            return False
        request.blocks = hit_blocks + new_blocks
        return True

    def _grow(self, request: Request, num_new: int) -> bool:
        num_needed = self._blocks_needed(request.num_computed_tokens + num_new) - len(request.blocks)
        if num_needed <= 0:
            return True
        new_blocks = self.kv_cache.allocate(num_needed)
        if new_blocks is None:
            return False
        request.blocks.extend(new_blocks)
        return True

    def _preempt(self, request: Request) -> None:
        """Recompute preemption: drop the KV (cached blocks stay findable) and requeue at the front."""
        self.kv_cache.free(request.blocks)
        request.blocks = []
        request.num_computed_tokens = 0
        request.num_external_tokens = 0
        request.status = RequestStatus.WAITING
        request.num_preemptions += 1
        self.num_preemptions += 1
        self.waiting.appendleft(request)

    def _blocks_needed(self, num_tokens: int) -> int:
        return -(-num_tokens // self.kv_cache.block_size)

    def complete_step(self, scheduled: list[ScheduledRequest]) -> tuple[list[Request], list[Request]]:
        """Apply a finished step: advance, cache full blocks, sample, and free what finished (except
        the blocks of a request that holds its KV for a remote decode: the caller leases them).
        Returns (got a token, finished)."""
        with_output: list[Request] = []
        finished: list[Request] = []
        block_size = self.kv_cache.block_size
        for item in scheduled:
            request = item.request
            if request.status is not RequestStatus.RUNNING:
                continue  # aborted while the step ran
            request.num_computed_tokens += item.num_new_tokens
            if request.num_computed_tokens // block_size > request.num_committed_blocks:
                self._commit_full_blocks(request)
            if request.num_computed_tokens < request.num_tokens:
                continue  # a prefill chunk; more to come
            request.output_token_ids.append(request.next_answer_token())
            with_output.append(request)
            if request.num_output_tokens >= request.max_tokens:
                finished.append(request)
        self._finish(finished)
        return with_output, finished

    def _finish(self, finished: list[Request]) -> None:
        for request in finished:
            self.running.remove(request)
            request.status = RequestStatus.FINISHED
            if not request.hold_kv_on_finish:
                self.kv_cache.free(request.blocks)

    def decode_run_length(self, max_steps: int) -> int:
        """How many steps from now, up to max_steps, are the same decode-only batch: every running
        request decodes, nothing waits, and the free blocks cover every block those steps will take
        (no preemption). The run ends at the step where the first of them finishes. 0: the next
        step is not such."""
        running = self.running
        if self.waiting or not running or len(running) > self.config.max_num_batched_tokens:
            return 0
        # num_tokens and num_output_tokens spelt out: this runs for every request before every run.
        num_steps = max_steps
        for request in running:
            num_left = request.max_tokens - len(request.output_token_ids)
            num_steps = min(num_steps, num_left)
        block_size = self.kv_cache.block_size
        num_blocks_needed = 0
        for request in running:
            num_output_tokens = len(request.output_token_ids)
            num_tokens = request.num_prompt_tokens + num_output_tokens
            if num_tokens - request.num_computed_tokens != 1 or not num_output_tokens:
                return 0
            num_blocks_needed += -(-(request.num_computed_tokens + num_steps) // block_size)
            num_blocks_needed -= len(request.blocks)
        return num_steps if num_blocks_needed <= self.kv_cache.num_free_blocks else 0

    def complete_decode_steps(self, num_steps: int) -> tuple[list[Request], list[Request]]:
        """Apply `num_steps` steps of a decode run (decode_run_length) at once, exactly as that many
        schedule() + complete_step() calls would: blocks taken in the same order, the same tokens,
        the same blocks cached, the same requests finished. Returns (got tokens, finished)."""
        running = list(self.running)
        self._allocate_in_step_order(running, num_steps)
        finished: list[Request] = []
        block_size = self.kv_cache.block_size
        for request in running:
            request.num_computed_tokens += num_steps
            request.append_answer_tokens(num_steps)
            if request.num_computed_tokens // block_size > request.num_committed_blocks:
                self._commit_full_blocks(request)
            if len(request.output_token_ids) >= request.max_tokens:
                finished.append(request)
        self._finish(finished)
        return running, finished

    def _allocate_in_step_order(self, running: list[Request], num_steps: int) -> None:
        """Take the blocks a decode run needs in the order per-step scheduling would take them: by
        step, then by position in the running list (_grow), so later evictions match too."""
        block_size = self.kv_cache.block_size
        # A request needs a block at steps first, first + block_size, ... (step j computes token
        # num_computed + j + 1 and needs a new block when that crosses one). Per-step order is by
        # step, then by position: within each window of block_size steps, by first % block_size
        # (each request needs at most one block per window), then by position. So the requests are
        # put by that phase, in position order, and the windows walked in turn.
        by_phase: list[list[tuple[Request, int]]] = [[] for _ in range(block_size)]
        num_needed = 0
        for request in running:
            first_step = len(request.blocks) * block_size - request.num_computed_tokens
            if first_step < num_steps:
                by_phase[first_step % block_size].append((request, first_step))
                num_needed += (num_steps - first_step + block_size - 1) // block_size
        if not num_needed:
            return
        # One allocate(n) takes the same blocks, in the same order, as n allocate(1) calls.
        blocks = self.kv_cache.allocate(num_needed)
        if blocks is None:  # decode_run_length checked the free blocks
            raise RuntimeError("a decode run ran out of KV blocks it had counted")
        num_taken = 0
        for window_start in range(0, num_steps, block_size):
            for phase in range(min(block_size, num_steps - window_start)):
                step = window_start + phase
                for request, first_step in by_phase[phase]:
                    if first_step <= step:
                        request.blocks.append(blocks[num_taken])
                        num_taken += 1

    def _commit_full_blocks(self, request: Request) -> None:
        block_size = self.kv_cache.block_size
        num_full = request.num_computed_tokens // block_size
        first = request.num_committed_blocks
        if num_full <= first:
            return
        hashes = request.block_hashes
        if num_full == first + 1 and len(hashes) == first:
            # A decode filling one block (the usual case), spelt out: extend_block_hashes and
            # commit_many of that one block, without their loops.
            parent: Any = hashes[-1] if hashes else ROOT_BLOCK_HASH
            block_hash: Any = request.block_hash_at(parent, first * block_size, block_size)
            hashes.append(block_hash)  # one object for the list and the cache
            self.kv_cache.commit(request.blocks[first], block_hash)
            request.num_committed_blocks = num_full
            return
        if len(hashes) < num_full:
            request.extend_block_hashes(block_size, num_full * block_size)
        self.kv_cache.commit_many(request.blocks, hashes, first, num_full)
        request.num_committed_blocks = num_full


def batch_shape(scheduled: list[ScheduledRequest]) -> BatchShape:
    """What a step computes, for the time model: prefill chunks and decoding sequences."""
    shape = BatchShape()
    for item in scheduled:
        request, num_new = item.request, item.num_new_tokens
        if num_new == 1 and request.num_output_tokens > 0:
            shape.num_decode_seqs += 1
            shape.num_decode_context_tokens += request.num_computed_tokens + 1
        else:
            shape.num_prefill_tokens += num_new
            shape.num_prefill_chunks += num_new > 1
            shape.num_attention_pairs += prefill_attention_pairs(request.num_computed_tokens, num_new)
    return shape
