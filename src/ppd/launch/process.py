"""Start detached processes, recognise them later by pid + start time, and stop them by process group.

A process is started in its own session, so it outlives `ppd up` and Ctrl-C in the terminal does not
reach it, and so its pid is also its process-group id: stopping the group also stops the helper
processes an engine forks (vLLM's EngineCore). A pid is only ever signalled after checking that it
is still the process we started (same start time), so a recycled pid is never killed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

_POLL_INTERVAL_S = 0.05
STILL_RUNNING = "STILL RUNNING"
_PROC = Path("/proc")  # Linux; elsewhere (macOS) process identity comes from `ps`


@dataclass(frozen=True)
class Started:
    """A process we started: pid (= its process group) and the start-time token that identifies it."""

    pid: int
    identity: str


def spawn(argv: Sequence[str], env: Mapping[str, str], log_path: Path) -> Started:
    """Start argv detached in a new session, stdout+stderr to a fresh log_path, stdin from /dev/null."""
    executable = argv[0] if os.sep in argv[0] else shutil.which(argv[0], path=env.get("PATH"))
    if executable is None:
        raise FileNotFoundError(f"{argv[0]} is not on PATH")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, log_fd, 1),
            (os.POSIX_SPAWN_DUP2, log_fd, 2),
        ]
        # posix_spawn, not subprocess.Popen: Popen objects warn when they are dropped while their
        # process still runs, which is the whole point here.
        pid = os.posix_spawn(executable, list(argv), dict(env), file_actions=actions, setsid=True)
    finally:
        os.close(log_fd)
    return Started(pid, process_identity(pid) or "")


def process_identity(pid: int) -> str | None:
    """A token that differs between two processes that had the same pid; None if pid is not running."""
    stat = _proc_stat(pid)
    if stat is not None:
        state, start_ticks = stat[0], stat[19]
        return None if state in ("Z", "X") else f"linux-starttime:{start_ticks}"
    if _PROC.is_dir():
        return None
    return _ps_start_time(pid)


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state is [0], starttime is [19])."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def _ps_start_time(pid: int) -> str | None:
    try:
        done = subprocess.run(
            ["ps", "-o", "lstart=", "-o", "stat=", "-p", str(pid)],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    fields = done.stdout.strip()
    if done.returncode != 0 or not fields or fields.split()[-1].startswith("Z"):
        return None
    return "ps-lstart:" + " ".join(fields.split()[:-1])


def reap(pid: int) -> None:
    """Collect the exit status if pid is our own child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def is_running(started: Started) -> bool:
    """Whether the process we started is still alive (not exited, not a zombie, pid not recycled)."""
    reap(started.pid)
    identity = process_identity(started.pid)
    return identity is not None and identity == started.identity


def group_members(pgid: int) -> list[int]:
    """Live processes in process group pgid (zombies excluded)."""
    if not _PROC.is_dir():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    members = []
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            stat = _proc_stat(int(entry.name))
            if stat is not None and stat[0] not in ("Z", "X") and stat[2] == str(pgid):
                members.append(int(entry.name))
    return members


def unsafe_target(pid: int) -> str | None:
    """Why signalling process group `pid` could hit something `ppd up` never started, or None.

    killpg(0) signals the caller's own group and killpg(1) init's; our own pid or group would stop
    this very process (and its siblings: a state file listing "pid": 0 once ended `ppd down` with
    exit 137)."""
    if pid <= 1:
        return f"pid {pid} is not a process ppd started (0 stands for our own process group, 1 for init)"
    if pid in (os.getpid(), os.getpgrp()):
        return f"pid {pid} is this ppd's own process or process group"
    return None


def stop(started: Started, timeout_s: float) -> str:
    """SIGTERM the process group, SIGKILL it after timeout_s; returns what happened, in words."""
    reason = unsafe_target(started.pid)
    if reason is not None:
        return f"left alone: {reason}"
    if not is_running(started):
        if _pid_is_another_group_leader(started.pid):
            return "already gone (its pid now belongs to another process; left alone)"
        leftovers = group_members(started.pid)
        if not leftovers:
            return "already gone"
        _signal_group(started.pid, signal.SIGKILL)
        return f"already gone; killed {len(leftovers)} leftover process(es) of its group"
    _signal_group(started.pid, signal.SIGTERM)
    if _wait_group_gone(started, timeout_s):
        return "stopped"
    _signal_group(started.pid, signal.SIGKILL)
    if _wait_group_gone(started, 5.0):
        return f"killed (did not stop within {timeout_s:g} s of SIGTERM)"
    return f"{STILL_RUNNING} after SIGKILL"


def _pid_is_another_group_leader(pid: int) -> bool:
    stat = _proc_stat(pid)
    return stat is not None and stat[0] not in ("Z", "X") and stat[2] == str(pid)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    if unsafe_target(pgid) is not None:  # stop() checked; this keeps every killpg behind the check
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _wait_group_gone(started: Started, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        if not is_running(started) and not group_members(started.pid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_INTERVAL_S)


def stop_all(processes: Sequence[Started], timeout_s: float) -> list[str]:
    """stop() every process at once (an 8-engine vLLM deployment would otherwise take minutes)."""
    if not processes:
        return []
    with ThreadPoolExecutor(max_workers=len(processes)) as pool:
        return list(pool.map(lambda started: stop(started, timeout_s), processes))


def tail(path: Path, num_lines: int = 20) -> str:
    """The last lines of a log file ('' when it cannot be read)."""
    try:
        with path.open("rb") as file:
            file.seek(0, os.SEEK_END)
            file.seek(max(0, file.tell() - 64 * 1024))
            data = file.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-num_lines:])
