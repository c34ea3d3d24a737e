"""What to send: workload definitions, prompt text, and the request body of each turn.

Prompts are random vocabulary words `w<N>` (see ppd.tokens), so a turn of K new words adds exactly K
tokens on the sim and on the GPU model folder. The history grows: turn k+1's prompt is turn k's
prompt, the answer text, and the new words, joined by single spaces (completions API); the chat API
sends the same history as alternating user/assistant messages.

Prompt words are seeded by (seed, salt, mode, workload, qps, run, conversation). The salt is fresh per
invocation unless given, so no run, and no later invocation against the same engines, starts from
another run's prefix cache; the arrival schedule (arrivals.py) does not depend on mode or salt.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ppd.bench.config import Api, TraceWorkload, TurnShape, WorkloadSpec
from ppd.bench.word_ids import WordIdDrawer
from ppd.errors import UsageError
from ppd.tokens import NUM_WORD_TOKENS
from ppd.traces.formats import is_trace_spec, read_trace_spec
from ppd.traces.replay import Window, window_indices

# (new input words, output tokens) per turn, from the PPD paper's workloads.
BUILTIN_WORKLOADS = {"W1": (512, 256), "W2": (4096, 128), "W3": (256, 1024), "W4": (8192, 64)}
_CUSTOM_RE = re.compile(r"^(\d+)/(\d+)$")
_HUMAN_ROLES = {"human", "user"}
_ASSISTANT_ROLES = {"gpt", "assistant", "chatgpt", "bard", "bing"}


def builtin_workload(name: str, num_turns: int) -> WorkloadSpec:
    """W1..W4 with `num_turns` equal turns per conversation."""
    num_new_words, num_output_tokens = BUILTIN_WORKLOADS[name]
    turns = (TurnShape(num_new_words, num_output_tokens),) * num_turns
    return WorkloadSpec(name, (turns,), "builtin")


def parse_workloads(text: str, num_turns: int, window: Window | None = None) -> tuple[WorkloadSpec, ...]:
    """`W1`, `all`, `IN/OUT` (e.g. 512/256), a conversation file path, or `mooncake:FILE` /
    `azure:FILE` (replayed over `window`); comma-separated."""
    workloads: list[WorkloadSpec] = []
    for item in (part.strip() for part in text.split(",")):
        if is_trace_spec(item):
            workloads.append(trace_workload(item, window or Window()))
        elif item.upper() == "ALL":
            workloads.extend(builtin_workload(name, num_turns) for name in BUILTIN_WORKLOADS)
        elif item.upper() in BUILTIN_WORKLOADS:
            workloads.append(builtin_workload(item.upper(), num_turns))
        elif match := _CUSTOM_RE.match(item):
            shape = TurnShape(int(match.group(1)), int(match.group(2)))
            workloads.append(WorkloadSpec(item.replace("/", "x"), ((shape,) * num_turns,), "custom"))
        elif Path(item).is_file():
            workloads.append(load_conversation_file(Path(item)))
        else:
            raise UsageError(
                f"workload {item!r}: expected W1, W2, W3, W4, all, IN/OUT (e.g. 512/256), an existing file, "
                "mooncake:FILE or azure:FILE"
            )
    return tuple(workloads)


def trace_workload(spec: str, window: Window) -> WorkloadSpec:
    """A trace replay workload; UsageError for a bad file or an empty window."""
    linked = read_trace_spec(spec)
    window_indices(linked.trace, window)  # fail now, not at the first run, when the window is empty
    return WorkloadSpec(linked.trace.name, (), linked.trace.source, TraceWorkload(linked, window))


def load_conversation_file(path: Path) -> WorkloadSpec:
    """A ShareGPT-style file: [{"conversations": [{"from": "human"|"gpt", "value": str}, ...]}, ...].

    Each human message followed by an assistant message is one turn: its new words are the human
    message's word count, its output tokens the answer's word count (both at least 1).
    """
    try:
        entries = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"workload file {path}: cannot read JSON ({exc})") from None
    if not isinstance(entries, list):
        raise UsageError(f"workload file {path}: expected a JSON list of conversations")
    conversations = [shape for entry in entries if (shape := _conversation_shape(entry))]
    if not conversations:
        raise UsageError(f"workload file {path}: no conversation with a human message and an answer")
    return WorkloadSpec(path.stem, tuple(conversations), str(path))


def _conversation_shape(entry: Any) -> tuple[TurnShape, ...]:
    messages = entry.get("conversations") if isinstance(entry, dict) else None
    if not isinstance(messages, list):
        return ()
    turns: list[TurnShape] = []
    pending_words: int | None = None
    for message in messages:
        role = str(message.get("from", "")).lower() if isinstance(message, dict) else ""
        words = len(str(message.get("value", "")).split()) if isinstance(message, dict) else 0
        if role in _HUMAN_ROLES:
            pending_words = words if pending_words is None else pending_words + words
        elif role in _ASSISTANT_ROLES and pending_words is not None:
            turns.append(TurnShape(max(1, pending_words), max(1, words)))
            pending_words = None
    return tuple(turns)


@lru_cache(maxsize=1)
def vocabulary() -> np.ndarray[Any, np.dtype[np.object_]]:
    """All `w<N>` words, built once (~50 ms): call it before a run's clock starts."""
    return np.array([f"w{i}" for i in range(NUM_WORD_TOKENS)], dtype=object)


def random_word_ids(num_words: Sequence[int], seed: int) -> list[np.ndarray[Any, np.dtype[np.int64]]]:
    """The token ids of random_word_texts(num_words, seed), one array per count (word `w<N>` is token
    N): `default_rng(seed).integers(0, NUM_WORD_TOKENS, count)` for each count in turn, drawn as
    `ppd fleet` draws them (bench.word_ids)."""
    return WordIdDrawer().arrays(num_words, seed)


def random_word_texts(num_words: Sequence[int], seed: int) -> list[str]:
    """One text of random `w<N>` words per count, seeded; ~5x faster than a random.Random loop.

    Speed matters: texts are made on the event loop between arrivals, and a slow generator would
    delay the send times and chunk stamps of other requests.
    """
    words = vocabulary()
    return [" ".join(words[ids]) for ids in random_word_ids(num_words, seed)]


def completions_prompt(user_texts: Sequence[str], answers: Sequence[str]) -> str:
    """The prompt of turn len(user_texts): user texts and the answers between them."""
    parts: list[str] = []
    for index, user_text in enumerate(user_texts):
        if index:
            parts.append(answers[index - 1].strip())
        parts.append(user_text)
    return " ".join(parts)


def chat_messages(user_texts: Sequence[str], answers: Sequence[str]) -> list[dict[str, str]]:
    """The messages of turn len(user_texts): alternating user and assistant messages."""
    messages: list[dict[str, str]] = []
    for index, user_text in enumerate(user_texts):
        append_turn(messages, answers[index - 1] if index else None, user_text)
    return messages


def append_turn(messages: list[dict[str, str]], answer: str | None, user_text: str) -> None:
    """Extend a conversation's messages by the last turn's answer (None before the first turn) and
    the next user message, as chat_messages builds them (`ppd fleet` extends its copy turn by turn)."""
    if answer is not None:
        messages.append({"role": "assistant", "content": answer.strip()})
    messages.append({"role": "user", "content": user_text})


def request_body(
    api: Api,
    model: str,
    user_texts: Sequence[str],
    answers: Sequence[str],
    num_output_tokens: int,
    temperature: float | None = None,
) -> dict[str, Any]:
    """The streaming request of the next turn, with an exact output length (ignore_eos).

    temperature None leaves sampling to the server's default (vLLM: the model's generation config);
    0 is greedy, which keeps a dummy-weight model from emitting special tokens that drop out of the
    answer text and break the next turn's prefix-cache hit."""
    body: dict[str, Any] = {"model": model}
    if api == "chat":
        body["messages"] = chat_messages(user_texts, answers)
    else:
        body["prompt"] = completions_prompt(user_texts, answers)
    return _with_sampling(body, num_output_tokens, temperature)


def trace_request_body(
    api: Api, model: str, prompt: str, num_output_tokens: int, temperature: float | None = None
) -> dict[str, Any]:
    """A trace turn's request: the whole prompt as given (chat: one user message holding it)."""
    body: dict[str, Any] = {"model": model}
    if api == "chat":
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    return _with_sampling(body, num_output_tokens, temperature)


def _with_sampling(body: dict[str, Any], num_output_tokens: int, temperature: float | None) -> dict[str, Any]:
    body.update(
        max_tokens=num_output_tokens,
        ignore_eos=True,
        stream=True,
        stream_options={"include_usage": True},
    )
    if temperature is not None:
        body["temperature"] = temperature
    return body


def context_tokens(turns: Sequence[TurnShape]) -> int:
    """Prompt + output tokens of a conversation's last turn (completions API; chat adds role words)."""
    return sum(turn.num_new_words + turn.num_output_tokens for turn in turns)


def api_path(api: Api) -> str:
    """The endpoint of an API."""
    return "/v1/chat/completions" if api == "chat" else "/v1/completions"
