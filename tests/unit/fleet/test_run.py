"""ppd.fleet end to end on small points: routes per mode, determinism, the engine model's own times,
the result set `ppd report` reads, and cheap SLO attainment."""

import gc
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ppd.bench.arrivals import ConversationPlan
from ppd.bench.config import TurnShape
from ppd.bench.metrics import Slo
from ppd.bench.workloads import builtin_workload
from ppd.buildinfo import build_info
from ppd.errors import UsageError
from ppd.fleet import FleetConfig, HopCosts, fleet_topology, simulate, slo_attainment, write_result_set
from ppd.fleet.client import BenchClient
from ppd.fleet.clock import EventQueue
from ppd.fleet.fleet import Fleet
from ppd.fleet.proxy_loop import ProxyCpu
from ppd.results import load_result
from ppd.sim.config import sim_config
from ppd.sim.offline import OfflineEngine
from ppd.sim.request import Request
from ppd.sim.timing import api_overhead_s, load_profile


def config(mode: str, topology: str = "1p1d", **overrides: object) -> FleetConfig:
    values: dict[str, object] = {
        "workload": builtin_workload("W1", 2),
        "qps": 1.0,
        "duration_s": 10.0,
        "hops": HopCosts(),
    }
    values.update(overrides)
    return FleetConfig(fleet_topology(topology), mode, **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("mode", "turn2_routes"),
    [("pd", {"pd"}), ("ppd", {"ppd-direct"}), ("replication", {"replica"})],
)
def test_each_mode_routes_as_the_proxy_does(mode: str, turn2_routes: set[str]) -> None:
    run = simulate(config(mode))
    assert run.rows and all(row.ok for row in run.rows)
    assert len(run.rows) == 2 * run.run_info.num_conversations
    assert {row.route for row in run.rows if row.turn == 2} == turn2_routes
    turn2 = [row for row in run.rows if row.turn == 2]
    if mode == "pd":
        assert all(row.cached_tokens == row.prompt_tokens for row in turn2)  # pulled from P
        assert all(row.prefill_cached_tokens == 512 for row in turn2)  # P's own hit: turn 1's prompt
    else:
        # the history minus the last answer token, whose KV is never computed, in whole blocks
        assert all(row.cached_tokens == 752 for row in turn2)


def test_the_same_config_gives_the_same_rows() -> None:
    thresholds = gc.get_threshold()
    first, second = simulate(config("auto", "2p2d")), simulate(config("auto", "2p2d"))
    assert [vars(row) for row in first.rows] == [vars(row) for row in second.rows]
    assert gc.get_threshold() == thresholds  # simulate collects less often only while it runs


def test_an_isolated_turn_takes_the_engine_models_own_time() -> None:
    """With no hops, a lone replica turn's TTFT is API time + the prefill step of OfflineEngine."""
    lone = config(
        "replication", "1r", qps=0.05, duration_s=40.0, poisson=False, workload=builtin_workload("W1", 1)
    )
    run = simulate(lone)  # one conversation, at 20 s
    profile = load_profile("h100-llama3.1-8b")
    engine = OfflineEngine(sim_config(profile))
    row = run.rows[0]
    request = engine.new_request(list(range(1, 513)), 256)
    times = engine.run([(api_overhead_s(profile, 512), request)])[request.request_id]
    assert row.ttft_ms == pytest.approx(times[0] * 1e3, abs=1e-3)
    assert row.e2e_ms == pytest.approx(times[-1] * 1e3, abs=1e-3)


def test_hop_costs_add_to_ttft() -> None:
    hops = HopCosts(1.0, 2.0, 3.0, 4.0, 0.0)
    bare = simulate(config("replication", qps=0.05, duration_s=40.0, poisson=False)).rows[0]
    hopped = simulate(config("replication", qps=0.05, duration_s=40.0, poisson=False, hops=hops)).rows[0]
    assert hopped.ttft_ms is not None and bare.ttft_ms is not None
    assert hopped.ttft_ms - bare.ttft_ms == pytest.approx(10.0, abs=1e-3)


def test_result_set_is_a_bench_result_set(tmp_path: Path) -> None:
    runs = [simulate(config(mode, slo=Slo(200.0, 20.0))) for mode in ("pd", "replication")]
    path = write_result_set(runs, tmp_path, "fleet-test")
    meta, rows = load_result(path)
    assert meta["backend"] == "fleet" and meta["profile"]["name"]
    assert meta["build"] == build_info() and meta["build"]["variant"] in ("pure", "mypyc")
    assert len(rows) == sum(len(run.rows) for run in runs)
    assert {summary["mode"] for summary in meta["summaries"]} == {"pd", "replication"}
    assert json.loads(path.read_text())["config"]["modes"] == ["pd", "replication"]


def test_slo_attainment_matches_the_summary() -> None:
    point = config("ppd", "2p2d", qps=2.0, slo=Slo(60.0, 7.0))
    summary = next(s for s in simulate(point).summaries if s["turn_group"] == "all")
    assert slo_attainment(point) == pytest.approx(summary["slo_attainment"])
    assert 0.0 < summary["slo_attainment"] < 1.0  # the SLO separates turns: the test means something


def test_a_mode_the_topology_cannot_serve_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="prefill and decode"):
        simulate(config("pd", "2r"))


def test_an_int_qps_sends_the_prompts_of_the_same_float() -> None:
    # A prompt's seed reads repr(qps) (bench.arrivals.derive_seed): qps=4 from Python sent other
    # words than the CLI's 4.0, and than the compiled build, which stores a float field as a float.
    plan = ConversationPlan(0, 0.0, (TurnShape(8, 4),))
    prompts = []
    for qps in (4, 4.0):
        point = config("replication", "1r", qps=qps)
        assert repr(point.qps) == "4.0"
        clock = EventQueue()
        client = BenchClient(point, Fleet(point, clock), clock, lambda row: None)
        client._arrive(plan)  # sends turn 1 on a clock that never runs
        [(_, job, _)] = client._in_flight.values()
        prompts.append(job.prompt_token_ids.tolist())
    assert prompts[0] == prompts[1]


def test_an_engine_reads_the_bodies_reaching_it_one_at_a_time() -> None:
    """`ppd sim` reads a request's body on its one event loop: a body that reaches it while another
    is read waits for that one (HopCosts.engine_us_per_prompt_token: 10 ms per 1,000 words here)."""
    hops = HopCosts(proxy_to_engine_ms=1.0, engine_us_per_prompt_token=10.0)
    point = config("replication", "1r", hops=hops, proxy_cpu=ProxyCpu())
    clock = EventQueue()
    fleet = Fleet(point, clock)
    [engine] = fleet.engines.values()
    arrivals_s: list[float] = []  # each request's arrival at the engine, as the engine stamps it
    after_api = engine.after_api

    def arrives(request: Request, callback: Callable[[Request], None]) -> None:
        arrivals_s.append(request.arrival_s)
        after_api(request, callback)

    engine.after_api = arrives  # type: ignore[method-assign]
    plans = [
        ConversationPlan(index, start_s, (TurnShape(1000, 4),)) for index, start_s in enumerate((0, 0, 1))
    ]
    BenchClient(point, fleet, clock, lambda row: None).start(plans)
    clock.run_until(0.5)
    assert arrivals_s == pytest.approx([0.011, 0.021])  # the second read after the first
    clock.run_until(2.0)
    assert arrivals_s[2:] == pytest.approx([1.011])  # alone: the hop and its own read
