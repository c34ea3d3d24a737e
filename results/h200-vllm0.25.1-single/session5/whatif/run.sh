#!/bin/bash
# The fifth session's what-ifs (results README, "Fifth session"): each profile of this folder (or the
# ones named) through fleet/run.sh, then benchmarks/sim_vs_real.py against the first runs with every
# repeat (rerun/, session3/, session4/: the base's 49/78 and 27/40), printing its summary lines and
# the W1 16/s, W2 4/5 and W4 2.5/s rows.
# Usage: results/h200-vllm0.25.1-single/session5/whatif/run.sh OUT_DIR [NAME ...]   (PYTHON= as run.sh;
# WITH_SESSION5=1 adds the fifth session's runs as more repeats: 52 repeated figures instead of 40)
# NAME: a profile of this folder, of session6/whatif/ (which it looks in first; session6/whatif/run.sh
# is this script), or base (the committed h200-llama3.1-8b profile).
set -euo pipefail
out=$1; shift
here=results/h200-vllm0.25.1-single
cd "$(dirname "$0")/../../../.."
py=${PYTHON:-.venv/bin/python}
names=("$@")
[ ${#names[@]} -gt 0 ] || names=($(ls $here/session5/whatif/*.json | xargs -n1 basename | sed 's/\.json$//'))
again=()
for f in rerun/rerun-w1 rerun/rerun-w3 session3/h200-s3-w3 session3/h200-s3-again-w1 session3/h200-s3-again-w2 \
         session3/h200-s3-again-w3 session3/h200-s3-again-w4 session4/h200-s4-w2 session4/h200-s4-w4; do
  again+=(--real-again "$here/$f.json")
done
if [ "${WITH_SESSION5:-0}" = 1 ]; then
  for w in 1 2 3 4; do again+=(--real-again "$here/session5/h200-s4-async-w$w.json"); done
fi
for name in "${names[@]}"; do
  if [ "$name" = base ]; then profile=h200-llama3.1-8b
  elif [ -f "$here/session6/whatif/$name.json" ]; then profile=$here/session6/whatif/$name.json
  else profile=$here/session5/whatif/$name.json; fi
  PYTHON=$py PROFILE=$profile $here/fleet/run.sh "$out/$name" > /dev/null
  echo "== $name"
  $py benchmarks/sim_vs_real.py --real $here --sim "$out/$name" --mode-map replication= "${again[@]}" \
    | grep -E '^sim_vs_real|^W1 +16 |^W2 +4 |^W2 +5 |^W4 +2\.5 '
done
