#!/usr/bin/env bash
# Issue 16's sweep, predicted by the fleet before any two-GPU lease: the same points that
# tools/gpu/h200x2/session.sh measures on real vLLM (1P1D kv_both pair serving pd, ppd, replication as
# 2 replicas, and auto; W1-W4 x 6 rates light -> past saturation; 2 runs of a 70 s arrival window,
# the first 10 s warm-up; seed 0; drain 60 s, W3 90 s; SLOs as results/plan-8gpu for goodput), on
# `ppd fleet` (virtual clock; deterministic) with the h200 profile configured as the GPU's vLLM
# (max_num_seqs 1024, 839,648 KV tokens, --max-model-len 32768) and the measured proxy hop costs.
# auto routes without SLO targets, as the device session's proxy (started once for all workloads).
# Each workload's result set keeps its rows gzip-compressed (<set>.jsonl.gz), then `ppd report` over
# the four. Runs under the shared CPU lock; no figure here is a timing.
# PPD="python -m ppd" with PYTHONPATH=<snapshot>/src and PPD_GIT_COMMIT=<hash> runs a snapshot.
# Run from the repository root: results/h200x2-vllm0.25.1-nixl/fleet-prediction/run.sh [W1 W2 ...]
# The current model (session 5): src/ppd/fleet/hops.json (re-measured on the quiet machine) and
# the proxy's event loop, one process, src/ppd/fleet/proxy_cpu.json (docs/fleet.md). The pinned
# costs of the earlier results are results/fleet-hops-2026-12-02-shared-machine.json (git history).
set -euo pipefail
OUT=${OUT:-results/h200x2-vllm0.25.1-nixl/fleet-prediction}
PPD=${PPD:-ppd}
# COSTS: extra flags for the fleet's costs, e.g. the H200 host's (seventh session):
# COSTS="--hops results/h200-host-cpu/hops.json --proxy-cpu results/h200-host-cpu/proxy_cpu.json"
COSTS=${COSTS:-}
mkdir -p "$OUT"
# Keep these equal to tools/gpu/h200x2/session.sh's RATES and TTFT_MS.
declare -A RATES=([W1]=4,8,16,24,32,40 [W2]=1,2,3,4.5,6.5,9 [W3]=2,4,6,8,12,16 [W4]=0.5,1,1.5,2,3,4)
declare -A TTFT_MS=([W1]=500 [W2]=1000 [W3]=500 [W4]=2000)
declare -A DRAIN_S=([W1]=60 [W2]=60 [W3]=90 [W4]=60)
for w in ${@:-W1 W2 W3 W4}; do
  name=fleet-h200x2-${w,,}
  flock -s /work/cpu.lock bash -c "
    echo \"# ${PPD_GIT_COMMIT:-$(git rev-parse --short HEAD)}, shared lock taken \$(date -u +%FT%H:%M:%SZ), uptime before: \$(uptime)\"
    /usr/bin/time -f '$w wall_s=%e user_s=%U sys_s=%S' \
      $PPD fleet --topology 1p1d --modes pd,ppd,replication,auto --workload $w --qps ${RATES[$w]} \
        --duration 70 --warmup-s 10 --runs 2 --seed 0 --slo-ttft-ms ${TTFT_MS[$w]} --slo-tpot-ms 25 \
        --drain-timeout-s ${DRAIN_S[$w]} --profile h200-llama3.1-8b --max-num-seqs 1024 \
        --kv-cache-tokens 839648 --max-model-len 32768 $COSTS --output $OUT --name $name --quiet
    echo \"# uptime after: \$(uptime)\"" > "$OUT/$name.log" 2>&1
  gzip -f "$OUT/$name.jsonl"
done
$PPD report "$OUT"/fleet-h200x2-w*.json --out "$OUT/report" > "$OUT/report.log" 2>&1
