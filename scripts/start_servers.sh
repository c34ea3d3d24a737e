#!/usr/bin/env bash
# PD / PPD deployment as the seed had it: GPU0 prefill :8100, GPU1 decode :8200, proxy :10001.
# Usage: scripts/start_servers.sh [more `ppd up` flags, e.g. --mode ppd --load-format dummy]
# Env: MODEL (model path/name), GPUS (default 0,1), PPD_BACKEND=sim for simulated engines.
# Stop with scripts/stop_servers.sh.
set -euo pipefail
source "$(dirname "$0")/_ppd_up_common.sh"
cd "$ROOT"
# shellcheck disable=SC2046  # engine_flags is a list of words on purpose
ppd up $(engine_flags) --topology 1p1d --port-base 8100 --proxy-port 10001 \
  --logs logs --state .ppd/pd.json "$@"
