#!/bin/bash
# On the GPU host: one part of the sweep through the proxy on :10001, results under $OUT/results.
# Usage: tools/gpu/bench.sh WORKLOADS QPS DURATION_S NAME [more ppd bench args]
set -euo pipefail
export PYTHONPATH=/opt/ppd/src PYTHONUNBUFFERED=1
export PPD_GIT_COMMIT=${PPD_GIT_COMMIT:-$(cat /opt/ppd/COMMIT 2>/dev/null)}  # the snapshot has no .git
workloads=$1 qps=$2 duration=$3 name=$4; shift 4
python3 -m ppd bench --url http://127.0.0.1:10001 --workload "$workloads" --qps "$qps" \
  --duration "$duration" --modes pd,ppd,replication --runs 1 --warmup-s 0 --seed 0 \
  --output "$OUT/results" --name "$name" --quiet "$@"
