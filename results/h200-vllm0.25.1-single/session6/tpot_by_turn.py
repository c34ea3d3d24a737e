"""The engine's TPOT p50 per turn at the fifth session's long-prompt points, vLLM's (its traced
steps' outputs) beside a profile's price of the same batches laid end to end (as
session5/step_trace.py's `tpot` line, split into turn 1, nothing cached, and turns 2+):

    python results/h200-vllm0.25.1-single/session6/tpot_by_turn.py \\
        --profile results/h200-vllm0.25.1-single/session5/whatif/fitctx-async-merge200.json
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import session5_trace

from ppd.sim.timing import load_profile

HERE = Path(__file__).resolve().parent
POINTS = ("W2:4", "W2:5", "W4:2.5")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="h200-llama3.1-8b")
    args = parser.parse_args()
    step_trace = session5_trace.step_trace()
    costs = load_profile(args.profile).step
    steps, outputs = step_trace.read_trace(str(session5_trace.TRACE))
    names = step_trace.POINTS.split()
    parts = step_trace.split_points(steps, names)
    for name in POINTS:
        part = parts[names.index(name)]
        point = step_trace.Point(
            name, part, step_trace.shapes(part), step_trace.durations_ms(part, outputs, asynchronous=True)
        )
        real = step_trace.engine_tpot_by_request(part, outputs)
        model = step_trace.engine_tpot_by_request(part, step_trace.model_step_ends_s(point, costs, outputs))
        cells = []
        for label, turn1 in (("turn 1", True), ("turns 2+", False)):
            real_ms = statistics.median(t for one, t in real.values() if one == turn1)
            model_ms = statistics.median(t for one, t in model.values() if one == turn1)
            error = (model_ms / real_ms - 1) * 100
            cells.append(f"{label} real {real_ms:.1f} model {model_ms:.1f} ({error:+.1f}%)")
        print(f"{name} {Path(args.profile).stem}: engine TPOT p50 " + "; ".join(cells))


if __name__ == "__main__":
    main()
