#!/usr/bin/env bash
# The Mooncake conversation trace's first 300 s (918 requests, 193 of them later turns) on the fleet (virtual clock, the sim's
# engine core and the proxy's router core), H100 profile, max_model_len 131072, every mode, three rates
# per topology (light -> past saturation). Deterministic: no wall-clock timing, any machine gives the
# same rows. Run from the repository root.
# --hops: the hop costs these results were made with (measured on the shared machine, 2026-12-02
# 02:27 UTC), kept as a file so that re-running gives the committed rows; src/ppd/fleet/hops.json
# has since been re-measured on a quiet machine (docs/fleet.md).
set -euo pipefail
TRACE=mooncake:data/traces/mooncake-conversation_trace.jsonl.gz
OUT=results/mooncake-sim
COMMON=(--workload "$TRACE" --window 0:300 --max-model-len 131072 --slo-ttft-ms 2000 --slo-tpot-ms 100
        --drain-timeout-s 600 --hops results/fleet-hops-2026-12-02-shared-machine.json --output "$OUT" --quiet)
# The three are independent (one process each, in parallel here).
ppd fleet --topology 1p1d --modes pd,ppd,replication,auto --rate 0.5,1,2 --name fleet-1p1d "${COMMON[@]}" &
ppd fleet --topology 2p2d --modes pd,ppd,replication,auto --rate 1,2,4 --name fleet-2p2d "${COMMON[@]}" &
ppd fleet --topology 4r --modes replication,auto --rate 1,2,4 --name fleet-4r "${COMMON[@]}" &
wait
