"""Summarise the kv_probe runs in raw/: what each PD turn moved over NIXL (from vLLM's own
Prometheus series on D, diffed around the request) and how long the turns took, per block size.

    python results/h100x2-vllm0.25.1-nixl/kv_probe_summary.py

Medians over the repeats (3 at block 16, 2 at blocks 64 and 128); the min-max range beside them.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

RAW = Path(__file__).resolve().parent / "raw"
BLOCK_SIZES = (16, 64, 128)
KV_BYTES_PER_TOKEN = 131072  # Llama-3.1-8B: 32 layers x 8 KV heads x 128 dims x 2 (K, V) x 2 bytes


def series_total(diff: dict[str, float], name: str) -> float:
    """Sum of one metric's changes over its label sets (one engine here)."""
    return sum(v for k, v in diff.items() if re.sub(r"\{.*", "", k) == name)


def rows(block_size: int) -> list[dict[str, Any]]:
    path = RAW / f"kv_probe_block{block_size}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def measure(row: dict[str, Any]) -> dict[str, float]:
    """The figures of one probe line; NIXL figures from D's series (D reads from P)."""
    diff = row.get("decode_nixl_diff", {})
    usage = row.get("usage") or {}
    out = {
        "prompt_tokens": usage.get("prompt_tokens"),
        "cached_tokens": (usage.get("prompt_tokens_details") or {}).get("cached_tokens"),
    }
    if row["what"] == "ppd_turn3_direct":
        out["ttft_ms"] = row["ttft_ms"]
        return out
    out.update(
        {
            "remote_blocks": row["num_remote_blocks"],
            "prefill_ms": row["prefill_ms"],
            "decode_ttft_ms": row["decode_ttft_ms"],
            "total_ttft_ms": row["total_ttft_ms"],
            "xfers": series_total(diff, "vllm:nixl_xfer_time_seconds_count"),
            "bytes": series_total(diff, "vllm:nixl_bytes_transferred_sum"),
            "descriptors": series_total(diff, "vllm:nixl_num_descriptors_sum"),
            "xfer_ms": series_total(diff, "vllm:nixl_xfer_time_seconds_sum") * 1e3,
            "post_ms": series_total(diff, "vllm:nixl_post_time_seconds_sum") * 1e3,
        }
    )
    return out


def fmt(values: list[float], digits: int = 1) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    median = statistics.median(values)
    if min(values) == max(values):
        return f"{median:.{digits}f}"
    return f"{median:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def main() -> int:
    print("PD turn 2 to the same D: what NIXL moved vs what P offered (D's vllm:nixl_* series)")
    print(f"{'block':>5} {'len':>5} {'turn':<16} {'n':>2} {'prompt':>6} {'P offered blk':>13} "
          f"{'cached on D':>11} {'xfers':>5} {'MiB moved':>17} {'blocks moved':>12} {'descriptors':>19} "
          f"{'xfer ms':>17}")  # fmt: skip
    timing_lines = []
    for block_size in BLOCK_SIZES:
        groups: dict[tuple[int, str], list[dict[str, float]]] = defaultdict(list)
        for row in rows(block_size):
            groups[(row["length"], row["what"])].append(measure(row))
        for (length, what), ms in sorted(groups.items()):
            if what == "ppd_turn3_direct":
                timing_lines.append(f"{block_size:>5} {length:>5} {'ppd turn 3':<16} {len(ms):>2} "
                                    f"{'':>24} {'':>24} {fmt([m['ttft_ms'] for m in ms]):>26}")  # fmt: skip
                continue
            block_bytes = block_size * KV_BYTES_PER_TOKEN
            cells = [
                (fmt([m["prompt_tokens"] for m in ms], 0), 6),
                (fmt([m["remote_blocks"] for m in ms], 0), 13),
                (fmt([m["cached_tokens"] for m in ms], 0), 11),
                (fmt([m["xfers"] for m in ms], 0), 5),
                (fmt([m["bytes"] / 2**20 for m in ms]), 17),
                (fmt([m["bytes"] / block_bytes for m in ms]), 12),
                (fmt([m["descriptors"] for m in ms], 0), 19),
                (fmt([m["xfer_ms"] for m in ms]), 17),
            ]
            head = f"{block_size:>5} {length:>5} {what:<16} {len(ms):>2}"
            print(head, " ".join(f"{text:>{width}}" for text, width in cells))
            times = [fmt([m[key] for m in ms]) for key in ("prefill_ms", "decode_ttft_ms", "total_ttft_ms")]
            timing_lines.append(f"{head} {times[0]:>24} {times[1]:>24} {times[2]:>26}")
    print()
    print("Times (ms): P's prefill (non-streamed, max_tokens=1), D's TTFT (pull + first token), total")
    print(f"{'block':>5} {'len':>5} {'turn':<16} {'n':>2} {'prefill_ms':>24} {'decode_ttft_ms':>24} "
          f"{'total_ttft_ms / ttft_ms':>26}")  # fmt: skip
    print("\n".join(timing_lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
