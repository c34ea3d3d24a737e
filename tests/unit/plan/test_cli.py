"""`ppd plan` end to end on a small fleet (2 GPUs, few conversations), and its one-line usage errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ppd.cli import main
from ppd.plan.deployments import Deployment
from ppd.plan.evaluate import FleetEvaluator


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--gpus", "0"], "--gpus must be >= 1"),
        (["--slo-ttft-ms", "0"], "--slo-ttft-ms must be > 0"),
        (["--modes", "pd,fast"], "'fast' is not one of"),
        (["--workload", "W9"], "workload 'W9'"),
        (["--profile", "no-such-profile"], "no-such-profile"),
        (["--tolerance", "1.5"], "tolerance"),
        (["--gpus", "1", "--modes", "pd"], "no deployment of 1 GPUs"),
        (["--deployments", "1p1d,4r"], "4r is not among the deployments planned (2r, 1p1d)"),
        (["--max-num-seqs", "0"], "--max-num-seqs must be >= 1"),
        (["--kv-cache-tokens", "0"], "--kv-cache-tokens must be >= 1"),
        (["--window", "0:60"], "--window applies to a trace workload"),
        (["--workload", "W1,W2"], "give one workload"),
        (["--hops", "/nonexistent.json"], "--hops /nonexistent.json: expected measured, zero or"),
        (["--proxy-cpu", "/nonexistent.json"], "--proxy-cpu /nonexistent.json: expected measured, zero or"),
        (["--proxy-processes", "0"], "--proxy-processes must be >= 1"),
    ],
)
def test_bad_flags_are_one_line_errors(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = {"--gpus": "2", "--workload": "W1", "--slo-ttft-ms": "500", "--slo-tpot-ms": "50"}
    for flag, value in zip(flags[::2], flags[1::2], strict=True):
        base[flag] = value
    argv = ["plan", *[part for item in base.items() for part in item], "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_an_overloaded_rate_stops_early_with_a_bound_below_the_target() -> None:
    from ppd.bench.metrics import Slo
    from ppd.bench.workloads import builtin_workload

    evaluator = FleetEvaluator(
        builtin_workload("W4", 2), Slo(100.0, 20.0), conversations=40, min_window_s=2.0
    )
    point = evaluator(Deployment(0, 0, 1, "replication"), 20.0)
    assert point.metrics.get("stopped_early") is True
    assert point.slo_attainment is not None and point.slo_attainment < 0.9 and not point.passes(0.9)
    lenient = FleetEvaluator(builtin_workload("W4", 2), Slo(5000.0, 50.0), conversations=20, min_window_s=2.0)
    light = lenient(Deployment(0, 0, 1, "replication"), 0.5)
    assert "stopped_early" not in light.metrics and light.num_turns > 10 and light.passes(0.9)


def test_engine_flags_and_the_restriction_reach_the_fleet_runs() -> None:
    import argparse

    from ppd.plan.cli import _build, add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    flags = ["--gpus", "4", "--workload", "W1", "--slo-ttft-ms", "500", "--slo-tpot-ms", "25"]
    args = parser.parse_args(
        [*flags, "--deployments", "1p3d,4r", "--max-num-seqs", "1024", "--kv-cache-tokens", "839648"]
    )
    evaluator, deployments, _ = _build(args)
    assert [d.label for d in deployments] == ["4r replication", "4r auto", "1p3d pd", "1p3d ppd", "1p3d auto"]
    engine = evaluator.fleet_config(deployments[2], 4.0).engine
    assert (engine.max_num_seqs, engine.kv_cache_tokens) == (1024, 839648)
    default = _build(parser.parse_args(flags))
    assert len(default[1]) == 11 and default[0].fleet_config(default[1][0], 4.0).engine.max_num_seqs == 256


def test_hops_reach_the_fleet_runs(tmp_path: Path) -> None:
    """--hops as `ppd fleet --hops`: measured by default, zero, or a pinned file of figures."""
    import argparse

    from ppd.fleet import HopCosts, measured_hops
    from ppd.plan.cli import _build, add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    flags = ["--gpus", "2", "--workload", "W1", "--slo-ttft-ms", "500", "--slo-tpot-ms", "25"]
    pinned = tmp_path / "hops.json"
    pinned.write_text(json.dumps({"client_to_proxy_ms": 2.5, "kv_claim_ms": 8.0, "source": "pinned"}))
    for spec, expected in [
        (None, measured_hops()),
        ("zero", HopCosts()),
        (str(pinned), HopCosts(client_to_proxy_ms=2.5, kv_claim_ms=8.0, source="pinned")),
    ]:
        evaluator, deployments, _ = _build(parser.parse_args(flags + (["--hops", spec] if spec else [])))
        assert evaluator.fleet_config(deployments[0], 2.0).hops == expected
    evaluator, deployments, _ = _build(
        parser.parse_args([*flags, "--proxy-cpu", "zero", "--proxy-processes", "3"])
    )
    fleet = evaluator.fleet_config(deployments[0], 2.0)
    assert fleet.proxy_cpu.is_zero and fleet.proxy_processes == 3


def test_the_miss_budget_is_exact_despite_float_error() -> None:
    from ppd.plan.evaluate import max_misses
    from ppd.plan.search import Point

    assert max_misses(0.9, 400) == 40  # (1 - 0.9) * 400 is 39.999... in floats
    assert max_misses(0.9, 399) == 39 and max_misses(1.0, 50) == 0
    assert not Point(1.0, 0.95, None, 10, {"stopped_early": True}).passes(0.9)  # a bound is no pass


def test_plan_ranks_two_gpus_and_writes_its_outputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "plan"
    argv = [
        "plan", "--gpus", "2", "--workload", "64/16", "--slo-ttft-ms", "400", "--slo-tpot-ms", "40",
        "--modes", "pd,replication", "--conversations", "24", "--min-window-s", "2", "--drain-s", "10",
        "--tolerance", "0.25", "--start-qps-per-gpu", "4", "--workers", "1", "--quiet", "--output", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "winner:" in printed and "ppd up --backend vllm --model MODEL --topology" in printed
    plan = json.loads((out / "plan.json").read_text())
    assert [d["deployment"] for d in plan["ranking"]] in (
        ["2r replication", "1p1d pd"],
        ["1p1d pd", "2r replication"],
    )
    assert plan["winner"]["up_command"] in printed
    best = plan["ranking"][0]
    assert best["max_qps"] > 0 and best["at_max"]["slo_attainment"] >= 0.9
    assert all(p["qps"] > 0 for d in plan["ranking"] for p in d["points"])
    markdown = (out / "plan.md").read_text()
    assert "**Recommendation:" in markdown and "disaggregation" in markdown.lower()
    assert "one `ppd proxy` process" in markdown and "| proxy CPU |" in markdown
    assert 0 < best["at_max"]["metrics"]["proxy_busy_share"] < 1
    assert plan["inputs"]["proxy_processes"] == 1
    assert (out / "plan.png").stat().st_size > 10_000


EXCERPT = Path(__file__).parents[3] / "src/ppd/traces/data/mooncake-conversation-excerpt.jsonl"


def test_a_trace_is_planned_by_request_rate_over_its_whole_slice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ppd.bench.arrivals import plan_trace, trace_duration_s

    out = tmp_path / "plan"
    argv = [
        "plan", "--gpus", "2", "--workload", f"mooncake:{EXCERPT}", "--window", "0:400",
        "--max-model-len", "65536", "--slo-ttft-ms", "3000", "--slo-tpot-ms", "200", "--modes", "replication",
        "--tolerance", "0.5",
        "--start-qps-per-gpu", "1", "--workers", "1", "--quiet", "--output", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    assert "max req/s" in capsys.readouterr().out
    plan = json.loads((out / "plan.json").read_text())
    assert plan["inputs"]["window"] == "0:400" and plan["inputs"]["rates"] == "trace requests/s"
    assert plan["inputs"]["max_model_len"] == 65536 and "trace request rate" in plan["goodput_definition"]
    [entry] = plan["ranking"]
    assert entry["deployment"] == "2r replication" and entry["max_qps"] > 0
    assert "requests/s" in (out / "plan.md").read_text()
    # every evaluation replays the whole slice: its window is the slice's replay time at the rate
    import argparse

    from ppd.plan.cli import _build, add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    evaluator, deployments, _ = _build(parser.parse_args(argv[1:]))
    trace = evaluator.workload.trace
    assert trace is not None and evaluator.is_trace
    for point in entry["points"]:
        assert point["metrics"]["window_s"] == pytest.approx(trace_duration_s(trace, point["qps"]))
    config = evaluator.fleet_config(deployments[0], 2.0)
    assert config.engine.max_model_len == 65536 and config.duration_s == trace_duration_s(trace, 2.0)
    assert len(plan_trace(trace, 2.0)) == len(plan_trace(trace, 8.0))


def test_the_early_stop_counts_the_turns_the_run_offers_whatever_the_arrivals() -> None:
    # the miss budget and the bound count the conversations simulate() runs: evenly spaced arrivals
    # too (the evaluator made Poisson plans of its own for them)
    from dataclasses import dataclass, replace

    from ppd.bench.arrivals import plan_conversations
    from ppd.bench.metrics import Slo
    from ppd.bench.workloads import builtin_workload
    from ppd.fleet import FleetConfig

    @dataclass(frozen=True)
    class EvenArrivals(FleetEvaluator):
        def fleet_config(self, deployment: Deployment, qps: float) -> FleetConfig:
            return replace(super().fleet_config(deployment, qps), poisson=False)

    evaluator = EvenArrivals(builtin_workload("W4", 2), Slo(100.0, 20.0), conversations=40, min_window_s=2.0)
    deployment = Deployment(0, 0, 1, "replication")
    point = evaluator(deployment, 20.0)
    config = evaluator.fleet_config(deployment, 20.0)
    plans = plan_conversations(config.workload, 20.0, config.duration_s, config.seed, config.run, False)
    num_turns = sum(len(plan.turns) for plan in plans)
    assert point.metrics.get("stopped_early") is True and point.slo_attainment is not None
    assert point.slo_attainment == pytest.approx(1.0 - point.metrics["missed_turns"] / num_turns)
