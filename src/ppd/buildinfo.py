"""Which build of ppd is running: the pure-Python package (the default, and what CI tests), or the
opt-in mypyc build that `python tools/build_compiled.py` makes for faster fleet simulation.

The compiled build is a copy of src/ppd with some modules compiled in place, put first on the path
(`PYTHONPATH=build/compiled`). Its manifest (`_compiled.json` beside this file) records the digest of
every source file it was built from. A compiled module silently shadowing a .py file edited since
is the trap: so importing ppd from a compiled tree whose sources no longer match the checkout's
raises StaleBuildError, naming the first file that differs, instead of running old code.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parent
MANIFEST_NAME = "_compiled.json"
REBUILD_HINT = "rebuild it with `python tools/build_compiled.py`, or take it off PYTHONPATH"


class StaleBuildError(ImportError):
    """The compiled build in use was made from sources that have changed since."""


def source_files(package_dir: Path) -> list[Path]:
    """Every file of the package a build copies (sources and data), in a stable order."""
    skipped_suffixes = {".so", ".pyc", ".swp", ".orig", ".rej"}
    return sorted(
        path
        for path in package_dir.rglob("*")
        if path.is_file()
        and "__pycache__" not in path.parts
        and path.suffix not in skipped_suffixes
        and not path.name.startswith(".")  # editor and OS leftovers (.DS_Store, .#file), not sources
        and not path.name.endswith("~")
        and path.name != MANIFEST_NAME
    )


def source_digests(package_dir: Path) -> dict[str, str]:
    """sha256 of each source file, by its path relative to the package."""
    return {
        path.relative_to(package_dir).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in source_files(package_dir)
    }


def read_manifest(package_dir: Path = PACKAGE_DIR) -> dict[str, Any] | None:
    """The compiled build's manifest, or None for the pure package."""
    path = package_dir / MANIFEST_NAME
    if not path.is_file():
        return None
    manifest: dict[str, Any] = json.loads(path.read_text())
    return manifest


def stale_file(manifest: dict[str, Any]) -> str | None:
    """The first source file that differs between the build and the checkout it was made from
    (added, removed or edited); None when they match."""
    source_dir = Path(manifest["source_dir"])
    if not source_dir.is_dir():
        return f"{source_dir} (the checkout it was built from is gone)"
    built: dict[str, str] = manifest["sources_sha256"]
    now = source_digests(source_dir)
    for name in sorted(set(built) | set(now)):
        if built.get(name) != now.get(name):
            return str(source_dir / name)
    return None


def check_build(package_dir: Path = PACKAGE_DIR) -> None:
    """Raise StaleBuildError when a compiled build no longer matches its sources (pure: no-op)."""
    manifest = read_manifest(package_dir)
    if manifest is None:
        return
    changed = stale_file(manifest)
    if changed is not None:
        raise StaleBuildError(
            f"ppd: the compiled build at {package_dir.parent} is stale: {changed} changed since it "
            f"was built; {REBUILD_HINT}"
        )


def build_info(package_dir: Path = PACKAGE_DIR) -> dict[str, Any]:
    """What is running, for result metadata: {"variant": "pure"} or the mypyc build's modules,
    commit and tool versions."""
    manifest = read_manifest(package_dir)
    if manifest is None:
        return {"variant": "pure"}
    keys = ("variant", "modules", "commit", "mypy", "python")
    return {key: manifest[key] for key in keys if key in manifest}


def build_label(package_dir: Path = PACKAGE_DIR) -> str:
    """One word for logs: `pure`, or `mypyc(N modules)`."""
    info = build_info(package_dir)
    if info["variant"] == "pure":
        return "pure"
    return f"{info['variant']}({len(info.get('modules', []))} modules)"
