"""How much of its history each turn 2 found in the prefix cache, on the GPU and in the sim.

    python results/h100x2-vllm0.25.1-nixl/cache_loss_summary.py

A turn 2's prompt is turn 1's prompt + turn 1's answer text + the new words. With dummy weights the
model emits special tokens, which vLLM leaves out of the text, so the re-tokenized history differs
from what the engine cached from the first special token on. Per workload and mode (the direct ones:
ppd, replication) it prints the turn-2 count, the median prompt and cached tokens, the share of turn
2s that found less than their history's full blocks cached ("lost"), and the answer tokens the text
dropped per 1,024 (from the prompt lengths; the uniform rate 256/128,256 predicts 2.04).
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

from ppd.results import TurnRow, load_result

HERE = Path(__file__).resolve().parent
SIDES = (("real", HERE, "h100"), ("sim", HERE / "sim-comparison", "sim"))
WORKLOADS = {"W1": (512, 256), "W2": (4096, 128), "W3": (256, 1024), "W4": (8192, 64)}
BLOCK_SIZE = 16


def summary_line(side: str, workload: str, mode: str, rows: list[TurnRow]) -> str:
    new_tokens, answer_tokens = WORKLOADS[workload]
    history_blocks_tokens = (new_tokens + answer_tokens) // BLOCK_SIZE * BLOCK_SIZE
    prompts = [row.prompt_tokens or 0 for row in rows]
    cached = [row.cached_tokens or 0 for row in rows]
    lost = sum(tokens < history_blocks_tokens - BLOCK_SIZE for tokens in cached) / len(rows)
    full_prompt = 2 * new_tokens + answer_tokens
    dropped_per_1024 = (full_prompt - statistics.mean(prompts)) / answer_tokens * 1024
    return (
        f"{side:4s} {workload} {mode:11s} n={len(rows):3d} "
        f"prompt_median={statistics.median(prompts):7.0f} cached_median={statistics.median(cached):6.0f} "
        f"lost={lost:4.0%} dropped_per_1024={dropped_per_1024:5.2f}"
    )


def main() -> int:
    for side, directory, prefix in SIDES:
        for workload in WORKLOADS:
            _, all_rows = load_result(directory / f"{prefix}-{workload.lower()}.json")
            for mode in ("ppd", "replication"):
                rows = [r for r in all_rows if r.mode == mode and r.turn == 2 and r.ok]
                print(summary_line(side, workload, mode, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
