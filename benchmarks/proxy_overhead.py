"""What `ppd proxy` adds: TTFT overhead versus going direct, and the most streamed requests/s.

    .venv/bin/python benchmarks/proxy_overhead.py [--requests 1000] [--duration-s 5]
        [--alt-python /tmp/alt-venv/bin/python]   # also measure a starlette+uvicorn+httpx relay
        [--baseline-src /tmp/ppd-before]          # also measure the ppd proxy of another checkout

Every relay sits in front of the same upstream: a minimal asyncio HTTP server that streams a
vLLM-shaped SSE answer (`--tokens` chunks, `--itl-ms` apart, so each chunk is its own read, as with a
real engine) and costs next to nothing. Targets, measured side by side in one run:

    direct        the upstream itself (the baseline)
    ppd-proxy     `ppd proxy --mode replication --replica UPSTREAM`: the real router, relay path
    aiohttp-bare  a 20-line aiohttp relay: the floor of the HTTP stack ppd uses
    ppd-baseline  the same `ppd proxy` command run from another source tree (--baseline-src: e.g.
                  `git archive main | tar -x -C /tmp/ppd-before`), to compare a change side by side
    starlette     a 20-line starlette + uvicorn(httptools, uvloop) + httpx relay (--alt-python)

TTFT: sequential requests, targets interleaved request by request so drift hits all alike; TTFT =
send -> first body chunk. Added TTFT = relay percentile - direct percentile. Throughput: closed loop,
`--concurrency` streams over `--client-procs` client processes for `--duration-s`; each relay is a
single process (one event loop, so one core); with --pin-cpu it is pinned to that CPU.
Ends with: proxy_overhead added_ttft_p50_ms=<f> added_ttft_p99_ms=<f> max_rps=<f>
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import numpy as np

REQUEST_BODY = json.dumps(
    {"model": "llama", "prompt": "w1 w2 w3 w4 w5 w6 w7 w8", "max_tokens": 8, "stream": True}
).encode()


# ---------------------------------------------------------------- the upstream: fast, vLLM-shaped SSE


def sse_chunk(index: int, text: str) -> bytes:
    payload = {
        "id": "cmpl-bench",
        "object": "text_completion",
        "created": 0,
        "model": "llama",
        "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": None, "stop_reason": None}],
        "usage": None,
    }
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class UpstreamProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive; POST -> chunked SSE of `num_tokens` chunks, GET -> {}."""

    def __init__(self, num_tokens: int, itl_s: float) -> None:
        self.num_tokens = num_tokens
        self.itl_s = itl_s
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.chunks = [http_chunk(sse_chunk(i, f" w{i}")) for i in range(num_tokens)]
        self.tail = http_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"
        self.head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].lower()
            match = re.search(rb"content-length:\s*(\d+)", head)
            length = int(match.group(1)) if match else 0
            if len(self.buffer) < head_end + 4 + length:
                return
            self.buffer = self.buffer[head_end + 4 + length :]
            if head.startswith(b"post"):
                self.stream_answer()
            else:
                self.transport.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
                )  # type: ignore[union-attr]

    def stream_answer(self) -> None:
        transport = self.transport
        assert transport is not None
        loop = asyncio.get_running_loop()
        transport.write(self.head + self.chunks[0])
        for index in range(1, self.num_tokens):
            loop.call_later(self.itl_s * index, _write_if_open, transport, self.chunks[index])
        loop.call_later(self.itl_s * self.num_tokens, _write_if_open, transport, self.tail)


def _write_if_open(transport: asyncio.Transport, data: bytes) -> None:
    if not transport.is_closing():
        transport.write(data)


def serve_upstream(num_tokens: int, itl_s: float) -> None:
    import uvloop

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: UpstreamProtocol(num_tokens, itl_s), "127.0.0.1", 0, backlog=4096
        )
        print(f"upstream listening on http://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
        await server.serve_forever()

    uvloop.run(main())


# ---------------------------------------------------------------- the alternative relays

AIOHTTP_BARE = r"""
import asyncio, sys, aiohttp, uvloop
from aiohttp import web
UPSTREAM = sys.argv[1]
async def relay(request):
    body = await request.read()
    async with request.app["session"].post(UPSTREAM + request.path, data=body,
                                           headers={"Content-Type": "application/json"}) as upstream:
        response = web.StreamResponse(status=upstream.status)
        response.content_type = "text/event-stream"
        await response.prepare(request)
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response
async def main():
    app = web.Application()
    app["session"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    app.router.add_post("/v1/completions", relay)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
    await site.start()
    print(f"relay listening on http://127.0.0.1:{runner.addresses[0][1]}", flush=True)
    await asyncio.Event().wait()
uvloop.run(main())
"""

STARLETTE = r"""
import sys, httpx, uvicorn
from starlette.applications import Starlette
from starlette.responses import StreamingResponse
from starlette.routing import Route
UPSTREAM, PORT = sys.argv[1], int(sys.argv[2])
limits = httpx.Limits(max_connections=None, max_keepalive_connections=4096)
client = httpx.AsyncClient(limits=limits, timeout=60)
async def relay(request):
    body = await request.body()
    upstream = await client.send(client.build_request("POST", UPSTREAM + request.url.path, content=body,
                                 headers={"Content-Type": "application/json"}), stream=True)
    async def chunks():
        try:
            async for chunk in upstream.aiter_raw():
                yield chunk
        finally:
            await upstream.aclose()
    return StreamingResponse(chunks(), status_code=upstream.status_code, media_type="text/event-stream")
app = Starlette(routes=[Route("/v1/completions", relay, methods=["POST"])])
print(f"relay listening on http://127.0.0.1:{PORT}", flush=True)
uvicorn.run(app, host="127.0.0.1", port=PORT, loop="uvloop", http="httptools", log_level="warning",
            access_log=False, backlog=4096)
"""


# ---------------------------------------------------------------- processes


@dataclass
class Process:
    name: str
    url: str
    popen: subprocess.Popen[str]

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        if self.popen.stdout is not None:
            self.popen.stdout.close()


def start(
    name: str, argv: list[str], pin_cpu: int | None = None, timeout_s: float = 20.0, src: str | None = None
) -> Process:
    env = None if src is None else {**os.environ, "PYTHONPATH": str(Path(src) / "src")}
    popen = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    found: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        assert popen.stdout is not None
        for line in popen.stdout:
            match = re.search(r"listening on (http://\S+)", line)
            if match and not found:
                found.append(match.group(1))
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    if not ready.wait(timeout_s) or not found:
        popen.kill()
        raise RuntimeError(f"{name} did not start: {' '.join(argv)}")
    if pin_cpu is not None:
        os.sched_setaffinity(popen.pid, {pin_cpu})
    process = Process(name, found[0], popen)
    _wait_accepting(process.url)
    return process


def _wait_accepting(url: str, timeout_s: float = 10.0) -> None:
    host, port = url.removeprefix("http://").split(":")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, int(port)), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{url} does not accept connections")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------- measuring


async def one_ttft_s(session: aiohttp.ClientSession, url: str) -> float:
    started = time.perf_counter()
    async with session.post(
        url + "/v1/completions", data=REQUEST_BODY, headers={"Content-Type": "application/json"}
    ) as response:
        if response.status != 200:
            raise RuntimeError(f"{url} answered {response.status}: {await response.text()}")
        first = await response.content.readany()
        ttft_s = time.perf_counter() - started
        if not first:
            raise RuntimeError(f"{url} sent an empty answer")
        await response.read()
    return ttft_s


async def measure_ttfts(urls: dict[str, str], num_requests: int, num_warmup: int) -> dict[str, np.ndarray]:
    samples: dict[str, list[float]] = {name: [] for name in urls}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        for index in range(num_warmup + num_requests):
            for name, url in urls.items():
                ttft_s = await one_ttft_s(session, url)
                if index >= num_warmup:
                    samples[name].append(ttft_s)
    return {name: np.array(values) * 1000.0 for name, values in samples.items()}


async def client_worker(url: str, concurrency: int, duration_s: float) -> tuple[int, int, float]:
    done = errors = 0
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        deadline = time.perf_counter() + duration_s
        started = time.perf_counter()

        async def loop() -> None:
            nonlocal done, errors
            while time.perf_counter() < deadline:
                try:
                    async with session.post(
                        url + "/v1/completions",
                        data=REQUEST_BODY,
                        headers={"Content-Type": "application/json"},
                    ) as response:
                        await response.read()
                        if response.status == 200:
                            done += 1
                        else:
                            errors += 1
                except aiohttp.ClientError:
                    errors += 1

        await asyncio.gather(*(loop() for _ in range(concurrency)))
        return done, errors, time.perf_counter() - started


def measure_rps(url: str, args: argparse.Namespace) -> tuple[float, int]:
    """Completed streamed requests/s through `url`, from client processes running in parallel."""
    per_proc = max(1, args.concurrency // args.client_procs)
    argv = [sys.executable, __file__, "--client-worker", url, str(per_proc), str(args.duration_s)]
    workers = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) for _ in range(args.client_procs)]
    total_done = total_errors = 0
    elapsed_s = 0.0
    for worker in workers:
        out, _ = worker.communicate(timeout=args.duration_s + 60)
        done, errors, elapsed = out.split()
        total_done, total_errors = total_done + int(done), total_errors + int(errors)
        elapsed_s = max(elapsed_s, float(elapsed))
    return total_done / elapsed_s, total_errors


def percentile_ms(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="TTFT samples per target")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--duration-s", type=float, default=5.0, help="throughput run per target")
    parser.add_argument("--concurrency", type=int, default=128, help="streams in flight, all clients")
    parser.add_argument("--client-procs", type=int, default=max(1, min(4, (os.cpu_count() or 2) - 1)))
    parser.add_argument("--tokens", type=int, default=8, help="SSE chunks per answer")
    parser.add_argument("--itl-ms", type=float, default=1.0, help="gap between upstream chunks")
    parser.add_argument("--alt-python", help="a python with starlette, uvicorn, httpx, uvloop, httptools")
    parser.add_argument("--pin-cpu", type=int, help="pin each relay to this CPU (one core)")
    parser.add_argument("--baseline-src", help="also run `ppd proxy` from this source tree (its src/)")
    parser.add_argument("--upstream-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client-worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.upstream_worker:
        serve_upstream(args.tokens, args.itl_ms / 1000.0)
        return 0
    if args.client_worker:
        url, concurrency, duration_s = args.client_worker
        import uvloop

        print(*uvloop.run(client_worker(url, int(concurrency), float(duration_s))))
        return 0
    return run_benchmark(args)


def run_benchmark(args: argparse.Namespace) -> int:
    processes: list[Process] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            upstream_argv = [
                sys.executable,
                __file__,
                "--upstream-worker",
                "--tokens",
                str(args.tokens),
                "--itl-ms",
                str(args.itl_ms),
            ]
            upstream = start("upstream", upstream_argv)
            processes.append(upstream)
            targets = {"direct": upstream.url}
            proxy_argv = [
                sys.executable,
                "-m",
                "ppd",
                "proxy",
                "--mode",
                "replication",
                "--replica",
                upstream.url,
                "--port",
                "0",
            ]
            relays: list[tuple[str, list[str], str | None]] = [("ppd-proxy", proxy_argv, None)]
            if args.baseline_src:
                relays.append(("ppd-baseline", proxy_argv, args.baseline_src))
            bare = Path(tmp) / "aiohttp_bare.py"
            bare.write_text(AIOHTTP_BARE)
            relays.append(("aiohttp-bare", [sys.executable, str(bare), upstream.url], None))
            if args.alt_python:
                alt = Path(tmp) / "starlette_relay.py"
                alt.write_text(STARLETTE)
                relays.append(
                    ("starlette", [args.alt_python, str(alt), upstream.url, str(free_port())], None)
                )
            for name, argv, src in relays:
                process = start(name, argv, args.pin_cpu, src=src)
                processes.append(process)
                targets[name] = process.url
            return report(targets, args)
        finally:
            for process in reversed(processes):
                process.stop()


def report(targets: dict[str, str], args: argparse.Namespace) -> int:
    import uvloop

    print(
        f"cpus={os.cpu_count()} tokens={args.tokens} itl_ms={args.itl_ms} requests={args.requests} "
        f"concurrency={args.concurrency} client_procs={args.client_procs} pin_cpu={args.pin_cpu}"
    )
    ttfts = uvloop.run(measure_ttfts(targets, args.requests, args.warmup))
    direct_p50, direct_p99 = percentile_ms(ttfts["direct"], 50), percentile_ms(ttfts["direct"], 99)
    print(
        f"{'target':<14}{'ttft_p50_ms':>12}{'ttft_p99_ms':>12}{'added_p50':>11}{'added_p99':>11}"
        f"{'max_rps':>10}{'errors':>8}"
    )
    figures: dict[str, tuple[float, float, float]] = {}
    for name in targets:
        p50, p99 = percentile_ms(ttfts[name], 50), percentile_ms(ttfts[name], 99)
        rps, errors = measure_rps(targets[name], args)
        figures[name] = (p50 - direct_p50, p99 - direct_p99, rps)
        print(
            f"{name:<14}{p50:>12.3f}{p99:>12.3f}{p50 - direct_p50:>11.3f}{p99 - direct_p99:>11.3f}"
            f"{rps:>10.0f}{errors:>8}",
            flush=True,
        )
    added_p50, added_p99, max_rps = figures["ppd-proxy"]
    summary = f"added_ttft_p50_ms={added_p50:.3f} added_ttft_p99_ms={added_p99:.3f} max_rps={max_rps:.1f}"
    if "ppd-baseline" in figures:
        base_p50, base_p99, base_rps = figures["ppd-baseline"]
        print(
            f"proxy_overhead_baseline added_ttft_p50_ms={base_p50:.3f} added_ttft_p99_ms={base_p99:.3f} "
            f"max_rps={base_rps:.1f}"
        )
    print(f"proxy_overhead {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
