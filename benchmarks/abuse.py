"""Abuse `ppd proxy` (over `ppd sim` engines) while honest conversations flow; count what went wrong.

    flock /work/cpu.lock python benchmarks/abuse.py            # ~2 minutes

1. Starts a P sim, two D sims and the proxy (ppd mode, an admin token, --protect-status) as
   subprocesses on free ports, and a listening "spy" socket that no engine should ever contact.
2. Baseline (--baseline-s): honest load alone: --rate conversations/s (seeded Poisson), each of
   --turns streamed turns with a session id (turn 1 P->D, later turns D-direct), exponential think
   times; every answer must be 200, end with [DONE] and carry exactly --max-tokens text chunks.
   /health is sampled every --health-interval-ms on a connection of its own.
3. Attack (at least --attack-s): the same honest load, plus every abuse case below, one after the
   other, with the slow-header and idle-connection floods running alongside. Each case knows the
   answer it must get; the end checks (no engine contacted the spy, no engine counted a failure or
   left out of service, P holds no KV lease, no connection left open, no traceback and a
   rate-limited log) are cases too.
4. Prints per case, the baseline and attack figures, and last:

    abuse cases=N wrong_answers=W health_p99_ms=H honest_errors=E

with W the cases whose answer was wrong, H the p99 of /health latency during the attack and E the
honest turns that failed during it. Goals: W = 0, E = 0, H <= 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import multiprocessing
import random
import socket
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from _sims import start, start_all, stop
from ppd import __version__ as ppd_version

TOKEN = "abuse-admin-token"
MIB = 1 << 20
JSON_HEADERS = {"Content-Type": "application/json"}
DECODE_REFUSES = "max_tokens that D refuses after P prefilled"


# ---------------------------------------------------------------- processes


@dataclass
class Deployment:
    proxy: str
    prefill: str
    decodes: list[str]
    spy: socket.socket
    spy_port: int
    proxy_log: Path
    max_model_len: int = 16384


# ---------------------------------------------------------------- honest load and /health


@dataclass
class Honest:
    """Honest turns: how many completed correctly, and the failures (with a few samples)."""

    ok: int = 0
    errors: int = 0
    samples: list[str] = field(default_factory=list)

    def record(self, ok: bool, detail: str) -> None:
        self.ok += ok
        self.errors += not ok
        if not ok and len(self.samples) < 5:
            self.samples.append(detail[:300])


async def honest_turn(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any], session_id: str, max_tokens: int
) -> tuple[bool, str]:
    """One streamed turn; right when 200, [DONE] at the end and max_tokens text chunks."""
    try:
        async with session.post(
            url + "/v1/completions", json=body, headers={"X-Session-ID": session_id}
        ) as reply:
            raw = (await reply.read()).decode(errors="replace")
    except (aiohttp.ClientError, TimeoutError) as exc:
        return False, f"{type(exc).__name__}: {exc}"
    if reply.status != 200 or not raw.rstrip().endswith("data: [DONE]"):
        return False, f"{reply.status}: {raw[:200]}"
    chunks = [json.loads(line[6:]) for line in raw.split("\n\n") if line.startswith("data: {")]
    texts = [c["choices"][0]["text"] for c in chunks if c.get("choices")]
    if len(texts) != max_tokens:
        return False, f"{len(texts)} text chunks, expected {max_tokens}"
    return True, "".join(texts)


async def honest_conversation(
    session: aiohttp.ClientSession,
    url: str,
    number: int,
    args: argparse.Namespace,
    rng: random.Random,
    honest: Honest,
) -> None:
    history = ""
    for turn in range(args.turns):
        words = " ".join(f"h{number}t{turn}w{i}" for i in range(args.prompt_words))
        prompt = f"{history} {words}".strip()
        body = {"prompt": prompt, "max_tokens": args.max_tokens, "stream": True, "ignore_eos": True}
        ok, answer = await honest_turn(session, url, body, f"honest-{number}", args.max_tokens)
        honest.record(ok, answer)
        if not ok:
            return
        history = prompt + answer
        if turn + 1 < args.turns:
            await asyncio.sleep(rng.expovariate(1.0 / args.think_s))


async def honest_load(
    url: str,
    args: argparse.Namespace,
    until: Callable[[], bool],
    first_number: int,
    seed: int,
    honest: Honest,
) -> None:
    """Open-loop Poisson arrivals of conversations until `until()`; then wait for those under way."""
    rng = random.Random(seed)
    tasks: set[asyncio.Task[None]] = set()
    timeout = aiohttp.ClientTimeout(total=120, sock_connect=10)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:
        number = first_number
        next_s = time.monotonic()
        while not until():
            await asyncio.sleep(max(0.0, next_s - time.monotonic()))
            number += 1
            task = asyncio.create_task(honest_conversation(session, url, number, args, rng, honest))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            next_s += rng.expovariate(args.rate)
        if tasks:
            await asyncio.wait(tasks, timeout=180)


async def sample_health(
    url: str, interval_s: float, stop: Any, ready: Any
) -> tuple[list[float], list[float]]:
    """GET /health every interval_s on one kept-alive connection until `stop` is set (`ready` is set
    after the first); the send times (time.time() s) and latencies (ms; a failure counts as 10 s)."""
    sent_s: list[float] = []
    latencies_ms: list[float] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        while not stop.is_set():
            sent_s.append(time.time())
            started_s = time.perf_counter()
            try:
                async with session.get(url + "/health") as reply:
                    await reply.read()
                    ok = reply.status == 200
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            latencies_ms.append((time.perf_counter() - started_s) * 1e3 if ok else 10_000.0)
            ready.set()
            await asyncio.sleep(interval_s)
    return sent_s, latencies_ms


def health_process(url: str, interval_s: float, stop: Any, ready: Any, results: Any) -> None:
    """The /health sampler in a process of its own: the attacks' own work here (sending 16 MiB
    bodies, floods) must not show up as the proxy's latency."""
    results.put(asyncio.run(sample_health(url, interval_s, stop, ready)))


class HealthSampler:
    """Starts health_process; `finish()` stops it and returns its samples."""

    def __init__(self, url: str, interval_s: float) -> None:
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self._ready = context.Event()
        self._results: Any = context.Queue()
        self._process = context.Process(
            target=health_process, args=(url, interval_s, self._stop, self._ready, self._results)
        )
        self._process.start()

    async def sampling(self, timeout_s: float = 30.0) -> None:
        """Return once the sampler's process has taken its first sample."""
        if not await asyncio.to_thread(self._ready.wait, timeout_s):
            raise RuntimeError(f"the /health sampler took no sample within {timeout_s:g} s")

    async def finish(self) -> tuple[list[float], list[float]]:
        self._stop.set()
        samples: tuple[list[float], list[float]] = await asyncio.to_thread(self._results.get, True, 60)
        await asyncio.to_thread(self._process.join, 10)
        return samples


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


# ---------------------------------------------------------------- raw HTTP for the attacks


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def error_message(self) -> str:
        """The OpenAI error's message ("" when the body is not one)."""
        with contextlib.suppress(ValueError, AttributeError, TypeError):
            return str(json.loads(self.body)["error"]["message"])
        return ""

    def is_openai_error(self, status: int) -> bool:
        with contextlib.suppress(ValueError, AttributeError, TypeError, KeyError):
            error = json.loads(self.body)["error"]
            return self.status == status and error["code"] == status and bool(error["message"])
        return False


def host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def request_bytes(
    method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None, raw_headers: bytes = b""
) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: proxy",
        "Connection: close",
        f"Content-Length: {len(body)}",
        *(f"{k}: {v}" for k, v in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n").encode() + raw_headers + b"\r\n" + body


async def exchange(url: str, data: bytes, timeout_s: float = 60.0) -> Answer:
    """Send raw bytes on a new connection and read the whole answer (the server closes after it)."""
    reader, writer = await asyncio.open_connection(*host_port(url))
    try:
        writer.write(data)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout_s)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    if headers.get("Transfer-Encoding") == "chunked":
        body = _unchunk(body)
    return Answer(status, headers, body)


def _unchunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_text, _, rest = data.partition(b"\r\n")
        size = int(size_text.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out, data = out + rest[:size], rest[size + 2 :]
    return out


def gzip_bomb(num_mib: int) -> bytes:
    """num_mib MiB of spaces, gzipped a MiB at a time (never all in memory at once)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = b" " * MIB
    return b"".join(compressor.compress(chunk) for _ in range(num_mib)) + compressor.flush()


def post_json(path: str, body: Any, headers: dict[str, str] | None = None, raw_headers: bytes = b"") -> bytes:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return request_bytes("POST", path, data, {**JSON_HEADERS, **(headers or {})}, raw_headers)


# ---------------------------------------------------------------- the abuse cases


@dataclass
class Case:
    name: str
    ok: bool
    detail: str
    started_s: float = 0.0  # time.time(); 0: an end check
    ended_s: float = 0.0

    def worst_health_ms(self, sent_s: list[float], latencies_ms: list[float]) -> float:
        """The slowest /health answer that overlapped this case."""
        during = [ms for s, ms in zip(sent_s, latencies_ms, strict=True)
                  if s <= self.ended_s and s + ms / 1e3 >= self.started_s]  # fmt: skip
        return max(during, default=0.0)


CaseResult = tuple[bool, str]
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


def forged_pull(spy_port: int) -> dict[str, Any]:
    return {
        "do_remote_prefill": True,
        "do_remote_decode": False,
        "remote_engine_id": "attacker",
        "remote_request_id": "x",
        "remote_block_ids": [[0, 1]],
        "remote_host": "127.0.0.1",
        "remote_port": spy_port,
    }


def completed(answer: Answer, route: str | None = None) -> CaseResult:
    """A whole, non-streamed 200 completion (on `route`, when given)."""
    try:
        text = json.loads(answer.body)["choices"][0]["text"]
    except (ValueError, KeyError, IndexError, TypeError):
        return False, f"{answer.status}: {answer.body[:200]!r}"
    if answer.status != 200 or not text:
        return False, f"{answer.status}: {answer.body[:200]!r}"
    if route is not None and answer.headers.get("x-ppd-route") != route:
        return False, f"route {answer.headers.get('x-ppd-route')}, expected {route}"
    return True, f"200 on {answer.headers.get('x-ppd-route')}"


def refused(answer: Answer, status: int, words: str = "") -> CaseResult:
    """An OpenAI-style error with `status` whose message contains `words`."""
    message = answer.error_message()
    ok = answer.is_openai_error(status) and words in message
    return ok, f"{answer.status}: {message[:160] or answer.body[:160]!r}"


def attack_cases(deployment: Deployment) -> list[tuple[str, Callable[[], Awaitable[CaseResult]]]]:
    """Every abuse case: its name and a coroutine that runs it and judges the answer."""
    proxy, spy_port = deployment.proxy, deployment.spy_port
    C, CHAT = "/v1/completions", "/v1/chat/completions"

    async def forged_turn_1() -> CaseResult:
        body = {"prompt": "a1 a2 a3", "max_tokens": 4, "kv_transfer_params": forged_pull(spy_port)}
        return completed(await exchange(proxy, post_json(C, body)), "pd")

    async def forged_direct_turn() -> CaseResult:
        first = await exchange(
            proxy, post_json(C, {"prompt": "b1 b2", "max_tokens": 3}, {"X-Session-ID": "forger"})
        )
        if first.status != 200:
            return False, f"turn 1: {first.status}"
        prompt = "b1 b2" + json.loads(first.body)["choices"][0]["text"] + " b3"
        body = {"prompt": prompt, "max_tokens": 3, "kv_transfer_params": forged_pull(spy_port)}
        return completed(await exchange(proxy, post_json(C, body, {"X-Session-ID": "forger"})), "ppd-direct")

    async def forged_hold() -> CaseResult:
        body = {"prompt": "c1 c2", "max_tokens": 2, "kv_transfer_params": {"do_remote_decode": True}}
        return completed(await exchange(proxy, post_json(C, body, {"X-Session-ID": "holder"})))

    async def forged_params_of_wrong_type() -> CaseResult:
        body = {"prompt": "d1 d2", "max_tokens": 2, "kv_transfer_params": "not an object"}
        return completed(await exchange(proxy, post_json(C, body)))

    async def reused_request_id() -> CaseResult:
        data = post_json(C, {"prompt": "e1 e2 e3", "max_tokens": 8}, {"X-Request-Id": "same-id"})
        answers = await asyncio.gather(*(exchange(proxy, data) for _ in range(4)))
        results = [completed(answer) for answer in answers]
        return all(ok for ok, _ in results), "; ".join(detail for _, detail in results)

    def body_of(data: bytes, path: str, status: int, words: str) -> Callable[[], Awaitable[CaseResult]]:
        # Built now, before any phase: building a 16 MiB body would stall this process's own loop.
        request = post_json(path, data)

        async def send() -> CaseResult:
            return refused(await exchange(proxy, request), status, words)

        return send

    huge_prompt = " ".join(f"w{i % 1000}" for i in range(4 * MIB // 5))  # ~4 MB of words
    huge_prompt_over_context = body_of(
        json.dumps({"prompt": huge_prompt, "max_tokens": 5}).encode(), C, 400, "you requested 5 output tokens"
    )

    async def decode_refuses_what_prefill_took() -> CaseResult:
        body = {"prompt": "f1 f2 f3 f4 f5", "max_tokens": deployment.max_model_len - 2}
        return refused(
            await exchange(proxy, post_json(C, body)), 400, f"{deployment.max_model_len - 2} output tokens"
        )

    async def raw_header(header: bytes, status: int, words: str, path: str = C) -> CaseResult:
        data = post_json(path, {"prompt": "g1", "max_tokens": 1}, raw_headers=header + b"\r\n")
        return refused(await exchange(proxy, data), status, words)

    def encoded(value: str, data: bytes, status: int, words: str) -> Callable[[], Awaitable[CaseResult]]:
        request = post_json(C, data, {"Content-Encoding": value})

        async def send() -> CaseResult:
            return refused(await exchange(proxy, request), status, words)

        return send

    async def gzip_ok() -> CaseResult:
        data = gzip.compress(json.dumps({"prompt": "h1 h2", "max_tokens": 2}).encode())
        return completed(await exchange(proxy, post_json(C, data, {"Content-Encoding": "gzip"})))

    async def admin_without_token() -> CaseResult:
        results = [
            refused(await exchange(proxy, request_bytes(method, path)), 401, "")
            for method, path in (
                ("POST", "/mode/pd"),
                ("POST", "/conversations/clear"),
                ("GET", "/status"),
                ("GET", "/metrics"),
            )
        ]
        return all(ok for ok, _ in results), "; ".join(detail for _, detail in results)

    async def not_http(data: bytes) -> CaseResult:
        answer = await exchange(proxy, data)
        return answer.status == 400, f"{answer.status}"

    async def many_bad_requests() -> CaseResult:
        # 100 a second: a flood of bad requests, paced (a volume flood is a rate limiter's to stop)
        data = post_json(C, b"{nope")

        async def paced(index: int) -> Answer:
            await asyncio.sleep(index / 100)
            return await exchange(proxy, data)

        answers = await asyncio.gather(*(paced(index) for index in range(300)))
        wrong = [answer.status for answer in answers if not answer.is_openai_error(400)]
        return not wrong, f"300 bad JSON bodies, {len(wrong)} not a 400 JSON error"

    encodings = ("zstdx", "compress", "gzip, br", "*", "br", "zstd")
    small = json.dumps({"prompt": "i1", "max_tokens": 1}).encode()
    cases: list[tuple[str, Callable[[], Awaitable[CaseResult]]]] = [
        ("forged kv_transfer_params (pull from a spy) on a turn 1", forged_turn_1),
        ("forged kv_transfer_params on a ppd-direct turn 2", forged_direct_turn),
        ("forged do_remote_decode (hold KV for nobody)", forged_hold),
        ("kv_transfer_params of the wrong type", forged_params_of_wrong_type),
        ("one X-Request-Id on 4 concurrent requests", reused_request_id),
        (
            "16 MiB of {} entries",
            body_of(
                b'{"prompt": [' + b",".join([b"{}"] * (16 * MIB // 3 - 8)) + b"]}",
                C,
                400,
                "more than",
            ),
        ),
        (
            "16 MiB of [] entries",
            body_of(b'{"prompt": [' + b",".join([b"[]"] * (16 * MIB // 3 - 8)) + b"]}", C, 400, "elements"),
        ),
        (
            "16 MiB of numbers",
            body_of(b'{"prompt": [' + b",".join([b"1"] * (8 * MIB - 8)) + b"]}", C, 400, "elements"),
        ),
        (
            "400k one-word chat messages",
            body_of(
                json.dumps({"messages": [{"role": "user", "content": "w"}] * 400_000}).encode(),
                CHAT,
                400,
                "elements",
            ),
        ),
        (
            "JSON nested 100k deep",
            body_of(b'{"prompt": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", C, 400, ""),
        ),
        (
            "JSON nested 65 deep",
            body_of(b'{"prompt": ' + b"[" * 65 + b"1" + b"]" * 65 + b"}", C, 400, "nests deeper"),
        ),
        ("4 MB prompt over the context (tokenized off the engine's loop)", huge_prompt_over_context),
        (DECODE_REFUSES, decode_refuses_what_prefill_took),
        (
            "non-UTF-8 Authorization on a turn",
            lambda: raw_header(b"Authorization: Bearer \xff\xfe", 401, "ASCII"),
        ),
        (
            "non-UTF-8 Authorization on an admin endpoint",
            lambda: raw_header(b"Authorization: Bearer \xe9", 401, "ASCII", "/mode/pd"),
        ),
        *[
            (f"Content-Encoding {value!r}", encoded(value, small, 415, "not supported"))
            for value in encodings
        ],
        ("gzip that is not gzip", encoded("gzip", b"\x1f\x8b nope", 400, "not valid gzip")),
        ("deflate that is not deflate", encoded("deflate", small, 400, "not valid deflate")),
        (
            "gzip bomb (64 MiB of spaces in 64 KiB)",
            encoded("gzip", gzip_bomb(64), 413, "once decoded"),
        ),
        ("valid gzip body", gzip_ok),
        ("admin endpoints and /status without the token", admin_without_token),
        (
            "a 10 KB header line",
            lambda: not_http(b"GET /health HTTP/1.1\r\nHost: p\r\nX: " + b"a" * 10_000 + b"\r\n\r\n"),
        ),
        ("bytes that are not HTTP", lambda: not_http(b"GARBAGE\r\n\r\n")),
        ("300 bad JSON bodies, 100 a second", many_bad_requests),
        (
            "conversation_id of 600 characters",
            body_of(
                json.dumps({"prompt": "j", "conversation_id": "c" * 600}).encode(), C, 400, "conversation_id"
            ),
        ),
        (
            "max_tokens of 10**9",
            body_of(json.dumps({"prompt": "k1", "max_tokens": 10**9}).encode(), C, 400, ""),
        ),
    ]
    return cases


def selected(
    cases: list[tuple[str, Callable[[], Awaitable[CaseResult]]]], texts: list[str] | None
) -> list[tuple[str, Callable[[], Awaitable[CaseResult]]]]:
    """The cases whose name contains one of `texts` (all when None); SystemExit if none does."""
    if not texts:
        return cases
    chosen = [case for case in cases if any(text in case[0] for text in texts)]
    if not chosen:
        raise SystemExit(f"abuse.py: no case name contains any of {texts}")
    return chosen


# ---------------------------------------------------------------- connection floods


async def slow_headers(url: str, num_connections: int, byte_every_s: float, limit_s: float) -> CaseResult:
    """Connections that send their headers a byte at a time: each must be closed within limit_s."""

    async def one() -> float | None:
        reader, writer = await asyncio.open_connection(*host_port(url))
        started_s = time.monotonic()
        try:
            for byte in b"GET /health HTTP/1.1\r\nHost: p\r\nX-Slow: " + b"a" * 1000:
                writer.write(bytes([byte]))
                await writer.drain()
                with contextlib.suppress(TimeoutError):
                    if await asyncio.wait_for(reader.read(1), byte_every_s) == b"":
                        return time.monotonic() - started_s
                if time.monotonic() - started_s > limit_s + 5:
                    return None
        except ConnectionError:
            return time.monotonic() - started_s
        finally:
            writer.close()
        return None

    closed = await asyncio.gather(*(one() for _ in range(num_connections)))
    late = [s for s in closed if s is None or s > limit_s]
    worst = max((s for s in closed if s is not None), default=float("nan"))
    return (
        not late,
        f"{num_connections} slow-header connections, {len(late)} not closed within {limit_s:g} s "
        f"(worst {worst:.1f} s)",
    )


async def idle_flood(url: str, num_connections: int, limit_s: float) -> CaseResult:
    """Connections that send nothing: each must be closed within limit_s."""
    opened = []
    for _ in range(num_connections):
        opened.append(await asyncio.open_connection(*host_port(url)))
    started_s = time.monotonic()

    async def closed_after(reader: asyncio.StreamReader) -> float | None:
        try:
            await asyncio.wait_for(reader.read(), limit_s + 5)
        except TimeoutError:
            return None
        except ConnectionError:
            pass
        return time.monotonic() - started_s

    closed = await asyncio.gather(*(closed_after(reader) for reader, _ in opened))
    for _, writer in opened:
        writer.close()
    late = [s for s in closed if s is None or s > limit_s]
    return not late, f"{num_connections} idle connections, {len(late)} not closed within {limit_s:g} s"


# ---------------------------------------------------------------- end checks


async def end_checks(deployment: Deployment, num_refused_by_decode: int, elapsed_s: float) -> list[Case]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def get(url: str, headers: dict[str, str] | None = None) -> Any:
            async with session.get(url, headers=headers) as reply:
                return await reply.json()

        status = await get(deployment.proxy + "/status", ADMIN)
        leases = [
            (await get(url + "/ppd/stats"))["num_leases"] for url in [deployment.prefill, *deployment.decodes]
        ]
    cases = []
    try:
        connection, _ = deployment.spy.accept()
        connection.close()
        contacted = True
    except BlockingIOError:
        contacted = False
    cases.append(
        Case("no engine ever contacted the spy", not contacted, "contacted" if contacted else "never")
    )
    faults = {u["url"]: (u["healthy"], u["num_failures"]) for u in status["upstreams"]}
    ok = all(healthy and failures == 0 for healthy, failures in faults.values())
    cases.append(Case("every engine in service, no failure counted against one", ok, str(faults)))
    released = status["kv_releases"]
    cases.append(
        Case(
            "P holds no KV lease; D's refusals handed P's KV back",
            leases == [0, 0, 0] and released["released"] >= num_refused_by_decode,
            f"leases {leases}, releases {released}",
        )
    )
    connections = status["connections"]
    cases.append(Case("no client connection left open", connections["num_open"] <= 2, str(connections)))
    log = deployment.proxy_log.read_text(errors="replace").splitlines()[1:]
    bound = 20 + 10 * elapsed_s + 1
    ok = not any("Traceback" in line for line in log) and len(log) <= bound
    cases.append(
        Case(
            "proxy log: one line per rejection, rate-limited, no traceback",
            ok,
            f"{len(log)} lines in {elapsed_s:.0f} s (bound {bound:.0f})",
        )
    )
    return cases


# ---------------------------------------------------------------- main


async def run_attack(
    deployment: Deployment,
    attack: list[tuple[str, Callable[[], Awaitable[CaseResult]]]],
    args: argparse.Namespace,
) -> list[Case]:
    """Every case in turn, the floods alongside; at least --attack-s long."""
    started_s = time.monotonic()
    floods_started_s = time.time()
    floods = [
        asyncio.create_task(
            slow_headers(deployment.proxy, args.slow_connections, 1.0, 2 * args.header_timeout_s + 5)
        ),
        # Closed within twice the header timeout (aiohttp's default: never): the clock starts at the
        # client's connect, and a busy proxy accepts from its backlog later.
        asyncio.create_task(
            idle_flood(deployment.proxy, args.idle_connections, 2 * args.header_timeout_s + 5)
        ),
    ]
    results = []
    for name, run_case in attack:
        case_started_s = time.time()
        try:
            ok, detail = await run_case()
        except (OSError, TimeoutError, ValueError) as exc:
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        results.append(Case(name, ok, detail, case_started_s, time.time()))
        await asyncio.sleep(0.2)
    for name, flood in zip(("slow-header flood", "idle-connection flood"), floods, strict=True):
        ok, detail = await flood
        results.append(Case(name, ok, detail, floods_started_s, time.time()))
    await asyncio.sleep(max(0.0, args.attack_s - (time.monotonic() - started_s)))
    return results


async def measure(deployment: Deployment, args: argparse.Namespace) -> int:
    async with aiohttp.ClientSession() as session, session.get(deployment.prefill + "/v1/models") as reply:
        deployment.max_model_len = int((await reply.json())["data"][0]["max_model_len"])
    started_s = time.monotonic()
    phases: dict[str, tuple[Honest, list[float]]] = {}
    attack_samples: tuple[list[float], list[float]] = ([], [])
    cases: list[Case] = []
    attack = selected(attack_cases(deployment), args.cases)  # every body built before any measurement
    for phase, seed in (("baseline", args.seed), ("attack", args.seed + 1)):
        honest = Honest()
        sampler = HealthSampler(deployment.proxy, args.health_interval_ms / 1e3)
        await sampler.sampling()
        done = asyncio.Event()
        load = asyncio.create_task(
            honest_load(deployment.proxy, args, done.is_set, 1_000_000 * (seed + 1), seed, honest)
        )
        if phase == "baseline":
            await asyncio.sleep(args.baseline_s)
        else:
            cases = await run_attack(deployment, attack, args)
        done.set()
        await load
        sent_s, latencies_ms = await sampler.finish()
        phases[phase] = (honest, latencies_ms)
        if phase == "attack":
            attack_samples = (sent_s, latencies_ms)
    await asyncio.sleep(2.0)  # the last KV releases and pulls settle
    num_refused_by_decode = sum(name == DECODE_REFUSES for name, _ in attack)
    cases += await end_checks(deployment, num_refused_by_decode, time.monotonic() - started_s)
    for case in cases:
        worst = f" [/health <= {case.worst_health_ms(*attack_samples):.0f} ms]" if case.started_s else ""
        print(f"  {'ok   ' if case.ok else 'WRONG'} {case.name}: {case.detail}{worst}")
    for phase, (honest, latencies_ms) in phases.items():
        print(
            f"{phase}: honest turns ok={honest.ok} errors={honest.errors}; "
            f"/health samples={len(latencies_ms)} "
            f"p50={percentile(latencies_ms, 0.5):.1f} ms p99={percentile(latencies_ms, 0.99):.1f} ms "
            f"max={max(latencies_ms, default=float('nan')):.1f} ms"
        )
        for sample in honest.samples:
            print(f"  honest error: {sample}")
    honest, latencies_ms = phases["attack"]
    wrong = sum(not case.ok for case in cases)
    print(
        f"abuse cases={len(cases)} wrong_answers={wrong} health_p99_ms={percentile(latencies_ms, 0.99):.1f} "
        f"honest_errors={honest.errors}"
    )
    return 0 if wrong == 0 and honest.errors == 0 else 1


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20.0, help="honest conversations/s (Poisson)")
    parser.add_argument("--turns", type=int, default=3, help="turns per honest conversation")
    parser.add_argument("--prompt-words", type=int, default=32, help="new words per honest turn")
    parser.add_argument("--max-tokens", type=int, default=16, help="streamed tokens per honest turn")
    parser.add_argument("--think-s", type=float, default=0.5, help="mean think time between turns (s)")
    parser.add_argument("--baseline-s", type=float, default=20.0, help="honest load alone first (s)")
    parser.add_argument("--attack-s", type=float, default=30.0, help="shortest attack phase (s)")
    parser.add_argument("--health-interval-ms", type=float, default=20.0, help="/health sampling period")
    parser.add_argument("--header-timeout-s", type=float, default=10.0, help="the proxy's --header-timeout-s")
    parser.add_argument("--slow-connections", type=int, default=50, help="slow-header connections")
    parser.add_argument("--idle-connections", type=int, default=1000, help="connections that send nothing")
    parser.add_argument("--time-scale", type=float, default=0.1, help="the sims' time scale")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--cases",
        action="append",
        metavar="TEXT",
        help="only the cases whose name contains TEXT (repeatable)",
    )
    parser.add_argument("--log-dir", type=Path, help="engines' and proxy's output (default: a temp dir)")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="ppd-abuse-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    sim = ["sim", "--time-scale", str(args.time_scale)]
    processes = []
    spy = socket.socket()
    try:
        engines = [([*sim, "--engine-id", "P"], log_dir / "prefill.log")]
        engines += [
            ([*sim, "--engine-id", f"D{index}", "--seed", str(index + 1)], log_dir / f"decode{index}.log")
            for index in range(2)
        ]
        started = start_all(engines)
        processes += [process for process, _ in started]
        prefill_url, *decode_urls = [url for _, url in started]
        proxy, proxy_url = start(
            [
                "proxy",
                "--mode",
                "ppd",
                "--prefill",
                prefill_url,
                "--decode",
                *decode_urls,
                "--admin-token",
                TOKEN,
                "--protect-status",
                "--header-timeout-s",
                str(args.header_timeout_s),
            ],
            log_dir / "proxy.log",
        )
        processes.append(proxy)
        spy.bind(("127.0.0.1", 0))
        spy.listen(64)
        spy.setblocking(False)
        deployment = Deployment(
            proxy_url, prefill_url, decode_urls, spy, spy.getsockname()[1], log_dir / "proxy.log"
        )
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, check=False).stdout.strip()  # fmt: skip
        print(f"abuse.py {time.strftime('%Y-%m-%d %H:%M:%S %Z')} commit {commit or '?'} ppd {ppd_version} "
              f"python {sys.version.split()[0]} aiohttp {aiohttp.__version__}; {vars(args)}")  # fmt: skip
        print(
            f"proxy {proxy_url} (ppd) over P {prefill_url}, D {', '.join(decode_urls)}; "
            f"honest load {args.rate:g} conversations/s x {args.turns} turns; logs in {log_dir}",
            flush=True,
        )
        return asyncio.run(measure(deployment, args))
    finally:
        spy.close()
        for process in reversed(processes):
            stop(process)


if __name__ == "__main__":
    sys.exit(main())
