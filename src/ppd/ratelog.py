"""One line per rejected request, at most so many a second: a flood of bad requests must not flood
the log (every malformed request used to write a full traceback).

`RateLimitedLog` is a token bucket over lines; what it drops it counts, and the next line it writes
says how many were dropped. `OneLineHandler` puts aiohttp's own error records (bytes that are not
HTTP, answered by its parser before any application code runs) through it, without tracebacks.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

MAX_LINE_CHARS = 300


def one_line(text: str) -> str:
    """`text` on one line (whitespace runs, newlines included, as one space), cut to MAX_LINE_CHARS,
    other unprintable characters escaped: a client's path or header must not write to the terminal."""
    flat = " ".join(text.split())
    if len(flat) > MAX_LINE_CHARS:
        flat = flat[: MAX_LINE_CHARS - 3] + "..."
    if flat.isprintable():
        return flat
    return "".join(char if char.isprintable() else ascii(char)[1:-1] for char in flat)


class RateLimitedLog:
    """Writes lines, at most `lines_per_s` a second on average and `burst` at once."""

    def __init__(
        self,
        lines_per_s: float = 10.0,
        burst: int = 20,
        write: Callable[[str], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lines_per_s = lines_per_s
        self._burst = float(burst)
        self._tokens = float(burst)
        self._write = write if write is not None else _write_stderr
        self._clock = clock
        self._last_s = clock()
        self.num_written = 0
        self.num_dropped = 0  # since start
        self._dropped_since_written = 0

    def line(self, text: str) -> bool:
        """Write `text` as one line unless over the rate; returns whether it was written."""
        now_s = self._clock()
        self._tokens = min(self._burst, self._tokens + (now_s - self._last_s) * self._lines_per_s)
        self._last_s = now_s
        if self._tokens < 1.0:
            self.num_dropped += 1
            self._dropped_since_written += 1
            return False
        self._tokens -= 1.0
        dropped, self._dropped_since_written = self._dropped_since_written, 0
        suffix = f" ({dropped} similar lines dropped before this one)" if dropped else ""
        self._write(one_line(text) + suffix + "\n")
        self.num_written += 1
        return True


def _write_stderr(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()


class OneLineHandler(logging.Handler):
    """A logging handler writing each record as one line through a RateLimitedLog: the message and
    the exception's type and text, never a traceback."""

    def __init__(self, log: RateLimitedLog, prefix: str) -> None:
        super().__init__()
        self._log = log
        self._prefix = prefix

    def emit(self, record: logging.LogRecord) -> None:
        text = f"{self._prefix}{record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            text += f": {type(exc).__name__}: {exc}"
        self._log.line(text)


def route_server_errors(logger_name: str, log: RateLimitedLog, prefix: str) -> None:
    """Send the records of `logger_name` (e.g. "aiohttp.server") through `log`, one line each."""
    logger = logging.getLogger(logger_name)
    logger.handlers[:] = [OneLineHandler(log, prefix)]
    logger.propagate = False
