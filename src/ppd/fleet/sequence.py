"""Several fleet runs one after another, as one `ppd bench` invocation runs its points.

`ppd bench` runs its points in order (workload, qps, run, then mode; bench/runner.run_points) on one
HTTP session, against one `ppd proxy` that stays up: each run starts with the kept-alive connections
the run before left, the client's to the proxy and the proxy's to each engine, idle for the pause
between the two runs longer (fleet.connections). `ppd fleet` with several points does the same;
`ppd plan` does not (each of its points stands for a deployment measured on its own, and its search
visits them in an order of its own).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext

from ppd.fleet.config import FleetConfig
from ppd.fleet.connections import BENCH_PAUSE_S, IdleConnections
from ppd.fleet.run import FleetRun, simulate


def simulate_in_order(
    configs: Sequence[FleetConfig],
    around: Callable[[], AbstractContextManager[object]] = nullcontext,
    pause_s: float = BENCH_PAUSE_S,
    idle: IdleConnections | None = None,
) -> list[FleetRun]:
    """Run the points in the order given, each starting with the idle connections the one before left,
    pause_s older (the first with `idle`, or its config's own); each simulate runs inside around()."""
    runs: list[FleetRun] = []
    for config in configs:
        if idle is not None:
            config = dataclasses.replace(config, idle_connections=idle)
        with around():
            runs.append(simulate(config))
        idle = runs[-1].idle_connections.aged(pause_s)
    return runs
