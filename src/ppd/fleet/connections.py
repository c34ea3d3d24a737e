"""Kept-alive HTTP connections: whether a request finds an idle one in its client's pool.

Over HTTP every hop is an aiohttp client with a connection pool: the bench's one session to the
proxy (kept for all the runs of one `ppd bench`), and the proxy's to each engine (kept for the
proxy's life). A request takes the idle connection released longest ago that is still within the
pool's keep-alive time (aiohttp 3.14's TCPConnector._get: oldest first, older ones closed) and
otherwise opens a new one first, which costs a connection set-up (HopCosts.client_connect_ms and
proxy_connect_ms; the other hop costs are those of a request on a pooled connection, as
benchmarks/fleet_hops.py measures them). A connection goes back to the pool when its response has
been read to the end; a stream cut off (the drain timeout) closes its connection, at the client and,
as the proxy then aborts the upstream request, at the proxy.

A run's pools start as the previous run of the same client left them (IdleConnections), aged by the
pause between the two runs, or empty. The bench's pool holds at least one idle connection at a run's
start: `ppd bench` sends its admin requests (prepare_mode: the mode, then clearing the
conversations) on its session right before every run (ConnectionPool.exchange). The proxy's pools
have its health checks: `ppd proxy` asks every engine's GET /health on the same client session as the
turns, all engines at once, every health_interval_s (proxy/upstreams.HealthChecker), so a check
finding every connection to an engine busy opens one, which then lies idle for the next turn. The
decision log does not count it (no turn opened it), and neither does the pool's num_opened. The
checks go on between runs: the phase is handed on (IdleConnections.next_health_check_s); a proxy's
first run checks at its start.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from ppd.proxy.config import UPSTREAM_KEEPALIVE_S

CLIENT_KEEPALIVE_S = 15.0  # aiohttp's TCPConnector default, which `ppd bench`'s session keeps
PROXY_KEEPALIVE_S = UPSTREAM_KEEPALIVE_S  # `ppd proxy`'s connector to the engines
BENCH_ADMIN_REQUESTS = 2  # prepare_mode (bench/server_info.py) before every run: /mode, /conversations/clear
# Between two runs of one `ppd bench` (the last run's end -> the next run's start: its summaries, the
# admin requests, the next run's plan): 24-87 ms, median 37 ms, over the 56 run changes of the host's
# traced grid (results/h200-host-turn-trace/trace, session 8).
BENCH_PAUSE_S = 0.037


@dataclass(frozen=True)
class IdleConnections:
    """Idle kept-alive connections at a run's start: how long each has been idle (s), oldest first;
    the client's, and the proxy's per engine (by the engine's URL)."""

    client_s: tuple[float, ...] = ()
    engines_s: tuple[tuple[str, tuple[float, ...]], ...] = ()
    next_health_check_s: float = 0.0  # the proxy's next health check is due this long after (s)

    def aged(self, pause_s: float) -> IdleConnections:
        """The same connections pause_s later (the pause between two runs); health checks due in the
        pause are made by the next run's pools (ConnectionPool), before anything else."""
        return IdleConnections(
            tuple(age_s + pause_s for age_s in self.client_s),
            tuple((url, tuple(age_s + pause_s for age_s in ages_s)) for url, ages_s in self.engines_s),
            self.next_health_check_s - pause_s,
        )


class ConnectionPool:
    """One client's idle kept-alive connections to one server, as their release times (oldest first);
    with health checks (the proxy's) every check_interval_s from next_check_s on, when given."""

    __slots__ = ("check_interval_s", "connect_s", "idle_s", "keepalive_s", "next_check_s", "num_opened")

    def __init__(
        self,
        connect_s: float,
        keepalive_s: float,
        idle_for_s: tuple[float, ...] = (),
        check_interval_s: float = math.inf,  # inf: no health checks (the bench's pool)
        next_check_s: float = 0.0,
    ) -> None:
        self.connect_s = connect_s  # what opening a connection adds to the request's hop
        self.keepalive_s = keepalive_s
        self.idle_s: deque[float] = deque(-age_s for age_s in idle_for_s)  # released before time 0
        self.num_opened = 0
        if check_interval_s <= 0:
            raise ValueError(f"a health check interval must be > 0 s, got {check_interval_s}")
        self.check_interval_s = check_interval_s
        self.next_check_s = math.inf if check_interval_s == math.inf else next_check_s

    def _check_health(self, now_s: float) -> None:
        """The health checks due by now, each at its own time. Made when the pool is next used: with
        nothing taken or given in between, the pool is as it would have been at each check."""
        while self.next_check_s <= now_s:
            check_s = self.next_check_s
            self.next_check_s += self.check_interval_s
            self.exchange(check_s)

    def take(self, now_s: float) -> float:
        """A request leaves now: the extra time it spends opening a connection (0 if one was idle)."""
        if now_s >= self.next_check_s:
            self._check_health(now_s)
        idle_s = self.idle_s
        while idle_s:
            if now_s - idle_s.popleft() <= self.keepalive_s:
                return 0.0
        self.num_opened += 1
        return self.connect_s

    def exchange(self, now_s: float, num_requests: int = 1) -> None:
        """num_requests short requests now, one after another, each answered at once (the bench's
        admin requests before a run, the proxy's health check): each takes the oldest idle
        connection (or opens one) and gives it back, so at least one is idle after. Not counted in
        num_opened: the bench counts the connections a run opens, and its admin requests come before
        it; the proxy's decision log counts those its turns open."""
        num_opened = self.num_opened
        for _ in range(num_requests):
            self.take(now_s)
            self.give(now_s)
        self.num_opened = num_opened

    def give(self, now_s: float) -> None:
        """A response was read to its end now: its connection is idle again."""
        if now_s >= self.next_check_s:
            self._check_health(now_s)
        self.idle_s.append(now_s)

    def idle_for_s(self, now_s: float) -> tuple[float, ...]:
        """How long each idle connection within its keep-alive has been idle at now_s, oldest first
        (after the health checks due by then)."""
        if now_s >= self.next_check_s:
            self._check_health(now_s)
        return tuple(now_s - s for s in self.idle_s if now_s - s <= self.keepalive_s)
