"""The virtual clock: a queue of timed callbacks, run in time order (ties in the order scheduled)."""

from __future__ import annotations

import heapq
from collections.abc import Callable
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

    def run_until(self, end_s: float) -> None:
        """Run every event due at or before end_s; the clock stops at the last one run."""
        heap = self._heap
        while heap and heap[0][0] <= end_s:
            time_s, _, callback, args = heapq.heappop(heap)
            self.now_s = time_s
            self.num_events += 1
            callback(*args)
