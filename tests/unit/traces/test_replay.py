"""Slices of a trace: windows, speedups, rates, and conversations cut to the slice."""

from __future__ import annotations

import pytest

from ppd.errors import UsageError
from ppd.traces.links import link_conversations
from ppd.traces.records import Trace, TraceRequest
from ppd.traces.replay import (
    Window,
    native_rate,
    num_linked_turns,
    parse_window,
    replay_conversations,
    replay_duration_s,
)

TRACE = Trace(
    "t",
    "t",
    "mooncake",
    512,
    (
        TraceRequest(0, 0.0, 512, 1, (0, 1)),
        TraceRequest(1, 10.0, 512, 1, (0, 2)),
        TraceRequest(2, 20.0, 1024, 1, (0, 1, 3)),  # turn 2 of request 0's conversation
        TraceRequest(3, 30.0, 1536, 1, (0, 1, 3, 4)),  # turn 3
        TraceRequest(4, 35.0, 512, 1, (0, 5)),
        TraceRequest(5, 40.0, 512, 1, (0, 6)),  # so that no more than half start with (0, 1)
    ),
)
LINKS = link_conversations(TRACE)


def test_parse_window() -> None:
    assert parse_window("10:20") == Window(10.0, 20.0)
    assert parse_window(":20") == Window(0.0, 20.0) and parse_window("5:") == Window(5.0, None)
    for bad in ("10", "20:10", "-1:5", "a:b"):
        with pytest.raises(UsageError, match="--window"):
            parse_window(bad)


def test_whole_trace_at_speedup_two() -> None:
    conversations = replay_conversations(TRACE, LINKS, Window(), speedup=2.0)
    assert [[(t.request_index, t.due_s) for t in c.turns] for c in conversations] == [
        [(0, 0.0), (2, 10.0), (3, 15.0)],
        [(1, 5.0)],
        [(4, 17.5)],
        [(5, 20.0)],
    ]
    assert num_linked_turns(conversations) == 2
    assert [t.num_history_tokens for t in conversations[0].turns] == [0, 2 * 512, 3 * 512]
    assert native_rate(TRACE, Window()) == pytest.approx(6 / 40.001)


def test_a_window_cuts_conversations_and_restarts_times() -> None:
    window = Window(15.0, 40.0)
    conversations = replay_conversations(TRACE, LINKS, window, speedup=1.0)
    assert [[(t.request_index, t.due_s) for t in c.turns] for c in conversations] == [
        [(2, 5.0), (3, 15.0)],
        [(4, 20.0)],
    ]
    assert [t.num_history_tokens for t in conversations[0].turns] == [0, 1536]  # its turn 1 is cut off
    assert native_rate(TRACE, window) == pytest.approx(3 / 25.0)
    assert replay_duration_s(TRACE, window, 5.0) == pytest.approx(5.0)


def test_empty_windows_and_bad_speedups_are_errors() -> None:
    with pytest.raises(UsageError, match="no requests in the window"):
        replay_conversations(TRACE, LINKS, Window(41.0, 50.0), 1.0)
    with pytest.raises(UsageError, match="speedup"):
        replay_conversations(TRACE, LINKS, Window(), 0.0)
