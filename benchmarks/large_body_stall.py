"""How long a large valid JSON body holds the proxy's event loop: before and after proxy/longjson.py.

    flock /work/cpu.lock python benchmarks/large_body_stall.py            # baseline: --baseline-rev
    python benchmarks/large_body_stall.py --baseline-src /tmp/ppd-before  # or another source tree

Two parts, each with the old way beside the new in the same run:

1. In process (the mechanism). One event loop, a ticker task that wakes every 1 ms and records how
   late it woke; while it runs, an 8 MB prompt body (`--prompt-mb`) is handled the way each variant
   does: `old` json.loads on the loop, then json.dumps of P's one-token body (the baseline's code,
   kept here); `thread` the same two calls in a worker thread (asyncio.to_thread); `new`
   longjson.parse_in_steps, then JsonBody.encode. Printed: the ticker's worst lateness (the
   longest time the loop was held) and the wall time, median over `--reps`.

2. Over HTTP (what clients see). Two `ppd proxy --mode pd` processes, this checkout's and the
   baseline's (`--baseline-rev`, default: the commit before proxy/longjson.py was added, exported
   with `git archive`; or `--baseline-src`), each over a fake P (answers kv_transfer_params
   without parsing the body) and a fake D (streams `--tokens` SSE chunks `--itl-ms` apart). For
   each proxy, rounds alternating which goes first, three phases of `--phase-s`: `quiet`, then
   `completions` and `chat` while a separate process posts 8 MB bodies of that kind back to back
   (streamed, read whole). Meanwhile this process probes `GET /health` every 10 ms and keeps one
   small streamed turn going; printed per proxy and phase: /health latency p50/p99/max, the
   stream's inter-chunk gap p99/max beyond --itl-ms, and the large posts served.

Ends with: large_body_stall health_p99_ms old=<f> new=<f> gap_p99_ms old=<f> new=<f> (the
completions phase).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Awaitable, Callable
from io import BytesIO
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from ppd.proxy.longjson import parse_in_steps
from ppd.proxy.relay import prefill_body
from proxy_overhead import Process, start

REPO = Path(__file__).resolve().parents[1]
PHASES = ("quiet", "completions", "chat")
KV_ANSWER = json.dumps(
    {
        "id": "cmpl-p",
        "object": "text_completion",
        "choices": [{"index": 0, "text": "x", "finish_reason": "length"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        "kv_transfer_params": {"do_remote_prefill": True, "remote_engine_id": "e", "remote_block_ids": [1]},
    }
).encode()


# ---------------------------------------------------------------- bodies


def prompt_text(num_bytes: int, seed: int) -> str:
    """Text of about num_bytes: words, some newlines and quotes (escaped in JSON), a few non-ASCII."""
    rng = random.Random(seed)
    vocabulary = [f"word{i}" for i in range(2000)] + ["\n", '"quoted"', "naïve", "x\\y"]
    block = " ".join(rng.choice(vocabulary) for _ in range(12_000))
    return (block + " ") * (num_bytes // (len(block) + 1) + 1)


def large_body(kind: str, num_bytes: int, seed: int) -> bytes:
    text = prompt_text(num_bytes, seed)
    if kind == "completions":
        body: dict[str, Any] = {"model": "m", "prompt": text, "max_tokens": 4, "stream": True}
    else:
        messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}]
        body = {"model": "m", "messages": messages, "max_tokens": 4, "stream": True}
    return json.dumps(body).encode()


# ---------------------------------------------------------------- part 1: in process


async def _held_loop_ms(work: Callable[[], Awaitable[Any]]) -> tuple[float, float]:
    """(worst lateness of a 1 ms ticker, wall time), both ms, while `work` runs on this loop."""
    worst_s = 0.0
    done = False

    async def ticker() -> None:
        nonlocal worst_s
        while not done:
            due = time.perf_counter() + 0.001
            await asyncio.sleep(0.001)
            worst_s = max(worst_s, time.perf_counter() - due)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    started = time.perf_counter()
    await work()
    wall_s = time.perf_counter() - started
    done = True
    await task
    return worst_s * 1000.0, wall_s * 1000.0


def in_process(raw: bytes, reps: int) -> dict[str, tuple[float, float]]:
    def prefill_of(body: dict[str, Any]) -> dict[str, Any]:
        return prefill_body(body, is_chat=False)

    async def old() -> None:  # the baseline's two calls, on the loop
        body = json.loads(raw)
        json.dumps(prefill_of(body)).encode()

    async def thread() -> None:
        body = await asyncio.to_thread(json.loads, raw)
        await asyncio.to_thread(lambda: json.dumps(prefill_of(body)).encode())

    async def new() -> None:
        parsed = await parse_in_steps(raw, 1)
        parsed.encode(prefill_of)

    variants: dict[str, Callable[[], Awaitable[None]]] = {"old": old, "thread": thread, "new": new}
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}

    async def run_all() -> None:
        for _ in range(reps):
            for name, work in variants.items():
                samples[name].append(await _held_loop_ms(work))

    asyncio.run(run_all())
    return {
        name: (statistics.median(s[0] for s in values), statistics.median(s[1] for s in values))
        for name, values in samples.items()
    }


# ---------------------------------------------------------------- part 2: fake engines


class FakeEngine(asyncio.Protocol):
    """HTTP/1.1 keep-alive. GET -> {}. POST -> as P: KV_ANSWER; as D: SSE chunks. Bodies are read by
    Content-Length and dropped unparsed: the engine's cost must not be in the proxy's figures."""

    def __init__(self, role: str, num_tokens: int, itl_s: float) -> None:
        self.role, self.num_tokens, self.itl_s = role, num_tokens, itl_s
        self.buffer = bytearray()
        self.need: int | None = None
        self.is_post = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if self.need is None:
                head_end = self.buffer.find(b"\r\n\r\n")
                if head_end < 0:
                    return
                head = bytes(self.buffer[:head_end]).lower()
                match = re.search(rb"content-length:\s*(\d+)", head)
                self.need = head_end + 4 + (int(match.group(1)) if match else 0)
                self.is_post = head.startswith(b"post")
            if len(self.buffer) < self.need:
                return
            del self.buffer[: self.need]
            self.need = None
            self.answer()

    def answer(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if not self.is_post or self.role == "prefill":
            body = KV_ANSWER if self.is_post else b"{}"
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            transport.write(head % len(body) + body)
            return
        transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        loop = asyncio.get_running_loop()
        for index in range(self.num_tokens):
            data = b'data: {"choices":[{"index":0,"text":" w%d"}]}\n\n' % index
            loop.call_later(
                self.itl_s * index, _write_if_open, transport, b"%x\r\n%s\r\n" % (len(data), data)
            )
        tail = b"data: [DONE]\n\n"
        end = b"%x\r\n%s\r\n0\r\n\r\n" % (len(tail), tail)
        loop.call_later(self.itl_s * self.num_tokens, _write_if_open, transport, end)


def _write_if_open(transport: asyncio.Transport, data: bytes) -> None:
    if not transport.is_closing():
        transport.write(data)


def serve_fake_engine(role: str, num_tokens: int, itl_s: float) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: FakeEngine(role, num_tokens, itl_s), "127.0.0.1", 0)
        print(f"{role} listening on http://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
        await server.serve_forever()

    asyncio.run(main())


# ---------------------------------------------------------------- part 2: clients


def poster(url: str, kind: str, num_bytes: int, duration_s: float) -> None:
    """Post large bodies of `kind` back to back for duration_s; print one JSON line of what happened."""
    data = large_body(kind, num_bytes, seed=1)
    path = "/v1/completions" if kind == "completions" else "/v1/chat/completions"

    async def main() -> dict[str, Any]:
        statuses: dict[str, int] = {}
        latencies_s: list[float] = []
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            print("ready", flush=True)
            deadline = time.perf_counter() + duration_s
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                headers = {"Content-Type": "application/json"}
                async with session.post(url + path, data=data, headers=headers) as reply:
                    await reply.read()
                latencies_s.append(time.perf_counter() - started)
                statuses[str(reply.status)] = statuses.get(str(reply.status), 0) + 1
        return {"statuses": statuses, "latency_p50_ms": 1000.0 * float(np.median(latencies_s))}

    print(json.dumps(asyncio.run(main())), flush=True)


async def probe(url: str, duration_s: float, itl_ms: float) -> tuple[list[float], list[float], int]:
    """/health latencies (ms) every 10 ms, and the excess inter-chunk gaps (ms) of small streamed
    turns run one after another, for duration_s; plus the number of failed probes."""
    health_ms: list[float] = []
    gaps_ms: list[float] = []
    failures = 0
    deadline = time.perf_counter() + duration_s
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def health() -> None:
            nonlocal failures
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                async with session.get(url + "/health") as reply:
                    await reply.read()
                health_ms.append(1000.0 * (time.perf_counter() - started))
                failures += reply.status != 200
                await asyncio.sleep(0.01)

        async def stream() -> None:
            nonlocal failures
            body = {"model": "m", "prompt": "a small turn", "max_tokens": 4, "stream": True}
            while time.perf_counter() < deadline:
                async with session.post(url + "/v1/completions", json=body) as reply:
                    failures += reply.status != 200
                    last = None
                    async for _ in reply.content.iter_any():
                        now = time.perf_counter()
                        if last is not None:
                            gaps_ms.append(1000.0 * (now - last) - itl_ms)
                        last = now

        await asyncio.gather(health(), stream())
    return health_ms, gaps_ms, failures


def phase(url: str, kind: str, args: argparse.Namespace) -> tuple[list[float], list[float], int, str]:
    worker = None
    if kind != "quiet":
        argv = [sys.executable, __file__, "--poster", url, kind, str(args.prompt_mb * 1e6), str(args.phase_s)]
        worker = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        assert worker.stdout is not None
        if worker.stdout.readline().strip() != "ready":
            raise RuntimeError(f"poster did not start: exit {worker.wait()}")
    health_ms, gaps_ms, failures = asyncio.run(probe(url, args.phase_s, args.itl_ms))
    posted = ""
    if worker is not None:
        out, _ = worker.communicate(timeout=120)
        posted = out.strip().splitlines()[-1]
    return health_ms, gaps_ms, failures, posted


# ---------------------------------------------------------------- part 2: processes


def baseline_tree(args: argparse.Namespace, tmp: Path) -> tuple[str, str]:
    """(source tree of the baseline, what it is)."""
    if args.baseline_src:
        return args.baseline_src, f"src {args.baseline_src}"
    rev = args.baseline_rev
    if rev is None:
        added = subprocess.run(
            ["git", "log", "--diff-filter=A", "--format=%H", "--", "src/ppd/proxy/longjson.py"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        if not added:
            raise SystemExit(
                "large_body_stall: src/ppd/proxy/longjson.py is not committed; give --baseline-rev"
            )
        rev = added[-1] + "^"
    archive = subprocess.run(["git", "archive", rev, "src"], cwd=REPO, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(tmp / "baseline", filter="data")
    commit = subprocess.run(["git", "rev-parse", "--short", rev], cwd=REPO, capture_output=True, text=True)
    return str(tmp / "baseline"), f"rev {rev} = {commit.stdout.strip()}"


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompt-mb", type=float, default=8.0, help="size of the large bodies (MB)")
    parser.add_argument("--reps", type=int, default=7, help="in-process repetitions per variant")
    parser.add_argument("--rounds", type=int, default=2, help="HTTP rounds (each: both proxies, 3 phases)")
    parser.add_argument("--phase-s", type=float, default=10.0)
    parser.add_argument("--tokens", type=int, default=20, help="SSE chunks of each small streamed turn")
    parser.add_argument("--itl-ms", type=float, default=20.0, help="fake D's gap between chunks")
    parser.add_argument("--baseline-rev", help="git revision of the baseline proxy (default: see above)")
    parser.add_argument("--baseline-src", help="a source tree (with src/) to run the baseline proxy from")
    parser.add_argument("--skip-http", action="store_true", help="part 1 only")
    parser.add_argument("--fake-engine", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--poster", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fake_engine:
        role, num_tokens, itl_s = args.fake_engine
        serve_fake_engine(role, int(num_tokens), float(itl_s))
        return 0
    if args.poster:
        url, kind, num_bytes, duration_s = args.poster
        poster(url, kind, int(float(num_bytes)), float(duration_s))
        return 0
    return run(args)


def run(args: argparse.Namespace) -> int:
    versions = f"python {sys.version.split()[0]}, aiohttp {aiohttp.__version__}"
    print(f"large_body_stall: {versions}, cpus {os.cpu_count()}")
    print(f"uptime before: {os.getloadavg()}")
    raw = large_body("completions", int(args.prompt_mb * 1e6), seed=1)
    print(f"part 1, in process: a completions body of {len(raw) / 1e6:.1f} MB, {args.reps} reps, median")
    print(f"{'variant':<8}{'loop_held_ms':>14}{'wall_ms':>10}")
    for name, (held_ms, wall_ms) in in_process(raw, args.reps).items():
        print(f"{name:<8}{held_ms:>14.1f}{wall_ms:>10.1f}", flush=True)
    if args.skip_http:
        return 0
    processes: list[Process] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            baseline_src, baseline_name = baseline_tree(args, Path(tmp))
            print(f"part 2, over HTTP: baseline proxy from {baseline_name}; new from {REPO / 'src'}")
            engines = {}
            for role in ("prefill", "decode"):
                argv = [
                    sys.executable,
                    __file__,
                    "--fake-engine",
                    role,
                    str(args.tokens),
                    str(args.itl_ms / 1e3),
                ]
                engines[role] = start(role, argv)
                processes.append(engines[role])
            proxy_argv = [sys.executable, "-m", "ppd", "proxy", "--mode", "pd", "--port", "0"]
            proxy_argv += ["--prefill", engines["prefill"].url, "--decode", engines["decode"].url]
            proxies = {
                "old": start("old proxy", proxy_argv, src=baseline_src),
                "new": start("new proxy", proxy_argv, src=str(REPO)),
            }
            processes += proxies.values()
            return measure_http(proxies, args)
        finally:
            for process in reversed(processes):
                process.stop()


def measure_http(proxies: dict[str, Process], args: argparse.Namespace) -> int:
    health: dict[tuple[str, str], list[float]] = {}
    gaps: dict[tuple[str, str], list[float]] = {}
    failures: dict[tuple[str, str], int] = {}
    posted: dict[tuple[str, str], list[str]] = {}
    for round_number in range(args.rounds):
        order = list(proxies) if round_number % 2 == 0 else list(reversed(proxies))
        for name in order:
            for kind in PHASES:
                key = (name, kind)
                h, g, f, p = phase(proxies[name].url, kind, args)
                health.setdefault(key, []).extend(h)
                gaps.setdefault(key, []).extend(g)
                failures[key] = failures.get(key, 0) + f
                posted.setdefault(key, []).append(p)
    print(
        f"{args.rounds} rounds x {args.phase_s:g} s per proxy and phase; large bodies {args.prompt_mb:g} MB; "
        f"small turns {args.tokens} chunks {args.itl_ms:g} ms apart"
    )
    header = f"{'proxy':<6}{'phase':<13}{'health_n':>9}{'p50_ms':>8}{'p99_ms':>8}{'max_ms':>8}"
    print(header + f"{'gap_n':>7}{'gap_p99_ms':>11}{'gap_max_ms':>11}{'fail':>5}  large posts")
    for (name, kind), values in health.items():
        g = gaps[(name, kind)]
        print(
            f"{name:<6}{kind:<13}{len(values):>9}{pct(values, 50):>8.1f}{pct(values, 99):>8.1f}"
            f"{max(values):>8.1f}{len(g):>7}{pct(g, 99):>11.1f}{max(g, default=float('nan')):>11.1f}"
            f"{failures[(name, kind)]:>5}  {' | '.join(filter(None, posted[(name, kind)]))}"
        )
    print(f"uptime after: {os.getloadavg()}")
    print(
        "large_body_stall "
        f"health_p99_ms old={pct(health[('old', 'completions')], 99):.1f} "
        f"new={pct(health[('new', 'completions')], 99):.1f} "
        f"gap_p99_ms old={pct(gaps[('old', 'completions')], 99):.1f} "
        f"new={pct(gaps[('new', 'completions')], 99):.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
