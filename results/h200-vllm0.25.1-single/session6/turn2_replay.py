"""Does the sim pack a point's prompts as vLLM did when it gets vLLM's arrivals? The bench's own
send times of a traced point (every turn, as the GPU run sent them) replayed into one engine core
on a virtual clock (OfflineEngine), each request arriving after the profile's API time; turn 1 is
a fresh prompt, a turn 2 its turn 1's prompt, the 128 answer tokens the sim gives it and a fresh
prompt, so its cache hit is vLLM's (4,208 of 8,320 at W2). Counted as session6/turn2_steps.py
counts: each prompt's first chunk alone in its step, whole in a full step, or chunked; and TTFT
p50 (send -> first token) beside vLLM's for the same requests:

    python results/h200-vllm0.25.1-single/session6/turn2_replay.py --profile h200-llama3.1-8b
    python results/h200-vllm0.25.1-single/session6/turn2_replay.py \\
        --profile results/h200-vllm0.25.1-single/session5/whatif/async.json

The sends are vLLM's, so a turn 2 can reach the sim before its turn 1 has finished there (when
the sim decodes slower than vLLM did): it then finds only part of its history cached. The last line
counts those turn 2s.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from turn2_steps import BUDGET_TOKENS, count_first_schedules

from ppd.sim.config import sim_config
from ppd.sim.offline import OfflineEngine
from ppd.sim.timing import api_overhead_s, load_profile

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="h200-llama3.1-8b")
    parser.add_argument("--rows", default=str(HERE.parent / "session5" / "h200-s4-async-w2.jsonl.gz"))
    parser.add_argument("--qps", type=float, default=4.0)
    args = parser.parse_args()
    with gzip.open(args.rows, "rt") as f:
        rows = [r for r in map(json.loads, f) if r["qps"] == args.qps and r["ok"]]
    profile = load_profile(args.profile)
    engine = OfflineEngine(
        sim_config(
            profile,
            max_num_seqs=1024,
            max_model_len=40960,
            kv_cache_tokens=839648,
            max_num_batched_tokens=BUDGET_TOKENS,
        )
    )
    counts: Counter[tuple[str, str]] = Counter()
    num_steps = [0, 0]  # steps, steps with a multi-token prefill chunk
    count_first_schedules(counts, num_steps)
    firsts = sorted((r for r in rows if r["turn"] == 1), key=lambda r: r["sent_s"])
    seconds = {r["conversation_id"]: r for r in rows if r["turn"] == 2}
    fresh = iter(range(1, 10**9, 1))
    sent: dict[str, tuple[str, float, float]] = {}  # request id: turn, send (s), vLLM's TTFT (ms)
    firsts_with_second: list[str] = []
    arrival_s: dict[str, float] = {}
    arrivals: list[tuple[float, Any]] = []
    followers: list[tuple[float, list[int], int]] = []
    for row in firsts:
        prompt = [next(fresh) for _ in range(row["prompt_tokens"])]
        request = engine.new_request(prompt, row["output_tokens"])
        arrivals.append((row["sent_s"] + api_overhead_s(profile, len(prompt)), request))
        sent[request.request_id] = ("1", row["sent_s"], row["ttft_ms"])
        second = seconds.get(row["conversation_id"])
        if second is not None:
            answer = request.next_answer_tokens(row["output_tokens"])
            new = [next(fresh) for _ in range(second["prompt_tokens"] - len(prompt) - len(answer))]
            followers.append((second, prompt + answer + new))
            firsts_with_second.append(request.request_id)
    first_of: dict[str, str] = {}  # turn 2's request id: its turn 1's
    for (second, prompt), first in zip(followers, firsts_with_second, strict=True):
        request = engine.new_request(prompt, second["output_tokens"])
        arrivals.append((second["sent_s"] + api_overhead_s(profile, len(prompt)), request))
        sent[request.request_id] = ("2+", second["sent_s"], second["ttft_ms"])
        first_of[request.request_id] = first
        arrival_s[request.request_id] = arrivals[-1][0]
    token_times = engine.run(sorted(arrivals, key=lambda a: a[0]))
    for turn in ("1", "2+"):
        cells = ", ".join(f"{k} {counts[(turn, k)]}" for k in ("alone", "whole, full step", "chunked"))
        ttft_ms = statistics.median(
            (times[0] - sent[rid][1]) * 1e3 for rid, times in token_times.items() if sent[rid][0] == turn
        )
        real_ms = statistics.median(ttft for kind, _, ttft in sent.values() if kind == turn)
        tpot_ms = statistics.median(
            (times[-1] - times[0]) / (len(times) - 1) * 1e3
            for rid, times in token_times.items()
            if sent[rid][0] == turn and len(times) > 1
        )
        real_tpot_ms = statistics.median(r["tpot_ms"] for r in rows if (r["turn"] == 1) == (turn == "1"))
        name = f"{Path(args.rows).name} at {args.qps:g}/s, {Path(args.profile).stem}"
        print(
            f"replay of {name}: turn {turn}: {cells}; TTFT p50 {ttft_ms:.1f} ms (vLLM {real_ms:.1f}); "
            f"TPOT p50 {tpot_ms:.1f} ms (vLLM {real_tpot_ms:.1f})"
        )
    early = sum(1 for rid, first in first_of.items() if arrival_s[rid] < token_times[first][-1])
    print(f"replay of {name}: {early} of {len(first_of)} turn 2s came before their turn 1 had finished; "
          f"steps {num_steps[0]}, with a prefill chunk {num_steps[1]}")  # fmt: skip


if __name__ == "__main__":
    main()
