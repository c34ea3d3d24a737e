"""The router core: every routing decision and all it remembers, on plain objects, on any clock.

It knows nothing of HTTP, aiohttp or asyncio. Two drivers run it: the HTTP proxy (`ppd proxy`,
proxy/turns.py, on `time.perf_counter()`) and the fleet (`ppd fleet`, on a virtual clock). Every
method that needs the time takes it as `now_s` (seconds on the driver's one clock); nothing here
reads a clock itself. What it holds:

    mode            the routing mode (set_mode switches it; running conversations follow)
    pool            the instances by role with their health, live load and failure streaks
    conversations   who holds what, found by session id or history (conversations.py)
    estimates       auto mode's running fits, learnt from every completed turn in every mode

One turn, as a driver calls it (a `TurnRecord` collects everything; records.py):

    record = TurnRecord(started_s=now_s)
    route = router.decide(record, identity, num_prompt_tokens, now_s)   # NoHealthyUpstream: 503
    if route.prefill_url is not None:                                   # the P hop (pd)
        hop = router.begin(record, "prefill", now_s)
        ... P answers ...   router.finish(hop, now_s, succeeded=True)
        ... or fails ...    router.finish(hop, now_s); action = router.fail(hop, kind, error, now_s)
                            # action.next == "decode_alone": record.route is now D alone
    hop = router.begin(record, "target", now_s)                         # "retry" for the retry
    router.first_byte(hop, now_s)                                       # its prefill is over
    router.finish(hop, now_s, succeeded=True, last_byte=True)
    router.commit(record, now_s, answer_text)       # completed: the conversation's new state
    router.learn(record)                            # every turn, once it ended: the estimates

A failed target hop (before its first byte) whose action is `retry_elsewhere` is routed once more
with `router.reroute(record)`, then carried out with a "retry" hop. `failover.classify(failure,
hop)` is the whole failure policy; `fail` applies it to the instance and the record. Load counters
(outstanding requests, outstanding prefill tokens, running decodes) move only through begin,
first_byte and finish, so they are the same whichever driver runs the turn.
"""

from __future__ import annotations

from dataclasses import dataclass

from ppd.modes import MODES, Mode, mode_unavailable
from ppd.router.chunks import CHUNK_BYTES, CHUNKS_PER_INSTANCE, KEYED_BYTES, ChunkIndex, recognition_problem
from ppd.router.conversations import (
    Conversation,
    ConversationStore,
    Identity,
    Recognition,
    TurnOutcome,
)
from ppd.router.estimates import Estimates, HopLoad
from ppd.router.failover import (
    FAILOVER_PREFILL_FAILED,
    FAILOVER_RETRIED,
    FailureAction,
    FailureKind,
    Hop,
    classify,
    prefill_failed_route,
    retry_route,
    route_with_failover,
    without_instance,
)
from ppd.router.holding import HoldingModel, history_check
from ppd.router.instances import Instance, InstancePool
from ppd.router.policies import Route, RouteOptions, Turn, estimated_prefill_tokens
from ppd.router.records import TurnRecord, turn_observation


@dataclass(frozen=True)
class RouterConfig:
    """Everything the router core needs. Instances are named by address (any unique string)."""

    mode: Mode
    prefill_urls: tuple[str, ...] = ()
    decode_urls: tuple[str, ...] = ()
    replica_urls: tuple[str, ...] = ()  # replication's instances (the proxy fills in P + D if none)
    pd_decode_affinity: bool = True  # pd turns 2+ go to the D that holds the history
    max_conversations: int = 100_000
    conversation_idle_ttl_s: float = 3600.0
    history_chunk_bytes: int = CHUNK_BYTES  # chunk recognition (router/chunks.py): chunk size
    history_chunks_per_instance: int = CHUNKS_PER_INSTANCE  # its LRU cap, per instance
    history_keyed_bytes: int = KEYED_BYTES  # a prompt's lead that is keyed and recognised by
    health_interval_s: float = 2.0  # an unreachable instance is checked again after this
    health_max_backoff_s: float = 30.0  # the longest hold of an instance ejected by its failures
    slo_ttft_ms: float | None = None  # auto mode: prefer routes expected to meet these
    slo_tpot_ms: float | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; allowed: {', '.join(MODES)}")
        if not (self.replica_urls or (self.prefill_urls and self.decode_urls)):
            raise ValueError("the router needs prefill and decode instances, or replicas")
        problem = recognition_problem(
            self.history_chunk_bytes, self.history_chunks_per_instance, self.history_keyed_bytes
        )
        if problem:
            raise ValueError(problem)


class ModeUnavailable(ValueError):
    """The mode needs instances this router does not have (pd and ppd: P and D)."""


@dataclass(init=False, slots=True)
class InFlight:
    """One request sent to one instance (a hop of a turn), until it finishes."""

    record: TurnRecord
    hop: Hop  # prefill, target or retry
    instance: Instance
    num_prefill_tokens: int  # what it counts toward the instance's outstanding prefill tokens
    sent_s: float
    awaiting_first_byte: bool = True
    finished: bool = False

    # Written out (init=False): mypyc runs a dataclass's generated __init__ interpreted (docs/fleet.md).
    def __init__(
        self,
        record: TurnRecord,
        hop: Hop,
        instance: Instance,
        num_prefill_tokens: int,
        sent_s: float,
        awaiting_first_byte: bool = True,
        finished: bool = False,
    ) -> None:
        self.record = record
        self.hop = hop
        self.instance = instance
        self.num_prefill_tokens = num_prefill_tokens
        self.sent_s = sent_s
        self.awaiting_first_byte = awaiting_first_byte
        self.finished = finished


class Router:
    """The routing core of one proxy (or one simulated fleet). See the module docstring."""

    def __init__(self, config: RouterConfig, estimates: Estimates | None = None) -> None:
        self.config = config
        self.mode: Mode = config.mode
        self.pool = InstancePool(config.prefill_urls, config.decode_urls, config.replica_urls)
        num_instances = len({*config.prefill_urls, *config.decode_urls, *config.replica_urls})
        chunks = ChunkIndex(
            config.history_chunk_bytes,
            config.history_chunks_per_instance * num_instances,
            keyed_bytes=config.history_keyed_bytes,
        )
        self.conversations = ConversationStore(
            config.max_conversations, config.conversation_idle_ttl_s, chunks=chunks
        )
        self.estimates = estimates if estimates is not None else Estimates()
        self.holding = HoldingModel()  # learnt: does a holder still have a history of this age and size
        self.num_decisions = 0  # routing decisions made; rotates ties between equally loaded instances
        problem = mode_unavailable(self.mode, self.pool.has_prefill_and_decode)
        if problem:
            raise ModeUnavailable(problem)

    def set_mode(self, mode: Mode) -> Mode:
        """Route later turns (of new and running conversations) by `mode`; returns the previous one."""
        problem = mode_unavailable(mode, self.pool.has_prefill_and_decode)
        if problem:
            raise ModeUnavailable(problem)
        previous, self.mode = self.mode, mode
        return previous

    # ------------------------------------------------------------------ deciding

    def decide(self, record: TurnRecord, identity: Identity, num_prompt_tokens: int, now_s: float) -> Route:
        """Find the turn's conversation and route it (D alone when no P is healthy); NoHealthyUpstream."""
        recognition = self.conversations.recognise(identity, now_s)
        conversation = recognition.conversation
        record.identity, record.recognition = identity, recognition
        record.conversation_key = conversation.key if conversation is not None else None
        record.turn = turn_of(conversation, num_prompt_tokens, now_s, self.holding, recognition)
        route, failover = route_with_failover(
            self.mode, record.turn, self.pool.candidates, self._route_options()
        )
        record.route = route
        if failover is not None:
            record.failovers.append(failover)
        return route

    def reroute(self, record: TurnRecord) -> Route:
        """Route the turn once more without the target that failed it; NoHealthyUpstream if none."""
        failed, turn = _routed(record)
        candidates = without_instance(self.pool.candidates, failed.target_url)
        route = retry_route(self.mode, turn, candidates, self._route_options(), failed)
        record.route = route
        record.failovers.append(FAILOVER_RETRIED)
        return route

    def _route_options(self) -> RouteOptions:
        # Advances the rotation: every decision (retries too) starts its tie-break one further on.
        self.num_decisions += 1
        config = self.config
        auto = self.estimates.inputs(config.slo_ttft_ms, config.slo_tpot_ms) if self.mode == "auto" else None
        return RouteOptions(config.pd_decode_affinity, self.num_decisions, auto)

    # ------------------------------------------------------------------ carrying a route out

    def begin(self, record: TurnRecord, hop: Hop, now_s: float) -> InFlight:
        """A request of the turn's route is sent: to P (hop "prefill") or to the target."""
        route, turn = _routed(record)
        at_prefill, at_target = estimated_prefill_tokens(route, turn)
        if hop == "prefill":
            if route.prefill_url is None:
                raise ValueError("the route has no prefill hop")
            instance, num_prefill_tokens = self.pool.by_url[route.prefill_url], at_prefill
            record.prefill_load, record.prefill_sent_s = _load(instance), now_s
        else:
            instance, num_prefill_tokens = self.pool.by_url[route.target_url], at_target
            record.target_load, record.target_sent_s = _load(instance), now_s
        instance.begin(num_prefill_tokens)
        return InFlight(record, hop, instance, num_prefill_tokens, now_s)

    def first_byte(self, flight: InFlight, now_s: float) -> None:
        """The hop's first answer bytes arrived: its prefill is over (the target's TTFT stamp)."""
        if not flight.awaiting_first_byte:
            return
        flight.awaiting_first_byte = False
        flight.instance.prefill_done(flight.num_prefill_tokens)
        if flight.hop != "prefill" and flight.record.first_byte_s is None:
            flight.record.first_byte_s = now_s

    def finish(
        self, flight: InFlight, now_s: float, succeeded: bool = False, last_byte: bool = False
    ) -> None:
        """The hop ended (answered, failed or cancelled); `succeeded` ends the instance's failure
        streak, `last_byte` stamps the end of a complete answer."""
        if flight.finished:
            return
        flight.finished = True
        if flight.awaiting_first_byte:
            flight.awaiting_first_byte = False
            flight.instance.prefill_done(flight.num_prefill_tokens)
        flight.instance.end()
        if flight.hop == "prefill":
            flight.record.prefill_ms = (now_s - flight.sent_s) * 1000.0
        elif last_byte:
            flight.record.last_byte_s = now_s
        if succeeded:
            self.pool.note_request_success(flight.instance)

    def fail(self, flight: InFlight, failure: FailureKind, error: str, now_s: float) -> FailureAction:
        """Apply the failure policy (failover.classify) to a failed hop: blame the instance now, hold
        it as a suspect (blamed at commit, if another instance serves the turn) or not at all; when P
        failed or refused, leave the turn to its D alone (record.route becomes pd-fallback)."""
        record = flight.record
        hop: Hop = "stream" if flight.hop != "prefill" and not flight.awaiting_first_byte else flight.hop
        action = classify(failure, hop)
        if action.blame == "now":
            self._charge(flight.instance.url, error, action.out_of_service, now_s)
        elif action.blame == "suspect":
            record.suspects.append((flight.instance.url, error))
        if action.next == "decode_alone":
            route, _ = _routed(record)
            record.route = prefill_failed_route(route, error)
            record.failovers.append(action.failover or FAILOVER_PREFILL_FAILED)
        return action

    def _charge(self, url: str, error: str, out_of_service: bool, now_s: float) -> None:
        instance = self.pool.by_url.get(url)
        if instance is None:
            return
        config = self.config
        self.pool.note_request_failure(
            instance, error, out_of_service, now_s, config.health_interval_s, config.health_max_backoff_s
        )

    # ------------------------------------------------------------------ after the answer

    def commit(
        self, record: TurnRecord, now_s: float, answer_text: str | None = None, num_output_chunks: int = 0
    ) -> Conversation:
        """The turn completed: the conversation's new state (holder, token counts, its history for
        recognition), and the instances that answered it 5xx on the way are blamed (another served
        it). Token counts come from record.usage, else the estimate and the chunk count."""
        route, turn = _routed(record)
        identity, recognition = record.identity, record.recognition
        if identity is None or recognition is None:
            raise ValueError("commit needs the record decide() filled")
        record.state = "completed"
        for url, error in record.suspects:
            self._charge(url, error, False, now_s)
        record.suspects.clear()
        outcome = turn_outcome(route, turn, record.usage, num_output_chunks, answer_text)
        self._check_history(record, route, turn)
        committed = self.conversations.commit_turn(identity, recognition, outcome, now_s)
        record.conversation_key = committed.key
        return committed

    def _check_history(self, record: TurnRecord, route: Route, turn: Turn) -> None:
        """A turn its holder served from its own cache: did the cache still have the history?"""
        if route.prefill_url is not None:
            return  # D's cached_tokens after a pull count the pulled KV: nothing to learn there
        usage = record.usage or {}
        details = usage.get("prompt_tokens_details")
        cached = details.get("cached_tokens") if isinstance(details, dict) else None
        prompt = usage.get("prompt_tokens")
        check = history_check(
            turn.holder_url,
            route.target_url,
            turn.history_age_s,
            turn.num_history_tokens,
            prompt if isinstance(prompt, int) else None,
            cached if isinstance(cached, int) else None,
        )
        if check is not None:
            record.history_check = check
            self.holding.observe(check)

    def learn(self, record: TurnRecord) -> None:
        """Feed a finished turn to the running estimates (only clean, completed turns teach)."""
        observation = turn_observation(record)
        if observation is not None:
            self.estimates.observe(observation)


def turn_of(
    conversation: Conversation | None,
    num_prompt_tokens: int,
    now_s: float = 0.0,
    holding: HoldingModel | None = None,
    recognition: Recognition | None = None,
) -> Turn:
    """The routing view of a turn: its number, its holder, the history and how much of it the
    holder is expected to still have (`holding`'s learnt share; all of it without one).

    Recognised by its leading chunks (router/chunks.py), the holder is the instance the matched
    prefix was routed to, and the history is the part of the prompt that prefix covers (in the
    prompt's own token estimate), at most the previous prompt + answer."""
    if conversation is None:
        return Turn(1, None, num_prompt_tokens, 0)
    age_s = max(0.0, now_s - conversation.last_used_s)
    num_history = conversation.num_history_tokens
    holder = conversation.holder_url
    if recognition is not None and recognition.by == "chunks":
        holder = recognition.holder_url or holder
        num_history = min(num_history, shared_tokens(recognition, num_prompt_tokens))
    share = holding.expected_share(holder, age_s, num_history) if holding and holder else 1.0
    return Turn(conversation.num_turns + 1, holder, num_prompt_tokens, num_history, age_s, share)


def shared_tokens(recognition: Recognition, num_prompt_tokens: int) -> int:
    """The prompt tokens a chunk match covers: its share of the prompt's bytes, of the token estimate
    (all of them when the match covered the whole keyed lead of a longer prompt)."""
    if not recognition.num_text_bytes or recognition.num_shared_bytes is None:
        return num_prompt_tokens
    return round(num_prompt_tokens * min(1.0, recognition.num_shared_bytes / recognition.num_text_bytes))


def turn_outcome(
    route: Route, turn: Turn, usage: dict[str, object] | None, num_output_chunks: int, answer_text: str | None
) -> TurnOutcome:
    """What a completed turn leaves behind: usage's token counts where it had them, else estimates."""
    usage = usage or {}
    prompt_tokens = usage.get("prompt_tokens")
    output_tokens = usage.get("completion_tokens")
    return TurnOutcome(
        holder_url=route.target_url,
        num_prompt_tokens=prompt_tokens if isinstance(prompt_tokens, int) else turn.num_prompt_tokens,
        num_output_tokens=output_tokens if isinstance(output_tokens, int) else num_output_chunks,
        answer_text=answer_text,
    )


def _routed(record: TurnRecord) -> tuple[Route, Turn]:
    if record.route is None or record.turn is None:
        raise ValueError("the turn has not been routed (call decide first)")
    return record.route, record.turn


def _load(instance: Instance) -> HopLoad:
    return HopLoad(instance.outstanding_prefill_tokens, instance.running_decodes)
