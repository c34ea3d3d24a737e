"""Probe one idle engine (vLLM or `ppd sim`): what a step costs by batch composition.

Usage: python tools/engine_probe.py --url http://127.0.0.1:8100 --out probe.jsonl [--sections ...]
(ppd importable: installed, or PYTHONPATH=src as tools/gpu/h200/session.sh sets it)

Sections, in order (each output line is one JSON record; raw client-side stamps are kept, in ms
since the record's own start, so a fit can be redone offline from the file alone):

- ttft: one request at a time, prompts of 128 to 32,000 tokens, 3 each, 2 output tokens.
- turn2: a history of H tokens sent once (cached), then the same history + 256 new tokens
  (H = 512, 4,096, 16,384): the cost of new tokens attending to a long cached context.
- decode: B concurrent requests with C-token prompts and 128 output tokens each; the step time is
  measured in the window where all B are decoding (after the last first token, before the first
  request ends). C = 512 at B = 1..256, C = 4,096 at B = 1..128, C = 16,384 at B = 1 and 16.
- mixed: N decoders stream (512-token prompts, long answers); one prefill of P tokens at a time is
  injected (P = 128..8,192, 2 each); the decoders' inter-token gaps around each injection give the
  cost of a step that carries a prefill chunk beside N decodes.
- loaded (not in the default set): the steps of a loaded long-prompt workload (W2, W4 past
  saturation), one kind at a time: N decoders with 4,096-token prompts stream while prefills are
  injected: a fresh 4,096 or 8,192, a turn 2 (a 4,224-token history sent first and cached, then it
  plus 4,096 new tokens; W4's 8,256 + 8,192), and two fresh 4,096s sent together (does the engine
  pack a second waiting prefill into the step, as its token budget allows?). Every decoder's stamps
  are kept only for the first four; `stall` sums the decoders' gaps while each injection waits.

Around every section it diffs the engine's `vllm:*` / `ppd_sim:*` Prometheus series (server-side
queue, prefill and decode times, tokens per step). Prompts are random `w<N>` words: one token each
on the sim and on the word-level tokenizer of the dummy-weight model folder. Greedy sampling and
`ignore_eos`, so every request produces exactly its max_tokens.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from ppd.prometheus import scrape_engine_series, series_diff

NUM_WORDS = 128000
TTFT_SIZES = (128, 512, 1024, 2048, 4096, 8192, 16384, 32000)
TURN2_HISTORIES = (512, 4096, 16384)
TURN2_NEW_TOKENS = 256
DECODE_GRID = ((512, (1, 8, 32, 64, 128, 256)), (4096, (1, 16, 64, 128)), (16384, (1, 16)))
DECODE_OUTPUT_TOKENS = 128
MIXED_DECODERS = (32, 128)
MIXED_PREFILLS = (128, 512, 2048, 8192)
MIXED_DECODER_OUTPUT_TOKENS = 4000  # long enough to outlast the injections; cancelled after them
SECTIONS = ("ttft", "turn2", "decode", "mixed")
ALL_SECTIONS = (*SECTIONS, "loaded")
LOADED_DECODERS = (48, 96)
LOADED_DECODER_PROMPT = 4096
LOADED_DECODER_OUTPUT_TOKENS = 3000  # outlasts the injections; cancelled after them
# (kind, history tokens sent first and cached, new tokens, requests sent together)
LOADED_INJECTIONS = (
    ("fresh", 0, 4096, 1),
    ("turn2", 4224, 4096, 1),
    ("pair", 0, 4096, 2),
    ("fresh", 0, 8192, 1),
    ("turn2", 8256, 8192, 1),
)
LOADED_REPEATS = 2
QUICK_DECODE_GRID = ((512, (1, 8)),)


@dataclass
class Stream:
    """One streamed completion as the client saw it; times are time.perf_counter() in s."""

    sent: float
    chunks: list[float] = field(default_factory=list)
    chunk_tokens: list[int] = field(default_factory=list)  # words per chunk: tokens on the word-level model
    usage: dict[str, Any] | None = None
    error: str | None = None

    @property
    def ttft_ms(self) -> float | None:
        return (self.chunks[0] - self.sent) * 1e3 if self.chunks else None

    def rel_ms(self, origin: float) -> list[float]:
        return [round((t - origin) * 1e3, 3) for t in self.chunks]


class Prompts:
    """Distinct random prompts: no probe request hits another's prefix cache by accident."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def make(self, num_tokens: int) -> str:
        return " ".join(f"w{self._rng.randrange(1, NUM_WORDS)}" for _ in range(num_tokens))


async def stream(
    session: aiohttp.ClientSession,
    url: str,
    prompt: str,
    max_tokens: int,
    model: str,
    record: Stream | None = None,
) -> Stream:
    """POST a streamed completion and stamp every content chunk as it arrives, into `record` (filled in
    place, so a cancelled stream keeps what had arrived)."""
    body = {
        "model": model,
        "prompt": prompt,
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    record = record or Stream(0.0)
    record.sent = time.perf_counter()
    try:
        async with session.post(url + "/v1/completions", json=body) as response:
            if response.status != 200:
                record.error = f"HTTP {response.status}: {(await response.text())[:300]}"
                return record
            async for line in response.content:
                arrived = time.perf_counter()
                if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
                    continue
                chunk = json.loads(line[6:])
                choices = chunk.get("choices") or []
                if choices and choices[0].get("text"):
                    record.chunks.append(arrived)
                    record.chunk_tokens.append(len(choices[0]["text"].split()))
                if chunk.get("usage"):
                    record.usage = chunk["usage"]
    except (aiohttp.ClientError, TimeoutError) as exc:
        record.error = f"{type(exc).__name__}: {exc}"
    return record


def usage_of(record: Stream) -> dict[str, Any]:
    usage = record.usage or {}
    details = usage.get("prompt_tokens_details") or {}
    return {
        "prompt_tokens": usage.get("prompt_tokens"),
        "cached_tokens": details.get("cached_tokens"),
        "output_tokens": usage.get("completion_tokens"),
    }


# ---------------------------------------------------------------- sections


@dataclass
class Probe:
    session: aiohttp.ClientSession
    url: str
    model: str
    prompts: Prompts
    emit: Callable[[dict[str, Any]], None]
    quick: bool = False

    async def one(self, prompt: str, max_tokens: int, record: Stream | None = None) -> Stream:
        return await stream(self.session, self.url, prompt, max_tokens, self.model, record)

    async def ttft(self) -> None:
        sizes = (128, 512) if self.quick else TTFT_SIZES
        for num_tokens in sizes:
            for rep in range(1 if self.quick else 3):
                record = await self.one(self.prompts.make(num_tokens), 2)
                self.emit(
                    {
                        "kind": "ttft",
                        "tokens": num_tokens,
                        "rep": rep,
                        "ttft_ms": _ms(record.ttft_ms),
                        "chunks_ms": record.rel_ms(record.sent),
                        **usage_of(record),
                        "error": record.error,
                    }
                )

    async def turn2(self) -> None:
        for history in (512,) if self.quick else TURN2_HISTORIES:
            for rep in range(1 if self.quick else 2):
                prompt = self.prompts.make(history)
                first = await self.one(prompt, 1)
                second = await self.one(prompt + " " + self.prompts.make(TURN2_NEW_TOKENS), 2)
                self.emit(
                    {
                        "kind": "turn2",
                        "history": history,
                        "new": TURN2_NEW_TOKENS,
                        "rep": rep,
                        "turn1_ttft_ms": _ms(first.ttft_ms),
                        "ttft_ms": _ms(second.ttft_ms),
                        **usage_of(second),
                        "error": second.error or first.error,
                    }
                )

    async def decode(self) -> None:
        for context, batches in QUICK_DECODE_GRID if self.quick else DECODE_GRID:
            for batch in batches:
                bodies = [self.prompts.make(context) for _ in range(batch)]
                origin = time.perf_counter()
                records = await asyncio.gather(*(self.one(p, DECODE_OUTPUT_TOKENS) for p in bodies))
                self.emit(decode_record(context, batch, records, origin))
                await asyncio.sleep(0.2)

    async def mixed(self) -> None:
        for decoders in (8,) if self.quick else MIXED_DECODERS:
            await self._mixed_one(decoders)

    async def _start_decoders(
        self, num_decoders: int, prompt_tokens: int, output_tokens: int, timeout_s: float
    ) -> tuple[float, list[Stream], list[asyncio.Task[Stream]]]:
        """Start num_decoders streams and return once each has its first token (or ended), plus a
        second of steady decoding: (origin of their stamps, their records, their tasks)."""
        origin = time.perf_counter()
        decoders = [Stream(origin) for _ in range(num_decoders)]
        tasks = [
            asyncio.create_task(self.one(self.prompts.make(prompt_tokens), output_tokens, record))
            for record in decoders
        ]
        await _until(
            lambda: all(r.chunks or t.done() for r, t in zip(decoders, tasks, strict=True)), timeout_s
        )
        await asyncio.sleep(1.0)
        return origin, decoders, tasks

    async def _mixed_one(self, num_decoders: int) -> None:
        origin, decoders, tasks = await self._start_decoders(
            num_decoders, 512, MIXED_DECODER_OUTPUT_TOKENS, 60.0
        )
        injections = []
        for size in (128, 2048) if self.quick else MIXED_PREFILLS:
            for rep in range(1 if self.quick else 2):
                record = await self.one(self.prompts.make(size), 2)
                injections.append(
                    {
                        "tokens": size,
                        "rep": rep,
                        "sent_ms": round((record.sent - origin) * 1e3, 3),
                        "chunks_ms": record.rel_ms(origin),
                        "ttft_ms": _ms(record.ttft_ms),
                        **usage_of(record),
                        "error": record.error,
                    }
                )
                await asyncio.sleep(0.3)
        await _cancel(tasks)
        self.emit(
            {
                "kind": "mixed",
                "decoders": num_decoders,
                "injections": injections,
                **decoders_of(decoders, origin),
            }
        )

    async def loaded(self) -> None:
        for decoders in (8,) if self.quick else LOADED_DECODERS:
            await self._loaded_one(decoders)

    async def _loaded_one(self, num_decoders: int) -> None:
        prompt_tokens = 256 if self.quick else LOADED_DECODER_PROMPT
        output_tokens = 400 if self.quick else LOADED_DECODER_OUTPUT_TOKENS
        origin, decoders, tasks = await self._start_decoders(
            num_decoders, prompt_tokens, output_tokens, 120.0
        )
        injections = []
        plan = [("fresh", 0, 256, 1), ("pair", 0, 256, 2)] if self.quick else LOADED_INJECTIONS
        for kind, history, new, together in plan:
            for rep in range(1 if self.quick else LOADED_REPEATS):
                history_text = self.prompts.make(history) if history else ""
                if history_text:  # the turn 1: cached for the turn 2, its own step not measured
                    await self.one(history_text, 1)
                    await asyncio.sleep(0.3)
                bodies = [
                    (history_text + " " if history_text else "") + self.prompts.make(new)
                    for _ in range(together)
                ]
                records = await asyncio.gather(*(self.one(body, 2) for body in bodies))
                injections.append(
                    {
                        "kind": kind,
                        "history": history,
                        "new": new,
                        "together": together,
                        "rep": rep,
                        "sent_ms": [round((r.sent - origin) * 1e3, 3) for r in records],
                        "chunks_ms": [r.rel_ms(origin) for r in records],
                        "usage": [usage_of(r) for r in records],
                        "stall": stall(decoders, records),
                        "error": next((r.error for r in records if r.error), None),
                    }
                )
                await asyncio.sleep(0.3)
        await _cancel(tasks)
        self.emit(
            {
                "kind": "loaded",
                "decoders": num_decoders,
                "decoder_prompt_tokens": prompt_tokens,
                "injections": injections,
                **decoders_of(decoders, origin),
            }
        )


async def _cancel(tasks: list[asyncio.Task[Stream]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def decoders_of(decoders: list[Stream], origin: float) -> dict[str, Any]:
    """The background streams' part of a record: how many streamed, the first four's stamps and
    tokens per chunk, the first error."""
    return {
        "decoders_streaming": sum(bool(r.chunks) for r in decoders),
        "decoder_chunks_ms": [r.rel_ms(origin) for r in decoders[:4]],
        "decoder_chunk_tokens": [r.chunk_tokens for r in decoders[:4]],
        "error": next((r.error for r in decoders if r.error), None),
    }


def stall(decoders: list[Stream], injected: list[Stream]) -> dict[str, Any]:
    """What the injected requests cost the decoders: the gaps of each decoder from the injections'
    send to their last first token, their count, and the decoders' median gap in the second before
    (the decode-only step). Medians over the decoders that streamed through the whole window."""
    if not injected or any(not r.chunks for r in injected):
        return {}
    start = min(r.sent for r in injected)
    end = max(r.chunks[0] for r in injected)
    windows, befores, counts, longest = [], [], [], []
    for record in decoders:
        chunks = record.chunks
        inside = [t for t in chunks if start <= t <= end]
        before = [t for t in chunks if start - 1.0 <= t < start]
        after = [t for t in chunks if t > end]
        if len(before) < 3 or not after:
            continue
        # the window spans from the last chunk before the send to the first one after the first token
        edges = [before[-1], *inside, after[0]]
        gaps = [b - a for a, b in itertools.pairwise(edges)]
        windows.append(edges[-1] - edges[0])
        counts.append(len(gaps))
        longest.append(sorted(gaps, reverse=True)[:3])
        befores.append(statistics.median(b - a for a, b in itertools.pairwise(before)))
    if not windows:
        return {}
    return {
        "decoders": len(windows),
        "window_ms": round(statistics.median(windows) * 1e3, 3),
        "gaps": int(statistics.median(counts)),
        "decode_step_ms": round(statistics.median(befores) * 1e3, 3),
        "longest_gaps_ms": [round(g * 1e3, 3) for g in longest[len(longest) // 2]],
    }


async def _until(condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.perf_counter() + timeout_s
    while not condition() and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def decode_record(context: int, batch: int, records: list[Stream], origin: float) -> dict[str, Any]:
    """Step time where all `batch` requests decode: inter-chunk gaps inside that window."""
    ok = [r for r in records if r.chunks and r.error is None]
    record: dict[str, Any] = {
        "kind": "decode",
        "context": context,
        "batch": batch,
        "ok": len(ok),
        "errors": sorted({r.error for r in records if r.error})[:3],
    }
    if not ok:
        return record
    start = max(r.chunks[0] for r in ok)
    end = min(r.chunks[-1] for r in ok)
    gaps = [
        b - a for r in ok for a, b in zip(r.chunks, r.chunks[1:], strict=False) if a >= start and b <= end
    ]
    ttfts = sorted(r.ttft_ms or 0.0 for r in ok)
    record.update(
        window_ms=round((end - start) * 1e3, 3),
        window_gaps=len(gaps),
        step_ms_median=round(statistics.median(gaps) * 1e3, 3) if gaps else None,
        step_ms_mean=round(statistics.fmean(gaps) * 1e3, 3) if gaps else None,
        tpot_ms_mean=round(
            statistics.fmean((r.chunks[-1] - r.chunks[0]) / (len(r.chunks) - 1) for r in ok) * 1e3, 3
        ),
        ttft_ms_p50=round(ttfts[len(ttfts) // 2], 3),
        ttft_ms_max=round(ttfts[-1], 3),
        output_tokens=sorted({usage_of(r)["output_tokens"] for r in ok}, key=str),
        prompt_tokens=sorted({usage_of(r)["prompt_tokens"] for r in ok}, key=str),
        chunks_ms=[r.rel_ms(origin) for r in ok[:4]],
    )
    return record


async def run(url: str, out: Path, sections: tuple[str, ...], quick: bool, seed: int) -> int:
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=600, sock_connect=10)
    failures = 0
    with out.open("a") as sink:

        def emit(record: dict[str, Any]) -> None:
            nonlocal failures
            failures += bool(record.get("error") or record.get("errors"))
            sink.write(json.dumps(record, separators=(",", ":")) + "\n")
            sink.flush()
            print(summary_line(record), flush=True)

        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            model = await first_model(session, url)
            probe = Probe(session, url, model, Prompts(seed), emit, quick)
            for _ in range(2):  # warm-up: the first request after start pays one-off costs
                await probe.one(probe.prompts.make(64), 4)
            emit(
                {
                    "kind": "start",
                    "url": url,
                    "model": model,
                    "seed": seed,
                    "quick": quick,
                    "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
            )
            steps: dict[str, Callable[[], Awaitable[None]]] = {
                "ttft": probe.ttft,
                "turn2": probe.turn2,
                "decode": probe.decode,
                "mixed": probe.mixed,
                "loaded": probe.loaded,
            }
            for name in sections:
                before = await scrape_engine_series(session, url, "engine_probe")
                started = time.perf_counter()
                await steps[name]()
                after = await scrape_engine_series(session, url, "engine_probe")
                emit(
                    {
                        "kind": "metrics",
                        "section": name,
                        "wall_s": round(time.perf_counter() - started, 3),
                        "diff": series_diff(before, after),
                    }
                )
    return 1 if failures else 0


async def first_model(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url + "/v1/models") as response:
        response.raise_for_status()
        return str((await response.json())["data"][0]["id"])


def summary_line(record: dict[str, Any]) -> str:
    kind = record["kind"]
    if kind == "decode":
        return (
            f"decode C={record['context']} B={record['batch']} step_ms={record.get('step_ms_median')} "
            f"(mean {record.get('step_ms_mean')}, {record.get('window_gaps')} gaps) "
            f"ttft_p50={record.get('ttft_ms_p50')} errors={record['errors']}"
        )
    if kind == "mixed":
        return f"mixed N={record['decoders']} " + " ".join(
            f"P{i['tokens']}:{i['ttft_ms']}" for i in record["injections"]
        )
    if kind == "loaded":
        return f"loaded N={record['decoders']} " + " ".join(
            f"{i['kind']}{i['history']}+{i['new']}:{i['stall'].get('window_ms')}/{i['stall'].get('gaps')}"
            f"{i['stall'].get('longest_gaps_ms')}"
            for i in record["injections"]
        )
    if kind == "metrics":
        return f"metrics {record['section']} wall {record['wall_s']} s, {len(record['diff'])} series changed"
    return json.dumps({k: v for k, v in record.items() if k != "chunks_ms"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", required=True, help="engine base URL (not the proxy)")
    parser.add_argument("--out", type=Path, required=True, help="JSONL file to append records to")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, of {ALL_SECTIONS}")
    parser.add_argument("--quick", action="store_true", help="a few points of each section (for tests)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sections = tuple(s.strip() for s in args.sections.split(",") if s.strip())
    unknown = [s for s in sections if s not in ALL_SECTIONS]
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {ALL_SECTIONS}")
    return asyncio.run(run(args.url.rstrip("/"), args.out, sections, args.quick, args.seed))


if __name__ == "__main__":
    sys.exit(main())
