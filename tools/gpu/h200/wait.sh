#!/bin/bash
# Poll tools/gpu/h200/session.sh: return after SECONDS, or as soon as its log shows PATTERN (default:
# DONE or FAILED); print the log's last lines and pack /opt/out into $OUT/out.tgz.
# Usage: bash tools/gpu/h200/wait.sh SECONDS [PATTERN] [LINES]
limit=$1 pattern=${2:-"=== .* (DONE|FAILED)"} lines=${3:-30}
start=$(date +%s)
while [ $(( $(date +%s) - start )) -lt "$limit" ]; do
  grep -Eq "$pattern" /opt/out/session.log 2>/dev/null && break
  sleep 3
done
tail -n "$lines" /opt/out/session.log
nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv,noheader
[ -n "${OUT:-}" ] && tar -C /opt -czf "$OUT/out.tgz" out && ls -la "$OUT"
