"""Which build of ppd is running: the pure-Python package (the default, and what CI tests), or the
opt-in mypyc build that `python tools/build_compiled.py` makes for faster fleet simulation.

The compiled build is a copy of src/ppd with some modules compiled in place, put first on the path
(`PYTHONPATH=build/compiled`). Its manifest (`_compiled.json` beside this file) records the digest of
every source file it was built from. A compiled module silently shadowing a .py file edited since
is the trap: so importing ppd from a compiled tree whose sources no longer match the checkout's
raises StaleBuildError, naming the first file that differs, instead of running old code.

That check runs on every `import ppd` of a compiled build, and hashing all ~130 files took ~30 ms of
each start (a `ppd plan` worker, a sim). So a build keeps a stat cache beside its manifest
(`_compiled_stats.json`): each source file's size, mtime and sha256 when last hashed, and a file whose
size and mtime are unchanged is not read again (git's index does the same). A file changed within
STAT_SETTLE_S of being hashed is not cached, since another write in the same mtime tick would look
unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parent
MANIFEST_NAME = "_compiled.json"
STAT_CACHE_NAME = "_compiled_stats.json"
STAT_SETTLE_S = 2.0  # a file modified more recently than this is hashed again next time
REBUILD_HINT = "rebuild it with `python tools/build_compiled.py`, or take it off PYTHONPATH"


class StaleBuildError(ImportError):
    """The compiled build in use was made from sources that have changed since."""


def source_files(package_dir: Path) -> list[Path]:
    """Every file of the package a build copies (sources and data), in a stable order."""
    skipped_suffixes = {".so", ".pyc", ".swp", ".orig", ".rej"}
    found: list[Path] = []
    for folder, subfolders, names in os.walk(package_dir):
        subfolders[:] = [name for name in subfolders if name != "__pycache__"]  # not walked at all
        found.extend(
            Path(folder, name)
            for name in names
            if os.path.splitext(name)[1] not in skipped_suffixes
            and not name.startswith(".")  # editor and OS leftovers (.DS_Store, .#file), not sources
            and not name.endswith("~")
            and name not in (MANIFEST_NAME, STAT_CACHE_NAME)
        )
    return sorted(found)


def source_digests(package_dir: Path) -> dict[str, str]:
    """sha256 of each source file, by its path relative to the package."""
    return {
        path.relative_to(package_dir).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in source_files(package_dir)
    }


StatCache = dict[str, tuple[int, int, str]]  # relative path -> (size, mtime_ns, sha256)


def cached_source_digests(
    package_dir: Path, cache: StatCache, now_s: float
) -> tuple[dict[str, str], StatCache]:
    """source_digests, reading only the files whose size or mtime differ from cache's; returns the
    digests and the cache to keep (files modified within STAT_SETTLE_S of now_s left out of it)."""
    digests: dict[str, str] = {}
    kept: StatCache = {}
    settled_ns = int((now_s - STAT_SETTLE_S) * 1e9)
    for path in source_files(package_dir):
        name = path.relative_to(package_dir).as_posix()
        stat = path.stat()
        known = cache.get(name)
        if known is not None and known[:2] == (stat.st_size, stat.st_mtime_ns):
            digest = known[2]
        else:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        digests[name] = digest
        if stat.st_mtime_ns < settled_ns:
            kept[name] = (stat.st_size, stat.st_mtime_ns, digest)
    return digests, kept


def read_stat_cache(path: Path) -> StatCache:
    """A build's stat cache; empty when missing or unreadable (then every file is hashed)."""
    try:
        entries = json.loads(path.read_text())
        return {
            name: (int(size), int(mtime_ns), str(digest))
            for name, (size, mtime_ns, digest) in entries.items()
        }
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def write_stat_cache(path: Path, cache: StatCache) -> None:
    """Replace the stat cache in one step (processes starting together may race); a build folder that
    cannot be written keeps working, uncached."""
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(json.dumps(cache))
        os.replace(temporary, path)
    except OSError:
        temporary.unlink(missing_ok=True)


def read_manifest(package_dir: Path = PACKAGE_DIR) -> dict[str, Any] | None:
    """The compiled build's manifest, or None for the pure package."""
    path = package_dir / MANIFEST_NAME
    if not path.is_file():
        return None
    manifest: dict[str, Any] = json.loads(path.read_text())
    return manifest


def stale_file(manifest: dict[str, Any], stat_cache_path: Path | None = None) -> str | None:
    """The first source file that differs between the build and the checkout it was made from
    (added, removed or edited); None when they match. stat_cache_path: the build's stat cache, read
    and brought up to date (None: every file is hashed)."""
    source_dir = Path(manifest["source_dir"])
    if not source_dir.is_dir():
        return f"{source_dir} (the checkout it was built from is gone)"
    built: dict[str, str] = manifest["sources_sha256"]
    if stat_cache_path is None:
        now = source_digests(source_dir)
    else:
        cache = read_stat_cache(stat_cache_path)
        now, kept = cached_source_digests(source_dir, cache, time.time())
        if kept != cache:
            write_stat_cache(stat_cache_path, kept)
    for name in sorted(set(built) | set(now)):
        if built.get(name) != now.get(name):
            return str(source_dir / name)
    return None


def check_build(package_dir: Path = PACKAGE_DIR) -> None:
    """Raise StaleBuildError when a compiled build no longer matches its sources (pure: no-op)."""
    manifest = read_manifest(package_dir)
    if manifest is None:
        return
    changed = stale_file(manifest, package_dir / STAT_CACHE_NAME)
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
