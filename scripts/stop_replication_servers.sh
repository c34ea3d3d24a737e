#!/usr/bin/env bash
# Stop what scripts/start_replication_servers.sh started (pids in .ppd/replication.json).
set -euo pipefail
source "$(dirname "$0")/_ppd_up_common.sh"
cd "$ROOT"
ppd down --state .ppd/replication.json "$@"
