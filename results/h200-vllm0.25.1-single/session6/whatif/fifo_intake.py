"""What-if of the results README ("Sixth session"), not the model, and not kept: the API server
takes intakes one at a time (FIFO), each its measured CPU (api_request_ms, 7.3 ms on the H200) at the
share of the server that streaming leaves (the step in flight's output time over its duration, the
measured 72 us per token and 0.3 ms per step, averaged over ~1 s), at most api_max_load of it
taken; then, as in the model, the rest of api_overhead_ms, the tokenizing and the server's backlog.
A `ppd fleet` command line, one rate per run (its state lives on the engine core):

    python results/h200-vllm0.25.1-single/session6/whatif/fifo_intake.py --topology 1r --modes replication \\
        --profile h200-llama3.1-8b --workload W1 --qps 20 --duration 30 --seed 0 --max-num-seqs 1024 \\
        --max-model-len 40960 --kv-cache-tokens 839648 \\
        --hops results/h200-vllm0.25.1-single/fleet/no-hops.json --proxy-cpu zero --output OUT --name w1 \\
        --quiet
"""

import math
import sys

from ppd.cli import main
from ppd.sim.core import EngineCore
from ppd.sim.request import Request
from ppd.sim.timing import INTAKE_LOAD_WINDOW_S

_api_ready_s = EngineCore.api_ready_s


def api_ready_s(self: EngineCore, now_s: float, request: Request) -> float:
    model_s = _api_ready_s(self, now_s, request)  # sets the server's state as the model does
    state = self.__dict__.setdefault("fifo", {"free_s": 0.0, "share": 0.0, "at_s": 0.0})
    api, profile = self.api, self.config.profile
    streaming = bool(self.scheduler.running)
    decay = math.exp(-max(0.0, now_s - state["at_s"]) / INTAKE_LOAD_WINDOW_S)
    state["share"] = state["share"] * decay + (api.stream_load if streaming else 0.0) * (1.0 - decay)
    state["at_s"] = now_s
    work_s = profile.api_request_ms * 1e-3
    start_s = max(now_s, state["free_s"])
    state["free_s"] = start_s + work_s / (1.0 - min(api.max_load, state["share"]))
    rest_s = max(0.0, profile.api_overhead_ms * 1e-3 - work_s)
    tokenize_s = profile.api_overhead_per_token_us * 1e-6 * request.num_prompt_tokens
    backlog_s = api.backlog_now_s(now_s, self.scheduler.has_work())
    request.ready_s = max(now_s, state["free_s"] + rest_s + tokenize_s + backlog_s)
    del model_s  # the model's own answer, replaced
    return request.ready_s


EngineCore.api_ready_s = api_ready_s  # type: ignore[method-assign]
sys.exit(main(["fleet", *sys.argv[1:]]))
