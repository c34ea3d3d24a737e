import json
from pathlib import Path

import pytest

from ppd.errors import UsageError
from ppd.launch import state


def _state() -> state.DeploymentState:
    return state.DeploymentState(
        backend="sim",
        topology="1p1d",
        mode="pd",
        processes=[
            state.ProcessRecord(
                "prefill0", "prefill", "http://127.0.0.1:8100", 11, "t1", "logs/prefill0.log", ["a"]
            ),
            state.ProcessRecord(
                "proxy", "proxy", "http://127.0.0.1:10001", 12, "t2", "logs/proxy.log", ["b"]
            ),
        ],
        remote=[state.RemoteInstance("decode0", "decode", "http://10.0.0.2:8200")],
        proxy_url="http://127.0.0.1:10001",
    )


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "state.json"
    state.save(_state(), path)
    loaded = state.load(path)
    assert loaded == _state()
    assert json.loads(path.read_text())["version"] == state.STATE_VERSION
    assert loaded is not None
    assert loaded.urls("prefill") == ["http://127.0.0.1:8100"]
    assert loaded.urls("decode") == ["http://10.0.0.2:8200"]


def test_missing_file_is_none_and_remove_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / ".ppd" / "state.json"
    assert state.load(path) is None
    state.save(_state(), path)
    state.remove(path)
    state.remove(path)
    assert not path.parent.exists()


@pytest.mark.parametrize("text", ["{", '{"version": 99}', '{"version": 1, "processes": [{"x": 1}]}'])
def test_bad_files_are_usage_errors(tmp_path: Path, text: str) -> None:
    path = tmp_path / "state.json"
    path.write_text(text)
    with pytest.raises(UsageError, match="state file"):
        state.load(path)
