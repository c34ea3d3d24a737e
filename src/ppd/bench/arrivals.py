"""When to send: the seeded arrival schedule of a run's conversations, and stable seed derivation.

Only *when* lives here (and which conversation shape arrives); what the prompts say is in
workloads.py, and sending is in client.py. The schedule depends on (seed, workload, qps, run) and not
on the mode, so every mode is measured on the same arrival times: paired comparisons.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from ppd.bench.config import TraceWorkload, TurnShape, WorkloadSpec
from ppd.traces.replay import (
    ReplayConversation,
    native_rate,
    replay_conversations,
    replay_duration_s,
)


@dataclass(frozen=True)
class ConversationPlan:
    """One conversation of a run: when it arrives and the shape of each of its turns."""

    index: int
    arrival_s: float  # since the run's start
    turns: tuple[TurnShape, ...]  # a trace turn: (its whole prompt, its output)
    replay: ReplayConversation | None = None  # a trace's conversation: each turn's due time and prompt


def derive_seed(*parts: object) -> int:
    """A 64-bit seed from any parts, stable across processes (unlike hash() of a str)."""
    return _seed_of_text("\x1f".join(repr(part) for part in parts))


class SeedFamily:
    """derive_seed(*parts, last) for fixed leading parts and one last part after another (`ppd
    fleet`: a prompt seed per conversation), the leading parts' text made once."""

    def __init__(self, *parts: object) -> None:
        if not parts:
            raise ValueError("a seed family needs at least one leading part")
        self._prefix = "".join(f"{part!r}\x1f" for part in parts)

    def seed(self, last: object) -> int:
        """derive_seed(*parts, last)."""
        return _seed_of_text(self._prefix + repr(last))


def _seed_of_text(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def poisson_arrival_times_s(rate_per_s: float, duration_s: float, rng: random.Random) -> list[float]:
    """Arrival times in [0, duration_s) of a Poisson process: exponential gaps of mean 1/rate."""
    times = []
    now_s = rng.expovariate(rate_per_s)
    while now_s < duration_s:
        times.append(now_s)
        now_s += rng.expovariate(rate_per_s)
    return times


def constant_arrival_times_s(rate_per_s: float, duration_s: float) -> list[float]:
    """Evenly spaced arrival times in [0, duration_s), the first one after one gap."""
    gap_s = 1.0 / rate_per_s
    count = int(duration_s * rate_per_s - 1e-9)
    return [gap_s * (i + 1) for i in range(count)]


def plan_conversations(
    workload: WorkloadSpec, qps: float, duration_s: float, seed: int, run: int, poisson: bool = True
) -> list[ConversationPlan]:
    """The conversations of one run, identical for every mode with the same arguments."""
    if poisson:
        arrival_rng = random.Random(derive_seed(seed, "arrivals", workload.name, qps, run))
        times = poisson_arrival_times_s(qps, duration_s, arrival_rng)
    else:
        times = constant_arrival_times_s(qps, duration_s)
    shape_rng = random.Random(derive_seed(seed, "shapes", workload.name, qps, run))
    shapes = workload.conversations
    return [
        ConversationPlan(index, arrival_s, shapes[0] if len(shapes) == 1 else shape_rng.choice(shapes))
        for index, arrival_s in enumerate(times)
    ]


def trace_speedup(trace: TraceWorkload, request_rate: float) -> float:
    """The speedup that replays the trace's slice at `request_rate` requests/s on average."""
    return request_rate / native_rate(trace.linked.trace, trace.window)


def trace_request_rate(trace: TraceWorkload, speedup: float) -> float:
    """The mean request rate of the slice replayed at `speedup`."""
    return native_rate(trace.linked.trace, trace.window) * speedup


def trace_duration_s(trace: TraceWorkload, request_rate: float) -> float:
    """The arrival window of the slice replayed at `request_rate`."""
    return replay_duration_s(trace.linked.trace, trace.window, trace_speedup(trace, request_rate))


def plan_trace(trace: TraceWorkload, request_rate: float) -> list[ConversationPlan]:
    """The slice's conversations at `request_rate`: the same in every mode and run (the trace is fixed)."""
    conversations = replay_conversations(
        trace.linked.trace, trace.linked.links, trace.window, trace_speedup(trace, request_rate)
    )
    return [
        ConversationPlan(
            conversation.index,
            conversation.turns[0].due_s,
            tuple(TurnShape(turn.num_input_tokens, turn.num_output_tokens) for turn in conversation.turns),
            conversation,
        )
        for conversation in conversations
    ]
