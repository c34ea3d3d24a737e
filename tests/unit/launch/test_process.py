import os
import subprocess
import sys
from pathlib import Path

from ppd.launch import process

# A parent that ignores SIGTERM and forks a child into its group: stop() must reach both.
STUBBORN = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = os.fork()
if child == 0:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(60)
    os._exit(0)
print("child", child, flush=True)
time.sleep(60)
"""


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_spawn_detaches_logs_and_stops(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text("stale line from an earlier run\n")
    started = process.spawn(
        _python("import os, time; print('sid', os.getsid(0), flush=True); time.sleep(60)"), os.environ, log
    )
    try:
        assert process.is_running(started)
        assert started.identity.startswith(("linux-starttime:", "ps-lstart:"))
        _wait_for_text(log, "sid")
        assert "stale" not in log.read_text()
        assert f"sid {started.pid}" in log.read_text()  # its own session: it leads its group
    finally:
        outcome = process.stop(started, timeout_s=10)
    assert outcome == "stopped"
    assert not process.is_running(started)
    assert process.stop(started, timeout_s=1) == "already gone"


def test_stop_kills_a_group_that_ignores_sigterm(tmp_path: Path) -> None:
    log = tmp_path / "b.log"
    started = process.spawn(_python(STUBBORN), os.environ, log)
    _wait_for_text(log, "child")
    child_pid = int(log.read_text().split()[1])
    assert sorted(process.group_members(started.pid)) == sorted([started.pid, child_pid])
    outcome = process.stop(started, timeout_s=0.5)
    assert outcome.startswith("killed")
    assert process.group_members(started.pid) == []
    assert process.process_identity(child_pid) is None


def test_a_recycled_pid_is_never_signalled(tmp_path: Path) -> None:
    # Our own pid, with a start time that is not ours, stands for a pid reused by someone else.
    impostor = process.Started(os.getpid(), "linux-starttime:1")
    assert not process.is_running(impostor)
    outcome = process.stop(impostor, timeout_s=0.1)
    assert "left alone" in outcome or outcome == "already gone"
    assert process.process_identity(os.getpid()) is not None  # still alive: we were not signalled


def test_spawn_reports_a_missing_program(tmp_path: Path) -> None:
    try:
        process.spawn(["no-such-program-ppd"], {"PATH": "/nonexistent"}, tmp_path / "c.log")
    except FileNotFoundError as exc:
        assert "no-such-program-ppd" in str(exc)
    else:
        raise AssertionError("spawn of a missing program must raise")


def test_tail_returns_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "d.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert process.tail(log, 3) == "line 97\nline 98\nline 99"
    assert process.tail(tmp_path / "missing.log") == ""


def _wait_for_text(path: Path, text: str, timeout_s: float = 20.0) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return
        time.sleep(0.02)
    raise AssertionError(f"{text!r} never appeared in {path}: {path.read_text()!r}")


def test_pids_that_are_not_ours_to_signal_are_refused() -> None:
    for pid in (0, 1, -1, os.getpid(), os.getpgrp()):
        assert process.unsafe_target(pid) is not None
    assert process.unsafe_target(os.getpid() + 1_000_000) is None


def test_stopping_pid_0_leaves_the_callers_group_alive(tmp_path: Path) -> None:
    # Run in a session of its own with a sibling: before the fix, stop() reached killpg(0, SIGKILL)
    # (kernel threads have process group 0), which killed the caller and its sibling.
    script = (
        "import subprocess, sys\n"
        "from ppd.launch import process\n"
        "sibling = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'])\n"
        "print(process.stop(process.Started(0, 'x'), 0.1))\n"
        "print('sibling alive' if sibling.poll() is None else 'sibling dead')\n"
        "sibling.kill(); sibling.wait()\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          start_new_session=True)  # fmt: skip
    assert done.returncode == 0, (done.returncode, done.stderr)
    assert done.stdout.splitlines() == [
        "left alone: pid 0 is not a process ppd started (0 stands for our own process group, 1 for init)",
        "sibling alive",
    ]
