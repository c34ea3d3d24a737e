"""The device time of issue 17's runs (tools/gpu/h200x4/session.sh), from the prediction, and
sessions that hold them (each session's points either of one topology or of one workload and load,
so that its TOPOLOGIES, WORKLOADS and LOADS_<W> name exactly its points).

A run lasts its arrival window (70 s; the trace: its 339 requests at the rate) plus a tail: the drain
timeout where the load is above the deployment's predicted maximum (it is overloaded: turns queue
until the drain cuts them off), else a conversation's own length at light load. Reads only the
plan.json files (nothing is simulated).

    python results/h200x4-vllm0.25.1-nixl/device_time.py results/h200x4-vllm0.25.1-nixl/prediction
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# Keep these equal to tools/gpu/h200x4/session.sh.
LOADS = {"W1": (24, 40, 52), "W2": (4.5, 8, 10.5), "W3": (10, 16, 24), "W4": (2, 3.5, 5), "mooncake": (2.5,)}
WINDOW_S = 70.0
TRACE_REQUESTS = 339  # the slice 0:120
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
PLAN_DIR = {"mooncake": "mooncake120"}  # the device replays the slice 0:120


def predicted_max(prediction: Path) -> dict[tuple[str, str], float]:
    """(workload, deployment label) -> the plan's highest passing rate."""
    result = {}
    for workload in LOADS:
        plan = json.loads((prediction / PLAN_DIR.get(workload, workload) / "plan.json").read_text())
        for item in plan["ranking"]:
            result[(workload, item["deployment"])] = item["max_qps"]
    return result


def run_seconds(workload: str, load: float, overloaded: bool) -> float:
    window_s = TRACE_REQUESTS / load if workload == "mooncake" else WINDOW_S
    tail_s = DRAIN_S[workload] if overloaded else LIGHT_TAIL_S[workload]
    return window_s + tail_s + RUN_OVERHEAD_S


def point_seconds(maxima: dict[tuple[str, str], float]) -> dict[tuple[str, str, float], float]:
    """(topology, workload, load) -> device seconds: every mode of the topology, RUNS runs each, and
    the proxy's start for the workload (charged to each load, since a session may hold one load)."""
    seconds = {}
    for topology in TOPOLOGIES:
        modes = ("replication", "auto") if topology.endswith("r") else ("pd", "ppd", "auto")
        for workload, loads in LOADS.items():
            for load in loads:
                total_s = PROXY_START_S + POINT_OVERHEAD_S
                for mode in modes:
                    overloaded = load > maxima[(workload, f"{topology} {mode}")]
                    total_s += RUNS * run_seconds(workload, load, overloaded)
                seconds[(topology, workload, load)] = total_s
    return seconds


Key = tuple[str, str, float]


def runnable_together(keys: list[Key], key: Key) -> bool:
    """Whether one session's TOPOLOGIES, WORKLOADS and LOADS_<W> can name exactly these points: all
    of one topology (any workloads and loads), or all of one workload and load (any topologies)."""
    group = [*keys, key]
    return len({k[0] for k in group}) == 1 or len({(k[1], k[2]) for k in group}) == 1


def sessions(points: dict[Key, float], room_s: float) -> list[list[Key]]:
    """First-fit decreasing into sessions of `room_s`, each a set of points one session can name."""
    packed: list[list[Key]] = []
    used: list[float] = []
    for key in sorted(points, key=lambda k: (-points[k], TOPOLOGIES.index(k[0]), k[1])):
        fits = (
            i for i, u in enumerate(used) if u + points[key] <= room_s and runnable_together(packed[i], key)
        )
        index = next(fits, None)
        if index is None:
            packed.append([])
            used.append(0.0)
            index = len(packed) - 1
        packed[index].append(key)
        used[index] += points[key]
    return packed


def main(prediction: str) -> int:
    points = point_seconds(predicted_max(Path(prediction)))
    room_s = SESSION_BUDGET_S - SESSION_FIXED_S - SESSION_MARGIN_S
    print("| topology | workload | load | device s (modes x 2 runs) |")
    print("| --- | --- | --- | --- |")
    for (topology, workload, load), seconds in points.items():
        print(f"| {topology} | {workload} | {load:g} | {seconds:.0f} |")
    total_s = sum(points.values())
    plan = sessions(points, room_s)
    print(
        f"\nbench time {total_s:.0f} s ({total_s / 3600:.2f} h); {room_s:.0f} s of points per 30-minute "
        f"session; {len(plan)} sessions:"
    )
    for index, keys in enumerate(plan, start=1):
        loads: dict[str, set[float]] = {}
        for _, workload, load in keys:
            loads.setdefault(workload, set()).add(load)
        env = " ".join(f"LOADS_{w}={','.join(f'{x:g}' for x in sorted(v))}" for w, v in loads.items())
        topologies = " ".join(dict.fromkeys(key[0] for key in keys))
        used_s = sum(points[key] for key in keys)
        extra = "" if index == 1 else " SKIP_PROBES=1"
        print(
            f'  {index:2}: TOPOLOGIES="{topologies}" WORKLOADS="{" ".join(loads)}" {env} '
            f"SESSION_TAG=-s{index}{extra}  ({used_s:.0f} s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
