#!/usr/bin/env bash
# Stop what scripts/start_servers.sh started (by the pids in .ppd/pd.json, never by name).
set -euo pipefail
source "$(dirname "$0")/_ppd_up_common.sh"
cd "$ROOT"
ppd down --state .ppd/pd.json "$@"
