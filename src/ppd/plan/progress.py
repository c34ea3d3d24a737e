"""The plan's live progress (rich): deployments searched so far, and each deployment's latest point."""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from ppd.plan.deployments import Deployment
from ppd.plan.runner import Event


class LiveProgress:
    """A bar of deployments done, and one line per deployment in search: its last rate and result."""

    def __init__(self, deployments: list[Deployment], target_attainment: float, console: Console) -> None:
        self._target = target_attainment
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._pass = "deployments searched"
        self._overall = self._progress.add_task(self._pass, total=len(deployments))
        self._lines: dict[Deployment, TaskID] = {}
        self._num_points = 0
        self._started_s = time.perf_counter()

    def __enter__(self) -> LiveProgress:
        self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._progress.stop()

    def on_pass(self, description: str, num_searches: int) -> None:
        """A pass of searches begins: the bar counts its searches."""
        self._pass = description
        self._progress.reset(self._overall, total=num_searches, description=description)

    def on_event(self, event: Event) -> None:
        """A point measured (the deployment's line shows it) or a search ended (its line goes)."""
        deployment = event.deployment
        if event.point is None:
            line = self._lines.pop(deployment, None)
            if line is not None:
                self._progress.remove_task(line)
            self._progress.advance(self._overall)
            return
        self._num_points += 1
        point = event.point
        attainment = "-" if point.slo_attainment is None else f"{100 * point.slo_attainment:.0f}%"
        verdict = "ok" if point.passes(self._target) else "miss"
        text = f"  {deployment.label:<18} {point.qps:8.2f} conv/s  SLO {attainment:>4} {verdict}"
        if deployment not in self._lines:
            self._lines[deployment] = self._progress.add_task(text, total=None)
        else:
            self._progress.update(self._lines[deployment], description=text)
        elapsed_s = time.perf_counter() - self._started_s
        self._progress.update(
            self._overall, description=f"{self._pass} ({self._num_points} runs, {elapsed_s:.0f} s)"
        )


class QuietProgress:
    """No display."""

    def on_pass(self, description: str, num_searches: int) -> None:
        """Nothing."""

    def on_event(self, event: Event) -> None:
        """Nothing."""
