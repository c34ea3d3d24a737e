"""What happened to one turn: the record the router core fills as the turn goes, and what it teaches.

A `TurnRecord` is made when a request arrives and filled in by the router core (decide, begin,
first_byte, finish, commit, learn) and by whoever drives it: the HTTP proxy stamps it with
`time.perf_counter()`, the fleet with its virtual clock. Every stamp is seconds on that one clock.
It becomes the proxy's metrics and decision-log line, the fleet's row, and an observation for the
running estimates (`turn_observation`).

Its `state` is a closed set, so telling a cut-off from a failure never means comparing error text:

    pending     routed (or not yet), nothing final
    completed   the whole answer reached the client
    rejected    refused for the request's own fault (bad input, an engine's 4xx): no engine to blame
    errored     no answer, or a broken one, for a reason on the serving side (5xx, timeout, no
                healthy instance, a stream broken off)
    cancelled   the client went away before the answer was complete
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ppd.router.conversations import Identity, Recognition
from ppd.router.estimates import HopLoad, TurnObservation
from ppd.router.failover import FailoverKind
from ppd.router.holding import HistoryCheck
from ppd.router.policies import Route, Turn

TurnState = Literal["pending", "completed", "rejected", "errored", "cancelled"]
TURN_STATES: tuple[TurnState, ...] = ("pending", "completed", "rejected", "errored", "cancelled")


@dataclass(init=False, slots=True)
class TurnRecord:
    """One turn from arrival to its last byte. Stamps: seconds on the driver's clock; times: ms."""

    started_s: float
    state: TurnState = "pending"
    status: int = 200  # the HTTP status the client got (499: it went away first)
    identity: Identity | None = None
    recognition: Recognition | None = None  # its conversation as found when routed, how, the chunk keys
    conversation_key: str | None = None  # its key once known (after commit for a new one)
    turn: Turn | None = None
    route: Route | None = None
    failovers: list[FailoverKind] = field(default_factory=list)  # in the order they happened
    # Instances that answered this turn 5xx, with their errors: blamed only if another serves it.
    suspects: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None
    # What the running estimates learn from: each hop's load when sent, and the stamps.
    prefill_load: HopLoad | None = None
    prefill_sent_s: float | None = None
    prefill_ms: float | None = None  # P's answer time (the P hop), when the route had a P
    prefill_cached_tokens: int | None = None  # prompt tokens P found in its own prefix cache
    target_load: HopLoad | None = None
    target_sent_s: float | None = None
    first_byte_s: float | None = None  # first content bytes from the target
    last_byte_s: float | None = None  # last bytes of a complete answer
    finished_s: float | None = None
    usage: dict[str, Any] | None = None  # the answer's usage, when it carried one
    history_check: HistoryCheck | None = None  # served by the history's holder: what it still had

    # Written out (init=False): mypyc runs a dataclass's generated __init__ interpreted (docs/fleet.md).
    def __init__(
        self,
        started_s: float,
        state: TurnState = "pending",
        status: int = 200,
        identity: Identity | None = None,
        recognition: Recognition | None = None,
        conversation_key: str | None = None,
        turn: Turn | None = None,
        route: Route | None = None,
        error: str | None = None,
        prefill_load: HopLoad | None = None,
        prefill_sent_s: float | None = None,
        prefill_ms: float | None = None,
        prefill_cached_tokens: int | None = None,
        target_load: HopLoad | None = None,
        target_sent_s: float | None = None,
        first_byte_s: float | None = None,
        last_byte_s: float | None = None,
        finished_s: float | None = None,
        usage: dict[str, Any] | None = None,
        history_check: HistoryCheck | None = None,
    ) -> None:
        self.started_s = started_s
        self.state = state
        self.status = status
        self.identity = identity
        self.recognition = recognition
        self.conversation_key = conversation_key
        self.turn = turn
        self.route = route
        self.failovers = []
        self.suspects = []
        self.error = error
        self.prefill_load = prefill_load
        self.prefill_sent_s = prefill_sent_s
        self.prefill_ms = prefill_ms
        self.prefill_cached_tokens = prefill_cached_tokens
        self.target_load = target_load
        self.target_sent_s = target_sent_s
        self.first_byte_s = first_byte_s
        self.last_byte_s = last_byte_s
        self.finished_s = finished_s
        self.usage = usage
        self.history_check = history_check

    @property
    def client_disconnected(self) -> bool:
        """The client went away before its answer was complete."""
        return self.state == "cancelled"

    def end(self, state: TurnState, status: int, error: str | None = None) -> None:
        """Set how the turn ended: its state, the client's HTTP status and why (None: fine)."""
        self.state, self.status, self.error = state, status, error


def turn_observation(record: TurnRecord) -> TurnObservation | None:
    """What a completed turn's record shows, or None when it is not a clean observation."""
    route, turn = record.route, record.turn
    if route is None or turn is None or record.state != "completed" or record.failovers:
        return None
    return TurnObservation(
        route_kind=route.kind,
        target_url=route.target_url,
        holder_url=turn.holder_url,
        num_prompt_tokens=turn.num_prompt_tokens,
        num_history_tokens=turn.num_history_tokens,
        is_first_turn=turn.number == 1,
        usage=record.usage,
        target_load=record.target_load,
        target_sent_s=record.target_sent_s,
        first_byte_s=record.first_byte_s,
        last_byte_s=record.last_byte_s,
        prefill_load=record.prefill_load,
        prefill_ms=record.prefill_ms,
    )
