#!/bin/bash
# Issue 17's runs on four H200s (kind nvidia-h200-x4): the deployments `ppd plan --gpus 4` ranked in
# results/h200x4-vllm0.25.1-nixl/prediction/ (4r: replication, auto; 1p3d, 2p2d, 3p1d: pd, ppd, auto),
# measured on real vLLM at the loads chosen from that prediction, W1-W4 and the Mooncake slice, RUNS
# runs of DURATION_S (WARMUP_S excluded), greedy. Results go to $OUT_DIR (/opt/out; tools/gpu/h200/wait.sh
# packs it into $OUT).
#
# The four vLLM instances (kv_both, one per GPU, --max-model-len 131072 for the trace) start once,
# as `ppd up --topology 4r --no-proxy`; every topology is then only a proxy over them: `ppd up
# --topology <toml> --only-host 127.0.0.1`, where the TOML names the running engines (as host
# "localhost") in the topology's roles, so ppd up waits for them, warms each P->D pair with NIXL
# handshakes and starts `ppd proxy`. A proxy is started per (topology, workload), with that workload's
# SLOs as auto's routing targets (as the plan simulated auto). The bench salts its prompts per
# invocation, so no run finds another run's prompts in the prefix caches.
#
# On the GPU host, from the project root, after the bundle chunks are staged in /opt/stage:
#   PPD_GIT_COMMIT=<hash> [TOPOLOGIES="4r 2p2d"] [WORKLOADS="W1 W2"] [LOADS_W1=8,16,24] \
#     setsid bash tools/gpu/h200x4/session.sh > /opt/out/session.log 2>&1 < /dev/null &
#
# One 30-minute device session holds only part of it (results/h200x4-vllm0.25.1-nixl/README.md,
# "Device plan"): TOPOLOGIES, WORKLOADS and LOADS_<W> pick the part, SESSION_TAG suffixes the result
# sets, SKIP_PROBES=1 skips the NIXL measurements (done once, in the first session), MODES narrows
# the modes (a split of one topology's point over two sessions).
# BACKEND=sim is the dry run on this machine (`ppd sim` engines with the h200 profile; e.g.
# RATE_SCALE=0.1 DURATION_S=8 WARMUP_S=2 DRAIN_S=20 WINDOW=0:20 OUT_DIR=/tmp/x4 LOGS=/tmp/x4/logs).
set -uo pipefail
source "$(dirname "$0")/../sweep-lib.sh"  # BACKEND, OUT_DIR, LOGS, PY defaults; exports; install_bundle

# Loads per workload (conversations/s; the trace: requests/s), the same for every deployment, from the
# prediction (README: why these); SLOs as the prediction's.
declare -A LOADS=([W1]=24,40,52 [W2]=4.5,8,10.5 [W3]=10,16,24 [W4]=2,3.5,5 [mooncake]=2.5)
declare -A TTFT_MS=([W1]=500 [W2]=1000 [W3]=500 [W4]=2000 [mooncake]=5000)
declare -A TPOT_MS=([W1]=25 [W2]=25 [W3]=25 [W4]=25 [mooncake]=100)
MOONCAKE=mooncake:data/traces/mooncake-conversation_trace.jsonl.gz
WINDOW=${WINDOW:-0:120}  # 339 requests (prediction/mooncake120; the 0:300 slice's 918 take 5+ min a run)
TOPOLOGIES=${TOPOLOGIES:-4r 1p3d 2p2d 3p1d}
WORKLOADS=${WORKLOADS:-W1 W2 W3 W4 mooncake}
ENGINES=("$(engine_url 0)" "$(engine_url 1)" "$(engine_url 2)" "$(engine_url 3)")
STATE=${STATE:-/opt/x4-engines.json}
PROXY_STATE=${PROXY_STATE:-/opt/x4-proxy.json}
if [ "$BACKEND" = sim ]; then STATE=$OUT_DIR/x4-engines.json PROXY_STATE=$OUT_DIR/x4-proxy.json; fi

nixl_pairs() {  # UCX's own choice of transport, as vLLM's NixlConnector gets it
  local target
  for target in 1 2 3; do
    echo "--- nixl_pair gpu0-gpu$target" >&2
    UCX_PROTO_INFO=y PYTHONPATH=/opt/nixl timeout 120 python3 tools/nixl_pair.py \
      --label "gpu0-gpu$target" --gpus "0,$target" --tokens 512,4096,8192 --repeats 3
  done > "$OUT_DIR/nixl_pair.jsonl" 2> "$OUT_DIR/logs/nixl_pair.log"
}
install_and_enter "NIXL from GPU 0 to GPUs 1-3 measured meanwhile" nixl_pairs

step "up: 4 kv_both engines, one per GPU ($BACKEND)"
if [ "$BACKEND" = sim ]; then
  $PY -m ppd up --backend sim --topology 4r --no-proxy --port-base "$PORT_BASE" --max-model-len 131072 \
    "${SIM_ENGINE_ARGS[@]}" --logs "$LOGS/engines" --state "$STATE" || fail "engines did not start"
else
  $PY -m ppd up --backend vllm --topology 4r --no-proxy --gpus 0,1,2,3 --port-base "$PORT_BASE" \
    --max-model-len 131072 "${VLLM_ENGINE_ARGS[@]}" --logs "$LOGS/engines" --state "$STATE" 2>&1 \
    | tee "$OUT_DIR/logs/engines-up.log"
  grep -q "All servers ready" "$OUT_DIR/logs/engines-up.log" || { pack_logs engines "$LOGS/engines"; fail "engines did not start"; }
fi
STATES+=("$PROXY_STATE" "$STATE")  # fail() stops the proxy first, then the engines

[ "${SKIP_PROBES:-0}" = 1 ] || kv_probe h200x4-gpu0-gpu1 "${ENGINES[0]}" "${ENGINES[1]}"

topology_toml() {  # SPEC: the running engines in SPEC's roles (xPyD: the first x are P), as TOML
  local spec=$1 num_prefill=0 k role
  [[ $spec =~ ^([0-9]+)p([0-9]+)d$ ]] && num_prefill=${BASH_REMATCH[1]}
  printf '[proxy]\nhost = "127.0.0.1"\nport = %d\n' "$PROXY_PORT"
  for k in 0 1 2 3; do
    if [[ $spec == *r ]]; then role=replica; elif [ "$k" -lt "$num_prefill" ]; then role=prefill; else role=decode; fi
    printf '\n[[instance]]\nhost = "localhost"\nport = %d\nrole = "%s"\n' "$((PORT_BASE + 100 * k))" "$role"
  done
}

proxy_up() {  # SPEC MODE TTFT_MS TPOT_MS: a proxy over the engines in SPEC's roles, auto aiming at the SLOs
  local spec=$1 mode=$2 ttft_ms=$3 tpot_ms=$4 toml="$OUT_DIR/logs/topology-$1.toml" log="$OUT_DIR/logs/proxy-up-$1.log"
  topology_toml "$spec" > "$toml"
  step "proxy: $spec ($mode first), auto's SLOs TTFT $ttft_ms ms TPOT $tpot_ms ms"
  # --backend vllm validates --model and the GPUs even when it starts no engine here.
  local backend_args=(--backend "$BACKEND")
  [ "$BACKEND" = vllm ] && backend_args+=(--model "$MODEL_DIR" --gpus 0,1,2,3)
  $PY -m ppd up "${backend_args[@]}" --topology "$toml" --only-host 127.0.0.1 --mode "$mode" \
    --proxy-arg=--slo-ttft-ms="$ttft_ms" --proxy-arg=--slo-tpot-ms="$tpot_ms" \
    --logs "$LOGS/proxy-$spec" --state "$PROXY_STATE" > "$log" 2>&1
  grep "ms$\|All servers" "$log"  # the warm-up handshakes per P->D pair
  grep -q "All servers ready" "$log" || fail "proxy $spec did not start"
}

proxy_down() {  # SPEC
  $PY -m ppd down --state "$PROXY_STATE" > /dev/null
  pack_logs "proxy-$1-$2" "$LOGS/proxy-$1"
  rm -rf "$LOGS/proxy-$1"
}

for spec in $TOPOLOGIES; do
  if [[ $spec == *r ]]; then modes=${MODES:-replication,auto}; else modes=${MODES:-pd,ppd,auto}; fi
  for w in $WORKLOADS; do
    proxy_up "$spec" "${modes%%,*}" "${TTFT_MS[$w]}" "${TPOT_MS[$w]}"
    loads_var=LOADS_$w
    for rate in $(scaled "${!loads_var:-${LOADS[$w]}}" | tr , ' '); do
      if [ "$w" = mooncake ]; then
        bench_point "h200x4-$spec-mooncake${SESSION_TAG:-}" "$MOONCAKE" "$rate" "$modes" "${TTFT_MS[$w]}" "${TPOT_MS[$w]}" \
          "$DRAIN_S" \
          --window "$WINDOW"
      else
        bench_point "h200x4-$spec-${w,,}${SESSION_TAG:-}" "$w" "$rate" "$modes" "${TTFT_MS[$w]}" "${TPOT_MS[$w]}" \
          "$(drain_s "$w")"
      fi
    done
    proxy_down "$spec" "${w,,}"
  done
done

step "down"
$PY -m ppd down --state "$STATE" > /dev/null
pack_logs engines "$LOGS/engines"
step "DONE"
