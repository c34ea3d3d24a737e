"""The prediction as one table: per deployment and workload, its rank and its highest passing rate
with the lowest failing rate above it (the true maximum lies between). With --loads, a second table:
what the prediction says of each load the device runs (pass: at or below the highest passing rate;
fail: at or above the lowest failing rate; `?` between the two). Reads only the plan.json files.

    cd results/h200x4-vllm0.25.1-nixl/prediction && python summary.py {W1,W2,W3,W4,mooncake}/plan.json \
        --loads W1=12,28,52 W2=3,5.5,10 W3=6,12,24 W4=1.2,2.8,5 mooncake120=3
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def cell(item: dict[str, Any]) -> str:
    """`#rank max [fails F]`: the bracket of one deployment's highest passing rate."""
    fail = item["fail_qps"]
    top = f"{fail:.3g}" if fail is not None else "cap"
    if item["max_qps"] <= 0.0:
        return f"#{item['rank']} none (fails {top})"
    return f"#{item['rank']} {item['max_qps']:.3g} [{top})"


def order(label: str) -> tuple[bool, str, int]:
    """4r first, then the splits by prefill count; within one, replication, pd, ppd, auto."""
    topology, mode = label.split()
    return (topology != "4r", topology, ("replication", "pd", "ppd", "auto").index(mode))


def verdict(item: dict[str, Any], load: float) -> str:
    """pass / fail / ? for one load, from the bracket [max_qps, fail_qps)."""
    if item["max_qps"] > 0.0 and load <= item["max_qps"]:
        return "pass"
    if item["fail_qps"] is not None and load >= item["fail_qps"]:
        return "fail"
    return "?"


def print_loads(plans: list[tuple[str, dict[str, Any]]], deployments: list[str], specs: list[str]) -> None:
    """The device's loads against the prediction, one column per (workload, load)."""
    by_name = dict(plans)
    columns = []
    for spec in specs:
        name, _, loads = spec.partition("=")
        columns += [(name, float(load)) for load in loads.split(",")]
    print("| deployment | " + " | ".join(f"{name} {load:g}" for name, load in columns) + " |")
    print("|" + " --- |" * (len(columns) + 1))
    for label in deployments:
        cells = []
        for name, load in columns:
            item = next(entry for entry in by_name[name]["ranking"] if entry["deployment"] == label)
            cells.append(verdict(item, load))
        print(f"| {label} | " + " | ".join(cells) + " |")
    print()


def main(argv: list[str]) -> int:
    specs = argv[argv.index("--loads") + 1 :] if "--loads" in argv else []
    paths = argv[: argv.index("--loads")] if "--loads" in argv else argv
    plans = [(Path(path).parent.name, json.loads(Path(path).read_text())) for path in paths]
    deployments = [item["deployment"] for item in plans[0][1]["ranking"]]
    deployments.sort(key=order)
    header = ["deployment"]
    for name, plan in plans:
        inputs = plan["inputs"]
        unit = "req/s" if inputs.get("rates") == "trace requests/s" else "conv/s"
        header.append(f"{name} ({unit}; TTFT {inputs['slo_ttft_ms']:g} / TPOT {inputs['slo_tpot_ms']:g} ms)")
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for label in deployments:
        cells = [label]
        for _, plan in plans:
            item = next(entry for entry in plan["ranking"] if entry["deployment"] == label)
            cells.append(cell(item))
        print("| " + " | ".join(cells) + " |")
    print()
    if specs:
        print_loads(plans, deployments, specs)
    for name, plan in plans:
        tool = plan["tool"]
        print(
            f"{name}: winner {plan['winner']['deployment']}; {plan['num_evaluations']} fleet runs, "
            f"{plan['wall_s']:.0f} s; ppd {tool['version']} at {tool['git_commit']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
