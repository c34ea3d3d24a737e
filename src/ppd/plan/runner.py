"""Running the plan: a rate search per deployment, spread over worker processes, in two passes.

    1. coarse   every deployment's search (search.py) to `coarse_tolerance` (0.25 by default): enough
                to see which deployments cannot win
    2. refine   only the contenders, those whose failing rate lies above the best passing rate of
                any deployment (their true maximum may be the best), to the final tolerance; with
                `refine_all` (`ppd plan --refine-all`), every deployment

so the evaluations go where the ranking is decided; the others keep their coarse bracket, which
plan.json and plan.md report as such. Each worker runs whole searches, one deployment at a time,
with the `Evaluator` it was given (evaluate.py: a `ppd fleet` run), and reports every point through
a queue, so the parent can draw a live progress bar; the results do not depend on the number of
workers or their timing (each evaluation is seeded and deterministic).
"""

from __future__ import annotations

import multiprocessing
import queue
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Protocol

from ppd.plan.deployments import Deployment
from ppd.plan.ranking import Planned
from ppd.plan.search import Point, SearchConfig, refine, search_max_rate

_POLL_S = 0.2


class Evaluator(Protocol):
    """Measures one deployment at one conversation rate. Must pickle (it is sent to workers)."""

    def __call__(self, deployment: Deployment, qps: float) -> Point: ...


@dataclass(frozen=True)
class Event:
    """A worker's report: a point was measured, or a deployment's search (or refinement) ended."""

    deployment: Deployment
    point: Point | None  # None: the search of `deployment` is over for this pass


class Reporter(Protocol):
    """What the runner tells while it goes (progress.py draws it)."""

    def on_pass(self, description: str, num_searches: int) -> None: ...
    def on_event(self, event: Event) -> None: ...


def search_config_for(deployment: Deployment, base: SearchConfig, start_qps_per_gpu: float) -> SearchConfig:
    """The search of one deployment: the base config, starting at `start_qps_per_gpu` per GPU."""
    start_qps = min(base.max_qps, max(base.min_qps, start_qps_per_gpu * deployment.num_gpus))
    return replace(base, start_qps=start_qps)


def plan_one(
    evaluator: Evaluator, deployment: Deployment, config: SearchConfig, events: Any | None = None
) -> Planned:
    """Search one deployment's highest passing rate; report each point to `events` (a queue)."""
    result = search_max_rate(lambda qps: evaluator(deployment, qps), config, _reporting(deployment, events))
    if events is not None:
        events.put(Event(deployment, None))
    return Planned(deployment, result)


def refine_one(
    evaluator: Evaluator, planned: Planned, config: SearchConfig, events: Any | None = None
) -> Planned:
    """Narrow one deployment's bracket to config.tolerance; report each point to `events`."""
    deployment = planned.deployment
    result = refine(
        lambda qps: evaluator(deployment, qps),
        planned.search,
        config.tolerance,
        config.target_attainment,
        _reporting(deployment, events),
    )
    if events is not None:
        events.put(Event(deployment, None))
    return Planned(deployment, result)


def _reporting(deployment: Deployment, events: Any | None) -> Callable[[Point], None]:
    def on_point(point: Point) -> None:
        if events is not None:
            events.put(Event(deployment, point))

    return on_point


def contenders(planned: Sequence[Planned]) -> list[Planned]:
    """The deployments that may still be the best: their failing rate per GPU is above the best
    passing rate per GPU (or they never failed). The leader is always one."""
    best = max((p.goodput_per_gpu for p in planned), default=0.0)
    return [
        p for p in planned if p.search.fail_qps is None or p.search.fail_qps / p.deployment.num_gpus > best
    ]


def run_plan(
    evaluator: Evaluator,
    deployments: Sequence[Deployment],
    base: SearchConfig,
    start_qps_per_gpu: float,
    workers: int,
    reporter: Reporter | None = None,
    coarse_tolerance: float = 0.25,
    refine_all: bool = False,
) -> list[Planned]:
    """Every deployment's search, in the order given (module docstring); `workers` > 1 runs them in
    that many processes. `refine_all` refines every deployment, not only the contenders, so that each
    one's rate has the same resolution (to hold them all against measurements)."""
    coarse = replace(base, tolerance=max(base.tolerance, coarse_tolerance))
    with _Workers(workers, reporter) as pool:
        if reporter is not None:
            reporter.on_pass(f"coarse search to {coarse.tolerance:.0%}", len(deployments))
        planned = pool.run(
            [(plan_one, (evaluator, d, search_config_for(d, coarse, start_qps_per_gpu))) for d in deployments]
        )
        if coarse.tolerance <= base.tolerance:
            return planned
        candidates = planned if refine_all else contenders(planned)
        to_refine = [p for p in candidates if p.max_qps > 0.0 and p.search.fail_qps is not None]
        if reporter is not None:
            which = "deployments" if refine_all else "contenders"
            reporter.on_pass(f"refining {len(to_refine)} {which} to {base.tolerance:.0%}", len(to_refine))
        refined = pool.run([(refine_one, (evaluator, p, base)) for p in to_refine])
    by_deployment = {p.deployment: p for p in refined}
    return [by_deployment.get(p.deployment, p) for p in planned]


class _Workers:
    """Runs (function, args) tasks inline or in a process pool, forwarding worker events."""

    def __init__(self, workers: int, reporter: Reporter | None) -> None:
        self._workers = workers
        self._reporter = reporter
        self._pool: ProcessPoolExecutor | None = None
        self._manager: Any = None
        self._events: Any = queue.SimpleQueue()

    def __enter__(self) -> _Workers:
        if self._workers > 1:
            context = multiprocessing.get_context("fork")  # workers inherit the loaded modules
            self._manager = context.Manager()
            self._events = self._manager.Queue()
            self._pool = ProcessPoolExecutor(self._workers, mp_context=context)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
        if self._manager is not None:
            self._manager.shutdown()

    def run(self, tasks: list[tuple[Callable[..., Planned], tuple[Any, ...]]]) -> list[Planned]:
        """Run every task; results in the order given."""
        if self._pool is None:
            results = []
            for function, args in tasks:
                results.append(function(*args, self._events))
                _forward(self._events, self._reporter)
            return results
        futures = [self._pool.submit(function, *args, self._events) for function, args in tasks]
        _drain_while_running(futures, self._events, self._reporter)
        return [future.result() for future in futures]


def _drain_while_running(futures: list[Future[Planned]], events: Any, reporter: Reporter | None) -> None:
    while not all(future.done() for future in futures):
        _forward(events, reporter, wait_s=_POLL_S)
        failed = next((f for f in futures if f.done() and f.exception() is not None), None)
        if failed is not None:
            for future in futures:
                future.cancel()
            failed.result()  # raises the worker's exception here
    _forward(events, reporter)


def _forward(events: Any, reporter: Reporter | None, wait_s: float = 0.0) -> None:
    deadline_s = time.monotonic() + wait_s
    while True:
        try:
            timeout_s = max(0.0, deadline_s - time.monotonic())
            event = events.get(timeout=timeout_s) if timeout_s > 0 else events.get_nowait()
        except queue.Empty:
            return
        if reporter is not None:
            reporter.on_event(event)
