"""Run one fleet point to the end of its drain, and turn runs into a `ppd bench` result set."""

from __future__ import annotations

import gc
import resource
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ppd.bench.arrivals import ConversationPlan, plan_conversations, plan_trace, trace_duration_s
from ppd.bench.config import BenchConfig
from ppd.bench.metrics import conversation_rates, meets_slo, summarize
from ppd.bench.resultset import ResultSet
from ppd.bench.server_info import ServerInfo
from ppd.buildinfo import build_info
from ppd.fleet.client import BenchClient
from ppd.fleet.clock import EventQueue
from ppd.fleet.config import FleetConfig, topology_to_dict, validate
from ppd.fleet.connections import IdleConnections
from ppd.fleet.fleet import Fleet
from ppd.fleet.trace_client import TraceClient
from ppd.results import RunInfo, TurnRow
from ppd.sim.timing import load_profile

FLEET_VERSION_PREFIX = "ppd-fleet"


@dataclass
class FleetRun:
    """One simulated point: its rows (when kept), run info, summaries, and what it cost to simulate."""

    config: FleetConfig
    run_info: RunInfo
    rows: list[TurnRow]
    summaries: list[dict[str, Any]]
    num_events: int
    wall_s: float
    engine_stats: list[dict[str, Any]] = field(default_factory=list)
    history: dict[str, Any] = field(default_factory=dict)  # the router's history checks (holding.py)
    proxy: dict[str, Any] = field(default_factory=dict)  # the proxy processes' modelled CPU use
    idle_connections: IdleConnections = field(default_factory=IdleConnections)  # at the run's end


@dataclass
class AttainmentCounter:
    """SLO attainment counted as rows come, without keeping them (bench.metrics.summarize_group's
    definition: good turns over sent turns, warm-up excluded)."""

    config: FleetConfig
    num_sent: int = 0
    num_good: int = 0

    def __call__(self, row: TurnRow) -> None:
        if row.in_warmup or not row.sent:
            return
        self.num_sent += 1
        self.num_good += meets_slo(row, self.config.slo)

    @property
    def attainment(self) -> float | None:
        return self.num_good / self.num_sent if self.num_sent else None


@dataclass(frozen=True)
class Offered:
    """What a run offers: its conversations (a trace's: its requests), in an arrival window."""

    plans: list[ConversationPlan]
    duration_s: float  # the arrival window (simulated s)


def offered_conversations(config: FleetConfig) -> Offered:
    """The conversations `config` offers: a trace slice's (its qps is the request rate; duration_s is
    ignored), or the synthetic workload's, Poisson or evenly spaced (config.poisson)."""
    trace = config.workload.trace
    if trace is None:
        plans = plan_conversations(
            config.workload, config.qps, config.duration_s, config.seed, config.run, config.poisson
        )
        return Offered(plans, config.duration_s)
    return Offered(plan_trace(trace, config.qps), trace_duration_s(trace, config.qps))


def simulate(
    config: FleetConfig, on_row: Callable[[TurnRow], None] | None = None, offered: Offered | None = None
) -> FleetRun:
    """Run one point; rows go to on_row when given (and are not kept), else into FleetRun.rows.
    offered: offered_conversations(config), when the caller made it already."""
    validate(config)
    started_wall_s = time.perf_counter()
    started_utc = datetime.now(UTC).isoformat(timespec="seconds")
    clock = EventQueue()
    fleet = Fleet(config, clock)
    rows: list[TurnRow] = []
    client = _client(config, fleet, clock, on_row or rows.append)
    offered = offered or offered_conversations(config)
    plans, duration_s = offered.plans, offered.duration_s
    client.start(plans)
    end_s = duration_s + config.drain_timeout_s
    with _fewer_collections():
        clock.run_until(end_s)
    if client.num_active:
        clock.now_s = end_s
        client.cut_off(f"cut off by the drain timeout ({config.drain_timeout_s:g} s)")
    offered_rate, achieved_rate = conversation_rates(len(plans), client.start_times_s, duration_s)
    run_info = RunInfo(
        config.mode,
        config.workload.name,
        config.qps,
        config.run,
        started_utc,
        duration_s,
        clock.now_s,  # virtual: arrival window + drain
        len(plans),
        offered_rate,
        achieved_rate,
        config.seed,
        fleet.client_pool.num_opened,  # the bench's pool to the proxy
    )
    summaries = summarize(rows, run_info, config.slo) if on_row is None else []
    engine_stats = [_engine_stats(engine.name, engine) for engine in fleet.engines.values()]
    wall_s = time.perf_counter() - started_wall_s
    history = fleet.router.holding.status()
    proxy = _proxy_stats(fleet, clock.now_s)
    idle = fleet.idle_connections()
    return FleetRun(
        config, run_info, rows, summaries, clock.num_events, wall_s, engine_stats, history, proxy, idle
    )


def _proxy_stats(fleet: Fleet, elapsed_s: float) -> dict[str, Any]:
    """Each proxy process's modelled CPU time and its share of the run (1.0: a whole core, saturated),
    and the connections to engines its pools opened (as `ppd proxy`'s decision log counts them)."""
    connections_opened = sum(pool.num_opened for pool in fleet.engine_pools.values())
    if fleet.proxies is None:
        return {"modelled": False, "connections_opened": connections_opened}
    busy_s = fleet.proxies.busy_s()
    return {
        "modelled": True,
        "connections_opened": connections_opened,
        "processes": len(busy_s),
        "busy_s": [round(value, 3) for value in busy_s],
        "busy_share": [round(value / elapsed_s, 4) if elapsed_s > 0 else 0.0 for value in busy_s],
    }


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Run the cyclic garbage collector's youngest generation every 50,000 allocations instead of
    700, as `ppd sim` does (sim/cli.py): a fleet allocates millions of short-lived tuples and lists
    (block hashes, token lists, events), nearly all freed by their reference counts, and at 700 the
    collector kept walking the live ones (3% of a run's time). Rows do not depend on it."""
    thresholds = gc.get_threshold()
    gc.set_threshold(50_000, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


def _client(
    config: FleetConfig, fleet: Fleet, clock: EventQueue, on_row: Callable[[TurnRow], None]
) -> BenchClient:
    """The client that sends the offered conversations: a trace slice's, or the synthetic workload's."""
    if config.workload.trace is None:
        return BenchClient(config, fleet, clock, on_row)
    max_model_len = config.engine.sim_config("trace").max_model_len
    return TraceClient(config, fleet, clock, on_row, max_model_len)


def slo_attainment(config: FleetConfig) -> float | None:
    """The share of sent, non-warm-up turns that met config.slo (None: nothing sent); rows are
    counted as they come and not kept, so memory stays flat however long the point."""
    counter = AttainmentCounter(config)
    simulate(config, on_row=counter)
    return counter.attainment


def _engine_stats(name: str, engine: Any) -> dict[str, Any]:
    core = engine.core
    stats = core.stats
    return {
        "name": name,
        "url": engine.url,
        "num_steps": stats.num_steps,
        "busy_s": round(stats.busy_s, 6),
        "num_generation_tokens": stats.num_generation_tokens,
        "num_finished_requests": stats.num_finished_requests,
        "num_preemptions": core.scheduler.num_preemptions,
        "num_kv_pull_stalls": stats.num_stalls,
        "kv_pull_stall_s": round(stats.stall_s, 6),
        "num_kv_pulls": engine.pulls.num_pulls,
        "num_kv_blocks_pulled": engine.pulls.num_blocks_pulled,
        "prefix_cache_hit_rate": (
            core.kv_cache.num_hit_tokens / core.kv_cache.num_queried_tokens
            if core.kv_cache.num_queried_tokens
            else None
        ),
    }


def write_result_set(runs: Sequence[FleetRun], output_dir: Path, name: str | None = None) -> Path:
    """Write runs as one `ppd bench` result set (<name>.json + <name>.jsonl); returns the JSON path.

    The JSON is the bench's (ppd.results), with `backend: "fleet"`, the engine profile and each
    run's fleet config added, so `ppd report` reads it unchanged."""
    if not runs:
        raise ValueError("write_result_set needs at least one run")
    first = runs[0].config
    bench_config = _bench_config(runs, output_dir, name)
    server = ServerInfo(
        model="llama",
        mode=first.mode,
        engines=[
            {
                "url": i.url,
                "role": i.role,
                "version": f"{FLEET_VERSION_PREFIX}-{first.engine.profile}",
                "model": "llama",
            }
            for i in first.topology.instances
        ],
        topology={"mode": first.mode, **topology_to_dict(first.topology)},
    )
    with ResultSet.open(bench_config, server) as results:
        profile = load_profile(first.engine.profile)
        results.meta["backend"] = "fleet"
        results.meta["build"] = build_info()  # pure Python, or the opt-in mypyc build
        results.meta["profile"] = {"name": profile.name, "source": profile.source}
        results.meta["fleet"] = [
            {
                **run.config.to_dict(),
                "num_events": run.num_events,
                "wall_s": round(run.wall_s, 3),
                "engines": run.engine_stats,
                "history": run.history,
                "proxy": run.proxy,
            }
            for run in runs
        ]
        for run in runs:
            for row in run.rows:
                results.write_row(row)
            results.add_run(run.run_info, run.summaries or summarize(run.rows, run.run_info, run.config.slo))
    return results.json_path


def _bench_config(runs: Sequence[FleetRun], output_dir: Path, name: str | None) -> BenchConfig:
    """The BenchConfig an equivalent `ppd bench` invocation would have had (recorded in the JSON)."""
    first = runs[0].config
    workloads = tuple(dict.fromkeys(run.config.workload for run in runs))
    return BenchConfig(
        url=f"fleet:{first.topology.source}",
        workloads=workloads,
        qps=tuple(dict.fromkeys(run.config.qps for run in runs)),
        duration_s=first.duration_s,
        runs=len({run.config.run for run in runs}),
        modes=tuple(dict.fromkeys(run.config.mode for run in runs)),
        think_time_s=first.think_time_s,
        seed=first.seed,
        warmup_s=first.warmup_s,
        slo=first.slo,
        output_dir=output_dir,
        name=name,
        api=first.api,
        model="llama",
        drain_timeout_s=first.drain_timeout_s,
        prompt_salt=first.prompt_salt,
        poisson=first.poisson,
        quiet=True,
    )


def peak_rss_mib() -> float:
    """This process's peak resident memory, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
