"""The virtual clock: events run in time order, ties in the order scheduled."""

from __future__ import annotations

import pytest

from ppd.fleet.clock import EventQueue


def _run_log(schedule: str) -> list[tuple[float, str]]:
    """Events logged as they run, scheduled with at() one by one or with one at_each()."""
    clock = EventQueue()
    log: list[tuple[float, str]] = []

    def record(name: str) -> None:
        log.append((clock.now_s, name))
        if name == "a1":  # an event scheduled while the run goes on, due with others
            clock.at(2.0, record, "from a1")

    clock.at(2.0, record, "before")
    times_s = [3.0, 1.0, 2.0, 2.0, 0.5]
    names = ["a0", "a1", "a2", "a3", "a4"]
    if schedule == "at":
        for time_s, name in zip(times_s, names, strict=True):
            clock.at(time_s, record, name)
    else:
        clock.at_each(times_s, record, names)
    clock.at(2.0, record, "after")
    clock.run_until(10.0)
    assert clock.num_events == len(log)
    return log


def test_at_each_runs_as_one_at_per_item() -> None:
    log = _run_log("at_each")
    assert log == _run_log("at")
    assert [name for _, name in log] == ["a4", "a1", "before", "a2", "a3", "after", "from a1", "a0"]


def test_at_each_keeps_only_the_next_item_in_the_heap() -> None:
    clock = EventQueue()
    clock.at_each([float(i) for i in range(1000)], lambda _: None, list(range(1000)))
    assert len(clock) == 1
    clock.run_until(499.5)
    assert clock.num_events == 500 and len(clock) == 1


def test_at_each_refuses_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="2 times for 1 arguments"):
        EventQueue().at_each([1.0, 2.0], lambda _: None, ["x"])
