"""vLLM's own engine steps at W2 4/s (tools/vllm_step_trace, session4/trace/) beside the engine
model's price for each of them: what each traced step computed, how long it took, and what
`ppd.sim.timing.step_duration_s` (h200-llama3.1-8b) says that batch costs.

    python results/h200-vllm0.25.1-single/session4/step_trace.py \
        results/h200-vllm0.25.1-single/session4/trace/steps-async-w2-q4.jsonl.gz \
        results/h200-vllm0.25.1-single/session4/trace/steps-sync-w2-q4.jsonl.gz

Traces made after commit 540e9de log each new request's prompt and cached tokens, and any workload
works; the session-4 traces (W2 4/s) lack them, and there W2's prompts tell the two kinds of
prefill apart by their new tokens: a turn 1 computes 4,096 with
nothing cached, a turn 2 4,112 after 4,208 cached (8,320 in all; the answer's last, partly filled
block is recomputed). A request chunked across steps is classed when its last chunk is seen. After
its prefill a request decodes 127 tokens (128 per turn), one per step: that gives each decode's
context (the trace keeps only the count of decodes per step). A step's duration: synchronous, from
its schedule to its output (GPU and the CPU around it, in series); asynchronous, from the previous
step's output to its own (steps run back to back while the next one is scheduled).

Rows: "decode B-B+15" steps of decodes only, by batch; "t1", "t2" a whole turn-1 / turn-2 prefill
(or the last chunk of one), "chunk" part of a prefill cut at the token budget, joined with "+" when a
step holds several; "after a prefill" / "after a decode": the decode-only steps of 16 or more
sequences by what the step before them held. The synchronous trace's decode counts disagree with
this bookkeeping at some steps (printed): its decode contexts are approximate.
"""

from __future__ import annotations

import gzip
import statistics
import sys
from collections import defaultdict
from typing import Any

from ppd.sim.timing import BatchShape, load_profile, prefill_attention_pairs, step_duration_s

OUTPUT_TOKENS = 128
KINDS = {4096: (0, 4096), 4112: (4208, 8320)}  # new tokens -> (cached, prompt)


def read(path: str) -> tuple[list[dict[str, Any]], dict[int, float]]:
    import json

    with gzip.open(path, "rt") if path.endswith(".gz") else open(path) as f:
        records = [json.loads(line) for line in f]
    return [r for r in records if r["k"] == "s"], {r["id"]: r["t"] for r in records if r["k"] == "o"}


def shapes(steps: list[dict[str, Any]]) -> list[tuple[BatchShape, str, int]]:
    """Each step's BatchShape, a label of what it held, and the traced decode count (to check)."""
    seen: dict[str, int] = defaultdict(int)  # request -> prefill tokens so far
    first_chunk: dict[str, int] = {}
    known: dict[str, tuple[int, int]] = {}  # request -> (cached, prompt), where the trace logged them
    answers: dict[str, int] = {}  # request -> max_tokens, where the trace logged it
    decoding: list[list[int]] = []  # [context, decodes left] per request past its prefill
    out = []
    for step in steps:
        shape = BatchShape()
        labels = []
        decodes = [d for d in decoding if d[1] > 0]
        shape.num_decode_seqs = len(decodes)
        shape.num_decode_context_tokens = sum(d[0] + 1 for d in decodes)
        for d in decodes:
            d[0] += 1
            d[1] -= 1
        decoding = decodes
        for request, (prompt, cached_then, max_tokens) in step.get("prompts", {}).items():
            if prompt is not None and cached_then is not None:
                known[request] = (cached_then, prompt)
            if max_tokens is not None:
                answers[request] = max_tokens
        for request, tokens in [*step["new"].items(), *step["run"].items()]:
            done = seen[request]
            seen[request] = done + tokens
            first_chunk.setdefault(request, tokens)
            total = seen[request]
            if request in known:  # traces from after 540e9de log each prompt: any workload
                cached, prompt = known[request]
                kind = (cached, prompt) if cached + total >= prompt else None
            else:  # the session-4 traces: W2's two kinds of turn by their new tokens
                kind = KINDS.get(total)
                cached = kind[0] if kind else (4208 if total > 4096 else 0)
            shape.num_prefill_tokens += tokens
            shape.num_prefill_chunks += tokens > 1
            shape.num_attention_pairs += prefill_attention_pairs(cached + done, tokens)
            if kind:  # the prompt is complete: it decodes from the next step
                decoding.append([kind[1], answers.get(request, OUTPUT_TOKENS) - 1])
                labels.append("t1" if kind[0] == 0 else "t2")
            else:
                labels.append("chunk")
        out.append((shape, "+".join(sorted(labels)) or "decode", step["decodes"]))
    return out


def durations_ms(
    steps: list[dict[str, Any]], outputs: dict[int, float], asynchronous: bool
) -> list[float | None]:
    result: list[float | None] = []
    for step in steps:
        end = outputs.get(step["id"])
        start = outputs.get(step["id"] - 1, step["t"]) if asynchronous else step["t"]
        result.append(None if end is None else (end - max(start, step["t"])) * 1e3)
    return result


def decode_line(steps: list[dict[str, Any]], measured: list[float | None]) -> str:
    """Least squares of the decode-only steps that follow a decode-only step: ms = a + b x sequences
    + c x context tokens, refitted three times without the slowest 10% of the residuals."""
    import numpy as np

    rows, previous = [], "decode"
    for (shape, label, _), real in zip(shapes(steps), measured, strict=True):
        if real is not None and label == "decode" == previous and shape.num_decode_seqs:
            rows.append((1.0, shape.num_decode_seqs, shape.num_decode_context_tokens, real))
        previous = label
    data = np.array(rows)
    x, y = data[:, :3], data[:, 3]
    keep = np.ones(len(y), dtype=bool)
    for _ in range(3):
        coef = np.linalg.lstsq(x[keep], y[keep], rcond=None)[0]
        residual = y - x @ coef
        keep = residual < np.percentile(residual[keep], 90)
    return (f"decode_line steps={int(keep.sum())} base_ms={coef[0]:.2f} per_seq_us={coef[1] * 1e3:.1f} "
            f"per_context_token_ns={coef[2] * 1e6:.1f}")  # fmt: skip


def main() -> None:
    costs = load_profile("h200-llama3.1-8b").step
    for path in sys.argv[1:]:
        steps, outputs = read(path)
        asynchronous = any(outputs.get(s["id"] - 1, 0.0) > s["t"] for s in steps)
        measured = durations_ms(steps, outputs, asynchronous)
        groups: dict[str, list[tuple[float, float]]] = defaultdict(list)
        mismatched = 0
        previous_kind = "decode"
        for (shape, label, traced_decodes), real in zip(shapes(steps), measured, strict=True):
            mismatched += shape.num_decode_seqs != traced_decodes
            kind = label
            if real is None:
                continue
            if label == "decode":
                size = shape.num_decode_seqs
                label = f"decode {size // 16 * 16}-{size // 16 * 16 + 15}"
            model_ms = step_duration_s(costs, shape) * 1e3
            groups[label].append((real, model_ms))
            if kind == "decode" and size >= 16:  # decodes of 16 or more: the step after a prefill, or not
                groups["after a prefill" if previous_kind != "decode" else "after a decode"].append(
                    (real, model_ms)
                )
            previous_kind = kind
        counted = [pair for label, pairs in groups.items() if not label.startswith("after") for pair in pairs]
        total_real = sum(r for r, _ in counted)
        total_model = sum(m for _, m in counted)
        print(f"{path}: {'asynchronous' if asynchronous else 'synchronous'} scheduling, {len(steps)} steps, "
              f"decode counts unlike the trace's at {mismatched}")  # fmt: skip
        print("| steps holding | count | real ms (median) | model ms (median) | real / model (sum) |")
        print("| --- | --- | --- | --- | --- |")
        for label in sorted(groups, key=lambda g: (not g.startswith("decode"), g.startswith("after"), g)):
            pairs = groups[label]
            real = [r for r, _ in pairs]
            model = [m for _, m in pairs]
            row = [
                label,
                str(len(pairs)),
                f"{statistics.median(real):.1f}",
                f"{statistics.median(model):.1f}",
            ]
            print("| " + " | ".join([*row, f"{sum(real) / sum(model):.3f}"]) + " |")
        print(decode_line(steps, measured))
        print(f"step_trace steps={len(steps)} real_s={total_real / 1e3:.2f} model_s={total_model / 1e3:.2f} "
              f"ratio={total_real / total_model:.3f}\n")  # fmt: skip


if __name__ == "__main__":
    main()
