"""The upstream instances: their roles, health and live load, and the background health checker.

One `Upstream` per URL, whatever its roles: an instance that is both a decode instance and (in
replication mode) a replica has one set of load counters, because it is one engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from ppd.proxy.config import ROLE_DECODE, ROLE_PREFILL, ROLE_REPLICA, ProxyConfig
from ppd.proxy.policies import Candidates

# Consecutive failed requests (timeouts, 5xx, broken streams) that take an instance out of service
# even while its /health passes: a stalled engine would otherwise cost every turn a timeout.
EJECT_AFTER_FAILURES = 3


@dataclass(eq=False)
class Upstream:
    """One engine instance and what the proxy knows about it now."""

    url: str
    roles: list[str] = field(default_factory=list)
    healthy: bool = True  # optimistic until the first check says otherwise
    outstanding_requests: int = 0  # requests sent and not yet finished
    outstanding_prefill_tokens: int = 0  # prompt tokens sent whose prefill has not answered yet
    outstanding_prefill_requests: int = 0  # requests sent whose prefill has not answered yet
    version: str | None = None  # from its GET /version
    consecutive_failures: int = 0
    next_check_s: float = 0.0  # monotonic time of the next health check
    last_error: str | None = None
    num_requests: int = 0  # sent since start (or the last /metrics/clear)
    num_failures: int = 0  # connection failures, timeouts and 5xx answers
    consecutive_request_failures: int = 0  # failed requests since its last success
    ejected_until_s: float = 0.0  # monotonic: health checks cannot return it to service before this

    def begin(self, num_prefill_tokens: int) -> None:
        """A request was sent that will prefill `num_prefill_tokens` here."""
        self.outstanding_requests += 1
        self.outstanding_prefill_tokens += num_prefill_tokens
        self.outstanding_prefill_requests += 1
        self.num_requests += 1

    def prefill_done(self, num_prefill_tokens: int) -> None:
        """The first byte of the answer arrived: its prefill is over."""
        self.outstanding_prefill_tokens -= num_prefill_tokens
        self.outstanding_prefill_requests -= 1

    @property
    def running_decodes(self) -> int:
        """Requests past their prefill and not finished: what it is generating for (auto mode)."""
        return self.outstanding_requests - self.outstanding_prefill_requests

    def end(self) -> None:
        """The request finished, failed or was cancelled."""
        self.outstanding_requests -= 1

    def status(self) -> dict[str, Any]:
        """The /status entry of this instance."""
        return {
            "url": self.url,
            "roles": list(self.roles),
            "healthy": self.healthy,
            "outstanding_requests": self.outstanding_requests,
            "outstanding_prefill_tokens": self.outstanding_prefill_tokens,
            "running_decodes": self.running_decodes,
            "version": self.version,
            "num_requests": self.num_requests,
            "num_failures": self.num_failures,
            "consecutive_health_failures": self.consecutive_failures,
            "consecutive_request_failures": self.consecutive_request_failures,
            "last_error": self.last_error,
        }


class UpstreamPool:
    """Every configured instance, by role, in configuration order."""

    def __init__(self, config: ProxyConfig) -> None:
        self.by_url: dict[str, Upstream] = {}
        self.prefills = [self._add(url, ROLE_PREFILL) for url in config.prefill_urls]
        self.decodes = [self._add(url, ROLE_DECODE) for url in config.decode_urls]
        self.replicas = [self._add(url, ROLE_REPLICA) for url in config.effective_replica_urls]
        self.candidates = Candidates(self.prefills, self.decodes, self.replicas)

    def _add(self, url: str, role: str) -> Upstream:
        upstream = self.by_url.setdefault(url, Upstream(url))
        if role not in upstream.roles:
            upstream.roles.append(role)
        return upstream

    def status(self) -> list[dict[str, Any]]:
        """The /status list of instances."""
        return [upstream.status() for upstream in self.by_url.values()]

    def mark_unreachable(self, upstream: Upstream, error: str, now_s: float, retry_in_s: float) -> None:
        """A request could not reach it: out of service until a health check passes."""
        upstream.healthy = False
        upstream.last_error = error
        upstream.next_check_s = min(upstream.next_check_s, now_s + retry_in_s)

    def note_request_failure(
        self, upstream: Upstream, error: str, unreachable: bool, now_s: float, interval_s: float,
        max_backoff_s: float,
    ) -> None:  # fmt: skip
        """A forward failed: out of service at once when unreachable, or after repeated failures.

        Repeated failures hold the instance out for a backoff that doubles with each further failure,
        so a stalled engine whose /health still passes is tried again only now and then.
        """
        upstream.num_failures += 1
        upstream.consecutive_request_failures += 1
        upstream.last_error = error
        excess = upstream.consecutive_request_failures - EJECT_AFTER_FAILURES
        if excess >= 0:
            hold_s = next_check_delay_s(excess, interval_s, max_backoff_s)
            upstream.ejected_until_s = now_s + hold_s
            self.mark_unreachable(upstream, error, now_s, hold_s)
        elif unreachable:
            self.mark_unreachable(upstream, error, now_s, interval_s)

    def note_request_success(self, upstream: Upstream) -> None:
        """A forward completed: its failure streak is over."""
        upstream.consecutive_request_failures = 0

    def clear_counters(self) -> None:
        """Zero the cumulative counters (live load counters are left alone)."""
        for upstream in self.by_url.values():
            upstream.num_requests = 0
            upstream.num_failures = 0


def next_check_delay_s(consecutive_failures: int, interval_s: float, max_backoff_s: float) -> float:
    """Seconds to the next health check: the interval, doubled per consecutive failure, capped."""
    if consecutive_failures <= 0:
        return interval_s
    return min(max_backoff_s, interval_s * 2.0 ** min(consecutive_failures, 30))


class HealthChecker:
    """Polls GET /health of each instance, with exponential backoff while it fails."""

    def __init__(
        self,
        pool: UpstreamPool,
        session: aiohttp.ClientSession,
        config: ProxyConfig,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = pool
        self._session = session
        self._interval_s = config.health_interval_s
        self._max_backoff_s = config.health_max_backoff_s
        self._timeout = aiohttp.ClientTimeout(total=config.health_timeout_s)
        self._clock = clock

    async def run_forever(self) -> None:
        """Check every due instance, sleep a little, repeat; cancel to stop."""
        tick_s = min(self._interval_s, 0.5)
        while True:
            now = self._clock()
            due = [u for u in self._pool.by_url.values() if u.next_check_s <= now]
            if due:
                await asyncio.gather(*(self.check(upstream) for upstream in due))
            await asyncio.sleep(tick_s)

    async def check(self, upstream: Upstream) -> bool:
        """One health check; updates the instance and returns whether it is healthy."""
        error = await self._probe(upstream.url + "/health")
        if error is None:
            if upstream.version is None:
                upstream.version = await self._fetch_version(upstream.url)
            upstream.healthy = self._clock() >= upstream.ejected_until_s
            upstream.consecutive_failures = 0
        else:
            upstream.healthy = False
            upstream.consecutive_failures += 1
            upstream.last_error = error
        delay_s = next_check_delay_s(upstream.consecutive_failures, self._interval_s, self._max_backoff_s)
        upstream.next_check_s = self._clock() + delay_s
        return upstream.healthy

    async def _probe(self, url: str) -> str | None:
        try:
            async with self._session.get(url, timeout=self._timeout) as response:
                await response.read()
                return None if response.status == 200 else f"GET /health answered {response.status}"
        except (TimeoutError, aiohttp.ClientError) as exc:
            return f"GET /health failed: {type(exc).__name__}: {exc}"

    async def _fetch_version(self, url: str) -> str | None:
        with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            async with self._session.get(url + "/version", timeout=self._timeout) as response:
                if response.status == 200:
                    payload = json.loads(await response.read())
                    if isinstance(payload, dict) and payload.get("version") is not None:
                        return str(payload["version"])
        return None
