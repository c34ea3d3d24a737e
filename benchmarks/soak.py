"""Soak `ppd proxy` in front of `ppd sim` engines at ~80% of capacity; watch errors, RSS and state.

    .venv/bin/python benchmarks/soak.py --minutes 30        # the record (2-3 for a look, CI: a smoke)

1. Starts P and D sims and the proxy (mode --mode, default ppd) as subprocesses on free ports, the
   proxy with a small --max-conversations cap so the soak runs far past it.
2. Capacity: a closed loop of --probe-concurrency conversations, each turn sent as soon as the last
   ended (no think time), for --probe-s; capacity = completed turns/s. That is the saturated
   throughput of this machine's proxy + sims + client for this workload.
3. Soak: open loop for --minutes; conversations arrive as a seeded Poisson process at a rate that
   offers --load-fraction (0.8) x capacity turns/s; each has --turns turns (prompt = the history +
   --prompt-words new words, --max-tokens streamed tokens, ignore_eos) with exponential think
   times, recognised by history (no session id). Optional --switch-every-s cycles the mode.
4. RSS of the proxy process from /proc/PID/status (VmRSS): baseline after --warmup-fraction of the
   soak, final at its end; growth = final / baseline - 1. Conversation count from /status vs the cap.

Ends with: soak minutes=<f> turns=<int> errors=<int> rss_growth_pct=<f>
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from _sims import start, start_all, stop

MODES = ("pd", "ppd", "replication")


@dataclass
class Counts:
    """What the load has done so far."""

    turns: int = 0
    errors: int = 0
    conversations: int = 0
    error_samples: list[str] = field(default_factory=list)

    def record(self, ok: bool, detail: str) -> None:
        self.turns += ok
        self.errors += not ok
        if not ok and len(self.error_samples) < 5:
            self.error_samples.append(detail)


@dataclass(frozen=True)
class Workload:
    turns: int
    prompt_words: int
    max_tokens: int
    think_s: float


# ---------------------------------------------------------------- processes


def rss_kib(pid: int) -> int:
    """Resident set size of a process (KiB), from /proc."""
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


# ---------------------------------------------------------------- one conversation


async def send_turn(
    session: aiohttp.ClientSession, url: str, prompt: str, max_tokens: int
) -> tuple[bool, str]:
    """Stream one completion; (completed with [DONE], the answer text or the error)."""
    body = {"model": "llama", "prompt": prompt, "max_tokens": max_tokens, "stream": True, "ignore_eos": True}
    try:
        async with session.post(url + "/v1/completions", json=body) as reply:
            raw = await reply.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        return False, f"{type(exc).__name__}: {exc}"
    text = raw.decode(errors="replace")
    if reply.status != 200 or not text.rstrip().endswith("data: [DONE]"):
        return False, f"{reply.status}: {text[:200]}"
    parts = [
        json.loads(line[6:])["choices"][0]["text"]
        for line in text.split("\n\n")
        if line.startswith("data: {")
    ]
    return True, "".join(parts)


async def conversation(
    session: aiohttp.ClientSession, url: str, workload: Workload, rng: random.Random, number: int,
    counts: Counts, think: bool,
) -> None:  # fmt: skip
    """All turns of one conversation; the history grows by each prompt's new words and answer."""
    counts.conversations += 1
    history = ""
    for turn in range(workload.turns):
        words = " ".join(f"c{number}t{turn}w{i}" for i in range(workload.prompt_words))
        prompt = f"{history} {words}".strip()
        ok, answer = await send_turn(session, url, prompt, workload.max_tokens)
        counts.record(ok, answer)
        if not ok:
            return
        history = prompt + answer
        if think and turn + 1 < workload.turns:
            await asyncio.sleep(rng.expovariate(1.0 / workload.think_s))


# ---------------------------------------------------------------- capacity and soak


async def probe_capacity(url: str, workload: Workload, concurrency: int, duration_s: float) -> float:
    """Completed turns/s of a closed loop of `concurrency` back-to-back conversations."""
    counts = Counts()
    deadline = time.monotonic() + duration_s

    async def worker(index: int, session: aiohttp.ClientSession) -> None:
        number = 0
        while time.monotonic() < deadline:
            number += 1
            await conversation(session, url, workload, random.Random(index), -(index * 100_000 + number),
                               counts, think=False)  # fmt: skip

    async with make_session() as session:
        started_s = time.monotonic()
        await asyncio.gather(*(worker(i, session) for i in range(concurrency)))
        elapsed_s = time.monotonic() - started_s
    if counts.errors:
        print(f"capacity probe: {counts.errors} errors, e.g. {counts.error_samples[:2]}", file=sys.stderr)
    return counts.turns / elapsed_s


def make_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=120, sock_connect=10)
    )


async def soak(
    url: str, workload: Workload, conversations_per_s: float, duration_s: float, seed: int,
    on_tick: Callable[[float, Counts], Awaitable[None]],
) -> Counts:  # fmt: skip
    """Open-loop Poisson arrivals of conversations for duration_s, then wait for those under way."""
    rng = random.Random(seed)
    counts = Counts()
    tasks: set[asyncio.Task[None]] = set()
    started_s = time.monotonic()
    next_tick_s = started_s
    async with make_session() as session:
        number = 0
        next_arrival_s = started_s
        while (now := time.monotonic()) < started_s + duration_s:
            if now >= next_tick_s:
                await on_tick(now - started_s, counts)
                next_tick_s += 10.0
            if now >= next_arrival_s:
                number += 1
                task = asyncio.create_task(
                    conversation(session, url, workload, rng, number, counts, think=True)
                )
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                next_arrival_s += rng.expovariate(conversations_per_s)
            await asyncio.sleep(max(0.0, min(next_arrival_s, next_tick_s) - time.monotonic()))
        await on_tick(time.monotonic() - started_s, counts)  # arrivals end; then the last ones finish
        if tasks:
            await asyncio.wait(tasks, timeout=120)
        await on_tick(time.monotonic() - started_s, counts)
    return counts


async def get_json(url: str) -> dict:
    async with make_session() as session, session.get(url) as reply:
        return await reply.json()


async def post(url: str) -> None:
    async with make_session() as session, session.post(url) as reply:
        await reply.read()


# ---------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, required=True, help="length of the soak")
    parser.add_argument("--mode", choices=MODES, default="ppd")
    parser.add_argument("--time-scale", type=float, default=0.1, help="sims' time scale")
    parser.add_argument("--load-fraction", type=float, default=0.8, help="offered load / measured capacity")
    parser.add_argument("--probe-s", type=float, default=20.0, help="capacity probe length")
    parser.add_argument("--probe-concurrency", type=int, default=64)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--prompt-words", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--think-s", type=float, default=1.0, help="mean think time between turns")
    parser.add_argument("--max-conversations", type=int, default=2000, help="the proxy's LRU cap")
    parser.add_argument("--warmup-fraction", type=float, default=0.2, help="RSS baseline taken after this")
    parser.add_argument(
        "--switch-every-s", type=float, default=0.0, help="cycle the mode this often (0: never)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--log-dir", type=Path, help="where the engines' and proxy's output goes (a temp dir)"
    )
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    workload = Workload(args.turns, args.prompt_words, args.max_tokens, args.think_s)
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="ppd-soak-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    sim = ("sim", "--time-scale", str(args.time_scale))
    (prefill, prefill_url), (decode, decode_url) = start_all(
        [([*sim], log_dir / "prefill.log"), ([*sim, "--seed", "1"], log_dir / "decode.log")]
    )
    proxy_args = ["proxy", "--mode", args.mode, "--prefill", prefill_url, "--decode", decode_url,
                  "--max-conversations", str(args.max_conversations)]  # fmt: skip
    proxy, url = start(proxy_args, log_dir / "proxy.log")
    try:
        status = asyncio.run(run(args, workload, url, proxy.pid))
    finally:
        for process in (proxy, decode, prefill):
            stop(process)
    tracebacks = (log_dir / "proxy.log").read_text(errors="replace").count("Traceback")
    print(f"proxy log: {tracebacks} tracebacks ({log_dir / 'proxy.log'})")
    return status if tracebacks == 0 else 1


async def run(args: argparse.Namespace, workload: Workload, url: str, proxy_pid: int) -> int:
    capacity = await probe_capacity(url, workload, args.probe_concurrency, args.probe_s)
    offered_turns_per_s = args.load_fraction * capacity
    conversations_per_s = offered_turns_per_s / workload.turns
    print(f"capacity {capacity:.1f} turns/s (closed loop, {args.probe_concurrency} conversations, "
          f"{args.probe_s:g} s); offering {offered_turns_per_s:.1f} turns/s = "
          f"{conversations_per_s:.2f} conversations/s x {workload.turns} turns", flush=True)  # fmt: skip
    duration_s = args.minutes * 60.0
    rss = {"start": rss_kib(proxy_pid), "baseline": 0, "peak": 0}
    last_switch = [0.0]
    ticks: list[tuple[float, int]] = []  # (elapsed s, completed turns)
    baseline_tick = [0]

    async def on_tick(elapsed_s: float, counts: Counts) -> None:
        now_kib = rss_kib(proxy_pid)
        rss["peak"] = max(rss["peak"], now_kib)
        ticks.append((elapsed_s, counts.turns))
        if not rss["baseline"] and elapsed_s >= args.warmup_fraction * duration_s:
            rss["baseline"], baseline_tick[0] = now_kib, len(ticks) - 1
        if args.switch_every_s and elapsed_s - last_switch[0] >= args.switch_every_s:
            last_switch[0] = elapsed_s
            await post(f"{url}/mode/{MODES[int(elapsed_s // args.switch_every_s) % len(MODES)]}")
        status = await get_json(url + "/status")
        in_flight = sum(upstream["outstanding_requests"] for upstream in status["upstreams"])
        print(f"  t={elapsed_s:6.0f}s turns={counts.turns} errors={counts.errors} in_flight={in_flight} "
              f"conversations={status['conversations']} rss={now_kib / 1024:.1f}MiB", flush=True)  # fmt: skip

    started_s = time.monotonic()
    counts = await soak(url, workload, conversations_per_s, duration_s, args.seed, on_tick)
    elapsed_s = time.monotonic() - started_s
    final_kib = rss_kib(proxy_pid)
    baseline_kib = rss["baseline"] or rss["start"]
    status = await get_json(url + "/status")
    growth_pct = (final_kib / baseline_kib - 1.0) * 100.0
    (from_s, from_turns), (to_s, to_turns) = ticks[baseline_tick[0]], ticks[-2]
    steady = (to_turns - from_turns) / (to_s - from_s) if to_s > from_s else float("nan")
    print(f"achieved {steady:.1f} turns/s from t={from_s:.0f}s to the end of arrivals at t={to_s:.0f}s "
          f"(offered {offered_turns_per_s:.1f}); {counts.conversations} conversations started")  # fmt: skip
    print(
        f"proxy RSS: start {rss['start'] / 1024:.1f} MiB, baseline (after {args.warmup_fraction:.0%}) "
        f"{baseline_kib / 1024:.1f} MiB, peak {rss['peak'] / 1024:.1f} MiB, final {final_kib / 1024:.1f} MiB"
    )
    print(f"conversations={status['conversations']} cap={args.max_conversations} "
          f"bounded={status['conversations'] <= args.max_conversations}")  # fmt: skip
    print(f"proxy responses by status: {status['responses_by_status']}; failovers: {status['failovers']}")
    for sample in counts.error_samples:
        print(f"  error: {sample}")
    print(f"soak minutes={elapsed_s / 60.0:.2f} turns={counts.turns} errors={counts.errors} "
          f"rss_growth_pct={growth_pct:.2f}")  # fmt: skip
    return 0 if counts.errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
