"""Run a `ppd sim` for a benchmark: a child process of this checkout on a free port, stopped after."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

SRC = Path(__file__).resolve().parents[1] / "src"
_LISTENING = "listening on "


@contextlib.contextmanager
def running_sim(*args: str, stop_timeout_s: float = 10.0) -> Iterator[str]:
    """`ppd sim --port 0 ARGS...` while the block runs; yields its URL once it accepts connections."""
    # This checkout's src/ first, so the benchmark measures the code beside it, installed or not.
    python_path = os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))
    process = subprocess.Popen(
        [sys.executable, "-m", "ppd", "sim", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": python_path},
    )
    try:
        yield _wait_for_url(process)
    finally:
        process.terminate()
        try:
            process.wait(stop_timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for_url(process: subprocess.Popen[str]) -> str:
    """The URL of the sim's `listening on URL` line; later output is drained, so a full pipe never
    blocks the sim."""
    stdout = process.stdout
    if stdout is None:
        raise RuntimeError("ppd sim was started without a stdout pipe")
    for line in stdout:
        if _LISTENING in line:
            threading.Thread(target=_drain, args=(stdout,), daemon=True).start()
            return line.split(_LISTENING, 1)[1].strip()
    stdout.close()
    raise RuntimeError(f"ppd sim did not start: exit {process.wait()}")


def _drain(stdout: IO[str]) -> None:
    with stdout:  # closed at EOF, when the sim has exited
        for _ in stdout:
            pass
