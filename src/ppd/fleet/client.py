"""The bench's side of a fleet run: conversations arrive, send their turns, and become rows.

What to send and when comes from ppd.bench itself (arrivals.plan_conversations, the prompt seeds of
loadgen, workloads.random_word_id_lists), so a fleet run and `ppd bench` against HTTP engines send the
same conversations at the same times. Rows are built by the bench's own metric code
(bench.metrics.turn_timings) from the first and last content-chunk times; the tokens in between
are not kept unless ITL is asked for, so memory does not grow with simulated time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ppd.bench.arrivals import ConversationPlan, derive_seed
from ppd.bench.loadgen import cached_share
from ppd.bench.metrics import turn_timings
from ppd.bench.workloads import chat_messages, random_word_id_lists
from ppd.fleet.clock import EventQueue
from ppd.fleet.config import FleetConfig
from ppd.fleet.fleet import Fleet, TurnJob, words_text
from ppd.results import TurnRow
from ppd.tokens import word_to_id

_USER_ID = word_to_id("user")
_ASSISTANT_ID = word_to_id("assistant")


@dataclass
class _Conversation:
    """A conversation in flight: its plan, its user turns' word ids, the answers so far."""

    plan: ConversationPlan
    session_id: str
    user_token_ids: list[list[int]]
    answer_token_ids: list[list[int]] = field(default_factory=list)


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
        self._in_flight: dict[int, tuple[_Conversation, TurnJob]] = {}

    def start(self, plans: list[ConversationPlan]) -> None:
        """Schedule every conversation's arrival; prompts are made when each arrives."""
        for plan in plans:
            self.clock.at(plan.arrival_s, self._arrive, plan)

    def _arrive(self, plan: ConversationPlan) -> None:
        config = self.config
        seed = derive_seed(
            config.seed,
            config.prompt_salt,
            config.mode,
            config.workload.name,
            config.qps,
            config.run,
            plan.index,
        )
        counts = [shape.num_new_words for shape in plan.turns]
        user_ids = random_word_id_lists(counts, seed)
        conversation = _Conversation(plan, self._session_id(plan), user_ids)
        self.num_active += 1
        self.start_times_s.append(self.clock.now_s)
        self._send(conversation, 1, self.clock.now_s)

    def _session_id(self, plan: ConversationPlan) -> str:
        config = self.config
        run_key = f"{config.mode}-{config.workload.name}-q{config.qps:g}-r{config.run}"
        return f"fleet-{config.prompt_salt}-{run_key}-c{plan.index}"

    def _send(self, conversation: _Conversation, turn: int, due_s: float) -> None:
        prompt, num_words = self._prompt(conversation, turn)
        shape = conversation.plan.turns[turn - 1]
        job = TurnJob(
            conversation.session_id,
            prompt,
            num_words,
            shape.num_output_tokens,
            lambda done: self._turn_done(conversation, turn, due_s, done),
            itl_ms=[] if self.config.record_itl else None,
            chat_messages=self._chat_messages(conversation, turn) if self.recognised_by_chat else None,
        )
        self._in_flight[id(job)] = (conversation, job)
        self.fleet.send(job)

    @property
    def recognised_by_chat(self) -> bool:
        """Whether the router names conversations by their chat messages (`--api chat
        --no-session-id`): then each turn carries the messages the bench sends."""
        return self.config.api == "chat" and not self.config.send_session_id

    def _chat_messages(self, conversation: _Conversation, turn: int) -> list[dict[str, str]]:
        """The messages of turn `turn` as `ppd bench` sends them (bench.workloads.chat_messages)."""
        users = [words_text(ids).decode() for ids in conversation.user_token_ids[:turn]]
        answers = [words_text(ids).decode() for ids in conversation.answer_token_ids[: turn - 1]]
        return chat_messages(users, answers)

    def _prompt(self, conversation: _Conversation, turn: int) -> tuple[list[int], int]:
        """Token ids of turn `turn`'s prompt and the proxy's word-count estimate of it
        (bench.workloads.completions_prompt / chat_messages, as the engine tokenizes them)."""
        prompt: list[int] = []
        is_chat = self.config.api == "chat"
        for index in range(turn):
            if index:
                if is_chat:
                    prompt.append(_ASSISTANT_ID)
                prompt += conversation.answer_token_ids[index - 1]
            if is_chat:
                prompt.append(_USER_ID)
            prompt += conversation.user_token_ids[index]
        if is_chat:
            prompt.append(_ASSISTANT_ID)  # the generation prompt, which the proxy's estimate leaves out
            return prompt, len(prompt) - 1
        return prompt, len(prompt)

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
        next_due_s = self.clock.now_s + self.config.think_time_s
        self.clock.at(next_due_s, self._send, conversation, turn + 1, next_due_s)

    def cut_off(self, reason: str) -> None:
        """The drain timeout: turns in flight fail, later turns are not sent (bench.loadgen)."""
        for conversation, job in list(self._in_flight.values()):
            turn = len(conversation.answer_token_ids) + 1
            job.error = reason
            self.on_row(self._row(conversation, turn, job.sent_s, job, reason))
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
