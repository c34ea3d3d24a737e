"""The sim's TTFT parts at a point, as session5/ttft_parts.py reads vLLM's: from the send to the
step that first schedules the request (the API server, then the wait for a batch), and from that
step's start to its first token, p50, turn 1 and turns 2+ apart. Wraps `ppd fleet` on one engine
(the arguments of fleet/run.sh for one point), e.g.

    python results/h200-vllm0.25.1-single/session5/whatif/ttft_parts.py --topology 1r \\
        --modes replication --profile h200-llama3.1-8b --workload W2 --qps 4 --duration 30 --seed 0 \\
        --max-num-seqs 1024 --max-model-len 40960 --kv-cache-tokens 839648 \\
        --hops results/h200-vllm0.25.1-single/fleet/no-hops.json --proxy-cpu zero \\
        --output /tmp/ttft_parts --name w2 --quiet
"""

import statistics
import sys
from collections import Counter
from typing import Any

from ppd.cli import main
from ppd.fleet.engines import VirtualEngine
from ppd.sim.core import EngineCore
from ppd.sim.request import Request

now_s = [0.0]  # the fleet clock when the engine last asked for work
scheduled_s: dict[str, float] = {}
prefill_steps: Counter[str] = Counter()
requests: dict[str, Request] = {}
_start, _next_work = VirtualEngine._start, EngineCore.next_work


def start(self: VirtualEngine) -> None:
    now_s[0] = self.clock.now_s
    _start(self)


def next_work(self: EngineCore) -> Any:
    work = _next_work(self)
    for item in getattr(work, "scheduled", None) or []:
        request = item.request
        if request.num_output_tokens == 0:
            prefill_steps[request.request_id] += 1
        if request.request_id not in scheduled_s:
            scheduled_s[request.request_id] = now_s[0]
            requests[request.request_id] = request
    return work


VirtualEngine._start = start  # type: ignore[method-assign]
EngineCore.next_work = next_work  # type: ignore[method-assign]
code = main(["fleet", *sys.argv[1:]])
for turn, fresh in (("1", True), ("2+", False)):
    done = [
        r for r in requests.values() if r.first_token_s is not None and (r.num_cached_tokens <= 0) == fresh
    ]
    if not done:
        continue
    api = statistics.median((r.ready_s - r.arrival_s) * 1e3 for r in done)
    wait = statistics.median((scheduled_s[r.request_id] - r.ready_s) * 1e3 for r in done)
    to_scheduled = statistics.median((scheduled_s[r.request_id] - r.arrival_s) * 1e3 for r in done)
    to_first = statistics.median(((r.first_token_s or 0.0) - scheduled_s[r.request_id]) * 1e3 for r in done)
    ttft = statistics.median(((r.first_token_s or 0.0) - r.arrival_s) * 1e3 for r in done)
    print(f"ttft_parts turn={turn} requests={len(done)} send_to_scheduled_ms={to_scheduled:.1f} "
          f"(api={api:.1f} wait={wait:.1f}) scheduled_to_first_token_ms={to_first:.1f} "
          f"ttft_ms={ttft:.1f} prefill_steps_per_request="
          f"{dict(sorted(Counter(prefill_steps[r.request_id] for r in done).items()))}")  # fmt: skip
sys.exit(code)
