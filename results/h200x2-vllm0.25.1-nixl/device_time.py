"""The device time of issue 16's sweep, point by point, from the fleet's prediction of it, and how the
points fill 30-minute device sessions. Reads only the fleet result sets (nothing is simulated).

A run on the GPU lasts its arrival window (70 s) or, past saturation, until its last turn ends or
the drain cuts it off: the fleet's `elapsed_s` (first send -> last completion) predicts that. Each run
adds RUN_OVERHEAD_S (mode switch, the bench's bookkeeping) and each point POINT_OVERHEAD_S (the bench
starting, /metrics scrapes). A session spends SESSION_FIXED_S before its first point (machine start,
staging the bundle in 8 calls, install with the NIXL pair tests, `ppd up` of the pair) and keeps
SESSION_MARGIN_S for the last poll and packing; the rest of its 1,800 s holds points.

    cd results/h200x2-vllm0.25.1-nixl && python device_time.py fleet-prediction/fleet-h200x2-w*.json
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

RUN_OVERHEAD_S = 2.0
POINT_OVERHEAD_S = 5.0
SESSION_BUDGET_S = 1800.0
SESSION_FIXED_S = 150.0 + 60.0 + 160.0 + 30.0  # start + 8 chunks, install + NIXL tests, ppd up, kv probe
SESSION_MARGIN_S = 120.0


def point_seconds(paths: list[str]) -> dict[tuple[str, float], float]:
    """Predicted device seconds of every (workload, rate) point: its runs in every mode."""
    seconds: dict[tuple[str, float], float] = defaultdict(lambda: POINT_OVERHEAD_S)
    for path in paths:
        for run in json.loads(Path(path).read_text())["runs"]:
            key = (run["workload"], run["qps"])
            seconds[key] += max(run["duration_s"], run["elapsed_s"]) + RUN_OVERHEAD_S
    return dict(seconds)


def sessions(points: dict[tuple[str, float], float]) -> list[list[tuple[str, float]]]:
    """Points packed into as few sessions as first-fit decreasing finds (longest point first, into
    the first session with room); a point longer than a session's room gets one of its own."""
    room_s = SESSION_BUDGET_S - SESSION_FIXED_S - SESSION_MARGIN_S
    packed: list[list[tuple[str, float]]] = []
    used: list[float] = []
    for key in sorted(points, key=lambda k: (-points[k], k)):
        index = next((i for i, u in enumerate(used) if u + points[key] <= room_s), None)
        if index is None:
            packed.append([])
            used.append(0.0)
            index = len(packed) - 1
        packed[index].append(key)
        used[index] += points[key]
    return [sorted(keys) for keys in sorted(packed, key=sorted)]


def main(paths: list[str]) -> int:
    points = point_seconds(paths)
    total_s = sum(points.values())
    print("| workload | rate conv/s | device s (8 runs) |")
    print("| --- | --- | --- |")
    for (workload, rate), seconds in sorted(points.items()):
        print(f"| {workload} | {rate:g} | {seconds:.0f} |")
    print(f"\npoints: {len(points)}, bench time {total_s:.0f} s ({total_s / 3600:.2f} h)")
    plan = sessions(points)
    room_s = SESSION_BUDGET_S - SESSION_FIXED_S - SESSION_MARGIN_S
    print(
        f"sessions of {SESSION_BUDGET_S:.0f} s ({SESSION_FIXED_S:.0f} s before the first point, "
        f"{SESSION_MARGIN_S:.0f} s margin, so {room_s:.0f} s of points): {len(plan)}"
    )
    for index, keys in enumerate(plan, start=1):
        by_workload: dict[str, list[str]] = defaultdict(list)
        for workload, rate in keys:
            by_workload[workload].append(f"{rate:g}")
        env = " ".join(f"RATES_{w}={','.join(r)}" for w, r in by_workload.items())
        used_s = sum(points[key] for key in keys)
        over = "  OVER the room: run alone, or split its runs" if used_s > room_s else ""
        print(
            f'  session {index}: WORKLOADS="{" ".join(by_workload)}" {env} SESSION_TAG=-s{index}'
            f"{'' if index == 1 else ' SKIP_PROBES=1'}  ({used_s:.0f} s of points){over}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
