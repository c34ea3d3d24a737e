"""Inter-token gaps of one point, GPU beside sim: how many gaps carried a prefill (> --split-ms) and
their mean, and the mean of the decode-only gaps. The figures the README's "Third session" quotes for
W2 at 4/s come from:

    git show d737dac:results/h200-vllm0.25.1-single/h200-w2.jsonl.gz > /tmp/h200-w2.jsonl.gz
    python -m ppd fleet --topology 1r --modes replication --profile h200-llama3.1-8b --workload W2 \
        --qps 4 --duration 30 --seed 0 --max-num-seqs 1024 --max-model-len 40960 \
        --kv-cache-tokens 839648 --hops results/h200-vllm0.25.1-single/fleet/no-hops.json \
        --output /tmp/itl --name w2 --quiet --record-itl
    python results/h200-vllm0.25.1-single/itl_gaps.py --qps 4 GPU=/tmp/h200-w2.jsonl.gz sim=/tmp/itl/w2.jsonl

(the committed rows dropped their ITL lists; the full GPU rows are in history at d737dac).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ppd.results import read_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("sets", nargs="+", metavar="LABEL=ROWS", help="a rows file (.jsonl or .jsonl.gz)")
    parser.add_argument("--qps", type=float, required=True)
    parser.add_argument("--split-ms", type=float, default=40.0, help="gaps above this carried a prefill")
    args = parser.parse_args()
    for item in args.sets:
        label, _, path = item.partition("=")
        gaps = np.array([g for r in read_rows(Path(path)) if r.ok and r.qps == args.qps for g in r.itl_ms])
        if not gaps.size:
            raise SystemExit(f"{path}: no inter-token gaps at {args.qps:g}/s (rows without ITL lists?)")
        big, small = gaps[gaps > args.split_ms], gaps[gaps <= args.split_ms]
        print(f"{label}: gaps={gaps.size} mean_ms={gaps.mean():.2f} prefill_gaps={big.size} "
              f"prefill_mean_ms={big.mean():.1f} decode_only_mean_ms={small.mean():.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
