"""One line per workload from the plans here: the best deployment on replicas, the best pd / ppd
split, the best auto deployment, each with its bracket [highest pass, lowest fail) in conversations/s,
and the winner. Reads only the plan.json files (nothing is simulated).

    python results/plan-8gpu/summary.py results/plan-8gpu/W*/plan.json
"""

from __future__ import annotations

import json
import sys
from typing import Any


def best(
    ranking: list[dict[str, Any]], modes: tuple[str, ...], replicas: bool | None
) -> dict[str, Any] | None:
    """The highest-ranked deployment in one of `modes` (on replicas only, on P/D only, or either)."""
    for item in ranking:  # ranking is sorted best first
        on_replicas = item["num_replica"] > 0
        if item["mode"] in modes and (replicas is None or on_replicas == replicas):
            return item
    return None


def bracket(item: dict[str, Any] | None) -> str:
    if item is None:
        return "-"
    fail = item["fail_qps"]
    top = f"{fail:.3g}" if fail is not None else "cap"
    return f"{item['deployment']}: {item['max_qps']:.3g} (fails {top})"


def main(paths: list[str]) -> int:
    for path in paths:
        with open(path) as file:
            plan = json.load(file)
        inputs, ranking = plan["inputs"], plan["ranking"]
        replicas = best(ranking, ("replication", "auto"), True)
        split = best(ranking, ("pd", "ppd"), False)
        auto_split = best(ranking, ("auto",), False)
        slos = f"TTFT <= {inputs['slo_ttft_ms']:g} ms, TPOT <= {inputs['slo_tpot_ms']:g} ms"
        print(
            f"{inputs['workload']} ({slos}): winner {plan['winner']['deployment']}; "
            f"replicas {bracket(replicas)}; pd/ppd {bracket(split)}; auto on P/D {bracket(auto_split)}; "
            f"{plan['num_evaluations']} runs, {plan['wall_s']:.0f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
