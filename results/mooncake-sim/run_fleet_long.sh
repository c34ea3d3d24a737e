#!/usr/bin/env bash
# The Mooncake conversation trace's first 1,200 s on the fleet, as run_fleet.sh's 300 s slice (same
# engines, modes, rates and SLOs), for 1p1d and 2p2d (4r's replication and auto are 2p2d's: the same
# four instances as replicas make the same decisions). Deterministic. Run from the repository root.
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
COMMON=(--workload "$TRACE" --window 0:1200 --max-model-len 131072 --slo-ttft-ms 2000 --slo-tpot-ms 100
        --drain-timeout-s 600 --output "$OUT" --quiet)
$PPD fleet --topology 1p1d --modes pd,ppd,replication,auto --rate 0.5,1,2 --name fleet-1p1d-window1200 "${COMMON[@]}" &
$PPD fleet --topology 2p2d --modes pd,ppd,replication,auto --rate 1,2,4 --name fleet-2p2d-window1200 "${COMMON[@]}" &
wait
gzip -f "$OUT"/fleet-1p1d-window1200.jsonl "$OUT"/fleet-2p2d-window1200.jsonl
