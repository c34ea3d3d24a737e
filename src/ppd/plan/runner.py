"""Running the plan: one rate search per deployment, deployments spread over worker processes.

Each worker runs whole searches (search.py), one deployment at a time, evaluating each rate with the
`Evaluator` it was given (evaluate.py: a `ppd fleet` run on a virtual clock). Workers report every
evaluated point through a queue, so the parent can draw a live progress bar; the results do not
depend on the number of workers or their timing (each evaluation is seeded and deterministic).
"""

from __future__ import annotations

import multiprocessing
import queue
import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from ppd.plan.deployments import Deployment
from ppd.plan.ranking import Planned
from ppd.plan.search import Point, SearchConfig, search_max_rate

_POLL_S = 0.2


class Evaluator(Protocol):
    """Measures one deployment at one conversation rate. Must pickle (it is sent to workers)."""

    def __call__(self, deployment: Deployment, qps: float) -> Point: ...


@dataclass(frozen=True)
class Event:
    """A worker's report: a point was measured, or a deployment's search ended."""

    deployment: Deployment
    point: Point | None  # None: the search of `deployment` is over


class Reporter(Protocol):
    """What the runner tells while it goes (progress.py draws it)."""

    def on_event(self, event: Event) -> None: ...


def search_config_for(deployment: Deployment, base: SearchConfig, start_qps_per_gpu: float) -> SearchConfig:
    """The search of one deployment: the base config, starting at `start_qps_per_gpu` per GPU."""
    start_qps = min(base.max_qps, max(base.min_qps, start_qps_per_gpu * deployment.num_gpus))
    return SearchConfig(start_qps, base.target_attainment, base.tolerance, base.min_qps, base.max_qps)


def plan_one(
    evaluator: Evaluator, deployment: Deployment, config: SearchConfig, events: Any | None = None
) -> Planned:
    """Search one deployment's highest passing rate; report each point to `events` (a queue)."""

    def on_point(point: Point) -> None:
        if events is not None:
            events.put(Event(deployment, point))

    result = search_max_rate(lambda qps: evaluator(deployment, qps), config, on_point)
    if events is not None:
        events.put(Event(deployment, None))
    return Planned(deployment, result)


def run_plan(
    evaluator: Evaluator,
    deployments: Sequence[Deployment],
    base: SearchConfig,
    start_qps_per_gpu: float,
    workers: int,
    reporter: Reporter | None = None,
) -> list[Planned]:
    """Every deployment's search, in the order given; `workers` > 1 runs them in that many processes."""
    if workers <= 1:
        return _run_inline(evaluator, deployments, base, start_qps_per_gpu, reporter)
    context = multiprocessing.get_context("fork")  # workers inherit the loaded modules: fast start
    with context.Manager() as manager, ProcessPoolExecutor(workers, mp_context=context) as pool:
        events = manager.Queue()
        futures = [
            pool.submit(plan_one, evaluator, d, search_config_for(d, base, start_qps_per_gpu), events)
            for d in deployments
        ]
        _drain_while_running(futures, events, reporter)
        return [future.result() for future in futures]


def _run_inline(
    evaluator: Evaluator,
    deployments: Sequence[Deployment],
    base: SearchConfig,
    start_qps_per_gpu: float,
    reporter: Reporter | None,
) -> list[Planned]:
    events: queue.SimpleQueue[Event] = queue.SimpleQueue()
    planned = []
    for deployment in deployments:
        config = search_config_for(deployment, base, start_qps_per_gpu)
        planned.append(plan_one(evaluator, deployment, config, events))
        _forward(events, reporter)
    return planned


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
