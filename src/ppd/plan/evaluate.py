"""One evaluation of the plan: a deployment at one conversation rate, simulated by `ppd fleet`.

The fleet runs the deployment's engines (the `ppd sim` engine core and time-model profile) behind
the proxy's own router core on a virtual clock, under the bench's open-loop workload: Poisson
conversation arrivals, the workload's turns, the measured HTTP hop costs (docs/fleet.md). What is
measured is the bench's: SLO attainment (share of sent turns after the warm-up that met both SLOs;
failed or cut-off turns are misses) and goodput (such turns per second).

Each evaluation offers about `conversations` conversations: the arrival window is
conversations / qps, kept within [min_window_s, max_window_s], and its first `warmup_fraction` is
left out of the figures. A trace workload (`mooncake:FILE` over a window) is the exception: its rate
is a mean request rate, every evaluation replays the whole slice with the trace's times scaled to
it, and the window is the slice's replay time at that rate.

Turns still running `drain_s` after the window closes are cut off and count as misses (an
overloaded deployment builds a queue that would only take longer to drain).

An evaluation stops as soon as its verdict is certain: once more turns missed the SLOs than
(1 - target) x all the turns it could send, no later turn can bring attainment back to the target.
Its point then reports that bound as its attainment (`metrics["stopped_early"]`), and no goodput.
Overloaded rates, the costliest to simulate, are the ones that stop early.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from ppd.bench.arrivals import trace_duration_s
from ppd.bench.config import WorkloadSpec
from ppd.bench.metrics import Slo, meets_slo, summarize
from ppd.bench.workloads import context_tokens
from ppd.fleet import (
    EngineOptions,
    FleetConfig,
    HopCosts,
    fleet_topology,
    measured_hops,
    offered_conversations,
    simulate,
)
from ppd.fleet.proxy_loop import ProxyCpu, measured_proxy_cpu
from ppd.plan.deployments import Deployment
from ppd.plan.search import Point
from ppd.results import TurnRow

_MIN_CONTEXT_TOKENS = 16384  # the profiles' default context; longer workloads raise it


@dataclass(frozen=True)
class FleetEvaluator:
    """Measures a deployment at a rate with `ppd fleet` (picklable: sent to worker processes)."""

    workload: WorkloadSpec
    slo: Slo
    profile: str = "h100-llama3.1-8b"
    conversations: int = 200  # offered per evaluation
    min_window_s: float = 5.0
    max_window_s: float = 120.0
    warmup_fraction: float = 0.1
    drain_s: float = 20.0
    think_time_s: float = 0.0
    seed: int = 0
    target_attainment: float = 0.9  # for the early stop (module docstring)
    max_num_seqs: int = 256  # vLLM's --max-num-seqs of every engine
    kv_cache_tokens: int | None = None  # per engine; None: the profile's
    max_model_len: int | None = None  # the engines' context; None: long enough for the workload
    hops: HopCosts = field(default_factory=measured_hops)  # what the HTTP path adds (ppd fleet --hops)
    proxy_cpu: ProxyCpu = field(default_factory=measured_proxy_cpu)  # the proxy's loop (--proxy-cpu)
    proxy_processes: int = 1  # proxy processes the conversations are spread over (--proxy-processes)

    @property
    def is_trace(self) -> bool:
        """Whether the rates are a trace slice's request rates (not conversation rates)."""
        return self.workload.trace is not None

    def window_s(self, qps: float) -> float:
        """The arrival window of an evaluation at `qps` (simulated s)."""
        if self.workload.trace is not None:
            return trace_duration_s(self.workload.trace, qps)
        return min(self.max_window_s, max(self.min_window_s, self.conversations / qps))

    def fleet_config(self, deployment: Deployment, qps: float) -> FleetConfig:
        """The `ppd fleet` run of one evaluation."""
        window_s = self.window_s(qps)
        auto = deployment.mode == "auto"  # auto routes toward the SLOs it is planned for
        return FleetConfig(
            topology=fleet_topology(deployment.topology),
            mode=deployment.mode,
            workload=self.workload,
            qps=qps,
            duration_s=window_s,
            warmup_s=self.warmup_fraction * window_s,
            think_time_s=self.think_time_s,
            seed=self.seed,
            slo=self.slo,
            drain_timeout_s=self.drain_s,
            engine=EngineOptions(
                profile=self.profile,
                max_model_len=self.engine_max_model_len(),
                max_num_seqs=self.max_num_seqs,
                kv_cache_tokens=self.kv_cache_tokens,
            ),
            route_slo_ttft_ms=self.slo.ttft_ms if auto else None,
            route_slo_tpot_ms=self.slo.tpot_ms if auto else None,
            hops=self.hops,
            proxy_cpu=self.proxy_cpu,
            proxy_processes=self.proxy_processes,
        )

    def engine_max_model_len(self) -> int | None:
        """The given context, or one long enough for the workload's longest conversation (None: the
        profile's). A trace's requests longer than the context are skipped, as the bench skips them."""
        if self.max_model_len is not None:
            return self.max_model_len
        longest = max((context_tokens(turns) for turns in self.workload.conversations), default=0)
        return None if longest <= _MIN_CONTEXT_TOKENS else longest + 1

    def __call__(self, deployment: Deployment, qps: float) -> Point:
        """Simulate `deployment` at `qps` conversations/s and measure its SLO attainment."""
        started_s = time.perf_counter()
        config = self.fleet_config(deployment, qps)
        offered = offered_conversations(config)  # the miss budget counts the turns the run will send
        num_turns = sum(len(plan.turns) for plan in offered.plans)
        misses = _MissCounter(config.slo, max_misses(self.target_attainment, num_turns))
        try:
            run = simulate(config, on_row=misses, offered=offered)
        except _VerdictCertain:
            bound = 1.0 - misses.num_missed / max(1, num_turns)
            metrics = {
                "stopped_early": True,
                "window_s": config.duration_s,
                "missed_turns": misses.num_missed,
            }
            return Point(qps, bound, None, misses.num_sent, metrics, time.perf_counter() - started_s)
        summaries = summarize(misses.rows, run.run_info, config.slo)
        summary = next(s for s in summaries if s["turn_group"] == "all")
        metrics = {
            "ttft_p50_ms": summary["ttft_ms"]["p50"],
            "ttft_p99_ms": summary["ttft_ms"]["p99"],
            "tpot_p50_ms": summary["tpot_ms"]["p50"],
            "tpot_p99_ms": summary["tpot_ms"]["p99"],
            "success_rate": summary["success_rate"],
            "window_s": self.window_s(qps),
        }
        if run.proxy.get("modelled"):  # the busiest proxy process's CPU share (1.0: a whole core)
            metrics["proxy_busy_share"] = max(run.proxy["busy_share"])
        return Point(
            qps=qps,
            slo_attainment=summary["slo_attainment"],
            goodput_rps=summary["goodput_rps"],
            num_turns=summary["count"],
            metrics=metrics,
            wall_s=time.perf_counter() - started_s,
        )


def max_misses(target_attainment: float, num_turns: int) -> int:
    """The most missed turns of `num_turns` that can still leave attainment >= the target. The small
    epsilon keeps float error from making it one less ((1 - 0.9) * 400 is 39.999...)."""
    return math.floor((1.0 - target_attainment) * num_turns + 1e-9)


class _VerdictCertain(Exception):
    """More turns missed the SLOs than the target allows: the rate fails whatever comes next."""


class _MissCounter:
    """Keeps the rows and counts sent, measured turns that missed the SLOs; raises _VerdictCertain
    past the budget."""

    def __init__(self, slo: Slo, max_misses: int) -> None:
        self.slo = slo
        self.max_misses = max_misses
        self.rows: list[TurnRow] = []
        self.num_sent = 0
        self.num_missed = 0

    def __call__(self, row: TurnRow) -> None:
        self.rows.append(row)
        if row.in_warmup or not row.sent:
            return
        self.num_sent += 1
        if not meets_slo(row, self.slo):
            self.num_missed += 1
            if self.num_missed > self.max_misses:
                raise _VerdictCertain
