"""The sim's own batches at a point, as session5/step_trace.py prints vLLM's (its `decoders` line):
the step time weighted by the decodes in it, the steps that carry a prefill and the decodes in them.
Wraps `ppd fleet` on one engine (the arguments of fleet/run.sh for one point), e.g.

    python results/h200-vllm0.25.1-single/session5/whatif/decoders.py --topology 1r --modes replication \\
        --profile h200-llama3.1-8b --workload W2 --qps 4 --duration 30 --seed 0 --max-num-seqs 1024 \\
        --max-model-len 40960 --kv-cache-tokens 839648 \\
        --hops results/h200-vllm0.25.1-single/fleet/no-hops.json --proxy-cpu zero \\
        --output /tmp/decoders --name w2 --quiet
"""

import sys
from typing import Any

from ppd.cli import main
from ppd.sim.core import DecodeRun, EngineCore
from ppd.sim.scheduler import batch_shape

steps: list[tuple[float, int, bool]] = []  # (duration ms, decodes, carries a prefill)
runs: list[tuple[DecodeRun, int]] = []
_next_work, _start_decode_run = EngineCore.next_work, EngineCore.start_decode_run


def next_work(self: EngineCore) -> Any:
    work = _next_work(self)
    scheduled = getattr(work, "scheduled", None)
    if scheduled is not None:  # a Step, not a Hold
        shape = batch_shape(scheduled)
        steps.append((work.duration_s * 1e3, shape.num_decode_seqs, shape.num_prefill_tokens > 0))
    return work


def start_decode_run(self: EngineCore, now_s: float, max_steps: int) -> DecodeRun | None:
    run = _start_decode_run(self, now_s, max_steps)
    if run is not None:
        runs.append((run, len(self.scheduler.running)))
    return run


EngineCore.next_work = next_work  # type: ignore[method-assign]
EngineCore.start_decode_run = start_decode_run  # type: ignore[method-assign]
code = main(["fleet", *sys.argv[1:]])
for run, num_seqs in runs:  # the steps a run applied (a cut run keeps only those)
    steps += [(duration_s * 1e3, num_seqs, False) for duration_s in run.step_duration_s[: run.num_applied]]
decodes = sum(n for _, n, _ in steps)
prefill = [(d, n) for d, n, carries in steps if carries]
weighted_ms = sum(d * n for d, n, _ in steps) / decodes
beside = sum(n for _, n in prefill) / len(prefill)
print(f"decoders weighted_step_ms={weighted_ms:.2f} decode_tokens={decodes} prefill_steps={len(prefill)} "
      f"decodes_per_prefill_step={beside:.1f}")  # fmt: skip
sys.exit(code)
