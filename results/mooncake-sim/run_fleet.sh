#!/usr/bin/env bash
# The Mooncake conversation trace's first 300 s (918 requests, 193 of them later turns) on the fleet (virtual clock, the sim's
# engine core and the proxy's router core), H100 profile, max_model_len 131072, every mode, three rates
# per topology (light -> past saturation). Deterministic: no wall-clock timing, any machine gives the
# same rows. Run from the repository root.
# The current model (remade in session 6): src/ppd/fleet/hops.json (re-measured on the quiet machine,
# session 4) and the proxy's event loop, one process, src/ppd/fleet/proxy_cpu.json (session 5). The
# first results (git history before this file's session-6 commit) were made with the shared machine's
# hop costs, results/fleet-hops-2026-12-02-shared-machine.json, and no proxy loop: add
# `--hops results/fleet-hops-2026-12-02-shared-machine.json --proxy-cpu zero` at their commit to get them.
# PPD="python -m ppd" with PYTHONPATH=<snapshot>/src and PPD_GIT_COMMIT=<hash> runs a snapshot.
set -euo pipefail
TRACE=mooncake:data/traces/mooncake-conversation_trace.jsonl.gz
OUT=results/mooncake-sim
PPD=${PPD:-ppd}
COMMON=(--workload "$TRACE" --window 0:300 --max-model-len 131072 --slo-ttft-ms 2000 --slo-tpot-ms 100
        --drain-timeout-s 600 --output "$OUT" --quiet)
# The three are independent (one process each, in parallel here); rows gzip-compressed after.
$PPD fleet --topology 1p1d --modes pd,ppd,replication,auto --rate 0.5,1,2 --name fleet-1p1d "${COMMON[@]}" &
$PPD fleet --topology 2p2d --modes pd,ppd,replication,auto --rate 1,2,4 --name fleet-2p2d "${COMMON[@]}" &
$PPD fleet --topology 4r --modes replication,auto --rate 1,2,4 --name fleet-4r "${COMMON[@]}" &
wait
# The HTTP cross-check's fleet side (run_http.sh's slice and rate, no SLOs): the first 120 s at 1 req/s.
$PPD fleet --topology 1p1d --modes pd,ppd,replication,auto --rate 1 --workload "$TRACE" --window 0:120 \
  --max-model-len 131072 --drain-timeout-s 600 --output "$OUT" --name fleet-1p1d-window120 --quiet
gzip -f "$OUT"/fleet-1p1d.jsonl "$OUT"/fleet-2p2d.jsonl "$OUT"/fleet-4r.jsonl "$OUT"/fleet-1p1d-window120.jsonl
