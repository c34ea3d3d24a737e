"""How much the closed loop alone moves a point's figures: a profile's base_ms scaled by a few
parts per thousand (each step a fraction of a millisecond longer or shorter, far below any fit's
error), every W2 and W4 loaded point run through `ppd fleet` as fleet/run.sh runs it, p50 TTFT of
turns 2+ and TPOT printed per scale. The real runs of these points (seed 0 every time) spread
W2 4/s TTFT 2+ over 368-447 ms:

    python results/h200-vllm0.25.1-single/session6/whatif/perturb.py \\
        results/h200-vllm0.25.1-single/session5/whatif/fitctx-async-merge200.json OUT_DIR
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from ppd.cli import main as ppd

SCALES = (0.995, 0.998, 1.0, 1.002, 1.005)
POINTS = (("W2", "4,5"), ("W4", "2.5"))
HOPS = "results/h200-vllm0.25.1-single/fleet/no-hops.json"


def p50s(rows_path: Path) -> dict[float, tuple[float, float]]:
    rows = [r for r in map(json.loads, rows_path.read_text().splitlines()) if r.get("ok")]
    found = {}
    for qps in sorted({r["qps"] for r in rows}):
        at = [r for r in rows if r["qps"] == qps]
        ttft = statistics.median(r["ttft_ms"] for r in at if r["turn"] > 1)
        tpot = statistics.median(r["tpot_ms"] for r in at if r.get("tpot_ms") is not None)
        found[qps] = (ttft, tpot)
    return found


def main() -> None:
    profile_path, out = Path(sys.argv[1]), Path(sys.argv[2])
    profile = json.loads(profile_path.read_text())
    for scale in SCALES:
        scaled = {**profile, "step": {**profile["step"], "base_ms": profile["step"]["base_ms"] * scale}}
        folder = out / f"x{scale}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "profile.json"
        path.write_text(json.dumps(scaled))
        cells = []
        for workload, rates in POINTS:
            name = f"fleet-{workload.lower()}"
            code = ppd([
                "fleet", "--topology", "1r", "--modes", "replication", "--profile", str(path),
                "--workload", workload, "--qps", rates, "--duration", "30", "--seed", "0",
                "--max-num-seqs", "1024", "--max-model-len", "40960", "--kv-cache-tokens", "839648",
                "--hops", HOPS, "--proxy-cpu", "zero", "--output", str(folder), "--name", name, "--quiet",
            ])  # fmt: skip
            if code:
                raise SystemExit(code)
            for qps, (ttft, tpot) in p50s(folder / f"{name}.jsonl").items():
                cells.append(f"{workload} {qps:g}/s ttft_t2+ {ttft:.1f} tpot {tpot:.1f}")
        print(f"{profile_path.stem} base_ms x{scale}: " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
