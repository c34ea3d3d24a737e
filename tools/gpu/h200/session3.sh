#!/bin/bash
# The third one-H200 session of results/h200-vllm0.25.1-single/ (pair-zcopy/, api-fine/): run once in
# the background on the GPU host (kind nvidia-h200) from the project root, after the bundle chunks are
# staged in /opt/stage; results go to /opt/out (tools/gpu/h200/wait.sh packs them into $OUT).
#
#   PPD_GIT_COMMIT=<hash> setsid bash tools/gpu/h200/session3.sh > /opt/out/session.log 2>&1 < /dev/null &
#
# Steps, each logged with its UTC start time:
#   install   the bundle -> /opt/site, the model -> /opt/model (as session.sh);
#   pair      two kv_both instances on GPU 0 (ppd up --instances-per-gpu 2, 0.42 each) with
#             UCX_CUDA_IPC_ENABLE_GET_ZCOPY=y: the second session found UCX disables cuda_ipc's get
#             zcopy when it sees no NVLink, so reads between two processes on one GPU fell back to TCP
#             loopback (~0.35 GB/s); tools/nixl_pair.py with it set was ~9x faster. Here it goes
#             through vLLM's NixlConnector: tools/kv_probe.py at 512/4096/8192 tokens, then W1 through
#             the proxy in pd, ppd, replication, auto at 2/s (session.sh's exact flags, to set beside
#             its TCP-loopback run) and at 8/s;
#   single    one instance with the whole GPU (session.sh's flags), then tools/api_probe.py at 128, 160,
#             192, 224 and 256 background streams (streams only, and 8 intakes/s): where the one
#             API-server process stops keeping pace, and its CPU per streamed token on either side;
#             then W3 at 7 and 8/s (the point where the real server's backlog grew to seconds and the
#             model's did not), and W3 8/s again if MORE=1.
# This is the record of what ran on 2026-12-02 (commit 1e1593f), kept as it ran: it passes
# UCX_CUDA_IPC_ENABLE_GET_ZCOPY=y itself (ppd up now sets it for instances sharing a GPU), carries its
# own install lines, and does not stop when the instance's pid is missing. A new session should source
# tools/gpu/install-bundle.sh and tools/gpu/sweep-lib.sh instead (as h200x2/ and h200x4/ do).
# BACKEND=sim (dry runs here, no GPU): skip install, run the same steps on `ppd sim` engines with
# BENCH_S seconds per point.
set -uo pipefail
OUT_DIR=${OUT_DIR:-/opt/out}
LOGS=${LOGS:-/opt/logs}
BACKEND=${BACKEND:-vllm}
BENCH_S=${BENCH_S:-30}
mkdir -p "$OUT_DIR"/results "$OUT_DIR"/metrics "$OUT_DIR"/logs "$LOGS"
step() { echo "=== $(date -u +%H:%M:%S) $*"; }
fail() { step "FAILED: $*"; exit 1; }
export PYTHONUNBUFFERED=1
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
PY=${PY:-python3}
export PPD_GIT_COMMIT=${PPD_GIT_COMMIT:-unknown}

if [ "$BACKEND" = vllm ]; then
  step "install"
  nvidia-smi > "$OUT_DIR/logs/nvidia-smi.txt" 2>&1
  site_bytes=$(cat .gpu/site_bytes) || fail "no .gpu/site_bytes"
  cat $(ls /opt/stage/c* | sort -V) > /opt/stage/bundle || fail "bundle chunks missing"
  echo "bundle sha256 $(sha256sum /opt/stage/bundle | cut -c1-16), $(stat -c %s /opt/stage/bundle) bytes"
  mkdir -p /opt/site /opt/model
  head -c "$site_bytes" /opt/stage/bundle | xz -d -T0 | tar -x -C /opt/site || fail "site unpack"
  tail -c +$((site_bytes + 1)) /opt/stage/bundle | xz -d | tar -x -C /opt/site || fail "nixl unpack"
  rm -rf /opt/ppd && mkdir -p /opt/ppd && cp -a src tools benchmarks pyproject.toml /opt/ppd/
  echo "$PPD_GIT_COMMIT" > /opt/ppd/COMMIT
  python3 .gpu/make-model.py /opt/model .gpu/llama-3.1-8b-config.json > "$OUT_DIR/logs/make-model.log" 2>&1 \
    || fail "model"
  PYTHONPATH=/opt/site python3 -c "import vllm, nixl; print('vllm', vllm.__version__, 'nixl ok')" || fail "import vllm"
  cd /opt/ppd || fail "no /opt/ppd"
  export PYTHONPATH=/opt/ppd/src
  VLLM=(--backend vllm --model /opt/model --load-format dummy --env PYTHONPATH=/opt/site
    --env VLLM_USE_FLASHINFER_SAMPLER=0)
else
  VLLM=(--backend sim --sim-arg=--profile=h200-llama3.1-8b)
fi

bench() {  # URL SET WORKLOAD QPS [more ppd bench args]
  local url=$1 set=$2 workload=$3 qps=$4; shift 4
  step "bench $set $workload $qps/s"
  $PY -m ppd bench --url "$url" --workload "$workload" --qps "$qps" --duration "$BENCH_S" --runs 1 \
    --warmup-s 0 --seed 0 --temperature 0 --output "$OUT_DIR/results" --name "$set-${workload,,}" --append \
    --quiet "$@" || echo "bench exit $?"
}

# --- pair: two instances on GPU 0, NIXL over cuda_ipc zero-copy gets
step "pair: ppd up 1p1d on GPU 0 (--instances-per-gpu 2, 0.42 each), UCX_CUDA_IPC_ENABLE_GET_ZCOPY=y"
PAIR_ENV=()
[ "$BACKEND" = vllm ] && PAIR_ENV=(--env UCX_CUDA_IPC_ENABLE_GET_ZCOPY=y --env UCX_PROTO_INFO=y)
$PY -m ppd up "${VLLM[@]}" --topology 1p1d --instances-per-gpu 2 --gpu-memory-utilization 0.42 --gpus 0 \
  --max-model-len 16384 "${PAIR_ENV[@]}" --logs "$LOGS/pair" --state /opt/pair.json --mode pd 2>&1 \
  | tee "$OUT_DIR/logs/pair-up.log"
if grep -q "All servers ready" "$OUT_DIR/logs/pair-up.log"; then
  step "pair: kv probe"
  $PY tools/kv_probe.py --prefill http://127.0.0.1:8100 --decode http://127.0.0.1:8200 \
    --lengths 512,4096,8192 --repeats 2 --tag pair-zcopy > "$OUT_DIR/pair_kv_probe.jsonl" || echo "kv probe exit $?"
  step "pair: W1 2/s (15 s) and 8/s through the proxy, pd ppd replication auto"
  BENCH_S=15 bench http://127.0.0.1:10001 h200-pair-zcopy-e2e W1 2 --modes pd,ppd,replication,auto
  bench http://127.0.0.1:10001 h200-pair-zcopy W1 8 --modes pd,ppd,replication,auto
  grep -h "UCX\|ucp_get\|cuda_ipc\|zcopy" "$LOGS"/pair/*.log | sort | uniq -c | sort -rn | head -40 \
    > "$OUT_DIR/logs/pair-ucx-lines.txt"
else
  step "pair did not start"
fi
$PY -m ppd down --state /opt/pair.json
for log in "$LOGS"/pair/*.log; do [ -f "$log" ] && gzip -c "$log" > "$OUT_DIR/logs/pair-$(basename "$log").gz"; done
[ "${SKIP_SINGLE:-0}" = 1 ] && { step "DONE (single skipped)"; exit 0; }

# --- single: the whole GPU, the API server's knee
step "single: ppd up (1 replica, no proxy)"
SINGLE=(--max-model-len 40960)
[ "$BACKEND" = sim ] && SINGLE+=(--sim-arg=--max-num-seqs=1024)
$PY -m ppd up "${VLLM[@]}" --topology 1r --no-proxy --gpus 0 "${SINGLE[@]}" --logs "$LOGS/single" \
  --state /opt/single.json || fail "single instance did not start"
ENGINE=http://127.0.0.1:8100
API_PID=$($PY -c "import json, sys; print(json.load(open(sys.argv[1]))['processes'][0]['pid'])" /opt/single.json)
PIDS="api=$API_PID"
for child in $(pgrep -P "$API_PID"); do PIDS+=",child$child=$child"; done
echo "pids: $PIDS"
step "api probe: 128..256 streams"
$PY tools/api_probe.py --url "$ENGINE" --out "$OUT_DIR/api_probe_fine.jsonl" --streams "${API_STREAMS:-128,160,192,224,256}" \
  --rates "${API_RATES:-8}" --cell-s "${API_CELL_S:-5}" --pids "$PIDS" || echo "api probe exit $?"
for qps in 7 8; do
  curl -s "$ENGINE/metrics" > "$OUT_DIR/metrics/w3-q$qps-before.prom"
  bench "$ENGINE" h200-s3 W3 "$qps" --drain-timeout-s 90
  curl -s "$ENGINE/metrics" > "$OUT_DIR/metrics/w3-q$qps-after.prom"
done
[ "${MORE:-0}" = 1 ] && bench "$ENGINE" h200-s3-again W3 8 --drain-timeout-s 90
$PY -m ppd down --state /opt/single.json
gzip -c "$LOGS"/single/worker0.log > "$OUT_DIR/logs/single-worker0.log.gz" 2>/dev/null
step "DONE"
