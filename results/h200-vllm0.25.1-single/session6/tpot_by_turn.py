"""The engine's TPOT p50 per turn at the fifth session's long-prompt points, vLLM's (its traced
steps' outputs) beside a profile's price of the same batches laid end to end (as
session5/step_trace.py's `tpot` line, split into turn 1, nothing cached, and turns 2+):

    python results/h200-vllm0.25.1-single/session6/tpot_by_turn.py \\
        --profile results/h200-vllm0.25.1-single/session5/whatif/fitctx-async-merge200.json
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
from pathlib import Path
from typing import Any

from ppd.sim.timing import load_profile

HERE = Path(__file__).resolve().parent
TRACE = HERE.parent / "session5" / "steps-async-7points.jsonl.gz"
POINTS = ("W2:4", "W2:5", "W4:2.5")


def _step_trace() -> Any:
    path = HERE.parent / "session5" / "step_trace.py"
    spec = importlib.util.spec_from_file_location("session5_step_trace", path)
    if spec is None or spec.loader is None:
        raise SystemExit("cannot load session5/step_trace.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def tpot_by_request(
    steps: list[dict[str, Any]], step_end_s: dict[int, float]
) -> dict[str, tuple[bool, float]]:
    """Per request: (turn 1, TPOT ms), as step_trace.engine_tpot_ms computes it."""
    prompts: dict[str, list[int]] = {}
    computed: dict[str, int] = {}
    decodes_left: dict[str, int] = {}
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    for step in steps:
        end_s = step_end_s.get(step["id"])
        if end_s is None:
            continue
        for request in [r for r, n in decodes_left.items() if n > 0]:
            decodes_left[request] -= 1
            last[request] = end_s
        prompts.update(step.get("prompts", {}))
        for request, tokens in [*step["new"].items(), *step["run"].items()]:
            computed[request] = computed.get(request, 0) + tokens
            prompt, cached, max_tokens = prompts[request]
            if cached + computed[request] >= prompt and request not in first:
                first[request] = last[request] = end_s
                decodes_left[request] = max_tokens - 1
    return {
        r: (prompts[r][1] == 0, (last[r] - first[r]) * 1e3 / (prompts[r][2] - 1))
        for r in first
        if decodes_left[r] == 0 and prompts[r][2] > 1
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="h200-llama3.1-8b")
    args = parser.parse_args()
    step_trace = _step_trace()
    costs = load_profile(args.profile).step
    steps, outputs = step_trace.read_trace(str(TRACE))
    names = step_trace.POINTS.split()
    parts = step_trace.split_points(steps, names)
    for name in POINTS:
        part = parts[names.index(name)]
        point = step_trace.Point(
            name, part, step_trace.shapes(part), step_trace.durations_ms(part, outputs, asynchronous=True)
        )
        real = tpot_by_request(part, outputs)
        model = tpot_by_request(part, step_trace.model_step_ends_s(point, costs, outputs))
        cells = []
        for label, turn1 in (("turn 1", True), ("turns 2+", False)):
            real_ms = statistics.median(t for one, t in real.values() if one == turn1)
            model_ms = statistics.median(t for one, t in model.values() if one == turn1)
            error = (model_ms / real_ms - 1) * 100
            cells.append(f"{label} real {real_ms:.1f} model {model_ms:.1f} ({error:+.1f}%)")
        print(f"{name} {Path(args.profile).stem}: engine TPOT p50 " + "; ".join(cells))


if __name__ == "__main__":
    main()
