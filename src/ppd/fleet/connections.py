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
pause between the two runs, or empty; and at its start each pool holds at least one idle connection,
as over HTTP: `ppd bench` sends its admin requests (prepare_mode: the mode, then clearing the
conversations) on its session right before every run, and `ppd proxy` health-checks every engine on
its own session every 2 s (ConnectionPool.exchange).
"""

from __future__ import annotations

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

    def aged(self, pause_s: float) -> IdleConnections:
        """The same connections pause_s later (the pause between two runs)."""
        return IdleConnections(
            tuple(age_s + pause_s for age_s in self.client_s),
            tuple((url, tuple(age_s + pause_s for age_s in ages_s)) for url, ages_s in self.engines_s),
        )


class ConnectionPool:
    """One client's idle kept-alive connections to one server, as their release times (oldest first)."""

    __slots__ = ("connect_s", "idle_s", "keepalive_s", "num_opened")

    def __init__(self, connect_s: float, keepalive_s: float, idle_for_s: tuple[float, ...] = ()) -> None:
        self.connect_s = connect_s  # what opening a connection adds to the request's hop
        self.keepalive_s = keepalive_s
        self.idle_s: deque[float] = deque(-age_s for age_s in idle_for_s)  # released before time 0
        self.num_opened = 0

    def take(self, now_s: float) -> float:
        """A request leaves now: the extra time it spends opening a connection (0 if one was idle)."""
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
        num_opened: the bench counts the connections a run opens, and these come before it."""
        num_opened = self.num_opened
        for _ in range(num_requests):
            self.take(now_s)
            self.give(now_s)
        self.num_opened = num_opened

    def give(self, now_s: float) -> None:
        """A response was read to its end now: its connection is idle again."""
        self.idle_s.append(now_s)

    def idle_for_s(self, now_s: float) -> tuple[float, ...]:
        """How long each idle connection within its keep-alive has been idle at now_s, oldest first."""
        return tuple(now_s - s for s in self.idle_s if now_s - s <= self.keepalive_s)
