"""Re-derive every deployment's bracket from the points a plan.json recorded, with the corrected
pass rule of commit 55aec32: a run stopped early fails (its attainment is only an upper bound).

The committed plans were made by commit 40d1ff0-era code (see each plan.json's tool.git_commit)
whose early stop could end a run at exactly 90% and then count it as a pass. No simulation is
re-run here: the bracket [lo, hi) is the highest recorded genuine pass and the lowest recorded
failure above it, so it can only be wider than what a re-run would find.

    python results/plan-8gpu/recheck.py results/plan-8gpu/W*/plan.json
"""

from __future__ import annotations

import json
import sys


def genuine_pass(point: dict, target: float) -> bool:
    if point["metrics"].get("stopped_early"):
        return False
    return point["slo_attainment"] is not None and point["slo_attainment"] >= target


def recheck(path: str) -> None:
    with open(path) as file:
        plan = json.load(file)
    inputs = plan["inputs"]
    target, gpus = inputs["target_attainment"], inputs["gpus"]
    rows = []
    for item in plan["ranking"]:
        points = item["points"]
        passing = [p["qps"] for p in points if genuine_pass(p, target)]
        lo = max(passing, default=0.0)
        failing = [p["qps"] for p in points if p["qps"] > lo and not genuine_pass(p, target)]
        hi = min(failing, default=None)
        affected = lo != item["max_qps"]
        rows.append((lo, hi, affected, item["deployment"], item["max_qps"]))
    rows.sort(key=lambda row: -row[0])
    slos = f"TTFT <= {inputs['slo_ttft_ms']:g} ms, TPOT <= {inputs['slo_tpot_ms']:g} ms"
    print(f"{path}: {inputs['workload']}, {slos}")
    print(f"  {'deployment':<18} {'reported':>9} {'lo':>7} {'hi':>7} {'lo/GPU':>7}  changed")
    for lo, hi, affected, name, reported in rows:
        hi_text = "-" if hi is None else f"{hi:.3g}"
        changed = "yes" if affected else ""
        print(f"  {name:<18} {reported:9.3g} {lo:7.3g} {hi_text:>7} {lo / gpus:7.3g}  {changed}")
    best_d = next((r for r in rows if not r[3].startswith(f"{gpus}r")), None)
    best_r = next((r for r in rows if r[3].startswith(f"{gpus}r")), None)
    if best_d and best_r and best_r[0] > 0:
        print(
            f"  best xPyD {best_d[3]} {best_d[0]:.3g} vs best {gpus}r {best_r[3]} {best_r[0]:.3g}: "
            f"ratio {best_d[0] / best_r[0]:.2f}"
        )


if __name__ == "__main__":
    for path in sys.argv[1:]:
        recheck(path)
