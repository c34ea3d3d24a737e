"""`ppd bench` against a bare sim engine. Behind the proxy, in all three modes on W1 and W4, it is
checked on the result sets of `ppd demo --quick` (test_demo.py), which runs exactly that."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from helpers import Server
from ppd.results import load_result


def test_cli_measures_a_bare_engine(ppd_server: Callable[..., Server], tmp_path: Path) -> None:
    engine = ppd_server("sim", "--time-scale", "0.05")
    argv = f"bench --url {engine.url} --workload 64/8 --qps 4 --arrivals constant --duration 1 --turns 3"
    argv += f" --output {tmp_path} --name bare --quiet"
    done = subprocess.run(
        [sys.executable, "-m", "ppd", *argv.split()], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert f"results in {tmp_path / 'bare.json'}" in done.stdout
    meta, rows = load_result(tmp_path / "bare.json")
    assert meta["engines"][0]["version"] == "ppd-sim-0.1.0" and meta["topology"] is None
    assert rows and all(row.ok and row.mode == "" and row.route is None for row in rows)
    assert [row.prompt_tokens for row in rows if row.conversation == 0] == [
        64,
        64 + 8 + 64,
        64 + 2 * (8 + 64),
    ]
    assert [row.cached_tokens for row in rows if row.conversation == 0][1] > 0
