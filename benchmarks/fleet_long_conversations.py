"""What long conversations cost `ppd fleet`'s client: fixed-seed fleets whose conversations have many
turns, timed on this checkout and (--baseline-src) on another in the same run, with a digest of their
rows, which must be equal.

Each turn's prompt is the conversation's whole history, so the engine and the router see
O(history) per turn whatever the client does; the client itself should add only the new turn. Cases
(1r replication, H100 profile, `--turns` turns of 64 new words and 16 output tokens, 24
conversations): completions with session ids, and chat without them, where each turn also carries
the chat messages the bench would send. Lines:

    fleet_long src=this|baseline api=completions|chat session_ids=yes|no turns=T rows=N wall_s=..
        rows_digest=..
    fleet_long_same_rows cases=N differ=K

wall_s is the best of `--repeats` runs. Run under the exclusive lock:
    flock /work/cpu.lock python benchmarks/fleet_long_conversations.py --baseline-src DIR [--turns 64]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[1] / "src"
if "--src" in sys.argv:  # a child timing another checkout's code (--baseline-src)
    SRC = Path(sys.argv[sys.argv.index("--src") + 1])
sys.path.insert(0, str(SRC))

CASES = (("completions", True), ("chat", False))
NUM_CONVERSATIONS = 24
QPS = 2.0


def run_case(api: str, session_ids: bool, num_turns: int, repeats: int) -> dict[str, Any]:
    """The best wall time of the case's fleet run and its rows' digest."""
    from ppd.bench.config import TurnShape, WorkloadSpec
    from ppd.fleet import FleetConfig, fleet_topology, simulate

    workload = WorkloadSpec("long", ((TurnShape(64, 16),) * num_turns,), "custom")
    config = FleetConfig(
        fleet_topology("1r"), "replication", workload, qps=QPS, duration_s=NUM_CONVERSATIONS / QPS,
        api=api, send_session_id=session_ids, drain_timeout_s=3600.0,  # type: ignore[arg-type]
    )  # fmt: skip
    best_s = float("inf")
    digest = ""
    num_rows = 0
    for _ in range(repeats):
        started = time.perf_counter()
        run = simulate(config)
        best_s = min(best_s, time.perf_counter() - started)
        rows = json.dumps([vars(row) for row in run.rows], sort_keys=True, default=str)
        digest, num_rows = hashlib.sha256(rows.encode()).hexdigest()[:16], len(run.rows)
    return {"wall_s": best_s, "rows_digest": digest, "rows": num_rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline-src", type=Path, help="also time another checkout's src/")
    parser.add_argument("--src", type=Path, help=argparse.SUPPRESS)  # the child's tree
    parser.add_argument("--child", help=argparse.SUPPRESS)  # "api,session_ids"
    args = parser.parse_args()
    if args.turns < 1 or args.repeats < 1:
        parser.error("--turns and --repeats must be >= 1")
    if args.child:
        api, session_ids = args.child.split(",")
        print(json.dumps(run_case(api, session_ids == "yes", args.turns, args.repeats)))
        return
    if args.baseline_src is not None and not (args.baseline_src / "ppd" / "fleet").is_dir():
        parser.error(f"--baseline-src {args.baseline_src} has no ppd/fleet package")
    digests: dict[str, set[str]] = {}
    for api, session_ids in CASES:
        sources = [("baseline", args.baseline_src)] if args.baseline_src else []
        for label, src in [*sources, ("this", SRC)]:
            child = f"{api},{'yes' if session_ids else 'no'}"
            argv = [sys.executable, __file__, "--src", str(src), "--child", child]
            argv += ["--turns", str(args.turns), "--repeats", str(args.repeats)]
            figures = json.loads(subprocess.run(argv, check=True, capture_output=True, text=True).stdout)
            digests.setdefault(child, set()).add(figures["rows_digest"])
            print(
                f"fleet_long src={label} api={api} session_ids={'yes' if session_ids else 'no'} "
                f"turns={args.turns} rows={figures['rows']} wall_s={figures['wall_s']:.2f} "
                f"rows_digest={figures['rows_digest']}",
                flush=True,
            )
    differ = sum(len(found) > 1 for found in digests.values())
    print(f"fleet_long_same_rows cases={len(digests)} differ={differ}")


if __name__ == "__main__":
    main()
