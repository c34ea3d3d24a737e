#!/bin/bash
# The GPU's loaded runs (same workloads, rates, 30 s windows, seed) on the virtual clock: `ppd fleet`
# with one engine (topology 1r: one replica behind the router core, whose hop costs nothing here) and
# the h200-llama3.1-8b profile, configured as the GPU's vLLM was (max_num_seqs 1024, --max-model-len
# 40960, 839,648 KV tokens as vLLM logged), no hop costs (no-hops.json) and no proxy CPU (--proxy-cpu
# zero: the GPU's runs had no proxy; the fleet models one by default since d1dc746). The same EngineCore as
# `ppd sim`, without HTTP and without
# drift; compare with `benchmarks/sim_vs_real.py --mode-map replication=` (its mode is replication,
# the GPU's runs went straight to the engine: mode "").
# Usage: results/h200-vllm0.25.1-single/fleet/run.sh OUT_DIR (PROFILE=: another profile; FLEET=: another
# `ppd fleet` command, e.g. "python results/h200-vllm0.25.1-single/session4/whatif/intake_hold.py")
set -euo pipefail
out=$1
cd "$(dirname "$0")/../../.."
py=${PYTHON:-.venv/bin/python}
mkdir -p "$out"
fleet() {  # WORKLOAD RATES [more args]
  ${FLEET:-$py -m ppd fleet} --topology 1r --modes replication --profile "${PROFILE:-h200-llama3.1-8b}" --workload "$1" --qps "$2" \
    --duration 30 --seed 0 --max-num-seqs 1024 --max-model-len 40960 --kv-cache-tokens 839648 \
    --hops results/h200-vllm0.25.1-single/fleet/no-hops.json --proxy-cpu zero --output "$out" --name "fleet-${1,,}" \
    --quiet "${@:3}"
}
fleet W1 4,8,12,16
fleet W2 1,2.5,4,5
fleet W4 0.5,1.25,2,2.5
fleet W3 2,4,6,7,8 --drain-timeout-s 90
