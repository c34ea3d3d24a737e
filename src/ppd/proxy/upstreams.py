"""The background health checker of the proxy's instances (the router core's `InstancePool`).

The instances themselves, their load counters and failure streaks, are the router core's
(router/instances.py); this module only asks each instance's GET /health over HTTP, with backoff,
and returns an instance to service when it passes (and any hold for repeated failures is over).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable

import aiohttp

from ppd.proxy.config import ProxyConfig
from ppd.router.instances import Instance, InstancePool, next_check_delay_s


class HealthChecker:
    """Polls GET /health of each instance, with exponential backoff while it fails."""

    def __init__(
        self,
        pool: InstancePool,
        session: aiohttp.ClientSession,
        config: ProxyConfig,
        clock: Callable[[], float] = time.perf_counter,  # the router's clock (turns.py)
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

    async def check(self, upstream: Instance) -> bool:
        """One health check; updates the instance and returns whether it is healthy."""
        error = await self._probe(upstream.url + "/health")
        if error is None:
            if upstream.version is None:
                upstream.version = await self._fetch_version(upstream.url)
            upstream.healthy = self._clock() >= upstream.ejected_until_s
            upstream.health_failure_streak = 0
        else:
            upstream.healthy = False
            upstream.health_failure_streak += 1
            upstream.last_error = error
        delay_s = next_check_delay_s(upstream.health_failure_streak, self._interval_s, self._max_backoff_s)
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
