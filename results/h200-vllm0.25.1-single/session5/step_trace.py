"""vLLM's own engine steps at the seven loaded points of the fifth session (one trace, in order),
each priced with the engine model (`ppd.sim.timing.step_duration_s`), per point:

    python results/h200-vllm0.25.1-single/session5/step_trace.py \
        results/h200-vllm0.25.1-single/session5/steps-async-7points.jsonl.gz [--profile P] [--fit]

The trace holds every schedule() and update_from_output() of the lease (tools/vllm_step_trace, with
each new request's [prompt tokens, cached tokens, max_tokens]); the points ran one after another,
each with its own workload, so a point starts at the first step whose new requests have another
max_tokens than the point before (W1 256, W2 128, W3 1,024, W4 64). A step's batch and duration are
read as session4/step_trace.py reads them (asynchronous scheduling: a step lasts from the previous
step's output to its own).

Per point it prints:
- `point`: steps, real and model seconds summed, their ratio;
- `decode`: decode-only steps, split by whether the *next* batch admits a new request. vLLM
  schedules batch k+1 while batch k runs and prepares its inputs before it takes k's output, so
  that preparation shows up in step k when k is short (the `new next` rows);
- `units`: every step merged with the steps after it that admit new requests (so the preparation
  is counted once, with the batch it was for): the residual real - model, in all and in units that
  admit new requests;
- `tpot`: the engine's TPOT p50 (first token's step output to last token's, per request) from the
  real step ends and from the model's step prices laid end to end on the same batches.
`--fit`: least squares of the units' real time on the step formula's terms, with the decode terms
(base, per sequence, per context token) held at the profile's idle fit, the slowest 5% dropped three
times: the loaded engine's prefill, attention, eager, mixed and mixed-context terms.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ppd.sim.timing import BatchShape, StepCosts, load_profile, step_duration_s


def _session4_reader() -> Any:
    """session4/step_trace.py (the reader of a trace's batches), loaded under its own name."""
    path = Path(__file__).resolve().parents[1] / "session4" / "step_trace.py"
    spec = importlib.util.spec_from_file_location("session4_step_trace", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_reader = _session4_reader()
durations_ms, shapes = _reader.durations_ms, _reader.shapes

WORKLOAD_OF_MAX_TOKENS = {256: "W1", 128: "W2", 1024: "W3", 64: "W4"}
POINTS = "W1:16 W3:8 W2:4 W1:8 W3:4 W2:5 W4:2.5"  # the lease's order (session5/README.md)
TERMS = ["steps", "decode_seqs", "context_Mtok", "mixed_context_Mtok",
         "prefill_ktok", "pairs_G", "eager", "mixed"]  # fmt: skip
FREE_TERMS = ["mixed_context_Mtok", "prefill_ktok", "pairs_G", "eager", "mixed"]


@dataclass
class Point:
    name: str
    steps: list[dict[str, Any]]
    shapes: list[tuple[BatchShape, str, int]]
    real_ms: list[float | None]


def read_trace(path: str) -> tuple[list[dict[str, Any]], dict[int, float]]:
    with gzip.open(path, "rt") if path.endswith(".gz") else open(path) as f:
        records = [json.loads(line) for line in f]
    return [r for r in records if r["k"] == "s"], {r["id"]: r["t"] for r in records if r["k"] == "o"}


def split_points(steps: list[dict[str, Any]], names: list[str]) -> list[list[dict[str, Any]]]:
    """The trace cut where the new requests' workload changes (the points ran back to back)."""
    parts: list[list[dict[str, Any]]] = []
    workload = None
    for step in steps:
        seen = {WORKLOAD_OF_MAX_TOKENS[p[2]] for p in step.get("prompts", {}).values()}
        if seen and seen != {workload}:
            workload = seen.pop()
            parts.append([])
        if parts:
            parts[-1].append(step)
    return parts


def split_at_gaps(
    steps: list[dict[str, Any]], outputs: dict[int, float], gap_s: float
) -> list[list[dict[str, Any]]]:
    """The trace cut where the engine idled longer than gap_s (points of one workload back to back:
    ~1.4-2.5 s between this trace's points, at most 0.04 s inside one)."""
    parts: list[list[dict[str, Any]]] = [[]]
    for step in steps:
        before = parts[-1][-1] if parts[-1] else None
        if before is not None and step["t"] - outputs.get(before["id"], before["t"]) > gap_s:
            parts.append([])
        parts[-1].append(step)
    return parts


def terms(shape: BatchShape, cudagraph_max_tokens: int) -> np.ndarray:
    """The step formula's terms of one batch (TERMS order)."""
    mixed = bool(shape.num_prefill_chunks and shape.num_decode_seqs)
    context_mtok = shape.num_decode_context_tokens / 1e6
    return np.array([
        1.0, shape.num_decode_seqs, 0.0 if mixed else context_mtok, context_mtok if mixed else 0.0,
        shape.num_prefill_tokens / 1e3, shape.num_attention_pairs / 1e9,
        float(shape.num_prefill_tokens + shape.num_decode_seqs > cudagraph_max_tokens), float(mixed),
    ])  # fmt: skip


def units(point: Point, costs: StepCosts) -> list[tuple[np.ndarray, float, float, bool]]:
    """Each step merged with the steps after it that admit new requests: (terms, real ms, model ms,
    admits new requests); steps without an output in the trace are left out."""
    out = []
    steps, index = point.steps, 0
    while index < len(steps):
        last = index
        while last + 1 < len(steps) and steps[last + 1]["new"]:
            last += 1
        span = range(index, last + 1)
        if all(point.real_ms[k] is not None for k in span):
            shapes_ = [point.shapes[k][0] for k in span]
            out.append((
                sum(terms(s, costs.cudagraph_max_tokens) for s in shapes_),
                sum(point.real_ms[k] or 0.0 for k in span),
                sum(step_duration_s(costs, s) * 1e3 for s in shapes_),
                last > index or bool(steps[index]["new"]),
            ))  # fmt: skip
        index = last + 1
    return out


def engine_tpot_ms(point: Point, step_end_s: dict[int, float]) -> list[float]:
    """Per request: (last token's step end - first token's) / (max_tokens - 1)."""
    return [tpot_ms for _, tpot_ms in engine_tpot_by_request(point.steps, step_end_s).values()]


def engine_tpot_by_request(
    steps: list[dict[str, Any]], step_end_s: dict[int, float]
) -> dict[str, tuple[bool, float]]:
    """Per request that decoded all its tokens: (turn 1, nothing cached; TPOT ms as engine_tpot_ms)."""
    prompts: dict[str, list[int]] = {}
    computed: dict[str, int] = {}
    decodes_left: dict[str, int] = {}
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    for step in steps:
        end_s = step_end_s.get(step["id"])
        if end_s is None:
            continue
        for request in [r for r, n in decodes_left.items() if n > 0]:
            decodes_left[request] -= 1
            last[request] = end_s
        prompts.update(step.get("prompts", {}))
        for request, tokens in [*step["new"].items(), *step["run"].items()]:
            computed[request] = computed.get(request, 0) + tokens
            prompt, cached, max_tokens = prompts[request]
            if cached + computed[request] >= prompt and request not in first:
                first[request] = last[request] = end_s
                decodes_left[request] = max_tokens - 1
    return {
        r: (prompts[r][1] == 0, (last[r] - first[r]) * 1e3 / (prompts[r][2] - 1))
        for r in first
        if decodes_left[r] == 0 and prompts[r][2] > 1
    }


def model_step_ends_s(point: Point, costs: StepCosts, outputs: dict[int, float]) -> dict[int, float]:
    """The model's price of each traced batch laid end to end (from the step's schedule after idling)."""
    ends: dict[int, float] = {}
    end_s: float | None = None
    for step, (shape, _, _) in zip(point.steps, point.shapes, strict=True):
        queued = end_s is not None and outputs.get(step["id"] - 1, 0.0) >= step["t"]
        start_s = end_s if queued and end_s is not None else max(step["t"], end_s or step["t"])
        end_s = start_s + step_duration_s(costs, shape)
        ends[step["id"]] = end_s
    return ends


def print_point(point: Point, costs: StepCosts, outputs: dict[int, float]) -> None:
    real_total = model_total = 0.0
    decode: dict[str, list[float]] = {"no new next": [], "new next": []}
    for index, ((shape, label, _), real) in enumerate(zip(point.shapes, point.real_ms, strict=True)):
        if real is None:
            continue
        model = step_duration_s(costs, shape) * 1e3
        real_total, model_total = real_total + real, model_total + model
        if label == "decode" and index + 1 < len(point.steps):
            decode["new next" if point.steps[index + 1]["new"] else "no new next"].append(real - model)
    print(f"{point.name}: point steps={len(point.steps)} real_s={real_total / 1e3:.2f} "
          f"model_s={model_total / 1e3:.2f} ratio={real_total / model_total:.3f}")  # fmt: skip
    for kind, excess in decode.items():
        if excess:
            print(f"{point.name}: decode {kind}: steps={len(excess)} real-model ms "
                  f"median={statistics.median(excess):.2f} mean={statistics.mean(excess):.2f}")  # fmt: skip
    merged = units(point, costs)
    residual = [real - model for _, real, model, _ in merged]
    with_new = [real - model for _, real, model, new in merged if new]
    print(f"{point.name}: units={len(merged)} residual_s={sum(residual) / 1e3:.2f} "
          f"({sum(residual) / real_total * 100:+.1f}%) admitting={len(with_new)} "
          f"their_residual_ms_mean={statistics.mean(with_new):.2f}")  # fmt: skip
    print_decoders(point, costs)
    print_preparation(point, outputs)
    print_wide_decodes(point, costs)
    real_tpot = statistics.median(engine_tpot_ms(point, outputs))
    model_tpot = statistics.median(engine_tpot_ms(point, model_step_ends_s(point, costs, outputs)))
    print(f"{point.name}: tpot p50 real_ms={real_tpot:.2f} model_ms={model_tpot:.2f} "
          f"err={(model_tpot / real_tpot - 1) * 100:+.1f}%")  # fmt: skip


def print_decoders(point: Point, costs: StepCosts) -> None:
    """What a decoding sequence sees: the step time weighted by the decodes in it (real and the
    model's price of the same batches), the steps that carry a prefill and how many decodes ride in
    them (session5/whatif/decoders.py prints the same for the sim's own batches)."""
    decodes = real_weighted = model_weighted = 0.0
    prefill_steps = beside = most_new = 0
    for (shape, label, _), real in zip(point.shapes, point.real_ms, strict=True):
        if real is None:
            continue
        n = shape.num_decode_seqs
        decodes += n
        real_weighted += n * real
        model_weighted += n * step_duration_s(costs, shape) * 1e3
        if label != "decode":
            prefill_steps, beside = prefill_steps + 1, beside + n
    most_new = max(len(step["new"]) for step in point.steps)
    print(f"{point.name}: decoders weighted_step_ms real={real_weighted / decodes:.2f} "
          f"model={model_weighted / decodes:.2f} decode_tokens={int(decodes)} prefill_steps={prefill_steps} "
          f"decodes_per_prefill_step={beside / max(prefill_steps, 1):.1f} "
          f"most_new_in_a_step={most_new}")  # fmt: skip


def print_preparation(point: Point, outputs: dict[int, float]) -> None:
    """How long the engine core is busy after scheduling a batch before it takes the output of the
    step in flight (o(k) - s(k+1)), when step k is decode-only: by whether batch k+1 admits a
    request, and whether that batch is above the CUDA-graph size (512 tokens)."""
    gaps: dict[str, list[float]] = {"no new": [], "new <=512": [], "new >512": []}
    for index in range(len(point.steps) - 1):
        step, after = point.steps[index], point.steps[index + 1]
        if point.shapes[index][1] != "decode" or step["id"] not in outputs:
            continue
        kind = "no new" if not after["new"] else "new >512" if after["n"] > 512 else "new <=512"
        gaps[kind].append((outputs[step["id"]] - after["t"]) * 1e3)
    print(f"{point.name}: preparation o(k)-s(k+1) ms median " + " ".join(
        f"{kind}={statistics.median(g):.1f}({len(g)})" for kind, g in gaps.items() if g))  # fmt: skip


def print_wide_decodes(point: Point, costs: StepCosts) -> None:
    """Decode-only steps of more than 128 sequences (the sim's API server paces those) whose next
    batch admits nobody: real and model medians."""
    bands: dict[str, list[tuple[float, float]]] = {"129-159": [], "160-199": [], "200+": []}
    for index, ((shape, label, _), real) in enumerate(zip(point.shapes, point.real_ms, strict=True)):
        n = shape.num_decode_seqs
        if real is None or label != "decode" or n <= 128 or index + 1 >= len(point.steps):
            continue
        if point.steps[index + 1]["new"]:
            continue
        band = "129-159" if n < 160 else "160-199" if n < 200 else "200+"
        bands[band].append((real, step_duration_s(costs, shape) * 1e3))
    found = [(band, pairs) for band, pairs in bands.items() if pairs]
    if found:
        medians = [
            (band, statistics.median(r for r, _ in pairs), statistics.median(m for _, m in pairs), len(pairs))
            for band, pairs in found
        ]
        print(f"{point.name}: decode-only >128 seqs real/model ms median " + " ".join(
            f"{band}: {real:.2f}/{model:.2f}({count})" for band, real, model, count in medians))  # fmt: skip


def fit(points: list[Point], costs: StepCosts) -> None:
    """The loaded terms by least squares, the decode terms held (see the module doc)."""
    rows = [unit for point in points for unit in units(point, costs)]
    x = np.array([terms_ for terms_, _, _, _ in rows])
    y = np.array([real for _, real, _, _ in rows])
    y = y - x[:, 0] * costs.base_ms - x[:, 1] * costs.decode_seq_us * 1e-3 - x[:, 2] * costs.decode_context_ns
    free = x[:, [TERMS.index(t) for t in FREE_TERMS]]
    keep = np.ones(len(y), dtype=bool)
    for _ in range(3):
        coef = np.linalg.lstsq(free[keep], y[keep], rcond=None)[0]
        residual = np.abs(y - free @ coef)
        keep = residual < np.percentile(residual[keep], 95)
    fitted = dict(zip(FREE_TERMS, coef, strict=True))
    print(f"fit units={int(keep.sum())} prefill_token_us={fitted['prefill_ktok']:.3f} "
          f"attention_pair_ns={fitted['pairs_G'] * 1e-3:.4f} eager_step_ms={fitted['eager']:.3f} "
          f"mixed_step_ms={fitted['mixed']:.3f} "
          f"mixed_context_ns={fitted['mixed_context_Mtok'] - costs.decode_context_ns:.2f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace")
    parser.add_argument("--profile", default="h200-llama3.1-8b")
    parser.add_argument("--points", default=POINTS, help=f"the points' names in order (default {POINTS!r})")
    parser.add_argument("--fit", action="store_true")
    parser.add_argument("--split-gap-s", type=float, default=None,
                        help="cut points at idle gaps longer than this (points of one workload in a row); "
                        "default: where the workload changes")  # fmt: skip
    args = parser.parse_args()
    costs = load_profile(args.profile).step
    steps, outputs = read_trace(args.trace)
    names = args.points.split()
    if args.split_gap_s is None:
        parts = split_points(steps, names)
    else:
        parts = split_at_gaps(steps, outputs, args.split_gap_s)
    if len(parts) != len(names):
        raise SystemExit(f"the trace splits into {len(parts)} points, --points names {len(names)}")
    points = [
        Point(name, part, shapes(part), durations_ms(part, outputs, asynchronous=True))
        for name, part in zip(names, parts, strict=True)
    ]
    for point in points:
        print_point(point, costs, outputs)
    if args.fit:
        fit(points, costs)


if __name__ == "__main__":
    main()
