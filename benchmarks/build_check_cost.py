"""What the compiled build's import-time check costs (ppd.buildinfo.stale_file: every `import ppd` of
a build runs it): d0ea123's way (rglob, then sha256 of every file) against this tree's (os.walk;
uncached, and with the stat cache), interleaved in one run; the median and best of N rounds.

    flock /work/cpu.lock python benchmarks/build_check_cost.py [--package src/ppd] [--rounds 40]

It prints one line:

    build_check files=F before_ms=median M best B after_uncached_ms=... after_cached_ms=...
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ppd.buildinfo import MANIFEST_NAME, source_digests, stale_file

ROOT = Path(__file__).resolve().parents[1]


def before_source_files(package_dir: Path) -> list[Path]:
    """d0ea123's listing: rglob over everything, __pycache__ included, then filtered."""
    skipped = {".so", ".pyc", ".swp", ".orig", ".rej"}
    return sorted(
        path
        for path in package_dir.rglob("*")
        if path.is_file()
        and "__pycache__" not in path.parts
        and path.suffix not in skipped
        and not path.name.startswith(".")
        and not path.name.endswith("~")
        and path.name != MANIFEST_NAME
    )


def before_stale_file(manifest: dict[str, Any]) -> str | None:
    """d0ea123's check: every file hashed on every import."""
    source_dir = Path(manifest["source_dir"])
    now = {
        path.relative_to(source_dir).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in before_source_files(source_dir)
    }
    return None if now == manifest["sources_sha256"] else "stale"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", type=Path, default=ROOT / "src" / "ppd")
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    package = args.package.resolve()
    manifest = {"source_dir": str(package), "sources_sha256": source_digests(package)}
    cache = Path(tempfile.mkdtemp()) / "_compiled_stats.json"
    stale_file(manifest, cache)  # the first import of a build fills the cache
    ways: dict[str, Callable[[], str | None]] = {
        "before": lambda: before_stale_file(manifest),
        "after_uncached": lambda: stale_file(manifest),
        "after_cached": lambda: stale_file(manifest, cache),
    }
    times_ms: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.rounds):
        for name, check in ways.items():
            started = time.perf_counter()
            if check() is not None:
                raise SystemExit(f"{name}: the package changed during the run")
            times_ms[name].append((time.perf_counter() - started) * 1e3)
    figures = " ".join(
        f"{name}_ms=median {statistics.median(values):.1f} best {min(values):.1f}"
        for name, values in times_ms.items()
    )
    print(f"build_check files={len(manifest['sources_sha256'])} {figures}")


if __name__ == "__main__":
    main()
