"""The device time of issue 17's runs (tools/gpu/h200x4/session.sh), per topology, from the
prediction: a run lasts its arrival window (70 s; the trace: its 918 requests at the rate) plus a
tail, the drain timeout where the load is above the deployment's predicted maximum (it is
overloaded: turns queue until the drain cuts them off), else a conversation's own length at light
load. Reads only the plan.json files (nothing is simulated).

    python results/h200x4-vllm0.25.1-nixl/device_time.py results/h200x4-vllm0.25.1-nixl/prediction
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# Keep these equal to tools/gpu/h200x4/session.sh.
LOADS = {"W1": (30, 60, 90), "W2": (4, 8, 12), "W3": (6, 12, 18), "W4": (1.5, 3, 5), "mooncake": (2, 4, 8)}
WINDOW_S = 70.0
TRACE_REQUESTS = 918  # the slice 0:300
DRAIN_S = {"W1": 60.0, "W2": 60.0, "W3": 90.0, "W4": 60.0, "mooncake": 60.0}
# one conversation's length on idle engines
LIGHT_TAIL_S = {"W1": 6.0, "W2": 4.0, "W3": 25.0, "W4": 4.0, "mooncake": 30.0}
RUNS = 2
RUN_OVERHEAD_S = 2.0
POINT_OVERHEAD_S = 5.0
PROXY_START_S = 10.0  # per (topology, workload): warm-up handshakes, proxy start
SESSION_BUDGET_S = 1800.0
# machine start + 8 chunks, install + NIXL tests, 4 engines up, kv probe
SESSION_FIXED_S = 150.0 + 60.0 + 180.0 + 30.0
SESSION_MARGIN_S = 120.0
TOPOLOGIES = ("4r", "1p3d", "2p2d", "3p1d")


def predicted_max(prediction: Path) -> dict[tuple[str, str], float]:
    """(workload, deployment label) -> the plan's highest passing rate."""
    result = {}
    for workload in LOADS:
        plan = json.loads((prediction / workload / "plan.json").read_text())
        for item in plan["ranking"]:
            result[(workload, item["deployment"])] = item["max_qps"]
    return result


def run_seconds(workload: str, load: float, overloaded: bool) -> float:
    window_s = TRACE_REQUESTS / load if workload == "mooncake" else WINDOW_S
    tail_s = DRAIN_S[workload] if overloaded else LIGHT_TAIL_S[workload]
    return window_s + tail_s + RUN_OVERHEAD_S


def main(prediction: str) -> int:
    maxima = predicted_max(Path(prediction))
    room_s = SESSION_BUDGET_S - SESSION_FIXED_S - SESSION_MARGIN_S
    print("| topology | workload | device s (loads x modes x 2 runs) |")
    print("| --- | --- | --- |")
    total_s = 0.0
    for topology in TOPOLOGIES:
        modes = ("replication", "auto") if topology.endswith("r") else ("pd", "ppd", "auto")
        for workload, loads in LOADS.items():
            seconds = PROXY_START_S
            for load in loads:
                seconds += POINT_OVERHEAD_S
                for mode in modes:
                    overloaded = load > maxima[(workload, f"{topology} {mode}")]
                    seconds += RUNS * run_seconds(workload, load, overloaded)
            total_s += seconds
            print(f"| {topology} | {workload} | {seconds:.0f} |")
    print(
        f"\nbench time {total_s:.0f} s ({total_s / 3600:.2f} h); {room_s:.0f} s of points per 30-minute "
        f"session: at least {total_s / room_s:.1f} sessions"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
