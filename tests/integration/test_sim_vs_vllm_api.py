"""The sim's API against golden transcripts of real vLLM 0.25.1 (tests/fixtures/vllm-0.25.1/, recorded
on 2x H100 by tools/record_transcripts.py with P at :8100 and D at :8200, max_model_len 32768).

Every recorded request is replayed, in the recorded order, against two real `ppd sim` processes (P and
D, --max-model-len 32768) and the answers are compared with the recording: status, content type, JSON
field names and types recursively, SSE framing, error shapes and types, the P->D kv_transfer_params
and cached_tokens. Values that must differ (ids of engines and leases, timestamps, addresses, the
generated words, the version string) are compared by type and format only.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import start_ppd

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "vllm-0.25.1"
SIM = ("sim", "--time-scale", "0.05", "--max-model-len", "32768", "--port", "0")
# The order of tools/record_transcripts.py: later answers depend on what earlier ones cached.
ORDER = (
    "models", "version", "tokenize", "completion", "completion_cached", "completion_stream",
    "completion_token_ids", "chat", "chat_stream", "pd_prefill", "pd_decode", "pd_turn2_direct",
    "error_bad_json", "error_missing_prompt", "error_max_tokens_zero", "error_max_tokens_type",
    "error_unknown_model", "error_too_long", "error_not_found",
)  # fmt: skip
SENT_TO_DECODE = {"pd_decode", "pd_turn2_direct"}
# Keys whose values differ by design; only their types must match.
VOLATILE_KEYS = {
    "created", "system_fingerprint", "remote_engine_id", "remote_request_id", "remote_host", "remote_port",
    "root", "version",
}  # fmt: skip
GENERATED_TEXT_KEYS = {"text", "content"}
ANSWER_TEXT = re.compile(r"( w\d+)*")


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def exchange(base_url: str, recorded_request: dict[str, Any], body: Any) -> dict[str, Any]:
    """Send a recorded request as tools/record_transcripts.py sent it; the answer in the same form."""
    raw = recorded_request["raw"]
    data = raw.encode() if raw is not None else (json.dumps(body).encode() if body is not None else None)
    path = recorded_request["path"]
    request = urllib.request.Request(base_url + path, data=data, method=recorded_request["method"])
    if data is not None:
        request.add_header("Content-Type", "application/json")
    request.add_header("X-Request-Id", f"golden-{path.strip('/').replace('/', '-')}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, headers, payload = response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        status, headers, payload = exc.code, exc.headers, exc.read()
    text = payload.decode()
    content_type = headers.get("Content-Type", "")
    parsed = json.loads(text) if "json" in content_type else None
    return {"status": status, "content_type": content_type, "json": parsed,
            "text": None if parsed is not None else text}  # fmt: skip


@pytest.fixture(scope="module")
def replayed() -> Iterator[dict[str, dict[str, Any]]]:
    """Every recorded exchange replayed against a sim P and a sim D, by name."""
    prefill, decode = start_ppd(*SIM), start_ppd(*SIM)
    try:
        answers: dict[str, dict[str, Any]] = {}
        for name in ORDER:
            recorded = load(name)["request"]
            body = recorded["body"]
            if name == "pd_decode":  # D pulls what the sim P offered, as the recording did from vLLM's P
                body = {**body, "kv_transfer_params": answers["pd_prefill"]["json"]["kv_transfer_params"]}
            target = decode if name in SENT_TO_DECODE else prefill
            answers[name] = exchange(target.url, recorded, body)
        yield answers
    finally:
        decode.stop()
        prefill.stop()


def differences(real: Any, sim: Any, path: str = "$") -> list[str]:
    """Where the sim's JSON differs from vLLM's: missing/extra fields, types, and values except
    the volatile ones (types only) and generated text (format and word count only)."""
    key = path.rsplit(".", 1)[-1]
    if type(real) is not type(sim):
        return [f"{path}: vLLM has {type(real).__name__} {real!r:.60}, sim {type(sim).__name__} {sim!r:.60}"]
    if isinstance(real, dict):
        found = [f"{path}.{k}: missing in the sim" for k in real if k not in sim]
        found += [f"{path}.{k}: not in vLLM's answer" for k in sim if k not in real]
        for k in real.keys() & sim.keys():
            found += differences(real[k], sim[k], f"{path}.{k}")
        return found
    if isinstance(real, list):
        found = [] if len(real) == len(sim) else [f"{path}: {len(real)} items (vLLM), {len(sim)} (sim)"]
        if re.search(r"remote_block_ids(\[\d+\])?$", path) and all(isinstance(x, int) for x in real + sim):
            return found  # block numbers differ between engines; their count may not
        for index, (a, b) in enumerate(zip(real, sim, strict=False)):
            found += differences(a, b, f"{path}[{index}]")
        return found
    if key in VOLATILE_KEYS or re.search(r"permission\[\d+\]\.id$", path):
        return []
    if key in GENERATED_TEXT_KEYS and isinstance(real, str):
        if ANSWER_TEXT.fullmatch(real) and not (
            ANSWER_TEXT.fullmatch(sim) and real.count(" w") == sim.count(" w")
        ):
            return [f"{path}: vLLM's answer {real!r:.40} has {real.count(' w')} words, sim's {sim!r:.40}"]
        return []
    if key == "message" and path.startswith("$.error"):
        return []  # compared by error_message_differences
    return [] if real == sim else [f"{path}: vLLM {real!r:.80}, sim {sim!r:.80}"]


def sse_events(text: str) -> list[str]:
    assert text.endswith("\n\n"), "an SSE stream ends with a blank line"
    events = text[:-2].split("\n\n")
    assert all(event.startswith("data: ") and "\n" not in event for event in events), events
    return [event[len("data: ") :] for event in events]


def stream_differences(real_text: str, sim_text: str) -> list[str]:
    real, sim = sse_events(real_text), sse_events(sim_text)
    found = [] if len(real) == len(sim) else [f"{len(real)} SSE events from vLLM, {len(sim)} from the sim"]
    if sim[-1] != "[DONE]":
        found.append(f"the sim's last event is {sim[-1]!r:.60}, not [DONE]")
    for index, (a, b) in enumerate(zip(real[:-1], sim[:-1], strict=False)):
        found += differences(json.loads(a), json.loads(b), f"event[{index}]")
    return found


def error_message_differences(real: dict[str, Any], sim: dict[str, Any]) -> list[str]:
    """vLLM's own checks: the same words. Schema errors ("Bad Request"): the same pydantic detail up to
    the echoed input (vLLM appends its traceback's file and line)."""
    real_message, sim_message = real["error"]["message"], sim["error"]["message"]
    if real["error"]["type"] == "Bad Request":
        real_message, sim_message = (m.split(", 'input':")[0] for m in (real_message, sim_message))
    if real_message == sim_message:
        return []
    return [f"error message: vLLM {real_message!r}, sim {sim_message!r}"]


def test_every_fixture_is_replayed() -> None:
    assert sorted(path.stem for path in FIXTURES.glob("*.json")) == sorted(ORDER)


@pytest.mark.parametrize("name", ORDER)
def test_sim_answers_like_vllm(name: str, replayed: dict[str, dict[str, Any]]) -> None:
    real, sim = load(name), replayed[name]
    assert sim["status"] == real["status"]
    assert sim["content_type"] == real["content_type"]
    found = differences(real["json"], sim["json"])
    if real["text"] is not None and real["content_type"].startswith("text/event-stream"):
        found += stream_differences(real["text"], sim["text"])
    if isinstance(real["json"], dict) and "error" in real["json"] and "error" in (sim["json"] or {}):
        found += error_message_differences(real["json"], sim["json"])
    assert not found, "\n".join(found)


def test_pd_exchange_and_cached_tokens(replayed: dict[str, dict[str, Any]]) -> None:
    """The P->D handshake and prefix caching behave as recorded, value by value."""
    real_p = load("pd_prefill")["json"]["kv_transfer_params"]
    sim_p = replayed["pd_prefill"]["json"]["kv_transfer_params"]
    assert list(sim_p) == list(real_p)  # the same fields, in vLLM's order
    assert len(sim_p["remote_block_ids"][0]) == len(real_p["remote_block_ids"][0]) == 7  # 100 tokens / 16
    assert (sim_p["remote_num_tokens"], sim_p["tp_size"]) == (real_p["remote_num_tokens"], real_p["tp_size"])

    def cached(name: str) -> int:
        answer = replayed[name]
        if answer["json"] is not None:
            return int(answer["json"]["usage"]["prompt_tokens_details"]["cached_tokens"])
        usage_event = json.loads(sse_events(answer["text"])[-2])
        return int(usage_event["usage"]["prompt_tokens_details"]["cached_tokens"])

    # repeated 64-token prompt + 1 word: all 4 full blocks; chat repeated: 16 of 22;
    # D after the pull: the whole prompt; turn 2 straight to D: the prompt's 6 full blocks.
    expected = {"completion": 0, "completion_cached": 64, "chat": 0, "chat_stream": 16, "pd_prefill": 0,
                "pd_decode": 100, "pd_turn2_direct": 96}  # fmt: skip
    assert {name: cached(name) for name in expected} == expected


def test_answers_are_words_after_spaces(replayed: dict[str, dict[str, Any]]) -> None:
    """vLLM's text has a space before every generated word; a client joining turns relies on it."""
    completion = replayed["completion"]["json"]["choices"][0]["text"]
    assert ANSWER_TEXT.fullmatch(completion) and completion.count(" w") == 8
    events = sse_events(replayed["completion_stream"]["text"])[:-2]  # without the usage chunk and [DONE]
    deltas = [json.loads(event)["choices"][0]["text"] for event in events]
    assert len(deltas) == 8 and all(re.fullmatch(r" w\d+", delta) for delta in deltas)
