"""Decode runs are an exact shortcut: the same rows and engine figures as stepping one batch at a time,
across modes, special tokens and KV-cache pressure (preemptions)."""

import pytest

from ppd.bench.workloads import builtin_workload
from ppd.fleet import EngineOptions, FleetConfig, fleet_topology, simulate


@pytest.mark.parametrize(
    ("mode", "topology", "workload", "qps", "special_token_rate"),
    [
        ("pd", "2p2d", "W1", 8.0, 0.0),
        ("ppd", "1p1d", "W3", 4.0, 0.002),
        ("auto", "2p2d", "W2", 2.0, 0.0),
        ("replication", "2r", "W1", 12.0, 0.002),
    ],
)
def test_decode_runs_change_nothing(
    mode: str, topology: str, workload: str, qps: float, special_token_rate: float
) -> None:
    engine = EngineOptions(special_token_rate=special_token_rate, kv_cache_tokens=60_000)
    runs = [
        simulate(
            FleetConfig(
                fleet_topology(topology),
                mode,
                builtin_workload(workload, 2),
                qps=qps,
                duration_s=12.0,
                engine=engine,
                decode_runs=decode_runs,
                record_itl=True,
            )
        )
        for decode_runs in (False, True)
    ]
    stepped, batched = runs
    assert [vars(row) for row in batched.rows] == [vars(row) for row in stepped.rows]
    assert batched.engine_stats == stepped.engine_stats
    assert batched.num_events < stepped.num_events  # the shortcut was taken


def test_kv_pressure_case_preempts() -> None:
    """The W3 case above runs out of blocks, so preemption is covered by the comparison."""
    config = FleetConfig(
        fleet_topology("1p1d"), "ppd", builtin_workload("W3", 2), qps=4.0, duration_s=12.0,
        engine=EngineOptions(kv_cache_tokens=60_000),
    )  # fmt: skip
    assert sum(engine["num_preemptions"] for engine in simulate(config).engine_stats) > 0
