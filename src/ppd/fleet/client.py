"""The bench's side of a fleet run: conversations arrive, send their turns, and become rows.

What to send and when comes from ppd.bench itself (arrivals.plan_conversations, the prompt seeds of
loadgen, word_ids.WordIdDrawer), so a fleet run and `ppd bench` against HTTP engines send the
same conversations at the same times. Rows are built by the bench's own metric code
(bench.metrics.turn_timings) from the first and last content-chunk times; the tokens in between
are not kept unless ITL is asked for, so memory does not grow with simulated time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ppd.bench.arrivals import ConversationPlan, SeedFamily, derive_seed
from ppd.bench.loadgen import cached_share
from ppd.bench.metrics import turn_timings
from ppd.bench.word_ids import WordIds
from ppd.bench.workloads import append_turn
from ppd.fleet.client_gaps import ClientGaps
from ppd.fleet.clock import EventQueue
from ppd.fleet.config import FleetConfig
from ppd.fleet.first_prompts import FirstPrompts
from ppd.fleet.fleet import Fleet, PromptIds, TurnJob, words_text
from ppd.results import TurnRow
from ppd.tokens import word_to_id

_USER_ID = word_to_id("user")
_ASSISTANT_ID = word_to_id("assistant")


@dataclass(init=False)
class _Conversation:
    """A conversation in flight: its plan, its user turns' word ids, the answers so far, and the last
    turn's prompt and chat messages, which the next turn's extend (rebuilding every earlier turn's
    each turn was quadratic in the turns)."""

    plan: ConversationPlan
    session_id: str
    user_token_ids: list[WordIds]
    answer_token_ids: list[list[int]] = field(default_factory=list)
    prompt_token_ids: PromptIds = field(default_factory=PromptIds)
    messages: list[dict[str, str]] = field(default_factory=list)
    # The next turn's TurnJob.history_blocks: the last turn's (history_blocks), or for the first
    # turn its prompt's own, hashed before it arrived (FirstPrompts).
    last_turn_blocks: tuple[int, int, list[int]] | None = None

    # Written out (init=False): mypyc runs a dataclass's generated __init__ interpreted (docs/fleet.md).
    def __init__(
        self,
        plan: ConversationPlan,
        session_id: str,
        user_token_ids: list[WordIds],
        last_turn_blocks: tuple[int, int, list[int]] | None = None,
    ) -> None:
        self.plan = plan
        self.session_id = session_id
        self.user_token_ids = user_token_ids
        self.answer_token_ids = []
        self.prompt_token_ids = PromptIds()
        self.messages = []
        self.last_turn_blocks = last_turn_blocks


class BenchClient:
    """Open-loop arrivals of the planned conversations; each turn's row goes to `on_row`."""

    def __init__(
        self,
        config: FleetConfig,
        fleet: Fleet,
        clock: EventQueue,
        on_row: Callable[[TurnRow], None],
    ) -> None:
        self.config = config
        self.fleet = fleet
        self.clock = clock
        self.on_row = on_row
        self.start_times_s: list[float] = []
        self.num_active = 0
        self._in_flight: dict[int, tuple[_Conversation, TurnJob, float]] = {}  # and the turn's due time
        gaps_seed = derive_seed(
            config.seed, "client gaps", config.mode, config.workload.name, config.qps, config.run
        )
        self.gaps = ClientGaps(config.hops, gaps_seed)
        # What every conversation's prompt seed and session id start with, made once (per
        # conversation, only its index is added).
        self._prompt_seeds = SeedFamily(
            config.seed, config.prompt_salt, config.mode, config.workload.name, config.qps, config.run
        )
        is_chat = config.api == "chat"
        block_sizes = {engine.config.block_size for engine in fleet.engines.values()}
        self._first_prompts = FirstPrompts(
            self._prompt_seeds,
            lambda user: next_prompt(PromptIds(), None, user, is_chat),
            block_sizes.pop() if len(block_sizes) == 1 else None,
        )
        run_key = f"{config.mode}-{config.workload.name}-q{config.qps:g}-r{config.run}"
        self._session_id_prefix = f"fleet-{config.prompt_salt}-{run_key}-c"

    def start(self, plans: list[ConversationPlan]) -> None:
        """Schedule every conversation's arrival; prompts are made a batch of arrivals ahead."""
        self._first_prompts.expect(plans)
        self.clock.at_each([plan.arrival_s for plan in plans], self._arrive, plans)

    def _arrive(self, plan: ConversationPlan) -> None:
        user_ids, first_blocks = self._first_prompts.take(plan)
        conversation = _Conversation(plan, self._session_id(plan), user_ids, first_blocks)
        self.num_active += 1
        self.start_times_s.append(self.clock.now_s)
        self._send(conversation, 1, self.clock.now_s)

    def _session_id(self, plan: ConversationPlan) -> str:
        return f"{self._session_id_prefix}{plan.index}"

    def _send(self, conversation: _Conversation, turn: int, due_s: float) -> None:
        is_chat = self.config.api == "chat"
        answer, user = self._new_words(conversation, turn)
        prompt = next_prompt(conversation.prompt_token_ids, answer, user, is_chat)
        conversation.prompt_token_ids = prompt
        messages = None
        if self.recognised_by_chat:
            messages = conversation.messages = next_messages(conversation.messages, answer, user)
        shape = conversation.plan.turns[turn - 1]
        job = TurnJob(
            conversation.session_id,
            prompt,
            len(prompt) - 1 if is_chat else len(prompt),  # the proxy's estimate: not the generation prompt
            shape.num_output_tokens,
            lambda done: self._turn_done(conversation, turn, due_s, done),
            itl_ms=[] if self.config.record_itl else None,
            chat_messages=messages,
            history_blocks=conversation.last_turn_blocks,
        )
        self._in_flight[id(job)] = (conversation, job, due_s)
        self.fleet.send(job)

    @property
    def recognised_by_chat(self) -> bool:
        """Whether the router names conversations by their chat messages (`--api chat
        --no-session-id`): then each turn carries the messages the bench sends."""
        return self.config.api == "chat" and not self.config.send_session_id

    @staticmethod
    def _new_words(conversation: _Conversation, turn: int) -> tuple[list[int] | None, WordIds]:
        """What turn `turn` adds to the previous turn's prompt: that turn's answer (None for turn 1)
        and its own user words."""
        answer = conversation.answer_token_ids[turn - 2] if turn > 1 else None
        return answer, conversation.user_token_ids[turn - 1]

    def _turn_done(self, conversation: _Conversation, turn: int, due_s: float, job: TurnJob) -> None:
        del self._in_flight[id(job)]
        row = self._row(conversation, turn, due_s, job, None)
        self.on_row(row)
        plan = conversation.plan
        if not row.ok:
            self._not_sent(conversation, turn + 1, self.clock.now_s, f"turn {turn} failed")
            return
        if turn == len(plan.turns):
            self.num_active -= 1
            return
        conversation.answer_token_ids.append(job.answer_token_ids)
        conversation.last_turn_blocks = history_blocks(conversation.prompt_token_ids, job)
        user_ids = conversation.user_token_ids[turn]
        num_prompt_tokens = len(conversation.prompt_token_ids) + len(job.answer_token_ids) + len(user_ids)
        send_s, due_s = self.next_send_s(job, num_prompt_tokens)
        self.clock.at(send_s, self._send, conversation, turn + 1, due_s)

    def next_send_s(self, job: TurnJob, num_prompt_tokens: int) -> tuple[float, float]:
        """When the turn after `job` leaves and when it is due (the bench's due: the stream's end plus
        the think time), s. num_prompt_tokens: what the bench builds and encodes after the answer
        (client_gaps); without gap figures the stream ends where the fleet's path puts it, now."""
        think_s = self.config.think_time_s
        if self.gaps.is_zero:
            return self.clock.now_s + think_s, self.clock.now_s + think_s
        last_s = job.last_content_s if job.last_content_s is not None else self.clock.now_s
        ended_s = last_s + self.gaps.stream_end_s()
        lag_s = self.gaps.send_lag_s(job.output_tokens or 0, num_prompt_tokens)
        return ended_s + max(think_s, lag_s), ended_s + think_s

    def cut_off(self, reason: str) -> None:
        """The drain timeout: turns in flight fail, later turns are not sent (bench.loadgen)."""
        for conversation, job, due_s in list(self._in_flight.values()):
            turn = len(conversation.answer_token_ids) + 1
            job.error = reason
            self.on_row(self._row(conversation, turn, due_s, job, reason))
            self._not_sent(conversation, turn + 1, self.clock.now_s, reason)
        self._in_flight.clear()

    def _not_sent(self, conversation: _Conversation, first_turn: int, due_s: float, reason: str) -> None:
        self.num_active -= 1
        for turn in range(first_turn, len(conversation.plan.turns) + 1):
            self.on_row(self._unsent_row(conversation, turn, due_s, f"not sent: {reason}"))

    def _row(
        self, conversation: _Conversation, turn: int, due_s: float, job: TurnJob, cut_off: str | None
    ) -> TurnRow:
        """The row of a sent turn (bench.loadgen._turn_row's fields, from virtual stamps)."""
        ok = cut_off is None and job.status == 200 and job.error is None
        chunk_times = [t for t in (job.first_content_s, job.last_content_s) if t is not None]
        timings = turn_timings(job.sent_s, chunk_times, job.output_tokens)
        sent_s = job.sent_s
        return TurnRow(
            self.config.mode,
            self.config.workload.name,
            self.config.qps,
            self.config.run,
            conversation.plan.index,
            conversation.session_id,
            turn,
            sent=True,
            ok=ok,
            status=job.status if cut_off is None else (200 if job.first_content_s is not None else None),
            error=job.error,
            scheduled_s=round(due_s, 6),
            sent_s=round(sent_s, 6),
            schedule_lag_ms=round((sent_s - due_s) * 1000.0, 4),
            ttft_ms=timings.ttft_ms,
            e2e_ms=timings.e2e_ms if ok else None,
            tpot_ms=timings.tpot_ms if ok else None,
            itl_ms=job.itl_ms or [],
            prompt_tokens=job.prompt_tokens,
            cached_tokens=job.cached_tokens,
            cached_share=cached_share(job.prompt_tokens, job.cached_tokens),
            output_tokens=job.output_tokens,
            route=job.route,
            upstream=job.upstream,
            prefill_ms=job.prefill_ms,
            prefill_cached_tokens=job.prefill_cached_tokens,
            in_warmup=sent_s < self.config.warmup_s,
        )

    def _unsent_row(self, conversation: _Conversation, turn: int, due_s: float, error: str) -> TurnRow:
        config = self.config
        return TurnRow(
            config.mode,
            config.workload.name,
            config.qps,
            config.run,
            conversation.plan.index,
            conversation.session_id,
            turn,
            sent=False,
            ok=False,
            status=None,
            error=error,
            scheduled_s=round(due_s, 6),
            sent_s=None,
            schedule_lag_ms=None,
            ttft_ms=None,
            e2e_ms=None,
            tpot_ms=None,
            in_warmup=due_s < config.warmup_s,
        )


def next_prompt(previous: PromptIds, answer: list[int] | None, user: WordIds, is_chat: bool) -> PromptIds:
    """Token ids of a turn's prompt as the engine tokenizes what the bench sends
    (bench.workloads.completions_prompt / chat_messages), from the previous turn's prompt (empty for
    turn 1), that turn's answer and this turn's user words. Completions: the texts in order; chat:
    each message after its role's id, then the assistant's id (the generation prompt, with which the
    previous prompt already ends). A new prompt: the previous one stays the previous turn's."""
    pieces: list[list[int] | WordIds] = [] if answer is None else [answer]
    if is_chat:
        pieces += [[_USER_ID], user, [_ASSISTANT_ID]]
    else:
        pieces.append(user)
    return previous.extended(pieces)


def history_blocks(prompt: PromptIds, job: TurnJob) -> tuple[int, int, list[int]] | None:
    """The next turn's TurnJob.history_blocks after `job` (sent with `prompt`) answered: next_prompt
    puts the answer's words right after this prompt, so the next prompt starts with the engine's
    whole request (prompt and output) when those words are its output (no special token dropped),
    and with this prompt otherwise."""
    if job.answer_blocks is None:
        return None
    block_size, hashes = job.answer_blocks
    num_shared = len(prompt)
    if len(job.answer_token_ids) == job.output_tokens:
        num_shared += len(job.answer_token_ids)
    return block_size, num_shared, hashes


def next_messages(
    previous: list[dict[str, str]], answer: list[int] | None, user: WordIds
) -> list[dict[str, str]]:
    """A turn's chat messages as `ppd bench` sends them (bench.workloads.chat_messages), from the
    previous turn's: its answer, then this turn's user message. A new list."""
    messages = list(previous)
    answer_text = None if answer is None else words_text(answer).decode()
    append_turn(messages, answer_text, words_text(user.tolist()).decode())
    return messages
