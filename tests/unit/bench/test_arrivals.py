from __future__ import annotations

import itertools
import random

from ppd.bench.arrivals import (
    SeedFamily,
    constant_arrival_times_s,
    derive_seed,
    plan_conversations,
    poisson_arrival_times_s,
)
from ppd.bench.config import TurnShape, WorkloadSpec
from ppd.bench.workloads import builtin_workload


def test_derive_seed_is_stable_and_sensitive_to_every_part() -> None:
    assert derive_seed(0, "W1", 2.0, 1) == derive_seed(0, "W1", 2.0, 1)
    seeds = {
        derive_seed(0, "W1", 2.0, 1),
        derive_seed(1, "W1", 2.0, 1),
        derive_seed(0, "W2", 2.0, 1),
        derive_seed(0, "W1", 4.0, 1),
        derive_seed(0, "W1", 2.0, 2),
    }
    assert len(seeds) == 5


def test_poisson_arrivals_have_the_asked_rate_and_stay_in_the_window() -> None:
    times = poisson_arrival_times_s(50.0, 200.0, random.Random(3))
    assert all(0 < t < 200.0 for t in times)
    assert times == sorted(times)
    assert 9_500 < len(times) < 10_500  # 10,000 expected; 5 sigma is 500
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert abs(sum(gaps) / len(gaps) - 0.02) < 0.001


def test_constant_arrivals_are_evenly_spaced() -> None:
    assert constant_arrival_times_s(2.0, 3.0) == [0.5, 1.0, 1.5, 2.0, 2.5]


def test_plans_are_identical_for_the_same_run_and_differ_between_runs() -> None:
    workload = builtin_workload("W1", 2)
    first = plan_conversations(workload, 4.0, 10.0, seed=7, run=0)
    assert first == plan_conversations(workload, 4.0, 10.0, seed=7, run=0)
    assert first != plan_conversations(workload, 4.0, 10.0, seed=7, run=1)
    assert first != plan_conversations(workload, 4.0, 10.0, seed=8, run=0)
    assert [plan.index for plan in first] == list(range(len(first)))
    assert all(plan.turns == (TurnShape(512, 256),) * 2 for plan in first)


def test_file_workloads_pick_seeded_shapes() -> None:
    shapes = tuple((TurnShape(n, 1),) for n in range(1, 6))
    workload = WorkloadSpec("file", shapes, "x.json")
    plans = plan_conversations(workload, 20.0, 10.0, seed=0, run=0)
    assert plans == plan_conversations(workload, 20.0, 10.0, seed=0, run=0)
    assert {plan.turns for plan in plans} == set(shapes)


def test_seed_family_is_derive_seed() -> None:
    """The fleet's per-conversation prompt seeds (one family, many indices) are derive_seed's."""
    family = SeedFamily(0, "salt", "pd", "W1", 16.0, 0)
    for index in (0, 1, 57_505):
        assert family.seed(index) == derive_seed(0, "salt", "pd", "W1", 16.0, 0, index)
    assert SeedFamily("x").seed(None) == derive_seed("x", None)
