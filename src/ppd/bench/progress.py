"""Live progress (rich) while runs go, and the compact table printed at the end.

Rendering runs on the event loop, so it is throttled to a few frames per second; `--quiet` turns it
off for CI and for the most faithful timing.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from typing import Any, Protocol

from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ppd.results import TurnRow

_FRAME_INTERVAL_S = 0.5


class Progress(Protocol):
    """Hooks the runner calls; all cheap."""

    def start_run(self, label: str, num_planned: int) -> None: ...
    def on_send(self, turn: int) -> None: ...
    def on_row(self, row: TurnRow) -> None: ...
    def end_run(self) -> None: ...


class QuietProgress:
    """No display."""

    def start_run(self, label: str, num_planned: int) -> None:
        """Nothing."""

    def on_send(self, turn: int) -> None:
        """Nothing."""

    def on_row(self, row: TurnRow) -> None:
        """Nothing."""

    def end_run(self) -> None:
        """Nothing."""


class LiveProgress:
    """One live table line per run: counts and running p50 TTFT of turn 1 and turns 2+."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._live: Live | None = None
        self._reset("", 0)

    def _reset(self, label: str, num_planned: int) -> None:
        self._label = label
        self._num_planned = num_planned
        self._started_at = time.perf_counter()
        self._last_frame_at = 0.0
        self._num_sent = 0
        self._num_ok = 0
        self._num_failed = 0
        self._num_not_sent = 0
        self._num_conversations = 0
        self._ttft_ms: dict[str, list[float]] = {"1": [], "2+": []}

    def start_run(self, label: str, num_planned: int) -> None:
        """A run begins."""
        self._reset(label, num_planned)
        self._live = Live(self._render(), console=self._console, auto_refresh=False, transient=False)
        self._live.start()

    def on_send(self, turn: int) -> None:
        """A turn was sent."""
        self._num_sent += 1
        self._num_conversations += turn == 1
        self._maybe_refresh()

    def on_row(self, row: TurnRow) -> None:
        """A turn finished (or was recorded as not sent)."""
        if not row.sent:
            self._num_not_sent += 1
        elif row.ok:
            self._num_ok += 1
            if row.ttft_ms is not None and not row.in_warmup:
                self._ttft_ms["1" if row.turn == 1 else "2+"].append(row.ttft_ms)
        else:
            self._num_failed += 1
        self._maybe_refresh()

    def end_run(self) -> None:
        """The run ended: draw the final frame and keep it on screen."""
        if self._live is not None:
            self._live.update(self._render(), refresh=True)
            self._live.stop()
            self._live = None
            if not self._console.is_terminal:
                self._console.line()  # a non-interactive Live leaves its last frame unterminated

    def _maybe_refresh(self) -> None:
        now = time.perf_counter()
        if self._live is not None and now - self._last_frame_at >= _FRAME_INTERVAL_S:
            self._last_frame_at = now
            self._live.update(self._render(), refresh=True)

    def _render(self) -> Text:
        finished = self._num_ok + self._num_failed
        line = (
            f"{self._label}  {time.perf_counter() - self._started_at:5.1f} s  "
            f"conversations {self._num_conversations}/{self._num_planned}  sent {self._num_sent}  "
            f"ok {self._num_ok}  failed {self._num_failed}  not sent {self._num_not_sent}  "
            f"in flight {self._num_sent - finished}  TTFT p50 turn 1 {_median_text(self._ttft_ms['1'])} ms  "
            f"turns 2+ {_median_text(self._ttft_ms['2+'])} ms"
        )
        return Text(line, style="red" if self._num_failed else "")


def _median_text(values: list[float]) -> str:
    return f"{statistics.median(values):.1f}" if values else "-"


def final_table(summaries: list[dict[str, Any]]) -> Table:
    """Per workload x mode x qps, averaged over runs: turn-1 and turn-2+ TTFT p50, E2E mean, success."""
    points: dict[tuple[str, str, float], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for summary in summaries:
        values = points[(summary["workload"], summary["mode"], summary["qps"])]
        group = summary["turn_group"]
        _add(values, f"ttft_p50_{group}", summary["ttft_ms"]["p50"])
        if group == "all":
            _add(values, "e2e_mean", summary["e2e_ms"]["mean"])
            _add(values, "success", summary["success_rate"])
            values["runs"].append(1.0)
    table = Table(title="ppd bench (mean over runs)", header_style="bold", box=box.SIMPLE_HEAD)
    columns = ("workload", "mode", "qps", "runs", "TTFT p50 t1 ms", "TTFT p50 t2+ ms", "E2E mean ms", "ok")
    for column in columns:
        table.add_column(column, justify="left" if column in ("workload", "mode") else "right", no_wrap=True)
    for (workload, mode, qps), values in points.items():
        table.add_row(
            workload,
            mode or "-",
            f"{qps:g}",
            str(len(values["runs"])),
            _mean_text(values["ttft_p50_1"]),
            _mean_text(values["ttft_p50_2+"]),
            _mean_text(values["e2e_mean"]),
            _mean_text(values["success"], "{:.1%}"),
        )
    return table


def _add(values: dict[str, list[float]], key: str, value: float | None) -> None:
    if value is not None:
        values[key].append(value)


def _mean_text(values: list[float], fmt: str = "{:.1f}") -> str:
    return fmt.format(sum(values) / len(values)) if values else "-"
