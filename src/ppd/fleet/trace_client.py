"""The bench's side of a fleet run of a trace replay (bench/trace_loadgen.py on the virtual clock).

Each conversation of the slice arrives at its first turn's time; a later turn is due at its trace
time or when the turn before it completed (plus the think time), whichever is later; a turn whose
context exceeds the engines' max_model_len is a skipped row and its conversation goes on. Prompts
are the bench's (ppd.traces.prompts, same seed rule), as token ids.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ppd.bench.arrivals import ConversationPlan, derive_seed
from ppd.bench.trace_loadgen import SKIPPED_PREFIX
from ppd.fleet.client import BenchClient, _Conversation
from ppd.fleet.clock import EventQueue
from ppd.fleet.config import FleetConfig
from ppd.fleet.fleet import Fleet, PromptIds, TurnJob, words_text
from ppd.results import TurnRow
from ppd.traces.prompts import PromptMaker
from ppd.traces.replay import ReplayTurn


class TraceClient(BenchClient):
    """Trace conversations instead of synthetic ones; rows as the bench's trace replay writes them."""

    def __init__(
        self,
        config: FleetConfig,
        fleet: Fleet,
        clock: EventQueue,
        on_row: Callable[[TurnRow], None],
        max_model_len: int,
    ) -> None:
        super().__init__(config, fleet, clock, on_row)
        trace = config.workload.trace
        if trace is None:
            raise ValueError("TraceClient needs a trace workload")
        seed = derive_seed(
            config.seed, config.prompt_salt, config.mode, config.workload.name, config.qps, config.run
        )
        self.prompts = PromptMaker(seed, trace.linked.trace.block_size)
        self.max_model_len = max_model_len

    def _arrive(self, plan: ConversationPlan) -> None:
        conversation = _Conversation(plan, self._session_id(plan), [])
        self.num_active += 1
        self._send(conversation, 1, self.clock.now_s)

    def _send(self, conversation: _Conversation, turn: int, due_s: float) -> None:
        step = _steps(conversation)[turn - 1]
        num_context_tokens = step.num_input_tokens + step.num_output_tokens
        if num_context_tokens > self.max_model_len:
            error = (
                f"{SKIPPED_PREFIX} context {num_context_tokens} tokens > max_model_len {self.max_model_len}"
            )
            row = self._unsent_row(conversation, turn, due_s, error)
            self.on_row(
                replace(row, trace_request=step.request_index, history_tokens=step.num_history_tokens)
            )
            conversation.answer_token_ids.append([])  # counts the turn as done (cut_off's turn number)
            self._next(conversation, turn, self.clock.now_s)
            return
        if not any(conversation.answer_token_ids):
            self.start_times_s.append(self.clock.now_s)  # the conversation's first sent turn
        prompt_ids = self.prompts.prompt_ids(step.request_index, step.num_input_tokens, step.block_ids)
        prompt = PromptIds((prompt_ids,))
        job = TurnJob(
            conversation.session_id,
            prompt,
            len(prompt),
            step.num_output_tokens,
            lambda done: self._turn_done(conversation, turn, due_s, done),
            itl_ms=[] if self.config.record_itl else None,
            # the chat API: one user message holding the prompt (bench.workloads.trace_request_body)
            chat_messages=[{"role": "user", "content": words_text(prompt_ids).decode()}]
            if self.recognised_by_chat
            else None,
        )
        self._in_flight[id(job)] = (conversation, job, due_s)
        self.fleet.send(job)

    def _turn_done(self, conversation: _Conversation, turn: int, due_s: float, job: TurnJob) -> None:
        del self._in_flight[id(job)]
        step = _steps(conversation)[turn - 1]
        row = self._row(conversation, turn, due_s, job, None)
        self.on_row(replace(row, trace_request=step.request_index, history_tokens=step.num_history_tokens))
        if not row.ok:
            self._not_sent(conversation, turn + 1, self.clock.now_s, f"turn {turn} failed")
            return
        conversation.answer_token_ids.append(job.answer_token_ids or [0])
        # The trace bench makes the next request while this one is in flight: no prompt to encode.
        send_s, ready_s = self.next_send_s(job, 0)
        self._next(conversation, turn, ready_s, send_s)

    def _next(self, conversation: _Conversation, turn: int, ready_s: float, send_s: float = 0.0) -> None:
        """Turn + 1 is due at its trace time or at ready_s, whichever is later, and leaves then or
        once the bench's own work is done (send_s), whichever is later."""
        steps = _steps(conversation)
        if turn == len(steps):
            self.num_active -= 1
            return
        due_s = max(steps[turn].due_s, ready_s)
        self.clock.at(max(due_s, send_s), self._send, conversation, turn + 1, due_s)


def _steps(conversation: _Conversation) -> tuple[ReplayTurn, ...]:
    replay = conversation.plan.replay
    if replay is None:
        raise ValueError("a trace plan without its replay")
    return replay.turns
