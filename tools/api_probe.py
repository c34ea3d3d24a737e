"""Probe the API server of one engine (vLLM or `ppd sim`): new requests' intake against streaming load.

Usage: python tools/api_probe.py --url http://127.0.0.1:8100 --out api.jsonl
           [--streams 0,32,128,256] [--rates 2,8,16,32] [--cell-s 5] [--pids api=PID,core=PID]

vLLM's API server is one process: it takes in every request (HTTP, tokenizing, hand-off to the
engine core) and detokenizes and streams every output token. This probe holds the engine's work
small and simple while it varies what that process has to do, so that its share can be read apart:

- For each number S of background streams (S distinct 32-token prompts, answers long enough to
  outlast the group, greedy, ignore_eos), run by worker processes so that the probe's own client
  never sets the pace, a group of cells of `--cell-s` seconds each:
  - a streams-only cell (rate 0): the tokens/s the clients received, chunks per token (vLLM merges
    a stream's tokens into one chunk when it falls behind), and the engine's steps and generated
    tokens from its /metrics;
  - then one cell per intake rate R: evenly spaced requests with distinct `--intake-tokens`-token
    prompts and max_tokens 2. Per intake: when its response headers came (vLLM sends them once the
    request is parsed and tokenized, before it goes to the engine core), its first and second token.
- Around every cell: the diff of the engine's `vllm:*` / `ppd_sim:*` series (vLLM's TTFT counts from
  the API server's arrival stamp, its queue and prefill times from the engine core's), and the CPU
  seconds of the processes named by `--pids` (/proc/PID/stat: the API server's busy share shows
  directly) and of the probe's own processes.
- Between groups it waits until a 1-token request comes back quickly again (`settle`): how long the
  API server took to drain what it was behind by.

Each output line is one JSON record ("start", "cell" per cell, "settle" per group); the raw stamps
of the intakes and of the first streams are kept (ms since the group's origin) for offline fits.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing as mp
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from ppd.prometheus import scrape_engine_series, series_diff, total

NUM_WORDS = 128000
STREAM_PROMPT_TOKENS = 32
STREAM_KV_BUDGET_TOKENS = 600_000  # answers of all S streams together, well inside the KV cache
STREAM_MAX_TOKENS = 8192
INTAKE_MAX_TOKENS = 2
SETTLE_TTFT_MS = 150.0
SETTLE_TIMEOUT_S = 60.0
READY_TIMEOUT_S = 120.0
KEPT_STREAMS = 4  # streams whose raw chunk stamps go into the records


# ---------------------------------------------------------------- pure parts (unit-tested)


def intake_offsets_s(rate_per_s: float, cell_s: float) -> list[float]:
    """Send times of a cell's intakes, evenly spaced from 0: one every 1/rate s, all before cell_s."""
    if rate_per_s <= 0:
        return []
    count = round(rate_per_s * cell_s)
    return [i / rate_per_s for i in range(count) if i / rate_per_s < cell_s]


def stream_max_tokens(num_streams: int) -> int:
    """Answer length of each background stream: long, but all S together within the KV budget."""
    return max(64, min(STREAM_MAX_TOKENS, STREAM_KV_BUDGET_TOKENS // max(1, num_streams)))


def text_tokens(text: str) -> int:
    """Tokens in a chunk's text: the dummy model's tokenizer (and the sim) write one word per token."""
    return len(text.split())


def parse_pids(spec: str) -> dict[str, int]:
    """`api=123,core=456` -> {"api": 123, "core": 456}; a bad entry is a ValueError naming it."""
    pids: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, sep, value = item.partition("=")
        if not sep or not name or not value.isdigit():
            raise ValueError(f"--pids entry {item!r}: expected NAME=PID")
        pids[name] = int(value)
    return pids


def cpu_seconds_of_stat(stat_text: str, clock_ticks_per_s: int) -> float:
    """utime + stime of a /proc/PID/stat line (all threads of the process), in seconds."""
    # The command name (field 2) is in parentheses and may hold spaces: count fields after the last ')'.
    rest = stat_text[stat_text.rindex(")") + 2 :].split()
    utime, stime = int(rest[11]), int(rest[12])  # fields 14 and 15 of the whole line
    return (utime + stime) / clock_ticks_per_s


def histogram_mean_ms(diff: dict[str, float], name: str) -> float | None:
    """Mean of a Prometheus histogram's new samples in a /metrics diff (sum over count), in ms."""
    count = total(diff, name + "_count")
    return round(total(diff, name + "_sum") / count * 1e3, 3) if count else None


def counter_delta(diff: dict[str, float], name: str) -> float:
    """Increase of a counter (all its label sets) in a /metrics diff."""
    return total(diff, name)


def window_stream_stats(
    streams: list[list[tuple[float, int]]], start_s: float, end_s: float
) -> dict[str, Any]:
    """What the background streams' clients received in [start_s, end_s): tokens/s, chunks per token,
    and the median gap between a stream's consecutive chunks inside the window (ms)."""
    duration_s = end_s - start_s
    tokens = chunks = alive = 0
    gaps: list[float] = []
    for chunks_of_stream in streams:
        inside = [(t, n) for t, n in chunks_of_stream if start_s <= t < end_s]
        alive += bool(inside)
        chunks += len(inside)
        tokens += sum(n for _, n in inside)
        gaps.extend(b[0] - a[0] for a, b in itertools.pairwise(inside))
    return {
        "streams_receiving": alive,
        "client_tokens": tokens,
        "client_tokens_per_s": round(tokens / duration_s, 1) if duration_s > 0 else None,
        "chunks_per_token": round(chunks / tokens, 4) if tokens else None,
        "gap_ms_median": round(statistics.median(gaps) * 1e3, 3) if gaps else None,
    }


def quantile(values: list[float], q: float) -> float | None:
    """Nearest-rank quantile (q in [0, 1]); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def intake_summary(intakes: list[dict[str, Any]]) -> dict[str, Any]:
    """p50 / p90 / max of the intakes' header, first-token and second-token times, and the TTFT p50 of
    the cell's first and second halves (a rising second half: the server falls further behind)."""
    ok = [i for i in intakes if i.get("ttft_ms") is not None and not i.get("error")]
    headers = [i["headers_ms"] for i in ok if i.get("headers_ms") is not None]
    ttfts = [i["ttft_ms"] for i in ok]
    second = [i["second_token_gap_ms"] for i in ok if i.get("second_token_gap_ms") is not None]
    half = len(ok) // 2

    def stats(values: list[float]) -> dict[str, float | None]:
        return {"p50": _round(quantile(values, 0.5)), "p90": _round(quantile(values, 0.9)),
                "max": _round(max(values) if values else None)}  # fmt: skip

    return {
        "sent": len(intakes),
        "ok": len(ok),
        "headers_ms": stats(headers),
        "ttft_ms": stats(ttfts),
        "second_token_gap_ms": stats(second),
        "ttft_ms_p50_first_half": _round(quantile(ttfts[:half], 0.5)),
        "ttft_ms_p50_second_half": _round(quantile(ttfts[half:], 0.5)),
    }


def engine_summary(diff: dict[str, float], cell_s: float) -> dict[str, Any]:
    """The engine's side of a cell from its /metrics diff: steps/s, generated tokens/s, and the mean
    TTFT (API server's arrival to first token out), queue and prefill times of the requests it saw."""
    steps = counter_delta(diff, "vllm:iteration_tokens_total_count") or counter_delta(
        diff, "ppd_sim:steps_total"
    )
    generated = counter_delta(diff, "vllm:generation_tokens_total")
    return {
        "engine_steps_per_s": round(steps / cell_s, 1) if cell_s > 0 else None,
        "engine_tokens_per_s": round(generated / cell_s, 1) if cell_s > 0 else None,
        "vllm_ttft_ms_mean": histogram_mean_ms(diff, "vllm:time_to_first_token_seconds"),
        "vllm_queue_ms_mean": histogram_mean_ms(diff, "vllm:request_queue_time_seconds"),
        "vllm_prefill_ms_mean": histogram_mean_ms(diff, "vllm:request_prefill_time_seconds"),
        "vllm_e2e_ms_mean": histogram_mean_ms(diff, "vllm:e2e_request_latency_seconds"),
    }


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


# ---------------------------------------------------------------- HTTP


@dataclass
class Intake:
    """One intake as its client saw it; times are time.perf_counter() in s."""

    sent: float = 0.0
    headers: float | None = None
    chunks: list[tuple[float, int]] = field(default_factory=list)
    usage: dict[str, Any] | None = None
    error: str | None = None

    def record(self, origin: float) -> dict[str, Any]:
        details = (self.usage or {}).get("prompt_tokens_details") or {}
        first = self.chunks[0][0] if self.chunks else None
        return {
            "sent_ms": round((self.sent - origin) * 1e3, 3),
            "headers_ms": None if self.headers is None else round((self.headers - self.sent) * 1e3, 3),
            "ttft_ms": None if first is None else round((first - self.sent) * 1e3, 3),
            "second_token_gap_ms": (
                round((self.chunks[1][0] - self.chunks[0][0]) * 1e3, 3) if len(self.chunks) > 1 else None
            ),
            "chunks": [[round((t - origin) * 1e3, 3), n] for t, n in self.chunks],
            "prompt_tokens": (self.usage or {}).get("prompt_tokens"),
            "cached_tokens": details.get("cached_tokens"),
            "error": self.error,
        }


def completion_body(model: str, prompt: str, max_tokens: int) -> dict[str, Any]:
    return {
        "model": model,
        "prompt": prompt,
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def post_stream(session: aiohttp.ClientSession, url: str, body: dict[str, Any], into: Intake) -> None:
    """POST a streamed completion, stamping the headers and every chunk with text (with its token count)
    into `into` as they arrive (so a cancelled stream keeps what had come)."""
    into.sent = time.perf_counter()
    try:
        async with session.post(url + "/v1/completions", json=body) as response:
            into.headers = time.perf_counter()
            if response.status != 200:
                into.error = f"HTTP {response.status}: {(await response.text())[:300]}"
                return
            async for line in response.content:
                arrived = time.perf_counter()
                if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
                    continue
                chunk = json.loads(line[6:])
                choices = chunk.get("choices") or []
                text = choices[0].get("text") if choices else None
                if text:
                    into.chunks.append((arrived, text_tokens(text)))
                if chunk.get("usage"):
                    into.usage = chunk["usage"]
    except (aiohttp.ClientError, TimeoutError) as exc:
        into.error = f"{type(exc).__name__}: {exc}"


def prompt_words(rng: random.Random, num_tokens: int) -> str:
    return " ".join(f"w{rng.randrange(1, NUM_WORDS)}" for _ in range(num_tokens))


# ---------------------------------------------------------------- stream workers (own processes)


def stream_worker(
    url: str, model: str, prompts: list[str], max_tokens: int, ready: Any, stop: Any, results: Any, index: int
) -> None:
    """Run `prompts` as streams until `stop` is set; put ("ready", index) once every stream has its first
    token (or failed), then ("done", index, [[(t, tokens), ...] per stream], [errors])."""
    asyncio.run(_stream_worker(url, model, prompts, max_tokens, ready, stop, results, index))


async def _stream_worker(
    url: str, model: str, prompts: list[str], max_tokens: int, ready: Any, stop: Any, results: Any, index: int
) -> None:
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=900, sock_connect=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        records = [Intake() for _ in prompts]
        tasks = [
            asyncio.create_task(post_stream(session, url, completion_body(model, p, max_tokens), r))
            for p, r in zip(prompts, records, strict=True)
        ]
        deadline = time.perf_counter() + READY_TIMEOUT_S
        while time.perf_counter() < deadline and not all(
            r.chunks or t.done() for r, t in zip(records, tasks, strict=True)
        ):
            await asyncio.sleep(0.02)
        ready.put(("ready", index))
        while not stop.is_set():
            await asyncio.sleep(0.05)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    errors = sorted({r.error for r in records if r.error})[:3]
    results.put(("done", index, [r.chunks for r in records], errors))


class StreamGroup:
    """S background streams over a few worker processes."""

    def __init__(self, url: str, model: str, num_streams: int, rng: random.Random, num_workers: int) -> None:
        self.ctx = mp.get_context("spawn")
        self.ready = self.ctx.Queue()
        self.results = self.ctx.Queue()
        self.stop = self.ctx.Event()
        self.max_tokens = stream_max_tokens(num_streams)
        prompts = [prompt_words(rng, STREAM_PROMPT_TOKENS) for _ in range(num_streams)]
        workers = max(1, min(num_workers, num_streams))
        self.processes = [
            self.ctx.Process(
                target=stream_worker,
                args=(url, model, prompts[w::workers], self.max_tokens, *self._channels(), w),
                daemon=True,
            )
            for w in range(workers)
        ] if num_streams else []  # fmt: skip

    def _channels(self) -> tuple[Any, Any, Any]:
        return self.ready, self.stop, self.results

    def start(self) -> float:
        """Start the streams; returns once all have their first token (seconds it took)."""
        started = time.perf_counter()
        for process in self.processes:
            process.start()
        for _ in self.processes:
            self.ready.get(timeout=READY_TIMEOUT_S + 30)
        return time.perf_counter() - started

    def finish(self) -> tuple[list[list[tuple[float, int]]], list[str]]:
        """Stop the streams; every stream's chunks (perf_counter s, tokens) and the errors seen."""
        self.stop.set()
        streams: list[list[tuple[float, int]]] = []
        errors: list[str] = []
        for _ in self.processes:
            _, _, chunks, errs = self.results.get(timeout=120)
            streams.extend(chunks)
            errors.extend(errs)
        for process in self.processes:
            process.join(timeout=10)
        return streams, errors

    def pids(self) -> dict[str, int]:
        return {f"client_worker{i}": p.pid for i, p in enumerate(self.processes) if p.pid is not None}


def read_cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    ticks = os.sysconf("SC_CLK_TCK")
    seconds = {}
    for name, pid in pids.items():
        try:
            seconds[name] = cpu_seconds_of_stat(Path(f"/proc/{pid}/stat").read_text(), ticks)
        except (OSError, ValueError, IndexError):
            continue
    return seconds


# ---------------------------------------------------------------- the probe


@dataclass
class Settings:
    url: str
    streams: tuple[int, ...]
    rates: tuple[float, ...]
    cell_s: float
    intake_tokens: int
    pids: dict[str, int]
    workers: int
    seed: int


class ApiProbe:
    def __init__(self, settings: Settings, session: aiohttp.ClientSession, model: str, sink: Any) -> None:
        self.s = settings
        self.session = session
        self.model = model
        self.sink = sink
        self.rng = random.Random(settings.seed)
        self.failures = 0

    def emit(self, record: dict[str, Any]) -> None:
        self.sink.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.sink.flush()
        print(summary_line(record), flush=True)

    async def one(self, num_tokens: int, max_tokens: int) -> Intake:
        intake = Intake()
        body = completion_body(self.model, prompt_words(self.rng, num_tokens), max_tokens)
        await post_stream(self.session, self.s.url, body, intake)
        return intake

    async def settle(self, after: str) -> None:
        """Wait until a 1-token request is quick again: the server has drained what it was behind by."""
        started = time.perf_counter()
        tries: list[float | None] = []
        while time.perf_counter() - started < SETTLE_TIMEOUT_S:
            intake = await self.one(16, 1)
            ttft = (intake.chunks[0][0] - intake.sent) * 1e3 if intake.chunks else None
            tries.append(_round(ttft))
            if ttft is not None and ttft < SETTLE_TTFT_MS:
                break
            await asyncio.sleep(0.2)
        self.emit({"kind": "settle", "after": after, "wall_s": round(time.perf_counter() - started, 3),
                   "ttft_ms_tries": tries[-20:]})  # fmt: skip

    async def group(self, num_streams: int) -> None:
        streams = StreamGroup(self.s.url, self.model, num_streams, self.rng, self.s.workers)
        ramp_s = await asyncio.to_thread(streams.start)
        await asyncio.sleep(1.0 if num_streams else 0.0)
        origin = time.perf_counter()
        pids = {**self.s.pids, "client": os.getpid(), **streams.pids()}
        cells: list[dict[str, Any]] = []
        for rate in (0.0, *self.s.rates) if num_streams else self.s.rates:
            cells.append(await self.cell(num_streams, rate, origin, pids))
        raw_streams, errors = await asyncio.to_thread(streams.finish)
        for cell in cells:
            start_s, end_s = origin + cell["start_ms"] / 1e3, origin + cell["end_ms"] / 1e3
            cell["streams_stats"] = window_stream_stats(raw_streams, start_s, end_s) if raw_streams else None
            cell.update(
                streams_ramp_s=round(ramp_s, 3),
                stream_max_tokens=streams.max_tokens if num_streams else None,
                stream_errors=errors,
                streams_raw=[[[round((t - origin) * 1e3, 3), n] for t, n in chunks
                              if start_s <= t < end_s] for chunks in raw_streams[:KEPT_STREAMS]],
            )  # fmt: skip
            self.failures += bool(cell["intakes_summary"]["ok"] < cell["intakes_summary"]["sent"])
            self.emit(cell)
        await self.settle(after=f"streams={num_streams}")

    async def cell(
        self, num_streams: int, rate: float, origin: float, pids: dict[str, int]
    ) -> dict[str, Any]:
        before = await scrape_engine_series(self.session, self.s.url, "api_probe")
        cpu_before = read_cpu_seconds(pids)
        start = time.perf_counter()
        intakes: list[Intake] = []
        tasks = []
        for offset in intake_offsets_s(rate, self.s.cell_s):
            await asyncio.sleep(max(0.0, start + offset - time.perf_counter()))
            intake = Intake()
            intakes.append(intake)
            body = completion_body(
                self.model, prompt_words(self.rng, self.s.intake_tokens), INTAKE_MAX_TOKENS
            )
            tasks.append(asyncio.create_task(post_stream(self.session, self.s.url, body, intake)))
        await asyncio.sleep(max(0.0, start + self.s.cell_s - time.perf_counter()))
        end = time.perf_counter()
        cpu_end = read_cpu_seconds(pids)
        after_window = await scrape_engine_series(self.session, self.s.url, "api_probe")
        await asyncio.gather(*tasks)
        after = await scrape_engine_series(self.session, self.s.url, "api_probe")
        window_s = end - start
        window_diff = series_diff(before, after_window)
        return {
            "kind": "cell",
            "streams": num_streams,
            "rate_per_s": rate,
            "intake_tokens": self.s.intake_tokens,
            "cell_s": self.s.cell_s,
            "start_ms": round((start - origin) * 1e3, 3),
            "end_ms": round((end - origin) * 1e3, 3),
            "cpu_share": {
                name: round((cpu_end[name] - cpu_before[name]) / window_s, 4)
                for name in cpu_end
                if name in cpu_before
            },
            "engine": engine_summary(window_diff, window_s),
            "intake_engine": engine_summary(series_diff(before, after), window_s),
            "intakes_summary": intake_summary([i.record(origin) for i in intakes]),
            "intakes": [i.record(origin) for i in intakes],
            "metrics_window": window_diff,
            "running_after": running_requests(after_window),
        }


def running_requests(series: dict[str, float]) -> float | None:
    """vllm:num_requests_running over its label sets (None when the engine does not export it)."""
    values = [v for k, v in series.items() if k.partition("{")[0] == "vllm:num_requests_running"]
    return sum(values) if values else None


def summary_line(record: dict[str, Any]) -> str:
    if record["kind"] == "cell":
        intakes, streams, engine = (
            record["intakes_summary"],
            record.get("streams_stats") or {},
            record["engine"],
        )
        return (
            f"S={record['streams']} R={record['rate_per_s']} "
            f"intake headers p50 {intakes['headers_ms']['p50']} "
            f"ttft p50/p90 {intakes['ttft_ms']['p50']}/{intakes['ttft_ms']['p90']} "
            f"(halves {intakes['ttft_ms_p50_first_half']}/{intakes['ttft_ms_p50_second_half']}) "
            f"vllm ttft {record['intake_engine']['vllm_ttft_ms_mean']} "
            f"prefill {record['intake_engine']['vllm_prefill_ms_mean']} | streams "
            f"{streams.get('client_tokens_per_s')} tok/s gap {streams.get('gap_ms_median')} "
            f"chunks/token {streams.get('chunks_per_token')} | engine {engine['engine_steps_per_s']} steps/s "
            f"{engine['engine_tokens_per_s']} tok/s | cpu {record['cpu_share']}"
        )
    return json.dumps(record)


async def run(settings: Settings, out: Path) -> int:
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=300, sock_connect=10)
    with out.open("a") as sink:
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            async with session.get(settings.url + "/v1/models") as response:
                response.raise_for_status()
                model = str((await response.json())["data"][0]["id"])
            probe = ApiProbe(settings, session, model, sink)
            for _ in range(2):  # warm-up: the first requests after start pay one-off costs
                await probe.one(64, 4)
            probe.emit(
                {
                    "kind": "start",
                    "url": settings.url,
                    "model": model,
                    "seed": settings.seed,
                    "streams": list(settings.streams),
                    "rates": list(settings.rates),
                    "cell_s": settings.cell_s,
                    "intake_tokens": settings.intake_tokens,
                    "pids": settings.pids,
                    "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
            )
            for num_streams in settings.streams:
                await probe.group(num_streams)
            return 1 if probe.failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", required=True, help="engine base URL (not the proxy)")
    parser.add_argument("--out", type=Path, required=True, help="JSONL file to append records to")
    parser.add_argument("--streams", default="0,32,128,256", help="background stream counts, one group each")
    parser.add_argument("--rates", default="2,8,16,32", help="intake rates per s, one cell each per group")
    parser.add_argument("--cell-s", type=float, default=5.0, help="seconds per cell")
    parser.add_argument("--intake-tokens", type=int, default=128, help="prompt tokens of each intake")
    parser.add_argument("--pids", default="", help="processes to account CPU for, NAME=PID,... (Linux)")
    parser.add_argument("--workers", type=int, default=4, help="processes that run the background streams")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        settings = Settings(
            url=args.url.rstrip("/"),
            streams=tuple(int(s) for s in args.streams.split(",") if s.strip()),
            rates=tuple(float(r) for r in args.rates.split(",") if r.strip()),
            cell_s=args.cell_s,
            intake_tokens=args.intake_tokens,
            pids=parse_pids(args.pids),
            workers=args.workers,
            seed=args.seed,
        )
    except ValueError as exc:
        parser.error(str(exc))
    if settings.cell_s <= 0 or settings.intake_tokens < 1 or any(s < 0 for s in settings.streams):
        parser.error("--cell-s and --intake-tokens must be positive, --streams non-negative")
    return asyncio.run(run(settings, args.out))


if __name__ == "__main__":
    sys.exit(main())
