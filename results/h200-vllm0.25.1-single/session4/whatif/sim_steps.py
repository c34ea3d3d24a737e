"""The model's engine steps at a point, counted as vLLM's `vllm:iteration_tokens_total` counts them
(results README, "Fourth session"): steps in all, and per-step batches by how many prefills they
finish. Wraps `ppd fleet` on one engine:

    python results/h200-vllm0.25.1-single/session4/whatif/sim_steps.py --topology 1r --modes replication \
        --profile h200-llama3.1-8b --workload W2 --qps 4 --duration 30 --seed 0 --max-num-seqs 1024 \
        --max-model-len 40960 --kv-cache-tokens 839648 \
        --hops results/h200-vllm0.25.1-single/fleet/no-hops.json --output /tmp/steps --name w2 --quiet
"""

import sys
from collections import Counter
from typing import Any

from ppd.cli import main
from ppd.sim.core import EngineCore

finished_prefills: Counter[int] = Counter()
decode_run_steps = [0]
_next_work, _complete_decode_steps = EngineCore.next_work, EngineCore.complete_decode_steps


def next_work(self: EngineCore) -> Any:
    work = _next_work(self)
    scheduled = getattr(work, "scheduled", None)
    if scheduled is not None:  # a Step, not a Hold
        finished_prefills[
            sum(1 for i in scheduled if i.completes_prompt and i.request.num_output_tokens == 0)
        ] += 1
    return work


def complete_decode_steps(self: EngineCore, run: Any, num_steps: int) -> Any:
    decode_run_steps[0] += num_steps
    return _complete_decode_steps(self, run, num_steps)


EngineCore.next_work = next_work  # type: ignore[method-assign]
EngineCore.complete_decode_steps = complete_decode_steps  # type: ignore[method-assign]
code = main(["fleet", *sys.argv[1:]])
steps = sum(finished_prefills.values()) + decode_run_steps[0]
print(f"sim_steps steps={steps} finishing_one_prefill={finished_prefills[1]}", end=" ")
print(f"finishing_two={finished_prefills[2]}")
sys.exit(code)
