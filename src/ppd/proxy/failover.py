"""Where a turn goes when its route cannot be carried out, as pure functions of explicit state.

    no healthy P          D alone: the D holding the history (its prefix cache), else the least
                          loaded D, prefills the turn locally (route `pd-fallback`)
    P failed or timed out the D already chosen prefills the turn locally (route `pd-fallback`)
    P answered 4xx        the same: P judged its one-token rewrite, D judges the client's request
    target unreachable    before any byte reached the client: the turn is routed once more without
    or answered 5xx       it (out of service when unreachable; a 5xx counts toward its failure streak),
                          through P again when the route has a P: the failed target may have pulled
                          (and so released) the KV P prepared

Each kind is counted (metrics, /status) so a fallback never hides: a turn served on D alone is
slower than PD or PPD and would skew a measurement.
"""

from __future__ import annotations

from ppd.proxy.policies import (
    Candidates,
    NoHealthyUpstream,
    Route,
    RouteOptions,
    Turn,
    choose_route,
    healthy_holder,
    least_loaded_decode,
)

ROUTE_PD_FALLBACK = "pd-fallback"

FAILOVER_NO_PREFILL = "no_prefill"  # no healthy P: D alone
FAILOVER_PREFILL_FAILED = "prefill_failed"  # P errored or timed out: D alone
FAILOVER_PREFILL_REFUSED = "prefill_refused"  # P answered 4xx to its rewrite: D judges the client's
FAILOVER_RETRIED = "retried"  # the target could not be reached: routed once more elsewhere
FAILOVER_KINDS = (FAILOVER_NO_PREFILL, FAILOVER_PREFILL_FAILED, FAILOVER_PREFILL_REFUSED, FAILOVER_RETRIED)


def decode_only_route(turn: Turn, candidates: Candidates, options: RouteOptions, why: str) -> Route:
    """D alone: the healthy D holding the history, else the least loaded healthy D."""
    holder = healthy_holder(turn, candidates.decodes)
    decode = holder if holder is not None else least_loaded_decode(candidates.decodes, options.rotation)
    return Route(ROUTE_PD_FALLBACK, decode.url, None, why)


def route_with_failover(
    mode: str, turn: Turn, candidates: Candidates, options: RouteOptions
) -> tuple[Route, str | None]:
    """The mode's route, or D alone when it needs a P and none is healthy; and the failover kind."""
    try:
        return choose_route(mode, turn, candidates, options), None
    except NoHealthyUpstream as exc:
        if exc.role != "prefill" or not candidates.decodes:
            raise
    why = "no healthy prefill, decode prefills locally"
    return decode_only_route(turn, candidates, options, why), FAILOVER_NO_PREFILL


def prefill_failed_route(route: Route, error: str) -> Route:
    """The route after its P hop failed: the chosen target prefills the turn itself."""
    why = f"prefill failed ({error}), decode prefills locally"
    return Route(ROUTE_PD_FALLBACK, route.target_url, None, why)


def without_instance(candidates: Candidates, url: str) -> Candidates:
    """The candidates less the instance at `url`, in every role."""
    return Candidates(
        [i for i in candidates.prefills if i.url != url],
        [i for i in candidates.decodes if i.url != url],
        [i for i in candidates.replicas if i.url != url],
    )


def retry_route(mode: str, turn: Turn, candidates: Candidates, options: RouteOptions, failed: Route) -> Route:
    """The route of a turn whose target `failed.target_url` failed; `candidates` no longer hold it."""
    route, _ = route_with_failover(mode, turn, candidates, options)
    why = f"retry: {failed.target_url} failed; {route.reason}"
    return Route(route.kind, route.target_url, route.prefill_url, why)
