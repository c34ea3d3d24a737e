"""Calibration against an idle-engine probe file (tools/engine_probe.py), e.g. the one-H200 probes.

The probe's points, by key (ms; medians over repeats):

    ttft_<N>        one request alone, a prompt of N tokens, time to the first token
    turn2_<H>       256 new tokens after a cached history of H tokens, time to the first token
    step_c<C>_b<B>  B requests with C-token prompts all decoding: the step time (median gap)
    mixed_n<N>_p<P> a P-token prompt sent while N requests decode: its time to the first token

`predict` gives each point as the time model prices it, following the scheduler's rules (chunks of
max_num_batched_tokens, running decodes first), without running an engine, so a fit can evaluate it
thousands of times; the HTTP measurement runs the probe itself against a `ppd sim`.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ppd.sim.timing import (
    ApiServer,
    BatchShape,
    Profile,
    api_overhead_s,
    prefill_attention_pairs,
    step_duration_s,
)

ROOT = Path(__file__).resolve().parents[1]
# Profiles fitted to a probe file, and that file (the GPU run it comes from is in its README).
PROBE_REFERENCES = {
    "h200-llama3.1-8b": ROOT / "results/h200-vllm0.25.1-single/probe/h200-probe.jsonl",
}
MAX_NUM_BATCHED_TOKENS = 8192
TURN2_NEW_TOKENS = 256
DECODE_OUTPUT_TOKENS = 128  # tools/engine_probe.py: the decode bursts' answers
MIXED_DECODER_PROMPT = 512
SIM_HTTP_MS = 0.5  # loopback HTTP + handler time of a sim, added to every modeled TTFT


@dataclass(frozen=True)
class ProbePoint:
    key: str
    group: str  # ttft | step | mixed
    samples_ms: tuple[float, ...]
    decoder_context: int = 0  # mixed: mean context of the decoders when the prompt arrived

    @property
    def value_ms(self) -> float:
        return statistics.median(self.samples_ms)


def load_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def probe_points(records: list[dict[str, Any]]) -> dict[str, ProbePoint]:
    """Every point of a probe file that has a value."""
    samples: dict[tuple[str, str], list[float]] = defaultdict(list)
    contexts: dict[str, list[int]] = defaultdict(list)
    for record in records:
        kind = record["kind"]
        if kind == "ttft" and record.get("ttft_ms") is not None:
            samples[(f"ttft_{record['tokens']}", "ttft")].append(record["ttft_ms"])
        elif kind == "turn2" and record.get("ttft_ms") is not None:
            samples[(f"turn2_{record['history']}", "ttft")].append(record["ttft_ms"])
        elif kind == "decode" and record.get("step_ms_median") is not None:
            key = f"step_c{record['context']}_b{record['batch']}"
            samples[(key, "step")].append(record["step_ms_median"])
        elif kind == "mixed":
            for injection in record["injections"]:
                if injection.get("ttft_ms") is None:
                    continue
                key = f"mixed_n{record['decoders']}_p{injection['tokens']}"
                samples[(key, "mixed")].append(injection["ttft_ms"])
                contexts[key].append(_decoder_context(record["decoder_chunks_ms"], injection["sent_ms"]))
    points = {}
    for (key, group), values in samples.items():
        context = round(statistics.fmean(contexts[key])) if contexts[key] else 0
        points[key] = ProbePoint(key, group, tuple(values), context)
    return points


def _decoder_context(decoder_chunks_ms: list[list[float]], sent_ms: float) -> int:
    """Tokens a decoder had (prompt + answer so far) when an injected prompt was sent."""
    counts = [sum(1 for t in chunks if t < sent_ms) for chunks in decoder_chunks_ms if chunks]
    return MIXED_DECODER_PROMPT + (round(statistics.fmean(counts)) if counts else 0)


# ---------------------------------------------------------------- the time model's prediction


def _prefill_steps_ms(profile: Profile, num_tokens: int, num_cached: int, decodes: tuple[int, int]) -> float:
    """Steps that compute num_tokens new tokens after num_cached, each beside `decodes` (count,
    context tokens) of running requests, in chunks of what the token budget leaves."""
    num_decodes, context = decodes
    total_ms, done = 0.0, 0
    while done < num_tokens:
        chunk = min(num_tokens - done, MAX_NUM_BATCHED_TOKENS - num_decodes)
        shape = BatchShape(
            num_prefill_tokens=chunk,
            num_attention_pairs=prefill_attention_pairs(num_cached + done, chunk),
            num_decode_seqs=num_decodes,
            num_decode_context_tokens=num_decodes * context,
            num_prefill_chunks=1 if chunk > 1 else 0,
        )
        total_ms += step_duration_s(profile.step, shape) * 1e3
        done += chunk
    return total_ms


def _api_ms(profile: Profile, num_prompt_tokens: int) -> float:
    return api_overhead_s(profile, num_prompt_tokens) * 1e3


def _api_server(profile: Profile) -> ApiServer:
    return ApiServer(
        stream_token_s=profile.api_stream_token_us * 1e-6,
        step_cost_s=profile.api_step_us * 1e-6,
        request_s=profile.api_request_ms * 1e-3,
        merge_max_seqs=profile.api_merge_max_seqs,
        max_load=profile.api_max_load,
    )


def _decode_step_ms(profile: Profile, num_decodes: int, context: int) -> float:
    """A decode step as the clients see it: the engine's, or the API server's time to stream it."""
    shape = BatchShape(num_decode_seqs=num_decodes, num_decode_context_tokens=num_decodes * context)
    return _api_server(profile).step_s(step_duration_s(profile.step, shape), num_decodes) * 1e3


def _stream_load(profile: Profile, num_decodes: int, context: int) -> float:
    """The share of the API server streaming num_decodes requests takes (timing.ApiServer)."""
    api = _api_server(profile)
    api.start_step(_decode_step_ms(profile, num_decodes, context) * 1e-3, num_decodes)
    return min(profile.api_max_load, api.stream_load)


def predict(profile: Profile, point: ProbePoint) -> float:
    """The point as the time model gives it, in ms."""
    kind, _, rest = point.key.partition("_")
    if kind == "ttft":
        num_tokens = int(rest)
        return _api_ms(profile, num_tokens) + _prefill_steps_ms(profile, num_tokens, 0, (0, 0)) + SIM_HTTP_MS
    if kind == "turn2":
        history = int(rest)
        prompt = history + TURN2_NEW_TOKENS
        prefill_ms = _prefill_steps_ms(profile, TURN2_NEW_TOKENS, history, (0, 0))
        return _api_ms(profile, prompt) + prefill_ms + SIM_HTTP_MS
    if kind == "step":
        context_text, batch_text = rest.split("_")
        # The window where all decode spans their answers' middle: context = prompt + half an answer.
        context = int(context_text[1:]) + DECODE_OUTPUT_TOKENS // 2
        return _decode_step_ms(profile, int(batch_text[1:]), context)
    if kind == "mixed":
        decoders_text, prompt_text = rest.split("_")
        num_decoders, num_tokens = int(decoders_text[1:]), int(prompt_text[1:])
        decodes = (num_decoders, point.decoder_context)
        # It arrives mid-step on average: half a decode step, then the steps of its prefill.
        wait_ms = 0.5 * _decode_step_ms(profile, *decodes)
        prefill_ms = _prefill_steps_ms(profile, num_tokens, 0, decodes)
        tokenize_ms = profile.api_overhead_per_token_us * 1e-3 * num_tokens  # off the loaded loop
        intake_ms = profile.api_overhead_ms / (1.0 - _stream_load(profile, *decodes)) + tokenize_ms
        return intake_ms + wait_ms + prefill_ms + SIM_HTTP_MS
    raise ValueError(f"unknown probe point {point.key}")
