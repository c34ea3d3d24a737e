#!/usr/bin/env bash
# Issue 17's prediction, made before any 4-GPU lease: `ppd plan --gpus 4` on the H200 profile for
# W1-W4, restricted to the four topologies the device run will start (4r, 1p3d, 2p2d, 3p1d: every
# topology of 4 GPUs), in every mode each supports (4r: replication, auto; xPyD: pd, ppd, auto).
# Engines as the real ones: --max-num-seqs 1024 (vLLM's choice on an H200) and 839,648 KV tokens
# (what vLLM logged on the H200 at `ppd up`'s --gpu-memory-utilization 0.85). --refine-all: every
# deployment's rate to 10%, not only the contenders', since each one is to be held to a measurement. SLOs as
# results/plan-8gpu (TPOT 25 ms; TTFT 500 / 1000 / 500 / 2000 ms for W1 / W2 / W3 / W4).
# Each plan runs under the shared CPU lock (its figures do not depend on the machine; its wall time
# does, and is not a goal here), with the load before and after and /usr/bin/time in <W>.log.
# The Mooncake slice (`mooncake`): the first 300 s of the trace (918 requests, results/mooncake-sim's
# slice), planned by request rate, with W4's SLOs (TTFT 2000 ms, TPOT 25 ms: ~12k-token prompts).
# PPD="python -m ppd" with PYTHONPATH=<snapshot>/src and PPD_GIT_COMMIT=<hash> runs a `git archive`
# snapshot, so that editing the checkout meanwhile cannot change a plan under way.
# Run from the repository root: results/h200x4-vllm0.25.1-nixl/prediction/run.sh [W1 W2 ... mooncake]
set -euo pipefail
OUT=results/h200x4-vllm0.25.1-nixl/prediction
PPD=${PPD:-ppd}
COMMIT=${PPD_GIT_COMMIT:-$(git rev-parse --short HEAD)}
declare -A TTFT=([W1]=500 [W2]=1000 [W3]=500 [W4]=2000 [mooncake]=2000)
declare -A WORKLOAD=([W1]=W1 [W2]=W2 [W3]=W3 [W4]=W4
  [mooncake]="mooncake:data/traces/mooncake-conversation_trace.jsonl.gz --window 0:300 --max-model-len 131072")
for w in ${@:-W1 W2 W3 W4 mooncake}; do
  flock -s /work/cpu.lock bash -c "
    echo \"# $COMMIT, shared lock taken \$(date -u +%FT%H:%M:%SZ), uptime before: \$(uptime)\"
    /usr/bin/time -f '$w wall_s=%e user_s=%U sys_s=%S' \
      $PPD plan --gpus 4 --deployments 4r,1p3d,2p2d,3p1d --workload ${WORKLOAD[$w]} --slo-ttft-ms ${TTFT[$w]} --slo-tpot-ms 25 \
        --profile h200-llama3.1-8b --max-num-seqs 1024 --kv-cache-tokens 839648 --refine-all --output $OUT/$w --quiet
    echo \"# uptime after: \$(uptime)\"" > "$OUT/$w.log" 2>&1
done
