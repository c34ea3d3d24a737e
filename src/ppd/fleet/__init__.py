"""ppd fleet: a discrete-event simulation of N `ppd sim` engine cores plus the proxy's router under a
`ppd bench` workload, on one virtual clock (docs/fleet.md).

Python API (what `ppd plan` calls; everything is picklable, so it runs across processes):

    from ppd.fleet import FleetConfig, EngineOptions, fleet_topology, simulate, slo_attainment
    from ppd.fleet import write_result_set
    from ppd.bench.workloads import builtin_workload
    from ppd.bench.metrics import Slo

    config = FleetConfig(
        topology=fleet_topology("2p2d"),           # any `ppd up` spec (1p1d, 3p5d, 8r, 1p1d2r) or TOML path
        mode="pd",                                 # pd | ppd | replication | auto
        workload=builtin_workload("W1", 2),        # or ppd.bench.workloads.parse_workloads("512/256", 2)[0]
        qps=4.0,                                   # conversations/s (Poisson unless poisson=False)
        duration_s=60.0,                           # arrival window; drain_timeout_s=120 after it
        slo=Slo(ttft_ms=500, tpot_ms=50),          # for attainment and goodput
        engine=EngineOptions(profile="h100-llama3.1-8b"),  # ppd sim options shared by every engine
    )                                              # + run, seed, think_time_s, warmup_s, api, hops, ...
    run = simulate(config)                         # FleetRun: .rows (bench TurnRows), .summaries,
                                                   #   .run_info, .num_events, .wall_s, .engine_stats,
                                                   #   .proxy (the proxy loop's modelled CPU share)
    path = write_result_set([run], Path("results"), "my-fleet")  # `ppd bench` JSON + JSONL
    attained = slo_attainment(config)              # float | None: good / sent turns, rows not kept

    simulate(config, on_row=callback)              # stream rows instead of keeping them
    runs = simulate_in_order(configs)              # points in a row, as one `ppd bench` runs them:
                                                   #   each starts with the connections the last left

`FleetConfig(topology: Topology, mode: str, workload: WorkloadSpec, qps: float, duration_s=60.0,
run=0, think_time_s=0.0, seed=0, warmup_s=0.0, slo=Slo(), drain_timeout_s=120.0, api="completions",
poisson=True, prompt_salt="fleet", engine=EngineOptions(), hops=measured_hops(),
proxy_cpu=measured_proxy_cpu(), proxy_processes=1, pd_decode_affinity=True, warm_kv_links=True,
route_slo_ttft_ms=None, route_slo_tpot_ms=None,
record_itl=False, decode_runs=True, send_session_id=True)`.
Bad values raise ppd.errors.UsageError with the field and what is allowed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ppd.fleet.config import EngineOptions, FleetConfig, HopCosts, fleet_topology, measured_hops
    from ppd.fleet.proxy_loop import ProxyCpu, measured_proxy_cpu
    from ppd.fleet.run import (
        FleetRun,
        Offered,
        offered_conversations,
        simulate,
        slo_attainment,
        write_result_set,
    )
    from ppd.fleet.sequence import simulate_in_order

# The API's names, imported on first use (PEP 562): `ppd fleet` and `ppd plan` import ppd.fleet.cli,
# a submodule, which imports this package first; importing the simulation with it (numpy, aiohttp,
# the bench, the router) took ~1 s before the CLI had parsed its flags.
_MODULE_OF = {
    "EngineOptions": "config",
    "FleetConfig": "config",
    "HopCosts": "config",
    "fleet_topology": "config",
    "measured_hops": "config",
    "ProxyCpu": "proxy_loop",
    "measured_proxy_cpu": "proxy_loop",
    "FleetRun": "run",
    "Offered": "run",
    "offered_conversations": "run",
    "simulate": "run",
    "slo_attainment": "run",
    "write_result_set": "run",
    "simulate_in_order": "sequence",
}

__all__ = [
    "EngineOptions",
    "FleetConfig",
    "FleetRun",
    "HopCosts",
    "Offered",
    "ProxyCpu",
    "fleet_topology",
    "measured_hops",
    "measured_proxy_cpu",
    "offered_conversations",
    "simulate",
    "simulate_in_order",
    "slo_attainment",
    "write_result_set",
]


def __getattr__(name: str) -> object:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups find it without this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_MODULE_OF])
