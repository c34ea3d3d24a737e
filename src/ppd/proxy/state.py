"""The proxy's live state, one per app: the router core, telemetry and the HTTP client.

Routing state (mode, instances and their load, conversations, estimates) is the router core's
(ppd.router); this adds what only the HTTP shell has: the client session and its timeouts, the
Prometheus metrics and the decision log.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from ppd.modes import ROUTE_KINDS, Mode
from ppd.proxy.body import BodyLimits
from ppd.proxy.config import ProxyConfig
from ppd.proxy.metrics import DecisionLog, ProxyMetrics
from ppd.ratelog import RateLimitedLog
from ppd.router.conversations import ConversationStore
from ppd.router.core import Router
from ppd.router.estimates import Estimates
from ppd.router.failover import FAILOVER_KINDS
from ppd.router.instances import InstancePool
from ppd.router.records import TurnRecord
from ppd.turn_trace import TurnTrace

KV_RELEASE_OUTCOMES = ("released", "failed")


@dataclass
class ProxyState:
    """Everything a handler reads or updates. `session` exists while the app runs."""

    config: ProxyConfig
    router: Router
    metrics: ProxyMetrics = field(default_factory=ProxyMetrics)
    decision_log: DecisionLog = field(default_factory=lambda: DecisionLog(None))
    client_session: aiohttp.ClientSession | None = None
    upstream_timeout: aiohttp.ClientTimeout = field(default_factory=aiohttp.ClientTimeout)
    prefill_timeout: aiohttp.ClientTimeout = field(default_factory=aiohttp.ClientTimeout)
    background: set[asyncio.Task[None]] = field(default_factory=set)  # cancelled when the app stops
    rejections: RateLimitedLog = field(default_factory=RateLimitedLog)  # one line per rejected request
    turn_trace: TurnTrace | None = None  # per-request stamps (PPD_TURN_TRACE), None unless asked for

    @classmethod
    def from_config(cls, config: ProxyConfig) -> ProxyState:
        """Fresh state for a config (no HTTP client yet: the app's startup makes it)."""
        return cls(
            config=config,
            router=Router(config.router_config()),
            upstream_timeout=upstream_timeout(config),
            prefill_timeout=prefill_timeout(config),
        )

    @property
    def body_limits(self) -> BodyLimits:
        """What a client's request body may be."""
        config = self.config
        return BodyLimits(config.max_body_bytes, config.body_timeout_s, config.max_json_elements)

    @property
    def session(self) -> aiohttp.ClientSession:
        """The shared HTTP client; only while the app runs."""
        if self.client_session is None:
            raise RuntimeError("the proxy's HTTP client exists only while the app runs")
        return self.client_session

    @property
    def mode(self) -> Mode:
        """The routing mode now."""
        return self.router.mode

    @property
    def pool(self) -> InstancePool:
        """The instances, their health and load."""
        return self.router.pool

    @property
    def conversations(self) -> ConversationStore:
        """Who holds what."""
        return self.router.conversations

    @property
    def estimates(self) -> Estimates:
        """Auto mode's running estimates (learnt in every mode)."""
        return self.router.estimates

    def spawn(self, work: Coroutine[Any, Any, None], what: str) -> None:
        """Run `work` in the background (no client waits for it); the app's stop cancels it."""
        task = asyncio.get_running_loop().create_task(work, name=what)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def cancel_background(self) -> None:
        """Cancel and await every background task (the app is stopping)."""
        tasks = list(self.background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def note_rejection(self, request: web.BaseRequest, status: int, message: str) -> None:
        """Log one line for a request the proxy refused itself (rate-limited)."""
        peer = request.remote or "?"
        self.rejections.line(
            f"ppd proxy: rejected {status} {request.method} {request.path} from {peer}: {message}"
        )

    def record_turn(self, record: TurnRecord, path: str, connections_opened: int | None = None) -> None:
        """A request ended: teach the estimates, count it in the metrics and the decision log (with
        the connections to engines its requests opened, when counted)."""
        self.router.learn(record)
        route = record.route.kind if record.route is not None else "none"
        metrics = self.metrics
        metrics.requests[(route, record.status)] += 1
        if record.route is None:
            return
        metrics.routes[route] += 1
        if record.client_disconnected:
            metrics.disconnects[route] += 1
        for kind in record.failovers:
            metrics.failovers[kind] += 1
        if record.route.decision is not None:
            metrics.auto_decisions[record.route.decision] += 1
        if record.history_check is not None:
            metrics.count_history_check(route, record.history_check)
        if record.recognition is not None and record.recognition.by is not None:
            metrics.recognised[record.recognition.by] += 1
        if record.first_byte_s is not None:
            metrics.observe(route, "ttft_s", record.first_byte_s - record.started_s)
        if record.prefill_ms is not None:
            metrics.observe(route, "prefill_s", record.prefill_ms / 1000.0)
        if record.finished_s is not None:
            metrics.observe(route, "duration_s", record.finished_s - record.started_s)
        if self.decision_log.enabled:
            self.decision_log.write(decision_line(self.mode, record, path, connections_opened))

    def status(self) -> dict[str, Any]:
        """GET /status: the topology and live state; `ppd bench` stores it with every result."""
        # Every mode's route kind, and others (pd-fallback) once they happened.
        routes = {kind: self.metrics.routes.get(kind, 0) for kind in ROUTE_KINDS} | dict(self.metrics.routes)
        statuses: dict[str, int] = {}
        for (_, status), count in self.metrics.requests.items():
            statuses[str(status)] = statuses.get(str(status), 0) + count
        return {
            "mode": self.mode,
            "options": options_status(self.config),
            "upstreams": self.pool.status(),
            "prefill": list(self.config.prefill_urls),
            "decode": list(self.config.decode_urls),
            "replica": list(self.config.effective_replica_urls),
            "replicas_are_pd_instances": not self.config.replica_urls,
            "conversations": len(self.conversations),
            # Later turns by how their conversation was found: session id, whole history, chunks.
            "recognised": {by: self.metrics.recognised.get(by, 0) for by in ("session", "history", "chunks")},
            "routes": routes,
            "responses_by_status": statuses,
            "client_disconnects": sum(self.metrics.disconnects.values()),
            "failovers": {kind: self.metrics.failovers.get(kind, 0) for kind in FAILOVER_KINDS},
            "auto": {"decisions": dict(self.metrics.auto_decisions), "estimates": self.estimates.status()},
            "kv_releases": {o: self.metrics.kv_releases.get(o, 0) for o in KV_RELEASE_OUTCOMES},
            # Did the history's holder still have it (router/holding.py): counted since the last
            # metrics reset, and what the router has learnt (kept, like the estimates).
            "history": self.metrics.history_status() | {"learnt": self.router.holding.status()},
        }


def upstream_timeout(config: ProxyConfig) -> aiohttp.ClientTimeout:
    """Connect timeout, and the longest wait for the first byte or between two chunks."""
    return aiohttp.ClientTimeout(
        total=None, sock_connect=config.connect_timeout_s, sock_read=config.first_byte_timeout_s
    )


def prefill_timeout(config: ProxyConfig) -> aiohttp.ClientTimeout:
    """Connect timeout, and the longest wait for P's answer before D prefills the turn itself."""
    return aiohttp.ClientTimeout(
        total=None, sock_connect=config.connect_timeout_s, sock_read=config.prefill_timeout_s
    )


def options_status(config: ProxyConfig) -> dict[str, Any]:
    """The options in force, as /status shows them."""
    return {
        "pd_decode_affinity": config.pd_decode_affinity,
        "max_conversations": config.max_conversations,
        "conversation_idle_ttl_s": config.conversation_idle_ttl_s,
        "history_chunk_bytes": config.history_chunk_bytes,
        "history_chunks_per_instance": config.history_chunks_per_instance,
        "history_keyed_bytes": config.history_keyed_bytes,
        "connect_timeout_s": config.connect_timeout_s,
        "first_byte_timeout_s": config.first_byte_timeout_s,
        "prefill_timeout_s": config.prefill_timeout_s,
        "max_body_bytes": config.max_body_bytes,
        "body_timeout_s": config.body_timeout_s,
        "max_json_elements": config.max_json_elements,
        "header_timeout_s": config.header_timeout_s,
        "idle_timeout_s": config.idle_timeout_s,
        "max_connections": config.max_connections,
        "max_connections_per_client": config.max_connections_per_client,
        "protect_status": config.protect_status,
        "upstream_header": config.upstream_header,
        "health_interval_s": config.health_interval_s,
        "health_timeout_s": config.health_timeout_s,
        "health_max_backoff_s": config.health_max_backoff_s,
        "admin_token_required": config.admin_token is not None,
        "decision_log": config.decision_log_path,
        "slo_ttft_ms": config.slo_ttft_ms,
        "slo_tpot_ms": config.slo_tpot_ms,
        **config.extra_status,
    }


def decision_line(
    mode: Mode, record: TurnRecord, path: str, connections_opened: int | None = None
) -> dict[str, Any]:
    """One decision-log record: the decision, its inputs and how the request went (ms), and the
    TCP connections to engines its requests opened."""
    route, turn = record.route, record.turn
    return {
        "time_unix_s": round(time.time(), 6),
        "mode": mode,
        "path": path,
        "conversation": record.conversation_key,
        "turn": turn.number if turn else None,
        "holder": turn.holder_url if turn else None,
        "num_prompt_tokens": turn.num_prompt_tokens if turn else None,
        "num_history_tokens": turn.num_history_tokens if turn else None,
        "route": route.kind if route else None,
        "prefill": route.prefill_url if route else None,
        "upstream": route.target_url if route else None,
        "reason": route.reason if route else None,
        "decision": route.decision if route else None,
        "failovers": record.failovers,
        "status": record.status,
        "error": record.error,
        "client_disconnected": record.client_disconnected,
        "prefill_ms": _round(record.prefill_ms),
        "ttft_ms": _ms(record.first_byte_s, record.started_s),
        "duration_ms": _ms(record.finished_s, record.started_s),
        "connections_opened": connections_opened,
    }


def _ms(stamp_s: float | None, started_s: float) -> float | None:
    return None if stamp_s is None else round((stamp_s - started_s) * 1000.0, 3)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


STATE = web.AppKey("ppd_proxy_state", ProxyState)
