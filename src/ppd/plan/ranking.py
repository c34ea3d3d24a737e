"""Ranking deployments by goodput per GPU, and what the ranking says about disaggregation.

Goodput here is DistServe's: the highest conversation arrival rate a deployment sustains with at
least 90% of its turns meeting both SLOs (search.py), per GPU. Deployments whose rates lie within
the search's tolerance of the winner's are reported as tied with it: the search cannot tell them
apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from ppd.modes import MODES
from ppd.plan.deployments import Deployment
from ppd.plan.search import SearchResult


@dataclass(frozen=True)
class Planned:
    """One deployment's search result."""

    deployment: Deployment
    search: SearchResult

    @property
    def max_qps(self) -> float:
        """Highest passing conversation rate (conversations/s)."""
        return self.search.max_qps

    @property
    def goodput_per_gpu(self) -> float:
        """Highest passing conversation rate per GPU (conversations/s/GPU)."""
        return self.search.max_qps / self.deployment.num_gpus


def rank(planned: list[Planned]) -> list[Planned]:
    """Best first: goodput per GPU, then (equal rates) the simpler deployment: replication before
    disaggregation, fewer prefill instances, then mode order (pd, ppd, replication, auto)."""
    return sorted(planned, key=_rank_key)


def _rank_key(item: Planned) -> tuple[float, int, int, int]:
    deployment = item.deployment
    mode_order = MODES.index(deployment.mode)
    return (-item.goodput_per_gpu, int(deployment.is_disaggregated), deployment.num_prefill, mode_order)


def tied_with_best(ranked: list[Planned], tolerance: float) -> list[Planned]:
    """The deployments whose goodput is within `tolerance` (relative) of the winner's, winner first."""
    if not ranked:
        return []
    best = ranked[0].goodput_per_gpu
    return [item for item in ranked if item.goodput_per_gpu >= best * (1.0 - tolerance)]


@dataclass(frozen=True)
class DisaggregationVerdict:
    """Best disaggregated deployment (pd / ppd / auto on xPyD) against the best on replicas (nR)."""

    best_disaggregated: Planned | None
    best_replicated: Planned | None
    ratio: float | None  # disaggregated goodput / replicated goodput
    beats: bool  # disaggregated is ahead by more than the search tolerance


def disaggregation_verdict(ranked: list[Planned], tolerance: float) -> DisaggregationVerdict:
    """Whether any xPyD deployment beats every nR deployment by more than the search tolerance."""
    disaggregated = next((p for p in ranked if p.deployment.is_disaggregated), None)
    replicated = next((p for p in ranked if not p.deployment.is_disaggregated), None)
    if disaggregated is None or replicated is None:
        return DisaggregationVerdict(disaggregated, replicated, None, False)
    if replicated.goodput_per_gpu <= 0.0:
        ratio = float("inf") if disaggregated.goodput_per_gpu > 0.0 else None
        return DisaggregationVerdict(disaggregated, replicated, ratio, disaggregated.goodput_per_gpu > 0.0)
    ratio = disaggregated.goodput_per_gpu / replicated.goodput_per_gpu
    return DisaggregationVerdict(disaggregated, replicated, ratio, ratio > 1.0 + tolerance)
