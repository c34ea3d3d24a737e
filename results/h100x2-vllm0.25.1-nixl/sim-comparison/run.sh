#!/bin/bash
# The GPU sweep's bench configuration (tools/gpu/bench.sh, same workloads, QPS, durations, modes,
# seed) against a 1P1D `ppd sim` deployment at time-scale 1 on this machine. The sims emit special
# tokens at the rate the GPU's dummy-weight model does (256 of 128,256 ids, sampled ~uniformly), so
# the client's turn-2 history loses the prefix cache where the GPU's does (README: "Sim vs real").
# Usage: results/h100x2-vllm0.25.1-nixl/sim-comparison/run.sh OUT_DIR [PREFIX]
set -euo pipefail
out=$1 prefix=${2:-sim}
cd "$(dirname "$0")/../../.."
py=.venv/bin/python
work=$(mktemp -d)
$py -m ppd up --backend sim --topology 1p1d --time-scale 1 --port-base 0 --proxy-port 0 \
  --sim-arg=--max-model-len=32768 --sim-arg=--special-token-rate=0.002 --logs "$work/logs" --state "$work/state.json" --mode pd | tee "$work/up.log"
trap '$py -m ppd down --state "$work/state.json"' EXIT
url=$(grep -o 'proxy *http://[0-9.:]*' "$work/up.log" | awk '{print $2}')
engines=$(grep -o '\(prefill\|decode\) *http://[0-9.:]*' "$work/up.log" | awk '{print $2}')
bench() {  # WORKLOADS QPS DURATION_S NAME [more ppd bench args]
  local workloads=$1 qps=$2 duration=$3 name=$4; shift 4
  for engine in $engines; do curl -s -X POST "$engine/ppd/stats/reset" >/dev/null; done
  $py -m ppd bench --url "$url" --workload "$workloads" --qps "$qps" \
    --duration "$duration" --modes pd,ppd,replication --runs 1 --warmup-s 0 --seed 0 \
    --output "$out" --name "$name" --quiet "$@"
  for engine in $engines; do
    echo "$name $engine $(curl -s "$engine/ppd/stats")"
  done | tee -a "$out/$prefix-drift.log"
}
bench W1 2,8 30 "$prefix-w1"
bench W2 1,4 30 "$prefix-w2"
bench W3 2,8 20 "$prefix-w3" --drain-timeout-s 60
bench W4 0.5,2 30 "$prefix-w4"
