#!/bin/bash
# On the 2x H100 host, from the project root, after the bundle's chunks are in /opt/stage:
# install vLLM 0.25.1 + NIXL, then `ppd up` a 1P1D deployment of dummy-weight Llama-3.1-8B
# (the two kv_both instances also serve as the two replicas). Extra arguments go to `ppd up`.
set -euo pipefail
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
[ -d /opt/site/vllm ] || bash .gpu/install.sh
nvidia-smi -L; nvidia-smi topo -m | head -4
python3 -m ppd up --backend vllm --topology 1p1d --model /opt/model --load-format dummy \
  --max-model-len 32768 --env PYTHONPATH=/opt/site --env VLLM_USE_FLASHINFER_SAMPLER=0 \
  --logs /opt/logs --state /opt/ppd-state.json --mode pd "$@"
