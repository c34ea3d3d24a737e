"""The health checker's part in ejection: a passing /health returns an instance only after its hold."""

from __future__ import annotations

import asyncio

from ppd.proxy.config import ProxyConfig
from ppd.proxy.upstreams import HealthChecker
from ppd.router.instances import InstancePool


def pool_of_one() -> InstancePool:
    return InstancePool((), (), ("http://r:1",))


class _Clock:
    now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


class _PassingSession:
    """Stands in for aiohttp.ClientSession: every GET answers 200 {}."""

    def get(self, url: str, timeout: object) -> _Answer:
        return _Answer()


class _Answer:
    status = 200

    async def __aenter__(self) -> _Answer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def read(self) -> bytes:
        return b"{}"


def test_passing_health_check_returns_an_instance_only_after_its_hold() -> None:
    pool, clock = pool_of_one(), _Clock()
    upstream = pool.replicas[0]
    upstream.version = "v"
    config = ProxyConfig("replication", replica_urls=("http://r:1",), health_interval_s=1.0)
    checker = HealthChecker(pool, _PassingSession(), config, clock=clock)  # type: ignore[arg-type]
    upstream.healthy, upstream.ejected_until_s = False, 10.0
    assert asyncio.run(checker.check(upstream)) is False  # /health passes, but the hold is on
    clock.now_s = 10.0
    assert asyncio.run(checker.check(upstream)) is True
