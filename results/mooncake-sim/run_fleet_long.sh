#!/usr/bin/env bash
# The Mooncake conversation trace's first 1,200 s on the fleet, as run_fleet.sh's 300 s slice (same
# engines, modes, rates and SLOs), for 1p1d and 2p2d (4r's replication and auto are 2p2d's: the same
# four instances as replicas make the same decisions). Deterministic. Run from the repository root.
# --hops: the hop costs these results were made with (measured on the shared machine, 2026-12-02
# 02:27 UTC), kept as a file so that re-running gives the committed rows; src/ppd/fleet/hops.json
# has since been re-measured on a quiet machine (docs/fleet.md).
set -euo pipefail
TRACE=mooncake:data/traces/mooncake-conversation_trace.jsonl.gz
OUT=results/mooncake-sim
COMMON=(--workload "$TRACE" --window 0:1200 --max-model-len 131072 --slo-ttft-ms 2000 --slo-tpot-ms 100
        --drain-timeout-s 600 --hops results/fleet-hops-2026-12-02-shared-machine.json --output "$OUT" --quiet)
ppd fleet --topology 1p1d --modes pd,ppd,replication,auto --rate 0.5,1,2 --name fleet-1p1d-window1200 "${COMMON[@]}" &
ppd fleet --topology 2p2d --modes pd,ppd,replication,auto --rate 1,2,4 --name fleet-2p2d-window1200 "${COMMON[@]}" &
wait
