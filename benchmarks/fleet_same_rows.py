"""Does a change to the fleet (or the engine or router core under it) leave what it simulates alone?
Twelve fixed-seed fleets, 1r to 8r, all four modes, W1-W4, completions and chat, with special
tokens, per-token ITL, KV-cache pressure (preemptions) and the H200 profile's API server (below and
above its merge limit), 30 simulated seconds each. Their rows,
summaries and engine statistics are fingerprinted. `save` writes the fingerprints, `compare` checks
this checkout against a saved file and ends with `fleet_same_rows cases=N differ=K`. Speed work
should give differ=0. A deliberate model change names what differs.

    python benchmarks/fleet_same_rows.py save FILE [--src OTHER/src]   # the code before the change
    python benchmarks/fleet_same_rows.py compare FILE                  # this checkout's code
    python benchmarks/fleet_same_rows.py compare FILE --src build/compiled   # its mypyc build

The last line names the build the fingerprints came from (ppd.buildinfo; `pure` for a checkout
older than it).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from _sims import SRC

if "--src" in sys.argv:  # another checkout's code (e.g. `git worktree add /tmp/base COMMIT`)
    SRC = Path(sys.argv[sys.argv.index("--src") + 1])
    del sys.argv[sys.argv.index("--src") : sys.argv.index("--src") + 2]
sys.path.insert(0, str(SRC))

from ppd.bench.config import Api
from ppd.bench.workloads import builtin_workload
from ppd.fleet import EngineOptions, FleetConfig, fleet_topology, simulate
from ppd.modes import Mode

# (mode, topology, workload, conversations/s, special-token rate, KV-cache tokens or None, api)
CASES: tuple[tuple[Mode, str, str, float, float, int | None, Api], ...] = (
    ("pd", "2p2d", "W1", 8.0, 0.0, None, "completions"),
    ("pd", "4p4d", "W1", 16.0, 0.0, None, "completions"),
    ("replication", "8r", "W1", 16.0, 0.0, None, "completions"),
    ("ppd", "1p1d", "W3", 4.0, 0.002, 60_000, "completions"),
    ("auto", "2p2d", "W2", 2.0, 0.0, None, "chat"),
    ("replication", "2r", "W1", 12.0, 0.002, 60_000, "completions"),
    ("pd", "1p1d", "W3", 6.0, 0.002, 60_000, "chat"),
    ("auto", "3p5d", "W4", 1.0, 0.0, None, "completions"),
    ("ppd", "2p2d", "W1", 10.0, 0.0, 80_000, "completions"),
    ("pd", "2p2d", "W2", 3.0, 0.0, 40_000, "completions"),
)
# The same with the H200 profile, whose API server (sim.timing.ApiServer) is on: (case, profile).
# The second runs ~500 sequences per engine, past the server's merge limit (128), where it sets
# the pace of the steps.
H200 = "h200-llama3.1-8b"
PROFILE_CASES: tuple[tuple[tuple[Mode, str, str, float, float, int | None, Api], str], ...] = (
    (("pd", "2p2d", "W1", 16.0, 0.002, None, "completions"), H200),
    (("replication", "1r", "W3", 24.0, 0.0, None, "completions"), H200),
)


def digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def fingerprints() -> dict[str, dict[str, Any]]:
    """Per case: a digest of its rows and of its summaries, its engine statistics, its preemptions."""
    found: dict[str, dict[str, Any]] = {}
    default_profile = EngineOptions().profile
    for case, profile in [*((case, default_profile) for case in CASES), *PROFILE_CASES]:
        mode, topology, workload, qps, special_rate, kv_tokens, api = case
        engine = EngineOptions(profile=profile, special_token_rate=special_rate, kv_cache_tokens=kv_tokens)
        config = FleetConfig(
            fleet_topology(topology), mode, builtin_workload(workload, 2), qps=qps, duration_s=30.0,
            engine=engine, record_itl=special_rate > 0, api=api,
        )  # fmt: skip
        run = simulate(config)
        key = f"{mode}-{topology}-{workload}-{qps:g}-{special_rate:g}-{kv_tokens}-{api}"
        if profile != default_profile:
            key += f"-{profile}"
        found[key] = {
            "rows": digest([vars(row) for row in run.rows]),
            "num_rows": len(run.rows),
            "summaries": digest(run.summaries),
            "engine_stats": json.loads(json.dumps(run.engine_stats, default=str)),
            "preemptions": sum(engine["num_preemptions"] for engine in run.engine_stats),
        }
        print(
            f"{key}: {len(run.rows)} rows, {found[key]['preemptions']} preemptions, {run.wall_s:.1f} s",
            flush=True,
        )
    return found


def loaded_build() -> str:
    """`pure` or `mypyc(N modules)`, as imported from SRC."""
    try:
        from ppd.buildinfo import build_label
    except ImportError:  # a checkout from before the compiled build
        return "pure"
    return build_label()


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("save", "compare"):
        print("usage: fleet_same_rows.py save|compare FILE", file=sys.stderr)
        return 2
    action, path = argv
    found = fingerprints()
    if action == "save":
        with open(path, "w") as file:
            json.dump(found, file, indent=1)
        return 0
    with open(path) as file:
        saved = json.load(file)
    differ = sorted(key for key in saved if saved[key] != found.get(key))
    for key in differ:
        print(f"differs: {key}")
    print(f"fleet_same_rows cases={len(saved)} differ={len(differ)} build={loaded_build()}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
