"""Build the opt-in compiled variant of ppd: the engine core, the fleet driver and the router core
compiled with mypyc, for faster `ppd fleet` / `ppd plan` runs. The default install stays pure Python.

    python tools/build_compiled.py [--out build/compiled]     # needs the dev extras and a C compiler
    PYTHONPATH=build/compiled ppd fleet ...                    # use it (the result set says so)

It copies src/ppd to OUT/ppd, compiles the modules of COMPILED_MODULES in that copy (mypyc ships
with mypy, a dev dependency; nothing new to install) and writes OUT/ppd/_compiled.json: the modules,
the commit and the sha256 of every source file. Nothing is built inside src/, so an editable install
never picks up a compiled module by accident, and `import ppd` from OUT refuses to run (StaleBuildError)
once any file of src/ppd differs from what was compiled: edit, then rebuild. Which build ran is in
a fleet result set's metadata (`build`) and in benchmarks/fleet_speed.py's output.

Rows are the same either way: `benchmarks/fleet_same_rows.py compare FILE --src OUT` checks it.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC_PACKAGE = ROOT / "src" / "ppd"
sys.path.insert(0, str(ROOT / "src"))

from ppd.buildinfo import MANIFEST_NAME, source_digests  # noqa: E402

# The modules the fleet spends its time in (docs/fleet.md, "Speed and memory"). Each compiles as
# it is: the code is strictly typed. A compiled class cannot be subclassed by interpreted code, so a
# module whose class extends one of these is compiled too; tests/unit/sim and tests/unit/fleet pass
# on the compiled build (PYTHONPATH=build/compiled).
COMPILED_MODULES = (
    "ppd/tokens.py",
    "ppd/sim/config.py",
    "ppd/sim/kv_cache.py",
    "ppd/sim/request.py",
    "ppd/sim/scheduler.py",
    "ppd/sim/core.py",
    "ppd/sim/timing.py",
    "ppd/sim/kv_handoff.py",
    "ppd/fleet/clock.py",
    "ppd/fleet/engines.py",
    "ppd/fleet/fleet.py",
    "ppd/fleet/client.py",
    "ppd/fleet/client_gaps.py",  # two draws per turn (the client's time between turns)
    "ppd/fleet/connections.py",  # a take and a give per hop of every turn
    "ppd/fleet/trace_client.py",  # extends client.BenchClient
    "ppd/fleet/run.py",
    "ppd/fleet/proxy_loop.py",
    # The proxy's router core and the bench code a fleet calls per turn: with only the modules above
    # compiled, interpreted code called per turn was ~10% of a run (docs/fleet.md). `ppd proxy` and
    # `ppd bench` from this build run them compiled too. tests/unit/router passes on it (a test must not
    # monkeypatch a module function: compiled callers call it directly, not by name).
    # ppd.results stays interpreted: compiled, TurnRow would lose __dict__, which vars(row) reads.
    "ppd/router/auto.py",
    "ppd/router/chunks.py",
    "ppd/router/conversations.py",
    "ppd/router/core.py",
    "ppd/router/estimates.py",
    "ppd/router/failover.py",
    "ppd/router/history.py",
    "ppd/router/holding.py",
    "ppd/router/instances.py",
    "ppd/router/policies.py",
    "ppd/router/records.py",
    "ppd/bench/arrivals.py",
    "ppd/bench/pcg64_seed.py",
    "ppd/bench/word_ids.py",
    "ppd/bench/metrics.py",
)


BUILD_ENTRIES = {"ppd", "build", ".mypy_cache"}  # what this tool leaves in --out (mypyc's scratch)
# mypyc's shared library of the compiled modules, beside the package: <hash>__mypyc.<abi tag>.so
SHARED_LIBRARY_RE = re.compile(r"^[0-9a-f]+__mypyc\.[\w.-]+\.so$")


def is_build_folder(out: Path) -> bool:
    """Whether --out holds only what an earlier run of this tool made, so deleting it loses nothing."""
    return out.is_dir() and all(
        entry.name in BUILD_ENTRIES or SHARED_LIBRARY_RE.match(entry.name) for entry in out.iterdir()
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    default_out = ROOT / "build" / "compiled"
    parser.add_argument("--out", type=Path, default=default_out, help="default build/compiled")
    args = parser.parse_args()
    out = args.out.resolve()
    if out.is_relative_to(ROOT / "src") or SRC_PACKAGE.is_relative_to(out):
        print(f"build_compiled: --out {out} would overwrite the sources", file=sys.stderr)
        return 2
    if out.exists() and not is_build_folder(out):
        print(
            f"build_compiled: --out {out} exists and is not a build of this tool; not deleting it",
            file=sys.stderr,
        )
        return 2
    started_s = time.perf_counter()
    digests = source_digests(SRC_PACKAGE)  # before copying: what the build is made from
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shutil.copytree(SRC_PACKAGE, out / "ppd", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    done = subprocess.run([sys.executable, "-m", "mypyc", *COMPILED_MODULES], cwd=out, text=True)
    if done.returncode != 0:
        print(f"build_compiled: mypyc failed (exit {done.returncode}); nothing built", file=sys.stderr)
        shutil.rmtree(out / "ppd")
        return 1
    for scratch in ("build", ".mypy_cache"):  # mypyc's C sources and type cache
        shutil.rmtree(out / scratch, ignore_errors=True)
    if source_digests(SRC_PACKAGE) != digests:
        print("build_compiled: src/ppd changed during the build; run it again", file=sys.stderr)
        shutil.rmtree(out / "ppd")
        return 1
    manifest = {
        "variant": "mypyc",
        "modules": [name.removesuffix(".py").replace("/", ".") for name in COMPILED_MODULES],
        "commit": _commit(),
        "mypy": _mypy_version(),
        "python": platform.python_version(),
        "source_dir": str(SRC_PACKAGE),
        "sources_sha256": digests,
    }
    (out / "ppd" / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1) + "\n")
    print(
        f"build_compiled: {len(COMPILED_MODULES)} modules compiled into {out} in "
        f"{time.perf_counter() - started_s:.0f} s; use it with PYTHONPATH={out}"
    )
    return 0


def _commit() -> str:
    """The checkout's commit, with `-dirty` when it has uncommitted changes."""
    done = subprocess.run(
        ["git", "describe", "--always", "--dirty", "--abbrev=12"], cwd=ROOT, capture_output=True, text=True
    )
    return done.stdout.strip() or "unknown"


def _mypy_version() -> str:
    from mypy.version import __version__

    return __version__


if __name__ == "__main__":
    sys.exit(main())
