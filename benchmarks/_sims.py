"""Run a `ppd sim` for a benchmark: a child process of this checkout on a free port, stopped after."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

SRC = Path(__file__).resolve().parents[1] / "src"
_LISTENING = "listening on "
_URL_RE = re.compile(r"listening on (http://\S+)")


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


def start(args: list[str], log_path: Path, timeout_s: float = 30.0) -> tuple[subprocess.Popen[bytes], str]:
    """Start `python -m ppd ARGS --port 0`, output to log_path, and return it with its URL.

    Output goes to a file, not a pipe: a pipe nobody reads fills up and blocks the process.
    """
    [started] = start_all([(args, log_path)], timeout_s)
    return started


def start_all(
    commands: list[tuple[list[str], Path]], timeout_s: float = 30.0
) -> list[tuple[subprocess.Popen[bytes], str]]:
    """start() for each (ARGS, log path), all launched before any is waited for (each process's
    imports take a fraction of a second of CPU; one after another they added up). On a failure
    every one of them is killed."""
    processes = [_launch(args, log_path) for args, log_path in commands]
    try:
        return [
            (process, _wait_for_log_url(process, args, log_path, timeout_s))
            for process, (args, log_path) in zip(processes, commands, strict=True)
        ]
    except RuntimeError:
        for process in processes:
            process.kill()
        raise


def _launch(args: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "ppd", *args, "--port", "0"], stdout=log, stderr=subprocess.STDOUT
        )


def _wait_for_log_url(
    process: subprocess.Popen[bytes], args: list[str], log_path: Path, timeout_s: float
) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        match = _URL_RE.search(log_path.read_text(errors="replace"))
        if match:
            return match.group(1)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"ppd {' '.join(args)} did not start; see {log_path}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate a process from start(), killing it after 10 s."""
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
