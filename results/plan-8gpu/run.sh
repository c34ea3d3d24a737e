#!/usr/bin/env bash
# The four 8-GPU plans, one after another, all under one hold of the CPU lock: exclusive by default
# (a timing measurement: each plan's wall time is the 5-minute goal), LOCK=-s for shared (the plans
# are deterministic, only their wall time depends on the machine), with the load average before and
# after each plan and /usr/bin/time's CPU figures in <W>.log beside the terminal table.
# EXTRA="--proxy-processes 8": more `ppd plan` flags (a what-if; not committed here).
# Run from the repository root: [LOCK=-s] [OUT=DIR] [EXTRA=...] results/plan-8gpu/run.sh [W1 W2 ...]
set -euo pipefail
LOCK=${LOCK:-}
OUT=${OUT:-results/plan-8gpu}  # OUT=DIR: write the plans and logs there instead
EXTRA=${EXTRA:-}
if [ -z "${PLAN8_LOCKED:-}" ]; then  # take the lock once, for every plan (no queueing between them)
  exec flock $LOCK /work/cpu.lock env PLAN8_LOCKED=1 "$0" "$@"
fi
declare -A TTFT=([W1]=500 [W2]=1000 [W3]=500 [W4]=2000)
mkdir -p "$OUT"
for w in ${@:-W1 W2 W3 W4}; do
  {
    echo "# ${PPD_GIT_COMMIT:-$(git rev-parse --short HEAD)}, lock${LOCK:+ (shared)} held since $(date -u +%FT%H:%M:%SZ) or before, uptime before: $(uptime)"
    # shellcheck disable=SC2086  # EXTRA is flags, split on purpose
    /usr/bin/time -f "$w wall_s=%e user_s=%U sys_s=%S" \
      ppd plan --gpus 8 --workload $w --slo-ttft-ms ${TTFT[$w]} --slo-tpot-ms 25 --output $OUT/$w --quiet $EXTRA
    echo "# uptime after: $(uptime)"
  } > "$OUT/$w.log" 2>&1
done
