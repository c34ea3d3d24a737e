"""The rate-limited one-line log of rejected requests."""

from __future__ import annotations

import logging

from ppd.ratelog import MAX_LINE_CHARS, RateLimitedLog, one_line, route_server_errors


class Clock:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def test_one_line_flattens_cuts_and_escapes() -> None:
    assert one_line("a\n  b\tc") == "a b c"
    assert len(one_line("x" * 1000)) == MAX_LINE_CHARS and one_line("x" * 1000).endswith("...")
    assert one_line("path \x1b[31m\x00") == "path \\x1b[31m\\x00"


def test_lines_over_the_rate_are_dropped_and_counted_in_the_next_line() -> None:
    lines: list[str] = []
    clock = Clock()
    log = RateLimitedLog(lines_per_s=10.0, burst=5, write=lines.append, clock=clock)
    written = [log.line(f"rejected {n}") for n in range(100)]  # a flood, all at one instant
    assert written == [True] * 5 + [False] * 95 and len(lines) == 5
    clock.now_s = 1.0  # ten more tokens, capped at the burst of five
    assert log.line("later")
    assert lines[-1] == "later (95 similar lines dropped before this one)\n"
    assert (log.num_written, log.num_dropped) == (6, 95)
    assert all(line.count("\n") == 1 for line in lines)


def test_server_errors_become_one_line_without_traceback() -> None:
    lines: list[str] = []
    name = "ppd.test.server"
    route_server_errors(name, RateLimitedLog(write=lines.append), "ppd proxy: ")
    try:
        raise ValueError("bad\nrequest line")
    except ValueError:
        logging.getLogger(name).exception("Error handling request from 127.0.0.1")
    assert lines == ["ppd proxy: Error handling request from 127.0.0.1: ValueError: bad request line\n"]
