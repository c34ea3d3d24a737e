"""The proxy's own telemetry: counters and histograms by route, as Prometheus text, and a JSONL log.

Histograms observe seconds (Prometheus convention). One `ProxyMetrics` per app; /metrics/clear
replaces its contents.
"""

from __future__ import annotations

import bisect
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import IO, Any

from ppd.router.holding import HistoryCheck

# Bucket upper bounds (s): from sub-millisecond relay overheads up to long generations.
LATENCY_BUCKETS_S = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
)


@dataclass
class Histogram:
    """A cumulative-bucket histogram of seconds."""

    bounds_s: tuple[float, ...] = LATENCY_BUCKETS_S
    counts: list[int] = field(default_factory=list)
    total_s: float = 0.0
    num_observations: int = 0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds_s) + 1)  # the last is +Inf

    def observe(self, value_s: float) -> None:
        """Count one observation (s)."""
        self.counts[bisect.bisect_left(self.bounds_s, value_s)] += 1
        self.total_s += value_s
        self.num_observations += 1

    def lines(self, name: str, labels: str) -> Iterable[str]:
        """Prometheus exposition lines of this histogram."""
        cumulative = 0
        for bound, count in zip((*self.bounds_s, float("inf")), self.counts, strict=True):
            cumulative += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            yield f'{name}_bucket{{{labels},le="{le}"}} {cumulative}'
        yield f"{name}_sum{{{labels}}} {self.total_s}"
        yield f"{name}_count{{{labels}}} {self.num_observations}"


@dataclass
class ProxyMetrics:
    """Counters and histograms by route (pd | ppd-direct | replica)."""

    requests: Counter[tuple[str, int]] = field(default_factory=Counter)  # (route, http status)
    routes: Counter[str] = field(default_factory=Counter)  # decisions per route
    disconnects: Counter[str] = field(default_factory=Counter)  # clients gone mid-answer, per route
    failovers: Counter[str] = field(default_factory=Counter)  # turns served another way, per kind
    auto_decisions: Counter[str] = field(default_factory=Counter)  # auto mode: per decision (auto-pd, ...)
    kv_releases: Counter[str] = field(default_factory=Counter)  # P's KV handed back after D refused
    # Turns the history's holder served from its cache (router/holding.py), per route: checked, the
    # history lost (less than half found), and the history tokens expected and missed.
    history: Counter[tuple[str, str]] = field(default_factory=Counter)  # (route, what) -> count
    # Turns routed as a later turn of a known conversation, by how it was found: its session id, its
    # whole history, or its prompt's leading chunks (router/conversations.py).
    recognised: Counter[str] = field(default_factory=Counter)
    # TCP connections opened to each upstream (base URL): a request that found no idle kept-alive one.
    connections_opened: Counter[str] = field(default_factory=Counter)
    ttft_s: dict[str, Histogram] = field(default_factory=dict)  # to the first relayed byte
    prefill_s: dict[str, Histogram] = field(default_factory=dict)  # the P hop
    duration_s: dict[str, Histogram] = field(default_factory=dict)  # whole request

    def observe(self, route: str, kind: str, value_s: float) -> None:
        """Add one observation to histogram `kind` (ttft_s | prefill_s | duration_s) of a route."""
        histograms: dict[str, Histogram] = getattr(self, kind)
        histogram = histograms.get(route)
        if histogram is None:
            histogram = histograms[route] = Histogram()
        histogram.observe(value_s)

    def clear(self) -> None:
        """Zero everything."""
        counters = (self.requests, self.routes, self.disconnects, self.failovers, self.auto_decisions)
        for counter in (*counters, self.kv_releases, self.history, self.recognised, self.connections_opened):
            counter.clear()
        for histograms in (self.ttft_s, self.prefill_s, self.duration_s):
            histograms.clear()

    def render(self, mode: str, upstreams: list[dict[str, Any]], num_conversations: int) -> str:
        """Everything in the Prometheus text format."""
        lines = [
            "# TYPE ppd_proxy_requests_total counter",
            *(
                f'ppd_proxy_requests_total{{route="{route}",status="{status}"}} {count}'
                for (route, status), count in sorted(self.requests.items())
            ),
            "# TYPE ppd_proxy_route_decisions_total counter",
            *(f'ppd_proxy_route_decisions_total{{route="{r}"}} {n}' for r, n in sorted(self.routes.items())),
            "# TYPE ppd_proxy_client_disconnects_total counter",
            *(
                f'ppd_proxy_client_disconnects_total{{route="{r}"}} {n}'
                for r, n in sorted(self.disconnects.items())
            ),
            "# TYPE ppd_proxy_failovers_total counter",
            *(f'ppd_proxy_failovers_total{{kind="{k}"}} {n}' for k, n in sorted(self.failovers.items())),
            "# TYPE ppd_proxy_auto_decisions_total counter",
            *(
                f'ppd_proxy_auto_decisions_total{{decision="{d}"}} {n}'
                for d, n in sorted(self.auto_decisions.items())
            ),
            "# TYPE ppd_proxy_kv_releases_total counter",
            *(
                f'ppd_proxy_kv_releases_total{{outcome="{o}"}} {n}'
                for o, n in sorted(self.kv_releases.items())
            ),
            *self._history_lines(),
            "# TYPE ppd_proxy_conversations_recognised_total counter",
            *(
                f'ppd_proxy_conversations_recognised_total{{by="{by}"}} {n}'
                for by, n in sorted(self.recognised.items())
            ),
            "# TYPE ppd_proxy_upstream_connections_opened_total counter",
            *(
                f'ppd_proxy_upstream_connections_opened_total{{url="{url}"}} {n}'
                for url, n in sorted(self.connections_opened.items())
            ),
        ]
        for kind, histograms in (
            ("ttft_seconds", self.ttft_s),
            ("prefill_seconds", self.prefill_s),
            ("request_duration_seconds", self.duration_s),
        ):
            lines.append(f"# TYPE ppd_proxy_{kind} histogram")
            for route, histogram in sorted(histograms.items()):
                lines.extend(histogram.lines(f"ppd_proxy_{kind}", f'route="{route}"'))
        lines.extend(_gauge_lines(mode, upstreams, num_conversations))
        return "\n".join(lines) + "\n"

    def _history_lines(self) -> list[str]:
        """The history holder's checks: ppd_proxy_history_{checks,lost,tokens,missed_tokens}_total."""
        lines = []
        for what in HISTORY_COUNTERS:
            lines.append(f"# TYPE ppd_proxy_history_{what}_total counter")
            lines += [
                f'ppd_proxy_history_{what}_total{{route="{route}"}} {count}'
                for (route, kind), count in sorted(self.history.items())
                if kind == what
            ]
        return lines

    def count_history_check(self, route: str, check: HistoryCheck) -> None:
        """Count one check of a turn its holder served."""
        self.history[(route, "checks")] += 1
        self.history[(route, "lost")] += check.lost
        self.history[(route, "tokens")] += check.num_history_tokens
        self.history[(route, "missed_tokens")] += check.num_missed_tokens

    def history_status(self) -> dict[str, Any]:
        """For /status: checks, lost histories and their share, the missed share of history tokens."""
        totals = Counter({what: 0 for what in HISTORY_COUNTERS})
        for (_, what), count in self.history.items():
            totals[what] += count
        return {
            "checks": totals["checks"],
            "lost": totals["lost"],
            "lost_share": totals["lost"] / totals["checks"] if totals["checks"] else None,
            "missed_token_share": totals["missed_tokens"] / totals["tokens"] if totals["tokens"] else None,
        }


HISTORY_COUNTERS = ("checks", "lost", "tokens", "missed_tokens")


def _gauge_lines(mode: str, upstreams: list[dict[str, Any]], num_conversations: int) -> list[str]:
    lines = ["# TYPE ppd_proxy_mode gauge", f'ppd_proxy_mode{{mode="{mode}"}} 1']
    lines += ["# TYPE ppd_proxy_conversations gauge", f"ppd_proxy_conversations {num_conversations}"]
    for name in ("healthy", "outstanding_requests", "outstanding_prefill_tokens"):
        lines.append(f"# TYPE ppd_proxy_upstream_{name} gauge")
        for upstream in upstreams:
            lines.append(f'ppd_proxy_upstream_{name}{{url="{upstream["url"]}"}} {int(upstream[name])}')
    return lines


class DecisionLog:
    """One JSON line per routed request, appended to a file (or nowhere when path is None)."""

    def __init__(self, path: str | None) -> None:
        self._file: IO[str] | None = open(path, "a", buffering=1, encoding="utf-8") if path else None  # noqa: SIM115

    @property
    def enabled(self) -> bool:
        """Whether records go anywhere (so callers can skip building them)."""
        return self._file is not None

    def write(self, record: dict[str, Any]) -> None:
        """Append one record."""
        if self._file is not None:
            self._file.write(json.dumps(record, separators=(",", ":")) + "\n")

    def close(self) -> None:
        """Flush and close the file."""
        if self._file is not None:
            self._file.close()
            self._file = None
