"""Per-request stamps across processes, for finding where a turn's time goes over HTTP.

Off unless the environment variable PPD_TURN_TRACE names a folder. Then each process that takes part
(`ppd bench`, `ppd proxy`, every `ppd sim`) appends one JSON line per event to
`<folder>/<role>-<pid>.jsonl`, and benchmarks/turn_trace.py joins them by session id and request id.
Stamps are `time.monotonic()` seconds: on Linux that is CLOCK_MONOTONIC, one clock for every process
on the host (and the clock of `time.perf_counter()`, which the bench and the proxy stamp with; each
file's first line records both, so the join can check). When the variable is unset nothing is
opened, and callers skip their stamps with one `is None` test per request or step.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import IO, Any

TRACE_ENV = "PPD_TURN_TRACE"

now_s = time.monotonic  # the trace's clock (see above)


class TurnTrace:
    """One process's trace file: JSON lines, written through a large buffer, flushed on close."""

    def __init__(self, path: Path, role: str) -> None:
        self.path = path
        self._file: IO[str] | None = path.open("a", buffering=1 << 16, encoding="utf-8")
        self.write("clock", role=role, pid=os.getpid(), monotonic=time.monotonic(), perf=time.perf_counter())

    @classmethod
    def from_env(cls, role: str) -> TurnTrace | None:
        """The trace of this process when PPD_TURN_TRACE names a folder (made if missing), else None."""
        folder = os.environ.get(TRACE_ENV)
        if not folder:
            return None
        Path(folder).mkdir(parents=True, exist_ok=True)
        return cls(Path(folder) / f"{role}-{os.getpid()}.jsonl", role)

    def write(self, event: str, **fields: Any) -> None:
        """Append one event line: {"ev": event, **fields}."""
        if self._file is not None:
            self._file.write(json.dumps({"ev": event, **fields}, separators=(",", ":")) + "\n")

    def __enter__(self) -> TurnTrace:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Flush and close the file; later writes are dropped."""
        if self._file is not None:
            self._file.close()
            self._file = None
