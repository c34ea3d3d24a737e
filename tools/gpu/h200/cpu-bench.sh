#!/bin/bash
# Issue 13's agreement on an uncontended host: the CPU-side benchmarks on the H200 host's 16 cores
# (no GPU use). On the 2-core dev machine the bench, the proxy and the sims compete for two cores, and
# that is where fleet_vs_sim's HTTP side parts from the fleet (docs/fleet.md, "Agreement and speed").
# Here each process has a core. In order, each step's output saved under $OUT_DIR (/opt/out):
#
#   env       the host (cores, CPU model), Python and the packages the benchmarks import (the image's
#             own aiohttp, numpy, rich and uvloop: nothing of the vLLM bundle is needed, so nothing is
#             staged or installed), $PPD_GIT_COMMIT, the hash of src/ -> env.txt; /proc/loadavg every 5 s -> loadavg.txt;
#             a snapshot of this project (src, benchmarks, pyproject.toml) -> $ROOT/ppd-cpu, which
#             the steps run from, because each device call refreshes the working tree under a running
#             script (and the two --write steps rewrite the snapshot's cost files, not the checkout's)
#   hops      benchmarks/fleet_hops.py --reps $HOPS_REPS --write: the host's hop costs, and the
#             bench's own time between turns (stream end, send lag: ppd bench's two-turn conversations,
#             ~55 s) and the later chunks' shorter way back (fleet/client_gaps.py)
#             -> fleet_hops.txt, hops.json (the snapshot's src/ppd/fleet/hops.json, rewritten)
#   relay     benchmarks/proxy_relay_cost.py --write: the host's proxy CPU costs
#             -> proxy_relay_cost.txt, proxy_cpu.json
#   fvs-http  benchmarks/fleet_vs_sim.py --http-only, the grid split in FVS_GROUPS (default four:
#             1p1d and 2p2d, each W1+W2 and W3+W4), the groups at once, each its own deployment and
#             bench (4-6 processes each, at most ~4 cores busy in all, against 16) -> fvs-<group>.txt
#             (drift, the HTTP path's CPU per point) and the result sets in fvs-<group>/
#   fvs       the groups' HTTP result sets and proxy decision logs moved into fvs/, then
#             fleet_vs_sim.py --out fvs --fleet-only: the fleet (virtual time) with the host's costs
#             just measured, against the host's HTTP side -> fvs.txt (fleet_agreement line)
#   pack      each HTTP row file kept without its ITL lists, gzip-compressed
#             (<set>.rows-no-itl.jsonl.gz, as committed results keep them), the decision logs gzipped,
#             the full HTTP rows and the fleet's rows (deterministic: --fleet-only makes them again)
#             removed, so $OUT_DIR can be committed as it is.
#
# Every step logs its UTC start ("=== HH:MM:SS ..."); the script ends with "=== ... DONE" (or
# FAILED, for what cannot go on), which tools/gpu/h200/wait.sh waits for. About 11 minutes on the
# host (10.1 before fleet_hops measured the client's gaps); every step has a timeout, so it cannot
# run past 15 minutes. A step that fails or times out
# is logged ("<step> exit N") and the next one runs: the HTTP side needs neither cost file, and a
# cost file a step did not rewrite is the dev machine's (hops.json / proxy_cpu.json in $OUT_DIR say
# which by their "source").
#
# On the GPU host (kind nvidia-h200), from the project root; nothing to stage beforehand:
#   mkdir -p /opt/out && PPD_GIT_COMMIT=<hash> setsid bash tools/gpu/h200/cpu-bench.sh \
#     > /opt/out/session.log 2>&1 < /dev/null &
#   bash tools/gpu/h200/wait.sh 570                # in the same call; then, in a second call:
#   bash tools/gpu/h200/wait.sh 300                # packs /opt/out into $OUT/out.tgz when DONE
#
# Dry run (any machine; QUICK=1 cuts every step to seconds, the figures are meaningless):
#   ROOT=/tmp/cpu-bench PY=/path/to/venv/bin/python QUICK=1 bash tools/gpu/h200/cpu-bench.sh
set -uo pipefail
# Bash reads a script as it runs, and a device call refreshes the working tree: run from a copy.
if [ -z "${CPU_BENCH_COPY:-}" ]; then
  cd "$(dirname "$0")/../../.." || exit 1
  copy=$(mktemp /tmp/cpu-bench.XXXXXX.sh) && cp tools/gpu/h200/cpu-bench.sh "$copy" || exit 1
  CPU_BENCH_COPY=$copy CPU_BENCH_REPO=$PWD exec bash "$copy" "$@"
fi
cd "$CPU_BENCH_REPO" || exit 1
ROOT=${ROOT:-/opt}
OUT_DIR=${OUT_DIR:-$ROOT/out}
PY=${PY:-python3}
SNAPSHOT=$ROOT/ppd-cpu
export PPD_GIT_COMMIT=${PPD_GIT_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
export PYTHONUNBUFFERED=1
HOPS_REPS=${HOPS_REPS:-30}
RELAY_ARGS=${RELAY_ARGS:-}  # proxy_relay_cost.py's defaults: 5 shapes x 2 reps of 8 s
FVS_ARGS=${FVS_ARGS:-}      # fleet_vs_sim.py's defaults: 8 s window + 10 s drain per run
# topology:workloads, run at once; together every named workload for every named topology (the
# merged comparison takes the grid)
FVS_GROUPS=${FVS_GROUPS:-1p1d:W1,W2 1p1d:W3,W4 2p2d:W1,W2 2p2d:W3,W4}
if [ "${QUICK:-0}" = 1 ]; then
  HOPS_REPS=2
  RELAY_ARGS="--duration-s 2 --reps 1 --points 256/16@8,256/256@2,256/1024@3,256/1024@6"
  FVS_ARGS="--duration-s 2 --drain-timeout-s 3"
fi
# Timeouts (s), 14.6 minutes in all. On the dev machine (real time bounds each: turns, pauses,
# windows) hops took 200 s (+ ~55 s of two-turn conversations since session 7), relay 186 s, the
# slowest group (W3 + W4) ~235 s, and the fleet side 26 s; on the host 196 s (before the
# conversations), 170 s, 234 s and 7 s.
HOPS_TIMEOUT_S=${HOPS_TIMEOUT_S:-330} RELAY_TIMEOUT_S=${RELAY_TIMEOUT_S:-215}
FVS_TIMEOUT_S=${FVS_TIMEOUT_S:-285} FLEET_TIMEOUT_S=${FLEET_TIMEOUT_S:-45}

# shellcheck source=tools/gpu/h200/common.sh
. tools/gpu/h200/common.sh

mkdir -p "$OUT_DIR" || fail "cannot make $OUT_DIR"
step "env (commit $PPD_GIT_COMMIT)"
write_env "$OUT_DIR/env.txt"
$PY -c 'import sys; assert sys.version_info >= (3, 11)' || fail "Python >= 3.11 needed"
$PY -c 'import aiohttp, numpy, rich' || fail "aiohttp, numpy or rich missing"
# ppd uses uvloop where it is installed (as vLLM does); without it every cost below would be
# measured on the plain asyncio loop, unlike the dev machine's figures.
$PY -c 'import uvloop' || step "WARNING: no uvloop: the proxy, sims and bench run on plain asyncio"

log_load "$OUT_DIR/loadavg.txt" "$CPU_BENCH_COPY"

rm -rf "$SNAPSHOT" && mkdir -p "$SNAPSHOT" && cp -a src benchmarks pyproject.toml "$SNAPSHOT"/ \
  || fail "project snapshot"
echo "$PPD_GIT_COMMIT" > "$SNAPSHOT/COMMIT"
cd "$SNAPSHOT" || fail "no $SNAPSHOT"
export PYTHONPATH=$SNAPSHOT/src

step "hops: fleet_hops.py --reps $HOPS_REPS --write"
timeout "$HOPS_TIMEOUT_S" $PY benchmarks/fleet_hops.py --reps "$HOPS_REPS" --write > "$OUT_DIR/fleet_hops.txt" 2>&1
echo "hops exit $?"
strays
tail -n 3 "$OUT_DIR/fleet_hops.txt"  # fleet_hops, fleet_gaps, fleet_connect
cp src/ppd/fleet/hops.json "$OUT_DIR/hops.json"  # the dev machine's, unchanged, if the step failed

step "relay: proxy_relay_cost.py --write $RELAY_ARGS"
# shellcheck disable=SC2086
timeout "$RELAY_TIMEOUT_S" $PY benchmarks/proxy_relay_cost.py --write $RELAY_ARGS \
  > "$OUT_DIR/proxy_relay_cost.txt" 2>&1
echo "relay exit $?"
strays
tail -n 2 "$OUT_DIR/proxy_relay_cost.txt"
cp src/ppd/fleet/proxy_cpu.json "$OUT_DIR/proxy_cpu.json"

step "fvs-http: fleet_vs_sim.py --http-only, groups $FVS_GROUPS at once $FVS_ARGS"
pids=() names=()
for group in $FVS_GROUPS; do
  topology=${group%%:*} workloads=${group##*:}
  name=fvs-$topology-${workloads//,/}
  # shellcheck disable=SC2086
  timeout "$FVS_TIMEOUT_S" $PY benchmarks/fleet_vs_sim.py --http-only --topologies "$topology" \
    --workloads "$workloads" --out "$OUT_DIR/$name" $FVS_ARGS > "$OUT_DIR/$name.txt" 2>&1 &
  pids+=($!) names+=("$name")
done
for k in "${!pids[@]}"; do
  wait "${pids[$k]}"
  echo "${names[$k]} exit $? at $(date -u +%T)"
done
strays

step "fvs: merge the groups, fleet_vs_sim.py --fleet-only with the host's costs"
rm -rf "$OUT_DIR/fvs" && mkdir -p "$OUT_DIR/fvs"
for name in "${names[@]}"; do
  cp "$OUT_DIR/$name"/http-* "$OUT_DIR/fvs/" || echo "no HTTP result sets in $name"
  for log in "$OUT_DIR/$name"/proxy-decisions-*.jsonl; do
    [ -f "$log" ] && cat "$log" >> "$OUT_DIR/fvs/$(basename "$log")"  # ids name their workload
  done
  rm -rf "${OUT_DIR:?}/$name"  # merged; its log fvs-<group>.txt stays
done
topologies=$(for group in $FVS_GROUPS; do echo "${group%%:*}"; done | sort -u | paste -sd,)
workloads=$(for group in $FVS_GROUPS; do echo "${group##*:}" | tr , '\n'; done | sort -u | paste -sd,)
timeout "$FLEET_TIMEOUT_S" $PY benchmarks/fleet_vs_sim.py --fleet-only --out "$OUT_DIR/fvs" \
  --topologies "$topologies" --workloads "$workloads" > "$OUT_DIR/fvs.txt" 2>&1
echo "fleet exit $?"
tail -n 3 "$OUT_DIR/fvs.txt"

step "pack: rows without ITL lists, gzipped"
$PY - "$OUT_DIR" <<'EOF'
import gzip, json, pathlib, sys
out = pathlib.Path(sys.argv[1])
for rows in sorted(out.glob("fvs*/http-*.jsonl")):
    with gzip.open(rows.with_name(rows.stem + ".rows-no-itl.jsonl.gz"), "wt") as packed:
        for line in rows.read_text().splitlines():
            row = json.loads(line)
            row.pop("itl_ms", None)
            packed.write(json.dumps(row, separators=(",", ":")) + "\n")
    rows.unlink()
for rows in out.glob("fvs*/fleet-*.jsonl"):
    rows.unlink()
EOF
gzip -f "$OUT_DIR"/fvs*/proxy-decisions-*.jsonl
du -sh "$OUT_DIR"
step "DONE"
