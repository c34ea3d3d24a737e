"""Smoke test of benchmarks/abuse.py's machinery: a few of its cases, both phases and the end checks,
over real sims and a real proxy (the full run takes minutes and is a measurement, outside CI)."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

ABUSE = Path(__file__).resolve().parents[2] / "benchmarks" / "abuse.py"
CASES = [
    "forged kv_transfer_params (pull from a spy) on a turn 1",  # the spy and the P -> D route
    "max_tokens that D refuses after P prefilled",  # the KV release, checked at the end
    "Content-Encoding 'br'",
    "gzip bomb",
    "bytes that are not HTTP",
]


def test_abuse_script_runs_its_cases_and_end_checks_and_prints_the_summary() -> None:
    command = [sys.executable, str(ABUSE), "--baseline-s", "1", "--attack-s", "1", "--rate", "2",
               "--turns", "2", "--think-s", "0.05", "--max-tokens", "4", "--slow-connections", "2",
               "--idle-connections", "4", "--header-timeout-s", "1", "--time-scale", "0.02"]  # fmt: skip
    for case in CASES:
        command += ["--cases", case]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    for case in CASES:
        assert re.search(rf"^  ok    {re.escape(case)}", done.stdout, re.MULTILINE), done.stdout
    assert "WRONG" not in done.stdout
    summary = re.search(
        r"^abuse cases=(\d+) wrong_answers=(\d+) health_p99_ms=(\S+) honest_errors=(\d+)$",
        done.stdout,
        re.MULTILINE,
    )
    assert summary, done.stdout
    # The chosen cases, the two connection floods and the five end checks.
    assert summary.group(1) == str(len(CASES) + 2 + 5)
    assert summary.group(2) == "0" and summary.group(4) == "0"
    honest = re.search(r"^attack: honest turns ok=(\d+) errors=0", done.stdout, re.MULTILINE)
    assert honest and int(honest.group(1)) > 0, done.stdout


def test_a_case_filter_that_matches_nothing_is_refused() -> None:
    sys.path.insert(0, str(ABUSE.parent))  # abuse.py imports _sims from its own folder
    try:
        abuse = importlib.import_module("abuse")
    finally:
        sys.path.remove(str(ABUSE.parent))

    async def case() -> tuple[bool, str]:
        return True, ""

    cases = [("gzip bomb", case), ("bytes that are not HTTP", case)]
    assert [name for name, _ in abuse.selected(cases, ["bomb"])] == ["gzip bomb"]
    assert abuse.selected(cases, None) == cases
    with pytest.raises(SystemExit, match="no case name contains"):
        abuse.selected(cases, ["no such case"])
