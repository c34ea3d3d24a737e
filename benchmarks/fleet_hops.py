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

Then the client's side between turns (fleet/client_gaps.py): two-turn conversations through the
real `ppd bench` (its CLI, as benchmarks/fleet_vs_sim.py runs it; replication mode, a light load) at
GAP_SHAPES, its rows read back. Per conversation, from the bench's own stamps:

    stream end   turn 1's last content chunk -> its stream's end (turn 2's due time)
    send lag     turn 2's schedule_lag_ms: the bench's work (turn 1's row with its ITL list, turn 2's
                 body built and encoded) between the due time and the send

    send_lag_ms + send_lag_us_per_answer_token x turn 1's output tokens
                + send_lag_us_per_prompt_token x turn 2's prompt tokens  (least squares through each
                                                                          shape's median lag)
    send_lag_spread = quantiles (p0, p5, .., p100) of measured / fitted lag, over every conversation
    stream_end_ms   = quantiles of the stream end

And the last content chunk's way back against the first's: each conversation's turn-1 span (first
to last content chunk) over HTTP less the same conversation's in ppd fleet with zero hop costs (the
engine model alone, same arrivals), fitted with a line a + b x (output tokens - 1):
later_chunk_saving_ms = -a (what a later chunk's way back costs less than the first's), b the
real-time sims' per-step excess (for information). The isolated turns' spans (8 tokens) are printed
beside it as a check.

And a new connection's cost (fleet/connections.py): the isolated turns above go over kept-alive
connections (one client session; the proxy's pool to the sims), as most turns do. Two more ways, in
the same interleaving, send each turn on a connection of its own (a client that closes it after):

    direct fresh    client -> the D sim, a new connection   proxy_connect_ms  = C(direct fresh) - C(direct)
    replica fresh   client -> proxy, a new connection       client_connect_ms = C(replica fresh) - C(replica)

C: the central residual (p10-p90 mean), fresh less pooled, averaged over the prompts of at most
CONNECT_MAX_WORDS words (the cost does not grow with the prompt; the longer prompts' residuals spread
over several ms, which would swamp a fraction of one), so the fresh ways are sent only at those. The
proxy's connection to an engine is an aiohttp client's to `ppd sim`, as the direct way's; the
bench's to the proxy is the replica way's first hop (the proxy's own to the sim stays pooled).

    python benchmarks/fleet_hops.py [--reps 20] [--write]     # --write: update src/ppd/fleet/hops.json
    python benchmarks/fleet_hops.py --connect-only [--reps 20] [--write]
        # only the four ways and two prompt lengths the connection costs need; --write replaces only
        # those two figures

Ends with `fleet_hops r_replica_ms=.. r_pd_ms=.. r_p_ms=.. points=N` (the fixed parts a),
`fleet_gaps stream_end_p50_ms=.. send_lag_p50_ms=.. later_chunk_saving_ms=.. conversations=N` and
`fleet_connect client_connect_ms=.. proxy_connect_ms=.. points=N` (--connect-only: that line alone).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _sims import SRC, running_sim

sys.path.insert(0, str(SRC))

from ppd.bench.client import HttpBackend, RawTurn, TurnRequest
from ppd.bench.workloads import builtin_workload, parse_workloads, random_word_texts
from ppd.fleet import EngineOptions, FleetConfig, HopCosts, fleet_topology, simulate
from ppd.fleet.config import HOPS_FILE
from ppd.fleet.proxy_loop import ProxyCpu
from ppd.modes import Mode
from ppd.results import TurnRow, read_rows

# Prompt words, output tokens: from one short turn to W4's second turn (16,448 tokens), so that the
# per-word terms are measured over the prompts the fleet is used with, not extrapolated.
Shape = tuple[int, int]
SHAPES: tuple[Shape, ...] = ((128, 8), (1024, 8), (4096, 8), (16384, 8))
MAX_MODEL_LEN = 32768  # as benchmarks/fleet_vs_sim.py
PAUSE_S = 0.25
# Two-turn conversations through `ppd bench`: answers from 16 to 1,024 tokens (W3's) with a short
# prompt, and a long prompt (turn 2 8,208 tokens) with a short answer, so that the send lag's terms
# per answer and per prompt token are measured, not extrapolated. A light load (W1 and W3's lighter
# fleet_vs_sim point), ~16 conversations per shape; about 50 s in all.
GAP_SHAPES = ("128/16", "128/256", "128/1024", "4096/16")
GAP_QPS, GAP_DURATION_S, GAP_DRAIN_S = 2.0, 8.0, 30.0
NUM_SPREAD_STEPS = 20  # quantiles p0, p5, ..., p100
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


def modeled_turn_ms(mode: Mode, num_words: int, num_output: int) -> tuple[float, float | None, float]:
    """(TTFT, P's answer time or None, first -> last content chunk) of one lone turn in ppd fleet with
    zero hop costs, ms."""
    workload = parse_workloads(f"{num_words}/{num_output}", 1)[0]
    topology = fleet_topology("1p1d" if mode == "pd" else "1r")
    config = FleetConfig(
        topology, mode, workload, qps=0.05, duration_s=40.0, poisson=False, hops=HopCosts(),
        engine=EngineOptions(max_model_len=MAX_MODEL_LEN),
    )  # fmt: skip
    row = simulate(config).rows[0]
    if row.ttft_ms is None or row.e2e_ms is None:
        raise RuntimeError(f"the fleet did not answer a lone {mode} turn")
    return row.ttft_ms, row.prefill_ms, row.e2e_ms - row.ttft_ms


Residuals = dict[tuple[str, int], list[float]]  # by way and prompt words, ms


WAYS = ("direct", "replica", "pd", "direct fresh", "replica fresh")
CONNECT_MAX_WORDS = 1024
CONNECT_WAYS = ("direct", "replica", "direct fresh", "replica fresh")
CONNECT_SOURCE = "The connection costs (client_connect_ms, proxy_connect_ms):"  # its sentence in hops.json


async def measure(
    proxy_url: str,
    direct_url: str,
    reps: int,
    ways: tuple[str, ...] = WAYS,
    shapes: tuple[Shape, ...] = SHAPES,
) -> tuple[Residuals, Residuals]:
    """The isolated turns' TTFT residuals, and their spans' (first -> last content chunk)."""
    import aiohttp

    residuals: Residuals = defaultdict(list)
    spans: Residuals = defaultdict(list)
    timeout = aiohttp.ClientTimeout(total=60)
    fresh_connector = aiohttp.TCPConnector(force_close=True)  # a new connection for every request
    async with aiohttp.ClientSession() as session, aiohttp.ClientSession(connector=fresh_connector) as fresh:
        proxy = HttpBackend(session, proxy_url, timeout)
        direct = HttpBackend(session, direct_url, timeout)
        backends = {
            "direct": direct,
            "replica": proxy,
            "pd": proxy,
            "direct fresh": HttpBackend(fresh, direct_url, timeout),
            "replica fresh": HttpBackend(fresh, proxy_url, timeout),
        }
        model = {
            (mode, w, o): modeled_turn_ms(mode, w, o) for mode in ("replication", "pd") for w, o in shapes
        }
        await warm_up(session, proxy, proxy_url)  # the pair's first pull sets NIXL up, as `ppd up` does
        for rep in range(reps):
            for num_words, num_output in shapes:
                for kind in ways:
                    if kind.endswith("fresh") and num_words > CONNECT_MAX_WORDS:
                        continue  # the connection costs are taken from the short prompts only
                    text = random_word_texts([num_words], seed=SALT + rep * 1000 + num_words + len(kind))[0]
                    body = {"model": "llama", "prompt": text, "max_tokens": num_output, "ignore_eos": True,
                            "stream": True, "stream_options": {"include_usage": True}}  # fmt: skip
                    if not kind.startswith("direct"):
                        mode = "pd" if kind == "pd" else "replication"
                        async with session.post(f"{proxy_url}/mode/{mode}") as answer:
                            answer.raise_for_status()
                    record = RawTurn()
                    await backends[kind].send(TurnRequest("/v1/completions", body, {}), record)
                    if not record.ok or not record.chunk_times or record.sent_at is None:
                        raise RuntimeError(f"{kind} turn failed: {record.error}")
                    ttft_ms = (record.chunk_times[0] - record.sent_at) * 1000.0
                    model_ttft_ms, model_p_ms, model_span_ms = model[
                        ("pd" if kind == "pd" else "replication", num_words, num_output)
                    ]
                    residuals[(kind, num_words)].append(ttft_ms - model_ttft_ms)
                    span_ms = (record.chunk_times[-1] - record.chunk_times[0]) * 1000.0
                    if kind in ("replica", "pd"):
                        spans[(kind, num_words)].append(span_ms - model_span_ms)
                    if kind == "pd" and model_p_ms is not None:
                        p_ms = float(record.headers["x-ppd-prefill-ms"])
                        residuals[("p", num_words)].append(p_ms - model_p_ms)
                    await asyncio.sleep(PAUSE_S)
    return residuals, spans


async def warm_up(session: object, proxy: HttpBackend, proxy_url: str) -> None:
    """One pd turn whose figures are not kept."""
    async with session.post(f"{proxy_url}/mode/pd") as answer:  # type: ignore[attr-defined]
        answer.raise_for_status()
    body = {"model": "llama", "prompt": "w1 w2 w3", "max_tokens": 2, "stream": True}
    await proxy.send(TurnRequest("/v1/completions", body, {}), RawTurn())


def bench_conversations(proxy_url: str, out: Path) -> Path:
    """Two-turn conversations at GAP_SHAPES through `ppd bench` (replication mode); its rows file."""
    python_path = os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "ppd", "bench", "--url", proxy_url, "--workload", ",".join(GAP_SHAPES),
               "--qps", f"{GAP_QPS:g}", "--duration", f"{GAP_DURATION_S:g}", "--modes", "replication",
               "--turns", "2", "--seed", "0", "--drain-timeout-s", f"{GAP_DRAIN_S:g}", "--output", str(out),
               "--name", "gaps", "--quiet"]  # fmt: skip
    # Each shape: its window and at most its drain, plus start-up: past that the bench hangs.
    timeout_s = len(GAP_SHAPES) * (GAP_DURATION_S + GAP_DRAIN_S) + 60.0
    subprocess.run(
        command, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": python_path},
        timeout=timeout_s,
    )  # fmt: skip
    return out / "gaps.jsonl"


@dataclass(frozen=True)
class Gap:
    """One conversation's turn 1 -> turn 2, from the bench's rows (ms, tokens)."""

    shape: str
    stream_end_ms: float  # turn 1's last content chunk -> its stream's end (turn 2's due time)
    send_lag_ms: float  # turn 2's due time -> sent
    num_answer_tokens: int  # turn 1's
    num_prompt_tokens: int  # turn 2's
    span_residual_ms: float  # turn 1's first -> last content chunk, HTTP less the engine model's


def conversation_gaps(rows_path: Path) -> list[Gap]:
    """Every conversation whose two turns succeeded, beside the same conversation in ppd fleet with
    zero hop costs (the engine model alone: its spans)."""
    turns: dict[tuple[str, int], dict[int, TurnRow]] = defaultdict(dict)
    for row in read_rows(rows_path):  # the rows as written, gzipped, or packed without ITL lists
        turns[(row.workload, row.conversation)][row.turn] = row
    model_spans = {shape: modeled_spans_ms(shape) for shape in GAP_SHAPES}
    gaps = []
    for (name, index), pair in sorted(turns.items()):
        first, second = pair.get(1), pair.get(2)
        if first is None or second is None or not (first.ok and second.ok):
            continue
        shape = name.replace("x", "/")
        last_content_s = first.sent_s + first.e2e_ms / 1000.0
        span_ms = first.e2e_ms - first.ttft_ms
        gaps.append(
            Gap(shape, (second.scheduled_s - last_content_s) * 1000.0, second.schedule_lag_ms,
                first.output_tokens, second.prompt_tokens, span_ms - model_spans[shape][index])
        )  # fmt: skip
    return gaps


def modeled_spans_ms(shape: str) -> dict[int, float]:
    """Turn 1's first -> last content chunk by conversation, in ppd fleet with zero hop costs at the
    bench's point (same arrivals: the same seed, rate and window), ms."""
    config = FleetConfig(
        fleet_topology("1p1d"), "replication", parse_workloads(shape, 2)[0], qps=GAP_QPS,
        duration_s=GAP_DURATION_S, drain_timeout_s=GAP_DRAIN_S, hops=HopCosts(), proxy_cpu=ProxyCpu(),
        engine=EngineOptions(max_model_len=MAX_MODEL_LEN),
    )  # fmt: skip
    return {
        row.conversation: row.e2e_ms - row.ttft_ms
        for row in simulate(config).rows
        if row.turn == 1 and row.e2e_ms is not None and row.ttft_ms is not None
    }


def spread(values: list[float]) -> list[float]:
    """Quantiles p0, p5, ..., p100 (NUM_SPREAD_STEPS steps) of values."""
    cuts = statistics.quantiles(values, n=NUM_SPREAD_STEPS, method="inclusive")
    return [round(value, 4) for value in (min(values), *cuts, max(values))]


def gap_costs(gaps: list[Gap]) -> dict[str, Any]:
    """The client's side between turns and the later chunks' way back (see the module docstring)."""
    by_shape = {shape: [g for g in gaps if g.shape == shape] for shape in GAP_SHAPES}
    medians = [
        (statistics.median(g.num_answer_tokens for g in group),
         statistics.median(g.num_prompt_tokens for g in group),
         statistics.median(g.send_lag_ms for g in group))
        for group in by_shape.values() if group
    ]  # fmt: skip
    fixed_ms, per_answer_ms, per_prompt_ms = nonnegative_fit(medians)
    fitted = [
        fixed_ms + per_answer_ms * g.num_answer_tokens + per_prompt_ms * g.num_prompt_tokens for g in gaps
    ]
    span_points = [
        (statistics.median(g.num_answer_tokens - 1 for g in group),
         statistics.median(g.span_residual_ms for g in group))
        for group in by_shape.values() if group
    ]  # fmt: skip
    span_fixed_ms, _ = line_fit(span_points)
    return {
        "later_chunk_saving_ms": round(max(0.0, -span_fixed_ms), 3),
        "stream_end_ms": spread([g.stream_end_ms for g in gaps]),
        "send_lag_ms": round(fixed_ms, 4),
        "send_lag_us_per_answer_token": round(per_answer_ms * 1000.0, 4),
        "send_lag_us_per_prompt_token": round(per_prompt_ms * 1000.0, 5),
        "send_lag_spread": spread([g.send_lag_ms / line for g, line in zip(gaps, fitted, strict=True)]),
    }


def nonnegative_fit(points: list[tuple[float, float, float]]) -> tuple[float, float, float]:
    """(a, b, c) of z = a + b x + c y by least squares, a term whose fit is negative left out."""
    import numpy as np

    terms = [0, 1, 2]
    while True:
        design = np.array([[(1.0, x, y)[t] for t in terms] for x, y, _ in points])
        solution = np.linalg.lstsq(design, np.array([z for *_, z in points]), rcond=None)[0]
        if all(value >= 0 for value in solution) or len(terms) == 1:
            coefficients = [0.0, 0.0, 0.0]
            for term, value in zip(terms, solution, strict=True):
                coefficients[term] = max(0.0, float(value))
            return coefficients[0], coefficients[1], coefficients[2]
        terms.pop(int(np.argmin(solution)))


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


def connect_costs(residuals: Residuals) -> dict[str, float]:
    """A new connection's cost at each hop (module docstring): the fresh way's central residual less
    the pooled way's, averaged over the short prompts."""

    def extra_ms(fresh: str, pooled: str) -> float:
        words = {w for kind, w in residuals if kind == fresh} & {w for kind, w in residuals if kind == pooled}
        short = sorted(w for w in words if w <= CONNECT_MAX_WORDS)
        return statistics.fmean(
            central(residuals[(fresh, w)]) - central(residuals[(pooled, w)]) for w in short
        )

    return {
        "client_connect_ms": round(max(0.0, extra_ms("replica fresh", "replica")), 3),
        "proxy_connect_ms": round(max(0.0, extra_ms("direct fresh", "direct")), 3),
    }


def central(values: list[float]) -> float:
    """The mean of the values between their p10 and p90 (the residuals' central value)."""
    deciles = statistics.quantiles(values, n=10)
    return statistics.fmean(v for v in values if deciles[0] <= v <= deciles[-1])


def connect_line(costs: dict[str, float], residuals: Residuals) -> str:
    fresh = sum(len(v) for (kind, _), v in residuals.items() if kind.endswith("fresh"))
    return (
        f"fleet_connect client_connect_ms={costs['client_connect_ms']:.3f} "
        f"proxy_connect_ms={costs['proxy_connect_ms']:.3f} points={fresh}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--reps", type=int, default=20, help="turns per shape and way (default 20)")
    parser.add_argument("--write", action="store_true", help="write the figures to src/ppd/fleet/hops.json")
    parser.add_argument(
        "--connect-only", action="store_true", help="only a new connection's cost (--write: only those keys)"
    )
    args = parser.parse_args()
    builtin_workload("W1", 1)  # numpy's vocabulary is built before anything is timed
    with (
        running_sim("--engine-id", "p0", f"--max-model-len={MAX_MODEL_LEN}") as p_url,
        running_sim("--engine-id", "d0", f"--max-model-len={MAX_MODEL_LEN}") as d_url,
        running_proxy(p_url, d_url) as proxy_url,
        tempfile.TemporaryDirectory(prefix="fleet-hops-") as work,
    ):
        if args.connect_only:
            shapes = tuple(shape for shape in SHAPES if shape[0] <= CONNECT_MAX_WORDS)
            residuals, spans = asyncio.run(measure(proxy_url, d_url, args.reps, CONNECT_WAYS, shapes))
        else:
            residuals, spans = asyncio.run(measure(proxy_url, d_url, args.reps))
        gaps = [] if args.connect_only else conversation_gaps(bench_conversations(proxy_url, Path(work)))
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    connect = connect_costs(residuals)
    if args.connect_only:
        print_residuals(residuals)
        print(json.dumps(connect, indent=2))
        if args.write:
            costs = json.loads(HOPS_FILE.read_text())
            # Replace an earlier --connect-only's sentence rather than append a second one.
            source = costs.pop("source", "").split(CONNECT_SOURCE)[0].rstrip()
            costs |= connect
            costs["source"] = (
                f"{source} {CONNECT_SOURCE} "
                f"benchmarks/fleet_hops.py --connect-only --reps {args.reps}, {stamp}: isolated turns on a "
                f"new connection less on a kept-alive one, at {', '.join(str(w) for w, _ in shapes)} "
                "prompt words"
            )
            HOPS_FILE.write_text(json.dumps(costs, indent=2) + "\n")
            print(f"wrote {HOPS_FILE}")
        print(connect_line(connect, residuals))
        return 0
    fits = print_residuals(residuals)
    print_spans(spans)
    gap_figures = gap_costs(gaps)
    print_gaps(gaps, gap_figures)
    source = (
        f"benchmarks/fleet_hops.py --reps {args.reps}, {stamp}: lines through the p10-p90 mean residuals of "
        f"isolated turns at {', '.join(str(w) for w, _ in SHAPES)} prompt words "
        + "; ".join(f"R_{kind} = {a:.2f} ms + {b * 1000:.3f} us/word" for kind, (a, b) in fits.items())
        + f"; client gaps and later chunks from {len(gaps)} two-turn conversations through ppd bench "
        f"(replication, {GAP_QPS:g}/s for {GAP_DURATION_S:g} s at each of {', '.join(GAP_SHAPES)})"
        + "; a new connection's cost from the same isolated turns on connections of their own"
        + " (1P1D ppd sim + ppd proxy on loopback, time scale 1)"
    )
    costs = {**hop_costs(fits, source), **gap_figures, **connect}
    costs["source"] = costs.pop("source")  # last, after the figures
    print(json.dumps(costs, indent=2))
    if args.write:
        HOPS_FILE.write_text(json.dumps(costs, indent=2) + "\n")
        print(f"wrote {HOPS_FILE}")
    a_replica, a_pd, a_p = fits["replica"][0], fits["pd"][0], fits["p"][0]
    print(f"fleet_hops r_replica_ms={a_replica:.3f} r_pd_ms={a_pd:.3f} r_p_ms={a_p:.3f} "
          f"points={sum(len(v) for v in residuals.values())}")  # fmt: skip
    print(f"fleet_gaps stream_end_p50_ms={statistics.median(g.stream_end_ms for g in gaps):.3f} "
          f"send_lag_p50_ms={statistics.median(g.send_lag_ms for g in gaps):.3f} "
          f"later_chunk_saving_ms={gap_figures['later_chunk_saving_ms']:.3f} "
          f"conversations={len(gaps)}")  # fmt: skip
    print(connect_line(connect, residuals))
    return 0


def print_residuals(residuals: Residuals) -> dict[str, tuple[float, float]]:
    """The isolated turns' TTFT residuals by way and prompt length; their lines a + b x words."""
    print(
        f"{'residual (measured-model)':<24} {'words':>6} {'p10 ms':>8} {'median':>8} {'p10-p90 mean':>13} "
        f"{'p90 ms':>8} {'n':>4}"
    )
    centres: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for (kind, num_words), values in sorted(residuals.items()):
        deciles = statistics.quantiles(values, n=10)
        centre = central(values)
        centres[kind].append((num_words, centre))
        print(
            f"{kind:<24} {num_words:6d} {deciles[0]:8.2f} {statistics.median(values):8.2f} {centre:13.2f} "
            f"{deciles[-1]:8.2f} {len(values):4d}"
        )
    fits = {kind: line_fit(points) for kind, points in centres.items()}
    for kind, (a, b) in fits.items():
        print(f"{kind:<24} residual = {a:.2f} ms + {b * 1000:.3f} us x prompt words")
    return fits


def print_spans(spans: Residuals) -> None:
    """The isolated turns' first -> last content chunk, measured less modelled (a check: 7 steps)."""
    print(f"{'span residual (8 tokens)':<24} {'words':>6} {'p10 ms':>8} {'median':>8} {'p90 ms':>8} {'n':>4}")
    for (kind, num_words), values in sorted(spans.items()):
        deciles = statistics.quantiles(values, n=10)
        print(
            f"{kind:<24} {num_words:6d} {deciles[0]:8.2f} {statistics.median(values):8.2f} "
            f"{deciles[-1]:8.2f} {len(values):4d}"
        )


def print_gaps(gaps: list[Gap], figures: dict[str, Any]) -> None:
    """The bench's stream end, send lag and turn-1 span residual per shape: p10 / p50 / p90."""
    print(f"{'conversations (ms)':<10} {'n':>3} {'stream end p10/p50/p90':>24} {'send lag p10/p50/p90':>22} "
          f"{'span residual p10/p50/p90':>27}")  # fmt: skip
    for shape in GAP_SHAPES:
        group = [g for g in gaps if g.shape == shape]
        if len(group) < 2:
            print(f"{shape:<10} {len(group):3d}  too few")
            continue
        cells = [deciles_text([getattr(g, name) for g in group]) for name in
                 ("stream_end_ms", "send_lag_ms", "span_residual_ms")]  # fmt: skip
        print(f"{shape:<10} {len(group):3d} {cells[0]:>24} {cells[1]:>22} {cells[2]:>27}")
    print(
        f"send lag = ({figures['send_lag_ms']:.3f} ms + {figures['send_lag_us_per_answer_token']:.3f} us x "
        f"answer tokens + {figures['send_lag_us_per_prompt_token']:.4f} us x prompt tokens) x spread "
        f"p10/p50/p90 {quantile_text(figures['send_lag_spread'])}; stream end p10/p50/p90 "
        f"{quantile_text(figures['stream_end_ms'])} ms; later chunks' way back "
        f"{figures['later_chunk_saving_ms']:.3f} ms shorter than the first's"
    )


def deciles_text(values: list[float]) -> str:
    deciles = statistics.quantiles(values, n=10, method="inclusive")
    return f"{deciles[0]:.2f} / {statistics.median(values):.2f} / {deciles[-1]:.2f}"


def quantile_text(quantiles: list[float]) -> str:
    step = len(quantiles) // 10  # p10 is the second tenth
    return f"{quantiles[step]:.2f} / {quantiles[5 * step]:.2f} / {quantiles[9 * step]:.2f}"


if __name__ == "__main__":
    sys.exit(main())
