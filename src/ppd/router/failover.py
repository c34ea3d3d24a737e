"""Failures as data: what a failed hop means (`classify`), and where the turn goes next.

`classify(failure, hop)` is the whole failure policy, one pure table: for each kind of failure at
each hop, what the turn does next, whether the instance is blamed for it (its failure streak, which
ejects it after EJECT_AFTER_FAILURES in a row) and whether it goes out of service at once.

    hop      failure           next                            blame    out of service
    prefill  unreachable       decode_alone (prefill_failed)   now      yes
    prefill  no_answer         decode_alone (prefill_failed)   now      no
    prefill  engine_error      decode_alone (prefill_failed)   suspect  no
    prefill  rejected (4xx)    decode_alone (prefill_refused)  never    no
    target   unreachable       retry_elsewhere (retried)       now      yes   nothing reached the
    target   engine_error      retry_elsewhere (retried)       suspect  no    client yet
    target   no_answer         answer_error                    now      no    a stalled engine: a
                                                                              retry would wait again
    target   rejected (4xx)    pass_through                    never    no
    retry    unreachable       answer_error                    now      yes   one retry per turn
    retry    no_answer         answer_error                    now      no
    retry    engine_error      answer_error                    suspect  no
    retry    rejected (4xx)    pass_through                    never    no
    stream   any               break_stream                    now      no    headers were sent:
                                                                              cut the stream
    any      client_gone       give_up                         never    no    the client's doing

unreachable: the connection was refused, reset or lost before an answer; no_answer: it timed out;
engine_error: a 5xx, or an answer P gave that is unusable (200 without kv_transfer_params, not
JSON), which a request can provoke too; rejected: a 4xx.

Blame `suspect` is for a 5xx: a request can provoke one on any engine, so the instance is only a
suspect until another instance has answered the same request. If that one serves it, the suspects
are blamed (the engine was at fault: Router.commit); if it fails too, or there is none to ask, no
engine is (docs/reliability.md, "Failure attribution"). P's 4xx judged P's one-token rewrite of the
request, not what the client sent, so D judges the client's own request (`prefill_refused`).

The routes after a failure, also pure:

    no healthy P          D alone: the D holding the history (its prefix cache), else the least
                          loaded D, prefills the turn locally (route `pd-fallback`)
    P failed or timed out the D already chosen prefills the turn locally (route `pd-fallback`)
    P answered 4xx        the same: P judged its one-token rewrite, D judges the client's request
    target unreachable    before any byte reached the client: the turn is routed once more without
    or answered 5xx       it (out of service when unreachable; a 5xx makes it a suspect, above),
                          through P again when the route has a P: the failed target may have pulled
                          (and so released) the KV P prepared

Each kind is counted (metrics, /status) so a fallback never hides: a turn served on D alone is
slower than PD or PPD and would skew a measurement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from ppd.modes import ROUTE_PD_FALLBACK, Mode
from ppd.router.policies import (
    Candidates,
    NoHealthyUpstream,
    Route,
    RouteOptions,
    Turn,
    choose_route,
    healthy_holder,
    least_loaded_decode,
)

__all__ = ["ROUTE_PD_FALLBACK"]  # re-exported: the failover route kind

FailoverKind = Literal["no_prefill", "prefill_failed", "prefill_refused", "retried"]
FAILOVER_NO_PREFILL: FailoverKind = "no_prefill"  # no healthy P: D alone
FAILOVER_PREFILL_FAILED: FailoverKind = "prefill_failed"  # P errored or timed out: D alone
FAILOVER_PREFILL_REFUSED: FailoverKind = "prefill_refused"  # P answered 4xx to its rewrite: D judges
FAILOVER_RETRIED: FailoverKind = "retried"  # the target failed first: routed once more elsewhere
FAILOVER_KINDS: tuple[FailoverKind, ...] = get_args(FailoverKind)

Hop = Literal["prefill", "target", "retry", "stream"]  # retry: the target hop of the one retry
FailureKind = Literal["unreachable", "no_answer", "engine_error", "rejected", "client_gone"]
FAILURE_KINDS: tuple[FailureKind, ...] = get_args(FailureKind)
Next = Literal["decode_alone", "retry_elsewhere", "answer_error", "pass_through", "break_stream", "give_up"]
Blame = Literal["now", "suspect", "never"]


@dataclass(frozen=True, slots=True)
class FailureAction:
    """What a failure means: what the turn does next, and what the instance is charged with."""

    next: Next
    blame: Blame  # toward its failure streak (and num_failures): now, once another served it, never
    out_of_service: bool  # leaves service now, until a health check passes
    failover: FailoverKind | None = None  # how the turn is then served, when it still is


def classify(failure: FailureKind, hop: Hop) -> FailureAction:
    """The failure policy (the table in the module docstring) for one failure at one hop."""
    if failure == "client_gone":
        return FailureAction("give_up", "never", False)
    unreachable = failure == "unreachable"
    blame: Blame = "suspect" if failure == "engine_error" else "now"
    if hop == "prefill":
        if failure == "rejected":
            return FailureAction("decode_alone", "never", False, FAILOVER_PREFILL_REFUSED)
        return FailureAction("decode_alone", blame, unreachable, FAILOVER_PREFILL_FAILED)
    if failure == "rejected":
        return FailureAction("pass_through", "never", False)
    if hop == "stream":
        return FailureAction("break_stream", "now", False)
    if hop == "target" and failure in ("unreachable", "engine_error"):
        return FailureAction("retry_elsewhere", blame, unreachable, FAILOVER_RETRIED)
    return FailureAction("answer_error", blame, unreachable)


def decode_only_route(turn: Turn, candidates: Candidates, options: RouteOptions, why: str) -> Route:
    """D alone: the healthy D holding the history, else the least loaded healthy D."""
    holder = healthy_holder(turn, candidates.decodes)
    decode = holder if holder is not None else least_loaded_decode(candidates.decodes, options.rotation)
    return Route(ROUTE_PD_FALLBACK, decode.url, None, why)


def route_with_failover(
    mode: Mode, turn: Turn, candidates: Candidates, options: RouteOptions
) -> tuple[Route, FailoverKind | None]:
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


def retry_route(
    mode: Mode, turn: Turn, candidates: Candidates, options: RouteOptions, failed: Route
) -> Route:
    """The route of a turn whose target `failed.target_url` failed; `candidates` no longer hold it."""
    route, _ = route_with_failover(mode, turn, candidates, options)
    why = f"retry: {failed.target_url} failed; {route.reason}"
    return Route(route.kind, route.target_url, route.prefill_url, why)
