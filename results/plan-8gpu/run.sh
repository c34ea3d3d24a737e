#!/usr/bin/env bash
# The four 8-GPU plans, one after another, each under the CPU lock: exclusive by default (a timing
# measurement: its wall time is the 5-minute goal), LOCK=-s for shared (the plans are deterministic,
# only their wall time depends on the machine), with the load average before and after and
# /usr/bin/time's CPU figures in <W>.log beside the terminal table.
# Run from the repository root: [LOCK=-s] results/plan-8gpu/run.sh [W1 W2 ...]
set -euo pipefail
LOCK=${LOCK:-}
OUT=${OUT:-results/plan-8gpu}  # OUT=DIR: write the plans and logs there instead
declare -A TTFT=([W1]=500 [W2]=1000 [W3]=500 [W4]=2000)
for W in "${@:-W1 W2 W3 W4}"; do
  for w in $W; do
    flock $LOCK /work/cpu.lock bash -c "
      echo \"# $(git rev-parse --short HEAD), lock${LOCK:+ (shared)} taken \$(date -u +%FT%H:%M:%SZ), uptime before: \$(uptime)\"
      /usr/bin/time -f '$w wall_s=%e user_s=%U sys_s=%S' \
        ppd plan --gpus 8 --workload $w --slo-ttft-ms ${TTFT[$w]} --slo-tpot-ms 25 --output $OUT/$w --quiet
      echo \"# uptime after: \$(uptime)\"" > "$OUT/$w.log" 2>&1
  done
done
