#!/bin/bash
# Sourced (not run) by the device session scripts: `source tools/gpu/install-bundle.sh`, then
# `install_bundle [COMMAND ...]`. It installs the offline vLLM 0.25.1 + NIXL 1.5.1 bundle on a bare GPU
# host (README of ../shared/gpu/: "How it was produced" in results/h200-vllm0.25.1-single/):
#
#   - the bundle's chunks, staged beforehand as /opt/stage/c0 c1 ... (one `run` call each: the tracked
#     tree travels with every call and a call carries at most 64 MiB), are joined and unpacked:
#     its first .gpu/site_bytes bytes are vLLM's site-packages (-> /opt/site), the rest NIXL
#     (-> /opt/nixl, then copied into /opt/site);
#   - the model folder (Llama-3.1-8B shapes, dummy weights, word-level tokenizer) -> /opt/model, from
#     the carried .gpu/make-model.py and .gpu/llama-3.1-8b-config.json;
#   - a snapshot of this project (src, tools, benchmarks, data/traces, pyproject.toml) -> /opt/ppd,
#     with $PPD_GIT_COMMIT in /opt/ppd/COMMIT (the snapshot has no .git), because each device call
#     refreshes the working tree under a running session.
#
# COMMAND, if given, runs in the background from /opt/ppd as soon as NIXL is unpacked (e.g. the NIXL
# pair tests, which need only NIXL and torch), beside the longer site unpack; install_bundle waits for
# it before returning. Logs go to $OUT_DIR/logs. Returns non-zero, with a line saying which step
# failed, when a step fails. Used by tools/gpu/h200x2/session.sh and tools/gpu/h200x4/session.sh
# (tools/gpu/h200/session*.sh predate it and carry their own copy of these steps).

install_bundle() {
  local out=${OUT_DIR:-/opt/out} site_bytes background_pid=""
  mkdir -p "$out/logs"
  nvidia-smi > "$out/logs/nvidia-smi.txt" 2>&1
  nvidia-smi topo -m > "$out/logs/nvidia-smi-topo.txt" 2>&1
  site_bytes=$(cat .gpu/site_bytes) || { echo "install: no .gpu/site_bytes (carry it)"; return 1; }
  # Chunks in name order, however many digits (c0..c7 or c00..c18: the tracked tree is ~57 MB, so a
  # call has room for one ~9 MB chunk; the third H200 session staged 19).
  local chunks
  chunks=$(ls /opt/stage/c* 2>/dev/null | sort -V)
  [ -n "$chunks" ] || { echo "install: bundle chunks missing in /opt/stage"; return 1; }
  # shellcheck disable=SC2086
  cat $chunks > /opt/stage/bundle || { echo "install: bundle chunks unreadable"; return 1; }
  echo "bundle sha256 $(sha256sum /opt/stage/bundle | cut -c1-16), site bytes $site_bytes"
  mkdir -p /opt/site /opt/nixl /opt/model
  tail -c +$((site_bytes + 1)) /opt/stage/bundle | xz -d | tar -x -C /opt/nixl \
    || { echo "install: NIXL unpack failed"; return 1; }
  rm -rf /opt/ppd && mkdir -p /opt/ppd/data \
    && cp -a src tools benchmarks pyproject.toml /opt/ppd/ && cp -a data/traces /opt/ppd/data/ \
    || { echo "install: project snapshot failed"; return 1; }
  echo "${PPD_GIT_COMMIT:-unknown}" > /opt/ppd/COMMIT
  if [ $# -gt 0 ]; then
    (cd /opt/ppd && "$@") &
    background_pid=$!
  fi
  head -c "$site_bytes" /opt/stage/bundle | xz -d -T0 | tar -x -C /opt/site || { echo "install: site unpack failed"; return 1; }
  cp -a /opt/nixl/. /opt/site/
  python3 .gpu/make-model.py /opt/model .gpu/llama-3.1-8b-config.json > "$out/logs/make-model.log" 2>&1 \
    || { echo "install: model folder failed"; return 1; }
  PYTHONPATH=/opt/site python3 -c "import vllm, nixl; print('vllm', vllm.__version__, 'nixl ok')" \
    || { echo "install: vllm does not import"; return 1; }
  if [ -n "$background_pid" ]; then
    wait "$background_pid"
    echo "install: background step exit $?"
  fi
}
