"""`ppd demo --quick` end to end on real sim engines and proxy, and its clean stop on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

PLOTS = (
    "qps_p99_ttft.png",
    "qps_avg_e2e.png",
    "qps_ratio_crossover.png",
    "qps_success_rate.png",
    "qps_throughput.png",
    "qps_throughput_comparison.png",
)


def _ppd(*args: str) -> list[str]:
    return [sys.executable, "-m", "ppd", *args]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_quick_demo_measures_three_modes_and_writes_the_report(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    done = subprocess.run(
        _ppd("demo", "--quick", "--out", str(out)), capture_output=True, text=True, timeout=110, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "### PPD vs PD (turn-2 TTFT improvement)" in done.stdout
    assert f"summary: {out / 'report' / 'summary.md'}" in done.stdout
    for name in PLOTS:
        assert (out / "report" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    merged = json.loads((out / "report" / "merged_results.json").read_text())
    assert merged["modes"] == ["pd", "ppd", "replication"]
    assert merged["workloads"] == ["W1", "W4"]
    for point in merged["points"]:
        assert point["metrics"]["success_rate"]["mean"] == 1.0, point
    # PPD serves turn 2 from D's prefix cache: its turn-2 TTFT must beat PD's wherever the deployment
    # is not saturated. W4 at 16 conv/s is far past saturation (8k-token turns, ~32 conversations in
    # a 2 s window): there queueing decides, and the order flips from run to run (one CI run at
    # fd7d539: PPD 520 ms vs PD 417 ms; the same code alone: PPD 63% lower), so it is not asserted.
    ttft = {
        (p["workload"], p["mode"], p["qps"]): p["metrics"]["ttft_ms.mean"]["mean"]
        for p in merged["points"]
        if p["turn_group"] == "2+"
    }
    saturated = {("W4", 16.0)}
    compared = [(w, q) for (w, m, q) in ttft if m == "ppd" and (w, q) not in saturated]
    assert len(compared) == 3, sorted(ttft)
    for workload, qps in compared:
        assert ttft[(workload, "ppd", qps)] < ttft[(workload, "pd", qps)], (workload, qps)
    assert not (out / "deployment.json").exists()  # everything it started was stopped


@pytest.mark.slow
def test_ctrl_c_mid_measurement_stops_every_process_the_demo_started(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    command = _ppd("demo", "--quick", "--out", str(out))
    # SIGINT's default action, even where this test runs with it ignored (a background job of a shell)
    default_sigint = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=default_sigint
    )
    assert process.stdout is not None
    seen = []
    for line in process.stdout:  # pytest-timeout bounds this if the demo never gets there
        seen.append(line)
        if "measuring W1" in line:
            break
    state = json.loads((out / "deployment.json").read_text())
    pids = [int(record["pid"]) for record in state["processes"]]
    assert len(pids) == 3, state  # prefill, decode, proxy
    time.sleep(1.0)  # requests in flight
    process.send_signal(signal.SIGINT)
    output = "".join(seen) + process.communicate(timeout=60)[0]
    assert process.returncode == 130, output
    deadline = time.monotonic() + 15
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in pids if _alive(pid)], output
    assert not (out / "deployment.json").exists()
