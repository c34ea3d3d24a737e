"""`ppd proxy` over real HTTP in front of real `ppd sim` engines: every mode, switches, identity."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from helpers import Reply, http_call

SIM = ("sim", "--time-scale", "0.05")
TOKEN = "s3cret"


def call(base: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Reply:
    data = None if body is None else json.dumps(body).encode()
    return http_call(base + path, data, {"Content-Type": "application/json", **(headers or {})})


def admin(base: str, path: str) -> Reply:
    return call(base, path, {}, {"Authorization": f"Bearer {TOKEN}"})


def events(reply: Reply) -> list[dict[str, Any]]:
    lines = reply.body.decode().split("\n\n")
    return [json.loads(line[6:]) for line in lines if line.startswith("data: {")]


def answer_text(reply: Reply, is_chat: bool) -> str:
    parts = []
    for event in events(reply):
        for choice in event.get("choices", []):
            parts.append(choice["delta"].get("content", "") if is_chat else choice["text"])
    return "".join(parts)


def usage(reply: Reply) -> dict[str, Any]:
    return next(event["usage"] for event in events(reply) if event.get("usage"))


def words(start: int, count: int) -> str:
    return " ".join(f"w{i}" for i in range(start, start + count))


def completion(base: str, prompt: str, session: str | None = None, max_tokens: int = 8) -> Reply:
    body = {"model": "llama", "prompt": prompt, "max_tokens": max_tokens, "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    headers = {"X-Session-ID": session} if session else {}
    reply = call(base, "/v1/completions", body, headers)
    assert reply.status == 200, reply.body
    return reply


def route(reply: Reply) -> tuple[str, int, str]:
    return reply.headers["x-ppd-route"], int(reply.headers["x-ppd-turn"]), reply.headers["x-ppd-upstream"]


@dataclass
class Topology:
    proxy: str
    prefills: list[str]
    decodes: list[str]


def start_pd(ppd_server, mode: str, num_prefill: int = 1, num_decode: int = 1, *extra: str) -> Topology:
    prefills = [ppd_server(*SIM).url for _ in range(num_prefill)]
    decodes = [ppd_server(*SIM).url for _ in range(num_decode)]
    args = ["proxy", "--mode", mode, "--prefill", *prefills, "--decode", *decodes, *extra]
    return Topology(ppd_server(*args).url, prefills, decodes)


def next_messages(messages: list[dict], answer: str, user: str) -> list[dict]:
    return [*messages, {"role": "assistant", "content": answer}, {"role": "user", "content": user}]


def test_ppd_turn_one_pd_then_direct_to_the_decode_with_its_prefix_cache(ppd_server) -> None:
    topology = start_pd(ppd_server, "ppd")
    proxy, decodes = topology.proxy, topology.decodes
    first = completion(proxy, words(0, 64), session="c1")
    assert route(first) == ("pd", 1, decodes[0])
    assert float(first.headers["x-ppd-prefill-ms"]) > 0
    second = completion(proxy, words(0, 64) + answer_text(first, False) + " " + words(100, 40), session="c1")
    assert route(second) == ("ppd-direct", 2, decodes[0])
    assert "x-ppd-prefill-ms" not in second.headers
    assert usage(second)["prompt_tokens_details"]["cached_tokens"] >= 32  # D prefilled only the tail


def test_pd_every_turn_through_prefill_to_the_holding_decode(ppd_server) -> None:
    topology = start_pd(ppd_server, "pd", 1, 2)
    proxy, decodes = topology.proxy, topology.decodes
    first = completion(proxy, words(0, 48), session="c1")
    kind, turn, decode = route(first)
    assert (kind, turn) == ("pd", 1) and decode in decodes
    for number in (2, 3):
        reply = completion(proxy, words(0, 48 * number), session="c1")
        assert route(reply) == ("pd", number, decode)
        assert "x-ppd-prefill-ms" in reply.headers
    status = call(proxy, "/status").json()
    assert status["options"]["pd_decode_affinity"] is True
    assert status["routes"] == {"pd": 3, "ppd-direct": 0, "replica": 0}


def test_replication_affinity_with_explicit_replicas(ppd_server) -> None:
    replicas = [ppd_server(*SIM).url for _ in range(2)]
    proxy = ppd_server("proxy", "--mode", "replication", "--replica", *replicas).url
    homes: dict[str, str] = {}
    for turn in (1, 2, 3):
        for conversation in ("a", "b", "c", "d"):
            reply = completion(proxy, words(0, 20 * turn), session=conversation)
            kind, number, upstream = route(reply)
            assert (kind, number) == ("replica", turn)
            assert homes.setdefault(conversation, upstream) == upstream
    assert set(homes.values()) == set(replicas)
    assert call(proxy, "/mode/ppd", {}).status == 409  # no P or D instances to route to


def test_replication_without_replicas_uses_the_pd_instances(ppd_server) -> None:
    topology = start_pd(ppd_server, "replication")
    proxy, prefills, decodes = topology.proxy, topology.prefills, topology.decodes
    upstreams = {route(completion(proxy, words(0, 10), session=name))[2] for name in ("a", "b", "c", "d")}
    assert upstreams == {prefills[0], decodes[0]}
    assert call(proxy, "/status").json()["replicas_are_pd_instances"] is True


def test_mode_switch_between_turns_of_one_conversation(ppd_server) -> None:
    topology = start_pd(ppd_server, "ppd", 1, 1, "--admin-token", TOKEN)
    proxy, decodes = topology.proxy, topology.decodes
    assert route(completion(proxy, words(0, 32), session="s"))[:2] == ("pd", 1)
    assert call(proxy, "/mode/pd", {}).status == 401  # no token
    assert admin(proxy, "/mode/pd").json() == {"mode": "pd", "previous": "ppd"}
    assert route(completion(proxy, words(0, 64), session="s")) == ("pd", 2, decodes[0])
    assert admin(proxy, "/mode/replication").status == 200
    assert route(completion(proxy, words(0, 96), session="s")) == ("replica", 3, decodes[0])
    assert admin(proxy, "/mode/ppd").status == 200
    assert route(completion(proxy, words(0, 128), session="s")) == ("ppd-direct", 4, decodes[0])
    assert call(proxy, "/mode").json() == {"mode": "ppd"}
    assert admin(proxy, "/mode/fastest").status == 400


def test_two_prefills_two_decodes_spread_and_keep_conversations(ppd_server) -> None:
    topology = start_pd(ppd_server, "ppd", 2, 2)
    proxy, prefills, decodes = topology.proxy, topology.prefills, topology.decodes
    firsts = {name: completion(proxy, words(0, 16), session=name) for name in ("a", "b", "c", "d")}
    homes = {name: route(reply)[2] for name, reply in firsts.items()}
    assert set(homes.values()) == set(decodes)
    for name in firsts:
        assert route(completion(proxy, words(0, 32), session=name)) == ("ppd-direct", 2, homes[name])
    used_prefills = {u["url"] for u in call(proxy, "/status").json()["upstreams"] if u["num_requests"]}
    assert set(prefills) <= used_prefills


def test_history_recognition_for_completions_and_chat(ppd_server) -> None:
    topology = start_pd(ppd_server, "ppd")
    proxy = topology.proxy
    prompt = words(0, 300)  # longer than the index's head, so the long-prompt path is exercised
    first = completion(proxy, prompt)
    # vLLM's answer text starts with a space (" w12 w34"), so prompt + answer is the history as is.
    second = completion(proxy, prompt + answer_text(first, False) + " w7 w8")
    assert route(second)[:2] == ("ppd-direct", 2)
    unrelated = completion(proxy, words(5, 40))
    assert route(unrelated)[:2] == ("pd", 1)

    messages = [{"role": "user", "content": words(0, 30)}]
    chat = {"model": "llama", "max_tokens": 6, "stream": True}
    reply = call(proxy, "/v1/chat/completions", {**chat, "messages": messages})
    assert reply.status == 200 and route(reply)[:2] == ("pd", 1)
    messages = next_messages(messages, answer_text(reply, True), "w3")
    reply = call(proxy, "/v1/chat/completions", {**chat, "messages": messages})
    assert route(reply)[:2] == ("ppd-direct", 2)
    messages = next_messages(messages, answer_text(reply, True), "w4")
    plain = call(proxy, "/v1/chat/completions", {**chat, "stream": False, "messages": messages})
    assert plain.status == 200 and route(plain)[:2] == ("ppd-direct", 3)
    messages = next_messages(messages, plain.json()["choices"][0]["message"]["content"], "w5")
    reply = call(proxy, "/v1/chat/completions", {**chat, "messages": messages})
    assert route(reply)[:2] == ("ppd-direct", 4)  # recognised from a non-streamed answer too


def test_conversation_id_in_the_body_and_clear(ppd_server) -> None:
    topology = start_pd(ppd_server, "ppd", 1, 1, "--admin-token", TOKEN)
    proxy = topology.proxy
    body = {"model": "llama", "prompt": words(0, 10), "max_tokens": 4, "conversation_id": "body-id"}
    assert route(call(proxy, "/v1/completions", body))[:2] == ("pd", 1)
    again = call(proxy, "/v1/completions", {**body, "prompt": words(0, 20)})
    assert route(again)[:2] == ("ppd-direct", 2)
    assert "choices" in again.json()
    assert call(proxy, "/conversations/clear", {}).status == 401
    assert admin(proxy, "/conversations/clear").json() == {"cleared": 1}
    assert call(proxy, "/status").json()["conversations"] == 0
    assert route(call(proxy, "/v1/completions", body))[:2] == ("pd", 1)
