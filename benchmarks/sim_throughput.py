"""How fast one `ppd sim` process streams: many concurrent streams at time-scale 1.

Starts one sim (profile `throughput-light`: a light step model, NOT a GPU measurement, chosen so the
modeled step rate permits >= 20,000 tokens/s at 500 streams and the figure measures the sim itself),
then a client in a separate process opens N streams at once and counts streamed tokens. Side by side:
the token rate the time model allows for this workload (the offline engine, same scheduler, virtual
clock) vs the rate the client measured, and the engine's drift (how far real time fell behind its
modeled clock). Ends with

    sim_throughput streams=<int> tokens_per_s=<float> max_drift_ms=<float>

    python benchmarks/sim_throughput.py [--streams 500] [--max-tokens 400]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from _sims import running_sim

SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))

PROFILE = "throughput-light"
PROMPT_TOKENS = 32


def prompt_of(index: int) -> str:
    return " ".join(f"w{(index * 7919 + i * 31) % 120000 + 1}" for i in range(PROMPT_TOKENS))


async def one_stream(session, url: str, index: int, max_tokens: int) -> int:  # type: ignore[no-untyped-def]
    """Stream one completion; returns its number of content events (one per token)."""
    body = {
        "model": "llama",
        "prompt": prompt_of(index),
        "max_tokens": max_tokens,
        "stream": True,
        "ignore_eos": True,
    }
    count = 0
    async with session.post(url + "/v1/completions", json=body) as response:
        response.raise_for_status()
        async for data in response.content.iter_any():
            count += data.count(b'"text":"')
    return count


async def client(url: str, num_streams: int, max_tokens: int) -> dict[str, float]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.perf_counter()
        counts = await asyncio.gather(*(one_stream(session, url, i, max_tokens) for i in range(num_streams)))
        elapsed_s = time.perf_counter() - start
    return {
        "tokens": float(sum(counts)),
        "elapsed_s": elapsed_s,
        "complete": float(min(counts) == max_tokens),
    }


def modeled_tokens_per_s(num_streams: int, max_tokens: int, max_num_seqs: int) -> float:
    """Tokens/s the time model allows for this workload (offline engine, virtual clock)."""
    from ppd.sim.config import sim_config
    from ppd.sim.offline import OfflineEngine
    from ppd.sim.timing import api_overhead_s, load_profile
    from ppd.tokens import encode

    profile = load_profile(PROFILE)
    engine = OfflineEngine(sim_config(profile, max_num_seqs=max_num_seqs))
    arrival_s = api_overhead_s(profile, PROMPT_TOKENS)
    requests = [engine.new_request(encode(prompt_of(i)), max_tokens) for i in range(num_streams)]
    engine.run([(arrival_s, request) for request in requests])
    return num_streams * max_tokens / engine.now_s


def engine_stats(url: str, reset: bool = False) -> dict[str, float]:
    if reset:
        urllib.request.urlopen(
            urllib.request.Request(url + "/ppd/stats/reset", b"", method="POST"), timeout=10
        )
    with urllib.request.urlopen(url + "/ppd/stats", timeout=10) as response:
        return dict(json.load(response))


def wait_until_all_running(url: str, num_streams: int) -> dict[str, float]:
    """Poll until every stream is in the running batch; returns the stats of the ramp-up so far."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        stats = engine_stats(url)
        if stats["num_running"] >= num_streams or stats["num_generation_tokens"] >= num_streams * 2:
            return stats
        time.sleep(0.05)
    raise RuntimeError("the streams did not all start within 60 s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--max-tokens", type=int, default=400)
    parser.add_argument("--client", metavar="URL", help=argparse.SUPPRESS)  # run as the client process
    args = parser.parse_args()
    if args.client:
        print(json.dumps(asyncio.run(client(args.client, args.streams, args.max_tokens))))
        return 0
    max_num_seqs = max(256, args.streams)
    with running_sim("--profile", PROFILE, "--max-num-seqs", str(max_num_seqs)) as url:
        engine_stats(url, reset=True)
        command = [
            sys.executable,
            __file__,
            "--client",
            url,
            "--streams",
            str(args.streams),
            "--max-tokens",
            str(args.max_tokens),
        ]
        client_process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        ramp = wait_until_all_running(url, args.streams)
        engine_stats(url, reset=True)  # steady state from here: every stream decoding
        stdout, _ = client_process.communicate(timeout=600)
        result = json.loads(stdout)
        stats = engine_stats(url)
    measured = result["tokens"] / result["elapsed_s"]
    modeled = modeled_tokens_per_s(args.streams, args.max_tokens, max_num_seqs)
    print(
        f"profile {PROFILE} (light step model for this benchmark, not a GPU calibration); "
        f"{args.streams} streams x {args.max_tokens} tokens, client in a separate process"
    )
    print(f"{'':34s} {'tokens/s':>10s}")
    print(f"{'time model allows (virtual clock)':34s} {modeled:10.0f}")
    print(f"{'sim streamed (client measured)':34s} {measured:10.0f}   ({measured / modeled:.1%} of modeled)")
    print(
        f"ramp-up ({args.streams} connections and prefills arriving at once): max drift "
        f"{ramp['max_drift_ms']:.2f} ms over {ramp['num_steps']:.0f} steps"
    )
    print(
        f"steady state (all streams decoding): drift mean {stats['mean_drift_ms']:.2f} ms, "
        f"max {stats['max_drift_ms']:.2f} ms; all streams complete: {bool(result['complete'])}"
    )
    drift_ms = stats["max_drift_ms"]
    print(f"sim_throughput streams={args.streams} tokens_per_s={measured:.1f} max_drift_ms={drift_ms:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
