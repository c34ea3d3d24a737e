"""What a trace is once read: requests with arrival times, lengths and prefix block ids."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TraceRequest:
    """One request of a trace. `block_ids`: one id per `block_size` prompt tokens, equal ids meaning
    identical blocks (empty for a trace without prefix structure: its prompts share nothing)."""

    index: int  # position in the trace file, from 0
    arrival_s: float  # since the trace's first request
    num_input_tokens: int
    num_output_tokens: int
    block_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Trace:
    """A whole trace file, requests in arrival order."""

    name: str  # e.g. "mooncake-conversation_trace"
    source: str  # the file it was read from
    format: str  # "mooncake" | "azure"
    block_size: int  # prompt tokens per block id (0 when the trace has none)
    requests: tuple[TraceRequest, ...]

    @property
    def duration_s(self) -> float:
        """First to last arrival."""
        return self.requests[-1].arrival_s - self.requests[0].arrival_s if self.requests else 0.0
