#!/usr/bin/env bash
# Replication deployment as the seed had it: workers :8300 (GPU0) and :8400 (GPU1), proxy :10002.
# Usage: scripts/start_replication_servers.sh [more `ppd up` flags]
# Env: MODEL, GPUS (default 0,1), PPD_BACKEND=sim. Logs in logs/replication/.
# Stop with scripts/stop_replication_servers.sh.
set -euo pipefail
source "$(dirname "$0")/_ppd_up_common.sh"
cd "$ROOT"
# shellcheck disable=SC2046
ppd up $(engine_flags) --topology 2r --port-base 8300 --proxy-port 10002 --nixl-port-base 5700 \
  --mode replication --logs logs/replication --state .ppd/replication.json "$@"
echo "Replication Mode Ready!"
