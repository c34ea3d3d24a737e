#!/bin/bash
# The fourth one-H200 session of results/h200-vllm0.25.1-single/ (session4/): the steps of a loaded
# long-prompt workload, measured one kind at a time, to find where the engine model's TPOT past
# saturation (W2 4-5/s, W4 2.5/s: 17-28% low against every real run) comes from. Run once in the
# background on the GPU host (kind nvidia-h200) from the project root, after the bundle chunks are
# staged in /opt/stage; results go to /opt/out (tools/gpu/h200/wait.sh packs them into $OUT):
#
#   PPD_GIT_COMMIT=<hash> setsid bash tools/gpu/h200/session4.sh > /opt/out/session.log 2>&1 < /dev/null &
#
# Steps, each logged with its UTC start time:
#   install   tools/gpu/install-bundle.sh (vLLM 0.25.1 + NIXL -> /opt/site, the model -> /opt/model);
#   single    one instance with the whole GPU, the first session's flags (ppd up --topology 1r
#             --no-proxy --max-model-len 40960: chunked prefill 8192, prefix caching, NixlConnector
#             kv_both, --gpu-memory-utilization 0.85);
#   loaded    tools/engine_probe.py --sections loaded: 48 and 96 decoders with 4,096-token prompts
#             stream while fresh 4,096 / 8,192 prefills, turn 2s (4,224 cached + 4,096 new; 8,256 +
#             8,192) and pairs of fresh 4,096s sent together are injected, 2 each; /metrics before and
#             after (the section's metrics record has the diff, iteration tokens included);
#   SECTIONS  (default "loaded"; e.g. SECTIONS=loaded,mixed) are passed to the probe as they are;
#   bench     BENCH_POINTS_<variant> (default "W2:4 W4:2.5", the points the TPOT error was seen at),
#             30 s each, as the first session's loaded runs (greedy, seed 0), /metrics before and
#             after, rows with their ITL lists;
#   TRACE=1   vLLM's scheduler traced per step (tools/vllm_step_trace, a vLLM plugin) into
#             trace-<variant>/; SECTIONS=none skips the probe;
#   VARIANTS  (default "async") the steps above once per variant, each on a fresh start: async is
#             vLLM's default, sync adds --no-async-scheduling (does scheduling step k+1 while step k
#             runs change where prefills land?). Files carry the variant's name.
# The first lease (commit 203b00d) ran the default steps before variants existed: its files are
# probe-loaded.jsonl and h200-s4-w2 / h200-s4-w4.
# BACKEND=sim (dry runs here, no GPU): skip install, run the same steps on a `ppd sim` engine.
set -uo pipefail
cd "$(dirname "$0")/../../.." || exit 1
source tools/gpu/sweep-lib.sh
source tools/gpu/install-bundle.sh
export PPD_GIT_COMMIT=${PPD_GIT_COMMIT:-unknown}
SECTIONS=${SECTIONS:-loaded}

if [ "$BACKEND" = vllm ]; then
  step "install"
  install_bundle || fail "install"
  cd /opt/ppd || fail "no /opt/ppd"
  export PYTHONPATH=/opt/ppd/src
  read -ra ENGINE_ARGS <<< "$(vllm_engine_args)"
  ENGINE_ARGS=(--backend vllm "${ENGINE_ARGS[@]}")
else
  read -ra ENGINE_ARGS <<< "$(sim_engine_args)"
  ENGINE_ARGS=(--backend sim "${ENGINE_ARGS[@]}")
fi

variant() {  # NAME [extra vllm serve args]: one start of the instance, the probe, the bench points
  local name=$1 extra=() point workload qps points_var="BENCH_POINTS_$1"
  shift
  for arg in "$@"; do extra+=("--vllm-arg=$arg"); done
  [ "$BACKEND" = sim ] && extra=()  # the sim has one scheduler: the variant's name still tags its files
  if [ "${TRACE:-0}" = 1 ] && [ "$BACKEND" = vllm ]; then  # tools/vllm_step_trace as a vLLM plugin
    extra+=(--env "PYTHONPATH=$SITE:$PWD/tools/vllm_step_trace" --env "PPD_STEP_TRACE_DIR=$OUT_DIR/trace-$name")
  fi
  step "$name: ppd up (1 replica, no proxy) ${extra[*]}"
  STATES+=(/opt/single4.json)
  $PY -m ppd up "${ENGINE_ARGS[@]}" "${extra[@]}" --topology 1r --no-proxy --gpus 0 --max-model-len 40960 \
    --logs "$LOGS/$name" --state /opt/single4.json || fail "$name: the instance did not start"
  ENGINE=$(engine_url 0)
  if [ "$SECTIONS" != none ]; then
    step "$name: engine probe: $SECTIONS"
    $PY tools/engine_probe.py --url "$ENGINE" --out "$OUT_DIR/probe-loaded-$name.jsonl" --sections "$SECTIONS" \
      || echo "probe exit $?"
  fi
  for point in ${!points_var-W2:4 W4:2.5}; do
    workload=${point%%:*} qps=${point##*:}
    scrape "$name-${workload,,}-q$qps-before" "$ENGINE"
    step "$name: bench $workload $qps/s"
    $PY -m ppd bench --url "$ENGINE" --workload "$workload" --qps "$qps" --duration "${BENCH_S:-30}" --runs 1 \
      --warmup-s 0 --seed 0 --temperature 0 --output "$OUT_DIR/results" --name "h200-s4-$name-${workload,,}" \
      --append --quiet || echo "bench exit $?"
    scrape "$name-${workload,,}-q$qps-after" "$ENGINE"
  done
  $PY -m ppd down --state /opt/single4.json
  pack_logs "$name" "$LOGS/$name"
}

for name in ${VARIANTS:-async}; do
  case $name in
    async) variant async ;;                         # vLLM 0.25.1's default: asynchronous scheduling
    sync) variant sync --no-async-scheduling ;;     # step k+1 scheduled after step k's output
    *) fail "unknown variant $name (async, sync)" ;;
  esac
done
step "DONE"
