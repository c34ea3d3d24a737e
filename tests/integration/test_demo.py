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

from ppd.results import load_result

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
    # PPD serves turn 2 from D's prefix cache, without P: at every point, every PD turn 2 went
    # through P (a P hop, D pulls the KV) and every PPD turn 2 went straight to D, which found the
    # history (prompt + answer, less its last partial block) in its own cache.
    rows = [row for path in sorted((out / "results").glob("*.json")) for row in load_result(path)[1]]
    assert {(row.workload, row.qps) for row in rows} == {(w, q) for w in ("W1", "W4") for q in (2.0, 16.0)}
    for row in rows:
        if row.turn == 2 and row.mode == "pd":
            assert row.route == "pd" and row.prefill_ms is not None, row
        if row.turn == 2 and row.mode == "ppd":
            new_words = 512 if row.workload == "W1" else 8192
            history = row.prompt_tokens - new_words  # type: ignore[operator]
            assert row.route == "ppd-direct" and row.prefill_ms is None, row
            if (row.workload, row.qps) != ("W4", 16.0):  # there D's cache is near full (27 x 16k tokens)
                assert row.cached_tokens is not None and row.cached_tokens >= history // 16 * 16 - 16, row
    # And it is faster where that is the whole difference: at 2 conversations/s nothing queues, so
    # PD's turn 2 pays P's hop, the KV handshake and the pull (W4: 8,192 tokens, 512 blocks of 64
    # descriptors at 3.65 us, 120 ms modeled, 12 ms at the demo's time scale) and PPD's does not.
    # Six runs beside other jobs (2026-12-02, load average 5-7), turn-2 TTFT p50 PD / PPD in ms:
    # W1 2/s 24.0/7.4 25.6/10.7 31.5/12.8 26.2/7.6 21.3/9.3 24.2/10.1; W4 2/s 105/70 133/66 141/56
    # 104/61 109/65 110/63: PD at least 1.5x PPD every time. At 16/s the 2-core machine's relay of
    # every token decides, and the modes run one after another while other load comes and goes: at W1
    # the modeled gap is ~7 ms (`ppd fleet`: 132 vs 59 ms turn-2 TTFT modeled at 1.6/s, x0.1) and
    # PD's p50 ranged 36-146 ms over the same six runs; PPD once came out 1.6% slower (55.8 vs 54.9
    # ms mean). W4 at 16/s is far past saturation (8k-token turns). Neither is compared on time.
    ttft = {
        (p["workload"], p["mode"], p["qps"]): p["metrics"]["ttft_ms.p50"]["mean"]
        for p in merged["points"]
        if p["turn_group"] == "2+"
    }
    for workload in ("W1", "W4"):
        assert ttft[(workload, "ppd", 2.0)] < ttft[(workload, "pd", 2.0)], (workload, sorted(ttft.items()))
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
