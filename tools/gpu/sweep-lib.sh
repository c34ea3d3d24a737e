#!/bin/bash
# Sourced (not run) by tools/gpu/h200x2/session.sh and tools/gpu/h200x4/session.sh: what both multi-GPU
# sweeps do the same way. BACKEND (vllm | sim), OUT_DIR, LOGS and PY default here (a caller's setting
# wins); the working directory is the project snapshot (/opt/ppd on the GPU host, the checkout for sim).
#
#   step TEXT                 a log line with the UTC time, the session log's clock
#   fail TEXT                 log, stop every deployment started (STATES), exit 1
#   install_and_enter TEXT [PROBE...]
#                             on a GPU host (BACKEND=vllm, unless SKIP_INSTALL=1): install the bundle
#                             (install-bundle.sh) with PROBE... beside it (unless SKIP_PROBES=1), then
#                             work from its snapshot /opt/ppd; exports PPD_GIT_COMMIT either way
#   SIM_ENGINE_ARGS           (array) `ppd up --backend sim` flags: the h200 profile, configured as the GPU's vLLM
#   VLLM_ENGINE_ARGS          (array) `ppd up --backend vllm` flags: dummy-weight Llama-3.1-8B from $MODEL_DIR
#                             (arrays, so a MODEL_DIR or SITE with spaces stays one argument each)
#   sim_engine_args, vllm_engine_args
#                             the same, printed as words, for callers that split them
#                             (tools/gpu/h200/session4.sh): not for paths with spaces
#   scrape NAME URL...        every engine's /metrics to $OUT_DIR/metrics/NAME-<port>.prom
#   bench_point SET W RATE MODES TTFT_MS TPOT_MS DRAIN_S [bench args]
#                             one bench point through the proxy at $PROXY: MODES x RUNS runs of
#                             DURATION_S (WARMUP_S excluded; a trace: its --window replayed at RATE
#                             requests/s), greedy, the SLOs for goodput, appended to
#                             result set SET; /metrics before and after; one line in points.jsonl with
#                             its wall time (the device-time figures of the README come from them)
#   kv_probe TAG P_URL D_URL  tools/kv_probe.py: the NIXL pull cost of this pair -> kv_probe-TAG.jsonl
#   pack_logs NAME DIR        gzip DIR/*.log into $OUT_DIR/logs/NAME-*.log.gz

BACKEND=${BACKEND:-vllm}
OUT_DIR=${OUT_DIR:-/opt/out}
LOGS=${LOGS:-/opt/logs}
PY=${PY:-python3}
export PYTHONUNBUFFERED=1
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
mkdir -p "$OUT_DIR/results" "$OUT_DIR/logs" "$LOGS"

RUNS=${RUNS:-2}
DURATION_S=${DURATION_S:-70}  # arrival window per run, the warm-up included: 60 s measured
WARMUP_S=${WARMUP_S:-10}
DRAIN_S=${DRAIN_S:-60}        # after the window: past saturation, turns still queued are cut off
DRAIN_S_W3=${DRAIN_S_W3:-90}  # W3's conversations are 2 x 1,024 output tokens
PORT_BASE=${PORT_BASE:-8100}  # engine k (from 0) listens on PORT_BASE + 100 k
PROXY_PORT=${PROXY_PORT:-10001}
PROXY=http://127.0.0.1:$PROXY_PORT
RATE_SCALE=${RATE_SCALE:-1}   # dry runs on sims scale every rate down
STATES=()

step() { echo "=== $(date -u +%H:%M:%S) $*"; }

fail() {
  step "FAILED: $*"
  local state
  for state in "${STATES[@]}"; do [ -f "$state" ] && $PY -m ppd down --state "$state" > /dev/null 2>&1; done
  exit 1
}

# shellcheck source=install-bundle.sh
source "$(dirname "${BASH_SOURCE[0]}")/install-bundle.sh"

install_and_enter() {  # TEXT [PROBE COMMAND...]
  if [ "$BACKEND" = vllm ] && [ "${SKIP_INSTALL:-0}" != 1 ]; then
    step "install ($1)"
    shift
    [ "${SKIP_PROBES:-0}" = 1 ] && set --  # the probes ran in an earlier session
    install_bundle "$@" || fail "install"
    cd /opt/ppd || fail "no /opt/ppd"
    export PYTHONPATH=/opt/ppd/src
  fi
  export PPD_GIT_COMMIT=${PPD_GIT_COMMIT:-$(cat /opt/ppd/COMMIT 2>/dev/null || git rev-parse --short HEAD)}
}

SIM_ENGINE_ARGS=(--sim-arg=--profile=h200-llama3.1-8b --sim-arg=--max-num-seqs=1024 --sim-arg=--kv-cache-tokens=839648)

SITE=${SITE:-/opt/site}     # vLLM's site-packages (install-bundle.sh puts it there)
MODEL_DIR=${MODEL_DIR:-/opt/model}
VLLM_ENGINE_ARGS=(--model "$MODEL_DIR" --load-format dummy --env "PYTHONPATH=$SITE" --env VLLM_USE_FLASHINFER_SAMPLER=0)

sim_engine_args() { echo "${SIM_ENGINE_ARGS[@]}"; }
vllm_engine_args() { echo "${VLLM_ENGINE_ARGS[@]}"; }

scaled() {  # RATES: each rate x RATE_SCALE, comma-separated
  $PY -c 'import sys; print(",".join(f"{float(r) * float(sys.argv[2]):g}" for r in sys.argv[1].split(",")))' "$1" "$RATE_SCALE"
}

scrape() {  # NAME URL...
  local name=$1 url; shift
  mkdir -p "$OUT_DIR/metrics"
  for url in "$@"; do curl -s -m 10 "$url/metrics" > "$OUT_DIR/metrics/$name-${url##*:}.prom"; done
}

engine_url() {  # K: the URL of engine K (from 0)
  echo "http://127.0.0.1:$((PORT_BASE + 100 * $1))"
}

drain_s() {  # WORKLOAD: its drain timeout
  if [ "$1" = W3 ]; then echo "$DRAIN_S_W3"; else echo "$DRAIN_S"; fi
}

bench_point() {  # SET WORKLOAD RATE MODES TTFT_MS TPOT_MS DRAIN_S [more ppd bench args]
  local set=$1 workload=$2 rate=$3 modes=$4 ttft_ms=$5 tpot_ms=$6 drain_s=$7; shift 7
  local tag="$set-q$rate" started rc
  step "bench $set $workload $rate/s modes $modes x $RUNS runs"
  scrape "$tag-before" "${ENGINES[@]}"
  started=$(date +%s.%N)
  local load=(--qps "$rate")
  case $workload in
    mooncake:* | azure:*) load=(--rate "$rate") ;;
    *) load+=(--duration "$DURATION_S") ;;
  esac
  $PY -m ppd bench --url "$PROXY" --workload "$workload" "${load[@]}" --runs "$RUNS" --modes "$modes" \
    --warmup-s "$WARMUP_S" --seed 0 --temperature 0 --slo-ttft-ms "$ttft_ms" --slo-tpot-ms "$tpot_ms" \
    --drain-timeout-s "$drain_s" --output "$OUT_DIR/results" --name "$set" --append --quiet "$@"
  rc=$?
  scrape "$tag-after" "${ENGINES[@]}"
  $PY -c 'import json, sys, time; print(json.dumps({"set": sys.argv[1], "workload": sys.argv[2], "rate": float(sys.argv[3]), "modes": sys.argv[4], "runs": int(sys.argv[5]), "exit": int(sys.argv[6]), "wall_s": round(time.time() - float(sys.argv[7]), 1)}))' \
    "$set" "$workload" "$rate" "$modes" "$RUNS" "$rc" "$started" | tee -a "$OUT_DIR/points.jsonl"
}

kv_probe() {  # TAG PREFILL_URL DECODE_URL
  step "kv probe $1: $2 -> $3"
  $PY tools/kv_probe.py --prefill "$2" --decode "$3" --lengths "${KV_LENGTHS:-512,4096,8192}" \
    --repeats "${KV_REPEATS:-3}" --tag "$1" > "$OUT_DIR/kv_probe-$1.jsonl" || echo "kv probe exit $?"
  $PY - "$OUT_DIR/kv_probe-$1.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    row = json.loads(line)
    if row["what"] == "pd_turn1":
        print(f"  {row['length']:>5} tokens: P {row.get('prefill_ms')} ms, D ttft {row.get('decode_ttft_ms')} ms, "
              f"{row.get('num_remote_blocks')} blocks")
PY
}

pack_logs() {  # NAME DIR
  local log
  mkdir -p "$OUT_DIR/logs"
  for log in "$2"/*.log; do [ -f "$log" ] && gzip -c "$log" > "$OUT_DIR/logs/$1-$(basename "$log").gz"; done
}
