"""The fleet: N engine cores and the proxy's own router core on one virtual clock.

A turn takes the path it takes through `ppd proxy` (proxy/turns.py), with the HTTP hops replaced by
measured delays (config.HopCosts):

    client -> proxy                      the router core finds the conversation and routes the turn
                                         (Router.decide: the mode's rule, with the proxy's failover),
                                         counts load on the instances (Router.begin)
    [pd]  proxy -> P: API, prefill (max_tokens 1, KV held under a lease) -> P's answer at the proxy
          proxy -> D: API, D claims P's lease, handshake, the pull holds D's step loop, the request
          joins after D's next step
    proxy -> target: API, scheduling, one token per step -> relayed to the client
    the answer ends: the proxy commits the conversation and feeds its running estimates
                     (Router.commit, Router.learn, as the HTTP proxy does)

Routing state is the proxy's own router core (ppd.router.Router: instance load counters,
conversations, estimates, the tie-break rotation), driven with the virtual clock's `now_s`. Nothing
here decides a route.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ppd.bench.word_ids import WordIds
from ppd.fleet.clock import EventQueue
from ppd.fleet.config import FleetConfig
from ppd.fleet.connections import (
    BENCH_ADMIN_REQUESTS,
    CLIENT_KEEPALIVE_S,
    PROXY_KEEPALIVE_S,
    ConnectionPool,
    IdleConnections,
)
from ppd.fleet.engines import VirtualEngine
from ppd.fleet.proxy_loop import ProxyLoop, ProxyProcesses
from ppd.launch.proxy import Upstreams, check_mode
from ppd.openai_api import ApiError
from ppd.proxy.config import ProxyConfig, normalize_url
from ppd.router.conversations import Identity
from ppd.router.core import InFlight, Router
from ppd.router.policies import NoHealthyUpstream, Route
from ppd.router.records import TurnRecord
from ppd.sim.kv_cache import extend_block_hashes
from ppd.sim.protocol import resolve_max_tokens
from ppd.sim.request import Request
from ppd.sim.timing import load_profile
from ppd.tokens import NUM_WORD_TOKENS


class PromptIds:
    """A prompt's token ids as the pieces the client made it of, in order: the last turn's pieces,
    then its answer and the new words (chat: with the roles' ids). Drawn words stay arrays and an
    answer stays the engine's list; the engines read only the tokens past the blocks the last turn
    hashed (prompt_blocks), and the whole list is made only for the bench's text without a session
    id. A list of every token (an int object each, for as long as the conversation lasts) or one
    array of them all (the answer converted) cost more than the rest of the client's side of a turn
    (docs/fleet.md, "Speed and memory")."""

    __slots__ = ("num_tokens", "pieces")

    def __init__(self, pieces: tuple[list[int] | WordIds, ...] = ()) -> None:
        self.pieces = pieces
        num_tokens = 0
        for piece in pieces:
            num_tokens += len(piece)
        self.num_tokens = num_tokens

    def __len__(self) -> int:
        return self.num_tokens

    def extended(self, pieces: list[list[int] | WordIds]) -> PromptIds:
        """This prompt followed by pieces (a new object: this one stays the last turn's)."""
        return PromptIds(self.pieces + tuple(pieces))

    def ids_from(self, start: int) -> list[int]:
        """The token ids from index `start` on."""
        ids: list[int] = []
        end = 0
        for piece in self.pieces:
            offset, end = end, end + len(piece)
            if end <= start:
                continue
            part = piece[max(0, start - offset) :]
            ids += part.tolist() if isinstance(part, np.ndarray) else part
        return ids

    def tolist(self) -> list[int]:
        """All the token ids."""
        return self.ids_from(0)


@dataclass(init=False, slots=True)
class TurnJob:
    """One turn as the client sends it, and what the client saw of its answer (virtual s)."""

    session_id: str
    prompt_token_ids: PromptIds
    num_prompt_words: int  # the proxy's estimate of the prompt length (proxy.inputs)
    max_tokens: int
    on_done: Callable[[TurnJob], None]
    sent_s: float = 0.0
    first_content_s: float | None = None  # the first chunk with text arrived at the client
    last_content_s: float | None = None
    ended_s: float | None = None  # the stream ended at the client
    itl_ms: list[float] | None = None  # every gap, only when asked for
    answer_token_ids: list[int] = field(default_factory=list)  # the answer's words, for the history
    status: int | None = None
    error: str | None = None
    prompt_tokens: int | None = None
    cached_tokens: int | None = None
    output_tokens: int | None = None
    route: str | None = None
    upstream: str | None = None
    prefill_ms: float | None = None
    prefill_cached_tokens: int | None = None  # a P -> D route: P's own prefix-cache hit
    # The chat API without a session id: the messages the bench sends, which the router recognises by
    chat_messages: list[dict[str, str]] | None = None
    # The conversation's last turn as its engine hashed it (block size, how many leading tokens of
    # this prompt are that turn's prompt and answer, the chained hashes of their full blocks): this
    # prompt's block hashes start with those hashes (prompt_blocks).
    history_blocks: tuple[int, int, list[int]] | None = None
    # This turn's, when its answer ends: (block size, the hashes of its prompt's and answer's blocks).
    answer_blocks: tuple[int, list[int]] | None = None

    # Written out (init=False): mypyc runs a dataclass's generated __init__ interpreted (docs/fleet.md).
    def __init__(
        self,
        session_id: str,
        prompt_token_ids: PromptIds,
        num_prompt_words: int,
        max_tokens: int,
        on_done: Callable[[TurnJob], None],
        sent_s: float = 0.0,
        first_content_s: float | None = None,
        last_content_s: float | None = None,
        ended_s: float | None = None,
        itl_ms: list[float] | None = None,
        status: int | None = None,
        error: str | None = None,
        prompt_tokens: int | None = None,
        cached_tokens: int | None = None,
        output_tokens: int | None = None,
        route: str | None = None,
        upstream: str | None = None,
        prefill_ms: float | None = None,
        prefill_cached_tokens: int | None = None,
        chat_messages: list[dict[str, str]] | None = None,
        history_blocks: tuple[int, int, list[int]] | None = None,
        answer_blocks: tuple[int, list[int]] | None = None,
    ) -> None:
        self.session_id = session_id
        self.prompt_token_ids = prompt_token_ids
        self.num_prompt_words = num_prompt_words
        self.max_tokens = max_tokens
        self.on_done = on_done
        self.sent_s = sent_s
        self.first_content_s = first_content_s
        self.last_content_s = last_content_s
        self.ended_s = ended_s
        self.itl_ms = itl_ms
        self.answer_token_ids = []
        self.status = status
        self.error = error
        self.prompt_tokens = prompt_tokens
        self.cached_tokens = cached_tokens
        self.output_tokens = output_tokens
        self.route = route
        self.upstream = upstream
        self.prefill_ms = prefill_ms
        self.prefill_cached_tokens = prefill_cached_tokens
        self.chat_messages = chat_messages
        self.history_blocks = history_blocks
        self.answer_blocks = answer_blocks


class Fleet:
    """Engines by URL, the proxy's router core, and the clock; `send(job)` starts a turn now."""

    def __init__(self, config: FleetConfig, clock: EventQueue) -> None:
        self.config = config
        self.clock = clock
        profile = load_profile(config.engine.profile)
        topology = config.topology
        self.engines: dict[str, VirtualEngine] = {}
        for instance in topology.instances:
            url = normalize_url(instance.url)
            engine_config = config.engine.sim_config(instance.name, profile)
            self.engines[url] = VirtualEngine(instance.name, url, engine_config, clock, config.decode_runs)
        urls = {
            role: tuple(i.url for i in topology.instances if i.role in roles)
            for role, roles in _ROLES.items()
        }
        mode = check_mode(
            config.mode, Upstreams(urls["prefill"], urls["decode"], urls["replica"])
        )  # as `ppd up`
        proxy_config = ProxyConfig(
            mode=mode,
            prefill_urls=urls["prefill"],
            decode_urls=urls["decode"],
            replica_urls=urls["replica"],
            pd_decode_affinity=config.pd_decode_affinity,
            slo_ttft_ms=config.route_slo_ttft_ms,
            slo_tpot_ms=config.route_slo_tpot_ms,
            history_chunk_bytes=config.history_chunk_bytes,
            history_chunks_per_instance=config.history_chunks_per_instance,
            history_keyed_bytes=config.history_keyed_bytes,
        )
        if config.warm_kv_links:
            for decode_url in proxy_config.decode_urls:
                for prefill_url in proxy_config.prefill_urls:
                    self.engines[decode_url].core.links.connect(self.engines[prefill_url].name)
        self.router = Router(proxy_config.router_config())  # the proxy's, as `ppd proxy` builds it
        hops = config.hops
        self.client_to_proxy_s = hops.client_to_proxy_ms * 1e-3
        self.proxy_to_engine_s = hops.proxy_to_engine_ms * 1e-3
        self.engine_to_proxy_s = hops.engine_to_proxy_ms * 1e-3
        self.proxy_to_client_s = hops.proxy_to_client_ms * 1e-3
        # A content chunk's way back (engine -> proxy -> client); a later chunk's: the first's less
        # what the response's start cost only the first (at most all of it)
        self.first_chunk_return_s = self.engine_to_proxy_s + self.proxy_to_client_s
        self.later_chunk_return_s = max(0.0, self.first_chunk_return_s - hops.later_chunk_saving_ms * 1e-3)
        self.kv_claim_s = hops.kv_claim_ms * 1e-3
        self.engine_s_per_token = hops.engine_us_per_prompt_token * 1e-6
        # Per engine: until when its API server's event loop reads the bodies that have reached it.
        # One at a time: a body that comes while another is read waits for it (the H200 host's turn
        # trace: a request sent to a sim before the one before it arrived took 7.6 ms from the
        # proxy's send to its arrival at ~8k prompt tokens, 3.9 ms alone; docs/fleet.md).
        self.body_read_until_s: dict[str, float] = {}
        self.proxy_s_per_token = hops.proxy_us_per_prompt_token * 1e-6
        self.num_turns = 0
        # Kept-alive connections (fleet.connections): the bench's to the proxy, the proxy's to each engine
        idle = config.idle_connections
        self.client_pool = ConnectionPool(hops.client_connect_ms * 1e-3, CLIENT_KEEPALIVE_S, idle.client_s)
        engines_idle = dict(idle.engines_s)
        self.engine_pools = {  # with the proxy's health checks (connections.py)
            url: ConnectionPool(
                hops.proxy_connect_ms * 1e-3,
                PROXY_KEEPALIVE_S,
                engines_idle.get(url, ()),
                proxy_config.health_interval_s,
                idle.next_health_check_s,
            )
            for url in self.engines
        }
        self.client_pool.exchange(0.0, BENCH_ADMIN_REQUESTS)  # right before the run (connections.py)
        # The proxy's event loop(s): the wait behind other streams' work (fleet.proxy_loop); None
        # when its CPU is not modelled (every hop then costs what an isolated turn pays).
        self.proxies: ProxyProcesses | None = None
        self.engine_indices = {engine.name: index for index, engine in enumerate(self.engines.values())}
        if not config.proxy_cpu.is_zero:
            self.proxies = ProxyProcesses(config.proxy_cpu, config.proxy_processes, len(self.engines))
            for index, engine in enumerate(self.engines.values()):
                engine.on_steps = functools.partial(self.proxies.book_steps, index)

    def idle_connections(self) -> IdleConnections:
        """The pools' idle connections now, for the next run of the same client and proxy."""
        now_s = self.clock.now_s
        engines = tuple((url, pool.idle_for_s(now_s)) for url, pool in self.engine_pools.items())
        next_check_s = min((pool.next_check_s for pool in self.engine_pools.values()), default=now_s)
        return IdleConnections(self.client_pool.idle_for_s(now_s), engines, next_check_s - now_s)

    def send(self, job: TurnJob) -> None:
        """The client sends a turn now."""
        job.sent_s = self.clock.now_s
        self.num_turns += 1
        delay_s = self.client_to_proxy_s + self.proxy_s_per_token * len(job.prompt_token_ids)
        delay_s += self.client_pool.take(job.sent_s)
        self.clock.after(delay_s, self._route if self.proxies is None else self._intake, job)

    def _intake(self, job: TurnJob) -> None:
        """The turn reaches the proxy's event loop; it is routed once the loop gets to it."""
        proxies = self.proxies
        wait_s = 0.0 if proxies is None else proxies.loop_of(job.session_id).request_wait_s(self.clock.now_s)
        self.clock.after(wait_s, self._route, job)

    def _route(self, job: TurnJob) -> None:
        """At the proxy: find the conversation and route the turn (proxy/turns.serve_turn)."""
        now_s = self.clock.now_s
        record = TurnRecord(started_s=now_s)
        identity = turn_identity(job, self.config.send_session_id)
        try:
            route = self.router.decide(record, identity, job.num_prompt_words, now_s)
        except NoHealthyUpstream as exc:
            record.end("errored", 503, str(exc))
            job.status, job.error = 503, str(exc)
            record.finished_s = now_s
            self.router.learn(record)
            self.clock.after(self.proxy_to_client_s, _client_done, self, job)
            return
        flow = _TurnFlow(self, job, record, route)
        if route.prefill_url is not None:
            flow.send_prefill(self.engines[route.prefill_url])
        else:
            flow.send_target(None)


_ROLES = {"prefill": ("prefill", "both"), "decode": ("decode", "both"), "replica": ("replica",)}


def turn_identity(job: TurnJob, send_session_id: bool) -> Identity:
    """How the proxy names the turn's conversation: its session id, or (as under `ppd bench
    --no-session-id`) the chat messages or prompt text the bench sends for these token ids."""
    if send_session_id:
        return Identity(session_id=job.session_id)
    if job.chat_messages is not None:
        return Identity(chat_messages=job.chat_messages)
    return Identity(prompt_bytes=words_text(job.prompt_token_ids.tolist()))


def words_text(token_ids: list[int]) -> bytes:
    """The bench's text of word-token ids (`w<N>` joined by single spaces; ppd.tokens)."""
    return " ".join([f"w{token}" for token in token_ids]).encode()


def prompt_blocks(
    prompt: PromptIds, block_size: int, history: tuple[int, int, list[int]] | None
) -> tuple[list[int], list[int]]:
    """What an engine reads of a prompt (EngineCore.new_hashed_request): the chained hashes of its
    full blocks and its tokens after them. The leading hashes are the last turn's where this prompt
    shares its blocks (TurnJob.history_blocks); only the tokens past them become int objects, for as
    long as hashing them takes."""
    known: list[int] = []
    if history is not None and history[0] == block_size:
        _, num_shared_tokens, hashes = history
        known = hashes[: min(len(hashes), num_shared_tokens // block_size, len(prompt) // block_size)]
    num_known = len(known)
    rest = prompt.ids_from(num_known * block_size)
    extend_block_hashes(known, rest, block_size, offset=num_known * block_size)  # known is a new list
    return known, rest[(len(known) - num_known) * block_size :]


def _content_tokens(token_ids: list[int], special_token_rate: float) -> list[int]:
    """The answer's words as the client's text has them: special tokens dropped (their chunks carry
    no text). An engine whose special_token_rate is 0 emits none (Request.append_answer_tokens), and
    most other answers have none, which max() finds without a Python loop."""
    if not special_token_rate or max(token_ids, default=0) < NUM_WORD_TOKENS:
        return token_ids
    return [token_id for token_id in token_ids if token_id < NUM_WORD_TOKENS]


def _client_done(fleet: Fleet, job: TurnJob) -> None:
    job.ended_s = fleet.clock.now_s
    fleet.client_pool.give(job.ended_s)
    job.on_done(job)


class _TurnFlow:
    """One routed turn inside the proxy and the engines; each method is an event on the clock."""

    __slots__ = (
        "fleet",
        "hashed_prompt",
        "job",
        "loop",
        "num_seen_tokens",
        "prefill_hop",
        "record",
        "route",
        "target",
        "target_hop",
    )

    def __init__(self, fleet: Fleet, job: TurnJob, record: TurnRecord, route: Route) -> None:
        self.fleet, self.job, self.record, self.route = fleet, job, record, route
        self.target = fleet.engines[route.target_url]
        self.prefill_hop: InFlight | None = None  # the router core's hops (load counters, stamps)
        self.target_hop: InFlight | None = None
        self.num_seen_tokens = 0
        self.loop: ProxyLoop | None = None if fleet.proxies is None else fleet.proxies.loop_of(job.session_id)
        # (block size, the prompt's block hashes and tail: prompt_blocks), made once for P and D
        self.hashed_prompt: tuple[int, list[int], list[int]] | None = None

    def _new_request(
        self, engine: VirtualEngine, request_id: str, max_tokens: int, hold_kv_on_finish: bool
    ) -> Request:
        """The request arriving now at the engine's API server (EngineCore.new_hashed_request), with the
        prompt's blocks hashed once for P and D (prompt_blocks)."""
        block_size, prompt = engine.config.block_size, self.job.prompt_token_ids
        if self.hashed_prompt is None or self.hashed_prompt[0] != block_size:
            hashes, tail = prompt_blocks(prompt, block_size, self.job.history_blocks)
            self.hashed_prompt = (block_size, hashes, tail)
        _, hashes, tail = self.hashed_prompt
        return engine.core.new_hashed_request(
            request_id, len(prompt), hashes, tail, max_tokens, self.now_s, hold_kv_on_finish=hold_kv_on_finish
        )

    @property
    def now_s(self) -> float:
        return self.fleet.clock.now_s

    def send_prefill(self, prefill: VirtualEngine) -> None:
        """The P hop (proxy/turns._prefill): load counted at P until its answer is back."""
        self.prefill_hop = self.fleet.router.begin(self.record, "prefill", self.now_s)
        connect_s = self.fleet.engine_pools[prefill.url].take(self.now_s)
        self.fleet.clock.after(self._to_engine_s(prefill.url, connect_s), self._prefill_arrives, prefill)

    def _prefill_arrives(self, prefill: VirtualEngine) -> None:
        request = self._new_request(prefill, f"p-{id(self)}", 1, hold_kv_on_finish=True)
        request.on_token = lambda done: self._prefill_answered(prefill, done)
        prefill.after_api(request, prefill.submit)

    def _prefill_answered(self, prefill: VirtualEngine, request: Request) -> None:
        """P's one token: the request finished and its blocks are leased (P answers non-streaming)."""
        self.job.prefill_cached_tokens = max(0, request.num_cached_tokens)
        self.record.prefill_cached_tokens = max(0, request.num_cached_tokens)  # P's usage, as the proxy
        delay_s = self.fleet.engine_to_proxy_s + self._relay_wait_s(prefill, self.now_s)
        self.fleet.clock.after(delay_s, self._prefill_back, prefill, request.lease_id)

    def _prefill_back(self, prefill: VirtualEngine, lease_id: str | None) -> None:
        self.fleet.engine_pools[prefill.url].give(self.now_s)
        if self.prefill_hop is not None:
            self.fleet.router.finish(self.prefill_hop, self.now_s, succeeded=True)  # sets prefill_ms
        remote = (prefill, lease_id) if lease_id is not None else None
        if self.loop is None:
            self.send_target(remote)
        else:  # the second hop is another request for the proxy's loop
            self.fleet.clock.after(self.loop.request_wait_s(self.now_s), self.send_target, remote)

    def _relay_wait_s(self, engine: VirtualEngine, step_end_s: float) -> float:
        """How long the proxy's loop keeps a chunk of the engine's step ending at step_end_s."""
        if self.loop is None:
            return 0.0
        return self.loop.relay_wait_s(self.fleet.engine_indices[engine.name], step_end_s)

    def send_target(self, remote: tuple[VirtualEngine, str] | None) -> None:
        """The target hop (proxy/turns._target); `remote`: P and its lease when D pulls the KV."""
        record, job = self.record, self.job
        self.target_hop = self.fleet.router.begin(record, "target", self.now_s)
        job.route, job.upstream = self.route.kind, self.route.target_url
        if record.prefill_ms is not None:
            job.prefill_ms = round(record.prefill_ms, 3)
        connect_s = self.fleet.engine_pools[self.target.url].take(self.now_s)
        self.fleet.clock.after(self._to_engine_s(self.target.url, connect_s), self._target_arrives, remote)

    def _to_engine_s(self, url: str, connect_s: float) -> float:
        """Proxy -> engine: a connection if one is opened, the hop, then the engine's real per-token
        handling of the body (`ppd sim` parses it and reads its words on its one event loop), after
        the bodies that reached the engine before it: the time until the request arrives."""
        fleet, now_s = self.fleet, self.now_s
        at_s = now_s + connect_s + fleet.proxy_to_engine_s
        read_s = max(at_s, fleet.body_read_until_s.get(url, at_s)) + fleet.engine_s_per_token * len(
            self.job.prompt_token_ids
        )
        fleet.body_read_until_s[url] = read_s
        return read_s - now_s

    def _target_arrives(self, remote: tuple[VirtualEngine, str] | None) -> None:
        target, job = self.target, self.job
        try:  # the sim's own check: context too long is a 400 (sim/protocol.resolve_max_tokens)
            resolve_max_tokens(len(job.prompt_token_ids), job.max_tokens, target.config.max_model_len)
        except ApiError as exc:
            if remote is not None:
                remote[0].take_lease(remote[1])  # the proxy hands P's KV back when D refuses
            self._target_failed(exc.status, exc.message)
            return
        request = self._new_request(target, f"t-{id(self)}", job.max_tokens, False)
        request.on_token = self._token
        # _token reads the tokens between the first and the last only to stamp ITL or to find the
        # last word before trailing special tokens.
        request.on_token_ends_only = job.itl_ms is None and target.config.special_token_rate == 0
        if remote is None:
            target.after_api(request, target.submit)
        else:
            target.after_api(request, lambda ready: self._claim_kv(ready, *remote))

    def _claim_kv(self, request: Request, prefill: VirtualEngine, lease_id: str) -> None:
        """As D (sim/server._pull_remote_kv): count what D has, then claim P's lease over HTTP."""
        num_cached = self.target.count_cached_prompt_blocks(request)
        num_prompt_blocks = -(-request.num_prompt_tokens // self.target.config.block_size)
        num_blocks = num_prompt_blocks - num_cached
        self.fleet.clock.after(self.fleet.kv_claim_s, self._pull_kv, request, prefill, lease_id, num_blocks)

    def _pull_kv(self, request: Request, prefill: VirtualEngine, lease_id: str, num_blocks: int) -> None:
        target = self.target
        if prefill.take_lease(lease_id) is None:
            target.pulls.num_failed_pulls += 1
            self._target_failed(400, f"KV pull from {prefill.name} failed: lease {lease_id} expired")
            return
        plan = target.core.plan_pull(prefill.name, num_blocks)
        target.pulls.count(plan, target.config.profile.kv_bytes_per_token)
        posted = lambda: target.after_next_step(lambda: self._kv_arrived(request))  # noqa: E731
        self.fleet.clock.after(plan.wait_s * target.config.time_scale, target.occupy, plan.hold_s, posted)

    def _kv_arrived(self, request: Request) -> None:
        request.num_external_tokens = request.num_prompt_tokens
        request.ready_s = self.now_s
        self.target.submit(request)

    def _token(self, request: Request) -> None:
        """A step (or a decode run's steps) gave the target's request tokens: each is relayed to the
        proxy, then to the client, when its step ended (VirtualEngine.delivered_step_end_s)."""
        fleet, job = self.fleet, self.job
        token_ids, delivered_s = request.output_token_ids, self.target.delivered_step_end_s
        num_output_tokens = len(token_ids)  # runs per request per run
        num_new = num_output_tokens - self.num_seen_tokens
        self.num_seen_tokens = num_output_tokens
        later_s = fleet.later_chunk_return_s
        if job.itl_ms is None and job.first_content_s is not None and token_ids[-1] < NUM_WORD_TOKENS:
            last_s = delivered_s[-1]  # the usual case, without slicing
            job.last_content_s = last_s + later_s + self._relay_wait_s(self.target, last_s)
        elif job.itl_ms is None:
            self._stamp_content(delivered_s[-num_new:], token_ids[-num_new:])
        else:
            for end_s, token_id in zip(delivered_s[-num_new:], token_ids[-num_new:], strict=True):
                if token_id >= NUM_WORD_TOKENS:  # a special token's chunk carries no text
                    continue
                if job.first_content_s is None:
                    job.first_content_s = job.last_content_s = self._first_arrival_s(end_s)
                    continue
                arrive_s = end_s + later_s + self._relay_wait_s(self.target, end_s)
                if job.last_content_s is not None:
                    job.itl_ms.append(round((arrive_s - job.last_content_s) * 1000.0, 4))
                job.last_content_s = arrive_s
        if num_output_tokens == num_new:
            first_s = delivered_s[-num_new]
            read_s = first_s + fleet.engine_to_proxy_s + self._relay_wait_s(self.target, first_s)
            fleet.clock.at(read_s, self._first_byte)
        if request.is_finished:
            last_s = delivered_s[-1]
            read_s = last_s + fleet.engine_to_proxy_s + self._relay_wait_s(self.target, last_s)
            fleet.clock.at(read_s, self._answer_done, request)

    def _stamp_content(self, ends_s: list[float], tokens: list[int]) -> None:
        """The first and last content chunks among new tokens (a special token's chunk has no text)."""
        job = self.job
        first = None
        if job.first_content_s is None:
            first = next((i for i, token_id in enumerate(tokens) if token_id < NUM_WORD_TOKENS), None)
            if first is None:
                return
            job.first_content_s = job.last_content_s = self._first_arrival_s(ends_s[first])
        for index in range(len(tokens) - 1, -1, -1):
            if index == first:
                return
            if tokens[index] < NUM_WORD_TOKENS:
                end_s = ends_s[index]
                relay_wait_s = self._relay_wait_s(self.target, end_s)
                job.last_content_s = end_s + self.fleet.later_chunk_return_s + relay_wait_s
                return

    def _first_arrival_s(self, step_end_s: float) -> float:
        """When the first content chunk, of the step ending at step_end_s, reaches the client."""
        return step_end_s + self.fleet.first_chunk_return_s + self._relay_wait_s(self.target, step_end_s)

    def _first_byte(self) -> None:
        if self.target_hop is not None:
            self.fleet.router.first_byte(self.target_hop, self.now_s)

    def _answer_done(self, request: Request) -> None:
        """The stream ended at the proxy: commit the conversation, learn, relay the end."""
        fleet, record, job = self.fleet, self.record, self.job
        if self.target_hop is not None:
            fleet.router.finish(self.target_hop, self.now_s, succeeded=True, last_byte=True)
        job.prompt_tokens, job.output_tokens = request.num_prompt_tokens, request.num_output_tokens
        job.cached_tokens = max(0, request.num_cached_tokens)
        record.usage = {
            "prompt_tokens": job.prompt_tokens,
            "completion_tokens": job.output_tokens,
            "prompt_tokens_details": {"cached_tokens": job.cached_tokens},
        }
        job.answer_token_ids = _content_tokens(request.output_token_ids, request.special_token_rate)
        job.answer_blocks = (self.target.config.block_size, request.block_hashes)
        # The holder and token counts (usage), as the proxy; without a session id, the answer text too
        # (the proxy captures it to recognise the next turn by its whole history).
        answer = None if fleet.config.send_session_id else words_text(job.answer_token_ids).decode()
        fleet.router.commit(record, self.now_s, answer)
        job.status = 200
        self._finish()

    def _target_failed(self, status: int, error: str) -> None:
        """D refused the request (context too long, or its KV pull failed): the client's 4xx answer;
        the router core blames no engine for it (failover.classify)."""
        router = self.fleet.router
        if self.target_hop is not None:
            router.fail(self.target_hop, "rejected", error, self.now_s)
            router.finish(self.target_hop, self.now_s)
        self.record.end("rejected", status, error)
        self.job.status, self.job.error = status, error
        self._finish()

    def _finish(self) -> None:
        self.fleet.engine_pools[self.target.url].give(self.now_s)
        self.record.finished_s = self.now_s
        self.fleet.router.learn(self.record)
        self.fleet.clock.after(self.fleet.proxy_to_client_s, _client_done, self.fleet, self.job)
