"""The engine instances the router knows: roles, health, live load counters and failure streaks.

One `Instance` per address, whatever its roles: an instance that is both a decode instance and (in
replication mode) a replica has one set of load counters, because it is one engine. Plain objects:
the HTTP proxy's health checker and the fleet's virtual engines both update them; the routing rules
(policies.py) read them through the `policies.Instance` protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ppd.modes import Role
from ppd.router.policies import Candidates

# Consecutive failed requests (timeouts, 5xx, broken streams) that take an instance out of service
# even while its /health passes: a stalled engine would otherwise cost every turn a timeout.
EJECT_AFTER_FAILURES = 3


@dataclass(eq=False)
class Instance:
    """One engine instance and what the router knows about it now. Times: seconds, router clock."""

    url: str  # its address (the fleet uses any unique name)
    roles: list[Role] = field(default_factory=list)
    healthy: bool = True  # optimistic until the first check says otherwise
    outstanding_requests: int = 0  # requests sent and not yet finished
    outstanding_prefill_tokens: int = 0  # prompt tokens sent whose prefill has not answered yet
    outstanding_prefill_requests: int = 0  # requests sent whose prefill has not answered yet
    version: str | None = None  # from its GET /version
    health_failure_streak: int = 0  # failed health checks in a row
    next_check_s: float = 0.0  # when its next health check is due
    last_error: str | None = None
    num_requests: int = 0  # sent since start (or the last /metrics/clear)
    num_failures: int = 0  # failures it was blamed for (failover.classify)
    request_failure_streak: int = 0  # blamed failures since its last success
    ejected_until_s: float = 0.0  # health checks cannot return it to service before this

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
            "consecutive_health_failures": self.health_failure_streak,
            "consecutive_request_failures": self.request_failure_streak,
            "last_error": self.last_error,
        }


class InstancePool:
    """Every configured instance, by role, in configuration order."""

    def __init__(
        self, prefill_urls: Sequence[str], decode_urls: Sequence[str], replica_urls: Sequence[str]
    ) -> None:
        self.by_url: dict[str, Instance] = {}
        self.prefills = [self._add(url, "prefill") for url in prefill_urls]
        self.decodes = [self._add(url, "decode") for url in decode_urls]
        self.replicas = [self._add(url, "replica") for url in replica_urls]
        self.candidates = Candidates(self.prefills, self.decodes, self.replicas)

    def _add(self, url: str, role: Role) -> Instance:
        instance = self.by_url.setdefault(url, Instance(url))
        if role not in instance.roles:
            instance.roles.append(role)
        return instance

    @property
    def has_prefill_and_decode(self) -> bool:
        """Whether pd and ppd can route here."""
        return bool(self.prefills) and bool(self.decodes)

    def status(self) -> list[dict[str, Any]]:
        """The /status list of instances."""
        return [instance.status() for instance in self.by_url.values()]

    def mark_unreachable(self, instance: Instance, error: str, now_s: float, retry_in_s: float) -> None:
        """A request could not reach it: out of service until a health check passes."""
        instance.healthy = False
        instance.last_error = error
        instance.next_check_s = min(instance.next_check_s, now_s + retry_in_s)

    def note_request_failure(
        self, instance: Instance, error: str, unreachable: bool, now_s: float, interval_s: float,
        max_backoff_s: float,
    ) -> None:  # fmt: skip
        """A forward failed: out of service at once when unreachable, or after repeated failures.

        Repeated failures hold the instance out for a backoff that doubles with each further failure,
        so a stalled engine whose /health still passes is tried again only now and then.
        """
        instance.num_failures += 1
        instance.request_failure_streak += 1
        instance.last_error = error
        excess = instance.request_failure_streak - EJECT_AFTER_FAILURES
        if excess >= 0:
            hold_s = next_check_delay_s(excess, interval_s, max_backoff_s)
            instance.ejected_until_s = now_s + hold_s
            self.mark_unreachable(instance, error, now_s, hold_s)
        elif unreachable:
            self.mark_unreachable(instance, error, now_s, interval_s)

    def note_request_success(self, instance: Instance) -> None:
        """A forward completed: its failure streak is over."""
        instance.request_failure_streak = 0

    def clear_counters(self) -> None:
        """Zero the cumulative counters (live load counters are left alone)."""
        for instance in self.by_url.values():
            instance.num_requests = 0
            instance.num_failures = 0


def next_check_delay_s(consecutive_failures: int, interval_s: float, max_backoff_s: float) -> float:
    """Seconds to the next health check: the interval, doubled per consecutive failure, capped."""
    if consecutive_failures <= 0:
        return interval_s
    return min(max_backoff_s, interval_s * 2.0 ** min(consecutive_failures, 30))
