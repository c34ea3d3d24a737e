#!/bin/bash
# On the 2x H100 host, after `bash .gpu/install.sh` and with a snapshot of this project in /opt/ppd
# (`git archive`, with `git rev-parse HEAD` in /opt/ppd/COMMIT so result files name their commit):
# `ppd up` a 1P1D deployment of dummy-weight Llama-3.1-8B
# (the two kv_both instances also serve as the two replicas). Extra arguments go to `ppd up`.
set -euo pipefail
export PYTHONPATH=/opt/ppd/src PYTHONUNBUFFERED=1
export PPD_GIT_COMMIT=${PPD_GIT_COMMIT:-$(cat /opt/ppd/COMMIT 2>/dev/null)}  # the snapshot has no .git
[ -d /opt/site/vllm ] || { echo "run .gpu/install.sh from the project root first" >&2; exit 1; }
nvidia-smi -L; nvidia-smi topo -m | head -4
python3 -m ppd up --backend vllm --topology 1p1d --model /opt/model --load-format dummy \
  --max-model-len 32768 --env PYTHONPATH=/opt/site --env VLLM_USE_FLASHINFER_SAMPLER=0 \
  --logs /opt/logs --state /opt/ppd-state.json --mode pd "$@"
