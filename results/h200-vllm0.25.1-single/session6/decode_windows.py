"""What the steps a request decodes in carry, at W4 2.5/s: for each request, the steps from the one
after its first token to the one of its last token, their prefill chunks (steps with a multi-token
chunk, and the chunks' tokens) and their mean duration; p50 over turn 1s and over turns 2+. vLLM's
from the fifth session's trace (durations: output to output), the sim's from session6/turn2_replay.py
(vLLM's own sends replayed into one engine core) with a profile:

    python results/h200-vllm0.25.1-single/session6/decode_windows.py \\
        --profile results/h200-vllm0.25.1-single/session5/whatif/fitctx-async-merge200.json
"""

from __future__ import annotations

import argparse
import runpy
import statistics
import sys
from pathlib import Path
from typing import Any

from session5_trace import point_steps

from ppd.sim.core import EngineCore, Step

HERE = Path(__file__).resolve().parent
POINT = "W4:2.5"
ROWS = HERE.parent / "session5" / "h200-s4-async-w4.jsonl.gz"


def report(label: str, steps: list[tuple[int, float]], windows: dict[Any, tuple[bool, int, int]]) -> None:
    """steps: (prefill-chunk tokens, duration s) in order; windows: request -> (turn 1, first, last)."""
    for turn1 in (True, False):
        chunk_steps, chunk_tokens, step_ms = [], [], []
        for is_turn1, first, last in windows.values():
            window = steps[first + 1 : last + 1]
            if is_turn1 != turn1 or not window:
                continue
            chunk_steps.append(sum(1 for tokens, _ in window if tokens))
            chunk_tokens.append(sum(tokens for tokens, _ in window))
            step_ms.append(sum(duration for _, duration in window) / len(window) * 1e3)
        print(
            f"{label} {POINT} {'turn 1' if turn1 else 'turns 2+'}: steps with a prefill chunk p50 "
            f"{statistics.median(chunk_steps):g}, their tokens p50 {statistics.median(chunk_tokens):g}, "
            f"mean step p50 {statistics.median(step_ms):.1f} ms ({len(step_ms)} requests)"
        )


def vllm() -> None:
    part, outputs = point_steps(POINT)
    steps: list[tuple[int, float]] = []
    prompts: dict[str, list[int]] = {}
    computed: dict[str, int] = {}
    left: dict[str, int] = {}
    windows: dict[Any, tuple[bool, int, int]] = {}
    for index, step in enumerate(part):
        chunks = sum(n for n in [*step["new"].values(), *step["run"].values()] if n > 1)
        end_s, before_s = outputs.get(step["id"]), outputs.get(step["id"] - 1)
        steps.append((chunks, end_s - before_s if end_s and before_s else 0.0))
        prompts.update(step.get("prompts", {}))
        for request in [r for r, n in left.items() if n > 0]:
            left[request] -= 1
            turn1, first, _ = windows[request]
            windows[request] = (turn1, first, index)
        for request, tokens in [*step["new"].items(), *step["run"].items()]:
            computed[request] = computed.get(request, 0) + tokens
            prompt, cached, max_tokens = prompts[request]
            if cached + computed[request] >= prompt and request not in windows:
                windows[request] = (cached == 0, index, index)
                left[request] = max_tokens - 1
    report("vLLM", steps, windows)


def sim(profile: str) -> None:
    steps: list[tuple[int, float]] = []
    windows: dict[Any, tuple[bool, int, int]] = {}
    kept: list[Any] = []  # the requests seen, alive so that their ids stay unique
    next_work = EngineCore.next_work

    def recording(core: EngineCore) -> Any:
        work = next_work(core)
        if isinstance(work, Step):
            steps.append(
                (sum(i.num_new_tokens for i in work.scheduled if i.num_new_tokens > 1), work.duration_s)
            )
            index = len(steps) - 1
            for item in work.scheduled:
                request = item.request
                if request.num_computed_tokens + item.num_new_tokens < request.num_tokens:
                    continue  # a prefill chunk before the last: no token from this step
                turn1, first, _ = windows.get(id(request), (request.num_cached_tokens <= 0, index, index))
                windows[id(request)] = (turn1, first, index)
                kept.append(request)
        return work

    EngineCore.next_work = recording  # type: ignore[method-assign]
    sys.argv = ["turn2_replay.py", "--profile", profile, "--rows", str(ROWS), "--qps", "2.5"]
    runpy.run_path(str(HERE / "turn2_replay.py"), run_name="__main__")
    report(f"sim ({Path(profile).stem})", steps, windows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="h200-llama3.1-8b")
    args = parser.parse_args()
    vllm()
    sim(args.profile)


if __name__ == "__main__":
    main()
