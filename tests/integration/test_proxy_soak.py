"""Smoke test of benchmarks/soak.py's machinery (the soak itself runs for minutes, outside CI)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SOAK = Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py"


def test_soak_script_probes_capacity_drives_load_and_reports_the_summary_line() -> None:
    command = [sys.executable, str(SOAK), "--minutes", "0.04", "--probe-s", "1.0", "--probe-concurrency", "8",
               "--think-s", "0.05", "--max-conversations", "50", "--time-scale", "0.05",
               "--turns", "3"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=100)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = re.search(
        r"^soak minutes=(\S+) turns=(\d+) errors=(\d+) rss_growth_pct=(-?[\d.]+)$", done.stdout, re.MULTILINE
    )
    assert summary, done.stdout
    assert float(summary.group(1)) >= 0.04 and int(summary.group(2)) > 0 and summary.group(3) == "0"
    capacity = re.search(r"^capacity (\S+) turns/s .* offering (\S+) turns/s", done.stdout, re.MULTILINE)
    assert capacity and abs(float(capacity.group(2)) - 0.8 * float(capacity.group(1))) < 0.2
    bound = re.search(r"^conversations=(\d+) cap=50 bounded=True$", done.stdout, re.MULTILINE)
    assert bound and int(bound.group(1)) <= 50, done.stdout
