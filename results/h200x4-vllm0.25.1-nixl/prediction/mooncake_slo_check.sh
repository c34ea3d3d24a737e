#!/usr/bin/env bash
# Why the Mooncake slice is planned with TTFT <= 5000 ms and TPOT <= 100 ms: the slice on four lightly
# loaded replicas (4r replication at 0.5 requests/s, the fleet, h200 profile as run.sh), and how many of
# its 918 requests miss each pair of objectives there. A pair that >= 10% miss at light load leaves
# the plan no rate that passes. Run from the repository root; deterministic.
# The current model (session 5): src/ppd/fleet/hops.json (re-measured on the quiet machine) and
# the proxy's event loop, one process, src/ppd/fleet/proxy_cpu.json (docs/fleet.md). The pinned
# costs of the earlier results are results/fleet-hops-2026-12-02-shared-machine.json (git history).
set -euo pipefail
OUT=results/h200x4-vllm0.25.1-nixl/prediction/mooncake-light
PPD=${PPD:-ppd}
$PPD fleet --topology 4r --modes replication --workload mooncake:data/traces/mooncake-conversation_trace.jsonl.gz \
  --window 0:300 --rate 0.5 --max-model-len 131072 --profile h200-llama3.1-8b --max-num-seqs 1024 \
  --kv-cache-tokens 839648 --slo-ttft-ms 5000 --slo-tpot-ms 100 --output "$OUT" --name light --quiet
gzip -f "$OUT/light.jsonl"
python3 - "$OUT/light.jsonl.gz" <<'PY' | tee "$OUT/slo_check.txt"
import gzip, json, statistics, sys
rows = [json.loads(line) for line in gzip.open(sys.argv[1], "rt")]
sent = [r for r in rows if r["sent"]]
print(f"requests={len(rows)} sent={len(sent)} prompt_tokens_p50={statistics.median(r['prompt_tokens'] for r in sent):.0f} "
      f"max={max(r['prompt_tokens'] for r in sent)} output_tokens_p50={statistics.median(r['output_tokens'] for r in sent):.0f}")
print("ttft_slo_ms tpot_slo_ms missed attainment")
for ttft in (2000, 5000, 10000):
    for tpot in (25, 50, 100):
        missed = sum(1 for r in sent if not r["ok"] or r["ttft_ms"] > ttft or (r["tpot_ms"] or 0.0) > tpot)
        print(f"{ttft} {tpot} {missed} {1 - missed / len(sent):.3f}")
PY
