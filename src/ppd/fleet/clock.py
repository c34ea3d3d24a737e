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
        series = _Series(times_s, callback, args, self._num_scheduled + 1, self.now_s)
        self._num_scheduled += len(args)
        if args:
            self._push_next_of(series, 0)

    def _push_next_of(self, series: _Series, position: int) -> None:
        index = series.order[position]
        time_s = max(series.times_s[index], series.not_before_s)
        heapq.heappush(self._heap, (time_s, series.first + index, self._run_next_of, (series, position)))

    def _run_next_of(self, series: _Series, position: int) -> None:
        """One event of at_each: the one after it joins the heap, then it runs."""
        if position + 1 < len(series.order):
            self._push_next_of(series, position + 1)
        series.callback(series.args[series.order[position]])

    def run_until(self, end_s: float) -> None:
        """Run every event due at or before end_s; the clock stops at the last one run."""
        heap = self._heap
        while heap and heap[0][0] <= end_s:
            time_s, _, callback, args = heapq.heappop(heap)
            self.now_s = time_s
            self.num_events += 1
            callback(*args)


class _Series:
    """The events of one at_each call: their times and arguments, in time order (ties in the order
    given), each with its scheduling number (first + its index)."""

    __slots__ = ("args", "callback", "first", "not_before_s", "order", "times_s")

    def __init__(
        self,
        times_s: Sequence[float],
        callback: Callable[[Any], None],
        args: Sequence[Any],
        first: int,
        not_before_s: float,
    ) -> None:
        self.times_s, self.callback, self.args = times_s, callback, args
        self.first, self.not_before_s = first, not_before_s
        # The order to run them in: their own unless the times are out of order (a sort is stable)
        self.order: Sequence[int] = range(len(args))
        if any(times_s[i] > times_s[i + 1] for i in range(len(times_s) - 1)):
            self.order = sorted(self.order, key=times_s.__getitem__)
