"""A replayable slice of a trace: the requests in a time window, grouped into conversations, with
arrival times scaled to a request rate.

Times: `--window START:END` picks the requests that arrived in [START, END) s of the trace; a speedup
X divides their offsets from START by X (X = 2 replays the slice twice as fast), and a target rate R
means X = R / (the slice's own mean rate). Conversations are cut to the slice: a conversation whose
earlier turns arrived before START starts, in the replay, at its first request inside it (that turn's
history was never sent, so no engine could hold it), and turns are numbered from 1 again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ppd.errors import UsageError
from ppd.traces.links import Links
from ppd.traces.records import Trace


@dataclass(frozen=True)
class Window:
    """[start_s, end_s) of a trace's time; end_s None: to the last request."""

    start_s: float = 0.0
    end_s: float | None = None


@dataclass(frozen=True, slots=True)
class ReplayTurn:
    """One request of the slice, as sent: when (s since the replay's start) and what."""

    request_index: int
    due_s: float
    num_input_tokens: int
    num_output_tokens: int
    block_ids: tuple[int, ...]
    # Prompt tokens the trace says repeat this conversation's earlier turns in the slice (its
    # history): what an engine that served them could still hold. 0 for the slice's first turn.
    num_history_tokens: int = 0


@dataclass(frozen=True)
class ReplayConversation:
    """The slice's requests of one conversation, in arrival order."""

    index: int
    turns: tuple[ReplayTurn, ...]


def parse_window(text: str) -> Window:
    """`START:END` in trace seconds (either side may be empty); UsageError otherwise."""
    start_text, sep, end_text = text.partition(":")
    try:
        start_s = float(start_text) if start_text.strip() else 0.0
        end_s = float(end_text) if end_text.strip() else None
    except ValueError:
        start_s, end_s, sep = -1.0, None, ""
    if not sep or start_s < 0 or (end_s is not None and end_s <= start_s):
        raise UsageError(f"--window {text!r}: expected START:END in s of the trace, 0 <= START < END")
    return Window(start_s, end_s)


def window_span_s(trace: Trace, window: Window) -> tuple[float, float]:
    """The window's [start, end) with an open end closed just after the last request."""
    last_s = trace.requests[-1].arrival_s if trace.requests else 0.0
    end_s = window.end_s if window.end_s is not None else last_s + 1e-3
    return window.start_s, end_s


def window_indices(trace: Trace, window: Window) -> list[int]:
    """Indices of the requests that arrived in the window; UsageError when there are none."""
    start_s, end_s = window_span_s(trace, window)
    indices = [r.index for r in trace.requests if start_s <= r.arrival_s < end_s]
    if not indices:
        raise UsageError(f"trace {trace.name}: no requests in the window [{start_s:g}, {end_s:g}) s")
    return indices


def native_rate(trace: Trace, window: Window) -> float:
    """The slice's own mean request rate: its requests over the window's length, per s."""
    start_s, end_s = window_span_s(trace, window)
    return len(window_indices(trace, window)) / (end_s - start_s)


def replay_duration_s(trace: Trace, window: Window, speedup: float) -> float:
    """How long the slice's arrivals take at `speedup`."""
    start_s, end_s = window_span_s(trace, window)
    return (end_s - start_s) / speedup


def replay_conversations(
    trace: Trace, links: Links, window: Window, speedup: float
) -> list[ReplayConversation]:
    """The slice's conversations in order of their first request, times divided by `speedup`."""
    if speedup <= 0:
        raise UsageError("speedup must be > 0")
    start_s, _ = window_span_s(trace, window)
    turns_of: dict[int, list[ReplayTurn]] = {}
    for index in window_indices(trace, window):
        request = trace.requests[index]
        earlier = turns_of.setdefault(links.conversation_of[index], [])
        history_tokens = min(links.shared_blocks_of[index] * trace.block_size, request.num_input_tokens)
        turn = ReplayTurn(
            index,
            (request.arrival_s - start_s) / speedup,
            request.num_input_tokens,
            request.num_output_tokens,
            request.block_ids,
            history_tokens if earlier else 0,
        )
        earlier.append(turn)
    return [ReplayConversation(number, tuple(turns)) for number, turns in enumerate(turns_of.values())]


def num_linked_turns(conversations: Sequence[ReplayConversation]) -> int:
    """Turns after the first of their conversation in the slice."""
    return sum(len(conversation.turns) - 1 for conversation in conversations)
