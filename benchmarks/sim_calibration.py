"""Calibrate the sim's time model against real vLLM 0.25.1 on H100 (Llama-3.1-8B shapes).

Runs the experiments of the GPU probe (`../shared/gpu/probe.py`) against two `ppd sim` processes at
time-scale 1 over HTTP, prints sim vs reference side by side, and ends with

    sim_calibration max_rel_err=<float> pd_max_rel_err=<float> points=<int>

max_rel_err covers the single-request points (TTFT 512/4096, prefill 8192, turn 2 straight to D at
512/4096/8192 history) and the TPOT points (N = 1/16/64/128); pd_max_rel_err the PD total-TTFT points.
Burst TTFTs are printed for information.

Reference values: every point uses the MEDIAN of the raw probe samples in
`../shared/calibration/h100x2-vllm0.25.1-nixl-probe.txt` (copied below with their README ranges),
excluding the two warm-up outliers the README names (first request after start: 95.3 ms; first PD
request of the pair: 1,190.7 ms, NIXL connection setup). Medians rather than README range midpoints
because several ranges are stretched by one slow sample (e.g. PD 4096: 233.4, 273.1, 447.5).

    python benchmarks/sim_calibration.py            # measure the default profile over HTTP
    python benchmarks/sim_calibration.py --fit      # fit the parameters offline, print them, measure

A profile fitted to an idle-engine probe file (tools/engine_probe.py; `_probe_reference.py` lists
them, e.g. `--profile h200-llama3.1-8b` and the one-H200 probes) is held to that file instead: the
probe's own experiments run against a `ppd sim` with the profile, configured as the GPU's vLLM was,
and the line is `sim_calibration max_rel_err=<f> pd_max_rel_err=none points=<int> ...` (one GPU: no
P/D points), with the worst error of each group of points after it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import random

from _probe_reference import PROBE_REFERENCES, ProbePoint, load_records, predict, probe_points
from _sims import running_sim
from ppd.openai_api import PREFILL_KV_TRANSFER_PARAMS
from ppd.sim.config import sim_config
from ppd.sim.offline import OfflineEngine
from ppd.sim.timing import (
    DEFAULT_PROFILE,
    PROFILES_DIR,
    Profile,
    api_overhead_s,
    kv_pull_duration_s,
    load_profile,
)

SOURCE = "../shared/calibration/h100x2-vllm0.25.1-nixl-probe.txt (vLLM 0.25.1, 2x H100, 2026-11-25)"


@dataclass(frozen=True)
class RefPoint:
    key: str
    group: str  # single | tpot | pd | info
    samples_ms: tuple[float, ...]
    readme_range: str

    @property
    def reference_ms(self) -> float:
        return statistics.median(self.samples_ms)


REFERENCE = [
    RefPoint("ttft_512", "single", (26.1, 23.3), "23-26"),
    RefPoint("ttft_4096", "single", (120.8, 121.1, 146.5), "121-147"),
    RefPoint("prefill_8192", "single", (268.8, 264.3, 258.2), "258-269"),
    RefPoint("turn2_d_512", "single", (24.2, 28.2, 24.4), "24-28"),
    RefPoint("turn2_d_4096", "single", (44.8, 54.8, 45.5), "45-55"),
    RefPoint("turn2_d_8192", "single", (65.6, 64.8, 125.0), "65-125"),
    RefPoint("tpot_n1", "tpot", (6.45,), "6.45"),
    RefPoint("tpot_n16", "tpot", (6.99,), "6.99"),
    RefPoint("tpot_n64", "tpot", (10.68,), "10.7"),
    RefPoint("tpot_n128", "tpot", (16.15,), "16.2"),
    RefPoint("pd_512", "pd", (76.9, 63.0), "63-77"),
    RefPoint("pd_4096", "pd", (447.5, 273.1, 233.4), "233-448"),
    RefPoint("pd_8192", "pd", (700.5, 443.4, 454.0), "443-700"),
    RefPoint("burst_ttft_p50_n16", "info", (210.2,), "210"),
    RefPoint("burst_ttft_max_n16", "info", (215.9,), "216"),
    RefPoint("burst_ttft_p50_n64", "info", (630.5,), "631"),
    RefPoint("burst_ttft_max_n64", "info", (725.8,), "726"),
    RefPoint("burst_ttft_p50_n128", "info", (1022.7,), "1023"),
    RefPoint("burst_ttft_max_n128", "info", (1352.0,), "1352"),
]


def rel_err(value: float, reference: float) -> float:
    return abs(value - reference) / reference


def max_err(values: dict[str, float], groups: tuple[str, ...]) -> float:
    return max(rel_err(values[p.key], p.reference_ms) for p in REFERENCE if p.group in groups)


# ---------------------------------------------------------------- offline prediction (virtual clock)

SIM_HTTP_MS = 0.5  # real loopback HTTP + handler time of a sim on a quiet machine, added to every TTFT
SINGLE_SIZES = {"ttft_512": 512, "ttft_4096": 4096, "prefill_8192": 8192}
BATCH_SIZES = (1, 16, 64, 128)
PD_SIZES = (512, 4096, 8192)


def _words(rng: random.Random, num_tokens: int) -> list[int]:
    return [rng.randrange(1, 128_000) for _ in range(num_tokens)]


def _first_token_ms(profile: Profile, prompt: list[int], max_tokens: int) -> float:
    engine = OfflineEngine(sim_config(profile))
    request = engine.new_request(prompt, max_tokens)
    times = engine.run([(api_overhead_s(profile, len(prompt)), request)])
    return times[request.request_id][0] * 1e3


def _turn2_on_d_ms(profile: Profile, rng: random.Random, history_tokens: int) -> float:
    """Turn 2 straight to D after a PD turn: D's cache holds the turn-1 prompt; 192 new tokens."""
    engine = OfflineEngine(sim_config(profile))
    prompt = _words(rng, history_tokens)
    engine.run([(0.0, engine.new_request(prompt, 64, num_external_tokens=history_tokens))])
    start_s = engine.now_s + 1.0
    turn2 = engine.new_request(prompt + _words(rng, 192), 64)
    times = engine.run([(start_s + api_overhead_s(profile, turn2.num_prompt_tokens), turn2)])
    return (times[turn2.request_id][0] - start_s) * 1e3


def _burst(profile: Profile, rng: random.Random, num_requests: int) -> dict[str, float]:
    """N concurrent 512-token prompts, 128 output tokens: mean TPOT, TTFT p50 and max."""
    engine = OfflineEngine(sim_config(profile))
    arrival_s = api_overhead_s(profile, 512)
    requests = [engine.new_request(_words(rng, 512), 128) for _ in range(num_requests)]
    times = engine.run([(arrival_s, request) for request in requests])
    ttfts = sorted(times[r.request_id][0] * 1e3 for r in requests)
    tpots = [(times[r.request_id][-1] - times[r.request_id][0]) * 1e3 / 127 for r in requests]
    return {
        f"tpot_n{num_requests}": statistics.fmean(tpots),
        f"burst_ttft_p50_n{num_requests}": ttfts[len(ttfts) // 2],
        f"burst_ttft_max_n{num_requests}": ttfts[-1],
    }


def _pd_total_ms(profile: Profile, rng: random.Random, num_tokens: int) -> float:
    """P's non-streaming prefill (max_tokens=1) + D's TTFT (API, handshake, pull, last token)."""
    prompt = _words(rng, num_tokens)
    prefill_ms = _first_token_ms(profile, prompt, 1)
    config = sim_config(profile)
    num_pulled_blocks = -(-num_tokens // config.block_size)
    pull_s = profile.kv_handshake_ms * 1e-3 + kv_pull_duration_s(
        profile, num_pulled_blocks, config.block_size, config.kv_bandwidth_gbps
    )
    engine = OfflineEngine(config)
    request = engine.new_request(prompt, 64, num_external_tokens=num_tokens)
    times = engine.run([(api_overhead_s(profile, num_tokens) + pull_s, request)])
    return prefill_ms + times[request.request_id][0] * 1e3


def predict_points(
    profile: Profile, groups: tuple[str, ...] = ("single", "tpot", "pd", "info")
) -> dict[str, float]:
    """Every reference point as the time model predicts it, in ms."""
    rng = random.Random(7)
    values: dict[str, float] = {}
    if "single" in groups:
        for key, num_tokens in SINGLE_SIZES.items():
            values[key] = _first_token_ms(profile, _words(rng, num_tokens), 1 if num_tokens == 8192 else 64)
        for num_tokens in PD_SIZES:
            values[f"turn2_d_{num_tokens}"] = _turn2_on_d_ms(profile, rng, num_tokens)
    if "tpot" in groups or "info" in groups:
        for num_requests in BATCH_SIZES:
            values.update(_burst(profile, rng, num_requests))
    if "pd" in groups:
        for num_tokens in PD_SIZES:
            values[f"pd_{num_tokens}"] = _pd_total_ms(profile, rng, num_tokens)
    # The sim's own HTTP round trip comes on top of the modeled time (twice for PD: P, then D).
    return {
        key: value if key.startswith("tpot") else value + SIM_HTTP_MS * (2 if key.startswith("pd") else 1)
        for key, value in values.items()
    }


# ---------------------------------------------------------------- fitting

STEP_FIT = ("base_ms", "prefill_min_ms", "prefill_token_us", "attention_pair_ns", "decode_seq_us")
STEP_NAMES = (*STEP_FIT, "decode_context_ns", "eager_step_ms", "mixed_step_ms")
API_FIT = ("api_overhead_ms", "api_overhead_per_token_us")
# The pull's own cost (kv_descriptor_us, kv_bandwidth_gbps) is fitted to vLLM's NIXL series in the kv
# probes (results/h100x2-vllm0.25.1-nixl/kv_probe_summary.py); the PD points fit what is around it.
PD_FIT = ("kv_handshake_ms",)


def with_params(profile: Profile, params: dict[str, float]) -> Profile:
    step = replace(profile.step, **{k: v for k, v in params.items() if k in STEP_NAMES})
    top = {k: v for k, v in params.items() if k not in STEP_NAMES}
    return replace(profile, step=step, **top)


def current_params(profile: Profile, names: tuple[str, ...]) -> dict[str, float]:
    return {n: getattr(profile.step, n) if hasattr(profile.step, n) else getattr(profile, n) for n in names}


def _toward(centroid: list[float], worst: list[float], t: float) -> list[float]:
    return [c + t * (w - c) for c, w in zip(centroid, worst, strict=True)]


def nelder_mead(
    objective: Callable[[list[float]], float], start: list[float], iterations: int = 400, spread: float = 0.3
) -> list[float]:
    """Minimise objective over log-parameters (keeps every parameter positive)."""
    dims = len(start)
    simplex = [[math.log(v) for v in start]]
    for i in range(dims):
        point = list(simplex[0])
        point[i] += spread
        simplex.append(point)
    scores = [objective([math.exp(v) for v in p]) for p in simplex]
    for _ in range(iterations):
        order = sorted(range(dims + 1), key=lambda i: scores[i])
        simplex, scores = [simplex[i] for i in order], [scores[i] for i in order]
        centroid = [sum(p[d] for p in simplex[:-1]) / dims for d in range(dims)]
        reflected = _toward(centroid, simplex[-1], -1.0)
        r_score = objective([math.exp(v) for v in reflected])
        if r_score < scores[0]:
            expanded = _toward(centroid, simplex[-1], -2.0)
            e_score = objective([math.exp(v) for v in expanded])
            simplex[-1], scores[-1] = (expanded, e_score) if e_score < r_score else (reflected, r_score)
        elif r_score < scores[-2]:
            simplex[-1], scores[-1] = reflected, r_score
        else:
            contracted = _toward(centroid, simplex[-1], 0.5)
            c_score = objective([math.exp(v) for v in contracted])
            if c_score < scores[-1]:
                simplex[-1], scores[-1] = contracted, c_score
            else:
                best = simplex[0]
                simplex = [best] + [
                    [b + 0.5 * (v - b) for b, v in zip(best, p, strict=True)] for p in simplex[1:]
                ]
                scores = [scores[0]] + [objective([math.exp(v) for v in p]) for p in simplex[1:]]
    best_index = min(range(dims + 1), key=lambda i: scores[i])
    return [math.exp(v) for v in simplex[best_index]]


def fit(profile: Profile) -> Profile:
    """Minimax fit: step + API parameters to the single and TPOT points, then PD parameters."""
    names = STEP_FIT + API_FIT

    def step_objective(values: list[float]) -> float:
        predicted = predict_points(
            with_params(profile, dict(zip(names, values, strict=True))), ("single", "tpot")
        )
        errs = [rel_err(predicted[p.key], p.reference_ms) for p in REFERENCE if p.group in ("single", "tpot")]
        # Burst p50s pin down the split between per-token and attention cost of batched prefill.
        errs += [0.5 * rel_err(predicted[p.key], p.reference_ms) for p in REFERENCE if "p50" in p.key]
        return max(errs) + 0.1 * statistics.fmean(errs)

    start = current_params(profile, names)
    profile = with_params(
        profile, dict(zip(names, nelder_mead(step_objective, list(start.values())), strict=True))
    )

    def pd_objective(values: list[float]) -> float:
        predicted = predict_points(with_params(profile, dict(zip(PD_FIT, values, strict=True))), ("pd",))
        errs = [rel_err(predicted[p.key], p.reference_ms) for p in REFERENCE if p.group == "pd"]
        return max(errs) + 0.1 * statistics.fmean(errs)

    start = current_params(profile, PD_FIT)
    fitted = nelder_mead(pd_objective, list(start.values()), iterations=150)
    return with_params(profile, dict(zip(PD_FIT, fitted, strict=True)))


# ---------------------------------------------------------------- measurement over HTTP


def _probe_words(num_tokens: int, offset: int) -> str:
    """The probe's prompt: distinct words per offset, one token each."""
    return " ".join(f"w{(i * 7919 + offset) % 120000 + 1}" for i in range(num_tokens))


BASE = {"model": "llama", "temperature": 0, "ignore_eos": True}
REMOTE_DECODE = PREFILL_KV_TRANSFER_PARAMS


async def stream_ttft(session, url: str, body: dict) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Stream a completion like the probe: TTFT, E2E and content-chunk count, ms."""
    sent = time.perf_counter()
    first = last = None
    chunks = 0
    payload = {**body, "stream": True, "stream_options": {"include_usage": True}}
    async with session.post(url + "/v1/completions", json=payload) as response:
        response.raise_for_status()
        async for line in response.content:
            if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
                continue
            choices = json.loads(line[6:]).get("choices") or []
            if choices and choices[0].get("text"):
                last = time.perf_counter()
                first = first or last
                chunks += 1
    assert first is not None and last is not None
    return {"ttft_ms": (first - sent) * 1e3, "e2e_ms": (last - sent) * 1e3, "chunks": chunks}


async def post_ms(session, url: str, body: dict) -> tuple[float, dict]:  # type: ignore[no-untyped-def]
    sent = time.perf_counter()
    async with session.post(url + "/v1/completions", json=body) as response:
        response.raise_for_status()
        answer = await response.json()
    return (time.perf_counter() - sent) * 1e3, answer


async def measure(p_url: str, d_url: str) -> dict[str, float]:
    """The probe's experiments against sims at time-scale 1; medians as in the reference."""
    import aiohttp

    values: dict[str, float] = {}
    connector = aiohttp.TCPConnector(limit=0)  # the default 100-connection cap would queue the N=128 burst
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=120), connector=connector
    ) as session:
        await pd_turn(session, p_url, d_url, _probe_words(64, 5))  # warm the pair: NIXL connection setup
        for num_tokens in (512, 4096):
            runs = [
                await stream_ttft(
                    session,
                    p_url,
                    {**BASE, "prompt": _probe_words(num_tokens, rep * 1000 + num_tokens), "max_tokens": 64},
                )
                for rep in range(3)
            ]
            values[f"ttft_{num_tokens}"] = statistics.median(r["ttft_ms"] for r in runs)
        for num_tokens in PD_SIZES:
            totals, prefills, turn2s = [], [], []
            for rep in range(3):
                prompt = _probe_words(num_tokens, rep * 77 + num_tokens + 5)
                prefill_ms, total_ms = await pd_turn(session, p_url, d_url, prompt)
                prefills.append(prefill_ms)
                totals.append(total_ms)
                turn2 = prompt + " " + _probe_words(64, 999) + " " + _probe_words(128, rep + 3)
                turn2s.append(
                    (await stream_ttft(session, d_url, {**BASE, "prompt": turn2, "max_tokens": 64}))[
                        "ttft_ms"
                    ]
                )
            values[f"pd_{num_tokens}"] = statistics.median(totals)
            values[f"turn2_d_{num_tokens}"] = statistics.median(turn2s)
            if num_tokens == 8192:
                values["prefill_8192"] = statistics.median(prefills)
        for conc in BATCH_SIZES:
            bodies = [
                {**BASE, "prompt": _probe_words(512, i * 13 + conc * 1000 + 7), "max_tokens": 128}
                for i in range(conc)
            ]
            runs = await asyncio.gather(*(stream_ttft(session, p_url, body) for body in bodies))
            ttfts = sorted(r["ttft_ms"] for r in runs)
            values[f"tpot_n{conc}"] = statistics.fmean(
                (r["e2e_ms"] - r["ttft_ms"]) / (r["chunks"] - 1) for r in runs
            )
            values[f"burst_ttft_p50_n{conc}"] = ttfts[len(ttfts) // 2]
            values[f"burst_ttft_max_n{conc}"] = ttfts[-1]
    return values


async def pd_turn(session, p_url: str, d_url: str, prompt: str) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """P prefill (non-streaming, max_tokens=1), then D streams; returns (prefill ms, total TTFT ms)."""
    prefill_ms, answer = await post_ms(
        session, p_url, {**BASE, "prompt": prompt, "max_tokens": 1, "kv_transfer_params": REMOTE_DECODE}
    )
    decode = await stream_ttft(
        session,
        d_url,
        {**BASE, "prompt": prompt, "max_tokens": 64, "kv_transfer_params": answer["kv_transfer_params"]},
    )
    return prefill_ms, prefill_ms + decode["ttft_ms"]


async def fetch_drift(url: str) -> float:
    import aiohttp

    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.get(url + "/ppd/stats") as response,
    ):
        return float((await response.json())["max_drift_ms"])


# ---------------------------------------------------------------- main


def print_table(predicted: dict[str, float], measured: dict[str, float]) -> None:
    print(f"reference: {SOURCE}; value = median of the raw samples")
    columns = ("ref ms", "README", "model ms", "sim ms", "rel err")
    header = f"{'point':22s} {'group':6s} " + " ".join(f"{c:>9s}" for c in columns)
    print(header)
    print("-" * len(header))
    for point in REFERENCE:
        err = rel_err(measured[point.key], point.reference_ms)
        print(
            f"{point.key:22s} {point.group:6s} {point.reference_ms:9.1f} {point.readme_range:>9s} "
            f"{predicted[point.key]:9.1f} {measured[point.key]:9.1f} {err:9.3f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=DEFAULT_PROFILE, help="profile name or JSON file to measure")
    parser.add_argument("--fit", action="store_true", help="fit the parameters first (offline, ~2 min)")
    parser.add_argument("--write", action="store_true", help="with --fit: write the fitted profile file")
    args = parser.parse_args()
    profile = load_profile(args.profile)
    if profile.name in PROBE_REFERENCES:
        return probe_main(profile, args.profile, args.fit, args.write)
    profile_arg = args.profile
    if args.fit:
        profile = fit(profile)
        params = current_params(profile, (*STEP_FIT, "decode_context_ns", *API_FIT, *PD_FIT))
        print("fitted:", json.dumps({k: round(v, 4) for k, v in params.items()}))
        profile_arg = write_profile(profile, args.profile, in_place=args.write)
    predicted = predict_points(profile)
    with (
        running_sim("--profile", profile_arg, "--engine-id", "P") as p_url,
        running_sim("--profile", profile_arg, "--engine-id", "D") as d_url,
    ):
        measured = asyncio.run(measure(p_url, d_url))
        drift_ms = max(asyncio.run(fetch_drift(p_url)), asyncio.run(fetch_drift(d_url)))
    print_table(predicted, measured)
    print(f"sim max step drift: {drift_ms:.2f} ms (real time behind the modeled clock)")
    points = sum(1 for p in REFERENCE if p.group != "info")
    print(
        f"sim_calibration max_rel_err={max_err(measured, ('single', 'tpot')):.4f} "
        f"pd_max_rel_err={max_err(measured, ('pd',)):.4f} points={points}"
    )
    return 0


def write_profile(profile: Profile, profile_arg: str, in_place: bool) -> str:
    """Write the fitted parameters into the profile file (in_place) or a temporary copy; returns its path."""
    is_path = profile_arg.endswith(".json") or "/" in profile_arg
    source = Path(profile_arg) if is_path else PROFILES_DIR / f"{profile_arg}.json"
    data = json.loads(source.read_text())
    data["step"] = {
        **data["step"],
        **{k: round(v, 4) for k, v in current_params(profile, (*STEP_FIT, "decode_context_ns")).items()},
    }  # fixed step parameters (cudagraph_max_tokens, eager_step_ms) kept as they are
    data.update({k: round(v, 4) for k, v in current_params(profile, API_FIT + PD_FIT).items()})
    target = source if in_place else Path(tempfile.mkdtemp()) / source.name
    target.write_text(json.dumps(data, indent=2) + "\n")
    return str(target)


# ---------------------------------------------------------------- probe references (one H200)

PROBE_FIT = (
    *STEP_FIT,
    "decode_context_ns",
    "eager_step_ms",
    "mixed_step_ms",
    *API_FIT,
    "api_stream_token_us",
    "api_max_load",
)
# The GPU's vLLM: max_num_seqs 1024 (vLLM's default on a GPU of >= 70 GiB), the probe's 32,000-token
# prompts, ppd up's memory share.
PROBE_SIM_ARGS = ("--max-model-len", "40960", "--max-num-seqs", "1024", "--gpu-memory-utilization", "0.85")
MIXED_WEIGHT = 0.5  # two repeats each, and a wait the model takes as half a step: weaker evidence


def probe_errors(profile: Profile, points: dict[str, ProbePoint]) -> dict[str, float]:
    return {key: (predict(profile, point) - point.value_ms) / point.value_ms for key, point in points.items()}


def fit_to_probe(profile: Profile, points: dict[str, ProbePoint]) -> Profile:
    """Least squares over relative errors (mixed points at half weight), plus a fifth of the worst."""

    def objective(values: list[float]) -> float:
        params = dict(zip(PROBE_FIT, values, strict=True))
        if params["api_max_load"] >= 0.98:
            return math.inf
        errors = probe_errors(with_params(profile, params), points)
        weighted = [abs(e) * (MIXED_WEIGHT if k.startswith("mixed") else 1.0) for k, e in errors.items()]
        return statistics.fmean(e * e for e in weighted) ** 0.5 + 0.2 * max(weighted)

    start = [max(v, 1e-3) for v in current_params(profile, PROBE_FIT).values()]
    values = nelder_mead(objective, start, iterations=3000)
    values = nelder_mead(objective, values, iterations=3000, spread=0.1)
    return with_params(profile, dict(zip(PROBE_FIT, values, strict=True)))


def probe_main(profile: Profile, profile_arg: str, fit_first: bool, write: bool) -> int:
    reference_path = PROBE_REFERENCES[profile.name]
    reference = probe_points(load_records(reference_path))
    if fit_first:
        profile = fit_to_probe(profile, reference)
        params = current_params(profile, PROBE_FIT)
        print("fitted:", json.dumps({k: round(v, 4) for k, v in params.items()}))
        profile_arg = write_probe_profile(profile, profile_arg, in_place=write)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    import engine_probe

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "probe.jsonl"
        with running_sim("--profile", profile_arg, *PROBE_SIM_ARGS) as url:
            asyncio.run(engine_probe.run(url, out, engine_probe.SECTIONS, quick=False, seed=0))
            drift_ms = asyncio.run(fetch_drift(url))
        measured = probe_points(load_records(out))
    shown = reference_path.relative_to(Path(__file__).resolve().parents[1])
    print(f"reference: {shown}; value = median of repeats")
    header = f"{'point':20s} {'group':6s} {'real ms':>9s} {'model ms':>9s} {'sim ms':>9s} {'rel err':>8s}"
    print(header)
    print("-" * len(header))
    errors: dict[str, float] = {}
    for key, point in reference.items():
        sim = measured.get(key)
        if sim is None:
            continue
        errors[key] = rel_err(sim.value_ms, point.value_ms)
        print(f"{key:20s} {point.group:6s} {point.value_ms:9.2f} {predict(profile, point):9.2f} "
              f"{sim.value_ms:9.2f} {errors[key]:8.3f}")  # fmt: skip
    print(f"sim max step drift: {drift_ms:.2f} ms (real time behind the modeled clock)")
    groups = {group: max((e for k, e in errors.items() if reference[k].group == group), default=math.nan)
              for group in ("ttft", "step", "mixed")}  # fmt: skip
    print(
        f"sim_calibration max_rel_err={max(errors.values()):.4f} pd_max_rel_err=none points={len(errors)} "
        + " ".join(f"{group}_max_rel_err={value:.4f}" for group, value in groups.items())
    )
    return 0


def write_probe_profile(profile: Profile, profile_arg: str, in_place: bool) -> str:
    """Write the probe-fitted parameters into the profile file (in_place) or a temporary copy."""
    is_path = profile_arg.endswith(".json") or "/" in profile_arg
    source = Path(profile_arg) if is_path else PROFILES_DIR / f"{profile_arg}.json"
    data = json.loads(source.read_text())
    for name, value in current_params(profile, PROBE_FIT).items():
        if name in data["step"]:
            data["step"][name] = round(value, 4)
        else:
            data[name] = round(value, 4)
    target = source if in_place else Path(tempfile.mkdtemp()) / source.name
    target.write_text(json.dumps(data, indent=2) + "\n")
    return str(target)


if __name__ == "__main__":
    sys.exit(main())
