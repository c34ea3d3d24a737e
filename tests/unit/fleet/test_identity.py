"""How the fleet names a turn's conversation to its router: as the proxy would from the bench's request."""

from __future__ import annotations

import numpy as np

from ppd.bench.arrivals import ConversationPlan
from ppd.bench.config import TurnShape
from ppd.bench.workloads import request_body
from ppd.fleet import FleetConfig, HopCosts, fleet_topology
from ppd.fleet.client import BenchClient, _Conversation
from ppd.fleet.clock import EventQueue
from ppd.fleet.fleet import Fleet, TurnJob, turn_identity, words_text
from ppd.proxy.inputs import parse_turn_request
from ppd.tokens import word_to_id

USERS = [[1, 2, 3], [4, 5], [6]]
ANSWERS = [[10, 11], [12, 13, 14]]


def _client(api: str, send_session_id: bool) -> BenchClient:
    from ppd.bench.workloads import parse_workloads

    [workload] = parse_workloads("64/8", 3)
    config = FleetConfig(
        fleet_topology("1p1d"), "ppd", workload, 1.0, api=api, send_session_id=send_session_id,  # type: ignore[arg-type]
        hops=HopCosts(),
    )  # fmt: skip
    clock = EventQueue()
    return BenchClient(config, Fleet(config, clock), clock, lambda row: None)


def _jobs(client: BenchClient, num_turns: int) -> list[TurnJob]:
    """The jobs of a conversation's first num_turns turns as the client sends them (answers: ANSWERS).
    Real objects throughout (a compiled build checks every attribute's type): each job is read from
    the client's turns in flight (in the order sent), sent to a fleet whose clock never runs."""
    plan = ConversationPlan(0, 0.0, tuple(TurnShape(len(words), 8) for words in USERS))
    conversation = _Conversation(plan, "c", [np.array(words, dtype=np.int64) for words in USERS])
    conversation.answer_token_ids = ANSWERS
    for turn in range(1, num_turns + 1):
        client._send(conversation, turn, 0.0)
    return [job for _, job, _ in client._in_flight.values()]


def _job(client: BenchClient, turn: int) -> TurnJob:
    return _jobs(client, turn)[-1]


def test_each_prompt_extends_the_last_into_what_the_engine_tokenizes_from_the_whole_history() -> None:
    user, assistant = word_to_id("user"), word_to_id("assistant")
    for api in ("completions", "chat"):
        jobs = _jobs(_client(api, send_session_id=False), len(USERS))
        prompts = [job.prompt_token_ids.tolist() for job in jobs]
        for turn, job in enumerate(jobs, start=1):
            whole: list[int] = []  # every earlier turn's words, rebuilt from the start
            for index in range(turn):
                if index:
                    whole += ([assistant] if api == "chat" else []) + ANSWERS[index - 1]
                whole += ([user] if api == "chat" else []) + USERS[index]
            whole += [assistant] if api == "chat" else []
            assert prompts[turn - 1] == whole  # unchanged by the later turns made from it
            assert job.num_prompt_words == len(whole) - (api == "chat")


def test_chat_without_session_id_is_named_by_the_messages_the_bench_sends() -> None:
    client = _client("chat", send_session_id=False)
    for turn in (1, 2, 3):
        users = [words_text(ids).decode() for ids in USERS[:turn]]
        answers = [words_text(ids).decode() for ids in ANSWERS[: turn - 1]]
        body = request_body("chat", "m", users, answers, 8)
        proxy_identity = parse_turn_request({}, body, b"{}", is_chat=True).identity
        assert turn_identity(_job(client, turn), send_session_id=False) == proxy_identity
        assert proxy_identity.chat_messages is not None and len(proxy_identity.chat_messages) == 2 * turn - 1


def test_completions_and_session_ids_are_named_as_before() -> None:
    client = _client("completions", send_session_id=False)
    job = _job(client, 2)
    assert job.chat_messages is None
    body = request_body("completions", "m", ["w1 w2 w3", "w4 w5"], ["w10 w11"], 8)
    assert turn_identity(job, send_session_id=False) == parse_turn_request({}, body, b"{}", False).identity
    with_ids = _client("chat", send_session_id=True)
    assert not with_ids.recognised_by_chat
    assert turn_identity(_job(with_ids, 2), send_session_id=True).session_id == "c"
