"""How clumped the bench's sends are at a point: for each send of turn 1 and of turns 2+, the mean
number of other sends (any turn) in the 50 ms and 150 ms before it, vLLM's run beside the sim's
rows. Turn-1 sends follow the bench's arrival process (the same seed on both sides); a turn 2 is
sent when its turn 1's last token arrives, so its clumps are the engine's:

    python results/h200-vllm0.25.1-single/session6/turn2_clumps.py --qps 4 \\
        results/h200-vllm0.25.1-single/session5/h200-s4-async-w2.jsonl.gz OUT/base/fleet-w2.jsonl ...
"""

from __future__ import annotations

import argparse
import bisect
import gzip
import json


def clumps(path: str, qps: float, window_s: float) -> tuple[float, float]:
    with gzip.open(path, "rt") if path.endswith(".gz") else open(path) as f:
        rows = [r for r in map(json.loads, f) if r["qps"] == qps and r["ok"]]
    sends = sorted(r["sent_s"] for r in rows)

    def mean_before(turn_rows: list[dict[str, float]]) -> float:
        near = [bisect.bisect_left(sends, r["sent_s"]) - bisect.bisect_left(sends, r["sent_s"] - window_s)
                for r in turn_rows]  # fmt: skip
        return sum(near) / len(near)

    return mean_before([r for r in rows if r["turn"] == 1]), mean_before([r for r in rows if r["turn"] > 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qps", type=float, required=True)
    parser.add_argument("rows", nargs="+", help="bench or fleet rows files (.jsonl or .jsonl.gz)")
    args = parser.parse_args()
    for path in args.rows:
        cells = []
        for window_s in (0.05, 0.15):
            first, later = clumps(path, args.qps, window_s)
            cells.append(f"{window_s * 1e3:.0f}ms turn1={first:.2f} turn2+={later:.2f}")
        print(f"{path}: other sends before a send, {'; '.join(cells)}")


if __name__ == "__main__":
    main()
