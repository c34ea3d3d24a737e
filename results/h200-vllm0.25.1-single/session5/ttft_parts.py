"""Where a request's TTFT goes at the fifth session's points: from the bench's send to the engine
core's schedule() that first took it (API server and queue), to the start of that batch on the GPU
(the output of the step before it: vLLM schedules a batch while the one before runs), and to the
output of the step that gave its first token; p50 per point, turn 1 and turns 2+ apart:

    python results/h200-vllm0.25.1-single/session5/ttft_parts.py
    python results/h200-vllm0.25.1-single/session5/ttft_parts.py \
        --dir results/h200-vllm0.25.1-single/session5b --trace steps-async-w1-20-24-16.jsonl.gz \
        --points "W1:20 W1:24 W1:16" --split-gap-s 1

The trace's clock (the engine core's time.monotonic) and the bench's (seconds from its run's start)
are aligned per point by the median of (first token's step output - send - TTFT) over turn 1, the
k-th turn-1 send matched to the k-th fresh request scheduled (arrival order; its spread is printed,
a few ms where the match holds: not at W4 2.5/s, where requests overtake each other). The sim's
parts: session5/whatif/ttft_parts.py.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import statistics
import sys
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _step_trace() -> Any:
    spec = importlib.util.spec_from_file_location("session5_step_trace", HERE / "step_trace.py")
    if spec is None or spec.loader is None:
        raise SystemExit("cannot load step_trace.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def requests_of(part: list[dict[str, Any]], outputs: dict[int, float]) -> list[dict[str, float]]:
    """Each request's prompt, cached tokens, schedule time and first token's step output."""
    found: dict[str, dict[str, float]] = {}
    computed: dict[str, int] = {}
    for step in part:
        for request, (prompt, cached, _) in step.get("prompts", {}).items():
            started_s = max(step["t"], outputs.get(step["id"] - 1, step["t"]))
            found[request] = {
                "prompt": prompt, "cached": cached, "scheduled_s": step["t"], "started_s": started_s
            }  # fmt: skip
        for request, tokens in [*step["new"].items(), *step["run"].items()]:
            computed[request] = computed.get(request, 0) + tokens
            seen = found[request]
            seen["prefill_steps"] = seen.get("prefill_steps", 0) + 1
            complete = seen["cached"] + computed[request] >= seen["prompt"]
            if complete and "first_s" not in seen and step["id"] in outputs:
                seen["first_s"] = outputs[step["id"]]
    return sorted((r for r in found.values() if "first_s" in r), key=lambda r: r["scheduled_s"])


def parts_ms(
    traced: list[dict[str, float]], rows: list[dict[str, Any]], offset_s: float
) -> tuple[float, float, float]:
    """p50 of send -> scheduled, send -> its batch's start and that start -> first token, traced
    requests matched to rows in order."""
    pairs = list(zip(traced, sorted(rows, key=lambda r: r["sent_s"]), strict=False))
    to_scheduled = [(t["scheduled_s"] - offset_s - r["sent_s"]) * 1e3 for t, r in pairs]
    to_started = [(t["started_s"] - offset_s - r["sent_s"]) * 1e3 for t, r in pairs]
    to_first = [(t["first_s"] - t["started_s"]) * 1e3 for t, _ in pairs]
    return statistics.median(to_scheduled), statistics.median(to_started), statistics.median(to_first)


def main() -> None:
    step_trace = _step_trace()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=HERE, help="the lease's folder (trace and bench sets)")
    parser.add_argument("--trace", default="steps-async-7points.jsonl.gz")
    parser.add_argument("--points", default=step_trace.POINTS)
    parser.add_argument("--split-gap-s", type=float, default=None, help="as step_trace.py's")
    args = parser.parse_args()
    steps, outputs = step_trace.read_trace(str(args.dir / args.trace))
    names = args.points.split()
    if args.split_gap_s is None:
        parts = step_trace.split_points(steps, names)
    else:
        parts = step_trace.split_at_gaps(steps, outputs, args.split_gap_s)
    print("| point | turn | send -> scheduled | send -> batch start | start -> first token | TTFT | align |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    splits: list[str] = []
    for name, part in zip(names, parts, strict=True):
        workload, qps = name.split(":")
        with gzip.open(args.dir / f"h200-s4-async-{workload.lower()}.jsonl.gz", "rt") as f:
            rows = [r for r in map(json.loads, f) if r["qps"] == float(qps) and r["ok"]]
        traced = requests_of(part, outputs)
        fresh, first_rows = [t for t in traced if t["cached"] == 0], [r for r in rows if r["turn"] == 1]
        first_rows.sort(key=lambda r: r["sent_s"])
        matched = zip(fresh, first_rows, strict=False)
        offsets = [t["first_s"] - r["sent_s"] - r["ttft_ms"] / 1e3 for t, r in matched]
        offset_s = statistics.median(offsets)
        spread_ms = statistics.median(abs(o - offset_s) for o in offsets) * 1e3
        for turn, kind, turn_rows in (
            ("1", [t for t in traced if t["cached"] == 0], first_rows),
            ("2+", [t for t in traced if t["cached"] > 0], [r for r in rows if r["turn"] > 1]),
        ):
            to_scheduled, to_started, to_first = parts_ms(kind, turn_rows, offset_s)
            ttft = statistics.median(r["ttft_ms"] for r in turn_rows)
            print(f"| {name} | {turn} | {to_scheduled:.1f} | {to_started:.1f} | {to_first:.1f} | {ttft:.1f} "
                  f"| {spread_ms:.1f} |")  # fmt: skip
            split = Counter(int(t["prefill_steps"]) for t in kind)
            counts = ", ".join(f"{n} step(s) {c}" for n, c in sorted(split.items()))
            splits.append(f"{name} turn {turn}: {counts}")
    print("\nprefill steps per request (vLLM):")
    print("\n".join(splits))


if __name__ == "__main__":
    main()
