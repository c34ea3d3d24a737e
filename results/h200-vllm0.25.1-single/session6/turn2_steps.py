"""Where the prefills of a point go: each request's first scheduled chunk counted as alone in its
step (the step not full), whole in a full step (the 8,192-token budget used up by it and others),
or chunked (it did not fit whole), turn 1s (nothing cached) and turns 2+ apart; vLLM's from the
fifth session's trace, or the sim's from a `ppd fleet` run on one engine (the arguments of
fleet/run.sh for one point, as session5/whatif/ttft_parts.py takes them):

    python results/h200-vllm0.25.1-single/session6/turn2_steps.py --trace W2:4
    python results/h200-vllm0.25.1-single/session6/turn2_steps.py --topology 1r --modes replication \\
        --profile h200-llama3.1-8b --workload W2 --qps 4 --duration 30 --seed 0 --max-num-seqs 1024 \\
        --max-model-len 40960 --kv-cache-tokens 839648 \\
        --hops results/h200-vllm0.25.1-single/fleet/no-hops.json --proxy-cpu zero --output /tmp/turn2_steps \\
        --name w2 --quiet
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

from session5_trace import point_steps

HERE = Path(__file__).resolve().parent
BUDGET_TOKENS = 8192  # --max-num-batched-tokens of every run here


def kind(first_chunk: int, new_tokens: int, step_tokens: int) -> str:
    if first_chunk < new_tokens:
        return "chunked"
    return "whole, full step" if step_tokens >= BUDGET_TOKENS else "alone"


def report(counts: Counter[tuple[str, str]], label: str) -> None:
    for turn in ("1", "2+"):
        cells = ", ".join(f"{k} {counts[(turn, k)]}" for k in ("alone", "whole, full step", "chunked"))
        print(f"{label} turn {turn}: {cells}")


def from_trace(point: str) -> None:
    part, _ = point_steps(point)
    counts: Counter[tuple[str, str]] = Counter()
    with_chunk = sum(1 for step in part if any(n > 1 for n in [*step["new"].values(), *step["run"].values()]))
    print(f"vLLM {point}: steps {len(part)}, with a prefill chunk {with_chunk}")
    for step in part:
        for request, tokens in step["new"].items():
            prompt, cached, _ = step["prompts"][request]
            counts[("1" if cached == 0 else "2+", kind(tokens, prompt - cached, step["n"]))] += 1
    report(counts, f"vLLM {point}")


def count_first_schedules(counts: Counter[tuple[str, str]], num_steps: list[int] | None = None) -> None:
    """From now on count each request's first scheduling in counts by (turn, kind), turn 1 being a
    request with nothing cached; with num_steps, also [steps, steps with a multi-token chunk]."""
    from ppd.sim.core import EngineCore, Step

    seen: dict[int, Any] = {}  # the requests already counted (kept alive: ids stay unique)
    next_work = EngineCore.next_work

    def counting(self: EngineCore) -> Any:
        work = next_work(self)
        if isinstance(work, Step):
            step_tokens = sum(item.num_new_tokens for item in work.scheduled)
            if num_steps is not None:
                num_steps[0] += 1
                num_steps[1] += any(item.num_new_tokens > 1 for item in work.scheduled)
            for item in work.scheduled:
                request = item.request
                if request.num_output_tokens or id(request) in seen:
                    continue
                seen[id(request)] = request
                new_tokens = request.num_tokens - request.num_computed_tokens
                turn = "1" if request.num_cached_tokens <= 0 else "2+"
                counts[(turn, kind(item.num_new_tokens, new_tokens, step_tokens))] += 1
        return work

    EngineCore.next_work = counting  # type: ignore[method-assign]


def from_sim(argv: list[str]) -> None:
    from ppd.cli import main

    counts: Counter[tuple[str, str]] = Counter()
    count_first_schedules(counts)
    code = main(["fleet", *argv])
    report(counts, "sim")
    sys.exit(code)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--trace"]:
        from_trace(sys.argv[2])
    else:
        from_sim(sys.argv[1:])
