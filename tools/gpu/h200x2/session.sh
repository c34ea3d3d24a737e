#!/bin/bash
# Issue 16's sweep on two H200s (kind nvidia-h200-x2): one 1P1D kv_both pair serves pd, ppd,
# replication (the pair as 2 replicas) and auto; W1-W4 x 6 rates x 4 modes x RUNS runs of DURATION_S
# (WARMUP_S excluded), greedy, through the proxy; the NIXL pull cost between the two GPUs re-measured
# (tools/nixl_pair.py on the bare GPUs, tools/kv_probe.py through vLLM). Results go to $OUT_DIR
# (/opt/out; tools/gpu/h200/wait.sh packs it into $OUT). The fleet's prediction of the same sweep:
# results/h200x2-vllm0.25.1-nixl/fleet-prediction/ (same rates, windows, runs, seeds and SLOs).
#
# On the GPU host, from the project root, after the bundle chunks are staged in /opt/stage
# (results/h200x2-vllm0.25.1-nixl/README.md: "Device plan"):
#   PPD_GIT_COMMIT=<hash> [WORKLOADS="W1"] [RATES_W1=2,4] setsid bash tools/gpu/h200x2/session.sh \
#     > /opt/out/session.log 2>&1 < /dev/null &
#
# One device session (30 minutes of device time) holds only part of the sweep, so each session names
# its part: WORKLOADS (default "W1 W2 W3 W4") and RATES_<W> (default: the whole ladder below);
# SESSION_TAG is appended to the result sets' names (h200x2-w1<tag>) so the parts merge without
# clashing. SKIP_PROBES=1 skips the NIXL measurements (done once, in the first session).
#
# BACKEND=sim is the dry run on this machine: the same steps on `ppd sim` engines (the h200 profile,
# configured as the GPU's vLLM), no install, no nixl_pair; with e.g. RATE_SCALE=0.1 DURATION_S=8
# WARMUP_S=2 DRAIN_S=20 OUT_DIR=/tmp/x2 LOGS=/tmp/x2/logs it runs in minutes.
set -uo pipefail
source "$(dirname "$0")/../sweep-lib.sh"  # BACKEND, OUT_DIR, LOGS, PY defaults; exports; install_bundle

# Rates (conversations/s), light -> past saturation of every mode, from the fleet's prediction
# (results/h200x2-vllm0.25.1-nixl/fleet-prediction/); TTFT SLOs as results/plan-8gpu (TPOT 25 ms).
declare -A RATES=([W1]=4,8,16,24,32,40 [W2]=1,2,3,4.5,6.5,9 [W3]=2,4,6,8,12,16 [W4]=0.5,1,1.5,2,3,4)
declare -A TTFT_MS=([W1]=500 [W2]=1000 [W3]=500 [W4]=2000)
WORKLOADS=${WORKLOADS:-W1 W2 W3 W4}
P_URL=$(engine_url 0) D_URL=$(engine_url 1)
ENGINES=("$P_URL" "$D_URL")
STATE=${STATE:-/opt/x2.json}
[ "$BACKEND" = sim ] && STATE=$OUT_DIR/x2.json

nixl_pairs() {  # GPU 0 reads GPU 1's blocks, UCX's choice and cuda_ipc only (NVLink)
  local label tls
  for label in default cuda_ipc; do
    if [ "$label" = cuda_ipc ]; then tls=cuda_ipc,cuda_copy; export UCX_TLS=$tls; else tls=""; unset UCX_TLS; fi
    echo "--- nixl_pair $label UCX_TLS=${tls:-(unset)}" >&2
    UCX_PROTO_INFO=y PYTHONPATH=/opt/nixl timeout 120 python3 tools/nixl_pair.py \
      --label "gpu0-gpu1-$label" --gpus 0,1 --tokens 512,4096,8192 --repeats 3
  done > "$OUT_DIR/nixl_pair.jsonl" 2> "$OUT_DIR/logs/nixl_pair.log"
}
install_and_enter "NIXL between the GPUs measured meanwhile" nixl_pairs

step "up: 1p1d kv_both on GPUs 0 and 1 ($BACKEND)"
if [ "$BACKEND" = sim ]; then
  $PY -m ppd up --backend sim --topology 1p1d --port-base "$PORT_BASE" --proxy-port "$PROXY_PORT" \
    --max-model-len 32768 "${SIM_ENGINE_ARGS[@]}" --mode pd \
    --logs "$LOGS/pair" --state "$STATE" || fail "pair did not start"
else
  $PY -m ppd up --backend vllm --topology 1p1d --gpus 0,1 --port-base "$PORT_BASE" --proxy-port "$PROXY_PORT" \
    --max-model-len 32768 "${VLLM_ENGINE_ARGS[@]}" --mode pd \
    --logs "$LOGS/pair" --state "$STATE" 2>&1 | tee "$OUT_DIR/logs/pair-up.log"
  grep -q "All servers ready" "$OUT_DIR/logs/pair-up.log" || { pack_logs pair "$LOGS/pair"; fail "pair did not start"; }
fi
STATES+=("$STATE")

[ "${SKIP_PROBES:-0}" = 1 ] || kv_probe h200x2 "$P_URL" "$D_URL"

for w in $WORKLOADS; do
  rates_var=RATES_$w
  for rate in $(scaled "${!rates_var:-${RATES[$w]}}" | tr , ' '); do
    bench_point "h200x2-${w,,}${SESSION_TAG:-}" "$w" "$rate" pd,ppd,replication,auto "${TTFT_MS[$w]}" 25 "$(drain_s "$w")"
  done
done

step "down"
$PY -m ppd down --state "$STATE" > /dev/null
pack_logs pair "$LOGS/pair"
step "DONE"
