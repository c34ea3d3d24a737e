"""Does the fleet's model of the bench's kept-alive connections (ppd/fleet/connections.py) open as many
connections as `ppd bench` did over HTTP? Reads a fleet_vs_sim folder (`http-<topology>-<W>.json`
beside `fleet-<topology>-<W>.json`, as `fleet_vs_sim.py --out DIR` leaves it) and compares each run's
`connections_opened` (the bench's aiohttp connection-create hook; the fleet's modelled pool). Sets
written before the count was recorded have none and are skipped. Ends with

    fleet_connections runs=N same=K fleet_more=A fleet_fewer=B http_opened=H fleet_opened=F

    python benchmarks/fleet_connections.py DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def runs_by_point(path: Path) -> dict[tuple[str, float, int], dict[str, Any]]:
    runs: list[dict[str, Any]] = json.loads(path.read_text())["runs"]
    return {(run["mode"], run["qps"], run["run"]): run for run in runs}


def main(folder: Path) -> None:
    pairs = sorted(folder.glob("http-*.json"))
    if not pairs:
        sys.exit(f"fleet_connections: no http-*.json in {folder}")
    counts: list[tuple[int, int]] = []
    print(f"{'set':<10} {'mode':<12} {'qps':>5} {'run':>3} {'conv':>5} {'http':>5} {'fleet':>5}")
    for http_path in pairs:
        fleet_path = http_path.with_name("fleet-" + http_path.name.removeprefix("http-"))
        if not fleet_path.exists():
            sys.exit(f"fleet_connections: {fleet_path} is missing (run fleet_vs_sim.py --fleet-only first)")
        fleet_runs = runs_by_point(fleet_path)
        for point, run in runs_by_point(http_path).items():
            http_opened = run.get("connections_opened")
            fleet_opened = fleet_runs.get(point, {}).get("connections_opened")
            if http_opened is None or fleet_opened is None:
                continue
            counts.append((http_opened, fleet_opened))
            mode, qps, index = point
            name = http_path.stem.removeprefix("http-")
            print(
                f"{name:<10} {mode:<12} {qps:>5g} {index:>3} {run['num_conversations']:>5} "
                f"{http_opened:>5} {fleet_opened:>5}"
            )
    same = sum(1 for http, fleet in counts if http == fleet)
    more = sum(1 for http, fleet in counts if fleet > http)
    print(
        f"fleet_connections runs={len(counts)} same={same} fleet_more={more} "
        f"fleet_fewer={len(counts) - same - more} http_opened={sum(h for h, _ in counts)} "
        f"fleet_opened={sum(f for _, f in counts)}"
    )


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
