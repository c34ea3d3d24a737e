#!/bin/bash
# The GPU's loaded runs (tools/gpu/h200/session.sh: same workloads, rates, 30 s windows, seed, greedy,
# one point per invocation appended to one set per workload) against one `ppd sim` with the
# h200-llama3.1-8b profile at time-scale 1 on this machine, configured as the GPU's vLLM was
# (max_num_seqs 1024 and chunked prefill 8192, vLLM's defaults on an H200; --max-model-len 40960;
# --gpu-memory-utilization 0.85: 839,680 KV tokens). The sim's step drift after each point goes to
# OUT_DIR/sim-drift.log. Run each workload under `flock /work/cpu.lock` on a shared machine.
# Usage: results/h200-vllm0.25.1-single/sim/run.sh OUT_DIR [WORKLOADS (default W1,W2,W4,W3)]
set -euo pipefail
out=$1 workloads=${2:-W1,W2,W4,W3}
cd "$(dirname "$0")/../../.."
py=${PYTHON:-.venv/bin/python}
mkdir -p "$out"
log=$(mktemp)
$py -m ppd sim --port 0 --profile h200-llama3.1-8b --max-model-len 40960 --max-num-seqs 1024 \
  --gpu-memory-utilization 0.85 > "$log" 2>&1 &
sim_pid=$!
trap 'kill $sim_pid 2>/dev/null; wait $sim_pid 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 100); do grep -q "listening on" "$log" && break; sleep 0.1; done
url=$(grep -o 'listening on http://[0-9.:]*' "$log" | awk '{print $3}')
point() {  # WORKLOAD QPS [more ppd bench args]
  local workload=$1 qps=$2; shift 2
  curl -s -X POST "$url/ppd/stats/reset" > /dev/null
  $py -m ppd bench --url "$url" --workload "$workload" --qps "$qps" --duration 30 --runs 1 --warmup-s 0 \
    --seed 0 --temperature 0 --output "$out" --name "sim-${workload,,}" --append --quiet "$@"
  echo "$workload $qps $(curl -s "$url/ppd/stats")" | tee -a "$out/sim-drift.log"
}
for workload in ${workloads//,/ }; do
  case $workload in
    W1) for qps in 4 8 12 16; do point W1 $qps; done ;;
    W2) for qps in 1 2.5 4 5; do point W2 $qps; done ;;
    W3) for qps in 2 4 6 8; do point W3 $qps --drain-timeout-s 90; done ;;
    W4) for qps in 0.5 1.25 2 2.5; do point W4 $qps; done ;;
  esac
done
