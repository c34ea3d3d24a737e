"""Measure what the HTTP path adds around the engines, for ppd fleet's hop costs (src/ppd/fleet/hops.json).

Starts a 1P1D pair of `ppd sim` at time scale 1 and `ppd proxy` in front, then sends isolated turns
(one at a time, an idle pause between them, fresh random prompts so no prefix-cache hit) with the
bench's own client (ppd.bench.client.HttpBackend), three ways, interleaved turn by turn:

    direct       client -> the D sim                            (for information)
    replica      client -> proxy (replication) -> sim           R_replica = TTFT - model
    pd           client -> proxy (pd) -> P, then -> D (pull)    R_pd      = TTFT - model
                 and the proxy's own P round trip, x-ppd-prefill-ms - model P time = R_p

"model" is what ppd fleet with zero hop costs gives for the same turn (the engine model alone).
The central residual of each way at each prompt length (the mean of its middle 80%: p10-p90) is
fitted with a line a + b x prompt words (the real CPU time to move, parse and tokenize a prompt comes
on top of the model's API time), and the lines become the hop costs. Not the median: at 16,384
words the residuals fall in two groups ~7 ms apart (p10 ~10 ms, p90 ~20 ms), and two runs' medians
landed in different groups (11.0 and 17.9 ms, direct), moving the per-word terms by 60%.

    proxy_to_engine = engine_to_proxy = a_p / 2              (a proxy <-> engine round trip, halved)
    client_to_proxy = proxy_to_client = (a_replica - a_p) / 2
    kv_claim        = a_pd - a_replica - a_p                  (D's claim of P's lease, and the rest of
                                                               the pd path beyond its two hops)
    engine_us_per_prompt_token = b_p                          (every engine hop, per prompt token)
    proxy_us_per_prompt_token  = b_replica - b_p              (the client's request at the proxy)

    python benchmarks/fleet_hops.py [--reps 20] [--write]     # --write: update src/ppd/fleet/hops.json

Ends with `fleet_hops r_replica_ms=.. r_pd_ms=.. r_p_ms=.. points=N` (the fixed parts a).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from _sims import SRC, running_sim

sys.path.insert(0, str(SRC))

from ppd.bench.client import HttpBackend, RawTurn, TurnRequest
from ppd.bench.workloads import builtin_workload, parse_workloads, random_word_texts
from ppd.fleet import EngineOptions, FleetConfig, HopCosts, fleet_topology, simulate
from ppd.fleet.config import HOPS_FILE

# Prompt words, output tokens: from one short turn to W4's second turn (16,448 tokens), so that the
# per-word terms are measured over the prompts the fleet is used with, not extrapolated.
SHAPES = ((128, 8), (1024, 8), (4096, 8), (16384, 8))
MAX_MODEL_LEN = 32768  # as benchmarks/fleet_vs_sim.py
PAUSE_S = 0.25
SALT = int.from_bytes(os.urandom(4), "little") << 20  # fresh prompts on every invocation


@contextmanager
def running_proxy(prefill_url: str, decode_url: str) -> Iterator[str]:
    """`ppd proxy --mode pd` on a free port in front of the pair; yields its URL."""
    python_path = os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "ppd", "proxy", "--mode", "pd", "--port", "0"]
    command += ["--prefill", prefill_url, "--decode", decode_url]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": python_path},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if "listening on " in line:
                yield line.split("listening on ", 1)[1].strip()
                break
        else:
            raise RuntimeError(f"ppd proxy did not start: exit {process.wait()}")
    finally:
        process.terminate()
        process.wait(10)


def modeled_ttft_ms(mode: str, num_words: int, num_output: int) -> tuple[float, float | None]:
    """(TTFT, P's answer time or None) of one lone turn in ppd fleet with zero hop costs, ms."""
    workload = parse_workloads(f"{num_words}/{num_output}", 1)[0]
    topology = fleet_topology("1p1d" if mode == "pd" else "1r")
    config = FleetConfig(
        topology, mode, workload, qps=0.05, duration_s=40.0, poisson=False, hops=HopCosts(),
        engine=EngineOptions(max_model_len=MAX_MODEL_LEN),
    )  # fmt: skip
    row = simulate(config).rows[0]
    if row.ttft_ms is None:
        raise RuntimeError(f"the fleet did not answer a lone {mode} turn")
    return row.ttft_ms, row.prefill_ms


async def measure(proxy_url: str, direct_url: str, reps: int) -> dict[tuple[str, int], list[float]]:
    import aiohttp

    residuals: dict[str, list[float]] = defaultdict(list)  # by way, and by way@prompt words
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession() as session:
        proxy = HttpBackend(session, proxy_url, timeout)
        direct = HttpBackend(session, direct_url, timeout)
        model = {
            (mode, w, o): modeled_ttft_ms(mode, w, o) for mode in ("replication", "pd") for w, o in SHAPES
        }
        await warm_up(session, proxy, proxy_url)  # the pair's first pull sets NIXL up, as `ppd up` does
        for rep in range(reps):
            for num_words, num_output in SHAPES:
                for kind in ("direct", "replica", "pd"):
                    text = random_word_texts([num_words], seed=SALT + rep * 1000 + num_words + len(kind))[0]
                    body = {"model": "llama", "prompt": text, "max_tokens": num_output, "ignore_eos": True,
                            "stream": True, "stream_options": {"include_usage": True}}  # fmt: skip
                    if kind != "direct":
                        mode = "pd" if kind == "pd" else "replication"
                        async with session.post(f"{proxy_url}/mode/{mode}") as answer:
                            answer.raise_for_status()
                    record = RawTurn()
                    backend = direct if kind == "direct" else proxy
                    await backend.send(TurnRequest("/v1/completions", body, {}), record)
                    if not record.ok or not record.chunk_times or record.sent_at is None:
                        raise RuntimeError(f"{kind} turn failed: {record.error}")
                    ttft_ms = (record.chunk_times[0] - record.sent_at) * 1000.0
                    model_ttft_ms, model_p_ms = model[
                        ("pd" if kind == "pd" else "replication", num_words, num_output)
                    ]
                    residuals[(kind, num_words)].append(ttft_ms - model_ttft_ms)
                    if kind == "pd" and model_p_ms is not None:
                        p_ms = float(record.headers["x-ppd-prefill-ms"])
                        residuals[("p", num_words)].append(p_ms - model_p_ms)
                    await asyncio.sleep(PAUSE_S)
    return residuals


async def warm_up(session: object, proxy: HttpBackend, proxy_url: str) -> None:
    """One pd turn whose figures are not kept."""
    async with session.post(f"{proxy_url}/mode/pd") as answer:  # type: ignore[attr-defined]
        answer.raise_for_status()
    body = {"model": "llama", "prompt": "w1 w2 w3", "max_tokens": 2, "stream": True}
    await proxy.send(TurnRequest("/v1/completions", body, {}), RawTurn())


def line_fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """(a, b) of y = a + b x by least squares."""
    mean_x = statistics.fmean(x for x, _ in points)
    mean_y = statistics.fmean(y for _, y in points)
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / sxx
    return mean_y - slope * mean_x, slope


def hop_costs(fits: dict[str, tuple[float, float]], source: str) -> dict[str, float | str]:
    """The hop costs from the residual lines a + b x prompt words (see the module docstring)."""
    (a_p, b_p), (a_replica, b_replica), (a_pd, _) = fits["p"], fits["replica"], fits["pd"]
    half_trip = max(0.0, a_p / 2)
    client_side = max(0.0, (a_replica - a_p) / 2)
    return {
        "client_to_proxy_ms": round(client_side, 3),
        "proxy_to_engine_ms": round(half_trip, 3),
        "engine_to_proxy_ms": round(half_trip, 3),
        "proxy_to_client_ms": round(client_side, 3),
        "kv_claim_ms": round(max(0.0, a_pd - a_replica - a_p), 3),
        "engine_us_per_prompt_token": round(max(0.0, b_p * 1000.0), 4),
        "proxy_us_per_prompt_token": round(max(0.0, (b_replica - b_p) * 1000.0), 4),
        "source": source,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--reps", type=int, default=20, help="turns per shape and way (default 20)")
    parser.add_argument("--write", action="store_true", help="write the figures to src/ppd/fleet/hops.json")
    args = parser.parse_args()
    builtin_workload("W1", 1)  # numpy's vocabulary is built before anything is timed
    with (
        running_sim("--engine-id", "p0", f"--max-model-len={MAX_MODEL_LEN}") as p_url,
        running_sim("--engine-id", "d0", f"--max-model-len={MAX_MODEL_LEN}") as d_url,
        running_proxy(p_url, d_url) as proxy_url,
    ):
        residuals = asyncio.run(measure(proxy_url, d_url, args.reps))
    print(
        f"{'residual (measured-model)':<24} {'words':>6} {'p10 ms':>8} {'median':>8} {'p10-p90 mean':>13} "
        f"{'p90 ms':>8} {'n':>4}"
    )
    centres: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for (kind, num_words), values in sorted(residuals.items()):
        deciles = statistics.quantiles(values, n=10)
        centre = statistics.fmean(v for v in values if deciles[0] <= v <= deciles[-1])
        centres[kind].append((num_words, centre))
        print(
            f"{kind:<24} {num_words:6d} {deciles[0]:8.2f} {statistics.median(values):8.2f} {centre:13.2f} "
            f"{deciles[-1]:8.2f} {len(values):4d}"
        )
    fits = {kind: line_fit(points) for kind, points in centres.items()}
    for kind, (a, b) in fits.items():
        print(f"{kind:<24} residual = {a:.2f} ms + {b * 1000:.3f} us x prompt words")
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    source = (
        f"benchmarks/fleet_hops.py --reps {args.reps}, {stamp}: lines through the p10-p90 mean residuals of "
        f"isolated turns at {', '.join(str(w) for w, _ in SHAPES)} prompt words "
        + "; ".join(f"R_{kind} = {a:.2f} ms + {b * 1000:.3f} us/word" for kind, (a, b) in fits.items())
        + " (1P1D ppd sim + ppd proxy on loopback, time scale 1)"
    )
    costs = hop_costs(fits, source)
    print(json.dumps(costs, indent=2))
    if args.write:
        HOPS_FILE.write_text(json.dumps(costs, indent=2) + "\n")
        print(f"wrote {HOPS_FILE}")
    a_replica, a_pd, a_p = fits["replica"][0], fits["pd"][0], fits["p"][0]
    print(f"fleet_hops r_replica_ms={a_replica:.3f} r_pd_ms={a_pd:.3f} r_p_ms={a_p:.3f} "
          f"points={sum(len(v) for v in residuals.values())}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
