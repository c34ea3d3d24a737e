"""tools/build_compiled.py: which --out folders it may delete and rebuild."""

from __future__ import annotations

from pathlib import Path

from helpers import load_tool

build = load_tool("build_compiled")


def test_a_build_of_the_tool_may_be_rebuilt_and_nothing_else(tmp_path: Path) -> None:
    # mypyc leaves its shared library beside the package: a build with it must be rebuildable (the
    # tool refused every rebuild into the same folder)
    out = tmp_path / "compiled"
    (out / "ppd").mkdir(parents=True)
    (out / "f61aa7144abed8934641__mypyc.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")
    assert build.is_build_folder(out)
    (out / "notes.txt").write_text("mine")
    assert not build.is_build_folder(out)
    assert not build.is_build_folder(tmp_path / "missing")
