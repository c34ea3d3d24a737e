#!/usr/bin/env bash
# Issue 17's prediction, made before any 4-GPU lease: `ppd plan --gpus 4` on the H200 profile for
# W1-W4, restricted to the four topologies the device run will start (4r, 1p3d, 2p2d, 3p1d: every
# topology of 4 GPUs), in every mode each supports (4r: replication, auto; xPyD: pd, ppd, auto).
# Engines as the real ones: --max-num-seqs 1024 (vLLM's choice on an H200) and 839,648 KV tokens
# (what vLLM logged on the H200 at `ppd up`'s --gpu-memory-utilization 0.85). --refine-all: every
# deployment's rate to 10%, not only the contenders', since each one is to be held to a measurement. SLOs as
# results/plan-8gpu (TPOT 25 ms; TTFT 500 / 1000 / 500 / 2000 ms for W1 / W2 / W3 / W4).
# Windows as the device run's: every evaluation offers conversations over at least 70 s (the device
# runs: 70 s, the first 10 s warm-up; the plan leaves out the first 10%), and turns get the device's
# drain (60 s; W3's 2 x 1,024-token conversations 90 s) before a cut-off counts as a miss. With the
# plan's default 5 s windows and 20 s drain the engines never reach the steady state that a 70 s
# window does: W3 on 4r passed 76 conversations/s there, while a 70 s fleet run at that rate had 22%
# of its turns finished (README).
# Each plan runs under the shared CPU lock (its figures do not depend on the machine; its wall time
# does, and is not a goal here), with the load before and after and /usr/bin/time in <W>.log.
# The Mooncake slice (`mooncake`): the first 300 s of the trace (918 requests, results/mooncake-sim's
# slice), and the first 120 s (`mooncake120`, 339 requests: the slice the device runs, as 918
# requests at the rates that matter take 5+ minutes a run), planned by request rate, with
# TTFT <= 5000 ms and TPOT <= 100 ms (results/mooncake-sim's TPOT; not W4's TTFT 2000 / TPOT 25:
# on lightly loaded engines 117 of the 918 requests miss those, 27 these, so at W4's no rate
# passes: mooncake_slo_check.sh, mooncake-light/).
# PPD="python -m ppd" with PYTHONPATH=<snapshot>/src and PPD_GIT_COMMIT=<hash> runs a `git archive`
# snapshot, so that editing the checkout meanwhile cannot change a plan under way.
# Run from the repository root: results/h200x4-vllm0.25.1-nixl/prediction/run.sh [W1 W2 ... mooncake120]
# The current model (session 5): src/ppd/fleet/hops.json (re-measured on the quiet machine) and
# the proxy's event loop, one process, src/ppd/fleet/proxy_cpu.json (docs/fleet.md). The pinned
# costs of the earlier results are results/fleet-hops-2026-12-02-shared-machine.json (git history).
set -euo pipefail
OUT=${OUT:-results/h200x4-vllm0.25.1-nixl/prediction}
PPD=${PPD:-ppd}
# COSTS: extra flags for the fleet's costs, e.g. the H200 host's (sixth session):
# COSTS="--hops results/h200-host-cpu/hops.json --proxy-cpu results/h200-host-cpu/proxy_cpu.json"
COSTS=${COSTS:-}
COMMIT=${PPD_GIT_COMMIT:-$(git rev-parse --short HEAD)}
declare -A TTFT=([W1]=500 [W2]=1000 [W3]=500 [W4]=2000 [mooncake]=5000 [mooncake120]=5000)
declare -A TPOT=([W1]=25 [W2]=25 [W3]=25 [W4]=25 [mooncake]=100 [mooncake120]=100)
declare -A DRAIN=([W1]=60 [W2]=60 [W3]=90 [W4]=60 [mooncake]=60 [mooncake120]=60)
TRACE="mooncake:data/traces/mooncake-conversation_trace.jsonl.gz --max-model-len 131072"
declare -A WORKLOAD=([W1]=W1 [W2]=W2 [W3]=W3 [W4]=W4
  [mooncake]="$TRACE --window 0:300" [mooncake120]="$TRACE --window 0:120")
for w in ${@:-W1 W2 W3 W4 mooncake mooncake120}; do
  flock -s /work/cpu.lock bash -c "
    echo \"# $COMMIT, shared lock taken \$(date -u +%FT%H:%M:%SZ), uptime before: \$(uptime)\"
    /usr/bin/time -f '$w wall_s=%e user_s=%U sys_s=%S' \
      $PPD plan --gpus 4 --deployments 4r,1p3d,2p2d,3p1d --workload ${WORKLOAD[$w]} --slo-ttft-ms ${TTFT[$w]} --slo-tpot-ms ${TPOT[$w]} \
        --profile h200-llama3.1-8b --max-num-seqs 1024 --kv-cache-tokens 839648 --refine-all $COSTS \
        --min-window-s 70 --drain-s ${DRAIN[$w]} --output $OUT/$w --quiet
    echo \"# uptime after: \$(uptime)\"" > "$OUT/$w.log" 2>&1
done
