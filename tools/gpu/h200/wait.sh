#!/bin/bash
# Poll tools/gpu/h200/session.sh: return after SECONDS, or as soon as its log shows PATTERN (default:
# DONE or FAILED); print the log's last lines and pack /opt/out into $OUT/out.tgz.
# Usage: bash tools/gpu/h200/wait.sh SECONDS [PATTERN] [LINES]
# With no log at all it returns at once (exit 3): the call found a fresh machine, the one that ran the
# session having been released between calls (session 11 lost 481 s of device time waiting on one).
limit=$1 pattern=${2:-"=== .* (DONE|FAILED)"} lines=${3:-30}
start=$(date +%s)
if [ ! -f /opt/out/session.log ]; then
  echo "wait.sh: no /opt/out/session.log: this is a fresh machine, the session's was released" >&2
  exit 3
fi
while [ $(( $(date +%s) - start )) -lt "$limit" ]; do
  grep -Eq "$pattern" /opt/out/session.log 2>/dev/null && break
  sleep 3
done
tail -n "$lines" /opt/out/session.log
nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv,noheader
[ -n "${OUT:-}" ] && tar -C /opt -czf "$OUT/out.tgz" out && ls -la "$OUT"
