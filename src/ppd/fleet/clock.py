"""The virtual clock: a queue of timed callbacks, run in time order (ties in the order scheduled)."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from typing import Any


class EventQueue:
    """Discrete-event time: `now_s` jumps from one event to the next; nothing sleeps."""

    def __init__(self) -> None:
        self.now_s = 0.0
        self.num_events = 0
        self._heap: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._num_scheduled = 0  # the tie-break: events due at the same time run in this order

    def __len__(self) -> int:
        return len(self._heap)

    def at(self, time_s: float, callback: Callable[..., None], *args: Any) -> None:
        """Run callback(*args) at time_s (never before now)."""
        self._num_scheduled += 1
        heapq.heappush(self._heap, (max(time_s, self.now_s), self._num_scheduled, callback, args))

    def after(self, delay_s: float, callback: Callable[..., None], *args: Any) -> None:
        """Run callback(*args) delay_s from now."""
        self.at(self.now_s + delay_s, callback, *args)

    def at_each(self, times_s: Sequence[float], callback: Callable[[Any], None], args: Sequence[Any]) -> None:
        """Run callback(args[i]) at times_s[i] for every i: the events, and their order, of one at()
        call per i made now, but only the next of them waits in the heap at a time (a run's
        arrivals, tens of thousands, would make every push and pop of the heap deeper)."""
        if len(times_s) != len(args):
            raise ValueError(f"at_each: {len(times_s)} times for {len(args)} arguments")
        first = self._num_scheduled + 1
        self._num_scheduled += len(args)
        now_s = self.now_s
        order = sorted(range(len(args)), key=times_s.__getitem__)  # stable: ties in the order given
        events = [(max(times_s[i], now_s), first + i, args[i]) for i in order]
        if events:
            self._push_next_of(events, 0, callback)

    def _push_next_of(
        self, events: list[tuple[float, int, Any]], index: int, callback: Callable[[Any], None]
    ) -> None:
        time_s, number, arg = events[index]
        heapq.heappush(self._heap, (time_s, number, self._run_one_of, (events, index, callback, arg)))

    def _run_one_of(
        self, events: list[tuple[float, int, Any]], index: int, callback: Callable[[Any], None], arg: Any
    ) -> None:
        """One event of at_each: its successor joins the heap, then it runs."""
        if index + 1 < len(events):
            self._push_next_of(events, index + 1, callback)
        callback(arg)

    def run_until(self, end_s: float) -> None:
        """Run every event due at or before end_s; the clock stops at the last one run."""
        heap = self._heap
        while heap and heap[0][0] <= end_s:
            time_s, _, callback, args = heapq.heappop(heap)
            self.now_s = time_s
            self.num_events += 1
            callback(*args)
