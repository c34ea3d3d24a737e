"""The loaded probe (tools/engine_probe.py --sections loaded) on the GPU beside the same probe on a
`ppd sim` engine: per injection kind, the prefill step as the decoders saw it (their longest gap) and
the decoder time the injection cost them ("lost": the window from its send to 250 ms after its last
token, less as many decode steps as the decoders' chunks in it, at the decode step before and after).

    python results/h200-vllm0.25.1-single/session4/compare_loaded.py \
        results/h200-vllm0.25.1-single/session4/probe-loaded.jsonl.gz \
        results/h200-vllm0.25.1-single/session4/probe-loaded-sim.jsonl.gz

"lost" counts tokens where the probe kept tokens per chunk (from commit 9f4c11a on), else chunks:
then, where vLLM's API server merges a stream's tokens into one chunk (while it takes in a long
prompt), merged tokens count as lost time. The sim's file came from
`BACKEND=sim bash tools/gpu/h200/session4.sh` on the 2-core dev machine (real time)."""

from __future__ import annotations

import gzip
import itertools
import json
import statistics
import sys
from typing import Any

TAIL_MS = 250.0  # the probe sleeps 300 ms after each injection


def read(path: str) -> list[dict[str, Any]]:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        return [r for r in map(json.loads, f) if r["kind"] == "loaded"]


def lost_ms(
    decoders: list[list[float]], tokens: list[list[int]] | None, injection: dict[str, Any]
) -> float | None:
    start = min(injection["sent_ms"])
    end = max(chunks[-1] for chunks in injection["chunks_ms"]) + TAIL_MS
    values = []
    for index, chunks in enumerate(decoders):
        before = [t for t in chunks if start - 500 <= t < start]
        after = [t for t in chunks if end - 150 < t <= end]
        if len(before) < 5 or len(after) < 4:
            continue
        step_ms = (statistics.median(b - a for a, b in itertools.pairwise(before)) +
                   statistics.median(b - a for a, b in itertools.pairwise(after))) / 2  # fmt: skip
        # tokens per chunk where the probe kept them (merged chunks count all their tokens), else 1
        counts = tokens[index] if tokens else [1] * len(chunks)
        inside = sum(n for t, n in zip(chunks, counts, strict=True) if start <= t < end)
        values.append(end - start - inside * step_ms)
    return statistics.median(values) if values else None


def table(records: list[dict[str, Any]]) -> dict[tuple[int, str, int, int], list[tuple[float, float | None]]]:
    out: dict[tuple[int, str, int, int], list[tuple[float, float | None]]] = {}
    for record in records:
        for injection in record["injections"]:
            key = (record["decoders"], injection["kind"], injection["history"], injection["new"])
            longest = (injection["stall"].get("longest_gaps_ms") or [float("nan")])[0]
            lost = lost_ms(record["decoder_chunks_ms"], record.get("decoder_chunk_tokens"), injection)
            out.setdefault(key, []).append((longest, lost))
    return out


def main() -> None:
    gpu, sim = table(read(sys.argv[1])), table(read(sys.argv[2]))
    print("| decoders | injection | GPU longest gap ms | sim | GPU lost ms | sim | lost GPU/sim |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    ratios = []
    for key, runs in gpu.items():
        other = sim.get(key, [])
        g_lost = [lost for _, lost in runs if lost is not None]
        s_lost = [lost for _, lost in other if lost is not None]
        ratio = sum(g_lost) / sum(s_lost) if g_lost and s_lost and len(g_lost) == len(s_lost) else None
        if ratio:
            ratios.append(ratio)
        name = f"{key[1]} {key[2]}+{key[3]}" if key[2] else f"{key[1]} {key[3]}"
        print(f"| {key[0]} | {name} | {' / '.join(f'{g:.0f}' for g, _ in runs)} | "
              f"{' / '.join(f'{s:.0f}' for s, _ in other)} | {' / '.join(f'{x:.0f}' for x in g_lost)} | "
              f"{' / '.join(f'{x:.0f}' for x in s_lost)} | {ratio and f'{ratio:.2f}'} |")  # fmt: skip
    tokens = [
        n for record in read(sys.argv[1]) for chunks in record.get("decoder_chunk_tokens", []) for n in chunks
    ]
    if tokens:
        print(
            f"\nGPU decoders' chunks={len(tokens)} merged (more than one token)={sum(n > 1 for n in tokens)}"
        )
    print(f"\nloaded_probe kinds={len(ratios)} lost_ratio_median={statistics.median(ratios):.3f} "
          f"min={min(ratios):.3f} max={max(ratios):.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
