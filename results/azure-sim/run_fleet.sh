#!/usr/bin/env bash
# The Azure LLM inference conversation trace (2023-11-16, Azure/AzurePublicDataset, CC-BY-4.0) on the
# fleet (virtual clock, the sim's engine core and the proxy's router core), H100 profile, every mode,
# three rates per topology (light -> past PD's saturation). Its first 600 s: 2,867 requests, each its own
# conversation (the trace has no conversation structure). Deterministic: no wall-clock timing, any
# machine gives the same rows. Run from the repository root.
# --hops: the hop costs these results were made with (measured on the shared machine, 2026-12-02
# 02:27 UTC), kept as a file so that re-running gives the committed rows; src/ppd/fleet/hops.json
# has since been re-measured on a quiet machine (docs/fleet.md).
set -euo pipefail
TRACE=azure:data/traces/AzureLLMInferenceTrace_conv.csv.gz
OUT=results/azure-sim
COMMON=(--workload "$TRACE" --window 0:600 --max-model-len 131072 --slo-ttft-ms 2000 --slo-tpot-ms 100
        --drain-timeout-s 600 --hops results/fleet-hops-2026-12-02-shared-machine.json --output "$OUT" --quiet)
ppd fleet --topology 1p1d --modes pd,ppd,replication,auto --rate 5,20,60 --name fleet-1p1d "${COMMON[@]}" &
ppd fleet --topology 2p2d --modes pd,ppd,replication,auto --rate 10,40,120 --name fleet-2p2d "${COMMON[@]}" &
ppd fleet --topology 4r --modes replication,auto --rate 10,40,120 --name fleet-4r "${COMMON[@]}" &
wait
