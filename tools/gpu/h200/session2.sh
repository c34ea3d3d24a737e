#!/bin/bash
# The second one-H200 session of results/h200-vllm0.25.1-single/ (api/ and rerun/): measurements that
# isolate vLLM's API server. Run once in the background on the GPU host (kind nvidia-h200) from the
# project root, after the bundle chunks are staged in /opt/stage (the README there: "How it was
# produced"); results go to /opt/out (tools/gpu/h200/wait.sh packs them into $OUT).
#
#   PPD_GIT_COMMIT=<hash> setsid bash tools/gpu/h200/session2.sh > /opt/out/session.log 2>&1 < /dev/null &
#
# Steps, each logged with its UTC start time:
#   install   the bundle -> /opt/site, the model -> /opt/model (as session.sh); meanwhile two cheap NIXL
#             pair runs on the GPU: UCX_TLS=cuda_ipc,cuda_copy (no TCP to fall back on) and UCX's
#             debug log of the default setting, to see why cuda_ipc is never chosen on one GPU;
#   up        one vLLM instance as in session.sh (ppd up, 1 replica, no proxy);
#   api       tools/api_probe.py: background streams 0/32/128/256 x intake rates 0/2/8/16/32 per s,
#             with the API server's and engine core's CPU seconds per cell;
#   rerun     the API-bound loaded points again with session.sh's exact flags: W3 8 and 6/s, W1 16 and
#             12/s (then W1 8 and W3 4 if RERUN_MORE=1), the API server's CPU seconds per point;
#   api4      (API4=1, the default) the same instance with `--api-server-count 4`: W3 8/s, W1 16/s and
#             the 256-stream group again. If the delay is the one API-server process, it goes away.
# ENGINE_ONLY=1 (dry runs here): skip install and the NIXL runs; BACKEND=sim runs the same steps on
# `ppd sim` engines (no vLLM, no GPU).
set -uo pipefail
OUT_DIR=${OUT_DIR:-/opt/out}
LOGS=${LOGS:-/opt/logs}
BACKEND=${BACKEND:-vllm}
mkdir -p "$OUT_DIR"/results "$OUT_DIR"/metrics "$OUT_DIR"/logs "$LOGS"
step() { echo "=== $(date -u +%H:%M:%S) $*"; }
fail() { step "FAILED: $*"; exit 1; }
export PYTHONUNBUFFERED=1
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
PY=${PY:-python3}

if [ "${ENGINE_ONLY:-0}" != 1 ]; then
  step "install"
  nvidia-smi > "$OUT_DIR/logs/nvidia-smi.txt" 2>&1
  site_bytes=$(cat .gpu/site_bytes) || fail "no .gpu/site_bytes"
  cat /opt/stage/c? > /opt/stage/bundle || fail "bundle chunks missing"
  echo "bundle sha256 $(sha256sum /opt/stage/bundle | cut -c1-16), site bytes $site_bytes"
  mkdir -p /opt/site /opt/nixl /opt/model
  tail -c +$((site_bytes + 1)) /opt/stage/bundle | xz -d | tar -x -C /opt/nixl || fail "nixl unpack"
  rm -rf /opt/ppd && mkdir -p /opt/ppd && cp -a src tools benchmarks pyproject.toml /opt/ppd/
  echo "${PPD_GIT_COMMIT:-unknown}" > /opt/ppd/COMMIT
  (
    cd /opt/ppd || exit 1
    echo "--- nixl_pair ipc-copy-only UCX_TLS=cuda_ipc,cuda_copy" >&2
    UCX_TLS=cuda_ipc,cuda_copy UCX_PROTO_INFO=y PYTHONPATH=/opt/nixl timeout 60 python3 tools/nixl_pair.py \
      --label ipc-copy-only --tokens 512 --repeats 2
    echo "--- nixl_pair default with UCX_LOG_LEVEL=debug (lines naming cuda_ipc)" >&2
    UCX_LOG_LEVEL=debug PYTHONPATH=/opt/nixl timeout 60 python3 tools/nixl_pair.py \
      --label default-debug --tokens 512 --repeats 1 2> >(grep -i "cuda_ipc\|reachab\|same dev" | head -3000 >&2)
  ) > "$OUT_DIR/nixl_pair2.jsonl" 2> "$OUT_DIR/logs/nixl_pair2.log" &
  nixl_pid=$!
  head -c "$site_bytes" /opt/stage/bundle | xz -d -T0 | tar -x -C /opt/site || fail "site unpack"
  cp -a /opt/nixl/. /opt/site/
  python3 .gpu/make-model.py /opt/model .gpu/llama-3.1-8b-config.json > "$OUT_DIR/logs/make-model.log" 2>&1 \
    || fail "model"
  PYTHONPATH=/opt/site python3 -c "import vllm, nixl; print('vllm', vllm.__version__, 'nixl ok')" || fail "import vllm"
  step "waiting for the NIXL pair runs"
  wait $nixl_pid; echo "nixl_pair exit $?"; cut -c1-300 "$OUT_DIR/nixl_pair2.jsonl"
  cd /opt/ppd || fail "no /opt/ppd"
  export PYTHONPATH=/opt/ppd/src
fi
export PPD_GIT_COMMIT=${PPD_GIT_COMMIT:-unknown}
PORT=${PORT:-8100}
ENGINE=http://127.0.0.1:$PORT
STATE=${STATE:-/opt/single.json}

up() {  # NAME [more ppd up args]
  local name=$1; shift
  step "up: $name"
  if [ "$BACKEND" = sim ]; then
    $PY -m ppd up --backend sim --topology 1r --no-proxy --port-base "$PORT" --logs "$LOGS/$name" \
      --state "$STATE" --sim-arg=--profile=h200-llama3.1-8b --sim-arg=--max-num-seqs=1024 \
      --max-model-len 40960 "$@" || fail "$name did not start"
  else
    $PY -m ppd up --backend vllm --topology 1r --model /opt/model --load-format dummy --max-model-len 40960 \
      --env PYTHONPATH=/opt/site --env VLLM_USE_FLASHINFER_SAMPLER=0 --logs "$LOGS/$name" --state "$STATE" \
      --no-proxy --gpus 0 --port-base "$PORT" "$@" \
      || { cp "$LOGS/$name"/*.log "$OUT_DIR/logs/" 2>/dev/null; fail "$name did not start"; }
  fi
  # The API server is the process ppd up started (its state file's pid); the engine core (and, with
  # --api-server-count, the API server processes) are its children.
  API_PID=$($PY -c "import json, sys; print(json.load(open(sys.argv[1]))['processes'][0]['pid'])" "$STATE")
  PIDS="api=$API_PID"
  for child in $(pgrep -P "$API_PID"); do PIDS+=",child$child=$child"; done
  ps -o pid,ppid,pcpu,rss,args --ppid "$API_PID" -p "$API_PID" | cut -c1-200
  echo "pids: $PIDS"
}

down() {  # NAME
  $PY -m ppd down --state "$STATE"
  for log in "$LOGS/$1"/*.log; do [ -f "$log" ] && gzip -c "$log" > "$OUT_DIR/logs/$1-$(basename "$log").gz"; done
}

cpu_snapshot() {  # {name: utime+stime s} of the processes in $PIDS, as JSON
  $PY - "$PIDS" <<'PY'
import json, os, sys
hz = os.sysconf("SC_CLK_TCK")
out = {}
for item in sys.argv[1].split(","):
    name, _, pid = item.partition("=")
    try:
        rest = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        continue
    out[name] = (int(rest[11]) + int(rest[12])) / hz
print(json.dumps(out))
PY
}

bench_point() {  # SET WORKLOAD QPS [more ppd bench args]: session.sh's exact flags
  local set=$1 workload=$2 qps=$3; shift 3
  step "bench $set $workload $qps/s"
  curl -s "$ENGINE/metrics" > "$OUT_DIR/metrics/$set-${workload,,}-q$qps-before.prom"
  local cpu0 t0; cpu0=$(cpu_snapshot); t0=$(date +%s.%N)
  $PY -m ppd bench --url "$ENGINE" --workload "$workload" --qps "$qps" --duration "${BENCH_S:-30}" --runs 1 \
    --warmup-s 0 --seed 0 --temperature 0 --output "$OUT_DIR/results" --name "$set-${workload,,}" --append \
    --quiet "$@" || echo "bench exit $?"
  # CPU seconds of each vLLM process over the point (bench run + drain), one JSON line per point.
  $PY -c 'import json, sys, time; a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2]); print(json.dumps({"set": sys.argv[3], "workload": sys.argv[4], "qps": float(sys.argv[5]), "wall_s": round(time.time() - float(sys.argv[6]), 3), "cpu_s": {k: round(b[k] - a[k], 2) for k in b if k in a}}))' \
    "$cpu0" "$(cpu_snapshot)" "$set" "$workload" "$qps" "$t0" | tee -a "$OUT_DIR/cpu.jsonl"
  curl -s "$ENGINE/metrics" > "$OUT_DIR/metrics/$set-${workload,,}-q$qps-after.prom"
}

up single
step "api probe"
$PY tools/api_probe.py --url "$ENGINE" --out "$OUT_DIR/api_probe.jsonl" --streams "${API_STREAMS:-0,32,128,256}" \
  --rates "${API_RATES:-2,8,16,32}" --cell-s "${API_CELL_S:-5}" --pids "$PIDS" || echo "api probe exit $?"

step "rerun"
bench_point rerun W3 8 --drain-timeout-s 90
bench_point rerun W1 16
bench_point rerun W1 12
bench_point rerun W3 6 --drain-timeout-s 90
if [ "${RERUN_MORE:-0}" = 1 ]; then
  bench_point rerun W1 8
  bench_point rerun W3 4 --drain-timeout-s 90
fi
down single
step "rerun done"
[ "${API4:-1}" = 1 ] || { step "DONE"; exit 0; }

if [ "$BACKEND" = sim ]; then up api4; else up api4 --vllm-arg=--api-server-count=4; fi
bench_point api4 W3 8 --drain-timeout-s 90
bench_point api4 W1 16
step "api probe (4 API servers)"
$PY tools/api_probe.py --url "$ENGINE" --out "$OUT_DIR/api_probe-api4.jsonl" --streams 256 --rates 8,32 \
  --cell-s "${API_CELL_S:-5}" --pids "$PIDS" || echo "api probe exit $?"
down api4
step "DONE"
