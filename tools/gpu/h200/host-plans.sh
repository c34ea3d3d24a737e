#!/bin/bash
# The fleet's committed predictions, remade with the costs of the machine the proxy runs on: the H200
# host's own hop and proxy CPU costs (results/h200-host-cpu/hops.json, proxy_cpu.json, measured there
# by tools/gpu/h200/cpu-bench.sh) instead of the 2-core dev machine's. Virtual time only: no GPU use,
# and no figure depends on the host's speed (only the wall times in the logs do). The host's 16 cores
# run, at once, each under a timeout:
#
#   plan8    results/plan-8gpu/run.sh W1-W4 (one after another, --workers 4)
#                                    -> $OUT_DIR/plan-8gpu/
#   h200x4   results/h200x4-vllm0.25.1-nixl/prediction/run.sh, one process per slice (W1-W4,
#            mooncake120; the 0:300 slice is already committed with these costs), --workers 2 each
#                                    -> $OUT_DIR/h200x4/
#   h200x2   results/h200x2-vllm0.25.1-nixl/fleet-prediction/run.sh, one process per workload, then
#            `ppd report` over the four -> $OUT_DIR/h200x2/
#
# matplotlib (for plan.png): the H200 image has 3.11.2 (checked 2026-12-02). Should an image lack it,
# the script installs the wheels staged in $WHEELS (default $ROOT/stage) into $ROOT/pylib (--no-deps:
# numpy is the image's); they (`pip download --only-binary=:all: --python-version 3.12 --platform
# manylinux2014_x86_64 matplotlib`, less numpy, ~24 MB) and the tree exceed one call's 64 MiB, so
# they would be carried in two calls and copied to /opt/stage.
# Logs "=== HH:MM:SS ..." per step and ends with "=== ... DONE", which tools/gpu/h200/wait.sh waits for.
#
# On the GPU host (kind nvidia-h200), from the project root (run 2026-12-02: DONE in 171 s):
#   mkdir -p /opt/out && PPD_GIT_COMMIT=<hash> setsid bash tools/gpu/h200/host-plans.sh \
#     > /opt/out/session.log 2>&1 < /dev/null & sleep 2; bash tools/gpu/h200/wait.sh 560
#   (COSTS_DIR=results/h200-host-cpu-gaps before setsid: session 7's costs with the client's gaps)
#   bash tools/gpu/h200/wait.sh 300                # only if not DONE; packs /opt/out into $OUT/out.tgz
set -uo pipefail
if [ -z "${HOST_PLANS_COPY:-}" ]; then  # a device call refreshes the working tree: run from a copy
  cd "$(dirname "$0")/../../.." || exit 1
  copy=$(mktemp /tmp/host-plans.XXXXXX.sh) && cp tools/gpu/h200/host-plans.sh "$copy" || exit 1
  HOST_PLANS_COPY=$copy HOST_PLANS_REPO=$PWD exec bash "$copy" "$@"
fi
cd "$HOST_PLANS_REPO" || exit 1
ROOT=${ROOT:-/opt}
OUT_DIR=${OUT_DIR:-$ROOT/out}
PY=${PY:-python3}
SNAPSHOT=$ROOT/ppd-plans
WHEELS=${WHEELS:-$ROOT/stage}
TIMEOUT_S=${TIMEOUT_S:-840}
# The cost files' folder (hops.json, proxy_cpu.json): session 6's host costs by default; session 7's
# with the client's gaps are results/h200-host-cpu-gaps.
COSTS_DIR=${COSTS_DIR:-results/h200-host-cpu}
export PPD_GIT_COMMIT=${PPD_GIT_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
step() { echo "=== $(date -u +%H:%M:%S) $*"; }
fail() { step "FAILED: $*"; exit 1; }

mkdir -p "$OUT_DIR" /work || fail "cannot make $OUT_DIR"  # /work: the run.sh scripts' CPU lock
step "env (commit $PPD_GIT_COMMIT)"
{
  echo "commit $PPD_GIT_COMMIT"; echo "costs $COSTS_DIR"; echo "date_utc $(date -u +%FT%TZ)"; echo "cores $(nproc)"
  grep -m1 "model name" /proc/cpuinfo; echo "uptime $(uptime)"
} > "$OUT_DIR/env.txt"
rm -rf "$SNAPSHOT" && mkdir -p "$SNAPSHOT/bin" \
  && cp -a src data pyproject.toml "$SNAPSHOT"/ && mkdir -p "$SNAPSHOT/results" \
  && cp -a results/plan-8gpu results/h200x4-vllm0.25.1-nixl results/h200x2-vllm0.25.1-nixl \
     "$COSTS_DIR" "$SNAPSHOT/results/" || fail "project snapshot"
export PYTHONPATH=$SNAPSHOT/src:$ROOT/pylib
if ! $PY -c 'import matplotlib' 2> /dev/null; then
  step "installing matplotlib from $WHEELS into $ROOT/pylib"
  $PY -m pip install -q --no-index --no-deps --target "$ROOT/pylib" "$WHEELS"/*.whl || fail "matplotlib"
fi
$PY - >> "$OUT_DIR/env.txt" 2>&1 <<'EOF'
import sys
from importlib.metadata import version
print("python", sys.version.split()[0])
for name in ("numpy", "matplotlib", "rich", "aiohttp"):
    print(name, version(name))
EOF
cat "$OUT_DIR/env.txt"
printf '#!/bin/sh\nexec %s -m ppd "$@"\n' "$PY" > "$SNAPSHOT/bin/ppd" && chmod +x "$SNAPSHOT/bin/ppd"
export PATH=$SNAPSHOT/bin:$PATH
cd "$SNAPSHOT" || fail "no $SNAPSHOT"
COSTS_DIR=results/$(basename "$COSTS_DIR")
COSTS="--hops $COSTS_DIR/hops.json --proxy-cpu $COSTS_DIR/proxy_cpu.json"

step "start: plan8 (W1-W4), h200x4 (W1-W4, mooncake120), h200x2 (W1-W4), timeout ${TIMEOUT_S}s each"
mkdir -p "$OUT_DIR/plan-8gpu" "$OUT_DIR/h200x4" "$OUT_DIR/h200x2"
PLAN8_LOCKED=1 OUT=$OUT_DIR/plan-8gpu EXTRA="$COSTS --workers 4" \
  timeout "$TIMEOUT_S" bash results/plan-8gpu/run.sh > "$OUT_DIR/plan-8gpu.out" 2>&1 &
for w in W1 W2 W3 W4 mooncake120; do
  OUT=$OUT_DIR/h200x4 COSTS="$COSTS --workers 2" timeout "$TIMEOUT_S" \
    bash results/h200x4-vllm0.25.1-nixl/prediction/run.sh $w > "$OUT_DIR/h200x4-$w.out" 2>&1 &
done
for w in W1 W2 W3 W4; do
  OUT=$OUT_DIR/h200x2 COSTS="$COSTS" timeout "$TIMEOUT_S" \
    bash results/h200x2-vllm0.25.1-nixl/fleet-prediction/run.sh $w > "$OUT_DIR/h200x2-$w.out" 2>&1 &
done
( while :; do echo "$(date -u +%T) $(cat /proc/loadavg)"; sleep 10; done ) > "$OUT_DIR/loadavg.txt" &
LOADAVG_PID=$!
trap 'kill "$LOADAVG_PID" 2> /dev/null; rm -f "$HOST_PLANS_COPY"' EXIT
while [ "$(jobs -rp | grep -vc "^$LOADAVG_PID$")" -gt 0 ]; do
  sleep 15
  step "running: $(ls "$OUT_DIR"/plan-8gpu/*/plan.json "$OUT_DIR"/h200x4/*/plan.json \
    "$OUT_DIR"/h200x2/*.json.gz "$OUT_DIR"/h200x2/*.jsonl.gz 2> /dev/null | wc -l) outputs done"
done
step "report over the h200x2 sets"
ppd report "$OUT_DIR"/h200x2/fleet-h200x2-w*.json --out "$OUT_DIR/h200x2/report" \
  > "$OUT_DIR/h200x2/report.log" 2>&1
echo "report exit $?"
grep -h wall_s "$OUT_DIR"/plan-8gpu/*.log "$OUT_DIR"/h200x4/*.log "$OUT_DIR"/h200x2/*.log
step "DONE"
