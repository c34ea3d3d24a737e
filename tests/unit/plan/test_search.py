"""The planner's enumeration, rate search, ranking and runner, on stand-in evaluators (fast)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from ppd.plan.deployments import Deployment, enumerate_deployments, restrict_to_topologies, up_command
from ppd.plan.ranking import Planned, disaggregation_verdict, rank, tied_with_best
from ppd.plan.runner import Event, run_plan
from ppd.plan.search import Point, SearchConfig, SearchResult, refine, search_max_rate


def step_point(qps: float, capacity_qps: float) -> Point:
    """Every turn meets the SLO below capacity; above it, attainment falls off with the overload."""
    attainment = 1.0 if qps <= capacity_qps else max(0.0, 1.0 - 2.0 * (qps / capacity_qps - 1.0))
    return Point(qps, attainment, attainment * qps * 2.0, int(qps * 60))


def test_enumeration_covers_replication_and_every_split_in_each_mode() -> None:
    deployments = enumerate_deployments(4)
    labels = [d.label for d in deployments]
    assert labels[:2] == ["4r replication", "4r auto"]
    assert {"1p3d pd", "2p2d ppd", "3p1d auto"} <= set(labels)
    assert len(deployments) == 2 + 3 * 3 and len(set(deployments)) == len(deployments)
    assert all(d.num_gpus == 4 for d in deployments)
    assert len(enumerate_deployments(8)) == 23
    assert [d.label for d in enumerate_deployments(1)] == ["1r replication", "1r auto"]  # no split of 1
    assert [d.label for d in enumerate_deployments(2, ("pd",))] == ["1p1d pd"]
    with pytest.raises(ValueError, match="--gpus"):
        enumerate_deployments(0)


def test_a_restriction_keeps_the_named_topologies_in_every_mode_and_rejects_unknown_ones() -> None:
    every = enumerate_deployments(4)
    kept = restrict_to_topologies(every, ("2P2D", " 4r", ""))
    assert [d.label for d in kept] == ["4r replication", "4r auto", "2p2d pd", "2p2d ppd", "2p2d auto"]
    assert restrict_to_topologies(every, ("4r", "1p3d", "2p2d", "3p1d")) == every
    with pytest.raises(ValueError, match="5p3d is not among the deployments planned"):
        restrict_to_topologies(every, ("1p3d", "5p3d"))
    with pytest.raises(ValueError, match="at least one topology"):
        restrict_to_topologies(every, ("", " "))


def test_up_command_is_the_exact_launch_line() -> None:
    assert up_command(Deployment(3, 5, 0, "pd")) == (
        "ppd up --backend vllm --model MODEL --topology 3p5d --mode pd"
    )
    auto = up_command(Deployment(0, 0, 8, "auto"), slo_ttft_ms=500, slo_tpot_ms=50.5)
    assert auto.endswith(
        "--topology 8r --mode auto --proxy-arg=--slo-ttft-ms=500 --proxy-arg=--slo-tpot-ms=50.5"
    )


@pytest.mark.parametrize("capacity_qps", [0.3, 3.7, 10.0, 55.0])
@pytest.mark.parametrize("start_qps", [1.0, 16.0])
def test_search_finds_the_boundary_within_the_tolerance(capacity_qps: float, start_qps: float) -> None:
    config = SearchConfig(start_qps=start_qps, tolerance=0.05)
    result = search_max_rate(lambda qps: step_point(qps, capacity_qps), config)
    assert result.fail_qps is not None
    boundary_qps = capacity_qps * 1.05  # where step_point's attainment falls to 0.9
    assert result.max_qps <= boundary_qps < result.fail_qps
    assert result.fail_qps - result.max_qps <= 0.05 * result.max_qps
    assert result.at_max is not None and result.at_max.passes(0.9)
    # Bracketing by factors of 2, then halving a factor-2 bracket down to 5% takes a handful of steps.
    brackets = abs(math.log2(boundary_qps / start_qps)) + 2
    assert len(result.points) <= brackets + 5


def test_search_reports_its_bounds_when_it_hits_them() -> None:
    always = search_max_rate(lambda qps: step_point(qps, 1e9), SearchConfig(start_qps=10.0, max_qps=100.0))
    assert (always.max_qps, always.fail_qps, always.capped) == (100.0, None, True)
    never = search_max_rate(lambda qps: step_point(qps, 0.01), SearchConfig(start_qps=1.0, min_qps=0.25))
    assert (never.max_qps, never.fail_qps) == (0.0, 0.25) and never.at_max is None
    assert [p.qps for p in never.points] == [1.0, 0.5, 0.25]


def test_a_coarse_search_refined_ends_where_a_fine_search_would() -> None:
    def evaluate(qps: float) -> Point:
        return step_point(qps, 7.0)

    coarse = search_max_rate(evaluate, SearchConfig(start_qps=1.0, tolerance=0.25))
    assert coarse.fail_qps is not None and coarse.fail_qps - coarse.max_qps <= 0.25 * coarse.max_qps
    fine = refine(evaluate, coarse, 0.05, 0.9)
    assert fine.fail_qps is not None and fine.max_qps <= 7.35 < fine.fail_qps
    assert fine.fail_qps - fine.max_qps <= 0.05 * fine.max_qps
    assert fine.points[: len(coarse.points)] == coarse.points


def test_search_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="tolerance"):
        SearchConfig(start_qps=1.0, tolerance=0.0)
    with pytest.raises(ValueError, match="min_qps"):
        SearchConfig(start_qps=0.01, min_qps=0.05)


def planned(deployment: Deployment, max_qps: float) -> Planned:
    return Planned(deployment, SearchResult(max_qps, max_qps * 1.05, []))


def test_ranking_is_by_goodput_per_gpu_then_the_simpler_deployment() -> None:
    replication, auto_r = Deployment(0, 0, 4, "replication"), Deployment(0, 0, 4, "auto")
    pd, ppd = Deployment(1, 3, 0, "pd"), Deployment(2, 2, 0, "ppd")
    ranked = rank([planned(pd, 8.0), planned(auto_r, 10.0), planned(ppd, 12.0), planned(replication, 10.0)])
    assert [p.deployment for p in ranked] == [ppd, replication, auto_r, pd]
    assert ranked[0].goodput_per_gpu == 3.0
    assert [p.deployment for p in tied_with_best(ranked, 0.2)] == [ppd, replication, auto_r]
    verdict = disaggregation_verdict(ranked, 0.05)
    assert verdict.beats and verdict.ratio == pytest.approx(1.2)
    assert verdict.best_disaggregated is not None and verdict.best_disaggregated.deployment == ppd
    close = disaggregation_verdict(rank([planned(replication, 10.0), planned(pd, 10.3)]), 0.05)
    assert not close.beats  # 3% ahead: within the search's tolerance


@dataclass(frozen=True)
class Capacities:
    """Stand-in evaluator: pd splits peak at one P per three engines; replication in between."""

    def __call__(self, deployment: Deployment, qps: float) -> Point:
        if deployment.is_disaggregated:
            capacity = 12.0 - 4.0 * abs(deployment.num_prefill / deployment.num_gpus - 0.25)
        else:
            capacity = 10.0
        return step_point(qps, capacity)


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.passes: list[tuple[str, int]] = []

    def on_pass(self, description: str, num_searches: int) -> None:
        self.passes.append((description, num_searches))

    def on_event(self, event: Event) -> None:
        self.events.append(event)


@pytest.mark.parametrize("workers", [1, 2])
def test_run_plan_searches_every_deployment_and_reports_every_point(workers: int) -> None:
    deployments = enumerate_deployments(4)
    recorder = Recorder()
    results = run_plan(Capacities(), deployments, SearchConfig(start_qps=4.0), 1.0, workers, recorder)
    assert [r.deployment for r in results] == deployments
    ranked = rank(results)
    winner = ranked[0]
    assert winner.deployment.topology == "1p3d"  # the stand-in's best split
    assert winner.search.fail_qps is not None
    assert winner.search.fail_qps - winner.max_qps <= 0.05 * winner.max_qps  # refined to the tolerance
    # Only the contenders were refined; the rest kept their coarse (<= 25%) bracket.
    assert recorder.passes[0] == ("coarse search to 25%", len(deployments))
    num_refined = recorder.passes[1][1]
    assert 1 <= num_refined < len(deployments)
    assert sum(1 for e in recorder.events if e.point is None) == len(deployments) + num_refined
    assert sum(len(r.search.points) for r in results) == sum(1 for e in recorder.events if e.point)
    loser = ranked[-1]
    assert loser.search.fail_qps is not None and loser.search.fail_qps <= 1.25 * loser.max_qps
    assert loser.search.fail_qps / 4 < winner.goodput_per_gpu  # why it was not refined


def test_refine_all_brings_every_deployment_to_the_tolerance() -> None:
    deployments = enumerate_deployments(4)
    recorder = Recorder()
    config = SearchConfig(start_qps=4.0, tolerance=0.1)
    results = run_plan(Capacities(), deployments, config, 1.0, 1, recorder, refine_all=True)
    assert recorder.passes[1] == ("refining 11 deployments to 10%", len(deployments))
    for result in results:
        assert result.search.fail_qps is not None
        assert result.search.fail_qps - result.max_qps <= 0.1 * result.max_qps + 1e-9
