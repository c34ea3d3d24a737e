#!/bin/bash
# The sixth session's what-ifs (results README, "Sixth session"): each NAME through fleet/run.sh, then
# benchmarks/sim_vs_real.py against the first runs with every repeat, printing its summary lines and
# the W1 16/s, W2 4/5 and W4 2.5/s rows. NAME: base (the committed h200-llama3.1-8b profile), a
# profile of this folder, or one of session5/whatif/. It is session5/whatif/run.sh, which resolves
# NAME so. Usage: results/h200-vllm0.25.1-single/session6/whatif/run.sh OUT_DIR NAME ...
# (PYTHON= as fleet/run.sh; WITH_SESSION5=1 adds the fifth session's runs as more repeats)
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 OUT_DIR NAME ..." >&2; exit 2; }
exec "$(dirname "$0")/../../session5/whatif/run.sh" "$@"
