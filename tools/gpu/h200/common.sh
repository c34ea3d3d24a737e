# Sourced by the CPU-only host scripts (cpu-bench.sh, turn-trace.sh) after they cd to the project root:
# their step log, the environment record, the load logger and the cleanup of a cut-off deployment.
# `source` reads this whole file at once, so a device call that refreshes the tree later is harmless.
# Needs OUT_DIR, PY and SNAPSHOT set.

step() { echo "=== $(date -u +%H:%M:%S) $*"; }
fail() { step "FAILED: $*"; exit 1; }

strays() {  # a step cut off by its timeout leaves its deployment (sims, proxy) running: stop it
  local proc pid
  for proc in /proc/[0-9]*; do
    pid=${proc#/proc/}
    tr '\0' ' ' 2> /dev/null < "$proc/cmdline" | grep -Eq -- "-m ppd (sim|proxy) " || continue
    tr '\0' '\n' 2> /dev/null < "$proc/environ" | grep -q "^PYTHONPATH=.*$SNAPSHOT/src" || continue
    echo "stopping stray $pid: $(tr '\0' ' ' 2> /dev/null < "$proc/cmdline" | cut -c1-80)"
    kill "$pid"
  done
}

# write_env FILE: the host, Python, the packages the benchmarks import, $PPD_GIT_COMMIT, and what the
# tree really holds: src_sha256 hashes every src/**/*.py (path and bytes), so a run can be matched to a
# commit whatever PPD_GIT_COMMIT says (a patch applied in an earlier device call is gone in the next:
# each call copies the tree afresh). The same hash of a checkout:
#   python3 -c 'import hashlib,pathlib; h=hashlib.sha256(); [h.update(str(p).encode()+p.read_bytes()) for p in sorted(pathlib.Path("src").rglob("*.py"))]; print(h.hexdigest())'
write_env() {
  {
    echo "commit $PPD_GIT_COMMIT"
    echo "date_utc $(date -u +%FT%TZ)"
    echo "host $(hostname)"
    echo "cores $(nproc)"
    grep -m1 "model name" /proc/cpuinfo
    echo "memory $(grep MemTotal /proc/meminfo)"
    echo "uptime $(uptime)"
    $PY - << 'EOF'
import hashlib, pathlib, sys, time
from importlib.metadata import PackageNotFoundError, version
digest = hashlib.sha256()
for path in sorted(pathlib.Path("src").rglob("*.py")):
    digest.update(str(path).encode() + path.read_bytes())
print("src_sha256", digest.hexdigest())
print("python", sys.version.split()[0])
print("clocks monotonic", time.get_clock_info("monotonic").implementation,
      "perf_counter", time.get_clock_info("perf_counter").implementation)
for name in ("aiohttp", "numpy", "rich", "uvloop", "yarl", "multidict"):
    try:
        print(name, version(name))
    except PackageNotFoundError:
        print(name, "MISSING")
EOF
  } > "$1" 2>&1
  cat "$1"
}

# log_load FILE COPY: /proc/loadavg every 5 s into FILE until the script exits; then COPY (the
# script's own copy in /tmp) is removed.
log_load() {
  ( while :; do echo "$(date -u +%T) $(cat /proc/loadavg)"; sleep 5; done ) > "$1" &
  LOAD_LOGGER_PID=$!
  # shellcheck disable=SC2064
  trap "kill $LOAD_LOGGER_PID 2> /dev/null; rm -f '$2'" EXIT
}
