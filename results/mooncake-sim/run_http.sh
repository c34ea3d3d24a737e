#!/usr/bin/env bash
# The fleet's 1p1d cross-check on real HTTP: two `ppd sim` engines (H100 profile, --time-scale 0.25,
# so 4 req/s of wall time is 1 req/s of modeled time) behind `ppd proxy`, `ppd bench` replaying the
# Mooncake conversation trace's first 120 s (339 requests) in all four modes. Timing-sensitive: run
# alone (flock /work/cpu.lock on the shared development machine). Run from the repository root.
set -euo pipefail
STATE=${STATE:-/tmp/ppd-mooncake-http.json}
ppd up --backend sim --topology 1p1d --time-scale 0.25 --max-model-len 131072 --port-base 18500 \
    --proxy-port 18490 --state "$STATE" --logs /tmp/ppd-mooncake-http-logs
trap 'ppd down --state "$STATE"' EXIT
ppd bench --url http://127.0.0.1:18490 --workload mooncake:data/traces/mooncake-conversation_trace.jsonl.gz \
    --window 0:120 --rate 4 --modes pd,ppd,replication,auto --drain-timeout-s 300 --prompt-salt http \
    --output results/mooncake-sim --name http-1p1d-timescale0.25 --quiet
