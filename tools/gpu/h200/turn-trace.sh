#!/bin/bash
# Issue 13's loaded turn-1 step, traced: the HTTP side of benchmarks/fleet_vs_sim.py's whole grid on the
# H200 host's 16 cores (no GPU use), as tools/gpu/h200/cpu-bench.sh runs it, with PPD_TURN_TRACE on, so
# that `ppd bench`, `ppd proxy` and every `ppd sim` write their per-request stamps (src/ppd/turn_trace.py;
# time.monotonic, one clock for every process on the host). Then benchmarks/turn_trace.py joins them
# with the fleet's timeline of the same turns (virtual time: the host's costs of session 7,
# results/h200-host-cpu-gaps/{hops,proxy_cpu}.json) and says where the later turn 1s lose their step.
# In order, each step's output under $OUT_DIR (/opt/out):
#
#   env       host, Python and packages, $PPD_GIT_COMMIT, the hash of src/ -> env.txt; /proc/loadavg every 5 s -> loadavg.txt;
#             a snapshot of src, benchmarks, pyproject.toml and the two cost files -> $ROOT/ppd-trace
#   fvs-http  fleet_vs_sim.py --http-only in the four groups of cpu-bench.sh at once (1p1d and 2p2d, each
#             W1+W2 and W3+W4), trace on -> fvs-<group>.txt, fvs/ (result sets, decision logs), trace/
#   fleet     fleet_vs_sim.py --fleet-only with the session-7 host costs -> fvs.txt (the agreement of
#             this traced run), then fleet_turn_steps.py and turn_trace.py -> turn_steps.txt,
#             turn_trace.txt
#   pack      rows without ITL lists, decision logs and trace files gzipped (as committed results keep
#             them); the fleet's own rows removed (--fleet-only makes them again)
#
# Every step logs its UTC start ("=== HH:MM:SS ..."); the script ends with "=== ... DONE" (or FAILED),
# which tools/gpu/h200/wait.sh waits for. About 5 minutes (the HTTP groups ~4, bounded by real time);
# each step has a timeout, 7.5 minutes in all.
#
# On the GPU host (kind nvidia-h200), from the project root, in one call:
#   mkdir -p /opt/out && PPD_GIT_COMMIT=<hash> setsid bash tools/gpu/h200/turn-trace.sh \
#     > /opt/out/session.log 2>&1 < /dev/null & sleep 2; bash tools/gpu/h200/wait.sh 530
#
# Dry run (any machine; QUICK=1 cuts every run to seconds, the figures are meaningless):
#   ROOT=/tmp/turn-trace PY=/path/to/venv/bin/python QUICK=1 bash tools/gpu/h200/turn-trace.sh
set -uo pipefail
# Bash reads a script as it runs, and a device call refreshes the working tree: run from a copy.
if [ -z "${TURN_TRACE_COPY:-}" ]; then
  cd "$(dirname "$0")/../../.." || exit 1
  copy=$(mktemp /tmp/turn-trace.XXXXXX.sh) && cp tools/gpu/h200/turn-trace.sh "$copy" || exit 1
  TURN_TRACE_COPY=$copy TURN_TRACE_REPO=$PWD exec bash "$copy" "$@"
fi
cd "$TURN_TRACE_REPO" || exit 1
ROOT=${ROOT:-/opt}
OUT_DIR=${OUT_DIR:-$ROOT/out}
PY=${PY:-python3}
SNAPSHOT=$ROOT/ppd-trace
export PPD_GIT_COMMIT=${PPD_GIT_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
export PYTHONUNBUFFERED=1
COSTS=results/h200-host-cpu-gaps  # the host's hop and proxy costs of session 7 (the judged run's)
FVS_ARGS=${FVS_ARGS:-}
FVS_GROUPS=${FVS_GROUPS:-1p1d:W1,W2 1p1d:W3,W4 2p2d:W1,W2 2p2d:W3,W4}
if [ "${QUICK:-0}" = 1 ]; then
  FVS_ARGS="--duration-s 2 --drain-timeout-s 8"
  FVS_GROUPS="1p1d:W3 2p2d:W3"
fi
FVS_TIMEOUT_S=${FVS_TIMEOUT_S:-285} FLEET_TIMEOUT_S=${FLEET_TIMEOUT_S:-60} TRACE_TIMEOUT_S=${TRACE_TIMEOUT_S:-90}

# shellcheck source=tools/gpu/h200/common.sh
. tools/gpu/h200/common.sh

mkdir -p "$OUT_DIR" || fail "cannot make $OUT_DIR"
step "env (commit $PPD_GIT_COMMIT)"
write_env "$OUT_DIR/env.txt"
$PY -c 'import aiohttp, numpy, rich' || fail "aiohttp, numpy or rich missing"

log_load "$OUT_DIR/loadavg.txt" "$TURN_TRACE_COPY"

rm -rf "$SNAPSHOT" && mkdir -p "$SNAPSHOT/$COSTS" && cp -a src benchmarks pyproject.toml "$SNAPSHOT"/ \
  && cp "$COSTS/hops.json" "$COSTS/proxy_cpu.json" "$SNAPSHOT/$COSTS/" || fail "project snapshot"
echo "$PPD_GIT_COMMIT" > "$SNAPSHOT/COMMIT"
cd "$SNAPSHOT" || fail "no $SNAPSHOT"
export PYTHONPATH=$SNAPSHOT/src

step "fvs-http: fleet_vs_sim.py --http-only, groups $FVS_GROUPS at once, PPD_TURN_TRACE=$OUT_DIR/trace $FVS_ARGS"
rm -rf "$OUT_DIR/trace" "$OUT_DIR/fvs" && mkdir -p "$OUT_DIR/fvs"
pids=() names=()
for group in $FVS_GROUPS; do
  topology=${group%%:*} workloads=${group##*:}
  name=fvs-$topology-${workloads//,/}
  # shellcheck disable=SC2086
  PPD_TURN_TRACE=$OUT_DIR/trace timeout "$FVS_TIMEOUT_S" $PY benchmarks/fleet_vs_sim.py --http-only \
    --topologies "$topology" --workloads "$workloads" --out "$OUT_DIR/$name" $FVS_ARGS > "$OUT_DIR/$name.txt" 2>&1 &
  pids+=($!) names+=("$name")
done
for k in "${!pids[@]}"; do
  wait "${pids[$k]}"
  echo "${names[$k]} exit $? at $(date -u +%T)"
done
strays
for name in "${names[@]}"; do
  cp "$OUT_DIR/$name"/http-* "$OUT_DIR/fvs/" || echo "no HTTP result sets in $name"
  for log in "$OUT_DIR/$name"/proxy-decisions-*.jsonl; do
    [ -f "$log" ] && cat "$log" >> "$OUT_DIR/fvs/$(basename "$log")"  # ids name their workload
  done
  rm -rf "${OUT_DIR:?}/$name"
done
ls "$OUT_DIR/trace" | sed 's/-[0-9]*.jsonl//' | sort | uniq -c
du -sh "$OUT_DIR/trace"

topologies=$(for group in $FVS_GROUPS; do echo "${group%%:*}"; done | sort -u | paste -sd,)
workloads=$(for group in $FVS_GROUPS; do echo "${group##*:}" | tr , '\n'; done | sort -u | paste -sd,)
costs=(--hops "$COSTS/hops.json" --proxy-cpu "$COSTS/proxy_cpu.json")

step "fleet: fleet_vs_sim.py --fleet-only with $COSTS's costs; fleet_turn_steps.py; turn_trace.py"
timeout "$FLEET_TIMEOUT_S" $PY benchmarks/fleet_vs_sim.py --fleet-only --out "$OUT_DIR/fvs" \
  --topologies "$topologies" --workloads "$workloads" "${costs[@]}" > "$OUT_DIR/fvs.txt" 2>&1
echo "fleet exit $?"
tail -n 3 "$OUT_DIR/fvs.txt"
timeout "$TRACE_TIMEOUT_S" $PY benchmarks/fleet_turn_steps.py "$OUT_DIR/fvs" > "$OUT_DIR/turn_steps.txt" 2>&1
echo "turn_steps exit $?"
tail -n 1 "$OUT_DIR/turn_steps.txt"
timeout "$TRACE_TIMEOUT_S" $PY benchmarks/turn_trace.py "$OUT_DIR/trace" "$OUT_DIR/fvs" "${costs[@]}" \
  > "$OUT_DIR/turn_trace.txt" 2>&1
echo "turn_trace exit $?"
tail -n 12 "$OUT_DIR/turn_trace.txt"

step "pack: rows without ITL lists, trace and decision logs gzipped"
$PY - "$OUT_DIR" <<'EOF'
import gzip, json, pathlib, sys
out = pathlib.Path(sys.argv[1])
for rows in sorted(out.glob("fvs/http-*.jsonl")):
    with gzip.open(rows.with_name(rows.stem + ".rows-no-itl.jsonl.gz"), "wt") as packed:
        for line in rows.read_text().splitlines():
            row = json.loads(line)
            row.pop("itl_ms", None)
            packed.write(json.dumps(row, separators=(",", ":")) + "\n")
    rows.unlink()
EOF
gzip -f "$OUT_DIR"/fvs/proxy-decisions-*.jsonl "$OUT_DIR"/trace/*.jsonl
rm -f "$OUT_DIR"/fvs/fleet-*.jsonl  # the fleet's rows: --fleet-only makes them again
du -sh "$OUT_DIR"

step "DONE"
