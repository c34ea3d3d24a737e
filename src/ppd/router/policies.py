"""Routing rules: where one turn of a conversation goes, as pure functions of explicit state.

Every rule reads only its arguments: the turn (number and which instance holds the conversation's
KV cache), the candidate instances with their health and load, and the mode's options. It returns a
`Route` or raises `NoHealthyUpstream`. Forwarding, health checks and load counting live elsewhere
(the router core and the HTTP shell), so each mode's rule can be read, and unit-tested, on its own.

    pd           P (fewest outstanding prefill tokens) -> NIXL handshake -> D, every turn. With
                 decode affinity, turns 2+ go to the D that holds the history (stock NIXL then pulls
                 only the missing blocks); otherwise to the least loaded D.
    ppd          turn 1 as pd with the least loaded D; turns 2+ straight to the D that holds the
                 history, with no KV transfer. If that D is not a healthy decode instance, P -> D.
    replication  a new conversation -> the least loaded replica; later turns -> the same replica,
                 unless it is unhealthy.
    auto         every turn, by the cost model of auto.py (which documents the formula), one of:
                 direct at the holder, any other replica prefilling the whole prompt, and any
                 P -> D pair; from token counts, live load and the running estimates in
                 RouteOptions.auto. Replication's choice is kept unless another option is expected
                 to be clearly cheaper. The route says which (`decision`: auto-direct |
                 auto-replica | auto-pd) and why (`reason`: the chosen and the runner-up estimates).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from ppd.modes import (
    AUTO_DIRECT,
    AUTO_PD,
    AUTO_REPLICA,
    ROUTE_PD,
    ROUTE_PPD_DIRECT,
    ROUTE_REPLICA,
    Decision,
    Mode,
    Role,
    RouteKind,
)
from ppd.router.auto import (
    DECISION_DIRECT,
    DECISION_PD,
    DECISION_REPLICA,
    AutoInputs,
    Estimate,
    InstanceCosts,
    Option,
    OptionKind,
    choose,
)
from ppd.router.estimates import Estimates


class Instance(Protocol):
    """What a rule may read about one upstream instance (instances.Instance satisfies it)."""

    @property
    def url(self) -> str: ...
    @property
    def healthy(self) -> bool: ...
    @property
    def outstanding_requests(self) -> int: ...
    @property
    def outstanding_prefill_tokens(self) -> int: ...
    @property
    def running_decodes(self) -> int: ...  # requests past their prefill, generating


@dataclass(init=False, frozen=True, slots=True)
class Turn:
    """The turn being routed: its 1-based number and who holds the conversation's KV cache."""

    number: int
    holder_url: str | None = None  # the instance that served the previous turn, if any
    num_prompt_tokens: int = 0  # estimated prompt length of this turn
    num_history_tokens: int = 0  # tokens of the conversation before this turn's new input
    history_age_s: float = 0.0  # since the previous turn completed
    # The share of the history the holder is expected to still have cached (router/holding.py):
    # 1 until the router has seen otherwise.
    history_held_share: float = 1.0

    # Written out (init=False): mypyc runs a dataclass's generated __init__ interpreted (docs/fleet.md).
    def __init__(
        self,
        number: int,
        holder_url: str | None = None,
        num_prompt_tokens: int = 0,
        num_history_tokens: int = 0,
        history_age_s: float = 0.0,
        history_held_share: float = 1.0,
    ) -> None:
        object.__setattr__(self, "number", number)
        object.__setattr__(self, "holder_url", holder_url)
        object.__setattr__(self, "num_prompt_tokens", num_prompt_tokens)
        object.__setattr__(self, "num_history_tokens", num_history_tokens)
        object.__setattr__(self, "history_age_s", history_age_s)
        object.__setattr__(self, "history_held_share", history_held_share)

    @property
    def num_held_tokens(self) -> int:
        """History tokens the holder is expected to serve from its prefix cache."""
        return round(self.num_history_tokens * self.history_held_share)


@dataclass(frozen=True, slots=True)
class Candidates:
    """The instances of each role, in configuration order, with live health and load."""

    prefills: Sequence[Instance]
    decodes: Sequence[Instance]
    replicas: Sequence[Instance]


@dataclass(init=False, frozen=True, slots=True)
class RouteOptions:
    """Mode options a rule may read."""

    pd_decode_affinity: bool = True
    rotation: int = 0  # breaks ties between equally loaded instances in turn (round robin)
    auto: AutoInputs | None = None  # auto mode: the running estimates and SLOs (None: the priors)

    # Written out (init=False): mypyc runs a dataclass's generated __init__ interpreted (docs/fleet.md).
    def __init__(
        self,
        pd_decode_affinity: bool = True,
        rotation: int = 0,
        auto: AutoInputs | None = None,
    ) -> None:
        object.__setattr__(self, "pd_decode_affinity", pd_decode_affinity)
        object.__setattr__(self, "rotation", rotation)
        object.__setattr__(self, "auto", auto)


@dataclass(init=False, frozen=True, slots=True)
class Route:
    """Where a turn goes. `target_url` streams the answer; `prefill_url` is P when kind is pd."""

    kind: RouteKind
    target_url: str
    prefill_url: str | None = None
    reason: str = ""
    decision: Decision | None = None  # auto mode's choice (x-ppd-decision header, /metrics)

    # Written out (init=False): mypyc runs a dataclass's generated __init__ interpreted (docs/fleet.md).
    def __init__(
        self,
        kind: RouteKind,
        target_url: str,
        prefill_url: str | None = None,
        reason: str = "",
        decision: Decision | None = None,
    ) -> None:
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "target_url", target_url)
        object.__setattr__(self, "prefill_url", prefill_url)
        object.__setattr__(self, "reason", reason)
        object.__setattr__(self, "decision", decision)


class NoHealthyUpstream(Exception):
    """No healthy instance of a needed role; the proxy answers 503."""

    def __init__(self, role: Role | Literal["replica or decode"]) -> None:
        super().__init__(f"no healthy {role} instance")
        self.role = role


def least_loaded_prefill(prefills: Sequence[Instance], rotation: int) -> Instance:
    """The healthy P with the fewest outstanding prefill tokens, then fewest requests."""
    return _least_loaded(
        prefills, rotation, "prefill", lambda i: (i.outstanding_prefill_tokens, i.outstanding_requests)
    )


def least_loaded_decode(decodes: Sequence[Instance], rotation: int, role: Role = "decode") -> Instance:
    """The healthy instance with the fewest outstanding requests, then fewest prefill tokens."""
    return _least_loaded(
        decodes, rotation, role, lambda i: (i.outstanding_requests, i.outstanding_prefill_tokens)
    )


def healthy_holder(turn: Turn, instances: Sequence[Instance]) -> Instance | None:
    """The instance holding this conversation, if it is among `instances` and healthy."""
    if turn.holder_url is None:
        return None
    for instance in instances:
        if instance.url == turn.holder_url and instance.healthy:
            return instance
    return None


def route_pd(turn: Turn, candidates: Candidates, options: RouteOptions) -> Route:
    """pd: P -> D every turn; D is the holder (with affinity) or the least loaded D."""
    prefill = least_loaded_prefill(candidates.prefills, options.rotation)
    if not options.pd_decode_affinity:
        decode = least_loaded_decode(candidates.decodes, options.rotation)
        return Route(ROUTE_PD, decode.url, prefill.url, "least loaded decode")
    holder = healthy_holder(turn, candidates.decodes)
    if holder is not None:
        return Route(ROUTE_PD, holder.url, prefill.url, "decode holds history")
    decode = least_loaded_decode(candidates.decodes, options.rotation)
    return Route(ROUTE_PD, decode.url, prefill.url, _new_or_rehomed(turn, "least loaded decode"))


def route_ppd(turn: Turn, candidates: Candidates, options: RouteOptions) -> Route:
    """ppd: turns 2+ straight to the healthy D holding the history; otherwise as pd."""
    holder = healthy_holder(turn, candidates.decodes) if turn.number > 1 else None
    if holder is not None:
        return Route(ROUTE_PPD_DIRECT, holder.url, None, "decode holds history")
    prefill = least_loaded_prefill(candidates.prefills, options.rotation)
    decode = least_loaded_decode(candidates.decodes, options.rotation)
    return Route(ROUTE_PD, decode.url, prefill.url, _new_or_rehomed(turn, "least loaded decode"))


def route_replication(turn: Turn, candidates: Candidates, options: RouteOptions) -> Route:
    """replication: the replica holding the conversation, else the least loaded replica."""
    holder = healthy_holder(turn, candidates.replicas)
    if holder is not None:
        return Route(ROUTE_REPLICA, holder.url, None, "replica holds history")
    replica = least_loaded_decode(candidates.replicas, options.rotation, role="replica")
    return Route(ROUTE_REPLICA, replica.url, None, _new_or_rehomed(turn, "least loaded replica"))


_AUTO_ROUTES: dict[OptionKind, tuple[RouteKind, Decision]] = {
    DECISION_DIRECT: (ROUTE_PPD_DIRECT, AUTO_DIRECT),
    DECISION_PD: (ROUTE_PD, AUTO_PD),
    DECISION_REPLICA: (ROUTE_REPLICA, AUTO_REPLICA),
}


def route_auto(turn: Turn, candidates: Candidates, options: RouteOptions) -> Route:
    """auto: the option of least expected marginal cost (auto.py) among direct, replica and P -> D."""
    inputs = options.auto or default_auto_inputs()
    choices = auto_options(turn, candidates, options.rotation, inputs.speed)
    if not choices:
        raise NoHealthyUpstream("replica or decode")
    default = _replication_choice(candidates, options.rotation, choices)
    chosen, expected = choose(choices, inputs.model, default)
    reason = f"{_describe(chosen, expected)}; runner-up {_runner_up(chosen, choices, inputs)}"
    kind, decision = _AUTO_ROUTES[chosen.decision]
    prefill_url = chosen.prefill.url if chosen.prefill is not None else None
    return Route(kind, chosen.target.url, prefill_url, reason, decision)


def auto_options(turn: Turn, candidates: Candidates, rotation: int, speed: InstanceCosts) -> list[Option]:
    """Every way to serve the turn on healthy instances: direct first, then replicas, then P -> D."""
    costs: dict[str, InstanceCosts] = {}

    def of(instance: Instance) -> InstanceCosts:
        if instance.url not in costs:
            load = instance.outstanding_prefill_tokens, instance.running_decodes
            costs[instance.url] = replace(
                speed, url=instance.url, queued_prefill_tokens=load[0], running_decodes=load[1]
            )
        return costs[instance.url]

    num_tail = max(0, turn.num_prompt_tokens - turn.num_held_tokens)
    holder = healthy_holder(turn, [*candidates.decodes, *candidates.replicas])
    options = [Option(DECISION_DIRECT, of(holder), None, num_tail)] if holder is not None else []
    for replica in _rotated(candidates.replicas, rotation):
        if replica.url != turn.holder_url:
            options.append(Option(DECISION_REPLICA, of(replica), None, turn.num_prompt_tokens))
    for prefill in _rotated(candidates.prefills, rotation):
        for decode in _rotated(candidates.decodes, rotation):
            if prefill.url == decode.url:
                continue
            num_kv = num_tail if decode.url == turn.holder_url else turn.num_prompt_tokens
            options.append(Option(DECISION_PD, of(decode), of(prefill), turn.num_prompt_tokens, num_kv))
    return options


def _replication_choice(candidates: Candidates, rotation: int, choices: list[Option]) -> Option | None:
    """What replication would do: the holder, else the least loaded replica (None: no replicas)."""
    if choices[0].decision == DECISION_DIRECT:
        return choices[0]
    try:
        url = least_loaded_decode(candidates.replicas, rotation, role="replica").url
    except NoHealthyUpstream:
        return None
    return next(o for o in choices if o.decision == DECISION_REPLICA and o.target.url == url)


def default_auto_inputs() -> AutoInputs:
    """The cost model's inputs before anything was observed: the priors of estimates.py."""
    return Estimates().inputs()


def _rotated(instances: Sequence[Instance], rotation: int) -> list[Instance]:
    healthy = [instance for instance in instances if instance.healthy]
    if not healthy:
        return healthy
    start = rotation % len(healthy)
    return healthy[start:] + healthy[:start]


def _describe(option: Option, expected: Estimate) -> str:
    where = option.target.url if option.prefill is None else f"{option.prefill.url} -> {option.target.url}"
    return (
        f"auto-{option.decision} {where}: ttft {expected.ttft_ms:.1f} ms, tpot {expected.tpot_ms:.2f} ms, "
        f"cost {expected.cost_ms:.0f} ms"
    )


def _runner_up(chosen: Option, choices: list[Option], inputs: AutoInputs) -> str:
    others = [option for option in choices if option is not chosen]
    if not others:
        return "none"
    option, expected = choose(others, inputs.model)
    return _describe(option, expected)


Router = Callable[[Turn, Candidates, RouteOptions], Route]

ROUTERS: dict[Mode, Router] = {
    "pd": route_pd,
    "ppd": route_ppd,
    "replication": route_replication,
    "auto": route_auto,
}


def choose_route(mode: Mode, turn: Turn, candidates: Candidates, options: RouteOptions) -> Route:
    """The route of one turn under `mode`."""
    return ROUTERS[mode](turn, candidates, options)


def _least_loaded(
    instances: Sequence[Instance], rotation: int, role: Role, load: Callable[[Instance], tuple[int, int]]
) -> Instance:
    # Ties go round robin from `rotation`, so an idle pool still spreads new work.
    best: Instance | None = None
    best_load: tuple[int, int] | None = None
    count = len(instances)
    for offset in range(count):
        instance = instances[(rotation + offset) % count]
        if not instance.healthy:
            continue
        instance_load = load(instance)
        if best_load is None or instance_load < best_load:
            best, best_load = instance, instance_load
    if best is None:
        raise NoHealthyUpstream(role)
    return best


def _new_or_rehomed(turn: Turn, how: str) -> str:
    if turn.number == 1 or turn.holder_url is None:
        return f"new conversation, {how}"
    return f"holder unavailable, {how}"


def estimated_prefill_tokens(route: Route, turn: Turn) -> tuple[int, int]:
    """Prompt tokens (at P, at the target) this route makes each prefill, for load accounting.

    P prefills the whole prompt; a D fed by P pulls the KV and prefills nothing; an instance that
    holds the history prefills only the new tail; any other instance prefills the whole prompt.
    """
    if route.prefill_url is not None:
        return turn.num_prompt_tokens, 0
    if route.target_url == turn.holder_url:
        return 0, max(0, turn.num_prompt_tokens - turn.num_held_tokens)
    return 0, turn.num_prompt_tokens
