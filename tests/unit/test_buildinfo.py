"""ppd.buildinfo: the pure package says so, and a compiled build refuses to run once its sources
have changed (a stale compiled module must not shadow an edited .py file)."""

import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from ppd.buildinfo import (
    MANIFEST_NAME,
    STAT_CACHE_NAME,
    StaleBuildError,
    build_info,
    build_label,
    check_build,
    read_stat_cache,
    source_digests,
)


def test_the_package_under_test_is_pure() -> None:
    assert build_info() == {"variant": "pure"}
    assert build_label() == "pure"
    check_build()


def fake_build(tmp_path: Path) -> tuple[Path, Path]:
    """A source package and a 'compiled' copy of it with a manifest, as tools/build_compiled.py
    writes it (no compiler needed: the check reads only the manifest and the sources)."""
    source = tmp_path / "src" / "ppd"
    (source / "sim").mkdir(parents=True)
    (source / "__init__.py").write_text("")
    (source / "sim" / "core.py").write_text("X = 1\n")
    (source / "sim" / "profiles.json").write_text("{}\n")
    (source / "sim" / "__pycache__").mkdir()
    (source / "sim" / "__pycache__" / "core.cpython-311.pyc").write_bytes(b"ignored")
    built = tmp_path / "build" / "ppd"
    shutil.copytree(source, built)
    manifest = {
        "variant": "mypyc",
        "modules": ["ppd.sim.core"],
        "commit": "abc",
        "source_dir": str(source),
        "sources_sha256": source_digests(source),
    }
    (built / MANIFEST_NAME).write_text(json.dumps(manifest))
    return source, built


def test_a_matching_build_runs_and_names_itself(tmp_path: Path) -> None:
    _, built = fake_build(tmp_path)
    check_build(built)
    assert build_info(built) == {"variant": "mypyc", "modules": ["ppd.sim.core"], "commit": "abc"}
    assert build_label(built) == "mypyc(1 modules)"


@pytest.mark.parametrize("change", ["edit", "add", "remove", "data"])
def test_a_build_older_than_its_sources_refuses_to_run(tmp_path: Path, change: str) -> None:
    source, built = fake_build(tmp_path)
    if change == "edit":
        (source / "sim" / "core.py").write_text("X = 2\n")
        changed = "sim/core.py"
    elif change == "add":
        (source / "sim" / "new.py").write_text("")
        changed = "sim/new.py"
    elif change == "remove":
        (source / "sim" / "core.py").unlink()
        changed = "sim/core.py"
    else:
        (source / "sim" / "profiles.json").write_text('{"a": 1}\n')
        changed = "sim/profiles.json"
    with pytest.raises(StaleBuildError, match=f"{changed} changed since it was built; rebuild it with"):
        check_build(built)


def test_a_build_whose_checkout_is_gone_refuses_to_run(tmp_path: Path) -> None:
    source, built = fake_build(tmp_path)
    shutil.rmtree(source)
    with pytest.raises(StaleBuildError, match="the checkout it was built from is gone"):
        check_build(built)


def test_bytecode_caches_do_not_make_a_build_stale(tmp_path: Path) -> None:
    source, built = fake_build(tmp_path)
    (source / "sim" / "__pycache__" / "other.cpython-311.pyc").write_bytes(b"new")
    check_build(built)


def age(source: Path, seconds: float) -> None:
    """Set every file's mtime `seconds` in the past (as if written then)."""
    when_ns = time.time_ns() - int(seconds * 1e9)
    for path in source.rglob("*"):
        os.utime(path, ns=(when_ns, when_ns))


def test_a_second_import_reads_no_source_file_whose_size_and_mtime_are_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, built = fake_build(tmp_path)
    age(source, 60)
    check_build(built)  # hashes everything once and keeps the stat cache
    assert (built / STAT_CACHE_NAME).is_file()
    read: list[Path] = []
    real_read = Path.read_bytes

    def counted(path: Path) -> bytes:
        read.append(path)
        return real_read(path)

    monkeypatch.setattr(Path, "read_bytes", counted)
    check_build(built)
    assert read == []
    # an edit of the same size is seen by its mtime, and only that file is read
    (source / "sim" / "core.py").write_text("X = 2\n")
    with pytest.raises(StaleBuildError, match=re.escape("sim/core.py changed since it was built")):
        check_build(built)
    assert read == [source / "sim" / "core.py"]


def test_a_file_changed_just_now_is_hashed_again_and_a_broken_cache_is_ignored(tmp_path: Path) -> None:
    source, built = fake_build(tmp_path)
    age(source, 60)
    (source / "sim" / "core.py").write_text("X = 1\n")  # just now: same size, same bytes
    check_build(built)
    cache = read_stat_cache(built / STAT_CACHE_NAME)
    assert set(cache) == {"__init__.py", "sim/profiles.json"}  # core.py may change again in its mtime tick
    (built / STAT_CACHE_NAME).write_text("{not json")
    check_build(built)
    (source / "sim" / "profiles.json").write_text('{"a": 1}\n')
    with pytest.raises(StaleBuildError, match=re.escape("profiles.json changed")):
        check_build(built)
