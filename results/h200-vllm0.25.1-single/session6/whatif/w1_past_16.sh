#!/bin/bash
# W1 at 16, 20 and 24 conversations/s on the virtual clock for each NAME (as session6/whatif/run.sh
# resolves it), p50 of TTFT turn 1, turns 2+ and TPOT (all turns) per rate, beside vLLM's
# (session5b/, the second lease of the fifth session: W1 20, 24 and 16/s on one engine start).
# Usage: results/h200-vllm0.25.1-single/session6/whatif/w1_past_16.sh OUT_DIR NAME ...  (PYTHON=)
set -euo pipefail
out=$1; shift
here=results/h200-vllm0.25.1-single
cd "$(dirname "$0")/../../../.."
py=${PYTHON:-.venv/bin/python}
p50() {  # ROWS_FILE LABEL
  $py - "$1" "$2" <<'PY'
import gzip, json, statistics, sys
path, label = sys.argv[1], sys.argv[2]
with (gzip.open(path, "rt") if path.endswith(".gz") else open(path)) as f:
    rows = [r for r in map(json.loads, f) if r.get("ok") and r["workload"] == "W1"]
parts = []
for qps in (16.0, 20.0, 24.0):
    at = [r for r in rows if r["qps"] == qps]
    t1 = statistics.median(r["ttft_ms"] for r in at if r["turn"] == 1)
    t2 = statistics.median(r["ttft_ms"] for r in at if r["turn"] > 1)
    tpot = statistics.median(r["tpot_ms"] for r in at if r.get("tpot_ms") is not None)
    parts.append(f"{qps:g}/s ttft_t1 {t1:.0f} ttft_t2+ {t2:.0f} tpot {tpot:.1f}")
print(f"{label:<30} " + " | ".join(parts))
PY
}
p50 $here/session5b/h200-s4-async-w1.jsonl.gz "vLLM (session5b)"
for name in "$@"; do
  if [ "$name" = base ]; then profile=h200-llama3.1-8b
  elif [ -f "$here/session6/whatif/$name.json" ]; then profile=$here/session6/whatif/$name.json
  else profile=$here/session5/whatif/$name.json; fi
  rm -rf "$out/$name"
  $py -m ppd fleet --topology 1r --modes replication --profile "$profile" --workload W1 --qps 16,20,24 \
    --duration 30 --seed 0 --max-num-seqs 1024 --max-model-len 40960 --kv-cache-tokens 839648 \
    --hops $here/fleet/no-hops.json --proxy-cpu zero --output "$out/$name" --name fleet-w1 --quiet > /dev/null
  p50 "$out/$name/fleet-w1.jsonl" "$name"
done
