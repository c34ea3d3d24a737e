#!/bin/bash
# The whole one-H200 session of results/h200-vllm0.25.1-single/, run once in the background on the
# GPU host (kind nvidia-h200) from the project root, after the bundle chunks are staged in /opt/stage
# (README there: "How it was produced"). Every step is logged with its UTC start time; results go to
# /opt/out (tools/gpu/h200/wait.sh packs them into $OUT).
#
#   PPD_GIT_COMMIT=<hash> setsid bash tools/gpu/h200/session.sh > /opt/out/session.log 2>&1 < /dev/null &
#
# Steps: install (bundle -> /opt/site, model -> /opt/model; NIXL pair tests on the GPU meanwhile);
# one vLLM instance (ppd up, 1 replica, no proxy); idle-engine probes (tools/engine_probe.py);
# loaded runs W1-W4 x 3 rates (ppd bench straight at the instance, greedy, 30 s windows, vLLM's
# /metrics saved around each point); then two instances on the one GPU (ppd up --instances-per-gpu
# 2), the KV probe between them, and one short pd/ppd/replication/auto bench through the proxy.
# Set SKIP_PAIR=1 to stop after the loaded runs.
set -uo pipefail
OUT_DIR=/opt/out
mkdir -p "$OUT_DIR"/results "$OUT_DIR"/metrics "$OUT_DIR"/logs /opt/logs
step() { echo "=== $(date -u +%H:%M:%S) $*"; }
fail() { step "FAILED: $*"; exit 1; }
export PYTHONUNBUFFERED=1
# NVLink multicast off everywhere (the host's GPUs are shared; see the device notes).
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1

step "install"
nvidia-smi > "$OUT_DIR/logs/nvidia-smi.txt" 2>&1
site_bytes=$(cat .gpu/site_bytes) || fail "no .gpu/site_bytes"
cat /opt/stage/c? > /opt/stage/bundle || fail "bundle chunks missing"
echo "bundle sha256 $(sha256sum /opt/stage/bundle | cut -c1-16), site bytes $site_bytes"
mkdir -p /opt/site /opt/nixl /opt/model
tail -c +$((site_bytes + 1)) /opt/stage/bundle | xz -d | tar -x -C /opt/nixl || fail "nixl unpack"
# The ppd snapshot every later step runs (the working tree here is refreshed by each device call).
rm -rf /opt/ppd && mkdir -p /opt/ppd && cp -a src tools benchmarks pyproject.toml /opt/ppd/
echo "${PPD_GIT_COMMIT:-unknown}" > /opt/ppd/COMMIT
export PPD_GIT_COMMIT=${PPD_GIT_COMMIT:-unknown}
(
  cd /opt/ppd || exit 1
  for variant in "default:" "no-cuda-ipc:^cuda_ipc" "ipc-copy-tcp:cuda_ipc,cuda_copy,tcp"; do
    label=${variant%%:*} tls=${variant#*:}
    echo "--- nixl_pair $label UCX_TLS=${tls:-(unset)}" >&2
    if [ -n "$tls" ]; then export UCX_TLS=$tls; else unset UCX_TLS; fi
    UCX_PROTO_INFO=y PYTHONPATH=/opt/nixl timeout 120 python3 tools/nixl_pair.py --label "$label" \
      --tokens 512,8192 --repeats 3
  done
) > "$OUT_DIR/nixl_pair.jsonl" 2> "$OUT_DIR/logs/nixl_pair.log" &
nixl_pid=$!
head -c "$site_bytes" /opt/stage/bundle | xz -d -T0 | tar -x -C /opt/site || fail "site unpack"
cp -a /opt/nixl/. /opt/site/
python3 .gpu/make-model.py /opt/model .gpu/llama-3.1-8b-config.json > "$OUT_DIR/logs/make-model.log" 2>&1 || fail "model"
PYTHONPATH=/opt/site python3 -c "import vllm, nixl; print('vllm', vllm.__version__, 'nixl ok')" || fail "import vllm"
step "waiting for the NIXL pair tests"
wait $nixl_pid; echo "nixl_pair exit $?"; grep -h '"label"' "$OUT_DIR/nixl_pair.jsonl" | cut -c1-300

cd /opt/ppd || fail "no /opt/ppd"
export PYTHONPATH=/opt/ppd/src
VLLM_ENV=(--env PYTHONPATH=/opt/site --env VLLM_USE_FLASHINFER_SAMPLER=0)
step "single instance: ppd up (1 replica, no proxy)"
python3 -m ppd up --backend vllm --topology 1r --model /opt/model --load-format dummy --max-model-len 40960 \
  "${VLLM_ENV[@]}" --logs /opt/logs/single --state /opt/single.json --no-proxy --gpus 0 \
  || { cp /opt/logs/single/*.log "$OUT_DIR/logs/" 2>/dev/null; fail "single instance did not start"; }
grep -h "KV cache\|max_num_seqs\|max_num_batched\|Maximum concurrency\|cudagraph\|CUDA graph" \
  /opt/logs/single/worker0.log | cut -c1-400 | head -20
ENGINE=http://127.0.0.1:8100

step "probes"
python3 tools/engine_probe.py --url $ENGINE --out "$OUT_DIR/probe.jsonl" || echo "probe exit $?"

bench_point() {  # WORKLOAD QPS [more ppd bench args]
  local workload=$1 qps=$2; shift 2
  local name="h200-${workload,,}"
  step "bench $workload $qps/s"
  curl -s $ENGINE/metrics > "$OUT_DIR/metrics/$name-q$qps-before.prom"
  python3 -m ppd bench --url $ENGINE --workload "$workload" --qps "$qps" --duration 30 --runs 1 \
    --warmup-s 0 --seed 0 --temperature 0 --output "$OUT_DIR/results" --name "$name" --append --quiet "$@" \
    || echo "bench exit $?"
  curl -s $ENGINE/metrics > "$OUT_DIR/metrics/$name-q$qps-after.prom"
}
for qps in 4 8 16; do bench_point W1 $qps; done
for qps in 1 2.5 5; do bench_point W2 $qps; done
for qps in 0.5 1.25 2.5; do bench_point W4 $qps; done
for qps in 2 4 8; do bench_point W3 $qps --drain-timeout-s 90; done
step "loaded runs done"
python3 -m ppd down --state /opt/single.json
cp /opt/logs/single/worker0.log "$OUT_DIR/logs/single-worker0.log"
[ "${SKIP_PAIR:-0}" = 1 ] && { step "DONE (pair skipped)"; exit 0; }

# Two kv_both instances on the one GPU. UCX picks NIXL's transport: take the fastest setting the
# pair tests above found for 8,192 tokens (all on the same GPU).
best=$(python3 - "$OUT_DIR/nixl_pair.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
ok = [r for r in rows if r.get("tokens") == 8192 and r.get("arrived")]
print(min(ok, key=lambda r: r["median_ms"])["ucx_tls"] if ok else "(default)")
PY
)
UCX_ENV=(--env UCX_PROTO_INFO=y)
[ "$best" != "(default)" ] && UCX_ENV+=(--env "UCX_TLS=$best")
step "pair: ppd up 1p1d on GPU 0 (--instances-per-gpu 2, 0.42 each), UCX_TLS=$best"
python3 -m ppd up --backend vllm --topology 1p1d --instances-per-gpu 2 --gpu-memory-utilization 0.42 --gpus 0 \
  --model /opt/model --load-format dummy --max-model-len 16384 "${VLLM_ENV[@]}" "${UCX_ENV[@]}" \
  --logs /opt/logs/pair --state /opt/pair.json --mode pd 2>&1 | tee "$OUT_DIR/logs/pair-up.log" \
  || echo "pair up exit $?"
if grep -q "All servers ready" "$OUT_DIR/logs/pair-up.log"; then
  step "pair: kv probe"
  python3 tools/kv_probe.py --prefill http://127.0.0.1:8100 --decode http://127.0.0.1:8200 \
    --lengths 512,4096,8192 --repeats 2 --tag pair > "$OUT_DIR/pair_kv_probe.jsonl" || echo "kv probe exit $?"
  step "pair: bench W1 2/s through the proxy, pd ppd replication auto"
  python3 -m ppd bench --url http://127.0.0.1:10001 --workload W1 --qps 2 --duration 15 --runs 1 \
    --modes pd,ppd,replication,auto --warmup-s 0 --seed 0 --temperature 0 --output "$OUT_DIR/results" \
    --name h200-pair-e2e --quiet || echo "pair bench exit $?"
fi
python3 -m ppd down --state /opt/pair.json
cp /opt/logs/pair/*.log "$OUT_DIR/logs/" 2>/dev/null
step "DONE"
