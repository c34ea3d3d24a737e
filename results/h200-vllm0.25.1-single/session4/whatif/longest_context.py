"""What-if of the results README ("Fourth session"), not the model: a step that carries a prefill
chunk beside decodes costs KAPPA_US microseconds more per token of its longest decode context. A
`ppd fleet` command line for fleet/run.sh:

    KAPPA_US=2 PYTHON=python \
        FLEET="python results/h200-vllm0.25.1-single/session4/whatif/longest_context.py" \
        results/h200-vllm0.25.1-single/fleet/run.sh /tmp/kappa2
"""

import os
import sys
from typing import Any

import ppd.sim.core as core
from ppd.cli import main

KAPPA_US = float(os.environ["KAPPA_US"])
_shape, _duration = core.batch_shape, core.step_duration_s
_longest = [0]


def batch_shape(scheduled: Any) -> Any:
    decodes = [
        i.request.num_computed_tokens + 1
        for i in scheduled
        if i.num_new_tokens == 1 and i.request.num_output_tokens > 0
    ]
    _longest[0] = max(decodes, default=0)
    return _shape(scheduled)


def step_duration_s(costs: Any, shape: Any) -> float:
    extra_s = KAPPA_US * 1e-6 * _longest[0] if shape.num_prefill_chunks and shape.num_decode_seqs else 0.0
    return _duration(costs, shape) + extra_s


core.batch_shape, core.step_duration_s = batch_shape, step_duration_s  # type: ignore[assignment]
sys.exit(main(["fleet", *sys.argv[1:]]))
